//! Training the sequence-to-sequence label generator: the task (tokenizer, each label's target
//! sequence, the trie over them), teacher-forced cross-entropy with AdamW, per-epoch validation
//! with constrained decoding, early stopping, resumable checkpoints, the model folder, and
//! prediction with a trained model.

mod artifact;
mod batch;
mod config;
mod error;
mod predict;
mod task;
mod trainer;

pub use artifact::{MODEL_FORMAT, ModelMeta, TrainedModel};
pub use config::{Schedule, TrainConfig};
pub use error::{Result, TrainError};
pub use predict::predict_inputs;
pub use task::Seq2SeqTask;
pub use trainer::{EpochMetrics, TrainOutcome, accuracy, t5_config, train};
