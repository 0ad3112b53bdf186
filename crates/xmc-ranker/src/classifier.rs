//! The fine-tuned sentence encoder's own classifier beside the ranker (`contrastive.loss =
//! "labels"`): a learnt unit vector per label; a record's log-probability of a label is the
//! log-softmax over all labels of its embedding's cosine similarities over the temperature. The
//! ranker's candidates are rescored as `ln(ranker score) + weight * log p(label)`, the weight
//! fitted on the validation split. A separate model rather than a feature block: the encoder was
//! fine-tuned on the training records, so its embeddings of them are better separated than
//! those of new records, and linear scorers trained on them trust them too much (measured in
//! experiments/README.md); the weight fitted on held-out records does not have that bias.

use serde::{Deserialize, Serialize};

use crate::error::{RankerError, Result};

/// Where the classifier lives in an xr model folder.
pub const CLASSIFIER_FILE: &str = "classifier.json";

/// The weights tried when fitting, 0 to 2 in steps of 0.05.
const WEIGHT_GRID: std::ops::RangeInclusive<u32> = 0..=40;
const WEIGHT_STEP: f32 = 0.05;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderClassifier {
    pub temperature: f32,
    /// The log-probability's weight beside the ranker's log score; 0 leaves the ranker's order.
    pub weight: f32,
    /// How the weight was chosen, for the record.
    pub fit: WeightFit,
    /// Unit vectors, one per label in label-id order.
    pub vectors: Vec<Vec<f32>>,
}

/// The validation accuracies behind the fitted weight.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WeightFit {
    pub records: usize,
    /// The ranker's own top-1 accuracy over the candidates.
    pub ranker_accuracy: f64,
    /// Accuracy with the weight fitted on the other half of the records (even / odd positions).
    pub cross_fitted_accuracy: f64,
    /// The weight that the whole split prefers; kept only if cross-fitting beat the ranker.
    pub best_weight: f32,
}

impl EncoderClassifier {
    /// Checks the vectors against the number of labels and the embedding size.
    pub fn check(&self, labels: usize, dim: usize) -> Result<()> {
        if self.vectors.len() != labels {
            return Err(RankerError::Train(format!("{} label vectors for {labels} labels", self.vectors.len())));
        }
        if let Some(v) = self.vectors.iter().find(|v| v.len() != dim) {
            return Err(RankerError::Train(format!("a label vector has {} dimensions, the encoder {dim}", v.len())));
        }
        if !(self.temperature > 0.0 && self.weight >= 0.0) {
            return Err(RankerError::Train(format!("temperature {} and weight {} must be positive", self.temperature, self.weight)));
        }
        Ok(())
    }

    /// Log-probabilities of every label for a unit `embedding`.
    pub fn log_probs(&self, embedding: &[f32]) -> Vec<f32> {
        let logits: Vec<f32> = self.vectors.iter().map(|v| v.iter().zip(embedding).map(|(a, b)| a * b).sum::<f32>() / self.temperature).collect();
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let log_sum = max + logits.iter().map(|z| (z - max).exp()).sum::<f32>().ln();
        logits.into_iter().map(|z| z - log_sum).collect()
    }

    /// The candidates rescored and sorted, best first; a score stays positive (`s * p^weight`).
    pub fn rescore(&self, embedding: &[f32], candidates: &[(u32, f32)], top_k: usize) -> Vec<(u32, f32)> {
        let log_probs = self.log_probs(embedding);
        rescored(candidates, &log_probs, self.weight, top_k)
    }

    /// A classifier whose weight is 0 until [`Self::fit_weight`] sets it.
    pub fn new(temperature: f32, vectors: Vec<Vec<f32>>) -> Self {
        let fit = WeightFit { records: 0, ranker_accuracy: 0.0, cross_fitted_accuracy: 0.0, best_weight: 0.0 };
        EncoderClassifier { temperature, weight: 0.0, fit, vectors }
    }

