//! The label tree: internal nodes whose children are nodes or labels. Built by the clustering
//! stage; a label's path of child indices is its prefix code.

use serde::{Deserialize, Serialize};

use crate::error::{CodesError, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Child {
    /// An internal node, by index into [`LabelTree::nodes`].
    Node(u32),
    /// A leaf: a label id.
    Label(u32),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TreeNode {
    pub children: Vec<Child>,
}

/// A rooted tree over labels `0..n_labels`; `nodes[0]` is the root.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelTree {
    pub n_labels: usize,
    pub nodes: Vec<TreeNode>,
}

impl LabelTree {
    /// Checks that every label appears exactly once, every node but the root has exactly one
    /// parent, and no node is empty.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(CodesError::InvalidTree(m));
        if self.nodes.is_empty() {
            return bad("the tree has no root".into());
        }
        let mut label_seen = vec![false; self.n_labels];
        let mut node_parents = vec![0u32; self.nodes.len()];
        for (i, node) in self.nodes.iter().enumerate() {
            if node.children.is_empty() {
                return bad(format!("node {i} has no children"));
            }
            for child in &node.children {
                match *child {
                    Child::Node(n) => {
                        let Some(count) = node_parents.get_mut(n as usize) else {
                            return bad(format!("node {i} points to missing node {n}"));
                        };
                        if n == 0 {
                            return bad(format!("node {i} points back to the root"));
                        }
                        *count += 1;
                    }
                    Child::Label(l) => match label_seen.get_mut(l as usize) {
                        None => return bad(format!("node {i} holds label {l}, but there are {} labels", self.n_labels)),
                        Some(true) => return bad(format!("label {l} appears twice")),
                        Some(seen) => *seen = true,
                    },
                }
            }
        }
        if let Some(l) = label_seen.iter().position(|s| !s) {
            return bad(format!("label {l} is not in the tree"));
        }
        if let Some(n) = node_parents.iter().skip(1).position(|&p| p != 1) {
            return bad(format!("node {} has {} parents", n + 1, node_parents[n + 1]));
        }
        Ok(())
    }

    /// Each label's code: the child index taken at every level from the root, root first.
    pub fn codes(&self) -> Vec<Vec<u32>> {
        let mut codes = vec![Vec::new(); self.n_labels];
        let mut stack: Vec<(u32, Vec<u32>)> = vec![(0, Vec::new())];
        while let Some((node, prefix)) = stack.pop() {
            for (index, child) in self.nodes[node as usize].children.iter().enumerate() {
                let mut code = prefix.clone();
                code.push(index as u32);
                match *child {
                    Child::Node(n) => stack.push((n, code)),
                    Child::Label(l) => codes[l as usize] = code,
                }
            }
        }
        codes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> LabelTree {
        // root -> [node1, label 2, node2]; node1 -> [label 0, label 3]; node2 -> [label 1]
        LabelTree {
            n_labels: 4,
            nodes: vec![
                TreeNode { children: vec![Child::Node(1), Child::Label(2), Child::Node(2)] },
                TreeNode { children: vec![Child::Label(0), Child::Label(3)] },
                TreeNode { children: vec![Child::Label(1)] },
            ],
        }
    }

    #[test]
    fn codes_are_paths_of_child_indices() {
        let t = tree();
        t.validate().unwrap();
        assert_eq!(t.codes(), vec![vec![0, 0], vec![2, 0], vec![1], vec![0, 1]]);
    }

    #[test]
    fn broken_trees_are_refused() {
        let mut t = tree();
        t.nodes[2].children.push(Child::Label(0));
        assert!(t.validate().unwrap_err().to_string().contains("label 0 appears twice"));
        let mut t = tree();
        t.n_labels = 5;
        assert!(t.validate().unwrap_err().to_string().contains("label 4 is not in the tree"));
        let mut t = tree();
        t.nodes[1].children.push(Child::Node(2));
        assert!(t.validate().unwrap_err().to_string().contains("2 parents"));
        let mut t = tree();
        t.nodes[2].children.clear();
        assert!(t.validate().is_err());
    }
}
