//! How far one method leads another on the same records: the differences of their accuracy,
//! macro-F1 and tail accuracy, each with a paired 95% bootstrap interval (both methods scored on
//! the same resamples, so that the records they both get right or both get wrong do not widen it).

use serde::{Deserialize, Serialize};
use xmc_data::LabelSet;

use crate::classification::averages;

/// One metric's difference (ours minus theirs) and its 95% interval.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Difference {
    pub value: f64,
    pub ci: Option<[f64; 2]>,
}

/// Our lead over another method on the same records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lead {
    pub accuracy: Difference,
    pub macro_f1: Difference,
    /// Over the records whose label had at most `labels.tail_max` training records (none when
    /// there are no such records).
    pub tail_accuracy: Option<Difference>,
}

/// Our lead over theirs: `truths[i]` is record i's label, `ours[i]` / `theirs[i]` the two
/// methods' top label for it; `resamples` bootstrap samples drawn from `seed` (the same samples
/// for every metric).
pub fn lead(labels: &LabelSet, truths: &[u32], ours: &[Option<u32>], theirs: &[Option<u32>], resamples: usize, seed: u64) -> Lead {
    assert!(truths.len() == ours.len() && truths.len() == theirs.len(), "one prediction per record from each method");
    let n = truths.len();
    // +1 where only we are right, -1 where only they are.
    let gain: Vec<f64> = (0..n).map(|i| f64::from(ours[i] == Some(truths[i])) - f64::from(theirs[i] == Some(truths[i]))).collect();
    let tail: Vec<bool> = truths.iter().map(|&t| labels.get(t).map_or(0, |l| l.train_count) <= labels.tail_max).collect();
    let mean_gain = |idx: &mut dyn Iterator<Item = usize>| {
        let (mut sum, mut count) = (0.0, 0usize);
        for i in idx {
            sum += gain[i];
            count += 1;
        }
        if count == 0 { 0.0 } else { sum / count as f64 }
    };
    let macro_f1 = |idx: &[usize]| {
        let f1 = |preds: &[Option<u32>]| averages(idx.iter().map(|&i| (truths[i], preds[i]))).macro_avg.f1;
        f1(ours) - f1(theirs)
    };
    let all: Vec<usize> = (0..n).collect();
    let difference = |value: f64, statistic: &mut dyn FnMut(&[usize]) -> f64| Difference {
        value,
        ci: crate::bootstrap::interval(n, resamples, seed, statistic),
    };
    let accuracy = difference(mean_gain(&mut (0..n)), &mut |s| mean_gain(&mut s.iter().copied()));
    let macro_f1 = difference(macro_f1(&all), &mut |s| macro_f1(s));
    let tail_accuracy = tail.iter().any(|&t| t).then(|| {
        difference(mean_gain(&mut (0..n).filter(|&i| tail[i])), &mut |s| mean_gain(&mut s.iter().copied().filter(|&i| tail[i])))
    });
    Lead { accuracy, macro_f1, tail_accuracy }
}

impl Difference {
    /// In points, signed, with the interval: `+1.40 [+0.59, +2.22]`.
    pub fn points(&self) -> String {
        let p = |x: f64| format!("{:+.2}", 100.0 * x);
        match self.ci {
            Some([lo, hi]) => format!("{} [{}, {}]", p(self.value), p(lo), p(hi)),
            None => p(self.value),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Four labels; labels 2 and 3 are tail (1 training record each).
    fn labels() -> LabelSet {
        let paths: Vec<Vec<String>> = ["a", "b", "c", "d"].iter().map(|p| vec![p.to_string()]).collect();
        let mut set = LabelSet::from_paths(paths.iter().map(Vec::as_slice), 25);
        for (l, count) in set.labels.iter_mut().zip([100, 100, 1, 1]) {
            l.train_count = count;
        }
        set
    }

    #[test]
    fn the_same_predictions_lead_by_nothing() {
        let truths: Vec<u32> = (0..400).map(|i| i % 4).collect();
        let preds: Vec<Option<u32>> = (0..400).map(|i| Some(if i % 3 == 0 { 0 } else { i % 4 })).collect();
        let lead = lead(&labels(), &truths, &preds, &preds, 200, 1);
        for d in [lead.accuracy, lead.macro_f1, lead.tail_accuracy.unwrap()] {
            assert_eq!(d.value, 0.0);
            assert_eq!(d.ci, Some([0.0, 0.0]));
        }
    }

    #[test]
    fn the_lead_is_ours_minus_theirs_and_its_interval_brackets_it() {
        let truths: Vec<u32> = (0..400).map(|i| i % 4).collect();
        let ours: Vec<Option<u32>> = truths.iter().map(|&t| Some(t)).collect();
        // They miss every second record of label 0 and every record of label 2 (tail).
        let theirs: Vec<Option<u32>> = (0..400u32).map(|i| Some(if (i % 4 == 0 && i % 8 == 0) || i % 4 == 2 { 1 } else { i % 4 })).collect();
        let lead = lead(&labels(), &truths, &ours, &theirs, 500, 3);
        assert!((lead.accuracy.value - 150.0 / 400.0).abs() < 1e-12, "{:?}", lead.accuracy);
        let tail = lead.tail_accuracy.unwrap();
        assert!((tail.value - 0.5).abs() < 1e-12, "{tail:?}");
        for d in [lead.accuracy, lead.macro_f1, tail] {
            let [lo, hi] = d.ci.unwrap();
            assert!(lo <= d.value && d.value <= hi && lo < hi, "{d:?}");
        }
        assert!(lead.macro_f1.value > 0.0);
        assert_eq!(lead.accuracy.points().split(' ').next(), Some("+37.50"));
    }

    #[test]
    fn the_interval_is_paired() {
        // Both methods right on the same half of the records, and ours on one more: unpaired, the
        // difference of two accuracies near 0.5 would vary by several points over resamples;
        // paired, only the one record where they differ moves it.
        let n = 1000;
        let truths: Vec<u32> = vec![0; n];
        let theirs: Vec<Option<u32>> = (0..n).map(|i| Some(if i % 2 == 0 { 0 } else { 1 })).collect();
        let mut ours = theirs.clone();
        ours[1] = Some(0);
        let lead = lead(&labels(), &truths, &ours, &theirs, 500, 5);
        let [lo, hi] = lead.accuracy.ci.unwrap();
        assert!(hi - lo <= 3.0 / n as f64, "{lo} {hi}");
        assert!(lead.tail_accuracy.is_none(), "no record's label is in the tail");
    }
}
