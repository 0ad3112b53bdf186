//! Loading Hugging Face safetensors into a burn module through key-remapping rules.

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
