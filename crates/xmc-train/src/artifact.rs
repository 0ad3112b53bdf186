//! The trained model folder: everything `predict` needs, checked on load.
//!
//! `meta.json` (format version, target mode, configs), `t5.json`, `model.bpk`, `tokenizer.json`,
//! `targets.json` (each label's target ids) and `labels.json` (the label paths).

use std::path::Path;

use burn::prelude::*;
use serde::{Deserialize, Serialize};
use xmc_data::LabelSet;
use xmc_model::{ModelConfig, T5, T5Config, TextTokenizer};

use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::task::Seq2SeqTask;

/// Bump when the folder's layout or meaning changes; older folders are refused.
pub const MODEL_FORMAT: u32 = 1;
const FILES: [&str; 6] = ["meta.json", "t5.json", "model.bpk", "tokenizer.json", "targets.json", "labels.json"];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMeta {
    pub format: u32,
    pub xmc_version: String,
    pub model: ModelConfig,
    pub train: TrainConfig,
    /// The template that turned records into inputs, so prediction renders them the same way.
    pub template: xmc_data::InputTemplate,
}

/// A loaded model folder, ready to predict.
#[derive(Debug)]
pub struct TrainedModel {
    pub meta: ModelMeta,
    pub t5_config: T5Config,
    pub model: T5,
    pub task: Seq2SeqTask,
    pub labels: LabelSet,
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value).expect("serialises") + "\n").map_err(|e| TrainError::io(path, e))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| TrainError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| TrainError::Artifact { path: path.into(), message: e.to_string() })
}

/// Writes every file except `model.bpk` (the trainer writes the weights itself).
pub fn save_model_files(dir: &Path, meta: &ModelMeta, t5: &T5Config, task: &Seq2SeqTask, labels: &LabelSet) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    write_json(&dir.join("meta.json"), meta)?;
    write_json(&dir.join("t5.json"), t5)?;
    task.tokenizer.save(&dir.join("tokenizer.json"))?;
    if let Some(t) = &task.input_tokenizer {
        t.save(&dir.join(INPUT_TOKENIZER))?;
    }
    write_json(&dir.join("targets.json"), &task.targets)?;
    labels.save(dir)?;
    Ok(())
}

/// The BERT encoder's WordPiece tokenizer, in a model folder whose encoder is BERT.
pub const INPUT_TOKENIZER: &str = "input_tokenizer.json";

impl TrainedModel {
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        if !dir.is_dir() {
            return Err(TrainError::Artifact { path: dir.into(), message: "not a model folder (it does not exist)".into() });
        }
        for file in FILES {
            if !dir.join(file).is_file() {
                return Err(TrainError::Artifact {
                    path: dir.into(),
                    message: format!("not a complete model folder: `{file}` is missing (expected {})", FILES.join(", ")),
                });
            }
        }
        let meta: ModelMeta = read_json(&dir.join("meta.json"))?;
        if meta.format != MODEL_FORMAT {
            return Err(TrainError::Artifact {
                path: dir.into(),
                message: format!(
                    "written in model format {} by xmc {}; this xmc ({}) reads format {MODEL_FORMAT}: retrain it",
                    meta.format,
                    meta.xmc_version,
                    env!("CARGO_PKG_VERSION")
                ),
            });
        }
        let t5_config: T5Config = read_json(&dir.join("t5.json"))?;
        t5_config.check(&dir.join("t5.json"))?;
        xmc_model::sizes::check_fits(&dir.join("t5.json"), t5_config.num_params(), &dir.join("model.bpk"))?;
        let labels = LabelSet::load(dir)?;
        let tokenizer = TextTokenizer::load(&dir.join("tokenizer.json"))?;
        tokenizer.check_ids(&dir.join("tokenizer.json"), t5_config.vocab_size)?;
        let targets: Vec<Vec<u32>> = read_json(&dir.join("targets.json"))?;
        if let Some(token) = targets.iter().flatten().find(|&&t| t as usize >= t5_config.vocab_size) {
            return Err(TrainError::Artifact {
                path: dir.join("targets.json"),
                message: format!("token {token} is outside the model's vocabulary of {} (t5.json `vocab_size`)", t5_config.vocab_size),
            });
        }
        let trie = xmc_codes::PrefixTrie::from_codes(&targets)
            .map_err(|e| TrainError::Artifact { path: dir.join("targets.json"), message: e.to_string() })?;
        if targets.len() != labels.len() {
            return Err(TrainError::Artifact { path: dir.into(), message: format!("{} targets for {} labels", targets.len(), labels.len()) });
        }
        let model = xmc_model::load_weights(t5_config.init(device), &dir.join("model.bpk"))?;
        let input_tokenizer = match meta.model.encoder {
            xmc_model::EncoderKind::Bert => {
                let path = dir.join(INPUT_TOKENIZER);
                if !path.is_file() {
                    return Err(TrainError::Artifact { path: dir.into(), message: format!("not a complete model folder: `{INPUT_TOKENIZER}` is missing (the model has a BERT encoder)") });
                }
                let input = xmc_model::InputTokenizer::load(&path)?;
                if let Some(bert) = &t5_config.bert_encoder {
                    input.check_ids(&path, bert.vocab_size)?;
                }
                Some(input)
            }
            xmc_model::EncoderKind::T5 => None,
        };
        let output_tokens = crate::task::output_tokens(&trie, &tokenizer, &meta.model);
        let task = Seq2SeqTask { mode: meta.model.mode, tokenizer, targets, trie, input_tokenizer, output_tokens };
        Ok(TrainedModel { meta, t5_config, model, task, labels })
    }
}
