//! Binary linear classifiers by dual coordinate descent (Hsieh et al., 2008), the method of
//! liblinear's `L2R_L2LOSS_SVC_DUAL` / `L2R_L1LOSS_SVC_DUAL` solvers that PECOS's XR-Linear
//! calls: min_w ½‖w‖² + C Σ loss(y_i wᵀx_i), one coordinate α_i at a time, with liblinear's
//! shrinking and stopping rule (projected-gradient spread below `eps`). A constant `bias`
//! feature is appended to every row.
//!
//! The children of a tree node are trained on the same rows, so up to [`GROUP`] of them are
//! solved together: their weights are interleaved per feature (`w[feature][child]`), and one
//! pass over a row computes every child's margin and applies every child's update, reading the
//! row once and each feature's weights from one cache line instead of once per child. Each child
//! keeps its own dual variables, shrinking and stopping rule, so each still solves its own
//! problem; only the (random) order of the coordinates is shared.

use xmc_data::SplitMix64;

use crate::config::{Loss, RankerConfig};
use crate::sparse::RowView;

/// The most children solved together.
pub const GROUP: usize = 8;


/// The dual's diagonal term and upper bound of one example (the `[ranker]` keys `loss`, `c_pos`,
/// `c_neg`).
fn dual_terms(cfg: &RankerConfig, positive: bool) -> (f32, f32) {
    let c = if positive { cfg.c_pos } else { cfg.c_neg };
    match cfg.loss {
        Loss::SquaredHinge => (0.5 / c, f32::INFINITY),
        Loss::Hinge => (0.0, c),
    }
}

/// The binary problems of a group of a node's children over the same rows (in a local,
/// dense-indexed space of `dim` features): row i is a positive of the child `target[i]` and a
/// negative of every other.
pub struct Problem<'a> {
    pub rows: &'a [RowView<'a>],
    /// Each row's child on its label's path (`None`: a hard negative of every child).
    pub target: &'a [Option<u32>],
    /// The group's children are `first .. first + width`, `1 <= width <= GROUP`.
    pub first: u32,
    pub width: usize,
    pub dim: usize,
    /// Each row's squared norm ([`squared_norms`]): the same for every child of a node, so it is
    /// computed once per node rather than once per problem.
    pub squared_norms: &'a [f32],
}

/// The squared norm of each row, for [`Problem::squared_norms`].
pub fn squared_norms(rows: &[RowView]) -> Vec<f32> {
    rows.iter().map(|r| r.squared_norm()).collect()
}

/// The learned weights of a group: `w[f][c]` is feature f's weight for the group's child c
/// (zero for `c >= width`), `bias[c]` the child's bias weight.
#[derive(Debug, Clone, PartialEq)]
pub struct Solution {
    pub w: Vec<[f32; GROUP]>,
    pub bias: [f32; GROUP],
    pub width: usize,
    pub iterations: usize,
}

impl Solution {
    /// The margin of the group's child `c` for `row`.
    pub fn score(&self, row: RowView, bias: f32, c: usize) -> f32 {
        row.iter().map(|(i, v)| self.w[i as usize][c] * v).sum::<f32>() + self.bias[c] * bias
    }
}

