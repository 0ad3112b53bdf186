//! The fine-tuned sentence encoder's own classifier beside the ranker (`contrastive.loss =
//! "labels"`): a learnt unit vector per label; a record's log-probability of a label is the
//! log-softmax over all labels of its embedding's cosine similarities over the temperature. The
//! ranker's candidates are rescored as `ln(ranker score) + weight * (log p(label) - prior_weight *
//! log prior(label))`, both weights fitted on the validation split. The prior term is logit
//! adjustment (Menon et al., 2021): a classifier trained by cross-entropy on long-tailed data
//! leans towards frequent labels, and taking part of the label's log training frequency off
//! its log-probability moves rare labels up. The fit puts validation accuracy first and the
//! tail's accuracy second: of the settings equally accurate, the one best on the tail. A
//! separate model rather than a feature block: the encoder was fine-tuned on the training records, so its embeddings of them are better separated than
//! those of new records, and linear scorers trained on them trust them too much (measured in
//! experiments/README.md); the weight fitted on held-out records does not have that bias.

use serde::{Deserialize, Serialize};
use xmc_data::LabelSet;

use crate::cascade::{Outcome, Skip};
use crate::error::{RankerError, Result};

/// Where the classifier lives in an xr model folder.
pub const CLASSIFIER_FILE: &str = "classifier.json";

