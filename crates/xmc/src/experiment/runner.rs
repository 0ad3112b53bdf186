//! Runs an experiment's stages in order. Each stage writes `<run>/<stage>/` with its artifact, the
//! resolved config (`config.json`) and `stage.json` (fingerprint of its inputs). A stage whose
//! fingerprint matches the stored one is skipped; `force` and `from` rerun.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use super::config::ExperimentConfig;
use super::figures::{
    BrandFigures, CodesFigures, DataFigures, EmbedFigures, EvalFigures, Figures, PredictFigures, ReportFigures, TrainFigures, TreeFigures,
};
use super::stage::{ARTIFACT_VERSION, CONFIG_FILE, StageName, StageRecord};
use crate::fingerprint::{file_sha256, value_sha256};

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Rerun every stage.
    pub force: bool,
    /// Rerun this stage and every later one.
    pub from: Option<StageName>,
    /// Continue an interrupted training run from its last checkpoint.
    pub resume: bool,
    /// Rewrite the config's `eval.baseline` file with this run's figures instead of checking them.
    pub update_baseline: bool,
    /// Stop after this stage (`xmc train` stops after `train`).
    pub until: Option<StageName>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StageOutcome {
    Ran,
    UpToDate,
    /// The config's method does not read this stage's artifact ([`ExperimentConfig::needs_stage`]).
    NotNeeded,
}

#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_dir: PathBuf,
    pub stages: Vec<(StageName, StageOutcome)>,
    /// The baseline check's lines (`eval.baseline`), when the config names one.
    pub baseline: Vec<String>,
}

/// What a stage computes before deciding whether to run: its fingerprint and the inputs behind it.
struct Plan {
    fingerprint: String,
    inputs: BTreeMap<String, String>,
}

impl Plan {
    fn new(stage: StageName, config: &impl serde::Serialize, inputs: BTreeMap<String, String>) -> Self {
        Plan::with_code_version(stage, stage.code_version(), config, inputs)
    }

    /// The fingerprint covers the stage, the artifact format, the stage's code version, its
    /// config and its inputs' hashes.
    fn with_code_version(stage: StageName, code_version: u32, config: &impl serde::Serialize, mut inputs: BTreeMap<String, String>) -> Self {
        inputs.insert("config".into(), value_sha256(config));
        inputs.insert("code_version".into(), code_version.to_string());
        let fingerprint = value_sha256(&(stage, ARTIFACT_VERSION, &inputs));
        Plan { fingerprint, inputs }
    }
}

pub fn run_experiment(cfg: &ExperimentConfig, opts: &RunOptions) -> Result<RunSummary> {
    let run_dir = cfg.run_dir();
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let mut summary = RunSummary { run_dir: run_dir.clone(), stages: Vec::new(), baseline: Vec::new() };
    let mut fingerprints: BTreeMap<StageName, String> = BTreeMap::new();
    for stage in StageName::ALL {
        let forced = opts.force || opts.from.is_some_and(|from| stage >= from);
        if !cfg.needs_stage(stage) {
            summary.stages.push((stage, StageOutcome::NotNeeded));
            continue;
        }
        let ctx = StageContext { cfg, run_dir: &run_dir, forced, upstream: &fingerprints };
        let (outcome, fingerprint) = match stage {
            StageName::Data => run_data(&ctx)?,
            StageName::Embed => run_embed(&ctx)?,
            StageName::Tree => run_tree(&ctx)?,
            StageName::Codes => run_codes(&ctx)?,
            StageName::Train => run_train(&ctx, opts.resume)?,
            StageName::Predict => run_predict(&ctx)?,
            StageName::Brand => run_brand(&ctx)?,
            StageName::Eval => run_eval(&ctx)?,
            StageName::Report => run_report(&ctx)?,
        };
        fingerprints.insert(stage, fingerprint);
        summary.stages.push((stage, outcome));
        if opts.until == Some(stage) {
            return Ok(summary);
        }
    }
    if let Some(path) = &cfg.eval.baseline {
        summary.baseline = check_baseline(cfg, path, &run_dir, opts.update_baseline)?;
    } else if opts.update_baseline {
        anyhow::bail!("--update-baseline: the config has no `eval.baseline` file to write");
    }
    Ok(summary)
}

/// What every stage runner gets: the config, where the run lives, whether to rerun regardless,
/// and the fingerprints of the stages before it.
struct StageContext<'a> {
    cfg: &'a ExperimentConfig,
    run_dir: &'a Path,
    forced: bool,
    upstream: &'a BTreeMap<StageName, String>,
}

impl StageContext<'_> {
    fn dir(&self, stage: StageName) -> PathBuf {
        self.run_dir.join(stage.as_str())
    }

    fn upstream(&self, stage: StageName) -> (String, String) {
        (format!("{stage}_stage"), self.upstream.get(&stage).cloned().expect("stages run in order"))
    }

    /// Skips the stage if its stored fingerprint matches, otherwise runs `work` and commits it.
    fn run(
        &self,
        stage: StageName,
        config: &impl serde::Serialize,
        inputs: BTreeMap<String, String>,
        work: impl FnOnce(&Path) -> Result<Figures>,
    ) -> Result<(StageOutcome, String)> {
        self.run_keeping(stage, config, inputs, false, work)
    }

    /// [`StageContext::run`], optionally keeping what an interrupted run left in `<stage>.partial`.
    fn run_keeping(
        &self,
        stage: StageName,
        config: &impl serde::Serialize,
        inputs: BTreeMap<String, String>,
        keep_partial: bool,
        work: impl FnOnce(&Path) -> Result<Figures>,
    ) -> Result<(StageOutcome, String)> {
        let plan = Plan::new(stage, config, inputs);
        let fingerprint = plan.fingerprint.clone();
        let dir = self.dir(stage);
        if !self.forced && up_to_date(&dir, &plan) {
            tracing::info!("{stage}: inputs unchanged, skipped ({})", dir.display());
            return Ok((StageOutcome::UpToDate, fingerprint));
        }
        tracing::info!("{stage}: running");
        commit_stage(self.run_dir, stage, plan, config, keep_partial, work)?;
        Ok((StageOutcome::Ran, fingerprint))
    }
}

/// Runs `work` into a fresh `<stage>.partial` folder and swaps it in only when it succeeded, so a
/// failed or killed stage never leaves a half-written folder that looks finished.
fn commit_stage(
    run_dir: &Path,
    stage: StageName,
    plan: Plan,
    config: &impl serde::Serialize,
    keep_partial: bool,
    work: impl FnOnce(&Path) -> Result<Figures>,
) -> Result<()> {
    let final_dir = run_dir.join(stage.as_str());
    let partial = run_dir.join(format!("{stage}.partial"));
    if partial.exists() && !keep_partial {
        std::fs::remove_dir_all(&partial).with_context(|| format!("removing {}", partial.display()))?;
    }
    std::fs::create_dir_all(&partial)?;
    let started = Instant::now();
    let report = work(&partial)?;
    std::fs::write(partial.join(CONFIG_FILE), serde_json::to_string_pretty(config)? + "\n")?;
    StageRecord {
        stage,
        artifact_version: ARTIFACT_VERSION,
        xmc_version: env!("CARGO_PKG_VERSION").into(),
        fingerprint: plan.fingerprint,
        inputs: plan.inputs,
        seconds: started.elapsed().as_secs_f64(),
        report,
    }
    .save(&partial)?;
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).with_context(|| format!("removing {}", final_dir.display()))?;
    }
    std::fs::rename(&partial, &final_dir).with_context(|| format!("moving {} into place", partial.display()))?;
    Ok(())
}

fn up_to_date(dir: &Path, plan: &Plan) -> bool {
    StageRecord::load(dir).is_some_and(|r| r.fingerprint == plan.fingerprint)
}

