//! The tree ranker (XR-Linear's design on xmc's own label tree): at every internal node, one
//! linear scorer per child, trained on the records that reach the node; prediction is a beam
//! over levels whose path score is the product of the transformed node scores.

use rayon::prelude::*;
use xmc_codes::{Child, LabelTree};

use crate::config::{Negatives, PathCombine, PathScore, RankerConfig};
use crate::error::{RankerError, Result};
use crate::solver::{GROUP, Problem, solve, squared_norms};
use crate::sparse::{RowView, SparseRows};

/// One node's scorers: for every feature with a weight, the (child, weight) pairs; features
/// ascending so that a record's sorted features can be looked up.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NodeScorer {
    pub features: Vec<u32>,
    /// Entries of `features[i]` are `row_ptr[i]..row_ptr[i + 1]`.
    pub row_ptr: Vec<u32>,
    pub child: Vec<u32>,
    pub weight: Vec<f32>,
    /// Each child's bias weight.
    pub bias: Vec<f32>,
}

impl NodeScorer {
    /// Scores of every child for `x` (raw margins, before the path transform).
    pub fn scores(&self, x: RowView, bias: f32, out: &mut Vec<f32>) {
        out.clear();
        out.extend(self.bias.iter().map(|b| b * bias));
        let mut lo = 0;
        for (f, v) in x.iter() {
            // Both sides ascend: gallop to the right of the last position, then search the
            // bracket, so that a lookup stays near the previous one in memory.
            let rest = &self.features[lo..];
            let mut end = 1;
            while end < rest.len() && rest[end - 1] < f {
                end *= 2;
            }
            let start = end / 2;
            let end = end.min(rest.len());
            match rest[start..end].binary_search(&f) {
                Ok(pos) => {
                    let i = lo + start + pos;
                    for e in self.row_ptr[i] as usize..self.row_ptr[i + 1] as usize {
                        out[self.child[e] as usize] += v * self.weight[e];
                    }
                    lo = i + 1;
                }
                Err(pos) => lo += start + pos,
            }
            if lo >= self.features.len() {
                break;
            }
        }
    }

    pub fn entries(&self) -> usize {
        self.weight.len()
    }

    /// Builds a scorer from (feature, child, weight) entries in any order.
    pub(crate) fn from_entries(mut entries: Vec<(u32, u32, f32)>, bias: Vec<f32>) -> Self {
        entries.sort_unstable_by_key(|&(f, c, _)| (f, c));
        let mut s = NodeScorer { bias, row_ptr: vec![0], ..NodeScorer::default() };
        for (f, c, w) in entries {
            if s.features.last() != Some(&f) {
                if !s.features.is_empty() {
                    s.row_ptr.push(s.child.len() as u32);
                }
                s.features.push(f);
            }
            s.child.push(c);
            s.weight.push(w);
        }
        if !s.features.is_empty() {
            s.row_ptr.push(s.child.len() as u32);
        }
        s
    }
}

/// A trained ranker: the tree and one scorer per internal node.
#[derive(Debug, Clone, PartialEq)]
pub struct TreeRanker {
    pub tree: LabelTree,
    pub nodes: Vec<NodeScorer>,
    /// The constant feature the scorers were trained with.
    pub bias: f32,
    pub path_score: PathScore,
    pub path_combine: PathCombine,
    /// Each label's path from the root: (node, child index) per level.
    paths: Vec<Vec<(u32, u32)>>,
}

/// Where each node and label hangs: its parent node and child index.
struct Parents {
    node: Vec<Option<(u32, u32)>>,
    label: Vec<(u32, u32)>,
    depth: Vec<usize>,
}

fn parents(tree: &LabelTree) -> Parents {
    let mut node = vec![None; tree.nodes.len()];
    let mut label = vec![(u32::MAX, u32::MAX); tree.n_labels];
    let mut depth = vec![0; tree.nodes.len()];
    let mut stack = vec![0u32];
    while let Some(n) = stack.pop() {
        for (i, child) in tree.nodes[n as usize].children.iter().enumerate() {
            match *child {
                Child::Node(c) => {
                    node[c as usize] = Some((n, i as u32));
                    depth[c as usize] = depth[n as usize] + 1;
                    stack.push(c);
                }
                Child::Label(l) => label[l as usize] = (n, i as u32),
            }
        }
    }
    Parents { node, label, depth }
}