/// The weights tried when fitting, 0 to 2 in steps of 0.05.
const WEIGHT_GRID: std::ops::RangeInclusive<u32> = 0..=40;
const WEIGHT_STEP: f32 = 0.05;
/// The prior's weights tried, 0 to 1 in steps of 0.1 (1 is the full logit adjustment).
const PRIOR_GRID: std::ops::RangeInclusive<u32> = 0..=10;
const PRIOR_STEP: f32 = 0.1;
/// The parent evidence's weights tried (when asked), 0 to 1 in steps of 0.25.
const PARENT_GRID: std::ops::RangeInclusive<u32> = 0..=4;
const PARENT_STEP: f32 = 0.25;
/// The label text's weights tried (when asked), 0 to 1 in steps of 0.25.
const TEXT_GRID: std::ops::RangeInclusive<u32> = 0..=4;
const TEXT_STEP: f32 = 0.25;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderClassifier {
    pub temperature: f32,
    /// The log-probability's weight beside the ranker's log score; 0 leaves the ranker's order.
    pub weight: f32,
    /// How much of each label's log prior is taken off its log-probability (0: none; folders
    /// written before it existed have none).
    #[serde(default)]
    pub prior_weight: f32,
    /// Each label's log training frequency, add-one smoothed (empty when `prior_weight` is 0).
    #[serde(default)]
    pub log_priors: Vec<f32>,
    /// How the weight was chosen, for the record.
    pub fit: WeightFit,
    /// Records on which the ranker is sure enough that the classifier is not consulted (`None`:
    /// always consulted; folders written before it existed have none).
    #[serde(default)]
    pub skip: Option<Skip>,
    /// How many of the classifier's own most probable labels join the ranker's candidates where
    /// it is consulted ([`crate::XrModel::widen`]; 0: the ranker's candidates alone, as in
    /// folders written before it existed).
    #[serde(default)]
    pub own_candidates: usize,
    /// The weight of the label's parent's evidence beside its own: the log of the probability
    /// summed over the labels under the same taxonomy parent (the hierarchy as evidence: it
    /// tells parallel branches apart, and lends a rare leaf its siblings' evidence). 0: none, as
    /// in folders written before it existed.
    #[serde(default)]
    pub parent_weight: f32,
    /// Each label's parent group (labels with the same parent path share one; empty when
    /// `parent_weight` is 0).
    #[serde(default)]
    pub parents: Vec<u32>,
    /// The weight of the label's own text as evidence beside its learnt vector: the cosine of
    /// the record's embedding and of the label text's embedding by the same fine-tuned encoder
    /// ([`Self::text_vectors`]), over the temperature. A rare label's vector learnt from few
    /// records of its own; its name, read by the encoder that reads the records, does not depend
    /// on them. 0: none, as in folders written before it existed.
    #[serde(default)]
    pub text_weight: f32,
    /// Unit vectors of the labels' texts by the classifier's encoder, in label-id order (for an
    /// ensemble, as [`Self::vectors`] are); empty when `text_weight` is 0.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub text_vectors: Vec<Vec<f32>>,
    /// Unit vectors, one per label in label-id order; for an ensemble of `M` fine-tuned encoders,
    /// each label's members' unit vectors concatenated and divided by `M`, so that against the
    /// concatenated embeddings a logit is the members' mean (the members' log-probabilities
    /// averaged, up to a constant per record, which rescoring does not see).
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
    /// The tail's accuracy (labels with at most the data's tail count of training records):
    /// the ranker's, and cross-fitted with the classifier.
    #[serde(default)]
    pub ranker_tail_accuracy: Option<f64>,
    #[serde(default)]
    pub cross_fitted_tail_accuracy: Option<f64>,
    /// With `ranker.classifier_parent`: the cross-fitted accuracy without the parent's evidence,
    /// against which it was kept or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub without_parent_cross_fitted_accuracy: Option<f64>,
    /// With `ranker.classifier_label_text`: the cross-fitted accuracy without the label text's
    /// evidence, against which it was kept or not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub without_text_cross_fitted_accuracy: Option<f64>,
    /// Per validation record, whether the cross-fitted weights put its truth first (not
    /// saved: the train stage's choice among settings is cross-fitted with it).
    #[serde(skip)]
    pub cross_fitted_hits: Vec<bool>,
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
        if !(self.temperature > 0.0 && self.weight >= 0.0 && self.prior_weight >= 0.0) {
            return Err(RankerError::Train(format!(
                "temperature {}, weight {} and prior weight {} must be positive",
                self.temperature, self.weight, self.prior_weight
            )));
        }
        if self.skip.is_some_and(|s| !s.threshold.is_finite()) {
            return Err(RankerError::Train("the skip threshold must be finite".into()));
        }
        if self.prior_weight > 0.0 && self.log_priors.len() != labels {
            return Err(RankerError::Train(format!("{} label priors for {labels} labels", self.log_priors.len())));
        }
        if !(self.parent_weight.is_finite() && self.parent_weight >= 0.0) {
            return Err(RankerError::Train(format!("the parent weight {} must be 0 or more", self.parent_weight)));
        }
        if self.parent_weight > 0.0 && self.parents.len() != labels {
            return Err(RankerError::Train(format!("{} label parents for {labels} labels", self.parents.len())));
        }
        if !(self.text_weight.is_finite() && self.text_weight >= 0.0) {
            return Err(RankerError::Train(format!("the label text's weight {} must be 0 or more", self.text_weight)));
        }
        if self.text_weight > 0.0 {
            if self.text_vectors.len() != labels {
                return Err(RankerError::Train(format!("{} label text vectors for {labels} labels", self.text_vectors.len())));
            }
            if let Some(v) = self.text_vectors.iter().find(|v| v.len() != dim) {
                return Err(RankerError::Train(format!("a label text vector has {} dimensions, the encoder {dim}", v.len())));
            }
        }
        Ok(())
    }

    /// The classifier's evidence for each label: its log-probability less `prior_weight` times
    /// its log prior.
    fn adjusted(&self, log_probs: Vec<f32>) -> Vec<f32> {
        let parents = (self.parent_weight > 0.0 && self.parents.len() == log_probs.len()).then(|| parent_log_probs(&log_probs, &self.parents));
        if (self.prior_weight == 0.0 || self.log_priors.is_empty()) && parents.is_none() {
            return log_probs;
        }
        let prior = |l: usize| if self.prior_weight > 0.0 { self.log_priors.get(l).copied().unwrap_or(0.0) } else { 0.0 };
        let parent = |l: usize| parents.as_ref().map_or(0.0, |p| p[l]);
        log_probs.iter().enumerate().map(|(l, lp)| lp - self.prior_weight * prior(l) + self.parent_weight * parent(l)).collect()
    }

    /// Whether the classifier has a say on a record with these ranker `candidates` (best first):
    /// not with a weight of 0, nor when the ranker is sure enough ([`Skip`]).
    pub fn consulted(&self, candidates: &[(u32, f32)]) -> bool {
        self.weight > 0.0 && self.skip.is_none_or(|s| !s.skips(candidates))
    }

    /// Log-probabilities of every label for a unit `embedding`.
    pub fn log_probs(&self, embedding: &[f32]) -> Vec<f32> {
        let logits: Vec<f32> = self.vectors.iter().map(|v| dot(v, embedding) / self.temperature).collect();
        let max = logits.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let log_sum = max + logits.iter().map(|z| (z - max).exp()).sum::<f32>().ln();
        logits.into_iter().map(|z| z - log_sum).collect()
    }

    /// The candidates rescored and sorted, best first; a score stays positive (`s * p^weight`).
    pub fn rescore(&self, embedding: &[f32], candidates: &[(u32, f32)], top_k: usize) -> Vec<(u32, f32)> {
        let mut evidence = self.adjusted(self.log_probs(embedding));
        if self.text_weight > 0.0 {
            // Only the candidates' texts are read: the others are not ranked.
            for &(l, _) in candidates {
                if let (Some(e), Some(t)) = (evidence.get_mut(l as usize), self.text_vectors.get(l as usize)) {
                    *e += self.text_weight * dot(t, embedding) / self.temperature;
                }
            }
        }
        rescored(candidates, &evidence, self.weight, top_k)
    }

    /// The `n` labels of highest log-probability for a unit `embedding`, best first (ties by
    /// label id).
    pub fn top_labels(&self, embedding: &[f32], n: usize) -> Vec<u32> {
        let log_probs = self.log_probs(embedding);
        let mut ids: Vec<u32> = (0..log_probs.len() as u32).collect();
        let by = |a: &u32, b: &u32| log_probs[*b as usize].total_cmp(&log_probs[*a as usize]).then(a.cmp(b));
        if n < ids.len() {
            ids.select_nth_unstable_by(n, by);
            ids.truncate(n);
        }
        ids.sort_by(by);
        ids
    }

    /// A classifier whose weights are 0 until [`Self::fit_weight`] sets them.
    pub fn new(temperature: f32, vectors: Vec<Vec<f32>>) -> Self {
        let fit = WeightFit {
            records: 0,
            ranker_accuracy: 0.0,
            cross_fitted_accuracy: 0.0,
            best_weight: 0.0,
            ranker_tail_accuracy: None,
            cross_fitted_tail_accuracy: None,
            without_parent_cross_fitted_accuracy: None,
            without_text_cross_fitted_accuracy: None,
            cross_fitted_hits: Vec::new(),
        };
        EncoderClassifier {
            temperature,
            weight: 0.0,
            prior_weight: 0.0,
            log_priors: Vec::new(),
            fit,
            skip: None,
            own_candidates: 0,
            parent_weight: 0.0,
            parents: Vec::new(),
            text_weight: 0.0,
            text_vectors: Vec::new(),
            vectors,
        }
    }

    /// Fits the weights on validation records: the ranker's `candidates`, the records' unit
    /// `embeddings` and true labels, and the labels' training counts and tail flags from
    /// `labels`. The pair (weight, prior weight) is the grid's best on all records by accuracy,
    /// then by the tail's accuracy, ties to the smaller prior weight and weight; it is kept
    /// unless choosing it on one half and scoring the other (both ways) does not beat the
    /// ranker's accuracy alone, in which case both are 0.
    pub fn fit_weight(&mut self, candidates: &[Vec<(u32, f32)>], embeddings: &[Vec<f32>], truths: &[u32], labels: &LabelSet) {
        let total: f64 = labels.labels.iter().map(|l| f64::from(l.train_count)).sum();
        let smoothed = total + labels.len() as f64;
        self.log_priors = labels.labels.iter().map(|l| ((f64::from(l.train_count) + 1.0) / smoothed).ln() as f32).collect();
        let all: Vec<usize> = (0..truths.len().min(candidates.len()).min(embeddings.len())).collect();
        let tail: Vec<bool> = all.iter().map(|&i| labels.get(truths[i]).is_some_and(|l| l.tail)).collect();
        // The parent's evidence is tried only where the caller gave the labels' parents.
        let with_parents = self.parents.len() == labels.len() && !self.parents.is_empty();
        let parent_grid: Vec<f32> = if with_parents { PARENT_GRID.map(|g| g as f32 * PARENT_STEP).collect() } else { vec![0.0] };
        // And the label text's, where the caller gave the labels' text vectors.
        let with_text = self.text_vectors.len() == labels.len() && !self.text_vectors.is_empty();
        let text_grid: Vec<f32> = if with_text { TEXT_GRID.map(|g| g as f32 * TEXT_STEP).collect() } else { vec![0.0] };
        // Each record's candidates as (label, ln score, log p, log prior, parent's log p, the
        // label text's cosine over the temperature): the grid is then sums and comparisons.
        use rayon::prelude::*;
        let scored: Vec<Vec<Scored>> = all
            .par_iter()
            .map(|&i| {
                let log_probs = self.log_probs(&embeddings[i]);
                let parents = with_parents.then(|| parent_log_probs(&log_probs, &self.parents));
                let evidence = |l: u32| log_probs.get(l as usize).copied().unwrap_or(f32::MIN);
                let prior = |l: u32| self.log_priors.get(l as usize).copied().unwrap_or(0.0);
                let parent = |l: u32| parents.as_ref().and_then(|p| p.get(l as usize).copied()).unwrap_or(0.0);
                let text = |l: u32| {
                    let t = self.text_vectors.get(l as usize).filter(|_| with_text);
                    t.map_or(0.0, |t| dot(t, &embeddings[i]) / self.temperature)
                };
                candidates[i].iter().map(|&(l, s)| (l, s.max(f32::MIN_POSITIVE).ln(), evidence(l), prior(l), parent(l), text(l))).collect()
            })
            .collect();
        if let Some(dir) = std::env::var_os(FIT_DUMP_ENV) {
            dump_fit_inputs(std::path::Path::new(&dir), &scored, truths, &tail, labels, self);
        }
        let correct = |(w, tau, rho, sigma): (f32, f32, f32, f32), i: usize| {
            let score = |c: &Scored| c.1 + w * (c.2 - tau * c.3 + rho * c.4 + sigma * c.5);
            // As `rescored` sorts: by score, ties by label id.
            let top = scored[i].iter().max_by(|a, b| score(a).total_cmp(&score(b)).then(b.0.cmp(&a.0)));
            top.is_some_and(|c| c.0 == truths[i])
        };
        // (accuracy, tail accuracy) counts over `idx`.
        let count = |setting: (f32, f32, f32, f32), idx: &[usize]| {
            idx.iter().filter(|&&i| correct(setting, i)).fold((0, 0), |(n, t), &i| (n + 1, t + tail[i] as usize))
        };
        let best = |idx: &[usize]| {
            let mut best = ((0.0f32, 0.0f32, 0.0f32, 0.0f32), count((0.0, 0.0, 0.0, 0.0), idx));
            for &sigma in &text_grid {
                for &rho in &parent_grid {
                    for tau in PRIOR_GRID.map(|g| g as f32 * PRIOR_STEP) {
                        for w in WEIGHT_GRID.map(|g| g as f32 * WEIGHT_STEP) {
                            let n = count((w, tau, rho, sigma), idx);
                            if n > best.1 {
                                best = ((w, tau, rho, sigma), n);
                            }
                        }
                    }
                }
            }
            best.0
        };
        let halves: [Vec<usize>; 2] = [0, 1].map(|h| all.iter().copied().filter(|i| i % 2 == h).collect());
        // Each record scored with the setting chosen on the other half.
        let mut cross_fitted_hits = vec![false; all.len()];
        for h in 0..2 {
            let chosen = best(&halves[h]);
            for &i in &halves[1 - h] {
                cross_fitted_hits[i] = correct(chosen, i);
            }
        }
        let cross = all.iter().filter(|&&i| cross_fitted_hits[i]).fold((0, 0), |(n, t), &i| (n + 1, t + tail[i] as usize));
        let ranker = count((0.0, 0.0, 0.0, 0.0), &all);
        let (best_weight, best_prior, best_parent, best_text) = best(&all);
        let n = all.len().max(1) as f64;
        let tail_n = tail.iter().filter(|&&t| t).count();
        let tail_share = |hits: usize| (tail_n > 0).then(|| hits as f64 / tail_n as f64);
        self.fit = WeightFit {
            records: all.len(),
            ranker_accuracy: ranker.0 as f64 / n,
            cross_fitted_accuracy: cross.0 as f64 / n,
            best_weight,
            ranker_tail_accuracy: tail_share(ranker.1),
            cross_fitted_tail_accuracy: tail_share(cross.1),
            without_parent_cross_fitted_accuracy: None,
            without_text_cross_fitted_accuracy: None,
            cross_fitted_hits,
        };
        (self.weight, self.prior_weight, self.parent_weight, self.text_weight) =
            if cross.0 > ranker.0 { (best_weight, best_prior, best_parent, best_text) } else { (0.0, 0.0, 0.0, 0.0) };
        if self.parent_weight == 0.0 {
            self.parents.clear();
        }
        if self.text_weight == 0.0 {
            self.text_vectors.clear();
        }
    }
}

