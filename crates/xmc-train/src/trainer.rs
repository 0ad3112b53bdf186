//! Training the T5 generator: teacher-forced cross-entropy over the label codes and constrained
//! greedy accuracy on the validation records, run by the common loop in [`crate::fit`].

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::nn::loss::{CrossEntropyLoss, CrossEntropyLossConfig};
use burn::prelude::*;

use serde::{Deserialize, Serialize};
use xmc_data::{PreparedData, Split};
use xmc_model::{ModelConfig, T5, T5Config};

use crate::artifact::{MODEL_FORMAT, ModelMeta, save_model_files};
use crate::batch::{decoder_batch, pad_batch};
use crate::config::TrainConfig;
use crate::error::{Result, TrainError};
use crate::fit::{FitRun, Fingerprint, Objective, Optimization, epoch_rng, fit};
use crate::predict::{Batching, predict_inputs};
use crate::task::Seq2SeqTask;

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

/// The tokenizer a run was trained with, kept beside its checkpoint so that a resumed run
/// continues with it rather than training another.
pub fn checkpoint_tokenizer(out: &Path) -> PathBuf {
    out.join("checkpoint").join("tokenizer.json")
}

/// The T5 generator's side of the training loop: teacher-forced cross-entropy over the target
/// codes, constrained greedy accuracy on the validation records.
struct GeneratorObjective<'a> {
    task: &'a Seq2SeqTask,
    cfg: &'a TrainConfig,
    n_labels: usize,
    train_ids: Vec<Vec<u32>>,
    train_labels: Vec<u32>,
    /// Targets in output-column space (the same ids when the softmax covers the whole vocabulary).
    column_targets: Vec<Vec<u32>>,
    pad_column: u32,
    loss: CrossEntropyLoss,
    device: Device,
    valid_inputs: Vec<&'a str>,
    valid_labels: Vec<u32>,
    out: &'a Path,
}

impl Objective for GeneratorObjective<'_> {
    type Model = T5;

    fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        epoch_order(&self.train_labels, self.n_labels, self.cfg, epoch)
    }

    fn batch_size(&self) -> usize {
        self.cfg.batch_size
    }

    fn batch_loss(&self, model: &T5, chunk: &[usize]) -> Result<Tensor<1>> {
        let pad = self.task.tokenizer.pad_id;
        let inputs: Vec<&[u32]> = chunk.iter().map(|&i| self.train_ids[i].as_slice()).collect();
        let targets: Vec<&[u32]> = chunk.iter().map(|&i| self.task.targets[self.train_labels[i] as usize].as_slice()).collect();
        let (ids, mask) = pad_batch(&inputs, pad, &self.device);
        let (dec_in, _) = decoder_batch(&targets, pad, pad, &self.device);
        let columns: Vec<&[u32]> = chunk.iter().map(|&i| self.column_targets[self.train_labels[i] as usize].as_slice()).collect();
        let (_, dec_out) = decoder_batch(&columns, self.pad_column, self.pad_column, &self.device);
        let logits = model.forward_over(ids, mask, dec_in, self.task.output_tokens.as_deref());
        let [b, t, v] = logits.dims();
        Ok(self.loss.forward(logits.reshape([b * t, v]), dec_out.reshape([b * t])))
    }

    fn validate(&self, model: &T5) -> Result<f64> {
        accuracy(model, self.task, &self.valid_inputs, &self.valid_labels, self.cfg.max_input_tokens)
    }

    fn save_best(&self, model: &T5) -> Result<()> {
        let path = self.out.join("model.bpk");
        xmc_model::save_weights(model, &path).map_err(|e| TrainError::Artifact { path, message: e.to_string() })
    }
}

/// Trains into `out` (the model folder; `out/checkpoint` holds the resumable state). With
/// `resume`, a checkpoint made for the same configuration, data and tokenizer is continued; one
/// made for another is refused.
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
    let mut valid: Vec<_> = data.split(Split::Valid).collect();
    if valid.is_empty() {
        tracing::warn!("no validation records: the best epoch is chosen by training accuracy");
        valid = train.clone();
    }
    let tokenizer_json = task.tokenizer.to_json()?;
    let configuration = serde_json::to_vec(&(model_cfg, cfg, template)).expect("serialises");
    let targets = serde_json::to_vec(&task.targets).expect("serialises");
    let fingerprint = Fingerprint::default()
        .part("configuration", [configuration.as_slice()])
        .texts_part("training and validation records", train.iter().chain(&valid).map(|r| (r.input.as_str(), r.label)))
        .part("tokenizer", [tokenizer_json.as_bytes(), targets.as_slice()]);
    let resuming = resume && checkpoint.join("state.json").is_file();
    if !resuming {
        let path = checkpoint_tokenizer(out);
        std::fs::write(&path, &tokenizer_json).map_err(|e| TrainError::io(&path, e))?;
    }

    let mut model: T5 = match &model_cfg.init_from {
        Some(dir) => t5_cfg.init(&device).load_hf_weights(&Path::new(dir).join("model.safetensors"))?,
        None => t5_cfg.init_seeded(&device, cfg.seed),
    };
    if model_cfg.encoder == xmc_model::EncoderKind::Bert {
        model = model.load_bert_encoder(&Path::new(&model_cfg.encoder_dir).join("model.safetensors"))?;
    }
    let parameters = model.num_params();
    let pad_column = task.output_column(task.tokenizer.pad_id);
    let objective = GeneratorObjective {
        task,
        cfg,
        n_labels: data.labels.len(),
        train_ids: train.iter().map(|r| task.input_ids(&r.input, cfg.max_input_tokens)).collect::<Result<_>>()?,
        train_labels: train.iter().map(|r| r.label).collect(),
        column_targets: task.targets.iter().map(|t| t.iter().map(|&x| task.output_column(x)).collect()).collect(),
        pad_column,
        loss: CrossEntropyLossConfig::new()
            .with_pad_tokens(Some(vec![pad_column as usize]))
            .with_smoothing((cfg.label_smoothing > 0.0).then_some(cfg.label_smoothing as f32))
            .init(&device),
        device,
        valid_inputs: valid.iter().map(|r| r.input.as_str()).collect(),
        valid_labels: valid.iter().map(|r| r.label).collect(),
        out,
    };
    let run = FitRun {
        name: "epoch",
        optimization: Optimization {
            learning_rate: cfg.learning_rate,
            warmup_steps: cfg.warmup_steps,
            schedule: cfg.schedule,
            weight_decay: cfg.weight_decay,
            grad_clip: cfg.grad_clip,
        },
        epochs: cfg.max_epochs,
        patience: cfg.patience,
        seed: cfg.seed,
        out,
        checkpoint: &checkpoint,
        resume: resuming,
        fingerprint,
        baseline: None,
    };
    let outcome = fit(&objective, model, &run)?;
    Ok(TrainOutcome {
        epochs: outcome.epochs,
        best_epoch: outcome.best_epoch,
        best_valid_accuracy: outcome.best_score.max(0.0),
        steps: outcome.steps,
        train_seconds: outcome.seconds,
        steps_per_s: outcome.steps_run as f64 / outcome.seconds.max(1e-9),
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
