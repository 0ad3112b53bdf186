//! The XR ranker (`method = "xr"`, the recommended model): linear scorers at every node of the
//! label tree on TF-IDF (and optionally a dense block of sentence embeddings), searched with a
//! beam over levels; with `contrastive.loss = "labels"` the sentence encoder fine-tuned as a
//! classifier over all labels rescores the ranker's candidates where the cascade consults it.
//! Its model folder: `xr.json`, `tfidf.json`, `tree.json`, `weights.safetensors`, `labels.json`,
//! `classifier.json` with `classifier-encoder/` (and `-2/`, ... for further members), `encoder/`
//! for the dense block, `dataset.toml`, `calibration.json` (see `xmc_ranker::model`).

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use serde_json::json;
use xmc_data::{InputTemplate, LabelSet, PreparedData};
use xmc_model::SentenceEncoder;
use xmc_ranker::XrModel;

use crate::config::ExperimentConfig;
use crate::figures::TrainFigures;
use crate::method::{InputFile, Method, Model, Pools, PredictSettings, TrainContext, TrainPlan, Upstream};
use crate::recipes;

/// Records whose dense embeddings are computed together by the ranker's encoders.
pub(crate) const ENCODE_BATCH: usize = 64;
/// Records featurised and ranked together (for the progress callback).
const RANK_CHUNK: usize = 2048;

/// The XR ranker method.
pub struct Xr;

impl Method for Xr {
    fn name(&self) -> &'static str {
        xmc_ranker::METHOD
    }

    fn folder_file(&self) -> &'static str {
        xmc_ranker::META_FILE
    }

    fn load(&self, dir: &Path) -> Result<Box<dyn Model>> {
        let model = XrModel::load(dir)?;
        let encoders = XrEncoders::load(dir, &model)?;
        Ok(Box::new(XrRanker { model, encoders }))
    }

    fn validate(&self, cfg: &ExperimentConfig) -> Result<()> {
        if !cfg.choose.branching.is_empty() {
            if cfg.tree.kind != xmc_cluster::TreeKind::Kmeans {
                bail!("`choose.branching` tries k-means trees: it needs `tree.kind = \"kmeans\"`");
            }
            if !cfg.ranker.ensemble.is_empty() {
                bail!("`choose.branching` and `ranker.ensemble` do not go together: choose one tree, or average several");
            }
        }
        Ok(())
    }

    fn train_plan(&self, cfg: &ExperimentConfig) -> Result<TrainPlan> {
        let needs_encoder = cfg.ranker.features.uses_dense() || classifier_wanted(cfg);
        let template = recipes::resolved_template(cfg)?;
        let mut plan = TrainPlan {
            upstream: vec![Upstream::Data, Upstream::Tree],
            files: encoder_input(cfg, needs_encoder),
            config: json!({
                "method": "xr",
                "ranker": cfg.ranker,
                "template": template,
                "encoder_dir": needs_encoder.then_some(&cfg.embed.encoder_dir),
                "contrastive": needs_encoder.then_some(&cfg.contrastive),
            }),
        };
        // Left out when empty, so that the fingerprints of runs from before `[choose]` stay valid.
        if !cfg.choose.is_empty() {
            plan.config["choose"] = json!(cfg.choose);
        }
        if !cfg.distill.is_off() {
            plan.config["distill"] = json!(cfg.distill);
        }
        Ok(plan)
    }

    fn train(&self, ctx: &TrainContext) -> Result<TrainFigures> {
        let cfg = ctx.cfg;
        let needs_encoder = cfg.ranker.features.uses_dense() || classifier_wanted(cfg);
        let data = PreparedData::load(&ctx.dir(Upstream::Data))?;
        let template = recipes::resolved_template(cfg)?;
        let trained = train_ranker_into(ctx, &data, &template, needs_encoder, classifier_wanted(cfg))?;
        drop(trained.model);
        Ok(trained.report)
    }

    fn predict_settings(&self, cfg: &ExperimentConfig) -> PredictSettings {
        PredictSettings { beam: cfg.ranker.beam, top_k: cfg.ranker.top_k }
    }

    fn describe(&self, cfg: &ExperimentConfig) -> Result<String> {
        let chosen = if cfg.choose.is_empty() {
            String::new()
        } else {
            format!("; branching {:?} and path score {:?} chosen on the validation split", cfg.choose.branching, cfg.choose.path_combine)
        };
        // With a choice, the tree's branching is the chosen one, not the config's.
        let branching = if cfg.choose.branching.is_empty() { format!("k = {}", cfg.tree.branching) } else { "k chosen".to_string() };
        Ok(format!(
            "XR ranker: linear scorers ({}, C+ {} / C- {}) at every node of the label tree ({branching}, {} label embeddings) on {} features, \
             negatives: {}; beam {} over levels{chosen}",
            recipes::name_of(cfg.ranker.loss)?,
            cfg.ranker.c_pos,
            cfg.ranker.c_neg,
            recipes::name_of(cfg.embed.kind)?,
            recipes::name_of(cfg.ranker.features)?,
            recipes::name_of(cfg.ranker.negatives)?,
            cfg.ranker.beam
        ))
    }
}

