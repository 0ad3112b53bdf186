//! The generative method (`method = "generative"`): a T5 generates the label's code in the tree
//! (`model.mode = "hierarchical"`) or its path as text (`"plain"`), constrained by a trie so that
//! only real labels come out. Its model folder is the T5's: `meta.json`, `model.bpk`,
//! `tokenizer.json`, with `dataset.toml` and `calibration.json`.

use std::path::Path;

use anyhow::{Context, Result};
use serde_json::json;
use xmc_data::{InputTemplate, LabelSet};
use xmc_model::{DecodeConfig, Hypothesis, TargetMode};
use xmc_train::{Batching, TrainedModel};

use crate::config::ExperimentConfig;
use crate::figures::TrainFigures;
use crate::method::{InputFile, Method, Model, Pools, PredictSettings, TrainContext, TrainPlan, Upstream};
use crate::recipes;

/// The file that tells a generative model folder.
pub const META_FILE: &str = "meta.json";

/// Records encoded and decoded together.
pub const PREDICT_BATCH: usize = 32;

/// The decoder settings for a trained model (the fast decoder: see [`DecodeConfig`]).
pub fn decode_config(trained: &TrainedModel, beam_width: usize, top_k: usize) -> DecodeConfig {
    trained.task.decode_config(beam_width, top_k)
}

/// Beam search over `texts` (already rendered inputs).
pub fn predict_texts(trained: &TrainedModel, texts: &[&str], beam_width: usize, top_k: usize, on_batch: impl FnMut(usize)) -> Result<Vec<Vec<Hypothesis>>> {
    predict_texts_with(trained, texts, &decode_config(trained, beam_width, top_k), Batching::new(PREDICT_BATCH), on_batch)
}

/// [`predict_texts`] with explicit decoder settings, batch size and threads.
pub fn predict_texts_with(
    trained: &TrainedModel,
    texts: &[&str],
    decode: &DecodeConfig,
    batching: Batching,
    on_batch: impl FnMut(usize),
) -> Result<Vec<Vec<Hypothesis>>> {
    Ok(xmc_train::predict_inputs(&trained.model, &trained.task, texts, trained.meta.train.max_input_tokens, decode, batching, on_batch)?)
}

/// In hierarchical mode, each label's code as the model generates it (its target tokens without
/// `</s>`): one token per (level, child) pair, so prefixes compare as the codes' prefixes do.
pub fn model_codes(trained: &TrainedModel) -> Option<Vec<Vec<u32>>> {
    let task = &trained.task;
    (task.mode == TargetMode::Hierarchical).then(|| {
        task.targets.iter().map(|t| t.iter().copied().filter(|&id| id != task.tokenizer.eos_id).collect()).collect()
    })
}

/// The generative method.
pub struct Generative;

