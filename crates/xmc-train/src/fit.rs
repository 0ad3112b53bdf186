//! The one training loop, shared by the T5 generator and the contrastive fine-tuning of the
//! sentence encoder: AdamW under one of burn's learning-rate schedulers, per-epoch validation,
//! the best epoch kept, early stopping, and checkpoints from which a killed run resumes to the
//! weights the uninterrupted run reaches.
//!
//! A checkpoint is burn-train's [`FileCheckpointer`] files for the epoch (`model-{e}.bpk`,
//! `optim-{e}.bpk`, `scheduler-{e}.bpk`) and `state.json`, written last and atomically (a
//! rename), which names the epoch and carries the dropout stream's position and the run's
//! fingerprint. A process killed at any point leaves either the previous epoch's checkpoint or
//! the new one, never a mix.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::lr_scheduler::cosine::CosineAnnealingLrSchedulerConfig;
use burn::lr_scheduler::linear::LinearLrSchedulerConfig;
use burn::lr_scheduler::module_lr_scheduler::ModuleLrScheduler;
use burn::lr_scheduler::sequential::SequentialLrSchedulerConfig;
use burn::lr_scheduler::LrSchedulerConfig;
use burn::module::Module;
use burn::optim::{AdamWConfig, GradientsParams};
use burn::prelude::*;
use burn::train::checkpoint::{Checkpointer, FileCheckpointer};
use serde::{Deserialize, Serialize};
use indicatif::{ProgressBar, ProgressStyle};
use sha2::{Digest, Sha256};
use xmc_data::SplitMix64;

use crate::config::Schedule;
use crate::error::{Result, TrainError};

/// The optimiser and its learning-rate schedule.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Optimization {
    pub learning_rate: f64,
    /// Linear warm-up from `learning_rate / warmup_steps` over this many steps, then `schedule`.
    pub warmup_steps: usize,
    pub schedule: Schedule,
    pub weight_decay: f64,
    /// Gradient norm clipping (0 = off).
    pub grad_clip: f64,
}

impl Optimization {
    /// Linear warm-up over `warmup_steps`, then linear decay to zero at the last step: the
    /// encoder fine-tunings' schedule.
    pub fn linear(learning_rate: f64, warmup_steps: usize, weight_decay: f64, grad_clip: f64) -> Self {
        Optimization { learning_rate, warmup_steps, schedule: Schedule::Linear, weight_decay, grad_clip }
    }

    /// burn's scheduler for `total` steps: linear warm-up, then constant, linear decay to zero at
    /// the last step, or cosine annealing to zero.
    pub fn scheduler(&self, total: usize) -> Result<ModuleLrScheduler> {
        let lr = self.learning_rate;
        let warmup = self.warmup_steps;
        let span = total.saturating_sub(warmup).max(1);
        let after = match self.schedule {
            Schedule::Constant => LrSchedulerConfig::Constant(lr),
            Schedule::Linear => LrSchedulerConfig::Linear(LinearLrSchedulerConfig::new(lr, 0.0, span)),
            Schedule::Cosine => LrSchedulerConfig::Cosine(CosineAnnealingLrSchedulerConfig::new(lr, span)),
        };
        let scheduler = match warmup {
            0 => return schedule_error(SequentialLrSchedulerConfig::new(vec![after], vec![]).init()),
            1 => LrSchedulerConfig::Constant(lr),
            w => LrSchedulerConfig::Linear(LinearLrSchedulerConfig::new(lr / w as f64, lr, w - 1)),
        };
        schedule_error(SequentialLrSchedulerConfig::new(vec![scheduler, after], vec![warmup]).init())
    }
}

fn schedule_error(result: std::result::Result<ModuleLrScheduler, String>) -> Result<ModuleLrScheduler> {
    result.map_err(|e| TrainError::Config(format!("learning-rate schedule: {e}")))
}

/// What a run was made from, part by part (config, data, tokenizer ...): each part's SHA-256.
/// A checkpoint resumes only a run with the same parts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fingerprint(BTreeMap<String, String>);

