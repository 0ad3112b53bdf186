//! A distilled student of the fine-tuned classifier encoder (`[distill]`): the teacher's
//! embeddings and tokenizer, only some of its layers (see [`xmc_model::bert::student_layers`]),
//! trained on the training records to give the teacher's distribution over the labels (its
//! soft targets: the cosine to each of the teacher's label vectors over the classifier's
//! temperature) and the teacher's embedding itself. The label vectors stay the teacher's, so the
//! student's folder is a classifier encoder like the teacher's, at a fraction of its cost.

use std::path::Path;

use burn::prelude::*;
use burn::tensor::activation::{log_softmax, softmax};
use serde::{Deserialize, Serialize};
use xmc_model::{Bert, SentenceEncoder};

use crate::contrastive::{EVAL_BATCH, Example, nearest_label_accuracy, truncate};
use crate::error::{Result, TrainError};
use crate::fit::{Fingerprint, FitRun, Objective, Optimization, epoch_rng, fit};
use crate::label_vectors::LABEL_VECTORS;

/// The `[distill]` section of an experiment config (the xr method's classifier).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DistillConfig {
    /// Layers the student keeps of the teacher's (0 = no student).
    pub layers: usize,
    /// Which: `spread` (evenly spaced, the first and the last) or `bottom` (the lowest, as they
    /// are; the top layers dropped).
    pub pick: LayerPick,
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Linear warm-up steps, then linear decay to zero at the last step.
    pub warmup_steps: usize,
    /// Weight of the embedding term (one minus the cosine to the teacher's embedding, over the
    /// classifier's temperature, so that it is on the logits' scale) beside the soft targets'.
    pub embedding_weight: f64,
    /// The soft targets' temperature as a multiple of the classifier's: above 1 softens both
    /// distributions (as knowledge distillation does, the term scaled by its square), so that
    /// more than the teacher's top label is passed on.
    pub softness: f64,
    /// Further views of each training record the student learns the teacher's targets on: the
    /// record with each word dropped at random (`word_dropout`), so that it sees the teacher's
    /// distribution on inputs it was not fitted to, not only its near-certain answers on the
    /// training records (0 = the records alone).
    pub augment: usize,
    pub word_dropout: f64,
    /// Record tokens kept.
    pub max_tokens: usize,
    pub weight_decay: f64,
    pub grad_clip: f64,
    pub seed: u64,
    /// When the student replaces the teacher: `if-close` (its validation accuracy, macro-F1
    /// and tail accuracy within `tolerance` of the teacher's) or `always` (for measurements).
    pub keep: StudentKeep,
    /// How far below the teacher the student's validation figures may be (a fraction).
    pub tolerance: f64,
}

/// Which of the teacher's layers a student keeps.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LayerPick {
    #[default]
    Spread,
    Bottom,
}

impl LayerPick {
    /// The positions of `n` of `of` layers.
    pub fn layers(self, n: usize, of: usize) -> Vec<usize> {
        match self {
            LayerPick::Spread => xmc_model::bert::student_layers(n, of),
            LayerPick::Bottom => (0..n.min(of)).collect(),
        }
    }
}

/// When the student replaces the teacher.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StudentKeep {
    #[default]
    IfClose,
    Always,
}

impl Default for DistillConfig {
    fn default() -> Self {
        DistillConfig {
            layers: 0,
            pick: LayerPick::Spread,
            epochs: 3,
            batch_size: 32,
            learning_rate: 1e-4,
            warmup_steps: 50,
            embedding_weight: 1.0,
            softness: 1.0,
            augment: 0,
            word_dropout: 0.2,
            max_tokens: 64,
            weight_decay: 0.01,
            grad_clip: 1.0,
            seed: 42,
            keep: StudentKeep::IfClose,
            tolerance: 0.003,
        }
    }
}