/// The encoder fine-tuned against label vectors brings its own classifier to rescore the
/// ranker's candidates.
fn classifier_wanted(cfg: &ExperimentConfig) -> bool {
    cfg.contrastive.epochs > 0 && cfg.contrastive.loss == xmc_train::FineTuneLoss::Labels
}

/// The pretrained encoder's weights as a train input, when the ranker's folder needs an encoder.
pub(crate) fn encoder_input(cfg: &ExperimentConfig, needs_encoder: bool) -> Vec<InputFile> {
    let encoder_dir = Path::new(&cfg.embed.encoder_dir);
    needs_encoder
        .then(|| InputFile {
            key: "encoder_weights".into(),
            path: encoder_dir.join(SentenceEncoder::WEIGHTS),
            missing: format!("dense features and similarity need the sentence encoder in {} (run `cargo xtask fetch-models`)", encoder_dir.display()),
        })
        .into_iter()
        .collect()
}

/// What [`train_ranker_into`] leaves behind besides the folder.
pub(crate) struct RankerTrained {
    pub model: XrModel,
    pub report: TrainFigures,
}

/// Prepares the encoders (when needed: `out/encoder` for the dense block or the fused method's
/// similarity, `out/classifier-encoder` for the classifier when `wants_classifier`), trains the
/// ranker and saves it in `ctx.out`, scores it on the validation split.
pub(crate) fn train_ranker_into(
    ctx: &TrainContext,
    data: &PreparedData,
    template: &InputTemplate,
    needs_encoder: bool,
    wants_classifier: bool,
) -> Result<RankerTrained> {
    let (cfg, out, resume) = (ctx.cfg, ctx.out, ctx.resume);
    let encoder_dir = Path::new(&cfg.embed.encoder_dir);
    let tree = xmc_cluster::load_tree(&ctx.dir(Upstream::Tree))?;
    // The ensemble's further trees: the tree stage's recipe on the same label vectors.
    let extra_trees = if cfg.ranker.ensemble.is_empty() {
        Vec::new()
    } else {
        let embeddings = xmc_cluster::LabelEmbeddings::load(&ctx.dir(Upstream::Embed))?;
        xmc_cluster::build_tree_ensemble(&embeddings, &cfg.tree, &cfg.ranker.ensemble)?
    };
    let split = |s| data.split(s).map(|r| (r.input.as_str(), r.label)).unzip::<_, _, Vec<&str>, Vec<u32>>();
    let (train_texts, _) = split(xmc_data::Split::Train);
    let (mut valid_texts, mut valid_labels) = split(xmc_data::Split::Valid);
    // `ranker.max_valid_records`: the train stage's fits and figures on a sample of them.
    if cfg.ranker.max_valid_records > 0 && valid_texts.len() > cfg.ranker.max_valid_records {
        let pairs: Vec<(&str, u32)> = valid_texts.iter().copied().zip(valid_labels.iter().copied()).collect();
        eprintln!(
            "train (xr): {} of the {} validation records fit the classifier and its gate and score the settings (`ranker.max_valid_records`)",
            cfg.ranker.max_valid_records,
            valid_texts.len()
        );
        (valid_texts, valid_labels) = xmc_data::sample::at_most(&pairs, cfg.ranker.max_valid_records, cfg.tree.seed).into_iter().unzip();
    }
    let started = Instant::now();
    let mut report = TrainFigures::default();
    let finetune_into = |target: &Path, contrastive: &xmc_train::ContrastiveConfig, report: &mut TrainFigures| -> Result<()> {
        if let Some(from) = &contrastive.reuse {
            return reuse_classifier(from, target, report);
        }
        let outcome = recipes::finetune_encoder(cfg, data, contrastive, target, resume)?;
        eprintln!(
            "train (contrastive, loss {:?}): validation nearest-label accuracy {:.4} -> {:.4} (best epoch {} of {})",
            cfg.contrastive.loss, outcome.pretrained_valid_accuracy, outcome.best_valid_accuracy, outcome.best_epoch, outcome.epochs
        );
        report.encoder_valid_retrieval = Some(outcome.best_valid_accuracy);
        (report.best_epoch, report.epochs) = (Some(outcome.best_epoch), Some(outcome.epochs));
        report.encoder_seconds = Some(report.encoder_seconds.unwrap_or(0.0) + outcome.train_seconds);
        Ok(())
    };
    // The encoders embed here on the path prediction takes (`with_fast_path`), so that what is
    // fitted on these embeddings (the dense block, the classifier's weights and gate) sees the
    // embeddings it will be applied to.
    let load = |dir: &Path| xmc_model::SentenceEncoder::load(dir, &xmc_model::inference_device()).and_then(|e| e.with_fast_path());
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
            recipes::copy_encoder(encoder_dir, &target)?;
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
        let bar = recipes::progress_bar(texts.len() as u64, what);
        let v = e.encode(texts, 64, |n| bar.inc(n as u64))?;
        bar.finish_and_clear();
        Ok(Some(v))
    };
    let dense_encoder = encoder.as_ref().filter(|_| cfg.ranker.features.uses_dense());
    let train_dense = embed(dense_encoder, &train_texts, "embedding training records")?;
    let valid_dense = embed(dense_encoder, &valid_texts, "embedding validation records")?;
    // The members' embeddings concatenated, as their label vectors (over the number of members,
    // so that a logit is the members' mean).
    let mut valid_for_classifier = if classifier_encoders.is_empty() {
        None
    } else {
        let bar = recipes::progress_bar((valid_texts.len() * classifier_encoders.len()) as u64, "embedding validation records (classifier)");
        let joined = embed_concatenated(&classifier_encoders, &valid_texts, |n| bar.inc(n as u64))?;
        bar.finish_and_clear();
        Some(joined)
    };
    let untrained_classifier = match valid_for_classifier {
        Some(_) => {
            let vectors = member_label_vectors(out, classifier_encoders.len(), data.labels.len())?;
            let mut classifier = xmc_ranker::EncoderClassifier::new(cfg.contrastive.temperature as f32, vectors);
            if cfg.ranker.classifier_label_text {
                // The label texts as the fine-tuning's label vectors started from them, read by
                // the fine-tuned encoders (over the members, as the label vectors are).
                let texts = xmc_cluster::label_texts(&data.labels, cfg.embed.text);
                let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
                let members = classifier_encoders.len() as f32;
                classifier.text_vectors = embed_concatenated(&classifier_encoders, &texts, |_| {})?
                    .into_iter()
                    .map(|v| v.into_iter().map(|x| x / members).collect())
                    .collect();
            }
            Some(classifier)
        }
        None => None,
    };
    // One ranker per setting `[choose]` tries (the config's own when it is empty), each with the
    // classifier fitted over its candidates; the most accurate on validation is kept.
    let settings = cfg.choose.settings(cfg.tree.branching, cfg.ranker.path_combine);
    let label_vectors = if settings.iter().any(|s| s.branching != cfg.tree.branching) {
        Some(xmc_cluster::LabelEmbeddings::load(&ctx.dir(Upstream::Embed))?)
    } else {
        None
    };
    // `choose.max_records`: above it, the settings' rankers train on a sample that keeps the
    // tail (the same one for every setting), and the chosen one trains again on all records.
    let trial_sample = (settings.len() > 1 && cfg.choose.max_records > 0 && train_texts.len() > cfg.choose.max_records).then(|| {
        let labels: Vec<u32> = data.split(xmc_data::Split::Train).map(|r| r.label).collect();
        let mut order: Vec<usize> = (0..labels.len()).collect();
        xmc_data::SplitMix64::new(cfg.tree.seed).shuffle(&mut order);
        let mut kept = xmc_data::sample::capped_by_label(order, &labels, cfg.choose.max_records);
        kept.sort_unstable();
        kept
    });
    if let Some(sample) = &trial_sample {
        eprintln!(
            "train (xr): each setting's ranker trains on {} of the {} training records (`choose.max_records`, drawn under a per-label cap); the chosen one then on all",
            sample.len(),
            train_texts.len()
        );
    }
    // One setting's ranker on the training records (`sample`: those of them), scored on the
    // validation records, with the classifier fitted over its candidates.
    let try_setting = |setting: xmc_ranker::Setting, sample: Option<&[usize]>| -> Result<(Candidate, Vec<Option<u32>>)> {
        let alternative;
        let tree = match &label_vectors {
            Some(vectors) if setting.branching != cfg.tree.branching => {
                alternative = xmc_cluster::build_tree(vectors, &xmc_cluster::TreeConfig { branching: setting.branching, ..cfg.tree.clone() })?;
                &alternative
            }
            _ => &tree,
        };
        let ranker_cfg = xmc_ranker::RankerConfig { path_combine: setting.path_combine, ..cfg.ranker.clone() };
        let fitted = Instant::now();
        let (mut model, summary) = match sample {
            Some(sample) => {
                let records: Vec<&xmc_data::PreparedRecord> = data.split(xmc_data::Split::Train).collect();
                let records: Vec<&xmc_data::PreparedRecord> = sample.iter().map(|&i| records[i]).collect();
                let dense: Option<Vec<Vec<f32>>> = train_dense.as_ref().map(|d| sample.iter().map(|&i| d[i].clone()).collect());
                fit_ranker_on(&records, &data.labels, tree, &extra_trees, dense.as_deref(), &ranker_cfg, template)?
            }
            None => fit_ranker(data, tree, &extra_trees, train_dense.as_deref(), &ranker_cfg, template)?,
        };
        let fit_seconds = fitted.elapsed().as_secs_f64();
        let scored = Instant::now();
        let xv = model.features(&valid_texts, valid_dense.as_deref())?;
        let ranker_top: Vec<Option<u32>> = model.predict(&xv, None, 1).into_iter().map(|p| p.first().map(|&(l, _)| l)).collect();
        let mut narrow = None;
        if let (Some(classifier), Some(embeddings)) = (&untrained_classifier, valid_for_classifier.as_deref()) {
            let (fitted, narrow_fit) = model.fit_classifier(classifier.clone(), &xv, embeddings, &valid_labels, cfg.ranker.classifier_candidates);
            (model.classifier, narrow) = (Some(fitted), narrow_fit);
        }
        tracing::info!("{setting}: ranker trained in {fit_seconds:.1} s, scored and the classifier fitted on validation in {:.1} s", scored.elapsed().as_secs_f64());
        Ok((Candidate { trial: 0, model, summary, xv, narrow }, ranker_top))
    };
    let mut trials = Vec::with_capacity(settings.len());
    let mut best: Option<Candidate> = None;
    for setting in settings.iter().copied() {
        let tried = Instant::now();
        let (candidate, ranker_top) = try_setting(setting, trial_sample.as_deref())?;
        let trial = xmc_ranker::Trial::new(setting, &ranker_top, &valid_labels, &data.labels, candidate.model.classifier.as_ref(), tried.elapsed().as_secs_f64());
        if settings.len() > 1 {
            let pct = |a: Option<f64>| a.map_or("-".into(), |a| format!("{:.2}", 100.0 * a));
            eprintln!(
                "train (xr): {setting}: validation accuracy / tail accuracy {} / {} (ranker alone {} / {}), {:.0} s",
                pct(Some(trial.accuracy)),
                pct(trial.tail_accuracy),
                pct(Some(trial.ranker_accuracy)),
                pct(trial.ranker_tail_accuracy),
                trial.seconds
            );
        }
        if best.as_ref().is_none_or(|b| trial.beats(&trials[b.trial])) {
            best = Some(Candidate { trial: trials.len(), ..candidate });
        }
        trials.push(trial);
    }
    if let (Some(_), Some(setting)) = (&trial_sample, best.as_ref().map(|b| trials[b.trial].setting)) {
        drop(best.take());
        let retrained = Instant::now();
        let (candidate, _) = try_setting(setting, None)?;
        eprintln!("train (xr): {setting} trained again on all {} training records, {:.0} s", train_texts.len(), retrained.elapsed().as_secs_f64());
        best = Some(Candidate { trial: trials.iter().position(|t| t.setting == setting).unwrap_or(0), ..candidate });
    }
    let Candidate { trial: chosen, mut model, summary, xv, mut narrow } = best.context("no setting to train")?;
    // `[distill]`: a student of the classifier encoder, kept where validation says it may be.
    if let (false, Some(teacher), Some(untrained), Some(embeddings)) =
        (cfg.distill.is_off(), classifier_encoders.first(), &untrained_classifier, valid_for_classifier.as_mut())
    {
        let fit = ClassifierFit { model: &mut model, xv: &xv, labels: &valid_labels, untrained, narrow: &mut narrow, embeddings };
        let kept = distill_classifier(ctx, data, teacher, fit, &valid_texts)?;
        report.encoder_seconds = Some(report.encoder_seconds.unwrap_or(0.0) + kept.training.teacher_seconds + kept.training.train_seconds);
    }
    let train_seconds = started.elapsed().as_secs_f64();
    recipes::copy_dataset(cfg, out)?;
    if let Some(classifier) = &model.classifier {
        log_classifier(classifier, narrow.as_ref(), cfg.ranker.classifier_candidates);
    }
    if !cfg.choose.is_empty() {
        let choices = xmc_ranker::Choices {
            chosen: trials[chosen].setting,
            fine_tuning: report.best_epoch.zip(report.epochs).zip(report.encoder_valid_retrieval).map(|((best_epoch, epochs), valid_accuracy)| {
                xmc_ranker::choice::EpochChoice { best_epoch, epochs, valid_accuracy }
            }),
            classifier_candidates: model.classifier.as_ref().filter(|_| cfg.ranker.classifier_candidates > 0).map(|c| (cfg.ranker.classifier_candidates, c.own_candidates > 0)),
            cross_chosen: xmc_ranker::choice::cross_chosen(&trials, &valid_labels, &data.labels),
            note: xmc_ranker::choice::HONESTY_NOTE.into(),
            trial_records: trial_sample.as_ref().map(Vec::len),
            trials,
        };
        choices.save(out)?;
        let honest = choices.cross_chosen.map_or(String::new(), |(a, t)| {
            format!("; the choice cross-fitted: validation accuracy / tail accuracy {:.2} / {}", 100.0 * a, t.map_or("-".into(), |t| format!("{:.2}", 100.0 * t)))
        });
        eprintln!("train (xr): chose {} on the validation split (recorded in {}){honest}", choices.chosen, xmc_ranker::CHOICES_FILE);
    }
    model.save(out)?;
    let valid = rescored_valid_metrics(&model, &xv, valid_for_classifier.as_deref(), data, &valid_labels);
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

