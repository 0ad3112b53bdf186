//! Metrics for label predictions: accuracy, precision/recall/F1 (macro, micro, weighted), tail
//! accuracy, per-level scores, P@k, nDCG@k, PSP@k and code-prefix credit, and the reports.
//!
//! Status: only the stage's configuration exists yet; the metrics land with the evaluation issue.

use serde::{Deserialize, Serialize};

/// The `[eval]` section of an experiment config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EvalConfig {
    /// The k of P@k, nDCG@k and PSP@k.
    pub ks: Vec<usize>,
    /// Propensity parameters A and B (Jain et al. 2016).
    pub propensity_a: f64,
    pub propensity_b: f64,
}

impl Default for EvalConfig {
    fn default() -> Self {
        EvalConfig { ks: vec![1, 3, 5], propensity_a: 0.55, propensity_b: 1.5 }
    }
}

impl EvalConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.ks.is_empty() || self.ks.contains(&0) {
            return Err("`eval.ks` must list positive k values, e.g. [1, 3, 5]".into());
        }
        Ok(())
    }
}
