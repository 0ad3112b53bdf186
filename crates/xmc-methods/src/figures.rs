//! The train stage's figures (recorded in its `stage.json`): every method fills what it has.

use serde::{Deserialize, Serialize};

/// The train stage's figures. What a method does not have stays empty (and is not written).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct TrainFigures {
    /// Top-1 accuracy on the validation split of the trained model (the T5's best epoch, the
    /// ranker, or the fine-tuned encoder's retrieval accuracy for cluster search).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_valid_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_seconds: Option<f64>,
    // The T5 (generative) and the contrastive fine-tuning (cluster search).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub best_epoch: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub epochs: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub steps_per_s: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<usize>,
    // Cluster search.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fine_tuned: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pretrained_valid_accuracy: Option<f64>,
    // The XR ranker (alone or in the fused method).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_macro_f1: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_tail_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub features: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub weights: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub beam_negative_rows: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoder_valid_retrieval: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub encoder_seconds: Option<f64>,
    // The fused method.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator_valid_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator_seconds: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fused_valid_accuracy_in_sample: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate_recall: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fusion_cross_fitted_accuracy: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fusion_ranker_only: Option<bool>,
    // Every method: the confidence calibration fitted on the validation split.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub calibration_temperature: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_ece_uncalibrated: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_ece_calibrated: Option<f64>,
}

impl TrainFigures {
    /// Sets the calibration's figures.
    pub fn with_calibration(mut self, c: &crate::calibration::Calibration) -> Self {
        self.calibration_temperature = Some(c.temperature);
        self.valid_ece_uncalibrated = Some(c.valid_ece_before);
        self.valid_ece_calibrated = Some(c.valid_ece_after);
        self
    }
}