impl Fingerprint {
    /// Adds a part from the pieces that make it up (each length-prefixed, so pieces cannot run
    /// into each other).
    pub fn part<'a>(mut self, name: &str, pieces: impl IntoIterator<Item = &'a [u8]>) -> Self {
        let mut hasher = Sha256::new();
        for piece in pieces {
            hasher.update((piece.len() as u64).to_le_bytes());
            hasher.update(piece);
        }
        self.0.insert(name.to_string(), format!("{:x}", hasher.finalize()));
        self
    }

    /// Adds a part from labelled texts (records, examples), each text length-prefixed.
    pub fn texts_part<'a>(self, name: &str, texts: impl IntoIterator<Item = (&'a str, u32)>) -> Self {
        let mut bytes = Vec::new();
        for (text, label) in texts {
            bytes.extend_from_slice(&(text.len() as u64).to_le_bytes());
            bytes.extend_from_slice(text.as_bytes());
            bytes.extend_from_slice(&label.to_le_bytes());
        }
        self.part(name, [bytes.as_slice()])
    }

    /// Adds a part from a file's bytes, read as a stream.
    pub fn file_part(mut self, name: &str, path: &Path) -> Result<Self> {
        let mut hasher = Sha256::new();
        let mut file = std::fs::File::open(path).map_err(|e| TrainError::io(path, e))?;
        std::io::copy(&mut file, &mut hasher).map_err(|e| TrainError::io(path, e))?;
        self.0.insert(name.to_string(), format!("{:x}", hasher.finalize()));
        Ok(self)
    }

    /// The parts whose digests differ (or that only one side has).
    fn differences(&self, other: &Fingerprint) -> Vec<String> {
        let names: std::collections::BTreeSet<&String> = self.0.keys().chain(other.0.keys()).collect();
        names.into_iter().filter(|n| self.0.get(*n) != other.0.get(*n)).cloned().collect()
    }
}

/// A training task as the loop sees it: examples in batches, a loss, a validation score.
pub(crate) trait Objective {
    type Model: Module + Clone;
    /// The example indices of one epoch, in training order.
    fn epoch_order(&self, epoch: usize) -> Vec<usize>;
    fn batch_size(&self) -> usize;
    /// Batches smaller than this are skipped (a contrastive batch needs a negative).
    fn min_batch(&self) -> usize {
        1
    }
    /// The loss of one batch of example indices.
    fn batch_loss(&self, model: &Self::Model, batch: &[usize]) -> Result<Tensor<1>>;
    /// Validation score of the model in inference mode; higher is better.
    fn validate(&self, model: &Self::Model) -> Result<f64>;
    /// Writes the best epoch's model (in inference mode).
    fn save_best(&self, model: &Self::Model) -> Result<()>;
}

/// How one run goes.
pub(crate) struct FitRun<'a> {
    /// The progress bar's name.
    pub name: &'static str,
    pub optimization: Optimization,
    pub epochs: usize,
    /// Stop after this many epochs without a better validation score (`usize::MAX`: never).
    pub patience: usize,
    /// Seeds the dropout masks.
    pub seed: u64,
    /// `metrics.jsonl` goes here.
    pub out: &'a Path,
    pub checkpoint: &'a Path,
    /// Continue from the checkpoint if there is one.
    pub resume: bool,
    pub fingerprint: Fingerprint,
    /// The validation score before any step (the pretrained model's); an epoch must beat it to be
    /// kept. `None`: the first epoch is kept whatever its score.
    pub baseline: Option<f64>,
}

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    /// Optimiser steps so far (absent from contrastive files of older versions).
    #[serde(default)]
    pub steps: usize,
    pub train_loss: f64,
    pub valid_accuracy: f64,
    /// The learning rate of the epoch's last step.
    #[serde(default)]
    pub learning_rate: f64,
    pub seconds: f64,
    pub records_per_s: f64,
}