impl DistillConfig {
    pub fn is_off(&self) -> bool {
        self.layers == 0
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.is_off() {
            return Ok(());
        }
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return Err(format!("`distill.learning_rate` = {} must be in (0, 1]", self.learning_rate));
        }
        if self.epochs == 0 || self.batch_size == 0 {
            return Err("`distill.epochs` and `distill.batch_size` must be at least 1".into());
        }
        if self.max_tokens < 2 {
            return Err("`distill.max_tokens` must be at least 2".into());
        }
        if !(self.embedding_weight >= 0.0 && self.embedding_weight.is_finite()) {
            return Err(format!("`distill.embedding_weight` = {} must be a non-negative number", self.embedding_weight));
        }
        if !(self.softness > 0.0 && self.softness.is_finite()) {
            return Err(format!("`distill.softness` = {} must be a positive number", self.softness));
        }
        if !(0.0..1.0).contains(&self.word_dropout) {
            return Err(format!("`distill.word_dropout` = {} must be in [0, 1)", self.word_dropout));
        }
        if self.augment > 100 {
            return Err(format!("`distill.augment` = {} must be at most 100", self.augment));
        }
        if !(0.0..=1.0).contains(&self.tolerance) {
            return Err(format!("`distill.tolerance` = {} must be in [0, 1]", self.tolerance));
        }
        if self.weight_decay < 0.0 || self.grad_clip < 0.0 {
            return Err("`distill.weight_decay` and `distill.grad_clip` must not be negative".into());
        }
        Ok(())
    }

    fn optimization(&self) -> Optimization {
        Optimization::linear(self.learning_rate, self.warmup_steps, self.weight_decay, self.grad_clip)
    }
}

/// How a student's training went.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillOutcome {
    /// The layers kept, by the teacher's numbering.
    pub layers: Vec<usize>,
    /// The teacher's validation nearest-label accuracy, and the best student epoch's (both in
    /// burn fp32).
    pub teacher_valid_accuracy: f64,
    pub best_valid_accuracy: f64,
    pub best_epoch: usize,
    pub epochs: usize,
    /// The teacher's pass over the training records and the student's training.
    pub teacher_seconds: f64,
    pub train_seconds: f64,
}

/// `text` with each whitespace-separated word dropped with probability `p` (at least one kept).
pub(crate) fn drop_words(text: &str, p: f64, rng: &mut xmc_data::SplitMix64) -> String {
    let words: Vec<&str> = text.split_whitespace().collect();
    let kept: Vec<&str> = words.iter().copied().filter(|_| rng.next_f64() >= p).collect();
    match (kept.is_empty(), words.first()) {
        (true, Some(first)) => (*first).to_string(),
        _ => kept.join(" "),
    }
}

/// The texts the student learns on: the records, then `augment` views of each with words dropped.
fn training_views(train: &[Example], cfg: &DistillConfig) -> Vec<String> {
    let mut views: Vec<String> = train.iter().map(|e| e.0.to_string()).collect();
    let mut rng = xmc_data::SplitMix64::new(cfg.seed ^ 0xD157_111E);
    for _ in 0..cfg.augment {
        views.extend(train.iter().map(|e| drop_words(e.0, cfg.word_dropout, &mut rng)));
    }
    views
}

/// A model's validation figures, as the student is compared with its teacher.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct ValidFigures {
    pub accuracy: f64,
    pub macro_f1: f64,
    /// `None` where the validation split has no tail record.
    pub tail_accuracy: Option<f64>,
}

impl ValidFigures {
    /// Whether each figure is at most `tolerance` below `teacher`'s (a missing tail figure on
    /// either side is not compared).
    pub fn within(&self, teacher: &ValidFigures, tolerance: f64) -> bool {
        let close = |s: f64, t: f64| s >= t - tolerance - 1e-12;
        close(self.accuracy, teacher.accuracy)
            && close(self.macro_f1, teacher.macro_f1)
            && match (self.tail_accuracy, teacher.tail_accuracy) {
                (Some(s), Some(t)) => close(s, t),
                _ => true,
            }
    }
}

/// `student.json` in a model folder: the student tried, the teacher's and its validation
/// figures (each with the classifier's weights and gate fitted for it), and whether it was kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StudentRecord {
    pub training: DistillOutcome,
    pub teacher: ValidFigures,
    pub student: ValidFigures,
    pub tolerance: f64,
    pub keep: StudentKeep,
    pub kept: bool,
    /// These validation records also fitted the classifier's weights and chose the student.
    pub note: String,
}

impl StudentRecord {
    pub const FILE: &'static str = "student.json";
    pub const NOTE: &'static str = "validation figures of the models compared; the same records fitted each classifier's weights and gate and chose between them, so they are optimistic: the test split is the honest figure";