impl Method for Generative {
    fn name(&self) -> &'static str {
        "generative"
    }

    fn folder_file(&self) -> &'static str {
        META_FILE
    }

    fn load(&self, dir: &Path) -> Result<Box<dyn Model>> {
        Ok(Box::new(GenerativeModel(TrainedModel::load(dir, &xmc_model::inference_device())?)))
    }

    fn uses_label_tree(&self, cfg: &ExperimentConfig) -> bool {
        cfg.model.mode == TargetMode::Hierarchical
    }

    fn train_plan(&self, cfg: &ExperimentConfig) -> Result<TrainPlan> {
        let mut upstream = vec![Upstream::Data];
        if self.uses_label_tree(cfg) {
            upstream.push(Upstream::Codes);
        }
        let mut files = Vec::new();
        if let Some(dir) = &cfg.model.init_from {
            let path = Path::new(dir).join("model.safetensors");
            files.push(InputFile { key: "init_weights".into(), missing: format!("the initial weights {}", path.display()), path });
        }
        if cfg.model.encoder == xmc_model::EncoderKind::Bert {
            let path = Path::new(&cfg.model.encoder_dir).join("model.safetensors");
            files.push(InputFile { key: "bert_encoder_weights".into(), missing: format!("the BERT encoder {}", path.display()), path });
        }
        if let Some(path) = &cfg.model.tokenizer {
            files.push(InputFile { key: "tokenizer".into(), missing: format!("the tokenizer {path}"), path: path.into() });
        }
        let template = recipes::resolved_template(cfg)?;
        Ok(TrainPlan { upstream, files, config: json!({ "model": cfg.model, "train": cfg.train, "template": template }) })
    }

    fn train(&self, ctx: &TrainContext) -> Result<TrainFigures> {
        let cfg = ctx.cfg;
        let data = xmc_data::PreparedData::load(&ctx.dir(Upstream::Data))?;
        let codes = if self.uses_label_tree(cfg) { Some(xmc_codes::LabelCodes::load(&ctx.dir(Upstream::Codes))?.codes) } else { None };
        let template = recipes::resolved_template(cfg)?;
        let outcome = recipes::train_generator(cfg, &data, codes.as_deref(), &template, ctx.out, ctx.resume)?;
        tracing::info!(
            "train: best validation accuracy {:.4} at epoch {} of {}; {:.2} steps/s; {} parameters",
            outcome.best_valid_accuracy,
            outcome.best_epoch,
            outcome.epochs,
            outcome.steps_per_s,
            outcome.parameters
        );
        recipes::copy_dataset(cfg, ctx.out)?;
        Ok(TrainFigures {
            best_valid_accuracy: Some(outcome.best_valid_accuracy),
            best_epoch: Some(outcome.best_epoch),
            epochs: Some(outcome.epochs),
            steps_per_s: Some(outcome.steps_per_s),
            parameters: Some(outcome.parameters),
            train_seconds: Some(outcome.train_seconds),
            ..Default::default()
        })
    }

    fn predict_settings(&self, cfg: &ExperimentConfig) -> PredictSettings {
        PredictSettings { beam: cfg.model.beam_width, top_k: cfg.model.top_k }
    }

    fn speed_target(&self) -> f64 {
        300.0
    }

    fn describe(&self, cfg: &ExperimentConfig) -> Result<String> {
        Ok(match cfg.model.mode {
            TargetMode::Hierarchical => format!(
                "T5 ({}) generating hierarchical codes; label tree by recursive k-means (k = {}) over {} label embeddings",
                cfg.model.preset,
                cfg.tree.branching,
                recipes::name_of(cfg.embed.kind)?
            ),
            TargetMode::Plain => format!("T5 ({}) generating the label path as text (plain)", cfg.model.preset),
        })
    }
}

/// A loaded generative model folder.
pub struct GenerativeModel(pub TrainedModel);

impl Model for GenerativeModel {
    fn method(&self) -> &'static str {
        Generative.name()
    }

    fn labels(&self) -> &LabelSet {
        &self.0.labels
    }

    fn template(&self) -> &InputTemplate {
        &self.0.meta.template
    }

    fn default_beam(&self) -> usize {
        self.0.meta.model.beam_width
    }

    fn codes(&self) -> Option<Vec<Vec<u32>>> {
        model_codes(&self.0)
    }

    fn pools(&self, texts: &[&str], beam: usize, on_batch: &mut dyn FnMut(usize)) -> Result<Pools> {
        let hyps = predict_texts(&self.0, texts, beam, beam, on_batch)?;
        Ok(hyps.into_iter().map(|h| h.into_iter().map(|h| (h.label, h.score)).collect()).collect())
    }

    fn why_no_new_labels(&self) -> &'static str {
        "the T5 learns each label's code or name from its training records"
    }
}

/// The context of a generator folder's load error.
pub(crate) fn load_generator(dir: &Path, what: &Path) -> Result<TrainedModel> {
    TrainedModel::load(dir, &xmc_model::inference_device()).with_context(|| format!("{}: the generator", what.display()))
}
