//! Binary linear classifiers by dual coordinate descent (Hsieh et al., 2008), the method of
//! liblinear's `L2R_L2LOSS_SVC_DUAL` / `L2R_L1LOSS_SVC_DUAL` solvers that PECOS's XR-Linear
//! calls: min_w ½‖w‖² + C Σ loss(y_i wᵀx_i), one coordinate α_i at a time, with liblinear's
//! shrinking and stopping rule (projected-gradient spread below `eps`). A constant `bias`
//! feature is appended to every row.

use serde::{Deserialize, Serialize};
use xmc_data::SplitMix64;

use crate::sparse::RowView;

/// The loss on the margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Loss {
    /// Squared hinge, max(0, 1 - y wᵀx)² (liblinear solver 1, PECOS's default).
    SquaredHinge,
    /// Hinge, max(0, 1 - y wᵀx) (liblinear solver 3).
    Hinge,
}

/// The solver's settings (`[ranker]` keys `loss`, `c`, `max_iter`, `eps`, `bias`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SolverConfig {
    pub loss: Loss,
    /// Cost of a positive example's loss.
    pub c_pos: f32,
    /// Cost of a negative example's loss.
    pub c_neg: f32,
    pub max_iter: usize,
    pub eps: f32,
    pub bias: f32,
}

/// A binary problem: rows with their features (in a local, dense-indexed space of `dim`
/// features) and whether each is a positive.
pub struct Problem<'a> {
    pub rows: &'a [RowView<'a>],
    pub positive: &'a [bool],
    pub dim: usize,
    /// Each row's squared norm ([`squared_norms`]): the same for every child of a node, so it is
    /// computed once per node rather than once per problem.
    pub squared_norms: &'a [f32],
}

/// The squared norm of each row, for [`Problem::squared_norms`].
pub fn squared_norms(rows: &[RowView]) -> Vec<f32> {
    rows.iter().map(|r| r.squared_norm()).collect()
}

/// The learned weights: `w` over the problem's features, and the bias weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Solution {
    pub w: Vec<f32>,
    pub bias: f32,
    pub iterations: usize,
}

impl Solution {
    pub fn score(&self, row: RowView, bias: f32) -> f32 {
        row.iter().map(|(i, v)| self.w[i as usize] * v).sum::<f32>() + self.bias * bias
    }
}

