//! The training loop: teacher-forced cross-entropy, AdamW with warm-up and decay, per-epoch
//! validation accuracy with constrained greedy decoding, best checkpoint, early stopping, and
//! checkpoints that let a killed run resume to the same result.

use std::io::Write;
use std::path::Path;
use std::time::Instant;

use burn::grad_clipping::GradientClippingConfig;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamWConfig, GradientsParams};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use xmc_data::{PreparedData, Split, SplitMix64};
use xmc_model::{ModelConfig, T5, T5Config};

use crate::artifact::{MODEL_FORMAT, ModelMeta, save_model_files};
use crate::batch::{decoder_batch, pad_batch};
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::predict::{Batching, predict_inputs};
use crate::task::Seq2SeqTask;

/// One line of `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    pub epoch: usize,
    pub steps: usize,
    pub train_loss: f64,
    pub valid_accuracy: f64,
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
    /// Training loss of the best epoch: among epochs of equal validation accuracy, the lower wins.
    best_loss: f64,
    best_epoch: usize,
    epochs_since_best: usize,
    /// The dropout mask sequence's position after the last finished epoch, so that a resumed run
    /// draws the masks the uninterrupted one would have (absent in older checkpoints: reseeded).
    #[serde(default)]
    dropout_stream: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainOutcome {
    pub epochs: usize,
    pub best_epoch: usize,
    pub best_valid_accuracy: f64,
    pub steps: usize,
    pub train_seconds: f64,
    pub steps_per_s: f64,
    pub parameters: usize,
}

/// The T5 shape for a task: the preset (or a pretrained folder) at the tokenizer's vocabulary.
pub fn t5_config(model: &ModelConfig, vocab_size: usize) -> Result<T5Config> {
    let cfg = match &model.init_from {
        Some(dir) => T5Config::from_hf(&Path::new(dir).join("config.json"))?,
        None => xmc_model::t5::preset(&model.preset, vocab_size)
            .ok_or_else(|| TrainError::Config(format!("unknown preset {}", model.preset)))?,
    };
    if cfg.vocab_size < vocab_size {
        return Err(TrainError::Config(format!(
            "the model's vocabulary ({}) is smaller than the tokenizer's ({vocab_size}); use the model's own tokenizer.json",
            cfg.vocab_size
        )));
    }
    let cfg = match model.encoder {
        xmc_model::EncoderKind::Bert => {
            cfg.with_bert_encoder(Some(xmc_model::BertConfig::load(&Path::new(&model.encoder_dir).join("config.json"))?))
        }
        xmc_model::EncoderKind::T5 => cfg,
    };
    Ok(cfg.with_dropout_rate(model.dropout))
}

/// Training examples of one epoch, shuffled; labels below `tail_min_per_epoch` records repeat.
fn epoch_order(label_of: &[u32], n_labels: usize, cfg: &TrainConfig, epoch: usize) -> Vec<usize> {
    let mut order: Vec<usize> = (0..label_of.len()).collect();
    if cfg.tail_min_per_epoch > 0 {
        let mut by_label: Vec<Vec<usize>> = vec![Vec::new(); n_labels];
        for (i, &l) in label_of.iter().enumerate() {
            by_label[l as usize].push(i);
        }
        for records in by_label.iter().filter(|r| !r.is_empty()) {
            for extra in records.len()..cfg.tail_min_per_epoch {
                order.push(records[extra % records.len()]);
            }
        }
    }
    epoch_rng(cfg.seed, epoch).shuffle(&mut order);
    order
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

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    std::fs::write(path, serde_json::to_string_pretty(value).expect("serialises") + "\n").map_err(|e| TrainError::io(path, e))
}

/// Accuracy of constrained greedy decoding on (input ids, label) pairs.
pub fn accuracy(model: &T5, task: &Seq2SeqTask, inputs: &[&str], labels: &[u32], max_input_tokens: usize) -> Result<f64> {
    if inputs.is_empty() {
        return Ok(0.0);
    }
    let decode = task.decode_config(1, 1);
    let predictions = predict_inputs(model, task, inputs, max_input_tokens, &decode, Batching::new(64), |_| {})?;
    let correct = predictions.iter().zip(labels).filter(|(p, l)| p.first().is_some_and(|h| h.label == **l)).count();
    Ok(correct as f64 / inputs.len() as f64)
}