fn run_data(ctx: &StageContext) -> Result<(StageOutcome, String)> {
    let cfg = ctx.cfg;
    let desc = xmc_data::DatasetDescriptor::load(&cfg.data.dataset)
        .with_context(|| format!("loading dataset descriptor {}", cfg.data.dataset.display()))?;
    let file = desc.resolve_path()?;
    let file_hash = file_sha256(&file).with_context(|| format!("dataset {}", desc.name))?;
    let config = serde_json::json!({ "data": cfg.data, "dataset": desc });
    ctx.run(StageName::Data, &config, BTreeMap::from([("dataset_file".to_string(), file_hash)]), |out| {
        tracing::info!("data: preparing {} from {}", desc.name, file.display());
        let stats = if cfg.data.streaming {
            crate::cli::prepare_streaming_with_progress(&desc, &cfg.data, out)?
        } else {
            let prepared = xmc_data::prepare(&desc, &cfg.data)?;
            prepared.save(out)?;
            prepared.stats
        };
        eprint!("{}", stats.summary());
        Ok(data_figures(&stats))
    })
}

fn run_embed(ctx: &StageContext) -> Result<(StageOutcome, String)> {
    let cfg = &ctx.cfg.embed;
    let mut inputs = BTreeMap::from([ctx.upstream(StageName::Data)]);
    let encoder_dir = PathBuf::from(&cfg.encoder_dir);
    if cfg.kind.uses_sentence_encoder() {
        let weights = encoder_dir.join(xmc_model::SentenceEncoder::WEIGHTS);
        let hash = file_sha256(&weights).with_context(|| {
            format!("the sentence encoder is missing from {} (run `cargo xtask fetch-models`)", encoder_dir.display())
        })?;
        inputs.insert("encoder_weights".into(), hash);
    }
    ctx.run(StageName::Embed, cfg, inputs, |out| {
        let data = xmc_data::PreparedData::load(&ctx.dir(StageName::Data))?;
        let encoder = if cfg.kind.uses_sentence_encoder() {
            Some(xmc_model::SentenceEncoder::load(&encoder_dir, &xmc_model::inference_device())?)
        } else {
            None
        };
        let bar = progress_bar(data.labels.len() as u64, "embedding labels");
        let started = Instant::now();
        let embeddings = xmc_cluster::embed_labels(&data, cfg, encoder.as_ref(), |n| bar.inc(n as u64))?;
        bar.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        embeddings.save(out)?;
        tracing::info!("embed: {} labels, {} dimensions, {:.1} labels/s", embeddings.labels, embeddings.dim, embeddings.labels as f64 / seconds);
        Ok(Figures::Embed(EmbedFigures { dim: embeddings.dim, labels_per_s: embeddings.labels as f64 / seconds }))
    })
}

