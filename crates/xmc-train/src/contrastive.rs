//! Fine-tuning the sentence encoder for cluster search: an in-batch contrastive loss (InfoNCE,
//! both directions) between a record's text and its label's text. In a batch of `b` pairs each
//! record must pick its own label's text among the `b` label texts and each label text its
//! record; other records of the same label are not counted as negatives.

use std::path::Path;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use serde::{Deserialize, Serialize};
use xmc_model::{Bert, SentenceEncoder};

use crate::epoch_sample;
use crate::error::Result;
use crate::fit::{Objective, Optimization};
use crate::fit::epoch_rng;

/// The `[contrastive]` section of an experiment config (used by `method = "cluster-search"`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContrastiveConfig {
    /// Epochs over the training records; 0 uses the pretrained encoder as it is.
    pub epochs: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    /// Linear warm-up steps, then linear decay to zero at the last step.
    pub warmup_steps: usize,
    /// Softmax temperature of the cosine similarities.
    pub temperature: f64,
    /// Record tokens kept (label texts are short).
    pub max_tokens: usize,
    /// At most this many records of one label per epoch (0 = all), so that head labels do not
    /// crowd the tail out of the batches.
    pub max_per_label: usize,
    /// At most this many training records per epoch (0 = all): a budget that bounds the
    /// fine-tuning's time whatever the catalogue's size. They are drawn anew each epoch under the
    /// highest per-label cap that fits, so the tail keeps its records and the head is sampled.
    /// Left out of the serialised config at 0 (the fingerprints of earlier runs stay valid).
    #[serde(skip_serializing_if = "is_zero")]
    pub max_records: usize,
    /// At most this many validation records (a seeded sample) score each epoch for the choice
    /// of the best one (0 = all). Left out of the serialised config at 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub max_valid_records: usize,
    /// Batches of records of similar token length (windows of 64 batches sorted by length, the
    /// batches shuffled), so that padding costs little. Left out of the serialised config when off.
    #[serde(skip_serializing_if = "is_false")]
    pub length_batches: bool,
    pub weight_decay: f64,
    pub grad_clip: f64,
    pub seed: u64,
    /// What a record is pulled towards (left out of the serialised config at its default, so that
    /// the fingerprints of runs from before the key stay valid).
    #[serde(skip_serializing_if = "FineTuneLoss::is_pairs")]
    pub loss: FineTuneLoss,
    /// With the labels loss and the xr method: how many encoders are fine-tuned (seeds `seed`,
    /// `seed + 1`, ...), their classifiers averaged (left out of the serialised config at 1).
    #[serde(skip_serializing_if = "is_one")]
    pub members: usize,
    /// With the labels loss and the xr method: an xr model folder whose fine-tuned classifier
    /// encoder and label vectors are taken instead of fine-tuning again (for experiments on
    /// what follows the fine-tuning: the folder is read as it is, its settings not compared
    /// with these). Left out of the serialised config when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reuse: Option<std::path::PathBuf>,
    /// The encoder's dropout while fine-tuning (BERT's and MPNet's own places; their pretraining
    /// used 0.1), 0 = none. Left out of the serialised config at 0, so the fingerprints of runs
    /// from before the key stay valid.
    #[serde(skip_serializing_if = "is_zero_rate")]
    pub dropout: f64,
    /// With the labels loss: logit adjustment in the loss (Menon et al., 2021), each label's
    /// logit raised by this weight times its log share of the training records while
    /// fine-tuning, so that the learnt classifier does not lean towards frequent labels (0 =
    /// none; 1 is the paper's). Left out of the serialised config at 0.
    #[serde(skip_serializing_if = "is_zero_rate")]
    pub logit_adjustment: f64,
    /// With the labels loss: each label's vector is its own plus one learnt vector per ancestor
    /// on its taxonomy path (starting at zero), so that the records of every label under a
    /// parent teach the part its labels share; the sums are what is kept. Left out of the
    /// serialised config when off.
    #[serde(skip_serializing_if = "is_false")]
    pub shared_ancestors: bool,
}

fn is_zero_rate(p: &f64) -> bool {
    *p == 0.0
}

fn is_one(n: &usize) -> bool {
    *n == 1
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// The fine-tuning loss of `[contrastive]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FineTuneLoss {
    /// A record against its label's text, the other pairs of the batch as negatives.
    #[default]
    Pairs,
    /// A record against a learnt vector per label (initialised from the label's text), every
    /// label a negative: the encoder fine-tuned as a classifier over all labels, as XR-Transformer
    /// does before its linear ranker. The label vectors are dropped after training.
    Labels,
}

