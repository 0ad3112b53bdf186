//! The tree stage: recursive k-means over label embeddings. A node with at least `k` labels is
//! split into (up to) `k` clusters; a node with fewer than `k` labels keeps them as leaves. A
//! cluster of one label becomes a leaf of its parent directly.

use std::path::Path;

use linfa::prelude::*;
use linfa_clustering::KMeans;
use ndarray::{Array2, ArrayView2, Axis};
use rand_xoshiro::Xoshiro256Plus;
use rand_xoshiro::rand_core::SeedableRng;
use xmc_codes::{Child, LabelTree, TreeNode};

use crate::config::TreeConfig;
use crate::embed::LabelEmbeddings;
use crate::error::{ClusterError, Result};

pub const TREE_FILE: &str = "tree.json";

/// Cluster index of each row of `points`, `k` clusters, or `None` when k-means cannot split them
/// (e.g. identical points).
fn kmeans(points: ArrayView2<f32>, k: usize, cfg: &TreeConfig, seed: u64) -> Option<Vec<usize>> {
    let dataset = DatasetBase::from(points.to_owned());
    let model = KMeans::params_with_rng(k, Xoshiro256Plus::seed_from_u64(seed))
        .max_n_iterations(cfg.max_iterations)
        .n_runs(cfg.runs)
        .tolerance(cfg.tolerance)
        .fit(&dataset)
        .ok()?;
    let assignment = if cfg.balanced {
        balanced_assignment(points, model.centroids().view())
    } else {
        model.predict(&dataset).to_vec()
    };
    let used = {
        let mut seen = vec![false; k];
        assignment.iter().for_each(|&c| seen[c] = true);
        seen.iter().filter(|&&s| s).count()
    };
    (used >= 2).then_some(assignment)
}

/// Assigns points to centroids nearest-first under capacities ⌈n/k⌉ (the first n mod k clusters)
/// and ⌊n/k⌋ (the rest), so every child gets ⌊n/k⌋ or ⌈n/k⌉ points.
fn balanced_assignment(points: ArrayView2<f32>, centroids: ArrayView2<f32>) -> Vec<usize> {
    let (n, k) = (points.nrows(), centroids.nrows());
    let mut capacity: Vec<usize> = (0..k).map(|c| n / k + usize::from(c < n % k)).collect();
    let mut pairs: Vec<(f32, usize, usize)> = Vec::with_capacity(n * k);
    for (i, p) in points.axis_iter(Axis(0)).enumerate() {
        for (c, centroid) in centroids.axis_iter(Axis(0)).enumerate() {
            let d: f32 = p.iter().zip(centroid.iter()).map(|(a, b)| (a - b) * (a - b)).sum();
            pairs.push((d, i, c));
        }
    }
    pairs.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
    let mut assignment = vec![usize::MAX; n];
    for (_, i, c) in pairs {
        if assignment[i] == usize::MAX && capacity[c] > 0 {
            assignment[i] = c;
            capacity[c] -= 1;
        }
    }
    assignment
}

/// Splits `labels` into `k` runs of nearly equal size, in order: the fallback when k-means
/// cannot separate them.
fn even_split(n: usize, k: usize) -> Vec<usize> {
    (0..n).map(|i| i * k / n).collect()
}

/// Further trees over the same label vectors for an ensemble: `cfg`'s recipe (k-means) at each
/// branching factor of `branchings`, the i-th with the seed `cfg.seed + i + 1`, so that no two
/// trees of the ensemble share their k-means initialisation.
pub fn build_tree_ensemble(emb: &LabelEmbeddings, cfg: &TreeConfig, branchings: &[usize]) -> Result<Vec<LabelTree>> {
    branchings
        .iter()
        .enumerate()
        .map(|(i, &branching)| {
            let seed = cfg.seed.wrapping_add(i as u64 + 1);
            build_tree(emb, &TreeConfig { kind: crate::config::TreeKind::Kmeans, branching, seed, ..cfg.clone() })
        })
        .collect()
}

