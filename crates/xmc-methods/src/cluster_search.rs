//! Multi-level cluster search (`method = "cluster-search"`): the sentence encoder (fine-tuned
//! with an in-batch contrastive loss, or pretrained) scores a record against the children of the
//! current tree nodes, level by level, with a beam. New leaves can be placed by their name's
//! embedding without retraining. Its model folder: `search.json`, `tree.json`, `labels.json`,
//! the encoder and the labels' vectors under `encoder/` (see `xmc_cluster::model`).

use std::path::Path;

use anyhow::{Context, Result, bail};
use serde_json::json;
use xmc_cluster::{AddedLabel, SearchModel};
use xmc_data::{InputTemplate, LabelSet, PreparedData};
use xmc_model::SentenceEncoder;

use crate::config::ExperimentConfig;
use crate::figures::TrainFigures;
use crate::method::{InputFile, Method, Model, Pools, PredictSettings, TrainContext, TrainPlan, Upstream};
use crate::recipes;

/// Records embedded and searched together (for the progress callback).
const SEARCH_CHUNK: usize = 2048;

/// The cluster-search method.
pub struct ClusterSearch;

impl Method for ClusterSearch {
    fn name(&self) -> &'static str {
        xmc_cluster::model::METHOD
    }

    fn folder_file(&self) -> &'static str {
        xmc_cluster::model::META_FILE
    }

    fn load(&self, dir: &Path) -> Result<Box<dyn Model>> {
        let model = SearchModel::load(dir)?;
        let enc_dir = dir.join(xmc_cluster::model::ENCODER_DIR);
        let encoder = SentenceEncoder::load(&enc_dir, &xmc_model::inference_device())
            .and_then(|e| e.with_fast_path())
            .with_context(|| format!("{}: cluster search needs its sentence encoder in `{}`", dir.display(), xmc_cluster::model::ENCODER_DIR))?;
        Ok(Box::new(SearchRanker { model, encoder }))
    }

    fn validate(&self, cfg: &ExperimentConfig) -> Result<()> {
        if cfg.embed.kind != xmc_cluster::EmbeddingKind::Sentence {
            bail!("`method = \"cluster-search\"` scores records against sentence-encoder label vectors: set `embed.kind = \"sentence\"`");
        }
        Ok(())
    }

    fn takes_new_labels(&self) -> bool {
        true
    }

    fn train_plan(&self, cfg: &ExperimentConfig) -> Result<TrainPlan> {
        let path = Path::new(&cfg.embed.encoder_dir).join(SentenceEncoder::WEIGHTS);
        let template = recipes::resolved_template(cfg)?;
        Ok(TrainPlan {
            upstream: vec![Upstream::Data, Upstream::Embed, Upstream::Tree],
            files: vec![InputFile { key: "encoder_weights".into(), missing: format!("the sentence encoder {}", path.display()), path }],
            config: json!({
                "method": cfg.method,
                "encoder_dir": cfg.embed.encoder_dir,
                "label_text": cfg.embed.text,
                "contrastive": cfg.contrastive,
                "search": search_settings(cfg),
                "template": template,
            }),
        })
    }

    /// The sentence encoder fine-tuned with the in-batch contrastive loss (record text vs label
    /// text) into `encoder/`, or, with `contrastive.epochs = 0`, the pretrained encoder as it
    /// is; then the tree stage's tree and the labels' vectors under that encoder.
    fn train(&self, ctx: &TrainContext) -> Result<TrainFigures> {
        let (cfg, out) = (ctx.cfg, ctx.out);
        let fine_tuned = cfg.contrastive.epochs > 0;
        let data = PreparedData::load(&ctx.dir(Upstream::Data))?;
        let template = recipes::resolved_template(cfg)?;
        let encoder_dir = out.join(xmc_cluster::model::ENCODER_DIR);
        let mut report = TrainFigures { fine_tuned: Some(fine_tuned), ..Default::default() };
        if fine_tuned {
            let outcome = recipes::finetune_encoder(cfg, &data, &cfg.contrastive, &encoder_dir, ctx.resume)?;
            eprintln!(
                "train (contrastive): validation retrieval accuracy {:.4} -> {:.4} (best epoch {} of {}), {:.0} records/s",
                outcome.pretrained_valid_accuracy,
                outcome.best_valid_accuracy,
                outcome.best_epoch,
                outcome.epochs,
                outcome.records_per_s
            );
            report.pretrained_valid_accuracy = Some(outcome.pretrained_valid_accuracy);
            report.best_valid_accuracy = Some(outcome.best_valid_accuracy);
            report.best_epoch = Some(outcome.best_epoch);
            report.epochs = Some(outcome.epochs);
            report.train_seconds = Some(outcome.train_seconds);
        } else {
            recipes::copy_encoder(Path::new(&cfg.embed.encoder_dir), &encoder_dir)?;
        }
        // The tree stays the one built from the pretrained embeddings; a fine-tuned encoder
        // re-embeds the labels, and the node vectors are recomputed from them.
        let embeddings = if fine_tuned {
            let encoder = SentenceEncoder::load(&encoder_dir, &xmc_model::inference_device())?.with_fast_path()?;
            xmc_cluster::embed_labels(&data, &cfg.embed, Some(&encoder), |_| {})?
        } else {
            xmc_cluster::LabelEmbeddings::load(&ctx.dir(Upstream::Embed))?
        };
        let meta = xmc_cluster::SearchMeta {
            method: xmc_cluster::model::METHOD.into(),
            format: xmc_cluster::model::FORMAT,
            xmc_version: env!("CARGO_PKG_VERSION").into(),
            search: search_settings(cfg),
            label_text: cfg.embed.text,
            template,
            fine_tuned,
            added_labels: 0,
        };
        let tree = xmc_cluster::load_tree(&ctx.dir(Upstream::Tree))?;
        SearchModel::new(meta, tree, &embeddings, data.labels.clone())?.save(out)?;
        recipes::copy_dataset(cfg, out)?;
        Ok(report)
    }

    fn predict_settings(&self, cfg: &ExperimentConfig) -> PredictSettings {
        PredictSettings { beam: cfg.search.beam, top_k: cfg.search.top_k }
    }

    fn describe(&self, cfg: &ExperimentConfig) -> Result<String> {
        Ok(format!(
            "multi-level cluster search: the sentence encoder ({}, {}) scores each record against the children of the \
             current tree nodes, level by level, beam {} (k = {} tree)",
            cfg.embed.encoder_dir,
            if cfg.contrastive.epochs > 0 {
                format!("fine-tuned {} epochs with an in-batch contrastive loss", cfg.contrastive.epochs)
            } else {
                "pretrained, not fine-tuned".to_string()
            },
            cfg.search.beam,
            cfg.tree.branching
        ))
    }
}

