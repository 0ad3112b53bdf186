//! Training the sequence-to-sequence label generator: the task (tokenizer, each label's target
//! sequence, the trie over them), teacher-forced cross-entropy with AdamW, per-epoch validation
//! with constrained decoding, early stopping, resumable checkpoints, the model folder, and
//! prediction with a trained model; and the contrastive fine-tuning of the sentence encoder that
//! multi-level cluster search uses.

mod artifact;
mod batch;
mod config;
mod contrastive;
mod distill;
mod epoch_sample;
mod error;
mod finetune;
mod fit;
mod label_vectors;
mod predict;
mod score;
mod task;
mod trainer;

pub use artifact::{MODEL_FORMAT, ModelMeta, TrainedModel};
pub use config::{Schedule, TrainConfig};
pub use contrastive::{ContrastiveConfig, ContrastiveOutcome, FineTuneLoss, contrastive_loss, retrieval_accuracy};
pub use distill::{DistillConfig, DistillOutcome, LayerPick, StudentKeep, StudentRecord, ValidFigures, distill_encoder, distill_loss};
pub use finetune::finetune_encoder;
pub use error::{Result, TrainError};
pub use fit::{EpochMetrics, Fingerprint};
pub use label_vectors::LABEL_VECTORS;
pub use predict::{Batching, default_threads, predict_inputs, set_default_threads};
pub use score::score_candidates;
pub use task::Seq2SeqTask;
pub use trainer::{TrainOutcome, accuracy, checkpoint_tokenizer, t5_config, train};
