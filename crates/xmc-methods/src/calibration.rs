//! Scores a user can threshold. Every method's predictor ranks a pool of candidate labels per
//! record (the labels its beam reached) with a positive score; the confidence of a candidate is
//! its score raised to `1 / T` and normalised over the pool:
//!
//! `confidence_i = s_i^(1/T) / sum_j s_j^(1/T)`  (a softmax of `ln s / T`),
//!
//! so a record's confidences sum to at most 1 whatever `top_k` returns (a label outside the pool
//! has none). The temperature `T` is fitted on the validation split by minimising the binary
//! cross-entropy of every pool candidate's confidence against "is the true label" (temperature
//! scaling, Guo et al. 2017, over the pool): a record whose true label the beam missed pulls
//! every confidence of its pool down. Fitted once per model folder (`calibration.json`);
//! without that file `T = 1`.

use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use xmc_eval::calibration::{BINS, reliability};

/// The file in a model folder that holds the fitted temperature.
pub const CALIBRATION_FILE: &str = "calibration.json";

/// Smallest score taken to the log (scores of 0 stay just above it).
const MIN_SCORE: f64 = 1e-30;

/// A model folder's confidence calibration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Calibration {
    /// `T`: above 1 flattens the confidences, below 1 sharpens them.
    pub temperature: f64,
    /// Validation records it was fitted on.
    pub records: usize,
    /// Candidates per record it was fitted with (the predictor's pool).
    pub pool: usize,
    /// Expected calibration error of the top-1 confidence on the validation split at `T = 1`
    /// and at the fitted `T` (15 equal-width bins).
    pub valid_ece_before: f64,
    pub valid_ece_after: f64,
}

impl Default for Calibration {
    fn default() -> Self {
        Calibration { temperature: 1.0, records: 0, pool: 0, valid_ece_before: f64::NAN, valid_ece_after: f64::NAN }
    }
}

/// One record's pool of candidates: (label, score > 0), and which is the true label.
#[derive(Debug, Clone)]
pub struct Pool<'a> {
    pub ranked: &'a [(u32, f32)],
    pub truth: u32,
}

/// The confidences of `ranked` (scores of one record's pool) at temperature `t`, in the same order.
pub fn confidences(ranked: &[(u32, f32)], t: f64) -> Vec<f64> {
    let logits: Vec<f64> = ranked.iter().map(|&(_, s)| (s as f64).max(MIN_SCORE).ln() / t).collect();
    let max = logits.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let exp: Vec<f64> = logits.iter().map(|l| (l - max).exp()).collect();
    let total: f64 = exp.iter().sum();
    exp.into_iter().map(|e| e / total).collect()
}

/// Mean binary cross-entropy of every pool candidate's confidence at temperature `t`.
fn loss(pools: &[Pool], t: f64) -> f64 {
    let (mut sum, mut n) = (0.0, 0usize);
    for pool in pools {
        for (p, &(label, _)) in confidences(pool.ranked, t).into_iter().zip(pool.ranked) {
            let p = p.clamp(1e-12, 1.0 - 1e-12);
            sum -= if label == pool.truth { p.ln() } else { (1.0 - p).ln() };
            n += 1;
        }
    }
    sum / n.max(1) as f64
}

/// The temperature minimising [`loss`] on `pools`: a grid over `ln T` in [-4, 4], then golden
/// section around the best grid point. 1 when there is nothing to fit.
pub fn fit_temperature(pools: &[Pool]) -> f64 {
    if pools.iter().all(|p| p.ranked.len() < 2) {
        return 1.0;
    }
    let grid: Vec<f64> = (0..=40).map(|i| -4.0 + 0.2 * i as f64).collect();
    let best = grid.iter().copied().min_by(|&a, &b| loss(pools, a.exp()).total_cmp(&loss(pools, b.exp()))).unwrap_or(0.0);
    let (mut lo, mut hi) = (best - 0.2, best + 0.2);
    let phi = (5f64.sqrt() - 1.0) / 2.0;
    for _ in 0..40 {
        let (a, b) = (hi - phi * (hi - lo), lo + phi * (hi - lo));
        if loss(pools, a.exp()) < loss(pools, b.exp()) {
            hi = b;
        } else {
            lo = a;
        }
    }
    ((lo + hi) / 2.0).exp()
}