impl EncoderClassifier {
    /// Fits the cascade ([`Skip::fit`]) on validation records, after [`Self::fit_weight`] and
    /// with the same inputs, against consulting the classifier on every record. `None` when the
    /// weight is 0 (nothing to consult) or no record can be skipped.
    pub fn fit_skip(&mut self, candidates: &[Vec<(u32, f32)>], embeddings: &[Vec<f32>], truths: &[u32], labels: &LabelSet) {
        self.skip = None;
        let n = truths.len().min(candidates.len()).min(embeddings.len());
        if self.weight == 0.0 || n == 0 {
            return;
        }
        use rayon::prelude::*;
        let outcomes: Vec<Outcome> = (0..n)
            .into_par_iter()
            .map(|i| {
                let top = |ranked: &[(u32, f32)]| ranked.first().is_some_and(|c| c.0 == truths[i]);
                let rescored = self.rescore(&embeddings[i], &candidates[i], 1);
                Outcome { ranker_right: top(&candidates[i]), consulted_right: top(&rescored), tail: labels.get(truths[i]).is_some_and(|l| l.tail) }
            })
            .collect();
        self.skip = Skip::fit(&candidates[..n], &outcomes);
    }
}

/// When set, every [`EncoderClassifier::fit_weight`] writes what it fits on to `fit<N>.json` in
/// this folder (N counts the fits of the process: per setting tried, the ranker's candidates then
/// the widened ones, and so on), for offline probes of the fit (`xtask/bench/fit_replay.py`).
pub const FIT_DUMP_ENV: &str = "XMC_FIT_DUMP";