/// Solves one problem. Deterministic for a given `seed`.
pub fn solve(problem: &Problem, cfg: &SolverConfig, seed: u64) -> Solution {
    let l = problem.rows.len();
    let mut w = vec![0f32; problem.dim];
    let mut w_bias = 0f32;
    if l == 0 {
        return Solution { w, bias: 0.0, iterations: 0 };
    }
    let y: Vec<f32> = problem.positive.iter().map(|&p| if p { 1.0 } else { -1.0 }).collect();
    let c = |i: usize| if problem.positive[i] { cfg.c_pos } else { cfg.c_neg };
    let (diag, upper): (Vec<f32>, Vec<f32>) = (0..l)
        .map(|i| match cfg.loss {
            Loss::SquaredHinge => (0.5 / c(i), f32::INFINITY),
            Loss::Hinge => (0.0, c(i)),
        })
        .unzip();
    let qd: Vec<f32> =
        problem.squared_norms.iter().zip(&diag).map(|(n, d)| d + n + cfg.bias * cfg.bias).collect();
    let mut alpha = vec![0f32; l];
    let mut index: Vec<usize> = (0..l).collect();
    let mut active = l;
    let (mut pg_max_old, mut pg_min_old) = (f32::INFINITY, f32::NEG_INFINITY);
    let mut rng = SplitMix64::new(seed);
    let mut iter = 0;
    while iter < cfg.max_iter {
        let (mut pg_max, mut pg_min) = (f32::NEG_INFINITY, f32::INFINITY);
        for i in 0..active {
            let j = i + (rng.next_u64() % (active - i) as u64) as usize;
            index.swap(i, j);
        }
        let mut s = 0;
        while s < active {
            let i = index[s];
            let row = problem.rows[i];
            let margin: f32 = row.iter().map(|(f, v)| w[f as usize] * v).sum::<f32>() + w_bias * cfg.bias;
            let g = y[i] * margin - 1.0 + alpha[i] * diag[i];
            let mut pg = 0.0;
            if alpha[i] == 0.0 {
                if g > pg_max_old {
                    active -= 1;
                    index.swap(s, active);
                    continue;
                } else if g < 0.0 {
                    pg = g;
                }
            } else if alpha[i] == upper[i] {
                if g < pg_min_old {
                    active -= 1;
                    index.swap(s, active);
                    continue;
                } else if g > 0.0 {
                    pg = g;
                }
            } else {
                pg = g;
            }
            pg_max = pg_max.max(pg);
            pg_min = pg_min.min(pg);
            if pg.abs() > 1e-12 {
                let old = alpha[i];
                alpha[i] = (alpha[i] - g / qd[i]).clamp(0.0, upper[i]);
                let d = (alpha[i] - old) * y[i];
                for (f, v) in row.iter() {
                    w[f as usize] += d * v;
                }
                w_bias += d * cfg.bias;
            }
            s += 1;
        }
        iter += 1;
        if pg_max - pg_min <= cfg.eps {
            if active == l {
                break;
            }
            active = l;
            pg_max_old = f32::INFINITY;
            pg_min_old = f32::NEG_INFINITY;
            continue;
        }
        pg_max_old = if pg_max <= 0.0 { f32::INFINITY } else { pg_max };
        pg_min_old = if pg_min >= 0.0 { f32::NEG_INFINITY } else { pg_min };
    }
    Solution { w, bias: w_bias, iterations: iter }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sparse::SparseVec;

    fn cfg(loss: Loss) -> SolverConfig {
        SolverConfig { loss, c_pos: 1.0, c_neg: 1.0, max_iter: 1000, eps: 1e-4, bias: 1.0 }
    }

    #[test]
    fn separates_a_separable_problem() {
        // positives have feature 0, negatives feature 1; feature 2 is noise on both
        let rows: Vec<SparseVec> = (0..20)
            .map(|i| SparseVec::from_pairs(vec![((i % 2) as u32, 1.0), (2, 0.3)]))
            .collect();
        let views: Vec<RowView> = rows.iter().map(SparseVec::view).collect();
        let positive: Vec<bool> = (0..20).map(|i| i % 2 == 0).collect();
        for loss in [Loss::SquaredHinge, Loss::Hinge] {
            let sol = solve(&Problem { rows: &views, positive: &positive, dim: 3, squared_norms: &squared_norms(&views) }, &cfg(loss), 7);
            for (r, &p) in views.iter().zip(&positive) {
                let s = sol.score(*r, 1.0);
                assert!(if p { s > 0.5 } else { s < -0.5 }, "{loss:?}: score {s} for positive={p}");
            }
            assert!(sol.w[0] > 0.0 && sol.w[1] < 0.0);
        }
    }

    #[test]
    fn matches_the_closed_form_of_a_one_point_problem() {
        // One positive x = [1], bias 0, squared hinge, C = 1: minimise ½w² + (1 - w)² -> w = 2/3.
        let rows = [SparseVec::from_pairs(vec![(0, 1.0)])];
        let views: Vec<RowView> = rows.iter().map(SparseVec::view).collect();
        let mut c = cfg(Loss::SquaredHinge);
        c.bias = 0.0;
        let sol = solve(&Problem { rows: &views, positive: &[true], dim: 1, squared_norms: &squared_norms(&views) }, &c, 1);
        assert!((sol.w[0] - 2.0 / 3.0).abs() < 1e-4, "{}", sol.w[0]);
        // Hinge, C = 0.5: w = C x = 0.5 (the constraint α <= C binds).
        let mut c = cfg(Loss::Hinge);
        c.bias = 0.0;
        c.c_pos = 0.5;
        let sol = solve(&Problem { rows: &views, positive: &[true], dim: 1, squared_norms: &squared_norms(&views) }, &c, 1);
        assert!((sol.w[0] - 0.5).abs() < 1e-4, "{}", sol.w[0]);
    }

    #[test]
    fn the_same_seed_gives_the_same_weights() {
        let rows: Vec<SparseVec> = (0..50u32).map(|i| SparseVec::from_pairs(vec![(i % 7, 1.0), ((i * 3) % 5 + 7, 0.5)])).collect();
        let views: Vec<RowView> = rows.iter().map(SparseVec::view).collect();
        let positive: Vec<bool> = (0..50).map(|i| i % 3 == 0).collect();
        let norms = squared_norms(&views);
        let p = Problem { rows: &views, positive: &positive, dim: 12, squared_norms: &norms };
        assert_eq!(solve(&p, &cfg(Loss::SquaredHinge), 3), solve(&p, &cfg(Loss::SquaredHinge), 3));
    }
}