/// `checkpoint/state.json`: where a run stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct RunState {
    epochs_done: usize,
    steps: usize,
    best_accuracy: f64,
    /// Training loss of the best epoch: among epochs of equal validation score, the lower wins.
    best_loss: f64,
    best_epoch: usize,
    epochs_since_best: usize,
    /// The dropout mask sequence's position after the last finished epoch, so that a resumed run
    /// draws the masks the uninterrupted one would have.
    dropout_stream: u64,
    fingerprint: Fingerprint,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct FitOutcome {
    pub epochs: usize,
    pub best_epoch: usize,
    /// The best validation score (the baseline's when no epoch beat it).
    pub best_score: f64,
    pub steps: usize,
    /// Steps and records of this process (a resumed run counts only its own).
    pub steps_run: usize,
    pub records_run: usize,
    pub seconds: f64,
}

const STATE: &str = "state.json";

fn artifact(path: impl Into<PathBuf>, message: impl ToString) -> TrainError {
    TrainError::Artifact { path: path.into(), message: message.to_string() }
}

/// Writes `value` to `path` through a temporary file and a rename.
fn write_json_atomically(path: &Path, value: &impl Serialize) -> Result<()> {
    let tmp = path.with_extension("json.tmp");
    std::fs::write(&tmp, serde_json::to_string_pretty(value).expect("serialises") + "\n").map_err(|e| TrainError::io(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| TrainError::io(path, e))
}

/// The state of a checkpoint that this run may continue, refused when it was made for another
/// fingerprint.
fn read_state(dir: &Path, fingerprint: &Fingerprint) -> Result<RunState> {
    let path = dir.join(STATE);
    let text = std::fs::read_to_string(&path).map_err(|e| TrainError::io(&path, e))?;
    let state: RunState = serde_json::from_str(&text).map_err(|e| {
        artifact(&path, format!("{e}; not a checkpoint this xmc can resume (written by an older version?): run again without --resume"))
    })?;
    let differ = state.fingerprint.differences(fingerprint);
    if !differ.is_empty() {
        return Err(artifact(
            &path,
            format!(
                "the checkpoint's run differs from this one in: {}; resuming it would not give the run asked for. Run without --resume (the checkpoint is then discarded)",
                differ.join(", ")
            ),
        ));
    }
    Ok(state)
}

/// Keeps the first `lines` lines of `path` (the epochs a checkpoint covers).
fn truncate_lines(path: &Path, lines: usize) -> Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let kept: String = text.lines().take(lines).map(|l| format!("{l}\n")).collect();
    std::fs::write(path, kept).map_err(|e| TrainError::io(path, e))
}

