//! Checks of the sizes a model folder's config gives, made before anything is allocated by them:
//! each size within a sane range, and the parameters they imply no more than the weights file
//! beside the config holds. A config that fails names its file and field.

use std::path::Path;

use crate::error::{ModelError, Result};

/// The largest width, vocabulary, layer count, ... a config may give.
pub const MAX_DIM: usize = 1 << 20;
/// The most layers (or heads) a config may give.
pub const MAX_LAYERS: usize = 1024;

fn bad(path: &Path, message: String) -> ModelError {
    ModelError::BadFile { path: path.into(), message }
}

/// Each `(field, value, min, max)` within its range.
pub fn check_ranges(path: &Path, fields: &[(&str, usize, usize, usize)]) -> Result<()> {
    for &(field, value, min, max) in fields {
        if !(min..=max).contains(&value) {
            return Err(bad(path, format!("`{field}` = {value} is outside {min}..={max}")));
        }
    }
    Ok(())
}

/// A positive, finite epsilon below 1.
pub fn check_epsilon(path: &Path, field: &str, value: f64) -> Result<()> {
    if value.is_finite() && value > 0.0 && value < 1.0 { Ok(()) } else { Err(bad(path, format!("`{field}` = {value} must be between 0 and 1 (exclusive)"))) }
}

/// A probability in [0, 1).
pub fn check_rate(path: &Path, field: &str, value: f64) -> Result<()> {
    if value.is_finite() && (0.0..1.0).contains(&value) { Ok(()) } else { Err(bad(path, format!("`{field}` = {value} must be in [0, 1)"))) }
}

/// The `params` parameters the config at `config` implies fit the weights file `weights` (at
/// least two bytes each, as half precision would take); a config grown past its weights is
/// refused here, before its model is allocated.
pub fn check_fits(config: &Path, params: u128, weights: &Path) -> Result<()> {
    let bytes = std::fs::metadata(weights).map_err(|e| ModelError::Io(xmc_data::IoError::new(weights, e)))?.len() as u128;
    if params.saturating_mul(2) > bytes + (1 << 16) {
        let name = weights.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        return Err(bad(config, format!("its sizes give {params} parameters, more than {name} ({bytes} bytes) holds")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_out_of_range_or_past_the_weights_name_the_file_and_field() {
        let dir = tempfile::tempdir().unwrap();
        let (config, weights) = (dir.path().join("config.json"), dir.path().join("model.bpk"));
        std::fs::write(&weights, vec![0u8; 4000]).unwrap();
        assert!(check_ranges(&config, &[("d_model", 32, 1, MAX_DIM)]).is_ok());
        let err = check_ranges(&config, &[("d_model", 1 << 40, 1, MAX_DIM)]).unwrap_err().to_string();
        assert!(err.contains("config.json") && err.contains("d_model"), "{err}");
        assert!(check_fits(&config, 1000, &weights).is_ok());
        let err = check_fits(&config, 10_000_000, &weights).unwrap_err().to_string();
        assert!(err.contains("config.json") && err.contains("model.bpk"), "{err}");
        assert!(check_epsilon(&config, "eps", 0.0).is_err() && check_epsilon(&config, "eps", f64::NAN).is_err());
        assert!(check_rate(&config, "dropout", 0.1).is_ok() && check_rate(&config, "dropout", -0.1).is_err());
    }
}