/// The chosen model's classifier as `[distill]` refits it: the model, the validation records'
/// feature rows and labels, the classifier before its fit, the fit over the ranker's candidates
/// alone, and the validation records' classifier embeddings (replaced by the student's where it
/// is kept).
struct ClassifierFit<'a> {
    model: &'a mut XrModel,
    xv: &'a xmc_ranker::SparseRows,
    labels: &'a [u32],
    untrained: &'a xmc_ranker::EncoderClassifier,
    narrow: &'a mut Option<xmc_ranker::WeightFit>,
    embeddings: &'a mut Vec<Vec<f32>>,
}

impl ClassifierFit<'_> {
    /// Validation accuracy, macro-F1 and tail accuracy of the model with its classifier
    /// consulting `embeddings`.
    fn figures(&self, data: &PreparedData, embeddings: &[Vec<f32>]) -> xmc_train::ValidFigures {
        let m = rescored_valid_metrics(self.model, self.xv, Some(embeddings), data, self.labels);
        xmc_train::ValidFigures { accuracy: m.accuracy, macro_f1: m.leaf.macro_avg.f1, tail_accuracy: m.tail_accuracy }
    }
}

/// The metrics of `model`'s top 5 on the validation records (feature rows `xv`, labels
/// `labels`), its classifier consulting their `embeddings` where it has them.
fn rescored_valid_metrics(model: &XrModel, xv: &xmc_ranker::SparseRows, embeddings: Option<&[Vec<f32>]>, data: &PreparedData, labels: &[u32]) -> xmc_eval::Metrics {
    let pools = model.predict(xv, None, model.pool_size(5));
    let ranked: Vec<Vec<u32>> =
        model.rescore(pools, xv, |i| embeddings.map(|v| v[i].as_slice()), 5).into_iter().map(|p| p.into_iter().map(|(l, _)| l).collect()).collect();
    recipes::valid_metrics(data, &ranked, labels)
}