/// Writes one fit's inputs for [`FIT_DUMP_ENV`]: each validation record's candidates as the fit
/// scores them ([`Scored`]), the true labels, their tail flags, every label's training count,
/// and which evidence the fit tries. A failure to write is logged, not fatal: it is a probe.
fn dump_fit_inputs(dir: &std::path::Path, scored: &[Vec<Scored>], truths: &[u32], tail: &[bool], labels: &LabelSet, fit: &EncoderClassifier) {
    static FITS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = FITS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let counts: Vec<u32> = labels.labels.iter().map(|l| l.train_count).collect();
    let dump = serde_json::json!({
        "scored": scored,
        "truths": &truths[..scored.len()],
        "tail": tail,
        "counts": counts,
        "own_candidates": fit.own_candidates,
        "parents": !fit.parents.is_empty(),
        "text": !fit.text_vectors.is_empty(),
    });
    let path = dir.join(format!("fit{n}.json"));
    if let Err(e) = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, dump.to_string())) {
        tracing::warn!("{FIT_DUMP_ENV}: could not write {}: {e}", path.display());
    }
}

/// A candidate as the weights' fit sees it: (label, ln ranker score, log p, log prior, parent's
/// log p, the label text's cosine over the temperature).
type Scored = (u32, f32, f32, f32, f32, f32);