/// Trains `model` on `objective` for `run`.
pub(crate) fn fit<O: Objective>(objective: &O, mut model: O::Model, run: &FitRun) -> Result<FitOutcome> {
    let dir = run.checkpoint;
    std::fs::create_dir_all(dir).map_err(|e| TrainError::io(dir, e))?;
    let models = FileCheckpointer::new(dir, "model");
    let optims = FileCheckpointer::new(dir, "optim");
    let schedulers = FileCheckpointer::new(dir, "scheduler");
    let opt = &run.optimization;
    let mut optim_cfg = AdamWConfig::new().with_epsilon(1e-8).with_weight_decay(opt.weight_decay as f32);
    if opt.grad_clip > 0.0 {
        optim_cfg = optim_cfg.with_grad_clipping(Some(GradientClippingConfig::Norm(opt.grad_clip as f32)));
    }
    let mut optim = optim_cfg.init();
    let steps_in = |order: &[usize]| order.chunks(objective.batch_size()).filter(|c| c.len() >= objective.min_batch()).count();
    let total_steps = steps_in(&objective.epoch_order(0)) * run.epochs;
    let mut scheduler = opt.scheduler(total_steps.max(1))?;
    xmc_model::dropout::reseed(run.seed);
    let metrics_path = run.out.join("metrics.jsonl");

    let mut state = RunState {
        epochs_done: 0,
        steps: 0,
        best_accuracy: run.baseline.unwrap_or(f64::NEG_INFINITY),
        best_loss: if run.baseline.is_some() { f64::NEG_INFINITY } else { f64::INFINITY },
        best_epoch: 0,
        epochs_since_best: 0,
        dropout_stream: xmc_model::dropout::position(),
        fingerprint: run.fingerprint.clone(),
    };
    if run.resume && dir.join(STATE).is_file() {
        state = read_state(dir, &run.fingerprint)?;
        let e = state.epochs_done;
        let record = |what: &str, err: burn::train::checkpoint::CheckpointerError| artifact(dir.join(format!("{what}-{e}.bpk")), err);
        model = model.try_load_record(models.restore(e).map_err(|err| record("model", err))?).map_err(|err| artifact(dir.join(format!("model-{e}.bpk")), err))?;
        optim = optim.load_record(optims.restore(e).map_err(|err| record("optim", err))?);
        scheduler = scheduler.load_record(schedulers.restore(e).map_err(|err| record("scheduler", err))?);
        xmc_model::dropout::restore(state.dropout_stream);
        truncate_lines(&metrics_path, e)?;
        tracing::info!("resuming after epoch {e} (step {})", state.steps);
    } else {
        std::fs::remove_file(&metrics_path).ok();
        std::fs::remove_file(dir.join(STATE)).ok();
    }
    let mut metrics_file =
        std::fs::OpenOptions::new().create(true).append(true).open(&metrics_path).map_err(|e| TrainError::io(&metrics_path, e))?;

    let started = Instant::now();
    let (steps_at_start, mut records_run) = (state.steps, 0usize);
    for epoch in state.epochs_done..run.epochs {
        if state.epochs_since_best >= run.patience && state.epochs_done > 0 {
            break;
        }
        let epoch_started = Instant::now();
        let order = objective.epoch_order(epoch);
        let bar = epoch_bar(run.name, order.len(), epoch, run.epochs);
        let (mut loss_sum, mut batches, mut lr) = (0.0, 0usize, 0.0);
        for chunk in order.chunks(objective.batch_size()) {
            bar.inc(chunk.len() as u64);
            if chunk.len() < objective.min_batch() {
                continue;
            }
            let loss = objective.batch_loss(&model, chunk)?;
            let loss_value = loss.clone().into_scalar::<f32>() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            let rate = scheduler.step();
            lr = rate.base();
            model = optim.step(rate, model, grads);
            state.steps += 1;
            loss_sum += loss_value;
            batches += 1;
            bar.set_message(format!("loss {:.4}", loss_sum / batches as f64));
        }
        bar.finish_and_clear();
        let train_seconds = epoch_started.elapsed().as_secs_f64();
        records_run += order.len();
        let valid_model = model.valid();
        let score = objective.validate(&valid_model)?;
        let line = EpochMetrics {
            epoch: epoch + 1,
            steps: state.steps,
            train_loss: loss_sum / batches.max(1) as f64,
            valid_accuracy: score,
            learning_rate: lr,
            seconds: epoch_started.elapsed().as_secs_f64(),
            records_per_s: order.len() as f64 / train_seconds.max(1e-9),
        };
        tracing::info!("{} {}: loss {:.4}, validation {:.4}, {:.0} records/s", run.name, line.epoch, line.train_loss, score, line.records_per_s);
        writeln!(metrics_file, "{}", serde_json::to_string(&line).expect("serialises")).map_err(|e| TrainError::io(&metrics_path, e))?;
        if score > state.best_accuracy || (score == state.best_accuracy && line.train_loss < state.best_loss) {
            state.best_accuracy = score;
            state.best_loss = line.train_loss;
            state.best_epoch = epoch + 1;
            state.epochs_since_best = 0;
            objective.save_best(&valid_model)?;
        } else {
            state.epochs_since_best += 1;
        }
        // The checkpoint of this epoch, then the state that points at it, then the old one goes.
        let e = epoch + 1;
        let saved = |what: &str, result: std::result::Result<(), burn::train::checkpoint::CheckpointerError>| {
            result.map_err(|err| artifact(dir.join(format!("{what}-{e}.bpk")), err))
        };
        saved("model", models.save(e, model.clone().into_record()))?;
        saved("optim", optims.save(e, optim.to_record()))?;
        saved("scheduler", schedulers.save(e, scheduler.to_record()))?;
        state.epochs_done = e;
        state.dropout_stream = xmc_model::dropout::position();
        write_json_atomically(&dir.join(STATE), &state)?;
        for old in 0..e {
            Checkpointer::<burn::store::ModuleRecord>::delete(&models, old).ok();
            Checkpointer::<burn::optim::OptimizerRecord>::delete(&optims, old).ok();
            Checkpointer::<burn::lr_scheduler::LrSchedulerRecord>::delete(&schedulers, old).ok();
        }
    }
    Ok(FitOutcome {
        epochs: state.epochs_done,
        best_epoch: state.best_epoch,
        best_score: state.best_accuracy,
        steps: state.steps,
        steps_run: state.steps - steps_at_start,
        records_run,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The random stream of one epoch: a seed gives the same data order per epoch, resumed or not.
pub(crate) fn epoch_rng(seed: u64, epoch: usize) -> SplitMix64 {
    SplitMix64::new(seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

/// The progress bar of one training epoch over `len` records, with loss and throughput.
pub(crate) fn epoch_bar(name: &str, len: usize, epoch: usize, epochs: usize) -> ProgressBar {
    let bar = ProgressBar::new(len as u64);
    bar.set_style(
        ProgressStyle::with_template(&format!("{name} {{prefix}} [{{bar:30}}] {{pos}}/{{len}} {{msg}} ({{per_sec}}, {{eta}})"))
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{}/{}", epoch + 1, epochs));
    bar
}


#[cfg(test)]
mod tests {
    use super::*;

    /// The closed form the schedules follow: warm-up to `lr`, then constant, linear or cosine to 0.
    fn closed_form(o: &Optimization, step: usize, total: usize) -> f64 {
        let lr = o.learning_rate;
        if step < o.warmup_steps {
            return lr * (step + 1) as f64 / o.warmup_steps as f64;
        }
        let progress = ((step - o.warmup_steps) as f64 / total.saturating_sub(o.warmup_steps).max(1) as f64).min(1.0);
        match o.schedule {
            Schedule::Constant => lr,
            Schedule::Linear => lr * (1.0 - progress),
            Schedule::Cosine => lr * 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
        }
    }

    #[test]
    fn burn_schedulers_follow_warm_up_then_decay() {
        for schedule in [Schedule::Constant, Schedule::Linear, Schedule::Cosine] {
            for warmup_steps in [0, 1, 10] {
                let o = Optimization { learning_rate: 1e-3, warmup_steps, schedule, weight_decay: 0.0, grad_clip: 0.0 };
                let mut scheduler = o.scheduler(110).unwrap();
                for step in 0..110 {
                    let (got, want) = (scheduler.step().base(), closed_form(&o, step, 110));
                    assert!((got - want).abs() < 1e-12, "{schedule:?}, warm-up {warmup_steps}, step {step}: {got} != {want}");
                }
            }
        }
    }

    #[test]
    fn a_restored_scheduler_continues_where_it_stopped() {
        let o = Optimization { learning_rate: 1e-3, warmup_steps: 5, schedule: Schedule::Linear, weight_decay: 0.0, grad_clip: 0.0 };
        let mut straight = o.scheduler(50).unwrap();
        let mut first = o.scheduler(50).unwrap();
        for _ in 0..17 {
            straight.step();
            first.step();
        }
        let mut resumed = o.scheduler(50).unwrap().load_record(first.to_record());
        for _ in 17..50 {
            assert_eq!(straight.step().base(), resumed.step().base());
        }
    }

    #[test]
    fn fingerprints_name_the_parts_that_differ() {
        let a = Fingerprint::default().part("config", [&b"lr=1"[..]]).part("data", [&b"x"[..], &b"y"[..]]);
        let b = Fingerprint::default().part("config", [&b"lr=2"[..]]).part("data", [&b"x"[..], &b"y"[..]]);
        assert_eq!(a.differences(&b), vec!["config".to_string()]);
        assert!(a.differences(&a.clone()).is_empty());
        // Pieces are length-prefixed: "xy" is not "x" + "y".
        let joined = Fingerprint::default().part("config", [&b"lr=1"[..]]).part("data", [&b"xy"[..]]);
        assert_eq!(a.differences(&joined), vec!["data".to_string()]);
    }
}
