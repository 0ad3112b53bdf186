//! The neural networks, in burn: a T5 encoder-decoder that generates a label (its name, or its
//! prefix code one token per level) and the BERT sentence encoder used to embed labels.
//!
//! The BERT sentence encoder and the T5 load Hugging Face checkpoints and match the reference
//! implementation (tests/bert.rs, tests/t5.rs).

mod batch;
pub mod bert;
pub mod decode;
mod device;
pub mod dropout;
mod error;
pub mod fast_encoder;
pub mod onnx;
pub mod sizes;
pub mod t5;
pub mod tokenizer;
mod weights;

pub use bert::{Architecture, Bert, BertConfig, SentenceEncoder, relative_bucket};
pub use fast_encoder::EncoderRuntime;
pub use device::{inference_device, training_device};
pub use error::{ModelError, Result};
pub use t5::{T5, T5Config};
pub use tokenizer::{InputTokenizer, TextTokenizer};
pub use weights::{load_weights, save_weights};
pub use decode::{DecodeConfig, Hypothesis, beam_search, greedy, output_tokens};

use serde::{Deserialize, Serialize};

/// What the decoder generates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum TargetMode {
    /// The label's name as text.
    Plain,
    /// The label's prefix code, one token per tree level.
    Hierarchical,
}

/// The `[model]` section of an experiment config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    pub mode: TargetMode,
    /// `tiny` (tests), `small-cpu` (CPU default) or `t5-small`.
    pub preset: String,
    pub beam_width: usize,
    pub top_k: usize,
    /// Unigram vocabulary size when no `tokenizer` is given.
    pub vocab_size: usize,
    /// A `tokenizer.json` to use instead of training one.
    pub tokenizer: Option<String>,
    /// A Hugging Face T5 folder (`config.json`, `model.safetensors`) to start from.
    pub init_from: Option<String>,
    pub dropout: f64,
    /// Target tokens kept per label name in plain mode (the code length bounds hierarchical mode).
    pub max_target_tokens: usize,
    /// `t5`: the preset's own encoder, trained from scratch. `bert`: the pretrained sentence
    /// encoder in `encoder_dir` (its BERT weights and WordPiece tokenizer), projected to the
    /// decoder's width, with the preset's T5 decoder on top.
    pub encoder: EncoderKind,
    pub encoder_dir: String,
    /// The decoder's softmax covers only the tokens that occur in some label's target (and the
    /// start token), in training and decoding: in hierarchical mode a few dozen code tokens
    /// instead of the whole vocabulary. `false`: the whole vocabulary.
    pub softmax_over_targets: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EncoderKind {
    T5,
    Bert,
}

pub const PRESETS: [&str; 3] = ["tiny", "small-cpu", "t5-small"];

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            mode: TargetMode::Hierarchical,
            preset: "small-cpu".into(),
            beam_width: 5,
            top_k: 5,
            vocab_size: 8000,
            tokenizer: None,
            init_from: None,
            dropout: 0.1,
            max_target_tokens: 32,
            softmax_over_targets: true,
            encoder: EncoderKind::T5,
            encoder_dir: "models/all-MiniLM-L6-v2".into(),
        }
    }
}

impl ModelConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !PRESETS.contains(&self.preset.as_str()) {
            return Err(format!("`model.preset` = {:?} is unknown; allowed: {}", self.preset, PRESETS.join(", ")));
        }
        if self.beam_width == 0 || self.top_k == 0 {
            return Err("`model.beam_width` and `model.top_k` must be at least 1".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("`model.dropout` = {} must be in [0, 1)", self.dropout));
        }
        if self.vocab_size < 16 || self.max_target_tokens < 2 {
            return Err("`model.vocab_size` must be at least 16 and `model.max_target_tokens` at least 2".into());
        }
        if self.encoder == EncoderKind::Bert && self.init_from.is_some() {
            return Err("`model.encoder = \"bert\"` and `model.init_from` both choose the encoder's weights: set one".into());
        }
        if self.top_k > self.beam_width {
            return Err(format!("`model.top_k` = {} cannot exceed `model.beam_width` = {}", self.top_k, self.beam_width));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_preset_names_the_allowed_ones() {
        let err = ModelConfig { preset: "huge".into(), ..ModelConfig::default() }.validate().unwrap_err();
        assert!(err.contains("model.preset") && err.contains("small-cpu"));
        ModelConfig::default().validate().unwrap();
    }
}