impl Calibration {
    /// Fits the temperature on validation `pools`.
    pub fn fit(pools: &[Pool], pool_size: usize) -> Self {
        let temperature = fit_temperature(pools);
        let top1 = |t: f64| -> Vec<(f64, bool)> {
            pools
                .iter()
                .filter(|p| !p.ranked.is_empty())
                .map(|p| (confidences(p.ranked, t)[0], p.ranked[0].0 == p.truth))
                .collect()
        };
        Calibration {
            temperature,
            records: pools.len(),
            pool: pool_size,
            valid_ece_before: reliability(&top1(1.0), BINS).ece,
            valid_ece_after: reliability(&top1(temperature), BINS).ece,
        }
    }

    /// The folder's calibration; `T = 1` when it has none.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join(CALIBRATION_FILE);
        if !path.is_file() {
            return Ok(Calibration::default());
        }
        let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
        let cal: Calibration = serde_json::from_str(&text).with_context(|| format!("{}: not a calibration file", path.display()))?;
        anyhow::ensure!(
            cal.temperature.is_finite() && cal.temperature > 0.0,
            "{}: `temperature` must be a positive number, found {}",
            path.display(),
            cal.temperature
        );
        Ok(cal)
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(CALIBRATION_FILE);
        std::fs::write(&path, serde_json::to_string_pretty(self)? + "\n").with_context(|| format!("writing {}", path.display()))
    }

    /// `ranked` (one record's pool, best first) with confidences as scores, cut to `top_k`.
    pub fn apply(&self, ranked: &[(u32, f32)], top_k: usize) -> Vec<(u32, f32)> {
        let conf = confidences(ranked, self.temperature);
        ranked.iter().zip(conf).take(top_k).map(|(&(l, _), c)| (l, c as f32)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn confidences_sum_to_one_over_the_pool_and_keep_the_order() {
        let ranked = [(3, 0.9), (1, 0.3), (7, 0.05), (2, 0.0)];
        for t in [0.3, 1.0, 4.0] {
            let c = confidences(&ranked, t);
            assert!((c.iter().sum::<f64>() - 1.0).abs() < 1e-9);
            assert!(c.windows(2).all(|w| w[0] >= w[1]), "{c:?}");
        }
        // top_k = 1 no longer means a confidence of 1.
        let cal = Calibration::default();
        let top = cal.apply(&ranked, 1);
        assert_eq!(top.len(), 1);
        assert!(top[0].1 < 0.9 && top[0].1 > 0.5, "{top:?}");
    }

    /// Records whose best candidate is right 60% of the time while the raw scores put almost all
    /// mass on it: the fitted temperature flattens them, and the top-1 confidence comes close
    /// to 0.6 (lower calibration error than before).
    #[test]
    fn an_overconfident_scorer_is_flattened_to_its_accuracy() {
        let ranked: Vec<Vec<(u32, f32)>> = (0..500).map(|_| vec![(0, 0.99), (1, 0.005), (2, 0.003), (3, 0.002)]).collect();
        let pools: Vec<Pool> = ranked.iter().enumerate().map(|(i, r)| Pool { ranked: r, truth: if i % 10 < 6 { 0 } else { 1 + (i % 3) as u32 } }).collect();
        let cal = Calibration::fit(&pools, 4);
        assert!(cal.temperature > 1.5, "{cal:?}");
        let top1 = confidences(&ranked[0], cal.temperature)[0];
        assert!((top1 - 0.6).abs() < 0.08, "top-1 confidence {top1}");
        assert!(cal.valid_ece_after < cal.valid_ece_before / 3.0, "{cal:?}");
    }

    #[test]
    fn a_bad_calibration_file_is_refused_and_a_missing_one_means_t_1() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(Calibration::load(dir.path()).unwrap().temperature, 1.0);
        std::fs::write(dir.path().join(CALIBRATION_FILE), r#"{"temperature": -1, "records": 1, "pool": 2, "valid_ece_before": 0, "valid_ece_after": 0}"#).unwrap();
        let err = Calibration::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("temperature") && err.contains(CALIBRATION_FILE), "{err}");
    }
}
