//! Ranking metrics for one true label per record: P@k, nDCG@k and propensity-scored PSP@k.

use serde::{Deserialize, Serialize};

/// Jain et al. (2016) inverse propensity of a label seen `count` times among `n` training records:
/// `1 + C (count + B)^-A` with `C = (ln n - 1)(B + 1)^A`, as pyxclib computes it.
pub fn inverse_propensity(count: u32, n: usize, a: f64, b: f64) -> f64 {
    let c = ((n.max(1) as f64).ln() - 1.0) * (b + 1.0).powf(a);
    1.0 + c * (count as f64 + b).powf(-a)
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct AtK {
    pub k: usize,
    /// Mean over records of (hits in the top k) / k.
    pub precision: f64,
    /// Mean over records of 1 / log2(rank + 1) when the truth is ranked within k (ideal DCG is 1).
    pub ndcg: f64,
    /// Propensity-scored precision, normalised by the best achievable value (pyxclib's `psprecision`):
    /// sum of the inverse propensities of the records whose truth is in the top k, over their sum
    /// across all records.
    pub psp: f64,
    /// Share of records whose truth is in the top k (recall@k for one true label).
    pub recall: f64,
}

/// `rank[i]`: the 1-based position of record i's truth in its ranking (`None` when absent);
/// `inv_prop[i]`: the inverse propensity of record i's true label.
pub fn at_k(ranks: &[Option<usize>], inv_prop: &[f64], k: usize) -> AtK {
    let n = ranks.len();
    if n == 0 {
        return AtK { k, precision: 0.0, ndcg: 0.0, psp: 0.0, recall: 0.0 };
    }
    let (mut hits, mut dcg, mut psp_num, mut psp_den) = (0.0, 0.0, 0.0, 0.0);
    for (rank, w) in ranks.iter().zip(inv_prop) {
        psp_den += w;
        if let Some(r) = rank.filter(|&r| r <= k) {
            hits += 1.0;
            dcg += 1.0 / ((r + 1) as f64).log2();
            psp_num += w;
        }
    }
    let n = n as f64;
    AtK { k, precision: hits / (n * k as f64), ndcg: dcg / n, psp: crate::classification::ratio(psp_num, psp_den), recall: hits / n }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hand_computed() {
        // ranks 1, 2, absent, 4; weights 1, 2, 3, 4.
        let ranks = [Some(1), Some(2), None, Some(4)];
        let w = [1.0, 2.0, 3.0, 4.0];
        let at1 = at_k(&ranks, &w, 1);
        assert!((at1.precision - 0.25).abs() < 1e-12);
        assert!((at1.ndcg - 0.25).abs() < 1e-12);
        assert!((at1.psp - 0.1).abs() < 1e-12);
        let at3 = at_k(&ranks, &w, 3);
        assert!((at3.precision - 2.0 / 12.0).abs() < 1e-12);
        assert!((at3.ndcg - (1.0 + 1.0 / 3f64.log2()) / 4.0).abs() < 1e-12);
        assert!((at3.psp - 0.3).abs() < 1e-12);
        assert!((at3.recall - 0.5).abs() < 1e-12);
    }

    #[test]
    fn rare_labels_weigh_more() {
        let rare = inverse_propensity(1, 10_000, 0.55, 1.5);
        let common = inverse_propensity(1_000, 10_000, 0.55, 1.5);
        assert!(rare > common && common > 1.0);
        // pyxclib: C = (ln 10000 - 1) * 2.5^0.55; 1 + C * 2.5^-0.55 = ln 10000 for count 1.
        assert!((rare - (10_000f64).ln()).abs() < 1e-9);
    }
}
