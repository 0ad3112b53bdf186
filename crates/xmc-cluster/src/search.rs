//! Multi-level cluster search: predict level by level through the label tree. At each level the
//! record's vector is scored against the vectors of the current nodes' children only (a child
//! node is the normalised mean of the labels below it, a child label is its own embedding); the
//! best `beam` partial paths go on, so a wrong early choice can be recovered. A label's score is
//! the mean similarity along its path.
//!
//! New labels (a leaf added to the taxonomy after training) are placed by nearest centroid at
//! each level ([`ClusterIndex::insert`]) and can be returned at once.

use serde::{Deserialize, Serialize};
use xmc_codes::{Child, LabelTree, TreeNode};

use crate::LabelEmbeddings;

/// The `[search]` section of an experiment config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SearchConfig {
    /// Partial paths kept per level.
    pub beam: usize,
    /// Labels returned per record.
    pub top_k: usize,
    /// Records encoded per batch.
    pub batch_size: usize,
    /// Leaves added to the taxonomy after training: a text file, one path per line (levels
    /// separated by ` > `). Each is embedded, placed in the tree by nearest centroid and can be
    /// predicted at once, without retraining.
    pub new_labels: Option<std::path::PathBuf>,
}

impl Default for SearchConfig {
    fn default() -> Self {
        SearchConfig { beam: 5, top_k: 5, batch_size: 64, new_labels: None }
    }
}

impl SearchConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.beam == 0 || self.top_k == 0 || self.batch_size == 0 {
            return Err("`search.beam`, `search.top_k` and `search.batch_size` must be at least 1".into());
        }
        Ok(())
    }
}

/// Reads a new-labels file: one path per line, levels separated by ` > ` (spaces around the
/// segments are trimmed), blank lines skipped. A path that is already a label, a repeated one, or
/// one with an empty level is an error naming its line.
pub fn read_new_labels(path: &std::path::Path, known: &xmc_data::LabelSet) -> crate::Result<Vec<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| crate::ClusterError::io(path, e))?;
    let bad = |line: usize, message: String| crate::ClusterError::Artifact { path: path.to_path_buf(), message: format!("line {line}: {message}") };
    let mut out: Vec<String> = Vec::new();
    for (i, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let levels: Vec<&str> = line.split('>').map(str::trim).collect();
        if levels.iter().any(|l| l.is_empty()) {
            return Err(bad(i + 1, format!("`{line}` has an empty level")));
        }
        let joined = levels.join(xmc_data::labels::PATH_SEPARATOR);
        if known.labels.iter().any(|l| l.path == joined) {
            return Err(bad(i + 1, format!("`{joined}` is already a label")));
        }
        if out.contains(&joined) {
            return Err(bad(i + 1, format!("`{joined}` is listed twice")));
        }
        out.push(joined);
    }
    Ok(out)
}

/// The tree with a unit vector for every node and label.
#[derive(Debug, Clone)]
pub struct ClusterIndex {
    pub tree: LabelTree,
    dim: usize,
    labels: Vec<Vec<f32>>,
    nodes: Vec<Vec<f32>>,
}

