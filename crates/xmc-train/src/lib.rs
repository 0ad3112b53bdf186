//! Training the sequence-to-sequence label generator: teacher-forced cross-entropy, AdamW,
//! checkpoints, resume and early stopping on validation accuracy.
//!
//! Status: only the stage's configuration exists yet; training lands with the model issue.

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
    /// Oversample labels with few training records so batches mix head and tail.
    pub oversample_tail: bool,
    pub seed: u64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            learning_rate: 1e-4,
            batch_size: 32,
            max_epochs: 20,
            patience: 3,
            max_input_tokens: 28,
            oversample_tail: false,
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
        Ok(())
    }
}