    /// Whether the student replaces the teacher under `keep`.
    pub fn decide(keep: StudentKeep, teacher: &ValidFigures, student: &ValidFigures, tolerance: f64) -> bool {
        match keep {
            StudentKeep::Always => true,
            StudentKeep::IfClose => student.within(teacher, tolerance),
        }
    }
}

/// The distillation loss of a batch: `student` and `teacher` unit embeddings [b, d], `labels`
/// the unit label vectors [n, d]. The soft targets' cross-entropy (the teacher's label
/// distribution against the student's, both at `temperature` times `softness`, times
/// `softness` squared) plus `embedding_weight` times the mean of (1 - cosine(student, teacher)) /
/// temperature.
pub fn distill_loss(student: Tensor<2>, teacher: Tensor<2>, labels: Tensor<2>, temperature: f64, softness: f64, embedding_weight: f64) -> Tensor<1> {
    let soft_temperature = temperature * softness;
    let s = student.clone().matmul(labels.clone().transpose()).div_scalar(soft_temperature);
    let t = teacher.clone().matmul(labels.transpose()).div_scalar(soft_temperature);
    let soft = -(softmax(t, 1) * log_softmax(s, 1)).sum_dim(1).mean().mul_scalar(softness * softness);
    let cosine = (student * teacher).sum_dim(1);
    let distance = (cosine.ones_like() - cosine).mean().div_scalar(temperature);
    soft + distance.mul_scalar(embedding_weight)
}

struct DistillObjective<'a> {
    student: SentenceEncoder,
    cfg: &'a DistillConfig,
    temperature: f64,
    record_tokens: Vec<Vec<u32>>,
    /// The teacher's embeddings of the training records, flat [records, d].
    teacher: Vec<f32>,
    dim: usize,
    labels: Tensor<2>,
    label_vectors: &'a [Vec<f32>],
    valid: &'a [Example<'a>],
    out: &'a Path,
}

impl Objective for DistillObjective<'_> {
    type Model = Bert;

    fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.record_tokens.len()).collect();
        epoch_rng(self.cfg.seed, epoch).shuffle(&mut order);
        order
    }

    fn batch_size(&self) -> usize {
        self.cfg.batch_size
    }

    fn batch_loss(&self, model: &Bert, chunk: &[usize]) -> Result<Tensor<1>> {
        let records: Vec<&[u32]> = chunk.iter().map(|&i| self.record_tokens[i].as_slice()).collect();
        let student = self.student.embed_tokens_with(model, &records, 0.0);
        let device = student.device();
        let d = self.dim;
        let flat: Vec<f32> = chunk.iter().flat_map(|&i| self.teacher[i * d..(i + 1) * d].iter().copied()).collect();
        let teacher = Tensor::<2>::from_data(TensorData::new(flat, [chunk.len(), d]), &device);
        Ok(distill_loss(student, teacher, self.labels.clone(), self.temperature, self.cfg.softness, self.cfg.embedding_weight))
    }

    fn validate(&self, model: &Bert) -> Result<f64> {
        nearest_label_accuracy(&self.student.with_weights(model.clone()), self.valid, self.label_vectors, EVAL_BATCH)
    }

    fn save_best(&self, model: &Bert) -> Result<()> {
        self.student.with_weights(model.clone()).save(self.out)?;
        let path = self.out.join(LABEL_VECTORS);
        std::fs::write(&path, serde_json::to_vec(self.label_vectors).expect("serialises")).map_err(|e| TrainError::io(&path, e))
    }
}

