//! The codes stage: each label's code from the tree, statistics of the tree's shape, and how well
//! the tree keeps taxonomy siblings together.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};
use xmc_data::{LabelSet, SplitMix64};

use crate::error::{CodesError, Result};
use crate::tree::{Child, LabelTree};
use crate::trie::PrefixTrie;

pub const CODES_FILE: &str = "codes.json";
pub const CODE_STATS_FILE: &str = "code_stats.json";

/// The `[codes]` section of an experiment config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CodesConfig {
    /// Seed of the random tree the coherence is compared with.
    pub seed: u64,
}

impl Default for CodesConfig {
    fn default() -> Self {
        CodesConfig { seed: 42 }
    }
}

/// How often two labels that share a parent in the real taxonomy share a code prefix.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Coherence {
    /// Pairs of labels with the same taxonomy parent.
    pub sibling_pairs: u64,
    /// Share of those pairs whose codes agree on the first 1 / 2 symbols.
    pub prefix_1: f64,
    pub prefix_2: f64,
    /// The same for a random tree of the same shape (labels shuffled over the leaves).
    pub random_prefix_1: f64,
    pub random_prefix_2: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodeStats {
    pub labels: usize,
    pub internal_nodes: usize,
    pub max_code_length: usize,
    pub mean_code_length: f64,
    /// Number of labels of each code length.
    pub code_length_histogram: BTreeMap<usize, usize>,
    /// Number of internal nodes with each number of children.
    pub children_histogram: BTreeMap<usize, usize>,
    pub coherence: Coherence,
}

/// The codes stage's artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelCodes {
    /// `codes[label]`: the label's path of child indices.
    pub codes: Vec<Vec<u32>>,
    pub stats: CodeStats,
}

#[derive(Serialize, Deserialize)]
struct CodesFile {
    codes: Vec<Vec<u32>>,
}

fn pairs(n: u64) -> u64 {
    n * n.saturating_sub(1) / 2
}

/// Share of taxonomy-sibling pairs whose codes share a prefix of `length` symbols.
fn shared_prefix_share(labels: &LabelSet, codes: &[Vec<u32>], length: usize) -> (u64, f64) {
    let mut groups: HashMap<(&[String], &[u32]), u64> = HashMap::new();
    let mut parents: HashMap<&[String], u64> = HashMap::new();
    for label in &labels.labels {
        if label.levels.len() < 2 {
            continue; // a top-level label has no taxonomy parent
        }
        let parent = &label.levels[..label.levels.len() - 1];
        let code = &codes[label.id as usize];
        *parents.entry(parent).or_default() += 1;
        if code.len() >= length {
            *groups.entry((parent, &code[..length])).or_default() += 1;
        }
    }
    let total: u64 = parents.values().map(|&n| pairs(n)).sum();
    let shared: u64 = groups.values().map(|&n| pairs(n)).sum();
    (total, if total == 0 { 0.0 } else { shared as f64 / total as f64 })
}

fn coherence(labels: &LabelSet, codes: &[Vec<u32>], seed: u64) -> Coherence {
    let mut shuffled = codes.to_vec();
    SplitMix64::new(seed).shuffle(&mut shuffled);
    let (sibling_pairs, prefix_1) = shared_prefix_share(labels, codes, 1);
    Coherence {
        sibling_pairs,
        prefix_1,
        prefix_2: shared_prefix_share(labels, codes, 2).1,
        random_prefix_1: shared_prefix_share(labels, &shuffled, 1).1,
        random_prefix_2: shared_prefix_share(labels, &shuffled, 2).1,
    }
}

/// Runs the codes stage.
pub fn build_codes(tree: &LabelTree, labels: &LabelSet, cfg: &CodesConfig) -> Result<LabelCodes> {
    tree.validate()?;
    if tree.n_labels != labels.len() {
        return Err(CodesError::InvalidTree(format!("the tree holds {} labels, the data {}", tree.n_labels, labels.len())));
    }
    let codes = tree.codes();
    // Building the trie checks that the codes are unique and prefix-free.
    PrefixTrie::from_codes(&codes)?;
    let mut code_length_histogram = BTreeMap::new();
    for code in &codes {
        *code_length_histogram.entry(code.len()).or_default() += 1;
    }
    let mut children_histogram = BTreeMap::new();
    for node in &tree.nodes {
        *children_histogram.entry(node.children.len()).or_default() += 1;
    }
    let stats = CodeStats {
        labels: codes.len(),
        internal_nodes: tree.nodes.len(),
        max_code_length: codes.iter().map(Vec::len).max().unwrap_or(0),
        mean_code_length: codes.iter().map(Vec::len).sum::<usize>() as f64 / codes.len().max(1) as f64,
        code_length_histogram,
        children_histogram,
        coherence: coherence(labels, &codes, cfg.seed),
    };
    Ok(LabelCodes { codes, stats })
}