/// Each label's path from the root: (node, child index) per level.
fn label_paths(tree: &LabelTree, p: &Parents) -> Vec<Vec<(u32, u32)>> {
    (0..tree.n_labels)
        .map(|l| {
            let mut path = vec![p.label[l]];
            let mut n = p.label[l].0;
            while let Some(up) = p.node[n as usize] {
                path.push(up);
                n = up.0;
            }
            path.reverse();
            path
        })
        .collect()
}

/// A beam entry: a node (or label) and its path score.
type Scored = (u32, f32);

fn keep_best(cands: &mut Vec<Scored>, n: usize) {
    cands.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    cands.truncate(n);
}

/// What training saw, for the stage's report.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TrainingSummary {
    pub internal_nodes: usize,
    pub binary_problems: usize,
    /// Node-record pairs trained on: teacher-forced (the record's label is under the node) and
    /// hard negatives brought by the beam.
    pub teacher_forced_rows: usize,
    pub beam_negative_rows: usize,
    pub weights_kept: usize,
    pub weights_dropped: usize,
}

impl TreeRanker {
    /// A ranker from its parts (the tree is assumed valid and to match `nodes`).
    pub fn new(tree: LabelTree, nodes: Vec<NodeScorer>, bias: f32, path_score: PathScore, path_combine: PathCombine) -> Self {
        let paths = label_paths(&tree, &parents(&tree));
        TreeRanker { tree, nodes, bias, path_score, path_combine, paths }
    }

    /// A label's score from the product of its `depth` transformed node scores.
    fn combine(&self, product: f32, depth: usize) -> f32 {
        match self.path_combine {
            PathCombine::Product => product,
            PathCombine::GeometricMean => product.powf(1.0 / depth.max(1) as f32),
        }
    }

    /// The path score of each of `labels` for `x` (the product of the node transforms along its
    /// path), whether or not a beam would have reached it.
    pub fn label_scores(&self, x: RowView, labels: &[u32]) -> Vec<f32> {
        let mut cache: rustc_hash::FxHashMap<u32, Vec<f32>> = rustc_hash::FxHashMap::default();
        labels
            .iter()
            .map(|&l| {
                let product: f32 = self.paths[l as usize]
                    .iter()
                    .map(|&(node, child)| {
                        let s = cache.entry(node).or_insert_with(|| {
                            let mut out = Vec::new();
                            self.nodes[node as usize].scores(x, self.bias, &mut out);
                            out
                        });
                        self.path_score.transform(s[child as usize])
                    })
                    .product();
                self.combine(product, self.paths[l as usize].len())
            })
            .collect()
    }

