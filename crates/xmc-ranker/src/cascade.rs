//! The cascade: a costly second model (the encoder's classifier, the fused method's generator)
//! is consulted only on records whose ranker confidence is below a threshold; at or above it the
//! ranker's order stands. The gate and the threshold are fitted on validation records
//! ([`Skip::fit`]) so that skipping never costs a hit there.

use serde::{Deserialize, Serialize};

/// Records on which the ranker's own order stands: those whose `gate` confidence is at least
/// `threshold`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Skip {
    pub gate: Gate,
    pub threshold: f32,
    /// The share of the validation records skipped.
    pub skipped: f64,
}

/// The ranker's confidence in a record, from its candidates (best first).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Gate {
    /// The best candidate's score.
    TopScore,
    /// The best candidate's score less the second's.
    Margin,
}

impl Gate {
    pub fn confidence(self, candidates: &[(u32, f32)]) -> f32 {
        let score = |i: usize| candidates.get(i).map_or(0.0, |c| c.1);
        match self {
            Gate::TopScore => score(0),
            Gate::Margin => score(0) - score(1),
        }
    }
}

/// One validation record's top-1 outcome with the ranker alone and with the second model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub ranker_right: bool,
    pub consulted_right: bool,
    /// The true label is a tail label.
    pub tail: bool,
}

impl Skip {
    /// Whether a record with these ranker `candidates` (best first) keeps the ranker's order.
    pub fn skips(&self, candidates: &[(u32, f32)]) -> bool {
        self.gate.confidence(candidates) >= self.threshold
    }

    /// Fits the cascade on validation records (`candidates[i]`: the ranker's, best first;
    /// `outcomes[i]`: its top-1 outcome either way): of each gate, the longest run of records,
    /// most confident first, in which keeping the ranker's order never costs accuracy or tail
    /// hits against consulting the second model on every record (every shorter run counted
    /// too, so a loss is not hidden by a later gain); the gate that skips more is kept. `None`
    /// when no record can be skipped.
    pub fn fit(candidates: &[Vec<(u32, f32)>], outcomes: &[Outcome]) -> Option<Skip> {
        let n = candidates.len().min(outcomes.len());
        if n == 0 {
            return None;
        }
        let fit = |gate: Gate| {
            let confidence: Vec<f32> = candidates[..n].iter().map(|c| gate.confidence(c)).collect();
            let mut order: Vec<usize> = (0..n).collect();
            order.sort_by(|&a, &b| confidence[b].total_cmp(&confidence[a]));
            let (mut hits, mut tail_hits) = (0i64, 0i64);
            let mut best: Option<Skip> = None;
            for (k, &i) in order.iter().enumerate() {
                let Outcome { ranker_right, consulted_right, tail } = outcomes[i];
                hits += ranker_right as i64 - consulted_right as i64;
                tail_hits += (ranker_right && tail) as i64 - (consulted_right && tail) as i64;
                // A threshold can only fall between distinct confidences.
                if order.get(k + 1).is_some_and(|&j| confidence[j] == confidence[i]) {
                    continue;
                }
                if hits < 0 || tail_hits < 0 {
                    break;
                }
                best = Some(Skip { gate, threshold: confidence[i], skipped: (k + 1) as f64 / n as f64 });
            }
            best
        };
        let [top, margin] = [Gate::TopScore, Gate::Margin].map(fit);
        match (top, margin) {
            (Some(t), Some(m)) => Some(if m.skipped > t.skipped { m } else { t }),
            (t, m) => t.or(m),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn outcome(ranker_right: bool, consulted_right: bool, tail: bool) -> Outcome {
        Outcome { ranker_right, consulted_right, tail }
    }

    #[test]
    fn the_run_stops_before_the_first_record_where_skipping_would_cost_a_hit() {
        // Top scores 0.9 down to 0.5 (margins over a second candidate at 0.05, same order).
        // The second record gains a hit from the ranker, the third gives it back (net even: still
        // skipped), the fourth loses one; the fifth's gain must not hide that.
        let candidates: Vec<Vec<(u32, f32)>> = [0.9, 0.8, 0.7, 0.6, 0.5].iter().map(|&s| vec![(0, s), (1, 0.05)]).collect();
        let outcomes =
            [outcome(true, true, false), outcome(true, false, false), outcome(false, true, false), outcome(false, true, false), outcome(true, false, false)];
        let skip = Skip::fit(&candidates, &outcomes).expect("the first three records can be skipped");
        assert_eq!(skip.threshold, 0.7);
        assert_eq!(skip.skipped, 0.6);
        assert!(skip.skips(&candidates[2]) && !skip.skips(&candidates[3]));
        let candidates = &candidates[..4];
        // A tail hit lost counts even when the overall count is even.
        let outcomes = [outcome(true, false, false), outcome(false, true, true), outcome(true, true, false), outcome(true, true, false)];
        let skip = Skip::fit(candidates, &outcomes).expect("the first record can be skipped");
        assert_eq!((skip.threshold, skip.skipped), (0.9, 0.25));
        // Nothing to skip when the most confident record already loses a hit.
        let outcomes = [outcome(false, true, false), outcome(true, true, false), outcome(true, true, false), outcome(true, true, false)];
        assert_eq!(Skip::fit(candidates, &outcomes), None);
    }

    #[test]
    fn the_gate_that_skips_more_is_kept_and_ties_need_a_threshold_between_distinct_confidences() {
        // By top score the loser (record 1) comes second; by margin it comes last.
        let candidates = vec![vec![(0, 0.9), (1, 0.1)], vec![(0, 0.8), (1, 0.7)], vec![(0, 0.6), (1, 0.2)]];
        let outcomes = [outcome(true, true, false), outcome(false, true, false), outcome(true, true, false)];
        let skip = Skip::fit(&candidates, &outcomes).unwrap();
        assert_eq!(skip.gate, Gate::Margin);
        assert!((skip.skipped - 2.0 / 3.0).abs() < 1e-12);
        // Two records at the same confidence, one of them a loss: neither can be skipped alone.
        let candidates = vec![vec![(0, 0.5)], vec![(0, 0.5)]];
        let outcomes = [outcome(true, true, false), outcome(false, true, false)];
        assert_eq!(Skip::fit(&candidates, &outcomes), None);
    }
}