/// Trains into `out` (the model folder; `out/checkpoint` holds the resumable state).
pub fn train(
    data: &PreparedData,
    task: &Seq2SeqTask,
    model_cfg: &ModelConfig,
    cfg: &TrainConfig,
    template: &xmc_data::InputTemplate,
    out: &Path,
    resume: bool,
) -> Result<TrainOutcome> {
    cfg.validate().map_err(TrainError::Config)?;
    let device = xmc_model::training_device();
    let t5_cfg = t5_config(model_cfg, task.tokenizer.vocab_size())?;
    let checkpoint = out.join("checkpoint");
    std::fs::create_dir_all(&checkpoint).map_err(|e| TrainError::io(&checkpoint, e))?;
    let meta = ModelMeta { format: MODEL_FORMAT, xmc_version: env!("CARGO_PKG_VERSION").into(), model: model_cfg.clone(), train: cfg.clone(), template: template.clone() };
    save_model_files(out, &meta, &t5_cfg, task, &data.labels)?;

    let train: Vec<_> = data.split(Split::Train).collect();
    let train_ids: Vec<Vec<u32>> = train.iter().map(|r| task.input_ids(&r.input, cfg.max_input_tokens)).collect::<Result<_>>()?;
    let train_labels: Vec<u32> = train.iter().map(|r| r.label).collect();
    let mut valid: Vec<_> = data.split(Split::Valid).collect();
    if valid.is_empty() {
        tracing::warn!("no validation records: the best epoch is chosen by training accuracy");
        valid = train.clone();
    }
    let valid_inputs: Vec<&str> = valid.iter().map(|r| r.input.as_str()).collect();
    let valid_labels: Vec<u32> = valid.iter().map(|r| r.label).collect();

    let mut model: T5 = match &model_cfg.init_from {
        Some(dir) => t5_cfg.init(&device).load_hf_weights(&Path::new(dir).join("model.safetensors"))?,
        None => t5_cfg.init_seeded(&device, cfg.seed),
    };
    if model_cfg.encoder == xmc_model::EncoderKind::Bert {
        model = model.load_bert_encoder(&Path::new(&model_cfg.encoder_dir).join("model.safetensors"))?;
    }
    // The run's dropout masks come from its seed, whichever way the weights were initialised.
    xmc_model::dropout::reseed(cfg.seed);
    let parameters = model.num_params();
    let mut optim_cfg = AdamWConfig::new().with_epsilon(1e-8).with_weight_decay(cfg.weight_decay as f32);
    if cfg.grad_clip > 0.0 {
        optim_cfg = optim_cfg.with_grad_clipping(Some(GradientClippingConfig::Norm(cfg.grad_clip as f32)));
    }
    let mut optim = optim_cfg.init();
    let mut state = RunState { epochs_done: 0, steps: 0, best_accuracy: -1.0, best_loss: f64::INFINITY, best_epoch: 0, epochs_since_best: 0, dropout_stream: None };
    let state_path = checkpoint.join("state.json");
    if resume && state_path.is_file() {
        state = serde_json::from_str(&std::fs::read_to_string(&state_path).map_err(|e| TrainError::io(&state_path, e))?)
            .map_err(|e| TrainError::Artifact { path: state_path.clone(), message: e.to_string() })?;
        model = model
            .try_load_file(checkpoint.join("model.bpk"))
            .map_err(|e| TrainError::Artifact { path: checkpoint.join("model.bpk"), message: e.to_string() })?;
        optim = optim
            .load(checkpoint.join("optim.bpk"))
            .map_err(|e| TrainError::Artifact { path: checkpoint.join("optim.bpk"), message: e.to_string() })?;
        if let Some(position) = state.dropout_stream {
            xmc_model::dropout::restore(position);
        }
        tracing::info!("resuming after epoch {} (step {})", state.epochs_done, state.steps);
    } else {
        let _ = std::fs::remove_file(out.join("metrics.jsonl"));
    }

    // Targets in output-column space (the same ids when the softmax covers the whole vocabulary).
    let pad_column = task.output_column(task.tokenizer.pad_id);
    let column_targets: Vec<Vec<u32>> = task.targets.iter().map(|t| t.iter().map(|&x| task.output_column(x)).collect()).collect();
    let loss_fn = CrossEntropyLossConfig::new().with_pad_tokens(Some(vec![pad_column as usize])).init(&device);
    let steps_per_epoch = epoch_order(&train_labels, data.labels.len(), cfg, 0).len().div_ceil(cfg.batch_size);
    let total_steps = steps_per_epoch * cfg.max_epochs;
    let started = Instant::now();
    let steps_at_start = state.steps;
    let mut metrics_file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out.join("metrics.jsonl"))
        .map_err(|e| TrainError::io(out.join("metrics.jsonl"), e))?;
    for epoch in state.epochs_done..cfg.max_epochs {
        if state.epochs_since_best >= cfg.patience && state.epochs_done > 0 {
            break;
        }
        let epoch_started = Instant::now();
        let order = epoch_order(&train_labels, data.labels.len(), cfg, epoch);
        let bar = epoch_bar("epoch", order.len(), epoch, cfg.max_epochs);
        let (mut loss_sum, mut batches) = (0.0, 0usize);
        let mut lr = cfg.learning_rate;
        for chunk in order.chunks(cfg.batch_size) {
            let inputs: Vec<&[u32]> = chunk.iter().map(|&i| train_ids[i].as_slice()).collect();
            let targets: Vec<&[u32]> = chunk.iter().map(|&i| task.targets[train_labels[i] as usize].as_slice()).collect();
            let (ids, mask) = pad_batch(&inputs, task.tokenizer.pad_id, &device);
            let (dec_in, _) = decoder_batch(&targets, task.tokenizer.pad_id, task.tokenizer.pad_id, &device);
            let columns: Vec<&[u32]> = chunk.iter().map(|&i| column_targets[train_labels[i] as usize].as_slice()).collect();
            let (_, dec_out) = decoder_batch(&columns, pad_column, pad_column, &device);
            let logits = model.forward_over(ids, mask, dec_in, task.output_tokens.as_deref());
            let [b, t, v] = logits.dims();
            let loss = loss_fn.forward(logits.reshape([b * t, v]), dec_out.reshape([b * t]));
            let loss_value: f64 = loss.clone().into_scalar::<f32>() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            lr = cfg.learning_rate_at(state.steps, total_steps);
            model = optim.step(lr, model, grads);
            state.steps += 1;
            loss_sum += loss_value;
            batches += 1;
            bar.inc(chunk.len() as u64);
            bar.set_message(format!("loss {:.4}", loss_sum / batches as f64));
        }
        bar.finish_and_clear();
        let train_seconds = epoch_started.elapsed().as_secs_f64();
        let valid_model = model.valid();
        let valid_accuracy = accuracy(&valid_model, task, &valid_inputs, &valid_labels, cfg.max_input_tokens)?;
        let metrics = EpochMetrics {
            epoch: epoch + 1,
            steps: state.steps,
            train_loss: loss_sum / batches.max(1) as f64,
            valid_accuracy,
            learning_rate: lr,
            seconds: epoch_started.elapsed().as_secs_f64(),
            records_per_s: order.len() as f64 / train_seconds,
        };
        tracing::info!(
            "epoch {}: loss {:.4}, valid accuracy {:.4}, {:.0} records/s",
            metrics.epoch,
            metrics.train_loss,
            metrics.valid_accuracy,
            metrics.records_per_s
        );
        writeln!(metrics_file, "{}", serde_json::to_string(&metrics).expect("serialises")).map_err(|e| TrainError::io(out.join("metrics.jsonl"), e))?;
        state.epochs_done = epoch + 1;
        let better = valid_accuracy > state.best_accuracy || (valid_accuracy == state.best_accuracy && metrics.train_loss < state.best_loss);
        if better {
            state.best_accuracy = valid_accuracy;
            state.best_loss = metrics.train_loss;
            state.best_epoch = epoch + 1;
            state.epochs_since_best = 0;
            xmc_model::save_weights(&valid_model, &out.join("model.bpk")).map_err(|e| TrainError::Artifact { path: out.join("model.bpk"), message: e.to_string() })?;
        } else {
            state.epochs_since_best += 1;
        }
        model.clone().save_file(checkpoint.join("model.bpk")).map_err(|e| TrainError::Artifact { path: checkpoint.join("model.bpk"), message: e.to_string() })?;
        optim.save(checkpoint.join("optim.bpk")).map_err(|e| TrainError::Artifact { path: checkpoint.join("optim.bpk"), message: e.to_string() })?;
        state.dropout_stream = Some(xmc_model::dropout::position());
        write_json(&state_path, &state)?;
    }
    let train_seconds = started.elapsed().as_secs_f64();
    let steps_run = state.steps - steps_at_start;
    Ok(TrainOutcome {
        epochs: state.epochs_done,
        best_epoch: state.best_epoch,
        best_valid_accuracy: state.best_accuracy.max(0.0),
        steps: state.steps,
        train_seconds,
        steps_per_s: steps_run as f64 / train_seconds.max(1e-9),
        parameters,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oversampling_brings_small_labels_up_to_the_minimum() {
        let labels = [0u32, 0, 0, 0, 1, 2, 2];
        let cfg = TrainConfig { tail_min_per_epoch: 3, ..TrainConfig::default() };
        let order = epoch_order(&labels, 3, &cfg, 0);
        let count = |l: u32| order.iter().filter(|&&i| labels[i] == l).count();
        assert_eq!((count(0), count(1), count(2)), (4, 3, 3));
        let plain = epoch_order(&labels, 3, &TrainConfig::default(), 0);
        assert_eq!(plain.len(), labels.len());
        assert_ne!(epoch_order(&labels, 3, &cfg, 1), order, "each epoch shuffles anew");
    }
}
