//! The `[eval]` section of an experiment config.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// The k of P@k, nDCG@k and PSP@k.
    pub ks: Vec<usize>,
    /// Propensity parameters A and B (Jain et al. 2016).
    pub propensity_a: f64,
    pub propensity_b: f64,
    /// Bootstrap resamples for the 95% confidence intervals (0 turns them off).
    pub bootstrap: usize,
    pub seed: u64,
    /// A committed baseline (`experiments/baselines/*.json`): the run fails when its accuracy or
    /// macro-F1 falls below the baseline by more than the tolerance stated in that file.
    pub baseline: Option<PathBuf>,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig { ks: vec![1, 3, 5], propensity_a: 0.55, propensity_b: 1.5, bootstrap: 1000, seed: 42, baseline: None }
    }
}

impl EvalConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.ks.is_empty() || self.ks.contains(&0) {
            return Err("`eval.ks` must list positive k values, e.g. [1, 3, 5]".into());
        }
        if !(self.propensity_a > 0.0 && self.propensity_b > 0.0) {
            return Err(format!(
                "`eval.propensity_a` and `eval.propensity_b` must be positive (got {} and {})",
                self.propensity_a, self.propensity_b
            ));
        }
        if self.bootstrap == 1 {
            return Err("`eval.bootstrap` must be 0 (off) or at least 2 resamples".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_key() {
        assert!(EvalConfig::default().validate().is_ok());
        let bad = EvalConfig { ks: vec![1, 0], ..EvalConfig::default() };
        assert!(bad.validate().unwrap_err().contains("eval.ks"));
        let bad = EvalConfig { propensity_a: -1.0, ..EvalConfig::default() };
        assert!(bad.validate().unwrap_err().contains("propensity_a"));
    }
}