/// Solves a group's problems. Deterministic for a given `seed`.
pub fn solve(problem: &Problem, cfg: &RankerConfig, seed: u64) -> Solution {
    let (l, width) = (problem.rows.len(), problem.width);
    assert!((1..=GROUP).contains(&width), "a group has 1 to {GROUP} children, not {width}");
    let mut w = vec![[0f32; GROUP]; problem.dim];
    let mut w_bias = [0f32; GROUP];
    if l == 0 {
        return Solution { w, bias: w_bias, width, iterations: 0 };
    }
    let positive_of = |i: usize| problem.target[i].and_then(|t| t.checked_sub(problem.first)).map(|c| c as usize).filter(|&c| c < width);
    let (diag_pos, upper_pos) = dual_terms(cfg, true);
    let (diag_neg, upper_neg) = dual_terms(cfg, false);
    let bias2 = cfg.bias * cfg.bias;
    let mut alpha = vec![[0f32; GROUP]; l];
    // Bit c of `shrunk[i]`: coordinate (i, c) has left child c's active set; bit c of `done`:
    // child c has met its stopping rule.
    let all: u8 = ((1u16 << width) - 1) as u8;
    let mut shrunk = vec![0u8; l];
    let mut shrunk_count = [0usize; GROUP];
    let mut done = 0u8;
    let mut order: Vec<u32> = (0..l as u32).collect();
    let (mut pg_max_old, mut pg_min_old) = ([f32::INFINITY; GROUP], [f32::NEG_INFINITY; GROUP]);
    let mut rng = SplitMix64::new(seed);
    let mut iter = 0;
    while iter < cfg.max_iter && done != all {
        for s in 0..order.len() {
            let j = s + (rng.next_u64() % (order.len() - s) as u64) as usize;
            order.swap(s, j);
        }
        let (mut pg_max, mut pg_min) = ([f32::NEG_INFINITY; GROUP], [f32::INFINITY; GROUP]);
        let mut kept = 0;
        for s in 0..order.len() {
            let i = order[s] as usize;
            let live = all & !done & !shrunk[i];
            if live == 0 {
                continue;
            }
            order[kept] = i as u32;
            kept += 1;
            let row = problem.rows[i];
            let mut margin = w_bias.map(|b| b * cfg.bias);
            for (f, v) in row.iter() {
                let wf = &w[f as usize];
                for c in 0..GROUP {
                    margin[c] += wf[c] * v;
                }
            }
            let positive = positive_of(i);
            let mut step = [0f32; GROUP];
            let mut moved = false;
            for c in 0..width {
                if live & (1 << c) == 0 {
                    continue;
                }
                let (y, diag, upper) = if positive == Some(c) { (1.0, diag_pos, upper_pos) } else { (-1.0, diag_neg, upper_neg) };
                let a = alpha[i][c];
                let g = y * margin[c] - 1.0 + a * diag;
                let mut pg = 0.0;
                if a == 0.0 {
                    if g > pg_max_old[c] {
                        shrunk[i] |= 1 << c;
                        shrunk_count[c] += 1;
                        continue;
                    } else if g < 0.0 {
                        pg = g;
                    }
                } else if a == upper {
                    if g < pg_min_old[c] {
                        shrunk[i] |= 1 << c;
                        shrunk_count[c] += 1;
                        continue;
                    } else if g > 0.0 {
                        pg = g;
                    }
                } else {
                    pg = g;
                }
                pg_max[c] = pg_max[c].max(pg);
                pg_min[c] = pg_min[c].min(pg);
                if pg.abs() > 1e-12 {
                    let qd = diag + problem.squared_norms[i] + bias2;
                    let new = (a - g / qd).clamp(0.0, upper);
                    step[c] = (new - a) * y;
                    alpha[i][c] = new;
                    moved |= step[c] != 0.0;
                }
            }
            if moved {
                for (f, v) in row.iter() {
                    let wf = &mut w[f as usize];
                    for c in 0..GROUP {
                        wf[c] += step[c] * v;
                    }
                }
                for c in 0..GROUP {
                    w_bias[c] += step[c] * cfg.bias;
                }
            }
        }
        order.truncate(kept);
        iter += 1;
        let mut reopened = false;
        for c in 0..width {
            if done & (1 << c) != 0 {
                continue;
            }
            if pg_max[c] - pg_min[c] <= cfg.eps {
                if shrunk_count[c] == 0 {
                    done |= 1 << c;
                    continue;
                }
                // Converged on the active set: check once more on every coordinate.
                shrunk.iter_mut().for_each(|s| *s &= !(1 << c));
                shrunk_count[c] = 0;
                reopened = true;
                pg_max_old[c] = f32::INFINITY;
                pg_min_old[c] = f32::NEG_INFINITY;
                continue;
            }
            pg_max_old[c] = if pg_max[c] <= 0.0 { f32::INFINITY } else { pg_max[c] };
            pg_min_old[c] = if pg_min[c] >= 0.0 { f32::NEG_INFINITY } else { pg_min[c] };
        }
        if reopened {
            order = (0..l as u32).filter(|&i| all & !done & !shrunk[i as usize] != 0).collect();
        }
    }
    Solution { w, bias: w_bias, width, iterations: iter }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sparse::SparseVec;

    fn cfg(loss: Loss) -> RankerConfig {
        RankerConfig { loss, c_pos: 1.0, c_neg: 1.0, max_iter: 1000, eps: 1e-4, bias: 1.0, ..RankerConfig::default() }
    }

    fn problem<'a>(views: &'a [RowView<'a>], target: &'a [Option<u32>], norms: &'a [f32], first: u32, width: usize, dim: usize) -> Problem<'a> {
        Problem { rows: views, target, first, width, dim, squared_norms: norms }
    }

    #[test]
    fn separates_a_separable_problem() {
        // child 0's records have feature 0, child 1's feature 1; feature 2 is noise on both
        let rows: Vec<SparseVec> = (0..20)
            .map(|i| SparseVec::from_pairs(vec![((i % 2) as u32, 1.0), (2, 0.3)]))
            .collect();
        let views: Vec<RowView> = rows.iter().map(SparseVec::view).collect();
        let target: Vec<Option<u32>> = (0..20).map(|i| Some(i % 2)).collect();
        let norms = squared_norms(&views);
        for loss in [Loss::SquaredHinge, Loss::Hinge] {
            let sol = solve(&problem(&views, &target, &norms, 0, 2, 3), &cfg(loss), 7);
            for (r, t) in views.iter().zip(&target) {
                for c in 0..2 {
                    let s = sol.score(*r, 1.0, c);
                    let positive = *t == Some(c as u32);
                    assert!(if positive { s > 0.5 } else { s < -0.5 }, "{loss:?}: child {c} scores {s} for positive={positive}");
                }
            }
            assert!(sol.w[0][0] > 0.0 && sol.w[1][0] < 0.0 && sol.w[1][1] > 0.0);
            assert_eq!(sol.w[0][2..], [0.0; GROUP - 2], "children beyond the group's width have no weights");
        }
    }

    #[test]
    fn matches_the_closed_form_of_a_one_point_problem() {
        // One positive x = [1], bias 0, squared hinge, C = 1: minimise ½w² + (1 - w)² -> w = 2/3.
        let rows = [SparseVec::from_pairs(vec![(0, 1.0)])];
        let views: Vec<RowView> = rows.iter().map(SparseVec::view).collect();
        let norms = squared_norms(&views);
        let mut c = cfg(Loss::SquaredHinge);
        c.bias = 0.0;
        let sol = solve(&problem(&views, &[Some(0)], &norms, 0, 1, 1), &c, 1);
        assert!((sol.w[0][0] - 2.0 / 3.0).abs() < 1e-4, "{}", sol.w[0][0]);
        // Hinge, C = 0.5: w = C x = 0.5 (the constraint α <= C binds).
        let mut c = cfg(Loss::Hinge);
        c.bias = 0.0;
        c.c_pos = 0.5;
        let sol = solve(&problem(&views, &[Some(0)], &norms, 0, 1, 1), &c, 1);
        assert!((sol.w[0][0] - 0.5).abs() < 1e-4, "{}", sol.w[0][0]);
        // The same point as a negative of a second child in the group: w = -2/3 for that one.
        let mut c = cfg(Loss::SquaredHinge);
        c.bias = 0.0;
        let sol = solve(&problem(&views, &[Some(0)], &norms, 0, 2, 1), &c, 1);
        assert!((sol.w[0][0] - 2.0 / 3.0).abs() < 1e-4 && (sol.w[0][1] + 2.0 / 3.0).abs() < 1e-4, "{:?}", sol.w[0]);
    }

    /// Random sparse rows over `dim` features, each the positive of one of `k` children or a
    /// hard negative of all (`None`), with the children's words mixed in.
    fn random_node(seed: u64, n: usize, k: u32, dim: u32) -> (Vec<SparseVec>, Vec<Option<u32>>) {
        let mut rng = SplitMix64::new(seed);
        (0..n)
            .map(|_| {
                let t = (rng.next_u64() % (k as u64 + 1)) as u32;
                let target = (t < k).then_some(t);
                let mut pairs: Vec<(u32, f32)> = (0..6).map(|_| ((rng.next_u64() % dim as u64) as u32, 0.2 + (rng.next_u64() % 8) as f32 / 10.0)).collect();
                if let Some(t) = target {
                    pairs.push((t, 1.0));
                }
                let mut v = SparseVec::from_pairs(pairs);
                v.normalize();
                (v, target)
            })
            .unzip()
    }

    #[test]
    fn children_solved_together_reach_the_weights_each_reaches_alone() {
        let (rows, target) = random_node(11, 300, 6, 40);
        let views: Vec<RowView> = rows.iter().map(SparseVec::view).collect();
        let norms = squared_norms(&views);
        for loss in [Loss::SquaredHinge, Loss::Hinge] {
            let c = RankerConfig { eps: 1e-5, max_iter: 5000, ..cfg(loss) };
            let together = solve(&problem(&views, &target, &norms, 0, 6, 40), &c, 3);
            assert!(together.iterations < c.max_iter, "{loss:?}: not converged");
            for child in 0..6 {
                let alone = solve(&problem(&views, &target, &norms, child, 1, 40), &c, 5 + u64::from(child));
                for f in 0..40 {
                    let (a, b) = (together.w[f][child as usize], alone.w[f][0]);
                    assert!((a - b).abs() < 2e-3, "{loss:?}: child {child} feature {f}: {a} together, {b} alone");
                }
                assert!((together.bias[child as usize] - alone.bias[0]).abs() < 2e-3);
            }
        }
    }

    #[test]
    fn the_same_seed_gives_the_same_weights() {
        let (rows, target) = random_node(2, 50, 3, 12);
        let views: Vec<RowView> = rows.iter().map(SparseVec::view).collect();
        let norms = squared_norms(&views);
        let p = problem(&views, &target, &norms, 0, 3, 12);
        let c = RankerConfig { max_iter: 3, eps: 0.1, ..cfg(Loss::SquaredHinge) };
        assert_eq!(solve(&p, &c, 3), solve(&p, &c, 3));
        assert_ne!(solve(&p, &c, 3), solve(&p, &c, 4), "three passes in another order stop elsewhere");
    }
}
