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
    /// Learning-rate warm-up steps, then `schedule` decay to zero at the last step.
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
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(format!("`train.learning_rate` = {} must be a positive number", self.learning_rate));
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

    /// The learning rate at `step` of `total` steps.
    pub fn learning_rate_at(&self, step: usize, total: usize) -> f64 {
        let lr = self.learning_rate;
        if step < self.warmup_steps {
            return lr * (step + 1) as f64 / self.warmup_steps as f64;
        }
        let span = total.saturating_sub(self.warmup_steps).max(1) as f64;
        let progress = ((step - self.warmup_steps) as f64 / span).min(1.0);
        match self.schedule {
            Schedule::Constant => lr,
            Schedule::Linear => lr * (1.0 - progress),
            Schedule::Cosine => lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warm_up_then_decay() {
        let cfg = TrainConfig { warmup_steps: 10, ..TrainConfig::default() };
        assert!((cfg.learning_rate_at(0, 110) - 1e-5).abs() < 1e-12);
        assert!((cfg.learning_rate_at(9, 110) - 1e-4).abs() < 1e-12);
        assert!((cfg.learning_rate_at(60, 110) - 5e-5).abs() < 1e-12);
        assert!(cfg.learning_rate_at(109, 110) < 2e-6);
        let cosine = TrainConfig { schedule: Schedule::Cosine, ..cfg.clone() };
        assert!((cosine.learning_rate_at(60, 110) - 5e-5).abs() < 1e-9);
        let constant = TrainConfig { schedule: Schedule::Constant, ..cfg };
        assert_eq!(constant.learning_rate_at(100, 110), 1e-4);
    }
}