fn run_tree(ctx: &StageContext) -> Result<(StageOutcome, String)> {
    let cfg = &ctx.cfg.tree;
    let upstream = match cfg.kind {
        xmc_cluster::TreeKind::Kmeans => ctx.upstream(StageName::Embed),
        xmc_cluster::TreeKind::Taxonomy => ctx.upstream(StageName::Data),
    };
    ctx.run(StageName::Tree, cfg, BTreeMap::from([upstream]), |out| {
        let started = Instant::now();
        let tree = match cfg.kind {
            xmc_cluster::TreeKind::Kmeans => xmc_cluster::build_tree(&xmc_cluster::LabelEmbeddings::load(&ctx.dir(StageName::Embed))?, cfg)?,
            xmc_cluster::TreeKind::Taxonomy => {
                let labels = xmc_data::LabelSet::load(&ctx.dir(StageName::Data))?;
                xmc_codes::LabelTree::from_taxonomy(&labels.labels.iter().map(|l| l.levels.clone()).collect::<Vec<_>>())?
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        xmc_cluster::save_tree(&tree, out)?;
        tracing::info!("tree: {} labels in {} internal nodes, built in {seconds:.2} s", tree.n_labels, tree.nodes.len());
        Ok(Figures::Tree(TreeFigures { internal_nodes: tree.nodes.len(), build_seconds: seconds }))
    })
}

fn run_codes(ctx: &StageContext) -> Result<(StageOutcome, String)> {
    let cfg = &ctx.cfg.codes;
    let inputs = BTreeMap::from([ctx.upstream(StageName::Data), ctx.upstream(StageName::Tree)]);
    ctx.run(StageName::Codes, cfg, inputs, |out| {
        let labels = xmc_data::LabelSet::load(&ctx.dir(StageName::Data))?;
        let tree = xmc_cluster::load_tree(&ctx.dir(StageName::Tree))?;
        let codes = xmc_codes::build_codes(&tree, &labels, cfg)?;
        codes.save(out)?;
        let s = &codes.stats;
        let c = &s.coherence;
        eprintln!(
            "codes: {} labels, code length mean {:.2} / max {}; taxonomy siblings sharing a code prefix: \
             length 1 {:.1}% (random tree {:.1}%), length 2 {:.1}% (random {:.1}%)",
            s.labels,
            s.mean_code_length,
            s.max_code_length,
            100.0 * c.prefix_1,
            100.0 * c.random_prefix_1,
            100.0 * c.prefix_2,
            100.0 * c.random_prefix_2
        );
        Ok(Figures::Codes(CodesFigures {
            mean_code_length: s.mean_code_length,
            max_code_length: s.max_code_length,
            coherence_1: c.prefix_1,
            coherence_2: c.prefix_2,
            random_coherence_1: c.random_prefix_1,
            random_coherence_2: c.random_prefix_2,
        }))
    })
}

/// The tokenizer kept with a generator's checkpoint, when the run resumes from it.
fn resumed_tokenizer(out: &Path, resuming: bool) -> Result<Option<xmc_model::TextTokenizer>> {
    let path = xmc_train::checkpoint_tokenizer(out);
    Ok(if resuming && path.is_file() { Some(xmc_model::TextTokenizer::load(&path)?) } else { None })
}

fn run_train(ctx: &StageContext, resume: bool) -> Result<(StageOutcome, String)> {
    let cfg = ctx.cfg;
    match cfg.method {
        super::config::Method::ClusterSearch => return run_search_setup(ctx, resume),
        super::config::Method::Xr => return run_xr_train(ctx, resume),
        super::config::Method::Fused => return run_fused_train(ctx, resume),
        super::config::Method::Generative => {}
    }
    let hierarchical = cfg.model.mode == xmc_model::TargetMode::Hierarchical;
    let mut inputs = BTreeMap::from([ctx.upstream(StageName::Data)]);
    if hierarchical {
        inputs.extend([ctx.upstream(StageName::Codes)]);
    }
    if let Some(dir) = &cfg.model.init_from {
        inputs.insert("init_weights".into(), file_sha256(&Path::new(dir).join("model.safetensors"))?);
    }
    if cfg.model.encoder == xmc_model::EncoderKind::Bert {
        let weights = Path::new(&cfg.model.encoder_dir).join("model.safetensors");
        inputs.insert("bert_encoder_weights".into(), file_sha256(&weights).with_context(|| format!("the BERT encoder {}", weights.display()))?);
    }
    if let Some(path) = &cfg.model.tokenizer {
        inputs.insert("tokenizer".into(), file_sha256(Path::new(path))?);
    }
    let template = resolved_template(cfg)?;
    let config = serde_json::json!({ "model": cfg.model, "train": cfg.train, "template": template });
    ctx.run_keeping(StageName::Train, &config, inputs, resume, |out| {
        let data = xmc_data::PreparedData::load(&ctx.dir(StageName::Data))?;
        let codes = if hierarchical { Some(xmc_codes::LabelCodes::load(&ctx.dir(StageName::Codes))?.codes) } else { None };
        let resuming = resume && out.join("checkpoint/state.json").is_file();
        let task = xmc_train::Seq2SeqTask::build_with(&data, codes.as_deref(), &cfg.model, resumed_tokenizer(out, resuming)?)?;
        let outcome = xmc_train::train(&data, &task, &cfg.model, &cfg.train, &template, out, resuming)?;
        tracing::info!(
            "train: best validation accuracy {:.4} at epoch {} of {}; {:.2} steps/s; {} parameters",
            outcome.best_valid_accuracy,
            outcome.best_epoch,
            outcome.epochs,
            outcome.steps_per_s,
            outcome.parameters
        );
        std::fs::remove_dir_all(out.join("checkpoint")).ok();
        std::fs::copy(&cfg.data.dataset, out.join(crate::evaluate::DATASET_FILE))
            .with_context(|| format!("copying {} into the model folder", cfg.data.dataset.display()))?;
        let calibration = crate::calibration::calibrate_folder(out, &data)?;
        Ok(Figures::Train(
            TrainFigures {
                best_valid_accuracy: Some(outcome.best_valid_accuracy),
                best_epoch: Some(outcome.best_epoch),
                epochs: Some(outcome.epochs),
                steps_per_s: Some(outcome.steps_per_s),
                parameters: Some(outcome.parameters),
                train_seconds: Some(outcome.train_seconds),
                ..Default::default()
            }
            .with_calibration(&calibration),
        ))
    })
}

/// The train stage of a cluster-search run: the sentence encoder fine-tuned with the in-batch
/// contrastive loss (record text vs label text) into `encoder/`, or, with
/// `contrastive.epochs = 0`, the pretrained encoder as it is; then the model folder that
/// `xmc predict` loads: the tree stage's tree, the labels' vectors under that encoder.
fn run_search_setup(ctx: &StageContext, resume: bool) -> Result<(StageOutcome, String)> {
    let cfg = ctx.cfg;
    let weights = Path::new(&cfg.embed.encoder_dir).join(xmc_model::SentenceEncoder::WEIGHTS);
    let inputs = BTreeMap::from([
        ctx.upstream(StageName::Data),
        ctx.upstream(StageName::Embed),
        ctx.upstream(StageName::Tree),
        ("encoder_weights".to_string(), file_sha256(&weights)?),
    ]);
    let template = resolved_template(cfg)?;
    let search = xmc_cluster::SearchConfig { new_labels: None, ..cfg.search.clone() };
    let config = serde_json::json!({
        "method": cfg.method,
        "encoder_dir": cfg.embed.encoder_dir,
        "label_text": cfg.embed.text,
        "contrastive": cfg.contrastive,
        "search": search,
        "template": template,
    });
    ctx.run_keeping(StageName::Train, &config, inputs, resume, |out| {
        let fine_tuned = cfg.contrastive.epochs > 0;
        let data = xmc_data::PreparedData::load(&ctx.dir(StageName::Data))?;
        let encoder_dir = out.join(xmc_cluster::model::ENCODER_DIR);
        let mut report = TrainFigures { fine_tuned: Some(fine_tuned), ..Default::default() };
        if fine_tuned {
            let examples = |split| data.split(split).map(|r| (r.input.as_str(), r.label)).collect::<Vec<_>>();
            let label_texts = xmc_cluster::label_texts(&data.labels, cfg.embed.text);
            let outcome = xmc_train::finetune_encoder(
                Path::new(&cfg.embed.encoder_dir),
                &examples(xmc_data::Split::Train),
                &examples(xmc_data::Split::Valid),
                &label_texts,
                &cfg.contrastive,
                &encoder_dir,
                resume,
            )?;
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
            copy_encoder(Path::new(&cfg.embed.encoder_dir), &encoder_dir)?;
        }
        // The tree stays the one built from the pretrained embeddings; a fine-tuned encoder
        // re-embeds the labels, and the node vectors are recomputed from them.
        let embeddings = if fine_tuned {
            let encoder = xmc_model::SentenceEncoder::load(&encoder_dir, &xmc_model::inference_device())?;
            xmc_cluster::embed_labels(&data, &cfg.embed, Some(&encoder), |_| {})?
        } else {
            xmc_cluster::LabelEmbeddings::load(&ctx.dir(StageName::Embed))?
        };
        let meta = xmc_cluster::SearchMeta {
            method: xmc_cluster::model::METHOD.into(),
            format: xmc_cluster::model::FORMAT,
            xmc_version: env!("CARGO_PKG_VERSION").into(),
            search: search.clone(),
            label_text: cfg.embed.text,
            template: template.clone(),
            fine_tuned,
            added_labels: 0,
        };
        let tree = xmc_cluster::load_tree(&ctx.dir(StageName::Tree))?;
        xmc_cluster::SearchModel::new(meta, tree, &embeddings, data.labels.clone())?.save(out)?;
        std::fs::copy(&cfg.data.dataset, out.join(crate::evaluate::DATASET_FILE))
            .with_context(|| format!("copying {} into the model folder", cfg.data.dataset.display()))?;
        Ok(Figures::Train(report.with_calibration(&crate::calibration::calibrate_folder(out, &data)?)))
    })
}

/// `predict/new_labels.json`: the labels of `search.new_labels`, with the ids and codes they got.
const NEW_LABELS_FILE: &str = "new_labels.json";

fn run_predict(ctx: &StageContext) -> Result<(StageOutcome, String)> {
    use super::config::Method;
    let (beam, top_k) = match ctx.cfg.method {
        Method::ClusterSearch => (ctx.cfg.search.beam, ctx.cfg.search.top_k),
        Method::Generative => (ctx.cfg.model.beam_width, ctx.cfg.model.top_k),
        Method::Xr => (ctx.cfg.ranker.beam, ctx.cfg.ranker.top_k),
        Method::Fused => return run_fused_predict(ctx),
    };
    let config = serde_json::json!({ "beam_width": beam, "top_k": top_k, "confidence": "calibrated" });
    let mut inputs = BTreeMap::from([ctx.upstream(StageName::Data), ctx.upstream(StageName::Train)]);
    let new_labels = ctx.cfg.search.new_labels.as_ref().filter(|_| ctx.cfg.method == Method::ClusterSearch);
    if let Some(file) = new_labels {
        inputs.insert("new_labels".into(), file_sha256(file).with_context(|| format!("the new-labels file {}", file.display()))?);
    }
    ctx.run(StageName::Predict, &config, inputs, |out| {
        let data = xmc_data::PreparedData::load(&ctx.dir(StageName::Data))?;
        let mut predictor = crate::predictor::Predictor::load(&ctx.dir(StageName::Train))?;
        // Leaves added after training: placed by nearest centroid, predictable at once.
        if let Some(file) = new_labels {
            let paths = xmc_cluster::read_new_labels(file, predictor.labels())?;
            let added = predictor.add_labels(&paths)?;
            std::fs::write(out.join(NEW_LABELS_FILE), serde_json::to_string_pretty(&added)? + "\n")?;
            eprintln!("predict: {} new labels placed in the tree", added.len());
        }
        let test: Vec<&xmc_data::PreparedRecord> = data.split(xmc_data::Split::Test).collect();
        let texts: Vec<&str> = test.iter().map(|r| r.input.as_str()).collect();
        let bar = progress_bar(texts.len() as u64, "predicting");
        let started = Instant::now();
        let predictions = predictor.predict_texts(&texts, beam, top_k, |n| bar.inc(n as u64))?;
        let seconds = started.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let rows = test_rows(&test, &predictions, predictor.labels(), top_k);
        crate::predict::write_predictions(&out.join("predictions.jsonl"), &rows)?;
        let correct = rows.iter().filter(|r| r.correct == Some(true)).count();
        let accuracy = correct as f64 / rows.len().max(1) as f64;
        eprintln!("predict: test accuracy (top 1) {accuracy:.4} on {} records, {:.0} records/s", rows.len(), rows.len() as f64 / seconds);
        Ok(Figures::Predict(PredictFigures { test_accuracy: accuracy, records_per_s: rows.len() as f64 / seconds }))
    })
}

/// Each component's own predictions of the test split in a fused run, beside the fused ones.
const COMPONENTS_DIR: &str = "components";

/// The predict stage of a fused run: the fused ranking, and what the ranker and the generator
/// would have answered alone (`components/*.jsonl`, for the report's comparison).
fn run_fused_predict(ctx: &StageContext) -> Result<(StageOutcome, String)> {
    let top_k = ctx.cfg.ranker.top_k;
    let config = serde_json::json!({ "top_k": top_k, "confidence": "calibrated" });
    let inputs = BTreeMap::from([ctx.upstream(StageName::Data), ctx.upstream(StageName::Train)]);
    ctx.run(StageName::Predict, &config, inputs, |out| {
        let data = xmc_data::PreparedData::load(&ctx.dir(StageName::Data))?;
        let model = crate::fused::FusedModel::load(&ctx.dir(StageName::Train))?;
        let calibration = crate::calibration::Calibration::load(&ctx.dir(StageName::Train))?;
        let test: Vec<&xmc_data::PreparedRecord> = data.split(xmc_data::Split::Test).collect();
        let texts: Vec<&str> = test.iter().map(|r| r.input.as_str()).collect();
        let bar = progress_bar(texts.len() as u64, "predicting (fused)");
        let started = Instant::now();
        let skip = model.fusion.skip.as_ref();
        let mut cands = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(256) {
            cands.extend(model.parts.candidates(&model.fusion.config, chunk, skip)?);
            bar.inc(chunk.len() as u64);
        }
        // Calibrated over every candidate, as `xmc predict` does through the Predictor.
        let fused: Vec<Vec<(u32, f32)>> = cands.iter().map(|c| calibration.apply(&model.rank(c, usize::MAX), top_k)).collect();
        let seconds = started.elapsed().as_secs_f64();
        bar.finish_and_clear();
        // The components' own answers on every record (the cascade ran the generator on some).
        if skip.is_some() && model.parts.generator.is_some() {
            let bar = progress_bar(texts.len() as u64, "predicting (each component alone)");
            cands.clear();
            for chunk in texts.chunks(256) {
                cands.extend(model.parts.candidates(&model.fusion.config, chunk, None)?);
                bar.inc(chunk.len() as u64);
            }
            bar.finish_and_clear();
        }
        let labels = &model.parts.xr.labels;
        let rows_of = |ranked: &[Vec<(u32, f32)>]| test_rows(&test, ranked, labels, top_k);
        let rows = rows_of(&fused);
        crate::predict::write_predictions(&out.join("predictions.jsonl"), &rows)?;
        let components = out.join(COMPONENTS_DIR);
        let ranker: Vec<Vec<(u32, f32)>> = cands.iter().map(|c| c.ranker_top.clone()).collect();
        crate::predict::write_predictions(&components.join("ranker.jsonl"), &rows_of(&ranker))?;
        if model.parts.generator.is_some() && cands.iter().any(|c| !c.generator_top.is_empty()) {
            let generator: Vec<Vec<(u32, f32)>> = cands.iter().map(|c| c.generator_top.clone()).collect();
            crate::predict::write_predictions(&components.join("generator.jsonl"), &rows_of(&generator))?;
        }
        let correct = rows.iter().filter(|r| r.correct == Some(true)).count();
        let accuracy = correct as f64 / rows.len().max(1) as f64;
        eprintln!("predict (fused): test accuracy (top 1) {accuracy:.4} on {} records, {:.0} records/s", rows.len(), rows.len() as f64 / seconds);
        Ok(Figures::Predict(PredictFigures { test_accuracy: accuracy, records_per_s: rows.len() as f64 / seconds }))
    })
}

/// The report's comparison of a fused run's components: accuracy overall and by the true
/// label's training frequency, for the ranker alone, the generator alone and the fusion.
fn components_section(ctx: &StageContext) -> Result<Option<(String, String)>> {
    let dir = ctx.dir(StageName::Predict);
    if !dir.join(COMPONENTS_DIR).is_dir() {
        return Ok(None);
    }
    let labels = xmc_data::LabelSet::load(&ctx.dir(StageName::Data))?;
    let cfg = xmc_eval::EvalConfig { bootstrap: 0, ..Default::default() };
    let mut table = String::from("| predictions | accuracy | macro-F1 | tail accuracy |");
    let buckets: Vec<String> = xmc_eval::metrics::BUCKETS.iter().map(|b| b.0.to_string()).collect();
    for b in &buckets {
        table.push_str(&format!(" {b} |"));
    }
    table.push_str(&format!("\n|---|---|---|---|{}\n", "---|".repeat(buckets.len())));
    for (name, file) in [
        ("ranker alone", dir.join(COMPONENTS_DIR).join("ranker.jsonl")),
        ("generator alone", dir.join(COMPONENTS_DIR).join("generator.jsonl")),
        ("fused", dir.join("predictions.jsonl")),
    ] {
        if !file.is_file() {
            continue;
        }
        let m = crate::evaluate::score_rows(&labels, &crate::evaluate::read_predictions(&file)?, None, &cfg)?;
        let pct = |x: Option<f64>| x.map_or("-".into(), |a| format!("{:.1}", 100.0 * a));
        table.push_str(&format!("| {name} | {} | {} | {} |", pct(Some(m.accuracy)), pct(Some(m.leaf.macro_avg.f1)), pct(m.tail_accuracy)));
        for b in &m.buckets {
            table.push_str(&format!(" {} ({}) |", pct(b.accuracy), b.records));
        }
        table.push('\n');
    }
    Ok(Some(("Components alone and fused (test split; buckets: training records of the true label, test records in parentheses)".into(), table)))
}

/// Prediction rows of the test records: each record's ranked labels (at most `top_k`) and its truth.
fn test_rows(test: &[&xmc_data::PreparedRecord], ranked: &[Vec<(u32, f32)>], labels: &xmc_data::LabelSet, top_k: usize) -> Vec<crate::predict::PredictionRow> {
    test.iter()
        .zip(ranked)
        .map(|(r, ranked)| crate::predict::PredictionRow::from_ranked(&r.record.id, Some(r.label), &ranked[..ranked.len().min(top_k)], labels))
        .collect()
}

/// The train stage of an XR run: TF-IDF fitted on the training inputs (and, for dense
/// features, the sentence encoder, fine-tuned when `contrastive.epochs > 0` with the pairs
/// loss), then the ranker's node scorers over the tree stage's tree, and with the labels loss
/// the fine-tuned encoder's classifier; the model folder `xmc predict` loads.
fn run_xr_train(ctx: &StageContext, resume: bool) -> Result<(StageOutcome, String)> {
    let cfg = ctx.cfg;
    let needs_encoder = cfg.ranker.features.uses_dense() || classifier_wanted(cfg);
    let (inputs, template) = ranker_inputs(ctx, needs_encoder)?;
    let config = serde_json::json!({
        "method": "xr",
        "ranker": cfg.ranker,
        "template": template,
        "encoder_dir": needs_encoder.then_some(&cfg.embed.encoder_dir),
        "contrastive": needs_encoder.then_some(&cfg.contrastive),
    });
    ctx.run_keeping(StageName::Train, &config, inputs, resume, |out| {
        let data = xmc_data::PreparedData::load(&ctx.dir(StageName::Data))?;
        let trained = train_ranker_into(ctx, &data, &template, needs_encoder, out, resume)?;
        drop(trained.model);
        Ok(Figures::Train(trained.report.with_calibration(&crate::calibration::calibrate_folder(out, &data)?)))
    })
}

/// The encoder fine-tuned against label vectors brings its own classifier to rescore the
/// ranker's candidates.
fn classifier_wanted(cfg: &ExperimentConfig) -> bool {
    cfg.method == super::config::Method::Xr && cfg.contrastive.epochs > 0 && cfg.contrastive.loss == xmc_train::FineTuneLoss::Labels
}

/// What [`train_ranker_into`] leaves behind besides the folder.
struct RankerTrained {
    model: xmc_ranker::XrModel,
    report: TrainFigures,
}

/// The ranker's stage inputs (data, tree, and the encoder's weights when it is needed) and the
/// template.
fn ranker_inputs(ctx: &StageContext, needs_encoder: bool) -> Result<(BTreeMap<String, String>, xmc_data::InputTemplate)> {
    let cfg = ctx.cfg;
    let mut inputs = BTreeMap::from([ctx.upstream(StageName::Data), ctx.upstream(StageName::Tree)]);
    let encoder_dir = Path::new(&cfg.embed.encoder_dir);
    if needs_encoder {
        let weights = encoder_dir.join(xmc_model::SentenceEncoder::WEIGHTS);
        let hash = file_sha256(&weights).with_context(|| {
            format!("dense features and similarity need the sentence encoder in {} (run `cargo xtask fetch-models`)", encoder_dir.display())
        })?;
        inputs.insert("encoder_weights".into(), hash);
    }
    Ok((inputs, resolved_template(cfg)?))
}

/// Prepares the encoders (when needed: `out/encoder` for the dense block or the fused method's
/// similarity, `out/classifier-encoder` for the classifier), trains the ranker and saves it in
/// `out`, scores it on the validation split.
fn train_ranker_into(
    ctx: &StageContext,
    data: &xmc_data::PreparedData,
    template: &xmc_data::InputTemplate,
    needs_encoder: bool,
    out: &Path,
    resume: bool,
) -> Result<RankerTrained> {
    let cfg = ctx.cfg;
    let encoder_dir = Path::new(&cfg.embed.encoder_dir);
    let tree = xmc_cluster::load_tree(&ctx.dir(StageName::Tree))?;
    // The ensemble's further trees: the tree stage's recipe on the same label vectors, at the
    // branching factors asked for, each with its own k-means seed.
    let extra_trees = if cfg.ranker.ensemble.is_empty() {
        Vec::new()
    } else {
        let embeddings = xmc_cluster::LabelEmbeddings::load(&ctx.dir(StageName::Embed))?;
        let built = cfg.ranker.ensemble.iter().enumerate().map(|(i, &k)| {
            let seed = cfg.tree.seed.wrapping_add(i as u64 + 1);
            let kind = xmc_cluster::TreeKind::Kmeans;
            xmc_cluster::build_tree(&embeddings, &xmc_cluster::TreeConfig { kind, branching: k, seed, ..cfg.tree.clone() })
        });
        built.collect::<std::result::Result<Vec<_>, _>>()?
    };
    let split = |s| data.split(s).map(|r| (r.input.as_str(), r.label)).unzip::<_, _, Vec<&str>, Vec<u32>>();
    let (train_texts, train_labels) = split(xmc_data::Split::Train);
    let (valid_texts, valid_labels) = split(xmc_data::Split::Valid);
    let started = Instant::now();
    let mut report = TrainFigures::default();
    let wants_classifier = classifier_wanted(cfg);
    let finetune_into = |target: &Path, contrastive: &xmc_train::ContrastiveConfig, report: &mut TrainFigures| -> Result<()> {
        let examples = |s| data.split(s).map(|r| (r.input.as_str(), r.label)).collect::<Vec<_>>();
        let label_texts = xmc_cluster::label_texts(&data.labels, cfg.embed.text);
        let outcome = xmc_train::finetune_encoder(
            encoder_dir,
            &examples(xmc_data::Split::Train),
            &examples(xmc_data::Split::Valid),
            &label_texts,
            contrastive,
            target,
            resume,
        )?;
        eprintln!(
            "train (contrastive, loss {:?}): validation nearest-label accuracy {:.4} -> {:.4} (best epoch {} of {})",
            cfg.contrastive.loss, outcome.pretrained_valid_accuracy, outcome.best_valid_accuracy, outcome.best_epoch, outcome.epochs
        );
        report.encoder_valid_retrieval = Some(outcome.best_valid_accuracy);
        report.encoder_seconds = Some(report.encoder_seconds.unwrap_or(0.0) + outcome.train_seconds);
        Ok(())
    };
    let load = |dir: &Path| xmc_model::SentenceEncoder::load(dir, &xmc_model::inference_device());
    // `encoder/`: the dense block's encoder (and the fused method's similarity's), fine-tuned
    // when asked, except that a fine-tuning against label vectors is the classifier's alone:
    // beside it the dense block keeps the pretrained encoder (linear scorers trained on
    // embeddings by an encoder that has fitted the training records trust them too much,
    // measured in experiments/README.md).
    let encoder = if needs_encoder && (cfg.ranker.features.uses_dense() || !wants_classifier) {
        let target = out.join(xmc_ranker::ENCODER_DIR);
        if cfg.contrastive.epochs > 0 && !wants_classifier {
            finetune_into(&target, &cfg.contrastive, &mut report)?;
        } else {
            copy_encoder(encoder_dir, &target)?;
        }
        Some(load(&target)?)
    } else {
        None
    };
    // `classifier-encoder/` (and `classifier-encoder-2/`, ... for further members): the encoder
    // fine-tuned against label vectors, whose classifier rescores the ranker's candidates; each
    // member with its own seed.
    let classifier_encoders = if wants_classifier {
        (0..cfg.contrastive.members)
            .map(|m| {
                let target = out.join(xmc_ranker::classifier_member_dir(m));
                let contrastive = xmc_train::ContrastiveConfig { seed: cfg.contrastive.seed.wrapping_add(m as u64), ..cfg.contrastive.clone() };
                finetune_into(&target, &contrastive, &mut report)?;
                Ok(load(&target)?)
            })
            .collect::<Result<Vec<_>>>()?
    } else {
        Vec::new()
    };
    let embed = |encoder: Option<&xmc_model::SentenceEncoder>, texts: &[&str], what: &'static str| -> Result<Option<Vec<Vec<f32>>>> {
        let Some(e) = encoder else { return Ok(None) };
        let bar = progress_bar(texts.len() as u64, what);
        let v = e.encode(texts, 64, |n| bar.inc(n as u64))?;
        bar.finish_and_clear();
        Ok(Some(v))
    };
    let dense_encoder = encoder.as_ref().filter(|_| cfg.ranker.features.uses_dense());
    let train_dense = embed(dense_encoder, &train_texts, "embedding training records")?;
    let bar = progress_bar(tree.nodes.len() as u64 + extra_trees.iter().map(|t| t.nodes.len() as u64).sum::<u64>(), "training node scorers");
    let training = xmc_ranker::TrainingData { texts: &train_texts, labels: &train_labels, dense: train_dense.as_deref() };
    let (mut model, summary) = xmc_ranker::XrModel::fit(&training, &tree, &extra_trees, &data.labels, &cfg.ranker, template, |n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    let train_seconds = started.elapsed().as_secs_f64();
    std::fs::copy(&cfg.data.dataset, out.join(crate::evaluate::DATASET_FILE))
        .with_context(|| format!("copying {} into the model folder", cfg.data.dataset.display()))?;
    let valid_dense = embed(dense_encoder, &valid_texts, "embedding validation records")?;
    // The members' embeddings concatenated, as their label vectors (over the number of members,
    // so that a logit is the members' mean).
    let valid_for_classifier = if classifier_encoders.is_empty() {
        None
    } else {
        let bar = progress_bar((valid_texts.len() * classifier_encoders.len()) as u64, "embedding validation records (classifier)");
        let joined = crate::predictor::embed_concatenated(&classifier_encoders, &valid_texts, |n| bar.inc(n as u64))?;
        bar.finish_and_clear();
        Some(joined)
    };
    let xv = model.features(&valid_texts, valid_dense.as_deref())?;
    if let Some(embeddings) = valid_for_classifier.as_deref() {
        let mut vectors: Vec<Vec<f32>> = vec![Vec::new(); data.labels.len()];
        let members = classifier_encoders.len();
        for m in 0..members {
            let path = out.join(xmc_ranker::classifier_member_dir(m)).join(xmc_train::LABEL_VECTORS);
            let member: Vec<Vec<f32>> = serde_json::from_slice(&std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?)
                .with_context(|| format!("reading {}", path.display()))?;
            if member.len() != vectors.len() {
                anyhow::bail!("{}: {} label vectors for {} labels", path.display(), member.len(), vectors.len());
            }
            for (row, v) in vectors.iter_mut().zip(member) {
                row.extend(v.into_iter().map(|x| x / members as f32));
            }
            std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
        let classifier = xmc_ranker::EncoderClassifier::new(cfg.contrastive.temperature as f32, vectors);
        let (classifier, narrow) = model.fit_classifier(classifier, &xv, embeddings, &valid_labels, cfg.ranker.classifier_candidates);
        let tail = |a: Option<f64>| a.map_or("-".into(), |a| format!("{a:.4}"));
        if let Some(narrow) = narrow {
            eprintln!(
                "train (xr): the classifier's own top {} labels beside the ranker's candidates {} (cross-fitted validation accuracy / tail \
                 accuracy: {:.4} / {} over the ranker's candidates alone)",
                cfg.ranker.classifier_candidates,
                if classifier.own_candidates > 0 { "kept" } else { "not kept" },
                narrow.cross_fitted_accuracy,
                tail(narrow.cross_fitted_tail_accuracy)
            );
        }
        eprintln!(
            "train (xr): encoder classifier weight {:.2}, prior weight {:.1} (validation accuracy / tail accuracy: ranker {:.4} / {}, \
             cross-fitted with the classifier {:.4} / {})",
            classifier.weight,
            classifier.prior_weight,
            classifier.fit.ranker_accuracy,
            tail(classifier.fit.ranker_tail_accuracy),
            classifier.fit.cross_fitted_accuracy,
            tail(classifier.fit.cross_fitted_tail_accuracy)
        );
        match classifier.skip {
            Some(skip) => eprintln!(
                "train (xr): the classifier is skipped where the ranker's {:?} is at least {:.4}: {:.1}% of validation records",
                skip.gate,
                skip.threshold,
                100.0 * skip.skipped
            ),
            None if classifier.weight > 0.0 => eprintln!("train (xr): the classifier is consulted on every record"),
            None => {}
        }
        model.classifier = Some(classifier);
    }
    model.save(out)?;
    let pools = model.predict(&xv, None, model.pool_size(5));
    let ranked: Vec<Vec<u32>> = model
        .rescore(pools, &xv, |i| valid_for_classifier.as_ref().map(|v| v[i].as_slice()), 5)
        .into_iter()
        .map(|p| p.into_iter().map(|(l, _)| l).collect())
        .collect();
    let valid = valid_metrics(data, &ranked, &valid_labels);
    eprintln!(
        "train (xr): {} features, {} weights kept ({} dropped), {} hard-negative rows; {train_seconds:.1} s; \
         validation accuracy {:.4}, macro-F1 {:.4}, tail accuracy {}",
        model.meta.layout.dim(),
        summary.weights_kept,
        summary.weights_dropped,
        summary.beam_negative_rows,
        valid.accuracy,
        valid.leaf.macro_avg.f1,
        valid.tail_accuracy.map_or("-".into(), |a| format!("{a:.4}"))
    );
    report.best_valid_accuracy = Some(valid.accuracy);
    report.valid_macro_f1 = Some(valid.leaf.macro_avg.f1);
    report.valid_tail_accuracy = valid.tail_accuracy;
    report.train_seconds = Some(train_seconds);
    report.features = Some(model.meta.layout.dim());
    report.weights = Some(summary.weights_kept);
    report.beam_negative_rows = Some(summary.beam_negative_rows);
    Ok(RankerTrained { model, report })
}

/// Validation metrics (no bootstrap) of ranked label lists.
fn valid_metrics(data: &xmc_data::PreparedData, ranked: &[Vec<u32>], truths: &[u32]) -> xmc_eval::Metrics {
    let scored: Vec<xmc_eval::Scored> =
        ranked.iter().zip(truths).map(|(r, &truth)| xmc_eval::Scored { truth, ranked: r.clone() }).collect();
    xmc_eval::evaluate(&data.labels, &scored, None, &xmc_eval::EvalConfig { bootstrap: 0, ..Default::default() })
}

/// The train stage of a fused run: the ranker (as in `xr`), the T5 generator over the codes
/// (into `generator/`), then the combination fitted on the validation split (`fusion.json`).
fn run_fused_train(ctx: &StageContext, resume: bool) -> Result<(StageOutcome, String)> {
    let cfg = ctx.cfg;
    let fusion = &cfg.fusion;
    let needs_encoder = cfg.ranker.features.uses_dense() || fusion.similarity;
    let (mut inputs, template) = ranker_inputs(ctx, needs_encoder)?;
    if fusion.generator {
        inputs.extend([ctx.upstream(StageName::Codes)]);
    }
    let config = serde_json::json!({
        "method": "fused",
        "ranker": cfg.ranker,
        "fusion": fusion,
        "template": template,
        "encoder_dir": needs_encoder.then_some(&cfg.embed.encoder_dir),
        "contrastive": needs_encoder.then_some(&cfg.contrastive),
        "model": fusion.generator.then_some(&cfg.model),
        "train": fusion.generator.then_some(&cfg.train),
    });
    ctx.run_keeping(StageName::Train, &config, inputs, resume, |out| {
        let data = xmc_data::PreparedData::load(&ctx.dir(StageName::Data))?;
        let ranker = train_ranker_into(ctx, &data, &template, needs_encoder, out, resume)?;
        let mut report = ranker.report;
        let started = Instant::now();
        if fusion.generator {
            if cfg.model.mode != xmc_model::TargetMode::Hierarchical {
                anyhow::bail!("the fused method scores candidates by their codes: set `model.mode = \"hierarchical\"`");
            }
            let codes = xmc_codes::LabelCodes::load(&ctx.dir(StageName::Codes))?.codes;
            let dir = out.join(crate::fused::GENERATOR_DIR);
            let resuming = resume && dir.join("checkpoint/state.json").is_file();
            let task = xmc_train::Seq2SeqTask::build_with(&data, Some(&codes), &cfg.model, resumed_tokenizer(&dir, resuming)?)?;
            let outcome = xmc_train::train(&data, &task, &cfg.model, &cfg.train, &template, &dir, resuming)?;
            std::fs::remove_dir_all(dir.join("checkpoint")).ok();
            eprintln!("train (generator): best validation accuracy {:.4} at epoch {} of {}", outcome.best_valid_accuracy, outcome.best_epoch, outcome.epochs);
            report.generator_valid_accuracy = Some(outcome.best_valid_accuracy);
            report.generator_seconds = Some(outcome.train_seconds);
        }
        let parts = crate::fused::FusedParts::load(out, fusion)?;
        drop(ranker.model);
        let (model, cands, truths) = crate::fused::fit_fusion(&parts, fusion, &data)?;
        std::fs::write(out.join(crate::fused::FUSION_FILE), serde_json::to_string_pretty(&model)? + "\n")?;
        let top = |f: &dyn Fn(&crate::fused::Candidates) -> Vec<u32>| cands.iter().map(f).collect::<Vec<_>>();
        let fused = valid_metrics(&data, &top(&|c| crate::fused::rank_cascaded(&model, c, 5).into_iter().map(|(l, _)| l).collect()), &truths);
        let recall = cands.iter().zip(&truths).filter(|(c, t)| c.labels.contains(t)).count() as f64 / truths.len().max(1) as f64;
        eprintln!(
            "train (fusion): weights {:?} over {:?}{}; validation: candidates hold the truth for {recall:.4}; cross-fitted accuracy {:.4} \
             vs the ranker's score alone {:.4}; fused accuracy {:.4} (fitted on these records), macro-F1 {:.4}, tail {}; {:.1} s",
            model.weights,
            model.features,
            if model.ranker_only { " (the ranker's score alone: the combination did not beat it on held-out halves)" } else { "" },
            model.cross_fitted_accuracy.unwrap_or(f64::NAN),
            model.ranker_accuracy.unwrap_or(f64::NAN),
            fused.accuracy,
            fused.leaf.macro_avg.f1,
            fused.tail_accuracy.map_or("-".into(), |a| format!("{a:.4}")),
            started.elapsed().as_secs_f64()
        );
        match model.skip {
            Some(skip) => eprintln!(
                "train (fusion): the generator is skipped where the ranker's {:?} is at least {:.4}: {:.1}% of validation records",
                skip.gate,
                skip.threshold,
                100.0 * skip.skipped
            ),
            None => eprintln!("train (fusion): the generator is run on every record"),
        }
        report.fused_valid_accuracy_in_sample = Some(fused.accuracy);
        report.candidate_recall = Some(recall);
        report.fusion_cross_fitted_accuracy = model.cross_fitted_accuracy;
        report.fusion_ranker_only = Some(model.ranker_only);
        report.train_seconds = Some(report.train_seconds.unwrap_or(0.0) + started.elapsed().as_secs_f64());
        Ok(Figures::Train(report.with_calibration(&crate::calibration::calibrate_folder(out, &data)?)))
    })
}

/// The template the data stage rendered the inputs with (config, else descriptor, else default).
fn resolved_template(cfg: &ExperimentConfig) -> Result<xmc_data::InputTemplate> {
    let desc = xmc_data::DatasetDescriptor::load(&cfg.data.dataset)
        .with_context(|| format!("loading dataset descriptor {}", cfg.data.dataset.display()))?;
    Ok(cfg.data.template_for(&desc))
}

/// Puts the pretrained sentence encoder's files in the model folder (a hard link where the file
/// system allows, a copy otherwise), so the folder predicts on its own.
fn copy_encoder(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    use xmc_model::SentenceEncoder as E;
    for file in [E::WEIGHTS, E::CONFIG, E::TOKENIZER] {
        let (src, dst) = (from.join(file), to.join(file));
        if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst).with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}

/// The second target: the product's brand (or manufacturer) from its title and description.
fn run_brand(ctx: &StageContext) -> Result<(StageOutcome, String)> {
    // No settings: what decides its output is the data and the stage's code version.
    ctx.run(StageName::Brand, &serde_json::json!({}), BTreeMap::from([ctx.upstream(StageName::Data)]), |out| {
        let data = xmc_data::PreparedData::load(&ctx.dir(StageName::Data))?;
        let m = xmc_brand::train_and_evaluate(&data);
        m.save(&out.join(xmc_brand::METRICS_FILE))?;
        eprintln!(
            "brand: accuracy {:.4}, macro-F1 {:.4}, weighted F1 {:.4} on {} test records ({} brands in training)",
            m.accuracy, m.scores.macro_avg.f1, m.scores.weighted_avg.f1, m.records, m.brands_in_training
        );
        Ok(Figures::Brand(BrandFigures { accuracy: m.accuracy, macro_f1: m.scores.macro_avg.f1, weighted_f1: m.scores.weighted_avg.f1 }))
    })
}

fn brand_section(ctx: &StageContext) -> Option<(String, String)> {
    let m = xmc_brand::BrandMetrics::load(&ctx.dir(StageName::Brand).join(xmc_brand::METRICS_FILE))?;
    let pct = |x: f64| format!("{:.1}", 100.0 * x);
    let body = format!(
        "The brand most often seen in training with the title's first 1-3 words (longest seen prefix), else the title's first word as a new brand; {} brands seen in training (brand, else manufacturer; an empty one is the class `{}`).\n\n\
         | metric | value |\n|---|---|\n| accuracy | {} |\n| macro F1 | {} |\n| micro F1 | {} |\n| weighted F1 | {} |\n\
         | accuracy on records with a brand | {} |\n| test records without a brand | {} |\n| test records with a brand unseen in training (found) | {} ({}) |\n\
         | titles starting with an unseen word (first word right) | {} ({}) |\n| prediction speed | {:.0} records/s |",
        m.brands_in_training,
        xmc_brand::NO_BRAND,
        pct(m.accuracy),
        pct(m.scores.macro_avg.f1),
        pct(m.scores.micro_avg.f1),
        pct(m.scores.weighted_avg.f1),
        m.known_brand_accuracy.map_or("-".into(), pct),
        m.no_brand_records,
        m.unseen_brand_records,
        m.unseen_brand_found,
        m.first_word_records,
        m.first_word_accuracy.map_or("-".into(), pct),
        m.records_per_s
    );
    Some(("Brand (second target)".into(), body))
}

fn run_eval(ctx: &StageContext) -> Result<(StageOutcome, String)> {
    let cfg = ctx.cfg;
    let hierarchical = cfg.model.mode == xmc_model::TargetMode::Hierarchical || cfg.method != super::config::Method::Generative;
    let eval_cfg = xmc_eval::EvalConfig { baseline: None, ..cfg.eval.clone() };
    let mut inputs = BTreeMap::from([ctx.upstream(StageName::Data), ctx.upstream(StageName::Predict)]);
    if hierarchical {
        inputs.extend([ctx.upstream(StageName::Codes)]);
    }
    ctx.run(StageName::Eval, &eval_cfg, inputs, |out| {
        let mut labels = xmc_data::LabelSet::load(&ctx.dir(StageName::Data))?;
        let rows = crate::evaluate::read_predictions(&ctx.dir(StageName::Predict).join("predictions.jsonl"))?;
        let mut codes = if hierarchical { Some(xmc_codes::LabelCodes::load(&ctx.dir(StageName::Codes))?.codes) } else { None };
        // Labels added after training (cluster search) can be predicted: they are labels too.
        let added_file = ctx.dir(StageName::Predict).join(NEW_LABELS_FILE);
        if added_file.is_file() {
            let added: Vec<xmc_cluster::AddedLabel> = serde_json::from_str(&std::fs::read_to_string(&added_file)?)
                .with_context(|| format!("reading {}", added_file.display()))?;
            labels = labels.with_added(&added.iter().map(|a| a.path.clone()).collect::<Vec<_>>());
            if let Some(codes) = codes.as_mut() {
                codes.extend(added.into_iter().map(|a| a.code));
            }
        }
        let metrics = crate::evaluate::score_rows(&labels, &rows, codes.as_deref(), &eval_cfg)?;
        metrics.save(&out.join(xmc_eval::report::METRICS_FILE))?;
        eprintln!(
            "eval: accuracy {:.4}, macro-F1 {:.4}, tail accuracy {} on {} test records",
            metrics.accuracy,
            metrics.leaf.macro_avg.f1,
            metrics.tail_accuracy.map_or("-".into(), |a| format!("{a:.4}")),
            metrics.records
        );
        Ok(Figures::Eval(EvalFigures::of(&metrics)))
    })
}

fn run_report(ctx: &StageContext) -> Result<(StageOutcome, String)> {
    let cfg = ctx.cfg;
    let inputs = BTreeMap::from([
        ctx.upstream(StageName::Train),
        ctx.upstream(StageName::Predict),
        ctx.upstream(StageName::Brand),
        ctx.upstream(StageName::Eval),
    ]);
    ctx.run(StageName::Report, &serde_json::json!({ "name": cfg.name }), inputs, |out| {
        let metrics = xmc_eval::Metrics::load(&ctx.dir(StageName::Eval).join(xmc_eval::report::METRICS_FILE))?;
        let report_ctx = report_context(ctx)?;
        let files = xmc_eval::write_report(out, &metrics, &report_ctx)?;
        eprintln!("report: {}", out.with_file_name(StageName::Report.as_str()).join(xmc_eval::report::REPORT_FILE).display());
        Ok(Figures::Report(ReportFigures { files }))
    })
}

fn report_context(ctx: &StageContext) -> Result<xmc_eval::ReportContext> {
    let cfg = ctx.cfg;
    let method = match (cfg.method, cfg.model.mode) {
        (super::config::Method::Fused, _) => format!(
            "fused: candidates from the XR ranker's top {} (k = {} tree, {} features) and the T5 ({}) beam's top {}, rescored by \
             a conditional logit over ranker score{}{}, label frequency, fitted on the validation split",
            cfg.fusion.ranker_candidates,
            cfg.tree.branching,
            serde_json::to_value(cfg.ranker.features)?.as_str().unwrap_or("?"),
            cfg.model.preset,
            cfg.fusion.generator_candidates,
            if cfg.fusion.generator { ", generator log-probability" } else { "" },
            if cfg.fusion.similarity { ", record-label similarity" } else { "" },
        ),
        (super::config::Method::Xr, _) => format!(
            "XR ranker: linear scorers ({}, C+ {} / C- {}) at every node of the label tree (k = {}, {} label embeddings) on {} features, \
             negatives: {}; beam {} over levels",
            serde_json::to_value(cfg.ranker.loss)?.as_str().unwrap_or("?"),
            cfg.ranker.c_pos,
            cfg.ranker.c_neg,
            cfg.tree.branching,
            serde_json::to_value(cfg.embed.kind)?.as_str().unwrap_or("?"),
            serde_json::to_value(cfg.ranker.features)?.as_str().unwrap_or("?"),
            serde_json::to_value(cfg.ranker.negatives)?.as_str().unwrap_or("?"),
            cfg.ranker.beam
        ),
        (super::config::Method::ClusterSearch, _) => format!(
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
        ),
        (_, mode) => match mode {
        xmc_model::TargetMode::Hierarchical => format!(
            "T5 ({}) generating hierarchical codes; label tree by recursive k-means (k = {}) over {} label embeddings",
            cfg.model.preset,
            cfg.tree.branching,
            serde_json::to_value(cfg.embed.kind)?.as_str().unwrap_or("?")
        ),
        xmc_model::TargetMode::Plain => format!("T5 ({}) generating the label path as text (plain)", cfg.model.preset),
        },
    };
    let mut facts = Vec::new();
    let train = StageRecord::load(&ctx.dir(StageName::Train)).and_then(|r| r.report.train().cloned()).unwrap_or_default();
    if let Some(p) = train.parameters {
        facts.push(("parameters".into(), p.to_string()));
    }
    if let (Some(best), Some(epochs)) = (train.best_epoch, train.epochs) {
        facts.push(("best epoch".into(), format!("{best} of {epochs}")));
    }
    if let Some(s) = train.train_seconds {
        facts.push(("training time".into(), format!("{:.1} min", s / 60.0)));
    }
    if let (Some(before), Some(after)) = (train.pretrained_valid_accuracy, train.best_valid_accuracy) {
        facts.push(("validation retrieval accuracy (pretrained -> fine-tuned)".into(), format!("{before:.4} -> {after:.4}")));
    }
    if let Some(r) = StageRecord::load(&ctx.dir(StageName::Predict)).and_then(|r| r.report.predict().map(|p| p.records_per_s)) {
        let beam = match cfg.method {
            super::config::Method::ClusterSearch => cfg.search.beam,
            super::config::Method::Xr | super::config::Method::Fused => cfg.ranker.beam,
            super::config::Method::Generative => cfg.model.beam_width,
        };
        facts.push(("prediction speed".into(), format!("{r:.0} records/s (beam {beam})")));
    }
    // The T5's epochs, or the contrastive fine-tuning's (valid accuracy: retrieval among all labels).
    let train_dir = ctx.dir(StageName::Train);
    let curve_path = match train_dir.join(xmc_cluster::model::ENCODER_DIR).join("metrics.jsonl") {
        p if p.is_file() => p,
        _ => train_dir.join("metrics.jsonl"),
    };
    let point = |l: &str| -> Result<xmc_eval::EpochPoint> {
        let context = || format!("parsing {}", curve_path.display());
        let e: xmc_train::EpochMetrics = serde_json::from_str(l).with_context(context)?;
        Ok(xmc_eval::EpochPoint { epoch: e.epoch, train_loss: e.train_loss, valid_accuracy: e.valid_accuracy })
    };
    let curve = match std::fs::read_to_string(&curve_path) {
        Ok(text) => text.lines().filter(|l| !l.trim().is_empty()).map(point).collect::<Result<Vec<_>>>()?,
        Err(_) => Vec::new(),
    };
    let sections = components_section(ctx)?.into_iter().chain(brand_section(ctx)).collect();
    Ok(xmc_eval::ReportContext { name: cfg.name.clone(), method, facts, curve, sections })
}

/// Checks the run's metrics against the committed baseline, or rewrites it (`--update-baseline`).
fn check_baseline(cfg: &ExperimentConfig, path: &Path, run_dir: &Path, update: bool) -> Result<Vec<String>> {
    let metrics = xmc_eval::Metrics::load(&run_dir.join(StageName::Eval.as_str()).join(xmc_eval::report::METRICS_FILE))?;
    if update {
        let previous = xmc_eval::Baseline::load(path).ok();
        let tolerance = previous.as_ref().map_or(0.05, |b| b.tolerance);
        let command = format!("cargo xtask experiment <config of `{}`> --update-baseline", cfg.name);
        let mut baseline = xmc_eval::Baseline::from_metrics(&metrics, &command, tolerance);
        baseline.note = previous.map(|b| b.note).unwrap_or_default();
        baseline.save(path)?;
        return Ok(vec![format!("baseline {} rewritten: accuracy {:.4}, macro-F1 {:.4}", path.display(), baseline.accuracy, baseline.macro_f1)]);
    }
    let baseline = xmc_eval::Baseline::load(path)
        .with_context(|| format!("the config's eval.baseline {} (write it with --update-baseline)", path.display()))?;
    Ok(baseline.check(&metrics, path)?)
}

fn progress_bar(len: u64, message: &'static str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(message);
    bar
}

fn data_figures(stats: &xmc_data::DataStats) -> Figures {
    Figures::Data(DataFigures {
        records: stats.records,
        skipped: stats.skipped,
        labels: stats.labels,
        tail_labels: stats.tail_labels,
        tail_label_share: stats.tail_label_share,
        train: stats.train_records,
        valid: stats.valid_records,
        test: stats.test_records,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_changes_with_the_code_version_config_and_inputs() {
        let inputs = BTreeMap::from([("data_stage".to_string(), "abc".to_string())]);
        let base = Plan::with_code_version(StageName::Brand, 1, &serde_json::json!({}), inputs.clone()).fingerprint;
        assert_eq!(base, Plan::with_code_version(StageName::Brand, 1, &serde_json::json!({}), inputs.clone()).fingerprint);
        assert_ne!(base, Plan::with_code_version(StageName::Brand, 2, &serde_json::json!({}), inputs.clone()).fingerprint);
        assert_ne!(base, Plan::with_code_version(StageName::Brand, 1, &serde_json::json!({"k": 1}), inputs).fingerprint);
        let other = BTreeMap::from([("data_stage".to_string(), "abd".to_string())]);
        assert_ne!(base, Plan::with_code_version(StageName::Brand, 1, &serde_json::json!({}), other).fingerprint);
        assert_eq!(Plan::new(StageName::Brand, &serde_json::json!({}), BTreeMap::new()).inputs["code_version"], StageName::Brand.code_version().to_string());
    }
}
