//! T5 hyper-parameters, with presets and reading of a Hugging Face `config.json`.

use std::path::Path;

use burn::prelude::*;

use crate::error::{ModelError, Result};

#[derive(Config, Debug, PartialEq)]
pub struct T5Config {
    pub vocab_size: usize,
    pub d_model: usize,
    pub d_kv: usize,
    pub d_ff: usize,
    pub num_heads: usize,
    pub num_layers: usize,
    pub num_decoder_layers: usize,
    #[config(default = 32)]
    pub relative_attention_num_buckets: usize,
    #[config(default = 128)]
    pub relative_attention_max_distance: usize,
    #[config(default = 0.1)]
    pub dropout_rate: f64,
    #[config(default = 1e-6)]
    pub layer_norm_epsilon: f64,
    /// Gated-GELU feed-forward (T5 v1.1) instead of ReLU (T5 v1.0).
    #[config(default = false)]
    pub gated_gelu: bool,
    /// The output projection is the shared embedding.
    #[config(default = true)]
    pub tie_word_embeddings: bool,
    /// Multiply decoder outputs by d_model^-0.5 before the output projection (original T5).
    #[config(default = true)]
    pub scale_decoder_outputs: bool,
    #[config(default = 0)]
    pub pad_token_id: usize,
    #[config(default = 1)]
    pub eos_token_id: usize,
    #[config(default = 0)]
    pub decoder_start_token_id: usize,
    /// A BERT encoder (e.g. the pretrained sentence encoder) in place of T5's encoder stack, its
    /// states projected to `d_model`; `num_layers` is then ignored.
    #[config(default = "None")]
    pub bert_encoder: Option<crate::bert::BertConfig>,
}

/// The named sizes: `tiny` for tests, `small-cpu` for CPU training, `t5-small` as the reference.
pub fn preset(name: &str, vocab_size: usize) -> Option<T5Config> {
    let cfg = match name {
        "tiny" => T5Config::new(vocab_size, 32, 8, 64, 4, 2, 2).with_relative_attention_num_buckets(8).with_relative_attention_max_distance(20),
        "small-cpu" => T5Config::new(vocab_size, 256, 32, 1024, 8, 4, 4),
        "t5-small" => T5Config::new(vocab_size, 512, 64, 2048, 8, 6, 6),
        _ => return None,
    };
    Some(cfg)
}

#[derive(serde::Deserialize)]
struct HfConfig {
    vocab_size: usize,
    d_model: usize,
    d_kv: usize,
    d_ff: usize,
    num_heads: usize,
    num_layers: usize,
    num_decoder_layers: Option<usize>,
    #[serde(default = "buckets")]
    relative_attention_num_buckets: usize,
    #[serde(default = "max_distance")]
    relative_attention_max_distance: usize,
    #[serde(default)]
    dropout_rate: f64,
    #[serde(default = "eps")]
    layer_norm_epsilon: f64,
    #[serde(default = "relu")]
    feed_forward_proj: String,
    tie_word_embeddings: Option<bool>,
    scale_decoder_outputs: Option<bool>,
    #[serde(default)]
    pad_token_id: usize,
    #[serde(default = "one")]
    eos_token_id: usize,
    #[serde(default)]
    decoder_start_token_id: usize,
}

fn buckets() -> usize {
    32
}
fn max_distance() -> usize {
    128
}
fn eps() -> f64 {
    1e-6
}
fn relu() -> String {
    "relu".into()
}
fn one() -> usize {
    1
}