/// The dot product of `a` and `b` over their common length, in 8 running sums (which the
/// compiler turns into vector lanes: a single running sum fixes the order of the additions and
/// keeps it scalar, ~8x slower over the thousands of labels a record is scored against).
pub(crate) fn dot(a: &[f32], b: &[f32]) -> f32 {
    let n = a.len().min(b.len());
    let (a, b) = (&a[..n], &b[..n]);
    let mut sums = [0.0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let rest: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a8.zip(b8) {
        for k in 0..8 {
            sums[k] += x[k] * y[k];
        }
    }
    sums.iter().sum::<f32>() + rest
}

/// Each label's parent evidence: the log of the probability summed over the labels of its
/// parent group (`parents[l]`), from the labels' `log_probs`.
fn parent_log_probs(log_probs: &[f32], parents: &[u32]) -> Vec<f32> {
    let groups = parents.iter().map(|&g| g as usize + 1).max().unwrap_or(0);
    let mut max = vec![f32::NEG_INFINITY; groups];
    for (&lp, &g) in log_probs.iter().zip(parents) {
        max[g as usize] = max[g as usize].max(lp);
    }
    let mut sum = vec![0.0f32; groups];
    for (&lp, &g) in log_probs.iter().zip(parents) {
        sum[g as usize] += (lp - max[g as usize]).exp();
    }
    parents.iter().map(|&g| max[g as usize] + sum[g as usize].ln()).collect()
}

/// Each label's parent group: labels whose paths share everything but the leaf share an id
/// (top-level labels share the root's).
pub fn parent_groups(labels: &LabelSet) -> Vec<u32> {
    let mut ids: std::collections::HashMap<&[String], u32> = std::collections::HashMap::new();
    labels
        .labels
        .iter()
        .map(|l| {
            let parent = &l.levels[..l.levels.len().saturating_sub(1)];
            let next = ids.len() as u32;
            *ids.entry(parent).or_insert(next)
        })
        .collect()
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
    use crate::cascade::Gate;

    fn classifier(weight: f32) -> EncoderClassifier {
        let vectors = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![0.6, 0.8]];
        EncoderClassifier { weight, ..EncoderClassifier::new(0.1, vectors) }
    }

    /// Labels 0, 1, 2 with these training counts; the tail is at most 25.
    fn labels(train_counts: [u32; 3]) -> LabelSet {
        let levels = |i: u32| vec![format!("l{i}")];
        let set = LabelSet::from_paths((0..3).map(levels).collect::<Vec<_>>().iter().map(Vec::as_slice), 25);
        let labels = set.labels.into_iter().zip(train_counts).map(|(l, c)| xmc_data::Label { train_count: c, tail: c <= 25, ..l }).collect();
        LabelSet::from_labels(labels, 25)
    }

    #[test]
    fn the_dot_product_in_lanes_is_the_plain_one() {
        for n in [0, 1, 7, 8, 9, 384, 390] {
            let a: Vec<f32> = (0..n).map(|i| ((i * 37) % 11) as f32 - 5.0).collect();
            let b: Vec<f32> = (0..n).map(|i| ((i * 13) % 7) as f32 * 0.5).collect();
            let plain: f32 = a.iter().zip(&b).map(|(x, y)| x * y).sum();
            assert_eq!(dot(&a, &b), plain, "n = {n}");
        }
        assert_eq!(dot(&[1.0, 2.0, 3.0], &[4.0, 5.0]), 14.0, "the common length");
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
    fn top_labels_are_the_most_probable_best_first() {
        // Logits 10, 0, 6 for the embedding (1, 0).
        let c = classifier(1.0);
        assert_eq!(c.top_labels(&[1.0, 0.0], 2), vec![0, 2]);
        assert_eq!(c.top_labels(&[1.0, 0.0], 1), vec![0]);
        assert_eq!(c.top_labels(&[0.0, 1.0], 5), vec![1, 2, 0], "more than there are: all of them");
        assert!(c.top_labels(&[1.0, 0.0], 0).is_empty());
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
        let even = labels([100, 100, 100]);
        let mut helps = classifier(0.0);
        helps.fit_weight(&candidates, &embeddings, &[0; 20], &even);
        assert!(helps.weight > 0.0, "{:?}", helps.fit);
        assert_eq!(helps.prior_weight, 0.0, "equal priors: no reason to adjust");
        assert_eq!((helps.fit.ranker_accuracy, helps.fit.cross_fitted_accuracy, helps.fit.records), (0.0, 1.0, 20));
        assert!(helps.weight <= 0.1, "the smallest weight that flips them: {}", helps.weight);
        // The ranker is right already: the classifier could only hurt, so its weight is 0.
        let mut hurts = classifier(0.0);
        hurts.fit_weight(&candidates, &embeddings, &[1; 20], &even);
        assert_eq!(hurts.weight, 0.0, "{:?}", hurts.fit);
        assert_eq!(hurts.fit.ranker_accuracy, 1.0);
    }

    #[test]
    fn a_fits_inputs_are_written_as_the_fit_scores_them_one_file_per_fit() {
        let dir = tempfile::tempdir().unwrap();
        let c = classifier(0.0);
        let counts = labels([9, 0, 3]);
        let scored: Vec<Vec<Scored>> = vec![vec![(1, -0.5, -2.0, -1.5, 0.0, 0.0), (0, -0.7, -0.1, -0.4, 0.0, 0.0)], vec![(2, -0.2, -0.3, -1.1, 0.0, 0.0)]];
        dump_fit_inputs(dir.path(), &scored, &[0, 2, 1], &[true, false], &counts, &c);
        dump_fit_inputs(dir.path(), &scored[..1], &[0], &[true], &counts, &c);
        let mut files: Vec<String> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        files.sort();
        assert_eq!(files.len(), 2, "one file per fit: {files:?}");
        let first: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join(&files[0])).unwrap()).unwrap();
        let second: serde_json::Value = serde_json::from_slice(&std::fs::read(dir.path().join(&files[1])).unwrap()).unwrap();
        // Numbered in the order of the fits (the counter is the process's, so other tests may
        // have taken numbers in between).
        let number = |f: &str| f.trim_start_matches("fit").trim_end_matches(".json").parse::<usize>().unwrap();
        let (first, second) = if number(&files[0]) < number(&files[1]) { (first, second) } else { (second, first) };
        assert_eq!(first["scored"], serde_json::to_value(&scored).unwrap(), "each candidate as (label, ln score, log p, log prior, parent, text)");
        assert_eq!(first["truths"], serde_json::json!([0, 2]), "the truths of the scored records only");
        assert_eq!(first["tail"], serde_json::json!([true, false]));
        assert_eq!(first["counts"], serde_json::json!([9, 0, 3]));
        assert_eq!(second["truths"], serde_json::json!([0]));
    }

    #[test]
    fn the_prior_is_taken_off_only_where_accuracy_ties_and_the_tail_gains() {
        // Label 0 is frequent, 1 rare (the tail), 2 in between. Records of three kinds, in
        // turn: (a) truth 1 and (b) truth 0, both with the ranker and the classifier undecided
        // between 0 and 1, so the label id breaks the tie for 0 unless the prior is taken off;
        // (c) truth 2, which the ranker misses and the classifier finds at any prior weight.
        let set = labels([100, 1, 50]);
        let undecided = [std::f32::consts::FRAC_1_SQRT_2; 2].to_vec();
        let (mut candidates, mut embeddings, mut truths) = (Vec::new(), Vec::new(), Vec::new());
        for i in 0..30 {
            let (c, e, t) = match i % 3 {
                0 => (vec![(0, 0.5), (1, 0.5)], undecided.clone(), 1),
                1 => (vec![(0, 0.5), (1, 0.5)], undecided.clone(), 0),
                _ => (vec![(0, 0.6), (2, 0.5)], vec![0.6, 0.8], 2),
            };
            candidates.push(c);
            embeddings.push(e);
            truths.push(t);
        }
        let mut c = classifier(0.0);
        c.fit_weight(&candidates, &embeddings, &truths, &set);
        assert!(c.weight > 0.0 && c.prior_weight > 0.0, "{} {} {:?}", c.weight, c.prior_weight, c.fit);
        assert_eq!((c.fit.ranker_tail_accuracy, c.fit.cross_fitted_tail_accuracy), (Some(0.0), Some(1.0)), "{:?}", c.fit);
        assert!((c.fit.cross_fitted_accuracy - 2.0 / 3.0).abs() < 1e-9, "{:?}", c.fit);
        // Rescoring applies the prior: the rare label comes first for an undecided record.
        assert_eq!(c.rescore(&undecided, &candidates[0], 2)[0].0, 1);
        c.prior_weight = 0.0;
        assert_eq!(c.rescore(&undecided, &candidates[0], 2)[0].0, 0);
    }

    #[test]
    fn the_classifier_is_skipped_on_the_confident_records_until_skipping_would_cost_a_hit() {
        // By the ranker's top score: (a) ten sure records the classifier agrees with; (b) one
        // where it would flip the ranker's right answer; (d) one where it would fix a wrong
        // one; (c) five unsure records it fixes. Skipping a and b gains a hit, d gives it back
        // (still no loss), c would lose: the threshold is d's score.
        let even = labels([100, 100, 100]);
        let record = |top: f32, embedding: [f32; 2], truth: u32| (vec![(0, top), (1, 0.05)], embedding.to_vec(), truth);
        let a = || record(0.9, [1.0, 0.0], 0);
        let (b, d) = (record(0.89, [0.0, 1.0], 0), record(0.88, [0.0, 1.0], 1));
        let c = || (vec![(0, 0.5), (1, 0.45)], vec![0.0, 1.0], 1);
        let fit = |records: Vec<(Vec<(u32, f32)>, Vec<f32>, u32)>, weight: f32| {
            let mut clf = classifier(weight);
            let (candidates, rest): (Vec<_>, Vec<_>) = records.into_iter().map(|(c, e, t)| (c, (e, t))).unzip();
            let (embeddings, truths): (Vec<_>, Vec<_>) = rest.into_iter().unzip();
            clf.fit_skip(&candidates, &embeddings, &truths, &even);
            // Skipping never costs a validation hit.
            let hits = |clf: &EncoderClassifier| {
                (0..truths.len())
                    .filter(|&i| {
                        let top = if clf.consulted(&candidates[i]) { clf.rescore(&embeddings[i], &candidates[i], 1)[0].0 } else { candidates[i][0].0 };
                        top == truths[i]
                    })
                    .count()
            };
            let always = EncoderClassifier { skip: None, ..clf.clone() };
            assert!(hits(&clf) >= hits(&always));
            clf
        };
        let all = || (0..10).map(|_| a()).chain([b.clone(), d.clone()]).chain((0..5).map(|_| c())).collect::<Vec<_>>();
        let clf = fit(all(), 1.0);
        let skip = clf.skip.expect("the sure records are skipped");
        assert_eq!((skip.gate, skip.threshold), (Gate::TopScore, 0.88), "{skip:?}");
        assert!((skip.skipped - 12.0 / 17.0).abs() < 1e-12);
        assert!(!clf.consulted(&a().0) && clf.consulted(&c().0));
        // Without b, d's fix would be lost by skipping it: only the ten sure records are skipped.
        let without_b: Vec<_> = all().into_iter().filter(|r| r.0[0].1 != 0.89).collect();
        assert_eq!(fit(without_b, 1.0).skip.map(|s| s.threshold), Some(0.9));
        // A classifier with no weight is never consulted: there is nothing to fit.
        let idle = fit(all(), 0.0);
        assert_eq!(idle.skip, None);
        assert!(!idle.consulted(&c().0));
    }

    /// Parallel branches: "A > x" and "B > x" share a leaf name. The ranker prefers B > x; the
    /// classifier, asked about the leaves alone, does too (0.35 against 0.30), but it puts more
    /// of its mass under A (0.6 against 0.4), and the truth is A > x.
    fn parallel_branches() -> (LabelSet, EncoderClassifier, Vec<Vec<(u32, f32)>>, Vec<Vec<f32>>) {
        let paths: Vec<Vec<String>> = [["A", "x"], ["A", "y"], ["B", "x"], ["B", "y"]].iter().map(|p| p.map(String::from).to_vec()).collect();
        let set = LabelSet::from_paths(paths.iter().map(Vec::as_slice), 25);
        let labels = set.labels.into_iter().map(|l| xmc_data::Label { train_count: 100, tail: false, ..l }).collect();
        let set = LabelSet::from_labels(labels, 25);
        let vectors = [0.30f32, 0.30, 0.35, 0.05].map(|p| vec![p.ln()]).to_vec();
        let classifier = EncoderClassifier::new(1.0, vectors);
        (set, classifier, vec![vec![(2, 0.6), (0, 0.5)]; 20], vec![vec![1.0]; 20])
    }

    /// The learnt vectors and the ranker both prefer label 1; the label texts point at label 0,
    /// every record's truth.
    #[test]
    fn the_label_texts_evidence_is_fitted_kept_where_it_wins_and_applied_at_prediction() {
        let set = labels([100, 100, 100]);
        let vectors = vec![vec![0.6, 0.8], vec![1.0, 0.0], vec![0.0, 1.0]];
        let classifier = EncoderClassifier::new(1.0, vectors);
        let candidates = vec![vec![(1, 0.6), (0, 0.5)]; 20];
        let embeddings = vec![vec![1.0, 0.0]; 20];
        let truths = vec![0u32; 20];
        let mut without = classifier.clone();
        without.fit_weight(&candidates, &embeddings, &truths, &set);
        assert_eq!((without.weight, without.fit.cross_fitted_accuracy), (0.0, 0.0), "the learnt vectors alone cannot help");
        let texts = vec![vec![1.0, 0.0], vec![0.0, 1.0], vec![0.0, 1.0]];
        let mut with_text = EncoderClassifier { text_vectors: texts.clone(), ..classifier.clone() };
        with_text.fit_weight(&candidates, &embeddings, &truths, &set);
        assert!(with_text.weight > 0.0 && with_text.text_weight > 0.0, "{:?}", with_text.fit);
        assert_eq!(with_text.fit.cross_fitted_accuracy, 1.0);
        assert_eq!(with_text.rescore(&embeddings[0], &candidates[0], 2)[0].0, 0, "prediction applies the text's evidence too");
        with_text.check(3, 2).unwrap();
        let short = EncoderClassifier { text_vectors: texts[..2].to_vec(), ..with_text.clone() };
        assert!(short.check(3, 2).unwrap_err().to_string().contains("text vectors"));
        // Where it does not win, the weight is 0 and the vectors are not kept.
        let mut useless = EncoderClassifier { text_vectors: vec![vec![0.0, 1.0], vec![1.0, 0.0], vec![0.0, 1.0]], ..classifier };
        useless.fit_weight(&candidates, &embeddings, &truths, &set);
        assert_eq!((useless.text_weight, useless.text_vectors.len()), (0.0, 0));
        // A folder written before the label text's evidence existed reads as none.
        let mut json = serde_json::to_value(&with_text).unwrap();
        json.as_object_mut().unwrap().retain(|k, _| k != "text_weight" && k != "text_vectors");
        let old: EncoderClassifier = serde_json::from_value(json).unwrap();
        assert_eq!((old.text_weight, old.text_vectors.len()), (0.0, 0));
        assert_eq!(old.rescore(&embeddings[0], &candidates[0], 2)[0].0, 1);
    }

    #[test]
    fn a_labels_parent_group_holds_its_siblings_and_its_evidence_is_their_summed_probability() {
        let (set, classifier, _, _) = parallel_branches();
        let groups = parent_groups(&set);
        assert_eq!(groups, vec![0, 0, 1, 1]);
        let parents = parent_log_probs(&classifier.log_probs(&[1.0]), &groups);
        assert!((parents[0] - 0.6f32.ln()).abs() < 1e-5 && parents[0] == parents[1], "{parents:?}");
        assert!((parents[2] - 0.4f32.ln()).abs() < 1e-5, "{parents:?}");
    }

    #[test]
    fn the_parents_evidence_tells_parallel_branches_apart_where_the_leaves_do_not() {
        let (set, classifier, candidates, embeddings) = parallel_branches();
        let truths = vec![0u32; candidates.len()];
        let mut leaves_only = classifier.clone();
        leaves_only.fit_weight(&candidates, &embeddings, &truths, &set);
        assert_eq!((leaves_only.weight, leaves_only.fit.cross_fitted_accuracy), (0.0, 0.0), "the leaves alone cannot help");
        let mut with_parent = EncoderClassifier { parents: parent_groups(&set), ..classifier };
        with_parent.fit_weight(&candidates, &embeddings, &truths, &set);
        assert!(with_parent.weight > 0.0 && with_parent.parent_weight > 0.0, "{:?}", with_parent.fit);
        assert_eq!(with_parent.fit.cross_fitted_accuracy, 1.0);
        assert_eq!(with_parent.rescore(&embeddings[0], &candidates[0], 1)[0].0, 0, "prediction applies the parent's evidence too");
        with_parent.check(4, 1).unwrap();
        // A folder written before the parent's evidence existed reads as none.
        let mut json = serde_json::to_value(&leaves_only).unwrap();
        json.as_object_mut().unwrap().retain(|k, _| k != "parent_weight" && k != "parents");
        let old: EncoderClassifier = serde_json::from_value(json).unwrap();
        assert_eq!((old.parent_weight, old.parents.len()), (0.0, 0));
    }
}