    /// Trains the scorers. `x` holds one row per training record, `labels[i]` is row i's label.
    /// Features with id `>= prune_from` (the dense block) are exempt from `threshold`. `progress`
    /// is called with the number of nodes finished.
    pub fn train(
        tree: &LabelTree,
        x: &SparseRows,
        labels: &[u32],
        cfg: &RankerConfig,
        prune_from: u32,
        progress: impl Fn(usize) + Sync,
    ) -> Result<(Self, TrainingSummary)> {
        tree.validate()?;
        if x.rows() != labels.len() {
            return Err(RankerError::Train(format!("{} feature rows for {} labels", x.rows(), labels.len())));
        }
        if let Some(&l) = labels.iter().find(|&&l| l as usize >= tree.n_labels) {
            return Err(RankerError::Train(format!("label {l} is not in the tree ({} labels)", tree.n_labels)));
        }
        let p = parents(tree);
        let paths = label_paths(tree, &p);
        let max_depth = p.depth.iter().copied().max().unwrap_or(0);
        let mut by_depth: Vec<Vec<u32>> = vec![Vec::new(); max_depth + 1];
        for (n, &d) in p.depth.iter().enumerate() {
            by_depth[d].push(n as u32);
        }
        let solver = cfg;
        let mut ranker = TreeRanker {
            tree: tree.clone(),
            nodes: vec![NodeScorer::default(); tree.nodes.len()],
            bias: cfg.bias,
            path_score: cfg.path_score,
            path_combine: cfg.path_combine,
            paths: paths.clone(),
        };
        let mut summary = TrainingSummary { internal_nodes: tree.nodes.len(), ..TrainingSummary::default() };
        // Teacher-forced rows of each node: (record, child index on its path).
        let mut forced: Vec<Vec<(u32, u32)>> = vec![Vec::new(); tree.nodes.len()];
        for (r, &l) in labels.iter().enumerate() {
            for &(node, child) in &paths[l as usize] {
                forced[node as usize].push((r as u32, child));
            }
        }
        // Each record's beam frontier at the current depth (nodes only), for hard negatives.
        let mining = cfg.negatives == Negatives::SiblingsAndBeam;
        let mut frontier: Vec<Vec<Scored>> = if mining { vec![vec![(0, 1.0)]; labels.len()] } else { Vec::new() };
        for (depth, nodes) in by_depth.iter().enumerate() {
            let level_started = std::time::Instant::now();
            // Records the beam brought to each node of this depth although their label is elsewhere.
            let mut extra: Vec<Vec<u32>> = vec![Vec::new(); tree.nodes.len()];
            if mining && depth > 0 {
                for (r, f) in frontier.iter().enumerate() {
                    let on_path = &paths[labels[r] as usize];
                    for &(n, _) in f {
                        if on_path.get(depth).is_none_or(|&(pn, _)| pn != n) {
                            extra[n as usize].push(r as u32);
                        }
                    }
                }
            }
            let trained: Vec<(u32, NodeScorer, [usize; 5])> = nodes
                .par_iter()
                .map(|&n| {
                    let k = tree.nodes[n as usize].children.len();
                    let mut rows: Vec<(u32, Option<u32>)> = forced[n as usize].iter().map(|&(r, c)| (r, Some(c))).collect();
                    rows.extend(extra[n as usize].iter().map(|&r| (r, None)));
                    let (scorer, kept, dropped) = train_node(x, &rows, k, &solver, cfg.threshold, prune_from, cfg.seed ^ u64::from(n));
                    progress(1);
                    (n, scorer, [k, forced[n as usize].len(), extra[n as usize].len(), kept, dropped])
                })
                .collect();
            for (n, scorer, [k, f, e, kept, dropped]) in trained {
                ranker.nodes[n as usize] = scorer;
                summary.binary_problems += k;
                summary.teacher_forced_rows += f;
                summary.beam_negative_rows += e;
                summary.weights_kept += kept;
                summary.weights_dropped += dropped;
            }
            let trained_in = level_started.elapsed();
            if mining && depth < max_depth {
                frontier = ranker.advance_frontier(frontier, x, cfg.train_beam);
            }
            tracing::info!(
                "ranker level {depth}: {} nodes trained in {:.1?}, beam for the next level {:.1?}",
                nodes.len(),
                trained_in,
                level_started.elapsed() - trained_in
            );
        }
        Ok((ranker, summary))
    }

    /// Every training record's beam one level down: the `train_beam` best internal children of
    /// its frontier's nodes. Each record's list holds exactly its entries (no spare capacity:
    /// the children scored before the cut are up to branching x beam, and at 1.34M records
    /// that slack was ~1.7 GB of the training's peak).
    fn advance_frontier(&self, frontier: Vec<Vec<Scored>>, x: &SparseRows, train_beam: usize) -> Vec<Vec<Scored>> {
        frontier
            .into_par_iter()
            .enumerate()
            .map_init(
                || (Vec::new(), Vec::new(), Vec::new()),
                |(scores, cands, labels), (r, f)| {
                    cands.clear();
                    labels.clear();
                    self.expand(&f, x.row(r), scores, cands, labels);
                    keep_best(cands, train_beam);
                    cands.as_slice().to_vec()
                },
            )
            .collect()
    }

    /// Scores the children of every node in `frontier`: internal children go to `nodes`,
    /// labels to `labels`, each with its path score.
    fn expand(&self, frontier: &[Scored], x: RowView, scores: &mut Vec<f32>, nodes: &mut Vec<Scored>, labels: &mut Vec<Scored>) {
        for &(n, s) in frontier {
            self.nodes[n as usize].scores(x, self.bias, scores);
            for (child, &m) in self.tree.nodes[n as usize].children.iter().zip(scores.iter()) {
                let p = s * self.path_score.transform(m);
                match *child {
                    Child::Node(c) => nodes.push((c, p)),
                    Child::Label(l) => labels.push((l, p)),
                }
            }
        }
    }