impl LabelCodes {
    pub fn trie(&self) -> PrefixTrie {
        PrefixTrie::from_codes(&self.codes).expect("codes were checked when built")
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let io = |path: &Path, e: std::io::Error| CodesError::Artifact { path: path.into(), message: e.to_string() };
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        let path = dir.join(CODES_FILE);
        let text = serde_json::to_string(&CodesFile { codes: self.codes.clone() }).expect("codes serialise");
        std::fs::write(&path, text + "\n").map_err(|e| io(&path, e))?;
        let path = dir.join(CODE_STATS_FILE);
        std::fs::write(&path, serde_json::to_string_pretty(&self.stats).expect("stats serialise") + "\n").map_err(|e| io(&path, e))
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let read = |name: &str| {
            let path = dir.join(name);
            std::fs::read_to_string(&path).map_err(|e| CodesError::Artifact { path: path.clone(), message: e.to_string() })
        };
        let bad = |name: &str, e: serde_json::Error| CodesError::Artifact { path: dir.join(name), message: e.to_string() };
        let codes: CodesFile = serde_json::from_str(&read(CODES_FILE)?).map_err(|e| bad(CODES_FILE, e))?;
        let stats: CodeStats = serde_json::from_str(&read(CODE_STATS_FILE)?).map_err(|e| bad(CODE_STATS_FILE, e))?;
        PrefixTrie::from_codes(&codes.codes)?;
        Ok(LabelCodes { codes: codes.codes, stats })
    }
}

/// Leaves in depth-first order; handy for building a tree by hand in tests.
pub fn leaf_order(tree: &LabelTree) -> Vec<u32> {
    let mut out = Vec::new();
    let mut stack: Vec<Child> = tree.nodes[0].children.iter().rev().copied().collect();
    while let Some(child) = stack.pop() {
        match child {
            Child::Label(l) => out.push(l),
            Child::Node(n) => stack.extend(tree.nodes[n as usize].children.iter().rev().copied()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tree::TreeNode;

    fn labels(paths: &[&str]) -> LabelSet {
        let paths: Vec<Vec<String>> = paths.iter().map(|p| p.split(" > ").map(str::to_string).collect()).collect();
        LabelSet::from_paths(paths.iter().map(Vec::as_slice), 25)
    }

    #[test]
    fn a_tree_that_follows_the_taxonomy_is_fully_coherent() {
        // Labels (sorted): 0 A > x, 1 A > y, 2 B > x, 3 B > y
        let set = labels(&["A > x", "A > y", "B > x", "B > y"]);
        let tree = LabelTree::two_level(&[&[0, 1], &[2, 3]]);
        let codes = build_codes(&tree, &set, &CodesConfig::default()).unwrap();
        let c = &codes.stats.coherence;
        assert_eq!(c.sibling_pairs, 2);
        assert_eq!(c.prefix_1, 1.0);
        assert_eq!(c.prefix_2, 0.0);
        assert_eq!(codes.stats.mean_code_length, 2.0);
        assert_eq!(codes.stats.children_histogram.get(&2), Some(&3));
        // A tree that splits siblings apart scores zero.
        let crossed = LabelTree {
            n_labels: 4,
            nodes: vec![
                TreeNode { children: vec![Child::Node(1), Child::Node(2)] },
                TreeNode { children: vec![Child::Label(0), Child::Label(2)] },
                TreeNode { children: vec![Child::Label(1), Child::Label(3)] },
            ],
        };
        assert_eq!(build_codes(&crossed, &set, &CodesConfig::default()).unwrap().stats.coherence.prefix_1, 0.0);
        assert_eq!(leaf_order(&crossed), vec![0, 2, 1, 3]);
    }

    #[test]
    fn the_artifact_round_trips() {
        let set = labels(&["A > x", "A > y", "B"]);
        let tree = LabelTree {
            n_labels: 3,
            nodes: vec![TreeNode { children: vec![Child::Label(2), Child::Label(0), Child::Label(1)] }],
        };
        let codes = build_codes(&tree, &set, &CodesConfig::default()).unwrap();
        assert_eq!(codes.codes, vec![vec![1], vec![2], vec![0]]);
        let dir = tempfile::tempdir().unwrap();
        codes.save(dir.path()).unwrap();
        assert_eq!(LabelCodes::load(dir.path()).unwrap(), codes);
    }

    #[test]
    fn a_tree_for_other_labels_is_refused() {
        let set = labels(&["A", "B"]);
        let tree = LabelTree { n_labels: 1, nodes: vec![TreeNode { children: vec![Child::Label(0)] }] };
        let err = build_codes(&tree, &set, &CodesConfig::default()).unwrap_err().to_string();
        assert!(err.contains("the tree holds 1 labels, the data 2"), "the error says the counts differ: {err}");
    }
}
