//! Calibration of top-1 confidences: reliability bins and the expected calibration error (ECE).

use serde::{Deserialize, Serialize};

/// Equal-width bins used in reports.
pub const BINS: usize = 15;

/// One confidence bin: records whose top-1 confidence falls in `[lo, hi)` (the last bin
/// includes 1).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Bin {
    pub lo: f64,
    pub hi: f64,
    pub records: usize,
    pub mean_confidence: Option<f64>,
    pub accuracy: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reliability {
    /// `sum_b |B_b|/n * |accuracy_b - confidence_b|`.
    pub ece: f64,
    pub bins: Vec<Bin>,
    /// Mean top-1 confidence and accuracy over all records.
    pub mean_confidence: f64,
    pub accuracy: f64,
}

/// Reliability of `(top-1 confidence, correct)` pairs over `bins` equal-width bins.
pub fn reliability(top1: &[(f64, bool)], bins: usize) -> Reliability {
    let bins = bins.max(1);
    let mut sums = vec![(0usize, 0.0f64, 0usize); bins];
    for &(c, ok) in top1 {
        let c = if c.is_finite() { c.clamp(0.0, 1.0) } else { 0.0 };
        let b = ((c * bins as f64) as usize).min(bins - 1);
        sums[b].0 += 1;
        sums[b].1 += c;
        sums[b].2 += ok as usize;
    }
    let n = top1.len().max(1) as f64;
    let mut ece = 0.0;
    let bins_out = sums
        .iter()
        .enumerate()
        .map(|(i, &(count, conf, hits))| {
            let (mean_confidence, accuracy) =
                if count > 0 { (Some(conf / count as f64), Some(hits as f64 / count as f64)) } else { (None, None) };
            if let (Some(c), Some(a)) = (mean_confidence, accuracy) {
                ece += count as f64 / n * (a - c).abs();
            }
            Bin { lo: i as f64 / bins as f64, hi: (i + 1) as f64 / bins as f64, records: count, mean_confidence, accuracy }
        })
        .collect();
    Reliability {
        ece,
        bins: bins_out,
        mean_confidence: top1.iter().map(|p| p.0).sum::<f64>() / n,
        accuracy: top1.iter().filter(|p| p.1).count() as f64 / n,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ece_is_zero_when_confidence_matches_accuracy_and_the_gap_otherwise() {
        // Confidence 0.75, three of four right: calibrated.
        let good = [(0.75, true), (0.75, true), (0.75, true), (0.75, false)];
        assert!(reliability(&good, 10).ece < 1e-12);
        // Confidence 0.95, half right: ECE 0.45.
        let bad = [(0.95, true), (0.95, false)];
        let r = reliability(&bad, 10);
        assert!((r.ece - 0.45).abs() < 1e-12, "{r:?}");
        assert_eq!(r.bins[9].records, 2);
        // A confidence of exactly 1 falls in the last bin.
        assert_eq!(reliability(&[(1.0, true)], 15).bins[14].records, 1);
    }
}