impl FineTuneLoss {
    fn is_pairs(&self) -> bool {
        *self == FineTuneLoss::Pairs
    }
}

impl Default for ContrastiveConfig {
    fn default() -> Self {
        ContrastiveConfig {
            epochs: 2,
            batch_size: 32,
            learning_rate: 3e-5,
            warmup_steps: 50,
            temperature: 0.05,
            max_tokens: 64,
            max_per_label: 0,
            max_records: 0,
            max_valid_records: 0,
            length_batches: false,
            weight_decay: 0.01,
            grad_clip: 1.0,
            seed: 42,
            loss: FineTuneLoss::Pairs,
            members: 1,
            reuse: None,
            dropout: 0.0,
            logit_adjustment: 0.0,
            shared_ancestors: false,
        }
    }
}

impl ContrastiveConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.learning_rate > 0.0 && self.learning_rate <= 1.0) {
            return Err(format!("`contrastive.learning_rate` = {} must be in (0, 1]", self.learning_rate));
        }
        if !(self.temperature > 0.0 && self.temperature.is_finite()) {
            return Err(format!("`contrastive.temperature` = {} must be a positive number", self.temperature));
        }
        if self.batch_size < 2 {
            return Err("`contrastive.batch_size` must be at least 2 (the other pairs of a batch are the negatives)".into());
        }
        if self.max_tokens < 2 {
            return Err("`contrastive.max_tokens` must be at least 2".into());
        }
        if self.members == 0 {
            return Err("`contrastive.members` must be at least 1".into());
        }
        if self.members > 1 && self.loss != FineTuneLoss::Labels {
            return Err("`contrastive.members` above 1 needs `contrastive.loss = \"labels\"` (it averages the encoders' classifiers)".into());
        }
        if self.reuse.is_some() && (self.loss != FineTuneLoss::Labels || self.members != 1) {
            return Err("`contrastive.reuse` takes one fine-tuned classifier: it needs `contrastive.loss = \"labels\"` and one member".into());
        }
        if !(0.0..1.0).contains(&self.dropout) {
            return Err(format!("`contrastive.dropout` = {} must be in [0, 1)", self.dropout));
        }
        if !(self.logit_adjustment >= 0.0 && self.logit_adjustment.is_finite()) {
            return Err(format!("`contrastive.logit_adjustment` = {} must be 0 or more", self.logit_adjustment));
        }
        if self.logit_adjustment > 0.0 && self.loss != FineTuneLoss::Labels {
            return Err("`contrastive.logit_adjustment` needs `contrastive.loss = \"labels\"` (it adjusts the labels' logits)".into());
        }
        if self.shared_ancestors && self.loss != FineTuneLoss::Labels {
            return Err("`contrastive.shared_ancestors` needs `contrastive.loss = \"labels\"` (it shares parts of the learnt label vectors)".into());
        }
        if self.weight_decay < 0.0 || self.grad_clip < 0.0 {
            return Err("`contrastive.weight_decay` and `contrastive.grad_clip` must not be negative".into());
        }
        Ok(())
    }

    pub(crate) fn optimization(&self) -> Optimization {
        Optimization::linear(self.learning_rate, self.warmup_steps, self.weight_decay, self.grad_clip)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContrastiveOutcome {
    /// Validation retrieval accuracy of the pretrained encoder, before any step.
    pub pretrained_valid_accuracy: f64,
    pub best_valid_accuracy: f64,
    /// 0 when no epoch beat the pretrained encoder (which is then kept).
    pub best_epoch: usize,
    pub epochs: usize,
    pub train_seconds: f64,
    pub records_per_s: f64,
}

/// A labelled text: the record's model input and its label id.
pub type Example<'a> = (&'a str, u32);

/// The records of one epoch, shuffled, at most `max_per_label` of each label (0 = all), at most
/// `max_records` in all ([`epoch_sample::budgeted`]), in batches of similar length with
/// `length_batches` (`lengths`: each record's tokens).
pub(crate) fn epoch_order(labels: &[u32], lengths: &[usize], cfg: &ContrastiveConfig, epoch: usize) -> Vec<usize> {
    let mut rng = epoch_rng(cfg.seed, epoch);
    let mut order: Vec<usize> = (0..labels.len()).collect();
    rng.shuffle(&mut order);
    if cfg.max_per_label > 0 {
        let mut seen = std::collections::HashMap::<u32, usize>::new();
        order.retain(|&i| {
            let n = seen.entry(labels[i]).or_default();
            *n += 1;
            *n <= cfg.max_per_label
        });
    }
    if cfg.max_records > 0 {
        order = epoch_sample::budgeted(order, labels, cfg.max_records);
    }
    if cfg.length_batches {
        order = epoch_sample::similar_length_batches(order, lengths, cfg.batch_size, &mut rng);
    }
    order
}