/// Trains `[distill]`'s student of the classifier encoder `teacher` (in `classifier-encoder/`),
/// fits the classifier's weights and gate for it on the validation split, and keeps it in the
/// teacher's place (folder, classifier, embeddings) where `distill.keep` says so; records the
/// comparison in `student.json`.
fn distill_classifier(ctx: &TrainContext, data: &PreparedData, teacher: &SentenceEncoder, fit: ClassifierFit, valid_texts: &[&str]) -> Result<xmc_train::StudentRecord> {
    let (cfg, out) = (ctx.cfg, ctx.out);
    let teacher_dir = out.join(xmc_ranker::classifier_member_dir(0));
    let student_dir = out.join("classifier-student");
    let examples = |s| data.split(s).map(|r| (r.input.as_str(), r.label)).collect::<Vec<_>>();
    let (train, valid) = (examples(xmc_data::Split::Train), examples(xmc_data::Split::Valid));
    let bar = recipes::progress_bar((train.len() * (1 + cfg.distill.augment)) as u64, "the teacher's soft targets");
    let vectors = &fit.untrained.vectors;
    let training = xmc_train::distill_encoder(&teacher_dir, teacher, vectors, cfg.contrastive.temperature, &train, &valid, &cfg.distill, &student_dir, ctx.resume, |n| {
        bar.inc(n as u64)
    })?;
    bar.finish_and_clear();
    eprintln!(
        "train (distill): a {}-layer student (layers {:?}): validation nearest-label accuracy {:.4} (teacher {:.4}), best epoch {} of {}, {:.0} s",
        training.layers.len(),
        training.layers,
        training.best_valid_accuracy,
        training.teacher_valid_accuracy,
        training.best_epoch,
        training.epochs,
        training.teacher_seconds + training.train_seconds
    );
    let student = SentenceEncoder::load(&student_dir, &xmc_model::inference_device()).and_then(|e| e.with_fast_path())?;
    let bar = recipes::progress_bar(valid_texts.len() as u64, "embedding validation records (student)");
    let student_embeddings = student.encode(valid_texts, ENCODE_BATCH, |n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    let teacher_figures = fit.figures(data, fit.embeddings);
    // The student reads the label texts as it reads records.
    let mut untrained = fit.untrained.clone();
    if !untrained.text_vectors.is_empty() {
        let texts = xmc_cluster::label_texts(&data.labels, cfg.embed.text);
        untrained.text_vectors = student.encode(&texts.iter().map(String::as_str).collect::<Vec<_>>(), ENCODE_BATCH, |_| {})?;
    }
    let (fitted, narrow) = fit.model.fit_classifier(untrained, fit.xv, &student_embeddings, fit.labels, cfg.ranker.classifier_candidates);
    let teacher_classifier = fit.model.classifier.replace(fitted);
    let student_figures = fit.figures(data, &student_embeddings);
    let kept = xmc_train::StudentRecord::decide(cfg.distill.keep, &teacher_figures, &student_figures, cfg.distill.tolerance);
    let pct = |f: &xmc_train::ValidFigures| format!("{:.2} / {:.2} / {}", 100.0 * f.accuracy, 100.0 * f.macro_f1, f.tail_accuracy.map_or("-".into(), |t| format!("{:.2}", 100.0 * t)));
    eprintln!(
        "train (distill): validation accuracy / macro-F1 / tail accuracy with the student {} against the teacher's {}: the student is {}",
        pct(&student_figures),
        pct(&teacher_figures),
        if kept { "kept" } else { "not kept" }
    );
    if kept {
        std::fs::remove_dir_all(&teacher_dir).with_context(|| format!("removing {}", teacher_dir.display()))?;
        std::fs::rename(&student_dir, &teacher_dir).with_context(|| format!("moving {} to {}", student_dir.display(), teacher_dir.display()))?;
        std::fs::remove_file(teacher_dir.join(xmc_train::LABEL_VECTORS)).ok();
        *fit.narrow = narrow;
        *fit.embeddings = student_embeddings;
    } else {
        fit.model.classifier = teacher_classifier;
        std::fs::remove_dir_all(&student_dir).with_context(|| format!("removing {}", student_dir.display()))?;
    }
    let record = xmc_train::StudentRecord {
        training,
        teacher: teacher_figures,
        student: student_figures,
        tolerance: cfg.distill.tolerance,
        keep: cfg.distill.keep,
        kept,
        note: xmc_train::StudentRecord::NOTE.into(),
    };
    let path = out.join(xmc_train::StudentRecord::FILE);
    std::fs::write(&path, serde_json::to_string_pretty(&record)? + "\n").with_context(|| format!("writing {}", path.display()))?;
    Ok(record)
}

/// `contrastive.reuse`: the classifier encoder and label vectors of the xr folder `from` into
/// `target` as a fine-tuning would leave them, with its recorded epoch choice in `report`.
fn reuse_classifier(from: &Path, target: &Path, report: &mut TrainFigures) -> Result<()> {
    let model = XrModel::load(from).with_context(|| format!("`contrastive.reuse` = {}", from.display()))?;
    let classifier = model.classifier.as_ref().with_context(|| format!("`contrastive.reuse`: {} has no classifier", from.display()))?;
    if model.meta.config.features.uses_dense() || model.classifier_encoder_dirs(from).len() != 1 {
        bail!("`contrastive.reuse`: {} must have one classifier encoder and no dense block", from.display());
    }
    recipes::copy_dir(&from.join(xmc_ranker::CLASSIFIER_ENCODER_DIR), target)?;
    let path = target.join(xmc_train::LABEL_VECTORS);
    std::fs::write(&path, serde_json::to_vec(&classifier.vectors)?).with_context(|| format!("writing {}", path.display()))?;
    if let Some(e) = xmc_ranker::Choices::load(from)?.and_then(|c| c.fine_tuning) {
        (report.best_epoch, report.epochs, report.encoder_valid_retrieval) = (Some(e.best_epoch), Some(e.epochs), Some(e.valid_accuracy));
    }
    eprintln!("train (contrastive): the fine-tuned classifier encoder of {} reused", from.display());
    Ok(())
}

/// The best setting so far while `[choose]`'s settings are tried: its trial's index, its model
/// (with the classifier fitted), its training summary, the validation records' feature rows and
/// the classifier's fit over the ranker's candidates alone when its own candidates were tried.
struct Candidate {
    trial: usize,
    model: XrModel,
    summary: xmc_ranker::TrainingSummary,
    xv: xmc_ranker::SparseRows,
    narrow: Option<xmc_ranker::WeightFit>,
}

/// Logs the classifier's fit on the validation split: its weights, whether its own candidates
/// were kept, the cascade's gate.
fn log_classifier(classifier: &xmc_ranker::EncoderClassifier, narrow: Option<&xmc_ranker::WeightFit>, own_candidates: usize) {
    let tail = |a: Option<f64>| a.map_or("-".into(), |a| format!("{a:.4}"));
    if let Some(narrow) = narrow {
        eprintln!(
            "train (xr): the classifier's own top {own_candidates} labels beside the ranker's candidates {} (cross-fitted validation accuracy / tail \
             accuracy: {:.4} / {} over the ranker's candidates alone)",
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
    // The further evidence tried beside the label's own (`ranker.classifier_parent`,
    // `ranker.classifier_label_text`), where it was.
    let tried = [
        ("the parent's evidence beside the label's", classifier.parent_weight, classifier.fit.without_parent_cross_fitted_accuracy),
        ("the label text's evidence", classifier.text_weight, classifier.fit.without_text_cross_fitted_accuracy),
    ];
    for (evidence, weight, without) in tried {
        if let Some(without) = without {
            let kept = if weight > 0.0 { "kept" } else { "not kept" };
            eprintln!("train (xr): {evidence} {kept} (weight {weight:.2}; cross-fitted validation accuracy {without:.4} without it)");
        }
    }
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
}

/// The ranker's node scorers fitted on the training split of `data` over `tree` (and an
/// ensemble's `extra_trees`), with the training records' `dense` embeddings (in split order) when
/// the features have a dense block: the xr method's training, which `cargo xtask bench ranker`
/// times at the reference scale.
pub fn fit_ranker(
    data: &PreparedData,
    tree: &xmc_codes::LabelTree,
    extra_trees: &[xmc_codes::LabelTree],
    dense: Option<&[Vec<f32>]>,
    cfg: &xmc_ranker::RankerConfig,
    template: &InputTemplate,
) -> Result<(XrModel, xmc_ranker::TrainingSummary)> {
    let records: Vec<&xmc_data::PreparedRecord> = data.split(xmc_data::Split::Train).collect();
    fit_ranker_on(&records, &data.labels, tree, extra_trees, dense, cfg, template)
}

/// [`fit_ranker`] on `records` of the training split (`dense`: their embeddings, in order).
fn fit_ranker_on(
    records: &[&xmc_data::PreparedRecord],
    labels: &xmc_data::LabelSet,
    tree: &xmc_codes::LabelTree,
    extra_trees: &[xmc_codes::LabelTree],
    dense: Option<&[Vec<f32>]>,
    cfg: &xmc_ranker::RankerConfig,
    template: &InputTemplate,
) -> Result<(XrModel, xmc_ranker::TrainingSummary)> {
    let (texts, label_ids): (Vec<&str>, Vec<u32>) = records.iter().map(|r| (r.input.as_str(), r.label)).unzip();
    let nodes = tree.nodes.len() + extra_trees.iter().map(|t| t.nodes.len()).sum::<usize>();
    let bar = recipes::progress_bar(nodes as u64, "training node scorers");
    let training = xmc_ranker::TrainingData { texts: &texts, labels: &label_ids, dense };
    let fitted = XrModel::fit(&training, tree, extra_trees, labels, cfg, template, |n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    Ok(fitted)
}

/// The classifier members' label vectors (written by their fine-tuning beside each encoder),
/// concatenated per label in member order and divided by the number of members, so that a
/// logit over the concatenated embeddings is the members' mean; the files are removed once read
/// (the vectors move into `classifier.json`).
fn member_label_vectors(out: &Path, members: usize, labels: usize) -> Result<Vec<Vec<f32>>> {
    let mut vectors: Vec<Vec<f32>> = vec![Vec::new(); labels];
    for m in 0..members {
        let path = out.join(xmc_ranker::classifier_member_dir(m)).join(xmc_train::LABEL_VECTORS);
        let member: Vec<Vec<f32>> = serde_json::from_slice(&std::fs::read(&path).with_context(|| format!("reading {}", path.display()))?)
            .with_context(|| format!("reading {}", path.display()))?;
        if member.len() != labels {
            bail!("{}: {} label vectors for {labels} labels", path.display(), member.len());
        }
        for (row, v) in vectors.iter_mut().zip(member) {
            row.extend(v.into_iter().map(|x| x / members as f32));
        }
        std::fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
    }
    Ok(vectors)
}

/// A loaded xr model folder: the ranker and the sentence encoders of its dense block and of its
/// classifier when it has them.
pub struct XrRanker {
    pub model: XrModel,
    encoders: XrEncoders,
}

impl Model for XrRanker {
    fn method(&self) -> &'static str {
        Xr.name()
    }

    fn labels(&self) -> &LabelSet {
        &self.model.labels
    }

    fn template(&self) -> &InputTemplate {
        &self.model.meta.template
    }

    fn default_beam(&self) -> usize {
        self.model.meta.config.beam
    }

    fn codes(&self) -> Option<Vec<Vec<u32>>> {
        Some(self.model.ranker.tree.codes())
    }

    fn pools(&self, texts: &[&str], beam: usize, on_batch: &mut dyn FnMut(usize)) -> Result<Pools> {
        let (model, encoders) = (&self.model, &self.encoders);
        let mut out = Vec::with_capacity(texts.len());
        for chunk in texts.chunks(RANK_CHUNK) {
            let dense = encoders.embed_dense(chunk)?;
            let x = model.features(chunk, dense.as_deref())?;
            let pools = model.predict(&x, Some(beam), model.pool_size(beam));
            // The classifier's encoder embeds only the records the classifier is consulted on.
            let asked: Vec<usize> = (0..chunk.len()).filter(|&i| model.consults_classifier(&pools[i])).collect();
            let for_classifier = encoders.embed_for_classifier(chunk, &asked, dense.as_deref())?;
            out.extend(model.rescore(pools, &x, |i| for_classifier[i].as_deref(), beam));
            on_batch(chunk.len());
        }
        Ok(out)
    }
}

/// The encoders an xr model folder carries: one for the dense feature block, one for the
/// classifier; folders written before `classifier-encoder/` existed use one for both.
struct XrEncoders {
    dense: Option<SentenceEncoder>,
    classifier: ClassifierEncoder,
}

enum ClassifierEncoder {
    None,
    /// The dense block's encoder (an older folder with a dense block and a classifier).
    Dense,
    /// The classifier's own encoders, one per ensemble member, their embeddings concatenated.
    Own(Vec<SentenceEncoder>),
}

impl XrEncoders {
    fn load(dir: &Path, model: &XrModel) -> Result<Self> {
        let load = |enc_dir: &Path, what: &str| {
            SentenceEncoder::load(enc_dir, &xmc_model::inference_device())
                .and_then(|e| e.with_fast_path())
                .with_context(|| format!("{}: the ranker's {what} needs its sentence encoder in `{}`", dir.display(), enc_dir.display()))
        };
        let dense_dir = dir.join(xmc_ranker::ENCODER_DIR);
        let dense = if model.meta.layout.kind.uses_dense() { Some(load(&dense_dir, "dense feature block")?) } else { None };
        let dirs = model.classifier_encoder_dirs(dir);
        let classifier = match dirs.as_slice() {
            [] => ClassifierEncoder::None,
            [d] if *d == dense_dir && dense.is_some() => ClassifierEncoder::Dense,
            dirs => ClassifierEncoder::Own(dirs.iter().map(|d| load(d, "classifier")).collect::<Result<_>>()?),
        };
        if let (Some(c), ClassifierEncoder::Own(encoders)) = (&model.classifier, &classifier) {
            let (want, have) = (c.vectors.first().map_or(0, Vec::len), encoders.iter().map(SentenceEncoder::dim).sum::<usize>());
            if want != have {
                bail!(
                    "{}: the classifier's label vectors have {want} dimensions, but its {} encoder(s) embed in {have}",
                    dir.display(),
                    encoders.len()
                );
            }
        }
        Ok(XrEncoders { dense, classifier })
    }

    /// The inputs' embeddings for the dense block (`None` without one).
    fn embed_dense(&self, texts: &[&str]) -> Result<Option<Vec<Vec<f32>>>> {
        Ok(self.dense.as_ref().map(|e| e.encode(texts, ENCODE_BATCH, |_| {})).transpose()?)
    }

    /// The classifier's embeddings of the inputs at positions `asked` (the others `None`),
    /// reusing the dense block's `dense` embeddings where the two share an encoder.
    fn embed_for_classifier(&self, texts: &[&str], asked: &[usize], dense: Option<&[Vec<f32>]>) -> Result<Vec<Option<Vec<f32>>>> {
        let mut out = vec![None; texts.len()];
        let embedded = match (&self.classifier, dense) {
            (ClassifierEncoder::None, _) => return Ok(out),
            (ClassifierEncoder::Dense, Some(dense)) => asked.iter().map(|&i| dense[i].clone()).collect(),
            (ClassifierEncoder::Dense, None) => bail!("the classifier shares the dense block's encoder, but the model has no dense block"),
            (ClassifierEncoder::Own(encoders), _) => {
                let asked_texts: Vec<&str> = asked.iter().map(|&i| texts[i]).collect();
                embed_concatenated(encoders, &asked_texts, |_| {})?
            }
        };
        for (&i, v) in asked.iter().zip(embedded) {
            out[i] = Some(v);
        }
        Ok(out)
    }
}

/// The classifier members' embeddings of `texts`, concatenated per text in member order (as
/// their label vectors are, each over the number of members, so that a logit is the members'
/// mean); `progress` hears of each batch, member after member.
pub(crate) fn embed_concatenated(encoders: &[SentenceEncoder], texts: &[&str], mut progress: impl FnMut(usize)) -> Result<Vec<Vec<f32>>> {
    let mut joined = vec![Vec::with_capacity(encoders.iter().map(SentenceEncoder::dim).sum()); texts.len()];
    for e in encoders {
        for (row, v) in joined.iter_mut().zip(e.encode(texts, ENCODE_BATCH, &mut progress)?) {
            row.extend(v);
        }
    }
    Ok(joined)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The report's method line names the config's branching only when the train stage does not
    /// choose it (the recommended recipe's 16 would otherwise be read as the tree it kept).
    #[test]
    fn the_description_names_the_branching_only_when_it_is_not_chosen() {
        let mut cfg = ExperimentConfig::default();
        cfg.tree.branching = 16;
        assert!(Xr.describe(&cfg).unwrap().contains("(k = 16,"));
        cfg.choose.branching = vec![16, 6];
        let described = Xr.describe(&cfg).unwrap();
        assert!(!described.contains("k = 16"), "{described}");
        assert!(described.contains("k chosen") && described.contains("branching [16, 6]"), "{described}");
    }
}
