//! Loading weights into burn modules: Hugging Face safetensors through key-remapping rules, and
//! our own burnpack files read whole into memory.

use std::path::Path;

use burn::module::Module;
use burn::store::{ModuleSnapshot, PyTorchToBurnAdapter, SafetensorsStore};

use crate::error::{ModelError, Result};

/// Applies the file's tensors to `module` after renaming keys by `rules` (regex, replacement; in
/// order, each on the result of the one before). Tensors the module lacks are ignored; a tensor the
/// module needs but the file lacks is an error.
pub fn load_safetensors<M: Module + ModuleSnapshot>(mut module: M, path: &Path, rules: &[(&str, &str)]) -> Result<M> {
    let mut store = SafetensorsStore::from_file(path).with_from_adapter(PyTorchToBurnAdapter).allow_partial(true);
    for (pattern, replacement) in rules {
        store = store.with_key_remapping(*pattern, *replacement);
    }
    let result = module.load_from(&mut store).map_err(|e| ModelError::Weights { path: path.into(), message: e.to_string() })?;
    if !result.errors.is_empty() || !result.missing.is_empty() {
        let missing: Vec<&str> = result.missing.iter().map(|(p, _)| p.as_str()).collect();
        return Err(ModelError::Weights { path: path.into(), message: format!("missing tensors {missing:?}; errors {:?}", result.errors) });
    }
    Ok(module)
}

/// Clears burn's parameter ids (random per run) from the tensors written.
#[derive(Clone)]
struct WithoutParamIds;

impl burn::store::ModuleAdapter for WithoutParamIds {
    fn adapt(&self, mut tensor: burn::store::burn_pack::Tensor, _ctx: burn::store::ModuleContext<'_>) -> burn::store::burn_pack::Tensor {
        tensor.param_id = None;
        tensor
    }

    fn clone_box(&self) -> Box<dyn burn::store::ModuleAdapter> {
        Box::new(self.clone())
    }
}

/// Writes `module`'s weights to a burnpack file without burn's random parameter ids, so the file
/// depends on the weights alone (two runs with the same weights write the same bytes). For
/// finished models: a training checkpoint keeps the ids, which its optimizer state refers to.
pub fn save_weights<M: Module + ModuleSnapshot>(module: &M, path: &Path) -> Result<()> {
    let mut store = burn::store::BurnpackStore::from_file(path).with_to_adapter(WithoutParamIds).overwrite(true).auto_extension(false);
    module.save_into(&mut store).map_err(|e| ModelError::Weights { path: path.into(), message: e.to_string() })
}

/// Loads a burnpack file written by [`save_weights`] (or a burn-train checkpoint) into `module`,
/// reading the file whole first. burn's `try_load_file` leaves each tensor's bytes in the file
/// until first used, so a model loaded that way fails (panics, inside burn) when its folder is
/// replaced or removed before every weight has been read: a server that loads a folder must not
/// depend on it afterwards.
pub fn load_weights<M: Module>(module: M, path: &Path) -> Result<M> {
    let bad = |message: String| ModelError::BadFile { path: path.into(), message };
    let bytes = std::fs::read(path).map_err(|e| bad(e.to_string()))?;
    let record = burn::store::ModuleRecord::from_bytes(burn::tensor::Bytes::from_bytes_vec(bytes)).map_err(|e| bad(e.to_string()))?;
    module.try_load_record(record).map_err(|e| bad(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::nn::LinearConfig;

    /// The loaded module keeps working after its file is gone: nothing is read lazily.
    #[test]
    fn loaded_weights_do_not_need_their_file_afterwards() {
        let device = burn::tensor::Device::default();
        let linear = LinearConfig::new(8, 4).init(&device);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.bpk");
        save_weights(&linear, &path).unwrap();
        let loaded = load_weights(LinearConfig::new(8, 4).init(&device), &path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let input = burn::tensor::Tensor::<2>::ones([1, 8], &device);
        let (a, b) = (linear.forward(input.clone()).into_data(), loaded.forward(input).into_data());
        assert_eq!(a, b);
        let err = load_weights(linear, &path).unwrap_err().to_string();
        assert!(err.contains("w.bpk"), "{err}");
    }
}