    /// The `top_k` labels for `x` by path score, best first, searching `beam` nodes per level.
    pub fn predict(&self, x: RowView, beam: usize, top_k: usize) -> Vec<(u32, f32)> {
        let mut frontier: Vec<Scored> = vec![(0, 1.0)];
        let mut labels: Vec<Scored> = Vec::new();
        let (mut scores, mut next, mut found) = (Vec::new(), Vec::new(), Vec::new());
        let mut depth = 0;
        while !frontier.is_empty() {
            depth += 1;
            next.clear();
            found.clear();
            self.expand(&frontier, x, &mut scores, &mut next, &mut found);
            labels.extend(found.iter().map(|&(l, p)| (l, self.combine(p, depth))));
            keep_best(&mut next, beam);
            std::mem::swap(&mut frontier, &mut next);
        }
        keep_best(&mut labels, top_k);
        labels
    }

    /// [`TreeRanker::predict`] for many rows, in parallel, in order.
    pub fn predict_all(&self, x: &SparseRows, beam: usize, top_k: usize) -> Vec<Vec<(u32, f32)>> {
        (0..x.rows()).into_par_iter().map(|r| self.predict(x.row(r), beam, top_k)).collect()
    }
}

/// Trains the `k` child scorers of one node on `rows` (record, child on its path or `None` for
/// a hard negative). Returns the scorer and the numbers of weights kept and dropped.
fn train_node(
    x: &SparseRows,
    rows: &[(u32, Option<u32>)],
    k: usize,
    solver: &RankerConfig,
    threshold: f32,
    prune_from: u32,
    seed: u64,
) -> (NodeScorer, usize, usize) {
    // A node that holds a large share of the records (the root, the first levels) works in the
    // global feature space on the rows as they are; a smaller one in its own feature space (the
    // features its records use), keeping only remapped ids beside the shared values.
    let global_space = rows.len() * 4 >= x.rows();
    let mut global: Vec<u32> = Vec::new();
    let local_ids: Vec<Vec<u32>> = if global_space {
        Vec::new()
    } else {
        let mut local_of: rustc_hash::FxHashMap<u32, u32> = rustc_hash::FxHashMap::default();
        rows.iter()
            .map(|&(r, _)| {
                x.row(r as usize)
                    .indices
                    .iter()
                    .map(|&f| {
                        *local_of.entry(f).or_insert_with(|| {
                            global.push(f);
                            (global.len() - 1) as u32
                        })
                    })
                    .collect()
            })
            .collect()
    };
    let views: Vec<RowView> = rows
        .iter()
        .enumerate()
        .map(|(i, &(r, _))| {
            let row = x.row(r as usize);
            if global_space { row } else { RowView { indices: &local_ids[i], values: row.values } }
        })
        .collect();
    let dim = if global_space { x.n_cols } else { global.len() };
    let norms = squared_norms(&views);
    let to_global = |i: usize| if global_space { i as u32 } else { global[i] };
    // The children in groups of at most GROUP, of even widths (k = 16: two groups of 8), solved
    // in parallel; the grouping depends on k alone, so the weights do not depend on the threads.
    let groups = k.div_ceil(GROUP);
    let width = k.div_ceil(groups);
    let target: Vec<Option<u32>> = rows.iter().map(|&(_, t)| t).collect();
    let solved: Vec<(Vec<(u32, u32, f32)>, Vec<f32>, usize)> = (0..groups)
        .into_par_iter()
        .map(|g| {
            let first = g * width;
            let problem = Problem { rows: &views, target: &target, first: first as u32, width: width.min(k - first), dim, squared_norms: &norms };
            let sol = solve(&problem, solver, seed.wrapping_mul(31).wrapping_add(first as u64));
            let mut dropped = 0;
            let mut kept = Vec::new();
            for (i, w) in sol.w.iter().enumerate() {
                let f = to_global(i);
                for (c, &w) in w[..problem.width].iter().enumerate() {
                    if w != 0.0 && (f >= prune_from || w.abs() >= threshold) {
                        kept.push((f, (first + c) as u32, w));
                    } else {
                        dropped += usize::from(w != 0.0);
                    }
                }
            }
            (kept, sol.bias[..problem.width].to_vec(), dropped)
        })
        .collect();
    let mut entries = Vec::new();
    let mut bias = Vec::with_capacity(k);
    let mut dropped = 0;
    for (e, b, d) in solved {
        entries.extend(e);
        bias.extend(b);
        dropped += d;
    }
    let kept = entries.len();
    (NodeScorer::from_entries(entries, bias), kept, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sparse::SparseVec;

    /// 4 labels under 2 nodes: root -> {A: labels 0, 1; B: labels 2, 3}. Label l's records carry
    /// feature l (strongly) and feature 10 + l / 2 (their cluster's word).
    fn toy() -> (LabelTree, SparseRows, Vec<u32>) {
        let tree = LabelTree::two_level(&[&[0, 1], &[2, 3]]);
        let mut rows = Vec::new();
        let mut labels = Vec::new();
        for i in 0..40u32 {
            let l = i % 4;
            let mut v = SparseVec::from_pairs(vec![(l, 1.0), (10 + l / 2, 1.0), (20 + i % 3, 0.2)]);
            v.normalize();
            rows.push(v);
            labels.push(l);
        }
        (tree, SparseRows::from_rows(23, rows), labels)
    }

    #[test]
    fn the_beam_finds_every_training_label() {
        let (tree, x, labels) = toy();
        for negatives in [Negatives::Siblings, Negatives::SiblingsAndBeam] {
            let cfg = RankerConfig { negatives, threshold: 0.0, beam: 1, train_beam: 1, ..RankerConfig::default() };
            let (ranker, summary) = TreeRanker::train(&tree, &x, &labels, &cfg, u32::MAX, |_| {}).unwrap();
            assert_eq!(summary.binary_problems, 6);
            assert_eq!(summary.teacher_forced_rows, 40 * 2);
            for r in 0..x.rows() {
                let top = ranker.predict(x.row(r), 1, 2);
                assert_eq!(top[0].0, labels[r], "{negatives:?} row {r}: {top:?}");
                assert!(top[0].1 > top.get(1).map_or(0.0, |t| t.1));
            }
            if negatives == Negatives::SiblingsAndBeam {
                // beam 1 reaches only the right node for these separable records: no extra rows
                assert_eq!(summary.beam_negative_rows, 0);
            }
        }
    }

    #[test]
    fn the_training_beam_keeps_no_spare_capacity() {
        // Four children under the root, each with four labels: the root's 4 children are scored
        // for every record before the cut to a beam of 2.
        let tree = LabelTree::two_level(&[&[0, 1, 2, 3], &[4, 5, 6, 7], &[8, 9, 10, 11], &[12, 13, 14, 15]]);
        let rows: Vec<SparseVec> = (0..32u32).map(|i| SparseVec::from_pairs(vec![(i % 16, 1.0), (16 + i % 4, 0.5)])).collect();
        let labels: Vec<u32> = (0..32u32).map(|i| i % 16).collect();
        let x = SparseRows::from_rows(20, rows);
        let cfg = RankerConfig { negatives: Negatives::SiblingsAndBeam, train_beam: 2, ..RankerConfig::default() };
        let (ranker, _) = TreeRanker::train(&tree, &x, &labels, &cfg, u32::MAX, |_| {}).unwrap();
        let next = ranker.advance_frontier(vec![vec![(0, 1.0)]; x.rows()], &x, cfg.train_beam);
        assert_eq!(next.len(), x.rows());
        for (r, f) in next.iter().enumerate() {
            assert_eq!(f.len(), 2, "row {r}: the beam's 2 best of the root's 4 children");
            assert_eq!(f.capacity(), f.len(), "row {r}: no spare capacity");
            assert!(f[0].1 >= f[1].1);
        }
    }

    #[test]
    fn a_wide_beam_returns_every_label_once_in_score_order() {
        let (tree, x, labels) = toy();
        let cfg = RankerConfig { path_combine: PathCombine::Product, ..RankerConfig::default() };
        let (ranker, _) = TreeRanker::train(&tree, &x, &labels, &cfg, u32::MAX, |_| {}).unwrap();
        let top = ranker.predict(x.row(0), 10, 10);
        let mut ids: Vec<u32> = top.iter().map(|t| t.0).collect();
        assert!(top.windows(2).all(|w| w[0].1 >= w[1].1));
        ids.sort();
        assert_eq!(ids, vec![0, 1, 2, 3]);
        // path score = product of the two node transforms
        let mut s = Vec::new();
        ranker.nodes[0].scores(x.row(0), ranker.bias, &mut s);
        let mut s1 = Vec::new();
        ranker.nodes[1].scores(x.row(0), ranker.bias, &mut s1);
        let expect = ranker.path_score.transform(s[0]) * ranker.path_score.transform(s1[0]);
        assert!((top.iter().find(|t| t.0 == 0).unwrap().1 - expect).abs() < 1e-6);
        // Scoring named labels gives the beam's path scores.
        for &(l, score) in &top {
            assert!((ranker.label_scores(x.row(0), &[l])[0] - score).abs() < 1e-6);
        }
        // The geometric mean of the two levels, for the same ranker.
        let geo = TreeRanker { path_combine: PathCombine::GeometricMean, ..ranker.clone() };
        let g = geo.predict(x.row(0), 10, 10);
        assert!((g.iter().find(|t| t.0 == 0).unwrap().1 - expect.sqrt()).abs() < 1e-6);
        assert_eq!(geo.label_scores(x.row(0), &[0])[0], g.iter().find(|t| t.0 == 0).unwrap().1);
    }

    #[test]
    fn pruning_drops_small_weights_but_not_exempt_features() {
        let (tree, x, labels) = toy();
        let base = RankerConfig { threshold: 0.0, ..RankerConfig::default() };
        let (all, s_all) = TreeRanker::train(&tree, &x, &labels, &base, u32::MAX, |_| {}).unwrap();
        let pruned_cfg = RankerConfig { threshold: 0.3, ..base.clone() };
        let (pruned, s_pruned) = TreeRanker::train(&tree, &x, &labels, &pruned_cfg, u32::MAX, |_| {}).unwrap();
        assert!(s_pruned.weights_kept < s_all.weights_kept && s_pruned.weights_dropped > 0);
        assert!(pruned.nodes.iter().all(|n| n.weight.iter().all(|w| w.abs() >= 0.3)));
        let (exempt, _) = TreeRanker::train(&tree, &x, &labels, &pruned_cfg, 20, |_| {}).unwrap();
        let kept_noise = |r: &TreeRanker| r.nodes.iter().map(|n| n.features.iter().filter(|&&f| f >= 20).count()).sum::<usize>();
        assert_eq!(kept_noise(&exempt), kept_noise(&all));
    }

    #[test]
    fn a_small_node_in_its_own_feature_space_learns_what_a_large_one_does() {
        let (_, x, labels) = toy();
        let rows: Vec<(u32, Option<u32>)> = (0..8u32).map(|r| (r, Some(labels[r as usize] % 2))).collect();
        let cfg = RankerConfig { threshold: 0.0, ..RankerConfig::default() };
        // Alone, the 8 rows are all the records: the global space.
        let mut small = SparseRows::new(x.n_cols);
        (0..8).for_each(|r| small.push(x.row(r)));
        let (global, _, _) = train_node(&small, &rows, 2, &cfg, 0.0, u32::MAX, 5);
        // Among 40, they are a fifth: the node's own space.
        let (local, _, _) = train_node(&x, &rows, 2, &cfg, 0.0, u32::MAX, 5);
        assert_eq!(global, local);
        assert!(global.entries() > 0);
    }

    #[test]
    fn scores_equal_a_plain_sum_over_the_entries() {
        let mut rng = xmc_data::SplitMix64::new(3);
        let entries: Vec<(u32, u32, f32)> =
            (0..3000).map(|_| ((rng.next_u64() % 5000) as u32, (rng.next_u64() % 4) as u32, (rng.next_u64() % 100) as f32 / 50.0 - 1.0)).collect();
        let mut dedup = entries.clone();
        dedup.sort_by_key(|e| (e.0, e.1));
        dedup.dedup_by_key(|e| (e.0, e.1));
        let scorer = NodeScorer::from_entries(dedup.clone(), vec![0.5, -0.5, 0.0, 1.0]);
        for trial in 0..50 {
            let pairs: Vec<(u32, f32)> = (0..(trial * 7 + 1)).map(|_| ((rng.next_u64() % 5200) as u32, 0.5)).collect();
            let x = SparseVec::from_pairs(pairs);
            let mut got = Vec::new();
            scorer.scores(x.view(), 1.0, &mut got);
            let mut want = vec![0.5f32, -0.5, 0.0, 1.0];
            for (f, v) in x.view().iter() {
                for &(ef, c, w) in &dedup {
                    if ef == f {
                        want[c as usize] += v * w;
                    }
                }
            }
            for (g, w) in got.iter().zip(&want) {
                assert!((g - w).abs() < 1e-4, "trial {trial}: {got:?} vs {want:?}");
            }
        }
    }

    #[test]
    fn bad_inputs_are_errors() {
        let (tree, x, mut labels) = toy();
        labels[0] = 9;
        assert!(TreeRanker::train(&tree, &x, &labels, &RankerConfig::default(), u32::MAX, |_| {}).is_err());
        assert!(TreeRanker::train(&tree, &x, &labels[..3], &RankerConfig::default(), u32::MAX, |_| {}).is_err());
    }
}
