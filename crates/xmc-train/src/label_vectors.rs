//! Fine-tuning the sentence encoder as a classifier over all labels (`contrastive.loss =
//! "labels"`): each label has a learnt vector, initialised from the pretrained encoder's
//! embedding of the label's text; a record's logits are its cosine similarity to every label's
//! vector over the temperature, and the loss is the cross-entropy of its own label. Unlike the
//! in-batch pairs, every label is a negative at every step and the label side costs no encoder
//! pass. The best epoch's encoder is written as any fine-tuned encoder, its label vectors beside
//! it ([`LABEL_VECTORS`]), where the xr method's encoder classifier takes them from.

use std::path::Path;

use burn::module::Param;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::prelude::*;
use xmc_model::{Bert, SentenceEncoder};

use crate::contrastive::{ContrastiveConfig, EVAL_BATCH, Example, nearest_label_accuracy};
use crate::error::Result;
use crate::fit::Objective;

/// The label vectors are stored divided by this (the logits use them normalised, so the forward
/// pass does not change): AdamW's step is about the learning rate whatever the gradient, so at an
/// encoder's fine-tuning rate the vectors, whose coordinates are ~1/sqrt(d), would barely move.
const LABEL_RATE_SCALE: f32 = 10.0;

/// The label vectors (unit rows, label order) beside the fine-tuned encoder.
pub const LABEL_VECTORS: &str = "label_vectors.json";

/// The encoder and the label vectors, trained together.
#[derive(Module, Debug)]
pub(crate) struct EncoderWithLabels {
    bert: Bert,
    labels: Param<Tensor<2>>,
}

impl EncoderWithLabels {
    /// The label vectors at unit length, one row per label.
    fn unit_label_vectors(&self) -> Vec<Vec<f32>> {
        let labels = unit_rows(self.labels.val());
        let [_, d] = labels.dims();
        let flat = labels.into_data().try_to_vec::<f32>().expect("float tensor");
        flat.chunks(d.max(1)).map(<[f32]>::to_vec).collect()
    }
}

/// Rows of `m` scaled to unit length.
fn unit_rows(m: Tensor<2>) -> Tensor<2> {
    let norm = m.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    m / norm
}

/// The cross-entropy of each record's own label among all labels: `records` [b, d] unit vectors,
/// `labels` [n, d] (any length), `label_ids` the records' labels; `adjustment` [1, n], when
/// given, is added to every record's logits (logit adjustment: the weighted log priors).
pub(crate) fn labels_loss(records: Tensor<2>, labels: Tensor<2>, label_ids: &[u32], temperature: f64, adjustment: Option<Tensor<2>>) -> Tensor<1> {
    let device = records.device();
    let mut logits = records.matmul(unit_rows(labels).transpose()).div_scalar(temperature);
    if let Some(adjustment) = adjustment {
        logits = logits + adjustment;
    }
    let ids: Vec<i64> = label_ids.iter().map(|&l| l as i64).collect();
    let targets = Tensor::<1, Int>::from_data(TensorData::new(ids, [label_ids.len()]), &device);
    CrossEntropyLossConfig::new().init(&device).forward(logits, targets)
}

pub(crate) struct LabelsObjective<'a> {
    encoder: SentenceEncoder,
    cfg: &'a ContrastiveConfig,
    record_tokens: Vec<Vec<u32>>,
    train_labels: Vec<u32>,
    valid: &'a [Example<'a>],
    out: &'a Path,
    /// `contrastive.logit_adjustment` times each label's log share of the training records
    /// (add-one smoothed), [1, n] on the model's device, when that weight is above 0.
    adjustment: Option<Tensor<2>>,
}

/// `weight` times each of `labels` labels' log share of `train_labels`, add-one smoothed (a
/// label without training records is not infinitely far down).
pub(crate) fn log_prior_adjustment(train_labels: &[u32], labels: usize, weight: f64) -> Vec<f32> {
    let mut counts = vec![0usize; labels];
    for &l in train_labels {
        if let Some(c) = counts.get_mut(l as usize) {
            *c += 1;
        }
    }
    let total = (train_labels.len() + labels) as f64;
    counts.into_iter().map(|c| (weight * ((c as f64 + 1.0) / total).ln()) as f32).collect()
}

impl<'a> LabelsObjective<'a> {
    /// The objective and the model to train: the encoder's weights and the label vectors of the
    /// pretrained encoder (so that before any step the validation score is its retrieval accuracy).
    pub(crate) fn new(
        encoder: SentenceEncoder,
        cfg: &'a ContrastiveConfig,
        record_tokens: Vec<Vec<u32>>,
        train_labels: Vec<u32>,
        valid: &'a [Example<'a>],
        label_texts: &[String],
        out: &'a Path,
    ) -> Result<(Self, EncoderWithLabels)> {
        let texts: Vec<&str> = label_texts.iter().map(String::as_str).collect();
        let vectors = encoder.valid().encode(&texts, EVAL_BATCH, |_| {})?;
        let d = vectors.first().map_or(0, Vec::len);
        let flat: Vec<f32> = vectors.concat().into_iter().map(|x| x / LABEL_RATE_SCALE).collect();
        let bert = encoder.model().clone();
        let device = bert.devices().into_iter().next().unwrap_or_else(xmc_model::training_device);
        let labels = Param::from_tensor(Tensor::<2>::from_data(TensorData::new(flat, [vectors.len(), d]), &device));
        let adjustment = (cfg.logit_adjustment > 0.0).then(|| {
            let a = log_prior_adjustment(&train_labels, vectors.len(), cfg.logit_adjustment);
            Tensor::<2>::from_data(TensorData::new(a, [1, vectors.len()]), &device)
        });
        let objective = LabelsObjective { encoder, cfg, record_tokens, train_labels, valid, out, adjustment };
        // The pretrained encoder's vectors stay if no epoch beats it (it is then what is kept).
        objective.write_vectors(&vectors.iter().map(Vec::as_slice).collect::<Vec<_>>())?;
        Ok((objective, EncoderWithLabels { bert, labels }))
    }

    fn write_vectors(&self, vectors: &[&[f32]]) -> Result<()> {
        let path = self.out.join(LABEL_VECTORS);
        std::fs::write(&path, serde_json::to_vec(vectors).expect("serialises")).map_err(|e| crate::error::TrainError::io(&path, e))
    }
}

