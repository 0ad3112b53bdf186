//! All metrics of one set of predictions, in one serialisable struct (`metrics.json`).

use serde::{Deserialize, Serialize};
use xmc_data::LabelSet;

use crate::EvalConfig;
use crate::classification::{Averages, averages};
use crate::hierarchy::{LevelScore, PrefixScore, code_prefix, hierarchical_prf, per_level};
use crate::ranking::{AtK, at_k, inverse_propensity};

/// One evaluated record: its true label and the predicted labels, best first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scored {
    pub truth: u32,
    pub ranked: Vec<u32>,
}

/// Training-frequency buckets for accuracy by label frequency.
pub const BUCKETS: [(&str, u32, u32); 5] =
    [("unseen", 0, 0), ("1-5", 1, 5), ("6-25", 6, 25), ("26-100", 26, 100), (">100", 101, u32::MAX)];

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BucketScore {
    pub bucket: String,
    /// Test records whose true label's training count falls in the bucket.
    pub records: usize,
    /// Distinct true labels among them.
    pub labels: usize,
    pub accuracy: Option<f64>,
}

/// Test records whose label the model never saw in training (they count as errors everywhere).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Unseen {
    pub records: usize,
    /// `(label path, test records)`, most frequent first.
    pub labels: Vec<(String, usize)>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub records: usize,
    /// Distinct true labels in the evaluated records.
    pub labels: usize,
    pub accuracy: f64,
    /// 95% bootstrap interval.
    pub accuracy_ci: Option<[f64; 2]>,
    /// Precision/recall/F1 over leaves; `macro_f1_ci` is the 95% bootstrap interval of macro-F1.
    pub leaf: Averages,
    pub macro_f1_ci: Option<[f64; 2]>,
    pub tail_max: u32,
    pub tail_records: usize,
    /// Accuracy on records whose true label has at most `tail_max` training records.
    pub tail_accuracy: Option<f64>,
    pub head_accuracy: Option<f64>,
    pub buckets: Vec<BucketScore>,
    pub levels: Vec<LevelScore>,
    /// Hierarchical precision/recall/F1 over ancestor sets.
    pub hierarchical: crate::classification::Prf,
    pub at_k: Vec<AtK>,
    /// Code-prefix accuracy by depth (hierarchical targets only).
    pub code_prefix: Option<Vec<PrefixScore>>,
    pub unseen: Unseen,
    /// Reliability of the top-1 confidence (when the predictions carry scores).
    #[serde(default)]
    pub calibration: Option<crate::calibration::Reliability>,
}

/// Scores `records` against `labels` (whose `train_count`s give the tail, the buckets and the
/// propensities). `codes[l]` is label l's prefix code when the model generated codes.
pub fn evaluate(labels: &LabelSet, records: &[Scored], codes: Option<&[Vec<u32>]>, cfg: &EvalConfig) -> Metrics {
    let pairs: Vec<(u32, Option<u32>)> = records.iter().map(|r| (r.truth, r.ranked.first().copied())).collect();
    let train_count = |l: u32| labels.get(l).map_or(0, |l| l.train_count);
    let n = records.len();
    let correct: Vec<bool> = pairs.iter().map(|&(t, p)| p == Some(t)).collect();
    let accuracy_of = |idx: &mut dyn Iterator<Item = usize>| {
        let (mut hit, mut all) = (0usize, 0usize);
        for i in idx {
            all += 1;
            hit += correct[i] as usize;
        }
        (all > 0).then(|| hit as f64 / all as f64)
    };

    let accuracy = accuracy_of(&mut (0..n)).unwrap_or(0.0);
    let leaf = averages(pairs.iter().copied());
    let accuracy_ci = crate::bootstrap::interval(n, cfg.bootstrap, cfg.seed, |s| accuracy_of(&mut s.iter().copied()).unwrap_or(0.0));
    let macro_f1_ci =
        crate::bootstrap::interval(n, cfg.bootstrap, cfg.seed.wrapping_add(1), |s| averages(s.iter().map(|&i| pairs[i])).macro_avg.f1);

    let is_tail = |l: u32| train_count(l) <= labels.tail_max;
    let tail: Vec<usize> = (0..n).filter(|&i| is_tail(pairs[i].0)).collect();
    let buckets = BUCKETS
        .iter()
        .map(|&(name, lo, hi)| {
            let idx: Vec<usize> = (0..n).filter(|&i| (lo..=hi).contains(&train_count(pairs[i].0))).collect();
            let distinct: std::collections::BTreeSet<u32> = idx.iter().map(|&i| pairs[i].0).collect();
            BucketScore { bucket: name.into(), records: idx.len(), labels: distinct.len(), accuracy: accuracy_of(&mut idx.iter().copied()) }
        })
        .collect();

    let n_train: usize = labels.labels.iter().map(|l| l.train_count as usize).sum();
    let inv_prop: Vec<f64> =
        pairs.iter().map(|&(t, _)| inverse_propensity(train_count(t), n_train, cfg.propensity_a, cfg.propensity_b)).collect();
    let ranks: Vec<Option<usize>> = records.iter().map(|r| r.ranked.iter().position(|&l| l == r.truth).map(|p| p + 1)).collect();

    let mut unseen_counts: std::collections::BTreeMap<u32, usize> = Default::default();
    for &(t, _) in &pairs {
        if train_count(t) == 0 {
            *unseen_counts.entry(t).or_default() += 1;
        }
    }
    let mut unseen_labels: Vec<(String, usize)> =
        unseen_counts.into_iter().map(|(l, c)| (labels.get(l).map_or_else(|| format!("#{l}"), |l| l.path.clone()), c)).collect();
    unseen_labels.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));

    Metrics {
        records: n,
        labels: pairs.iter().map(|p| p.0).collect::<std::collections::BTreeSet<_>>().len(),
        accuracy,
        accuracy_ci,
        leaf,
        macro_f1_ci,
        tail_max: labels.tail_max,
        tail_records: tail.len(),
        tail_accuracy: accuracy_of(&mut tail.iter().copied()),
        head_accuracy: accuracy_of(&mut (0..n).filter(|&i| !is_tail(pairs[i].0))),
        buckets,
        levels: per_level(labels, &pairs),
        hierarchical: hierarchical_prf(labels, &pairs),
        at_k: cfg.ks.iter().map(|&k| at_k(&ranks, &inv_prop, k)).collect(),
        code_prefix: codes.map(|c| code_prefix(c, &pairs)),
        unseen: Unseen { records: unseen_labels.iter().map(|u| u.1).sum(), labels: unseen_labels },
        calibration: None,
    }
}

impl Metrics {
    pub fn save(&self, path: &std::path::Path) -> Result<(), crate::EvalError> {
        let text = serde_json::to_string_pretty(self).expect("metrics serialise") + "\n";
        std::fs::write(path, text).map_err(|e| crate::EvalError::io(path, e))
    }

    pub fn load(path: &std::path::Path) -> Result<Metrics, crate::EvalError> {
        let text = std::fs::read_to_string(path).map_err(|e| crate::EvalError::io(path, e))?;
        serde_json::from_str(&text).map_err(|e| crate::EvalError::Format { path: path.into(), message: e.to_string() })
    }
}