/// Trains a student of the classifier encoder in `teacher_dir` (whose unit label vectors are
/// `label_vectors`, its logits their cosines over `temperature`) on the `train` records and
/// writes the best epoch's (by validation nearest-label accuracy) to `out`, with the label
/// vectors beside it, as the fine-tuning writes its teacher. `teacher` embeds the training
/// records for the soft targets (on whatever path it was loaded for); `progress` hears of its
/// batches.
#[allow(clippy::too_many_arguments)]
pub fn distill_encoder(
    teacher_dir: &Path,
    teacher: &SentenceEncoder,
    label_vectors: &[Vec<f32>],
    temperature: f64,
    train: &[Example],
    valid: &[Example],
    cfg: &DistillConfig,
    out: &Path,
    resume: bool,
    progress: impl FnMut(usize),
) -> Result<DistillOutcome> {
    cfg.validate().map_err(TrainError::Config)?;
    if cfg.is_off() {
        return Err(TrainError::Config("`distill.layers` is 0: no student to train".into()));
    }
    if cfg.layers >= teacher.layers() {
        return Err(TrainError::Config(format!("`distill.layers` = {} must be fewer than the teacher's {} layers", cfg.layers, teacher.layers())));
    }
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    let started = std::time::Instant::now();
    let views = training_views(train, cfg);
    let texts: Vec<&str> = views.iter().map(String::as_str).collect();
    let targets = teacher.encode(&texts, EVAL_BATCH, progress)?;
    let teacher_seconds = started.elapsed().as_secs_f64();
    let dim = teacher.dim();
    if label_vectors.iter().any(|v| v.len() != dim) {
        return Err(TrainError::Config(format!("the teacher embeds in {dim} dimensions, but its label vectors do not all have {dim}")));
    }
    let full = SentenceEncoder::load(teacher_dir, &xmc_model::training_device())?;
    // On the path the student's epochs are validated on (burn fp32), so that the two compare.
    let teacher_valid_accuracy = nearest_label_accuracy(&full.valid(), valid, label_vectors, EVAL_BATCH)?;
    let layers = cfg.pick.layers(cfg.layers, full.layers());
    let student = full.student(&layers).expect("layers within the teacher's");
    let model = student.model().clone();
    let device = model.devices().into_iter().next().unwrap_or_else(xmc_model::training_device);
    let labels = Tensor::<2>::from_data(TensorData::new(label_vectors.concat(), [label_vectors.len(), dim]), &device);
    let record_tokens: Vec<Vec<u32>> = texts.iter().map(|t| Ok(truncate(student.tokenize(t)?, cfg.max_tokens))).collect::<Result<_>>()?;
    let checkpoint = out.join("checkpoint");
    let config = serde_json::to_vec(&(cfg, temperature)).expect("serialises");
    let vectors = serde_json::to_vec(label_vectors).expect("serialises");
    let mut fingerprint = Fingerprint::default()
        .part("configuration", [config.as_slice()])
        .part("label vectors", [vectors.as_slice()])
        .texts_part("training and validation records", train.iter().chain(valid).copied());
    let weights = teacher_dir.join(SentenceEncoder::FINE_TUNED_WEIGHTS);
    if weights.is_file() {
        fingerprint = fingerprint.file_part("teacher", &weights)?;
    }
    let run = FitRun {
        name: "distillation epoch",
        optimization: cfg.optimization(),
        epochs: cfg.epochs,
        patience: usize::MAX,
        seed: cfg.seed,
        out,
        checkpoint: &checkpoint,
        resume,
        fingerprint,
        baseline: None,
    };
    let objective = DistillObjective { student, cfg, temperature, record_tokens, teacher: targets.concat(), dim, labels, label_vectors, valid, out };
    let outcome = fit(&objective, model, &run)?;
    std::fs::remove_dir_all(&checkpoint).map_err(|e| TrainError::io(&checkpoint, e))?;
    Ok(DistillOutcome {
        layers,
        teacher_valid_accuracy,
        best_valid_accuracy: outcome.best_score,
        best_epoch: outcome.best_epoch,
        epochs: outcome.epochs,
        teacher_seconds,
        train_seconds: outcome.seconds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::label_vectors::tests::rows;

    #[test]
    fn the_loss_is_least_where_the_student_agrees_with_the_teacher() {
        let labels = rows(vec![[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]]);
        let teacher = rows(vec![[1.0, 0.0], [0.0, 1.0]]);
        let same = distill_loss(teacher.clone(), teacher.clone(), labels.clone(), 0.1, 1.0, 1.0).into_scalar::<f32>();
        let near = distill_loss(rows(vec![[0.8, 0.6], [0.0, 1.0]]), teacher.clone(), labels.clone(), 0.1, 1.0, 1.0).into_scalar::<f32>();
        let swapped = distill_loss(rows(vec![[0.0, 1.0], [1.0, 0.0]]), teacher.clone(), labels.clone(), 0.1, 1.0, 1.0).into_scalar::<f32>();
        assert!(same < near && near < swapped, "{same} {near} {swapped}");
        // With the student equal to the teacher, the soft term is the teacher's entropy and
        // the embedding term is zero: the loss does not depend on the embedding weight.
        let weighted = distill_loss(teacher.clone(), teacher.clone(), labels.clone(), 0.1, 1.0, 5.0).into_scalar::<f32>();
        assert!((same - weighted).abs() < 1e-5, "{same} {weighted}");
        // The embedding term is (1 - cos) / temperature, averaged: swapped rows are orthogonal.
        let apart = distill_loss(rows(vec![[0.0, 1.0], [1.0, 0.0]]), teacher, labels.clone(), 0.1, 1.0, 1.0).into_scalar::<f32>();
        let soft_only = apart - 10.0;
        assert!(soft_only > same, "{apart}");
        // Softness: the soft term at twice the temperature, times four.
        let near_student = rows(vec![[0.8, 0.6], [0.0, 1.0]]);
        let softer = distill_loss(near_student.clone(), rows(vec![[1.0, 0.0], [0.0, 1.0]]), labels.clone(), 0.1, 2.0, 0.0).into_scalar::<f32>();
        let at_double = distill_loss(near_student, rows(vec![[1.0, 0.0], [0.0, 1.0]]), labels, 0.2, 1.0, 0.0).into_scalar::<f32>();
        assert!((softer - 4.0 * at_double).abs() < 1e-4, "{softer} {at_double}");
    }

    #[test]
    fn the_student_is_kept_only_within_the_tolerance_on_every_figure() {
        let teacher = ValidFigures { accuracy: 0.80, macro_f1: 0.60, tail_accuracy: Some(0.50) };
        let close = ValidFigures { accuracy: 0.798, macro_f1: 0.61, tail_accuracy: Some(0.4975) };
        assert!(StudentRecord::decide(StudentKeep::IfClose, &teacher, &close, 0.003));
        for worse in [
            ValidFigures { accuracy: 0.796, ..close },
            ValidFigures { macro_f1: 0.596, ..close },
            ValidFigures { tail_accuracy: Some(0.49), ..close },
        ] {
            assert!(!StudentRecord::decide(StudentKeep::IfClose, &teacher, &worse, 0.003), "{worse:?}");
            assert!(StudentRecord::decide(StudentKeep::Always, &teacher, &worse, 0.003));
        }
        assert!(ValidFigures { tail_accuracy: None, ..close }.within(&teacher, 0.003));
    }

    #[test]
    fn a_student_keeps_the_spread_or_the_bottom_layers() {
        assert_eq!(LayerPick::Spread.layers(2, 6), vec![0, 5]);
        assert_eq!(LayerPick::Bottom.layers(2, 6), vec![0, 1]);
        assert_eq!(LayerPick::Bottom.layers(3, 6), vec![0, 1, 2]);
    }

    #[test]
    fn views_drop_words_and_keep_the_records_first() {
        let train = [("Title: red wooden train set Price: 12", 0u32), ("one", 1)];
        let cfg = DistillConfig { layers: 2, augment: 2, word_dropout: 0.5, ..DistillConfig::default() };
        let views = training_views(&train, &cfg);
        assert_eq!(views.len(), 6);
        assert_eq!(&views[..2], &[train[0].0.to_string(), "one".to_string()]);
        for (i, view) in views[2..].iter().enumerate() {
            let source: Vec<&str> = train[i % 2].0.split_whitespace().collect();
            let words: Vec<&str> = view.split_whitespace().collect();
            assert!(!words.is_empty() && words.iter().all(|w| source.contains(w)), "{view}");
        }
        assert!(views[2] != views[0] || views[4] != views[0], "words are dropped: {views:?}");
        assert_eq!(training_views(&train, &cfg), views, "seeded");
        assert_eq!(training_views(&train, &DistillConfig { augment: 0, ..cfg }).len(), 2);
    }

    #[test]
    fn settings_are_checked_only_when_a_student_is_asked_for() {
        assert!(DistillConfig { learning_rate: 0.0, ..DistillConfig::default() }.validate().is_ok());
        let on = DistillConfig { layers: 2, ..DistillConfig::default() };
        assert!(on.validate().is_ok());
        for (bad, key) in [
            (DistillConfig { learning_rate: 0.0, ..on.clone() }, "learning_rate"),
            (DistillConfig { epochs: 0, ..on.clone() }, "epochs"),
            (DistillConfig { tolerance: 2.0, ..on.clone() }, "tolerance"),
            (DistillConfig { embedding_weight: -1.0, ..on.clone() }, "embedding_weight"),
        ] {
            assert!(bad.validate().unwrap_err().contains(key), "{key}");
        }
    }
}