impl Objective for LabelsObjective<'_> {
    type Model = EncoderWithLabels;

    fn epoch_order(&self, epoch: usize) -> Vec<usize> {
        let lengths: Vec<usize> = self.record_tokens.iter().map(Vec::len).collect();
        crate::contrastive::epoch_order(&self.train_labels, &lengths, self.cfg, epoch)
    }

    fn batch_size(&self) -> usize {
        self.cfg.batch_size
    }

    fn batch_loss(&self, model: &EncoderWithLabels, chunk: &[usize]) -> Result<Tensor<1>> {
        let labels: Vec<u32> = chunk.iter().map(|&i| self.train_labels[i]).collect();
        let records: Vec<&[u32]> = chunk.iter().map(|&i| self.record_tokens[i].as_slice()).collect();
        let r = self.encoder.embed_tokens_with(&model.bert, &records, self.cfg.dropout);
        Ok(labels_loss(r, model.labels.val(), &labels, self.cfg.temperature, self.adjustment.clone()))
    }

    /// Validation accuracy of the classifier: a record's nearest label vector is its label's.
    fn validate(&self, model: &EncoderWithLabels) -> Result<f64> {
        nearest_label_accuracy(&self.encoder.with_weights(model.bert.clone()), self.valid, &model.unit_label_vectors(), EVAL_BATCH)
    }

    fn save_best(&self, model: &EncoderWithLabels) -> Result<()> {
        self.encoder.with_weights(model.bert.clone()).save(self.out)?;
        let vectors = model.unit_label_vectors();
        self.write_vectors(&vectors.iter().map(Vec::as_slice).collect::<Vec<_>>())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A matrix of 2-dimensional rows on the inference device.
    pub(crate) fn rows(rows: Vec<[f32; 2]>) -> Tensor<2> {
        let n = rows.len();
        Tensor::<2>::from_data(TensorData::new(rows.concat(), [n, 2]), &xmc_model::inference_device())
    }

    #[test]
    fn every_label_is_a_negative_and_the_label_vectors_length_does_not_matter() {
        let records = rows(vec![[1.0, 0.0], [0.0, 1.0]]);
        // Three labels; record 0 is label 0, record 1 label 2; label 1 sits between them.
        let labels = rows(vec![[5.0, 0.0], [0.7, 0.7], [0.0, 0.3]]);
        let right = labels_loss(records.clone(), labels.clone(), &[0, 2], 0.05, None).into_scalar::<f32>();
        let wrong = labels_loss(records.clone(), labels.clone(), &[1, 1], 0.05, None).into_scalar::<f32>();
        assert!(right < 0.01, "own labels: {right}");
        // cos = 0.707 against 1.0 for the nearest: (1 - 0.707) / 0.05 = 5.86 nats each.
        assert!((wrong - 5.858).abs() < 0.01, "the label between them: {wrong}");
        // A label that no record of the batch has still counts: equal vectors split the mass.
        let tied = labels_loss(rows(vec![[1.0, 0.0]]), rows(vec![[1.0, 0.0], [2.0, 0.0]]), &[0], 0.05, None).into_scalar::<f32>();
        assert!((tied - std::f32::consts::LN_2).abs() < 1e-3, "{tied}");
    }

    #[test]
    fn the_logit_adjustment_adds_each_labels_weighted_log_prior_to_its_logit() {
        // Labels 0, 1, 2 with 3, 1 and 0 training records: add-one shares 4/7, 2/7, 1/7.
        let adjustment = log_prior_adjustment(&[0, 0, 1, 0], 3, 0.5);
        for (got, share) in adjustment.iter().zip([4.0f64 / 7.0, 2.0 / 7.0, 1.0 / 7.0]) {
            assert!((f64::from(*got) - 0.5 * share.ln()).abs() < 1e-6, "{adjustment:?}");
        }
        // Two labels with equal vectors: without adjustment the mass splits evenly; with log
        // priors ln 0.75 and ln 0.25 added, the record's own label 0 has probability 0.75, and
        // a record of the rarer label 1 pays more.
        let (record, labels) = (rows(vec![[1.0, 0.0]]), rows(vec![[1.0, 0.0], [1.0, 0.0]]));
        let prior = || Some(Tensor::<2>::from_data(TensorData::new(vec![0.75f32.ln(), 0.25f32.ln()], [1, 2]), &xmc_model::inference_device()));
        let plain = labels_loss(record.clone(), labels.clone(), &[0], 0.05, None).into_scalar::<f32>();
        let frequent = labels_loss(record.clone(), labels.clone(), &[0], 0.05, prior()).into_scalar::<f32>();
        let rare = labels_loss(record, labels, &[1], 0.05, prior()).into_scalar::<f32>();
        assert!((plain - std::f32::consts::LN_2).abs() < 1e-4, "{plain}");
        assert!((frequent + 0.75f32.ln()).abs() < 1e-4, "{frequent}");
        assert!((rare + 0.25f32.ln()).abs() < 1e-4, "{rare}");
    }
}
