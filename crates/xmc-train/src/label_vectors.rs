//! Fine-tuning the sentence encoder as a classifier over all labels (`contrastive.loss =
//! "labels"`): each label has a learnt vector, initialised from the pretrained encoder's
//! embedding of the label's text; a record's logits are its cosine similarity to every label's
//! vector over the temperature, and the loss is the cross-entropy of its own label. Unlike the
//! in-batch pairs, every label is a negative at every step and the label side costs no encoder
//! pass. The best epoch's encoder is written as any fine-tuned encoder, its label vectors beside
//! it ([`LABEL_VECTORS`]), where the xr method's encoder classifier takes them from.
//!
//! With `contrastive.shared_ancestors`, a label's vector is its own plus one learnt vector per
//! ancestor on its taxonomy path ([`ancestor_groups`]), those starting at zero: the records of
//! every label under a parent teach the parent's part, so a rare label starts from what its
//! siblings' records share. What is written is the sum, so nothing downstream changes.

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
    /// One vector per ancestor group (`contrastive.shared_ancestors`), added to the vectors of
    /// the labels under it.
    ancestors: Option<Param<Tensor<2>>>,
}

impl EncoderWithLabels {
    /// Each label's vector (any length): its own, plus its ancestors' when they are learnt.
    fn label_vectors(&self, hierarchy: Option<&AncestorIndex>) -> Tensor<2> {
        match (&self.ancestors, hierarchy) {
            (Some(ancestors), Some(hierarchy)) => hierarchy.add_ancestors(self.labels.val(), ancestors.val()),
            _ => self.labels.val(),
        }
    }

    /// The label vectors at unit length, one row per label.
    fn unit_label_vectors(&self, hierarchy: Option<&AncestorIndex>) -> Vec<Vec<f32>> {
        let labels = unit_rows(self.label_vectors(hierarchy));
        let [_, d] = labels.dims();
        let flat = labels.into_data().try_to_vec::<f32>().expect("float tensor");
        flat.chunks(d.max(1)).map(<[f32]>::to_vec).collect()
    }
}

/// Each label's ancestor groups: one group per distinct proper prefix of the labels' paths
/// (`levels`, root first), numbered in order of first appearance; a label lists its prefixes'
/// groups from the root down (a one-level path has none).
pub(crate) fn ancestor_groups(levels: &[Vec<String>]) -> Vec<Vec<u32>> {
    let mut ids = std::collections::HashMap::<&[String], u32>::new();
    levels
        .iter()
        .map(|path| {
            (1..path.len())
                .map(|end| {
                    let next = ids.len() as u32;
                    *ids.entry(&path[..end]).or_insert(next)
                })
                .collect()
        })
        .collect()
}

/// [`ancestor_groups`] on the model's device: per depth, each label's group at that depth (0
/// where it has none) and a [n, 1] mask of the labels that have one.
pub(crate) struct AncestorIndex {
    groups: usize,
    depths: Vec<(Tensor<1, Int>, Tensor<2>)>,
}

impl AncestorIndex {
    fn new(groups_of: &[Vec<u32>], device: &Device) -> Self {
        let n = groups_of.len();
        let groups = groups_of.iter().flatten().map(|&g| g as usize + 1).max().unwrap_or(0);
        let depth = groups_of.iter().map(Vec::len).max().unwrap_or(0);
        let depths = (0..depth)
            .map(|level| {
                let ids: Vec<i64> = groups_of.iter().map(|g| g.get(level).map_or(0, |&g| i64::from(g))).collect();
                let mask: Vec<f32> = groups_of.iter().map(|g| if level < g.len() { 1.0 } else { 0.0 }).collect();
                (Tensor::<1, Int>::from_data(TensorData::new(ids, [n]), device), Tensor::<2>::from_data(TensorData::new(mask, [n, 1]), device))
            })
            .collect();
        AncestorIndex { groups, depths }
    }

    /// `labels` [n, d] with each label's ancestor rows of `ancestors` [groups, d] added.
    fn add_ancestors(&self, labels: Tensor<2>, ancestors: Tensor<2>) -> Tensor<2> {
        self.depths.iter().fold(labels, |sum, (ids, mask)| sum + ancestors.clone().select(0, ids.clone()) * mask.clone())
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
    /// The labels' ancestor groups on the model's device, with `contrastive.shared_ancestors`.
    hierarchy: Option<AncestorIndex>,
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
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        encoder: SentenceEncoder,
        cfg: &'a ContrastiveConfig,
        record_tokens: Vec<Vec<u32>>,
        train_labels: Vec<u32>,
        valid: &'a [Example<'a>],
        label_texts: &[String],
        label_levels: &[Vec<String>],
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
        let hierarchy = cfg.shared_ancestors.then(|| AncestorIndex::new(&ancestor_groups(label_levels), &device));
        // The ancestors' parts start at zero: before any step the vectors are the label texts'.
        let ancestors = hierarchy.as_ref().filter(|h| h.groups > 0).map(|h| Param::from_tensor(Tensor::<2>::zeros([h.groups, d], &device)));
        let objective = LabelsObjective { encoder, cfg, record_tokens, train_labels, valid, out, adjustment, hierarchy };
        // The pretrained encoder's vectors stay if no epoch beats it (it is then what is kept).
        objective.write_vectors(&vectors.iter().map(Vec::as_slice).collect::<Vec<_>>())?;
        Ok((objective, EncoderWithLabels { bert, labels, ancestors }))
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
        Ok(labels_loss(r, model.label_vectors(self.hierarchy.as_ref()), &labels, self.cfg.temperature, self.adjustment.clone()))
    }

    /// Validation accuracy of the classifier: a record's nearest label vector is its label's.
    fn validate(&self, model: &EncoderWithLabels) -> Result<f64> {
        nearest_label_accuracy(&self.encoder.with_weights(model.bert.clone()), self.valid, &model.unit_label_vectors(self.hierarchy.as_ref()), EVAL_BATCH)
    }

    fn save_best(&self, model: &EncoderWithLabels) -> Result<()> {
        self.encoder.with_weights(model.bert.clone()).save(self.out)?;
        let vectors = model.unit_label_vectors(self.hierarchy.as_ref());
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
    fn a_labels_vector_is_its_own_plus_one_shared_vector_per_ancestor_on_its_path() {
        let path = |p: &str| p.split(" > ").map(String::from).collect::<Vec<_>>();
        let levels = ["Toys > Cars", "Toys > Dolls > Rag", "Books", "Toys > Dolls > Wood"].map(path);
        // Groups: Toys 0, Toys > Dolls 1; "Books" has no ancestor.
        let groups = ancestor_groups(&levels);
        assert_eq!(groups, vec![vec![0], vec![0, 1], vec![], vec![0, 1]]);
        let device = xmc_model::inference_device();
        let index = AncestorIndex::new(&groups, &device);
        assert_eq!(index.groups, 2);
        let own = rows(vec![[1.0, 0.0], [0.0, 1.0], [2.0, 2.0], [3.0, 0.0]]);
        let ancestors = rows(vec![[10.0, 0.0], [0.0, 100.0]]);
        let sum = index.add_ancestors(own, ancestors).into_data().try_to_vec::<f32>().unwrap();
        assert_eq!(sum, vec![11.0, 0.0, 10.0, 101.0, 2.0, 2.0, 13.0, 100.0]);
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