/// The search settings the folder keeps: the predict stage's new labels are not part of them.
fn search_settings(cfg: &ExperimentConfig) -> xmc_cluster::SearchConfig {
    xmc_cluster::SearchConfig { new_labels: None, ..cfg.search.clone() }
}

/// A loaded cluster-search folder with its encoder.
pub struct SearchRanker {
    pub model: SearchModel,
    encoder: SentenceEncoder,
}

impl Model for SearchRanker {
    fn method(&self) -> &'static str {
        ClusterSearch.name()
    }

    fn labels(&self) -> &LabelSet {
        &self.model.labels
    }

    fn template(&self) -> &InputTemplate {
        &self.model.meta.template
    }

    fn default_beam(&self) -> usize {
        self.model.meta.search.beam
    }

    fn codes(&self) -> Option<Vec<Vec<u32>>> {
        Some(self.model.index.tree.codes())
    }

    /// Mean cosine similarities, made positive as exp(s): the confidence is then a softmax of
    /// s / T.
    fn pools(&self, texts: &[&str], beam: usize, on_batch: &mut dyn FnMut(usize)) -> Result<Pools> {
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(SEARCH_CHUNK) {
            let queries = self.encoder.encode(chunk, self.model.meta.search.batch_size, |_| {})?;
            let hits = self.model.search(&queries, beam, beam);
            out.extend(hits.into_iter().map(|h| h.into_iter().map(|(l, s)| (l, s.exp())).collect::<Vec<_>>()));
            on_batch(chunk.len());
        }
        Ok(out)
    }

    fn add_labels(&mut self, paths: &[String]) -> Result<Vec<AddedLabel>> {
        let texts = self.model.texts_of(paths);
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = self.encoder.encode(&texts, self.model.meta.search.batch_size, |_| {})?;
        Ok(self.model.add_labels(paths, &vectors)?)
    }

    fn save_labels(&self, dir: &Path) -> Result<()> {
        Ok(self.model.save(dir)?)
    }
}