/// Additive logit bias [b, b]: a large negative number where two different pairs share a label,
/// so that a record is not pushed away from its own label's text held by another pair.
fn same_label_bias(labels: &[u32], device: &Device) -> Tensor<2> {
    let b = labels.len();
    let mut bias = vec![0f32; b * b];
    for i in 0..b {
        for j in 0..b {
            if i != j && labels[i] == labels[j] {
                bias[i * b + j] = -1e4;
            }
        }
    }
    Tensor::from_data(TensorData::new(bias, [b, b]), device)
}

/// The symmetric in-batch contrastive loss of unit vectors `records` and `labels` [b, d].
pub fn contrastive_loss(records: Tensor<2>, labels: Tensor<2>, label_ids: &[u32], temperature: f64) -> Tensor<1> {
    let device = records.device();
    let b = label_ids.len();
    let bias = same_label_bias(label_ids, &device);
    let logits = records.matmul(labels.transpose()).div_scalar(temperature) + bias;
    let targets = Tensor::<1, Int>::arange(0..b as i64, &device);
    let loss = CrossEntropyLossConfig::new().init(&device);
    (loss.forward(logits.clone(), targets.clone()) + loss.forward(logits.transpose(), targets)).div_scalar(2.0)
}

/// Token ids cut to `max` tokens, keeping the closing special token.
pub(crate) fn truncate(mut ids: Vec<u32>, max: usize) -> Vec<u32> {
    if ids.len() > max {
        let last = *ids.last().expect("non-empty");
        ids.truncate(max - 1);
        ids.push(last);
    }
    ids
}

/// How often a record's nearest label text (cosine, among all labels) is its own label's.
pub fn retrieval_accuracy(encoder: &SentenceEncoder, examples: &[Example], label_texts: &[String], batch_size: usize) -> Result<f64> {
    if examples.is_empty() {
        return Ok(0.0);
    }
    let labels: Vec<&str> = label_texts.iter().map(String::as_str).collect();
    let label_vectors = encoder.encode(&labels, batch_size, |_| {})?;
    nearest_label_accuracy(encoder, examples, &label_vectors, batch_size)
}

/// How often a record's nearest vector (by dot product) among `label_vectors` is its own label's.
pub(crate) fn nearest_label_accuracy(encoder: &SentenceEncoder, examples: &[Example], label_vectors: &[Vec<f32>], batch_size: usize) -> Result<f64> {
    if examples.is_empty() {
        return Ok(0.0);
    }
    let texts: Vec<&str> = examples.iter().map(|e| e.0).collect();
    let queries = encoder.encode(&texts, batch_size, |_| {})?;
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let correct = queries
        .iter()
        .zip(examples)
        .filter(|(q, e)| {
            let best = label_vectors.iter().enumerate().max_by(|a, b| dot(q, a.1).total_cmp(&dot(q, b.1)).then(b.0.cmp(&a.0)));
            best.is_some_and(|(l, _)| l as u32 == e.1)
        })
        .count();
    Ok(correct as f64 / examples.len() as f64)
}

/// The contrastive fine-tuning's side of the training loop.
pub(crate) struct ContrastiveObjective<'a> {
    /// The encoder being tuned: its tokenizer and config (the weights come from the loop).
    pub(crate) encoder: SentenceEncoder,
    pub(crate) cfg: &'a ContrastiveConfig,
    pub(crate) record_tokens: Vec<Vec<u32>>,
    pub(crate) label_tokens: Vec<Vec<u32>>,
    pub(crate) train_labels: Vec<u32>,
    pub(crate) valid: &'a [Example<'a>],
    pub(crate) label_texts: &'a [String],
    pub(crate) out: &'a Path,
}

pub(crate) const EVAL_BATCH: usize = 64;

