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
    /// A two-level tree: the root over one node per group, each node over its group's labels in
    /// order (`&[&[0, 1], &[2, 3]]`), for trees written by hand in tests and examples.
    pub fn two_level(groups: &[&[u32]]) -> LabelTree {
        let mut nodes = vec![TreeNode { children: (1..=groups.len() as u32).map(Child::Node).collect() }];
        nodes.extend(groups.iter().map(|g| TreeNode { children: g.iter().map(|&l| Child::Label(l)).collect() }));
        LabelTree { n_labels: groups.iter().map(|g| g.len()).sum(), nodes }
    }

    /// Checks that every label appears exactly once, every node but the root has exactly one
    /// parent, and no node is empty.
    pub fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(CodesError::InvalidTree(m));
        if self.nodes.is_empty() {
            return bad("the tree has no root".into());
        }
        // Each label is one leaf: a count above the leaves is refused before it sizes anything.
        let leaves = self.nodes.iter().flat_map(|n| &n.children).filter(|c| matches!(c, Child::Label(_))).count();
        if self.n_labels > leaves {
            return bad(format!("`n_labels` = {} but the tree has {leaves} leaves: label {leaves} is not in the tree", self.n_labels));
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

    /// The tree the taxonomy itself draws: a node per category that holds labels below it, whose
    /// children are its sub-categories and the label that is the category itself (a record may
    /// sit at an inner category). A category with one child is passed through. `paths[l]` is label
    /// `l`'s path, root first; two labels with one path are an error.
    pub fn from_taxonomy(paths: &[Vec<String>]) -> Result<LabelTree> {
        #[derive(Default)]
        struct Category<'a> {
            label: Option<u32>,
            children: std::collections::BTreeMap<&'a str, Category<'a>>,
        }
        let mut root = Category::default();
        for (id, path) in paths.iter().enumerate() {
            let mut at = &mut root;
            for segment in path {
                at = at.children.entry(segment.as_str()).or_default();
            }
            if let Some(other) = at.label.replace(id as u32) {
                return Err(CodesError::InvalidTree(format!("labels {other} and {id} have the same path {}", path.join(" > "))));
            }
        }
        // Nodes in post-order with provisional ids; the root's ids are renumbered below.
        fn emit(category: &Category, nodes: &mut Vec<Vec<Child>>) -> Child {
            let mut children: Vec<Child> = category.label.map(Child::Label).into_iter().collect();
            children.extend(category.children.values().map(|c| emit(c, nodes)));
            if let [only] = children[..] {
                return only;
            }
            nodes.push(children);
            Child::Node(nodes.len() as u32 - 1)
        }
        let mut provisional = Vec::new();
        let top = match emit(&root, &mut provisional) {
            Child::Label(l) => return Ok(LabelTree { n_labels: paths.len(), nodes: vec![TreeNode { children: vec![Child::Label(l)] }] }),
            Child::Node(n) => n,
        };
        // Breadth first from the top, so the root is node 0.
        let mut order = vec![top];
        let mut new_id = vec![u32::MAX; provisional.len()];
        new_id[top as usize] = 0;
        let mut i = 0;
        while i < order.len() {
            for child in &provisional[order[i] as usize] {
                if let Child::Node(n) = *child {
                    new_id[n as usize] = order.len() as u32;
                    order.push(n);
                }
            }
            i += 1;
        }
        let nodes = order
            .iter()
            .map(|&n| TreeNode {
                children: provisional[n as usize]
                    .iter()
                    .map(|c| match *c {
                        Child::Node(m) => Child::Node(new_id[m as usize]),
                        label => label,
                    })
                    .collect(),
            })
            .collect();
        let tree = LabelTree { n_labels: paths.len(), nodes };
        tree.validate()?;
        Ok(tree)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_two_level_tree_puts_each_group_under_a_node_of_the_root() {
        let tree = LabelTree::two_level(&[&[0, 1], &[3, 2]]);
        tree.validate().unwrap();
        assert_eq!(tree.n_labels, 4);
        assert_eq!(tree.codes(), vec![vec![0, 0], vec![0, 1], vec![1, 1], vec![1, 0]]);
    }

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
    fn the_taxonomy_tree_follows_the_paths() {
        let path = |s: &str| s.split(" > ").map(String::from).collect::<Vec<_>>();
        // 0: A > x, 1: A > y, 2: A > y > z (an inner category that is also a label), 3: B > w > v
        let paths = vec![path("A > x"), path("A > y"), path("A > y > z"), path("B > w > v")];
        let t = LabelTree::from_taxonomy(&paths).unwrap();
        // root -> [A, label 3 (B and B > w pass through)]; A -> [label 0, A > y]; A > y -> [1, 2]
        assert_eq!(t.nodes.len(), 3);
        assert_eq!(t.codes(), vec![vec![0, 0], vec![0, 1, 0], vec![0, 1, 1], vec![1]]);
        let err = LabelTree::from_taxonomy(&[path("A > x"), path("A > x")]).unwrap_err().to_string();
        assert!(err.contains("same path A > x"), "{err}");
        let one = LabelTree::from_taxonomy(&[path("A")]).unwrap();
        assert_eq!(one.codes(), vec![vec![0]]);
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