impl T5Config {
    /// Reads a Hugging Face T5 `config.json`.
    pub fn from_hf(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io(xmc_data::IoError::new(path, source)))?;
        let hf: HfConfig = serde_json::from_str(&text).map_err(|e| ModelError::BadFile { path: path.into(), message: e.to_string() })?;
        let gated_gelu = match hf.feed_forward_proj.as_str() {
            "relu" => false,
            "gated-gelu" => true,
            other => {
                return Err(ModelError::BadFile { path: path.into(), message: format!("feed_forward_proj `{other}` is not supported (relu, gated-gelu)") });
            }
        };
        let tie = hf.tie_word_embeddings.unwrap_or(true);
        let cfg = T5Config::new(hf.vocab_size, hf.d_model, hf.d_kv, hf.d_ff, hf.num_heads, hf.num_layers, hf.num_decoder_layers.unwrap_or(hf.num_layers))
            .with_relative_attention_num_buckets(hf.relative_attention_num_buckets)
            .with_relative_attention_max_distance(hf.relative_attention_max_distance)
            .with_dropout_rate(hf.dropout_rate)
            .with_layer_norm_epsilon(hf.layer_norm_epsilon)
            .with_gated_gelu(gated_gelu)
            .with_tie_word_embeddings(tie)
            .with_scale_decoder_outputs(hf.scale_decoder_outputs.unwrap_or(tie))
            .with_pad_token_id(hf.pad_token_id)
            .with_eos_token_id(hf.eos_token_id)
            .with_decoder_start_token_id(hf.decoder_start_token_id);
        cfg.check(path)?;
        Ok(cfg)
    }

    /// Checks the sizes against sane ranges (and the token ids against the vocabulary) before
    /// a model is allocated by them; errors name `path` and the field.
    pub fn check(&self, path: &Path) -> Result<()> {
        use crate::sizes::{MAX_DIM, MAX_LAYERS, check_epsilon, check_ranges, check_rate};
        check_ranges(
            path,
            &[
                ("vocab_size", self.vocab_size, 2, MAX_DIM),
                ("d_model", self.d_model, 1, MAX_DIM),
                ("d_kv", self.d_kv, 1, MAX_DIM),
                ("d_ff", self.d_ff, 1, MAX_DIM),
                ("num_heads", self.num_heads, 1, MAX_LAYERS),
                ("num_layers", self.num_layers, 0, MAX_LAYERS),
                ("num_decoder_layers", self.num_decoder_layers, 1, MAX_LAYERS),
                ("relative_attention_num_buckets", self.relative_attention_num_buckets, 2, 4096),
                ("relative_attention_max_distance", self.relative_attention_max_distance, 1, MAX_DIM),
                ("pad_token_id", self.pad_token_id, 0, self.vocab_size - 1),
                ("eos_token_id", self.eos_token_id, 0, self.vocab_size - 1),
                ("decoder_start_token_id", self.decoder_start_token_id, 0, self.vocab_size - 1),
            ],
        )?;
        check_epsilon(path, "layer_norm_epsilon", self.layer_norm_epsilon)?;
        check_rate(path, "dropout_rate", self.dropout_rate)?;
        if let Some(bert) = &self.bert_encoder {
            bert.check(path)?;
        }
        Ok(())
    }

    /// The parameters these sizes give, without overflow (for [`crate::sizes::check_fits`]).
    pub fn num_params(&self) -> u128 {
        let [v, d, kv, ff, h, enc, dec, buckets] =
            [self.vocab_size, self.d_model, self.d_kv, self.d_ff, self.num_heads, self.num_layers, self.num_decoder_layers, self.relative_attention_num_buckets].map(|x| x as u128);
        let attn = 4 * d * kv * h;
        let ffn = d * ff * if self.gated_gelu { 3 } else { 2 };
        let encoder = match &self.bert_encoder {
            Some(bert) => bert.num_params() + bert.hidden_size as u128 * d,
            None => enc * (attn + ffn + 2 * d),
        };
        v * d * if self.tie_word_embeddings { 1 } else { 2 } + encoder + dec * (2 * attn + ffn + 3 * d) + 2 * buckets * h + 2 * d
    }

    pub fn num_params_estimate(&self) -> usize {
        let attn = 4 * self.d_model * self.d_kv * self.num_heads;
        let ff = self.d_model * self.d_ff * if self.gated_gelu { 3 } else { 2 };
        self.vocab_size * self.d_model * if self.tie_word_embeddings { 1 } else { 2 }
            + self.num_layers * (attn + ff + 2 * self.d_model)
            + self.num_decoder_layers * (2 * attn + ff + 3 * self.d_model)
            + 2 * self.relative_attention_num_buckets * self.num_heads
            + 2 * self.d_model
    }
}