/// `v` scaled to unit length; a vector already of unit length (within rounding) is kept as it
/// is, so that vectors saved from an index load back bit for bit.
fn normalised(mut v: Vec<f32>) -> Vec<f32> {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if (norm - 1.0).abs() > 1e-6 {
        crate::pifa::normalise(&mut v);
    }
    v
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

impl ClusterIndex {
    pub fn new(tree: LabelTree, emb: &LabelEmbeddings) -> Self {
        let labels: Vec<Vec<f32>> = (0..emb.labels).map(|l| normalised(emb.row(l).to_vec())).collect();
        let mut index = ClusterIndex { dim: emb.dim, nodes: vec![Vec::new(); tree.nodes.len()], tree, labels };
        index.compute_node(0);
        index
    }

    /// Sets node `n`'s vector to the normalised mean of the labels below it; returns (sum, count).
    fn compute_node(&mut self, n: usize) -> (Vec<f32>, usize) {
        let mut sum = vec![0f32; self.dim];
        let mut count = 0;
        for child in self.tree.nodes[n].children.clone() {
            let (s, c) = match child {
                Child::Label(l) => (self.labels[l as usize].clone(), 1),
                Child::Node(m) => self.compute_node(m as usize),
            };
            sum.iter_mut().zip(&s).for_each(|(a, b)| *a += b);
            count += c;
        }
        self.nodes[n] = normalised(sum.clone());
        (sum, count)
    }

    fn vector(&self, child: Child) -> &[f32] {
        match child {
            Child::Label(l) => &self.labels[l as usize],
            Child::Node(n) => &self.nodes[n as usize],
        }
    }

    pub fn n_labels(&self) -> usize {
        self.labels.len()
    }

    /// Every label's unit vector (including labels inserted since), as sentence embeddings.
    pub fn label_embeddings(&self) -> LabelEmbeddings {
        LabelEmbeddings { kind: crate::EmbeddingKind::Sentence, labels: self.labels.len(), dim: self.dim, data: self.labels.concat() }
    }

    /// Up to `top_k` labels for a (unit) query vector, best first, with their mean path similarity.
    pub fn search(&self, query: &[f32], beam: usize, top_k: usize) -> Vec<(u32, f32)> {
        // (node, summed similarity, depth)
        let mut frontier: Vec<(u32, f32, usize)> = vec![(0, 0.0, 0)];
        let mut found: Vec<(u32, f32)> = Vec::new();
        while !frontier.is_empty() {
            let mut next = Vec::new();
            for &(node, sum, depth) in &frontier {
                for &child in &self.tree.nodes[node as usize].children {
                    let s = sum + dot(query, self.vector(child));
                    match child {
                        Child::Label(l) => found.push((l, s / (depth + 1) as f32)),
                        Child::Node(n) => next.push((n, s, depth + 1)),
                    }
                }
            }
            next.sort_by(|a, b| (b.1 / b.2 as f32).total_cmp(&(a.1 / a.2 as f32)).then(a.0.cmp(&b.0)));
            next.truncate(beam.max(1));
            frontier = next;
        }
        found.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        found.truncate(top_k);
        found
    }

    /// Adds a label with embedding `vector` (zero-shot): from the root, go to the most similar
    /// child while it is a node; the label joins the node where a label (or nothing) is the most
    /// similar child. Returns the new label's id and its code.
    pub fn insert(&mut self, vector: &[f32]) -> (u32, Vec<u32>) {
        let v = normalised(vector.to_vec());
        let id = self.labels.len() as u32;
        let mut node = 0usize;
        let mut code = Vec::new();
        loop {
            let best = self.tree.nodes[node]
                .children
                .iter()
                .copied()
                .max_by(|a, b| dot(&v, self.vector(*a)).total_cmp(&dot(&v, self.vector(*b))));
            match best {
                Some(Child::Node(n)) => {
                    let index = self.tree.nodes[node].children.iter().position(|c| *c == Child::Node(n)).expect("a child");
                    code.push(index as u32);
                    node = n as usize;
                }
                _ => {
                    code.push(self.tree.nodes[node].children.len() as u32);
                    self.tree.nodes[node].children.push(Child::Label(id));
                    break;
                }
            }
        }
        self.labels.push(v);
        self.tree.n_labels += 1;
        (id, code)
    }

    /// The tree without the given labels (for zero-shot experiments): emptied nodes are removed.
    pub fn tree_without(tree: &LabelTree, removed: &[u32]) -> LabelTree {
        fn keep(tree: &LabelTree, n: usize, removed: &std::collections::HashSet<u32>, out: &mut Vec<TreeNode>) -> Option<u32> {
            let slot = out.len();
            out.push(TreeNode { children: Vec::new() });
            let mut children = Vec::new();
            for &c in &tree.nodes[n].children {
                match c {
                    Child::Label(l) if !removed.contains(&l) => children.push(c),
                    Child::Label(_) => {}
                    Child::Node(m) => {
                        if let Some(k) = keep(tree, m as usize, removed, out) {
                            children.push(Child::Node(k));
                        }
                    }
                }
            }
            if children.is_empty() && slot != 0 {
                out.truncate(slot);
                return None;
            }
            out[slot].children = children;
            Some(slot as u32)
        }
        let removed: std::collections::HashSet<u32> = removed.iter().copied().collect();
        let mut nodes = Vec::new();
        keep(tree, 0, &removed, &mut nodes);
        LabelTree { n_labels: tree.n_labels, nodes }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::EmbeddingKind;

    /// Labels 0, 1 near the x axis, 2, 3 near the y axis; two clusters under the root.
    pub(crate) fn two_clusters() -> (LabelTree, LabelEmbeddings) {
        let data = vec![1.0, 0.1, 1.0, -0.1, 0.1, 1.0, -0.1, 1.0];
        let emb = LabelEmbeddings { kind: EmbeddingKind::Sentence, labels: 4, dim: 2, data };
        let tree = LabelTree::two_level(&[&[0, 1], &[2, 3]]);
        (tree, emb)
    }

    fn index() -> ClusterIndex {
        let (tree, emb) = two_clusters();
        ClusterIndex::new(tree, &emb)
    }

    #[test]
    fn search_descends_to_the_nearest_label() {
        let idx = index();
        let hits = idx.search(&normalised(vec![1.0, 0.12]), 1, 2);
        assert_eq!(hits[0].0, 0);
        assert_eq!(hits.len(), 2, "{hits:?}");
        assert!(hits.iter().all(|h| h.0 < 2), "beam 1 stays in the x cluster: {hits:?}");
        let wide = idx.search(&normalised(vec![1.0, 0.12]), 2, 4);
        assert_eq!(wide.len(), 4, "beam 2 reaches every label");
        assert!(wide.windows(2).all(|w| w[0].1 >= w[1].1));
    }

    #[test]
    fn inserted_labels_are_found() {
        let mut idx = index();
        let (id, code) = idx.insert(&[0.0, 1.0]);
        assert_eq!((id, code.clone()), (4, vec![1, 2]), "joins the y cluster as its third child");
        idx.tree.validate().unwrap();
        assert_eq!(idx.search(&[0.0, 1.0], 1, 1)[0].0, 4);
    }

    #[test]
    fn removing_labels_drops_empty_nodes() {
        let idx = index();
        let t = ClusterIndex::tree_without(&idx.tree, &[2, 3]);
        assert_eq!(t.nodes.len(), 2);
        assert_eq!(t.nodes[0].children, vec![Child::Node(1)]);
    }
}
