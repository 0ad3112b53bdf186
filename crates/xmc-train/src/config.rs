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
    /// Label smoothing of the generator's cross-entropy: the target distribution puts
    /// `1 - label_smoothing` on the true token and spreads the rest evenly over the output
    /// vocabulary (0 = off; left out of the serialised config when 0, so the fingerprints of runs
    /// from before the key existed are unchanged).
    #[serde(skip_serializing_if = "is_zero")]
    pub label_smoothing: f64,
    pub seed: u64,
}

fn is_zero(x: &f64) -> bool {
    *x == 0.0
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
            label_smoothing: 0.0,
            seed: 42,
        }
    }
}

impl TrainConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return Err(format!("`train.learning_rate` = {} must be in (0, 1]", self.learning_rate));
        }
        for (name, value, max) in [("batch_size", self.batch_size, 65_536), ("max_epochs", self.max_epochs, 100_000), ("max_input_tokens", self.max_input_tokens, 8192)] {
            if !(1..=max).contains(&value) {
                return Err(format!("`train.{name}` = {value} must be between 1 and {max}"));
            }
        }
        if !(0.0..1.0).contains(&self.label_smoothing) {
            return Err(format!("`train.label_smoothing` = {} must be in [0, 1)", self.label_smoothing));
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

    #[test]
    fn label_smoothing_is_checked_and_left_out_of_the_config_when_off() {
        for bad in [-0.1, 1.0, f64::NAN] {
            let err = TrainConfig { label_smoothing: bad, ..TrainConfig::default() }.validate().unwrap_err();
            assert!(err.contains("train.label_smoothing"), "{err}");
        }
        let off = serde_json::to_value(TrainConfig::default()).unwrap();
        assert!(off.get("label_smoothing").is_none(), "{off}");
        let on = TrainConfig { label_smoothing: 0.1, ..TrainConfig::default() };
        assert_eq!(serde_json::to_value(&on).unwrap()["label_smoothing"], 0.1);
        let back: TrainConfig = serde_json::from_value(serde_json::to_value(&on).unwrap()).unwrap();
        assert_eq!(back, on);
    }
}