/// Builds the label tree. Deterministic for a given seed.
pub fn build_tree(emb: &LabelEmbeddings, cfg: &TreeConfig) -> Result<LabelTree> {
    cfg.validate().map_err(ClusterError::Config)?;
    if emb.labels == 0 {
        return Err(ClusterError::Config("there are no labels to cluster".into()));
    }
    let k = cfg.branching;
    let all = Array2::from_shape_vec((emb.labels, emb.dim), emb.data.clone())
        .map_err(|e| ClusterError::Config(format!("embeddings: {e}")))?;
    let mut nodes: Vec<TreeNode> = vec![TreeNode { children: Vec::new() }];
    // (node index, its labels in ascending id order)
    let mut work: Vec<(usize, Vec<u32>)> = vec![(0, (0..emb.labels as u32).collect())];
    while let Some((node, labels)) = work.pop() {
        if labels.len() < k {
            nodes[node].children = labels.iter().map(|&l| Child::Label(l)).collect();
            continue;
        }
        let points = all.select(Axis(0), &labels.iter().map(|&l| l as usize).collect::<Vec<_>>());
        let seed = cfg.seed ^ (node as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let started = std::time::Instant::now();
        let assignment = kmeans(points.view(), k, cfg, seed).unwrap_or_else(|| even_split(labels.len(), k));
        tracing::trace!(labels = labels.len(), micros = started.elapsed().as_micros() as u64, "k-means node");
        let mut clusters: Vec<Vec<u32>> = vec![Vec::new(); k];
        for (&label, &c) in labels.iter().zip(&assignment) {
            clusters[c].push(label);
        }
        for cluster in clusters.into_iter().filter(|c| !c.is_empty()) {
            if let [label] = cluster[..] {
                nodes[node].children.push(Child::Label(label));
            } else {
                let child = nodes.len();
                nodes.push(TreeNode { children: Vec::new() });
                nodes[node].children.push(Child::Node(child as u32));
                work.push((child, cluster));
            }
        }
    }
    let tree = LabelTree { n_labels: emb.labels, nodes };
    tree.validate()?;
    Ok(tree)
}

pub fn save_tree(tree: &LabelTree, dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(|e| ClusterError::io(dir, e))?;
    let path = dir.join(TREE_FILE);
    std::fs::write(&path, serde_json::to_string(tree).expect("serialises") + "\n").map_err(|e| ClusterError::io(&path, e))
}

pub fn load_tree(dir: &Path) -> Result<LabelTree> {
    let path = dir.join(TREE_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| ClusterError::io(&path, e))?;
    let tree: LabelTree =
        serde_json::from_str(&text).map_err(|e| ClusterError::Artifact { path: path.clone(), message: e.to_string() })?;
    tree.validate().map_err(|e| ClusterError::Artifact { path: path.clone(), message: e.to_string() })?;
    Ok(tree)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::EmbeddingKind;

    fn embeddings(points: &[[f32; 2]]) -> LabelEmbeddings {
        LabelEmbeddings { kind: EmbeddingKind::Sentence, labels: points.len(), dim: 2, data: points.iter().flatten().copied().collect() }
    }

    /// Twelve labels in three tight groups of four, far apart: with k = 3 the root must split
    /// them into exactly those groups, and each group (4 >= 3 labels) is split once more.
    #[test]
    fn twelve_labels_k3_follow_the_groups() {
        let centres = [[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]];
        let offsets = [[0.0, 0.0], [0.3, 0.0], [0.0, 0.3], [3.0, 3.0]];
        let points: Vec<[f32; 2]> =
            (0..12).map(|i| [centres[i / 4][0] + offsets[i % 4][0], centres[i / 4][1] + offsets[i % 4][1]]).collect();
        // Restarts: a single k-means++ start can pair an outlier with another group's points.
        let cfg = TreeConfig { branching: 3, runs: 5, ..TreeConfig::default() };
        let tree = build_tree(&embeddings(&points), &cfg).unwrap();
        let codes = tree.codes();
        for group in 0..3 {
            let first = codes[group * 4][0];
            assert!((0..4).all(|j| codes[group * 4 + j][0] == first), "group {group}: {codes:?}");
        }
        let tops: std::collections::BTreeSet<u32> = codes.iter().map(|c| c[0]).collect();
        assert_eq!(tops.len(), 3);
        // Inside a group (4 >= 3 labels, split again into 3): the outlier at offset (3, 3) is a
        // cluster of its own, so it is a leaf right there; two of the tight three share a node.
        for group in 0..3 {
            let outlier = &codes[group * 4 + 3];
            assert_eq!(outlier.len(), 2, "{codes:?}");
            assert!((0..3).all(|j| codes[group * 4 + j][..2] != outlier[..]), "{codes:?}");
            let deep = (0..3).filter(|&j| codes[group * 4 + j].len() == 3).count();
            assert_eq!(deep, 2, "{codes:?}");
        }
    }

    #[test]
    fn same_seed_same_tree() {
        let points: Vec<[f32; 2]> = (0..200).map(|i| [((i * 37) % 101) as f32, ((i * 53) % 97) as f32]).collect();
        let cfg = TreeConfig { branching: 4, ..TreeConfig::default() };
        let a = build_tree(&embeddings(&points), &cfg).unwrap();
        let b = build_tree(&embeddings(&points), &cfg).unwrap();
        assert_eq!(serde_json::to_string(&a).unwrap(), serde_json::to_string(&b).unwrap());
    }

    #[test]
    fn edge_cases() {
        // One label, and fewer labels than k: a single root holding them.
        let one = build_tree(&embeddings(&[[1.0, 0.0]]), &TreeConfig::default()).unwrap();
        assert_eq!(one.codes(), vec![vec![0]]);
        let few = build_tree(&embeddings(&[[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]]), &TreeConfig::default()).unwrap();
        assert_eq!(few.codes(), vec![vec![0], vec![1], vec![2]]);
        // Identical embeddings still give a valid tree with unique codes.
        let same = build_tree(&embeddings(&[[0.5, 0.5]; 40]), &TreeConfig { branching: 3, ..TreeConfig::default() }).unwrap();
        let codes = same.codes();
        let distinct: std::collections::BTreeSet<_> = codes.iter().collect();
        assert_eq!(distinct.len(), 40);
        // k < 2 is a config error.
        let err = build_tree(&embeddings(&[[0.0, 0.0]]), &TreeConfig { branching: 1, ..TreeConfig::default() }).unwrap_err();
        assert!(err.to_string().contains("tree.branching"));
    }

    #[test]
    fn balanced_children_get_floor_or_ceil() {
        let points: Vec<[f32; 2]> = (0..50).map(|i| [if i < 40 { 0.0 } else { 10.0 } + (i as f32) * 0.01, 0.0]).collect();
        let cfg = TreeConfig { branching: 4, balanced: true, ..TreeConfig::default() };
        let tree = build_tree(&embeddings(&points), &cfg).unwrap();
        let root = &tree.nodes[0];
        let sizes: Vec<usize> = root
            .children
            .iter()
            .map(|c| match c {
                Child::Node(n) => count_labels(&tree, *n as usize),
                Child::Label(_) => 1,
            })
            .collect();
        assert_eq!(sizes.iter().sum::<usize>(), 50);
        assert!(sizes.iter().all(|&s| s == 12 || s == 13), "{sizes:?}");
    }

    fn count_labels(tree: &LabelTree, node: usize) -> usize {
        tree.nodes[node]
            .children
            .iter()
            .map(|c| match c {
                Child::Node(n) => count_labels(tree, *n as usize),
                Child::Label(_) => 1,
            })
            .sum()
    }
}