impl Objective for ContrastiveObjective<'_> {
    type Model = Bert;

    fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        let lengths: Vec<usize> = self.record_tokens.iter().map(Vec::len).collect();
        epoch_order(&self.train_labels, &lengths, self.cfg, epoch)
    }

    fn batch_size(&self) -> usize {
        self.cfg.batch_size
    }

    fn min_batch(&self) -> usize {
        2
    }

    fn batch_loss(&self, model: &Bert, chunk: &[usize]) -> Result<Tensor<1>> {
        let labels: Vec<u32> = chunk.iter().map(|&i| self.train_labels[i]).collect();
        let records: Vec<&[u32]> = chunk.iter().map(|&i| self.record_tokens[i].as_slice()).collect();
        let targets: Vec<&[u32]> = labels.iter().map(|&l| self.label_tokens[l as usize].as_slice()).collect();
        let (r, t) = (self.encoder.embed_tokens_with(model, &records, self.cfg.dropout), self.encoder.embed_tokens_with(model, &targets, self.cfg.dropout));
        Ok(contrastive_loss(r, t, &labels, self.cfg.temperature))
    }

    fn validate(&self, model: &Bert) -> Result<f64> {
        retrieval_accuracy(&self.encoder.with_weights(model.clone()), self.valid, self.label_texts, EVAL_BATCH)
    }

    fn save_best(&self, model: &Bert) -> Result<()> {
        Ok(self.encoder.with_weights(model.clone()).save(self.out)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn capped_epochs_keep_at_most_max_per_label() {
        let labels = [0u32, 0, 0, 0, 1, 2, 2];
        let cfg = ContrastiveConfig { max_per_label: 2, ..ContrastiveConfig::default() };
        let order = epoch_order(&labels, &[1; 7], &cfg, 0);
        let count = |l: u32| order.iter().filter(|&&i| labels[i] == l).count();
        assert_eq!((count(0), count(1), count(2)), (2, 1, 2));
        assert_eq!(epoch_order(&labels, &[1; 7], &ContrastiveConfig::default(), 0).len(), labels.len());
    }

    #[test]
    fn loss_is_low_when_pairs_match_and_ignores_shared_labels() {
        let device = xmc_model::inference_device();
        let unit = |rows: Vec<[f32; 2]>| {
            let n = rows.len();
            Tensor::<2>::from_data(TensorData::new(rows.concat(), [n, 2]), &device)
        };
        let records = unit(vec![[1.0, 0.0], [0.0, 1.0]]);
        let matched = contrastive_loss(records.clone(), unit(vec![[1.0, 0.0], [0.0, 1.0]]), &[0, 1], 0.05).into_scalar::<f32>();
        let swapped = contrastive_loss(records.clone(), unit(vec![[0.0, 1.0], [1.0, 0.0]]), &[0, 1], 0.05).into_scalar::<f32>();
        assert!(matched < 1e-3, "matched pairs: {matched}");
        assert!(swapped > 10.0, "swapped pairs: {swapped}");
        // Two records of one label: the other copy of their label text is not a negative.
        let same = contrastive_loss(unit(vec![[1.0, 0.0], [1.0, 0.0]]), unit(vec![[1.0, 0.0], [1.0, 0.0]]), &[3, 3], 0.05).into_scalar::<f32>();
        assert!(same < 1e-3, "shared label: {same}");
        let counted = contrastive_loss(unit(vec![[1.0, 0.0], [1.0, 0.0]]), unit(vec![[1.0, 0.0], [1.0, 0.0]]), &[3, 4], 0.05).into_scalar::<f32>();
        assert!((counted - std::f32::consts::LN_2).abs() < 1e-3, "distinct labels with equal vectors: {counted}");
    }

    #[test]
    fn the_budget_keys_stay_out_of_the_fingerprint_when_off() {
        let text = serde_json::to_string(&ContrastiveConfig::default()).unwrap();
        for key in ["max_records", "max_valid_records", "length_batches", "dropout", "logit_adjustment", "shared_ancestors"] {
            assert!(!text.contains(key), "{key} in {text}");
        }
        let on = ContrastiveConfig { max_records: 5, max_valid_records: 3, length_batches: true, dropout: 0.1, ..ContrastiveConfig::default() };
        let text = serde_json::to_string(&on).unwrap();
        assert!(["max_records\":5", "max_valid_records\":3", "length_batches\":true", "dropout\":0.1"].iter().all(|k| text.contains(k)), "{text}");
        let labels = [0u32, 0, 0, 0, 1, 2, 2];
        let order = epoch_order(&labels, &[3, 1, 4, 1, 5, 9, 2], &on, 0);
        assert_eq!(order.len(), 5, "the budget holds with the other keys: {order:?}");
    }

    #[test]
    fn truncation_keeps_the_closing_token() {
        assert_eq!(truncate(vec![101, 5, 6, 7, 102], 3), vec![101, 5, 102]);
        assert_eq!(truncate(vec![101, 102], 3), vec![101, 102]);
    }
}
