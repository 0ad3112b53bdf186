//! Precision, recall and F1 over classes, averaged as scikit-learn's `precision_recall_fscore_support`
//! does with `zero_division=0` and the classes present in the truth or the predictions.
//!
//! A record may have no prediction (`None`): it is a miss for its true class and counts against no
//! class, as scikit-learn does for a predicted value outside `labels=`.

use std::collections::BTreeMap;
use std::hash::Hash;

use serde::{Deserialize, Serialize};

/// Precision, recall and F1, each in [0, 1].
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Prf {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
}

impl Prf {
    pub fn from_counts(tp: f64, fp: f64, fn_: f64) -> Prf {
        let precision = ratio(tp, tp + fp);
        let recall = ratio(tp, tp + fn_);
        Prf { precision, recall, f1: ratio(2.0 * tp, 2.0 * tp + fp + fn_) }
    }
}

/// The three averages over the classes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Averages {
    pub macro_avg: Prf,
    pub micro_avg: Prf,
    /// Weighted by each class's number of true records (support).
    pub weighted_avg: Prf,
    /// How many classes the macro average runs over.
    pub classes: usize,
}

#[derive(Default, Clone, Copy)]
struct Counts {
    tp: f64,
    fp: f64,
    fn_: f64,
}

/// Scores `(truth, prediction)` pairs.
pub fn averages<C: Ord + Hash + Clone>(pairs: impl IntoIterator<Item = (C, Option<C>)>) -> Averages {
    let mut counts: BTreeMap<C, Counts> = BTreeMap::new();
    for (truth, pred) in pairs {
        match pred {
            Some(p) if p == truth => counts.entry(truth).or_default().tp += 1.0,
            Some(p) => {
                counts.entry(truth).or_default().fn_ += 1.0;
                counts.entry(p).or_default().fp += 1.0;
            }
            None => counts.entry(truth).or_default().fn_ += 1.0,
        }
    }
    if counts.is_empty() {
        return Averages::default();
    }
    let n = counts.len() as f64;
    let (mut macro_sum, mut weighted_sum) = (Prf::default(), Prf::default());
    let (mut total, mut support_sum) = (Counts::default(), 0.0);
    for c in counts.values() {
        let prf = Prf::from_counts(c.tp, c.fp, c.fn_);
        let support = c.tp + c.fn_;
        for (sum, w) in [(&mut macro_sum, 1.0), (&mut weighted_sum, support)] {
            sum.precision += w * prf.precision;
            sum.recall += w * prf.recall;
            sum.f1 += w * prf.f1;
        }
        support_sum += support;
        total.tp += c.tp;
        total.fp += c.fp;
        total.fn_ += c.fn_;
    }
    let scale = |p: Prf, d: f64| Prf { precision: ratio(p.precision, d), recall: ratio(p.recall, d), f1: ratio(p.f1, d) };
    Averages {
        macro_avg: scale(macro_sum, n),
        micro_avg: Prf::from_counts(total.tp, total.fp, total.fn_),
        weighted_avg: scale(weighted_sum, support_sum),
        classes: counts.len(),
    }
}

pub(crate) fn ratio(a: f64, b: f64) -> f64 {
    if b == 0.0 { 0.0 } else { a / b }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed_three_classes() {
        // truth a a b c, predicted a b b -: a: tp1 fn1; b: tp1 fp1; c: fn1.
        let pairs = vec![("a", Some("a")), ("a", Some("b")), ("b", Some("b")), ("c", None)];
        let s = averages(pairs);
        assert_eq!(s.classes, 3);
        // a: P 1, R .5, F .667; b: P .5, R 1, F .667; c: 0 0 0.
        assert!((s.macro_avg.precision - 0.5).abs() < 1e-12);
        assert!((s.macro_avg.recall - 0.5).abs() < 1e-12);
        assert!((s.macro_avg.f1 - 4.0 / 9.0).abs() < 1e-12);
        // micro: tp 2, fp 1, fn 2.
        assert!((s.micro_avg.precision - 2.0 / 3.0).abs() < 1e-12);
        assert!((s.micro_avg.recall - 0.5).abs() < 1e-12);
        // weighted by support 2, 1, 1.
        assert!((s.weighted_avg.recall - 0.5).abs() < 1e-12);
        assert!((s.weighted_avg.f1 - (2.0 * 2.0 / 3.0 + 2.0 / 3.0) / 4.0).abs() < 1e-12);
    }

    #[test]
    fn perfect_and_empty() {
        let s = averages(vec![(1, Some(1)), (2, Some(2))]);
        assert_eq!(s.macro_avg, Prf { precision: 1.0, recall: 1.0, f1: 1.0 });
        assert_eq!(averages(Vec::<(u32, Option<u32>)>::new()).classes, 0);
    }
}
