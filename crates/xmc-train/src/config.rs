//! The `[train]` section of an experiment config.

use serde::{Deserialize, Serialize};

/// The `[train]` section of an experiment config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    pub learning_rate: f64,
    pub batch_size: usize,
    pub max_epochs: usize,
    /// Stop after this many epochs without a better validation accuracy.
    pub patience: usize,
    /// Input tokens kept per record (the reference work used 28).
    pub max_input_tokens: usize,
    /// Oversample labels with few training records so batches mix head and tail: every label
    /// is seen at least this many times per epoch (0 = off).
    pub tail_min_per_epoch: usize,
    /// Learning-rate warm-up steps (linear), then `schedule`: constant, or linear or cosine decay
    /// to zero at the last step (burn's schedulers; see `fit::Optimization::scheduler`).
    pub warmup_steps: usize,
    pub schedule: Schedule,
    /// Per-parameter gradient norm clipping (0 = off).
    pub grad_clip: f64,
    pub weight_decay: f64,
    pub seed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    Constant,
    Linear,
    Cosine,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            learning_rate: 1e-4,
            batch_size: 32,
            max_epochs: 20,
            patience: 3,
            max_input_tokens: 28,
            tail_min_per_epoch: 0,
            warmup_steps: 100,
            schedule: Schedule::Linear,
            grad_clip: 1.0,
            weight_decay: 0.01,
            seed: 42,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return Err(format!("`train.learning_rate` = {} must be in (0, 1]", self.learning_rate));
        }
        for (name, value) in [("batch_size", self.batch_size), ("max_epochs", self.max_epochs), ("max_input_tokens", self.max_input_tokens)] {
            if value == 0 {
                return Err(format!("`train.{name}` must be at least 1"));
            }
        }
        if self.grad_clip < 0.0 || self.weight_decay < 0.0 {
            return Err("`train.grad_clip` and `train.weight_decay` must not be negative".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn learning_rates_outside_what_the_schedulers_take_are_refused() {
        for lr in [0.0, -1.0, 1.5, f64::NAN] {
            let err = TrainConfig { learning_rate: lr, ..TrainConfig::default() }.validate().unwrap_err();
            assert!(err.contains("train.learning_rate"), "{err}");
        }
        assert!(TrainConfig { learning_rate: 1.0, ..TrainConfig::default() }.validate().is_ok());
    }
}