    /// Fits the weight on validation records: the ranker's `candidates`, the records' unit
    /// `embeddings` and true labels. The weight is the grid's best on all records, unless
    /// choosing it on one half and scoring the other (both ways) does not beat the ranker
    /// alone, in which case it is 0.
    pub fn fit_weight(&mut self, candidates: &[Vec<(u32, f32)>], embeddings: &[Vec<f32>], truths: &[u32]) {
        let log_probs: Vec<Vec<f32>> = embeddings.iter().map(|e| self.log_probs(e)).collect();
        let correct = |w: f32, i: usize| rescored(&candidates[i], &log_probs[i], w, 1).first().is_some_and(|c| c.0 == truths[i]);
        let count = |w: f32, idx: &[usize]| idx.iter().filter(|&&i| correct(w, i)).count();
        // The grid's best weight on `idx`; ties go to the smaller weight.
        let best = |idx: &[usize]| {
            let mut best = (0.0f32, count(0.0, idx));
            for w in WEIGHT_GRID.map(|g| g as f32 * WEIGHT_STEP) {
                let n = count(w, idx);
                if n > best.1 {
                    best = (w, n);
                }
            }
            best
        };
        let all: Vec<usize> = (0..truths.len().min(candidates.len()).min(embeddings.len())).collect();
        let halves: [Vec<usize>; 2] = [0, 1].map(|h| all.iter().copied().filter(|i| i % 2 == h).collect());
        let cross: usize = (0..2).map(|h| count(best(&halves[h]).0, &halves[1 - h])).sum();
        let ranker = count(0.0, &all);
        let best_weight = best(&all).0;
        let n = all.len().max(1) as f64;
        self.fit = WeightFit { records: all.len(), ranker_accuracy: ranker as f64 / n, cross_fitted_accuracy: cross as f64 / n, best_weight };
        self.weight = if cross > ranker { best_weight } else { 0.0 };
    }
}

/// Sorted on the log scale (the exponent may underflow for very unlikely candidates), best
/// first, ties by label id.
fn rescored(candidates: &[(u32, f32)], log_probs: &[f32], weight: f32, top_k: usize) -> Vec<(u32, f32)> {
    if weight == 0.0 {
        return candidates.iter().take(top_k).copied().collect();
    }
    let mut out: Vec<(u32, f32)> = candidates
        .iter()
        .map(|&(l, s)| (l, s.max(f32::MIN_POSITIVE).ln() + weight * log_probs.get(l as usize).copied().unwrap_or(f32::MIN)))
        .collect();
    out.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    out.truncate(top_k);
    out.into_iter().map(|(l, log_score)| (l, log_score.exp())).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classifier(weight: f32) -> EncoderClassifier {
        let vectors = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![0.6, 0.8]];
        EncoderClassifier { weight, ..EncoderClassifier::new(0.1, vectors) }
    }

    #[test]
    fn log_probs_are_a_softmax_over_all_labels() {
        let lp = classifier(1.0).log_probs(&[1.0, 0.0]);
        let total: f32 = lp.iter().map(|x| x.exp()).sum();
        assert!((total - 1.0).abs() < 1e-5, "{lp:?}");
        assert!(lp[0] > lp[2] && lp[2] > lp[1], "{lp:?}");
        // logits 10, 0, 6: ln p0 = -ln(1 + e^-10 + e^-4).
        assert!((lp[0] + (1.0 + (-10f32).exp() + (-4f32).exp()).ln()).abs() < 1e-5);
    }

    #[test]
    fn rescoring_reorders_by_the_classifier_only_with_a_weight() {
        let candidates = [(1, 0.6), (0, 0.5)];
        let kept = classifier(0.0).rescore(&[1.0, 0.0], &candidates, 2);
        assert_eq!(kept, vec![(1, 0.6), (0, 0.5)]);
        let moved = classifier(0.5).rescore(&[1.0, 0.0], &candidates, 2);
        assert_eq!(moved.iter().map(|c| c.0).collect::<Vec<_>>(), vec![0, 1]);
        assert!(moved.iter().all(|c| c.1 > 0.0 && c.1.is_finite()));
        assert_eq!(classifier(0.5).rescore(&[1.0, 0.0], &candidates, 1).len(), 1);
    }

    #[test]
    fn the_weight_is_fitted_where_the_classifier_helps_and_zero_where_it_does_not() {
        // The ranker prefers label 1 by a little; the classifier favours label 0 for these
        // embeddings.
        let candidates: Vec<Vec<(u32, f32)>> = (0..20).map(|_| vec![(1, 0.6), (0, 0.5)]).collect();
        let embeddings = vec![vec![1.0, 0.0]; 20];
        let mut helps = classifier(0.0);
        helps.fit_weight(&candidates, &embeddings, &[0; 20]);
        assert!(helps.weight > 0.0, "{:?}", helps.fit);
        assert_eq!((helps.fit.ranker_accuracy, helps.fit.cross_fitted_accuracy, helps.fit.records), (0.0, 1.0, 20));
        assert!(helps.weight <= 0.1, "the smallest weight that flips them: {}", helps.weight);
        // The ranker is right already: the classifier could only hurt, so its weight is 0.
        let mut hurts = classifier(0.0);
        hurts.fit_weight(&candidates, &embeddings, &[1; 20]);
        assert_eq!(hurts.weight, 0.0, "{:?}", hurts.fit);
        assert_eq!(hurts.fit.ranker_accuracy, 1.0);
    }
}
