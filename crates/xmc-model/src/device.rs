//! The compute device: CUDA with the `cuda` feature, burn's `flex` CPU backend otherwise.

use burn::tensor::Device;

/// The device for inference (no autodiff).
pub fn inference_device() -> Device {
    #[cfg(feature = "cuda")]
    {
        Device::cuda(0)
    }
    #[cfg(not(feature = "cuda"))]
    {
        Device::flex()
    }
}

/// The device for training (autodiff on top of the inference device).
pub fn training_device() -> Device {
    inference_device().autodiff()
}
