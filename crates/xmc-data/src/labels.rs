//! The label hierarchy: every distinct cleaned category path is a leaf label; its ancestors are
//! its path prefixes, so a model predicts the leaf and the levels above follow from it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The separator used when a path is written as one string.
pub const PATH_SEPARATOR: &str = " > ";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Label {
    pub id: u32,
    /// The segments joined with [`PATH_SEPARATOR`].
    pub path: String,
    /// The segment names, root first: `levels[i]` is the name at level Li.
    pub levels: Vec<String>,
    pub train_count: u32,
    pub valid_count: u32,
    pub test_count: u32,
    /// At most `tail_max` training records.
    pub tail: bool,
}

impl Label {
    pub fn depth(&self) -> usize {
        self.levels.len()
    }

    /// The path of this label's ancestor at `level` (0-based), or `None` past its depth.
    pub fn ancestor(&self, level: usize) -> Option<String> {
        (level < self.levels.len()).then(|| self.levels[..=level].join(PATH_SEPARATOR))
    }
}

/// All leaf labels, sorted by path so that ids do not depend on row order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelSet {
    pub tail_max: u32,
    pub labels: Vec<Label>,
    #[serde(skip)]
    by_path: BTreeMap<Vec<String>, u32>,
}

impl LabelSet {
    /// Builds the set from the distinct paths; counts start at zero.
    pub fn from_paths<'a>(paths: impl IntoIterator<Item = &'a [String]>, tail_max: u32) -> Self {
        let distinct: std::collections::BTreeSet<Vec<String>> = paths.into_iter().map(<[String]>::to_vec).collect();
        let labels = distinct
            .into_iter()
            .enumerate()
            .map(|(id, levels)| Label {
                id: id as u32,
                path: levels.join(PATH_SEPARATOR),
                levels,
                train_count: 0,
                valid_count: 0,
                test_count: 0,
                tail: true,
            })
            .collect();
        Self::from_labels(labels, tail_max)
    }

    /// Rebuilds the set from stored labels, checking that ids are 0..n in order.
    pub fn from_labels(labels: Vec<Label>, tail_max: u32) -> Self {
        let by_path = labels.iter().map(|l| (l.levels.clone(), l.id)).collect();
        LabelSet { tail_max, labels, by_path }
    }

    /// This set with `paths` appended as labels that have no records (ids continue from the
    /// last one): labels added after training, or true labels a model never saw.
    pub fn with_added(&self, paths: &[String]) -> Self {
        let mut labels = self.labels.clone();
        for path in paths {
            let id = labels.len() as u32;
            let levels: Vec<String> = path.split(PATH_SEPARATOR).map(str::to_string).collect();
            labels.push(Label { id, path: path.clone(), levels, train_count: 0, valid_count: 0, test_count: 0, tail: true });
        }
        LabelSet::from_labels(labels, self.tail_max)
    }

    pub fn check(&self) -> Result<(), String> {
        for (i, label) in self.labels.iter().enumerate() {
            if label.id as usize != i {
                return Err(format!("label at position {i} has id {}", label.id));
            }
            if label.levels.is_empty() {
                return Err(format!("label {i} has an empty path"));
            }
            if label.path != label.levels.join(PATH_SEPARATOR) {
                return Err(format!("label {i}: path `{}` does not match its levels", label.path));
            }
        }
        if self.by_path.len() != self.labels.len() {
            return Err("two labels have the same path".into());
        }
        Ok(())
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    pub fn id_of(&self, levels: &[String]) -> Option<u32> {
        self.by_path.get(levels).copied()
    }

    pub fn get(&self, id: u32) -> Option<&Label> {
        self.labels.get(id as usize)
    }

    /// The deepest level any label reaches.
    pub fn max_depth(&self) -> usize {
        self.labels.iter().map(Label::depth).max().unwrap_or(0)
    }

    /// Distinct node names (ancestor paths) at each level L0..Ln.
    pub fn nodes_per_level(&self) -> Vec<usize> {
        (0..self.max_depth())
            .map(|level| {
                self.labels
                    .iter()
                    .filter_map(|l| (level < l.depth()).then(|| &l.levels[..=level]))
                    .collect::<std::collections::BTreeSet<_>>()
                    .len()
            })
            .collect()
    }

    /// Sets the split counts and tail flags from per-label training, validation and test counts.
    pub fn set_counts(&mut self, counts: &[[u32; 3]]) {
        for (label, c) in self.labels.iter_mut().zip(counts) {
            label.train_count = c[0];
            label.valid_count = c[1];
            label.test_count = c[2];
            label.tail = c[0] <= self.tail_max;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(s: &str) -> Vec<String> {
        s.split(" > ").map(str::to_string).collect()
    }

    #[test]
    fn ids_follow_path_order_and_ancestors_derive() {
        let paths = [path("B > x"), path("A > y > z"), path("A > y"), path("B > x")];
        let set = LabelSet::from_paths(paths.iter().map(Vec::as_slice), 25);
        set.check().unwrap();
        assert_eq!(set.len(), 3);
        assert_eq!(set.labels[0].path, "A > y");
        assert_eq!(set.id_of(&path("A > y > z")), Some(1));
        assert_eq!(set.id_of(&path("C")), None);
        let leaf = set.get(1).unwrap();
        assert_eq!(leaf.ancestor(0).as_deref(), Some("A"));
        assert_eq!(leaf.ancestor(1).as_deref(), Some("A > y"));
        assert_eq!(leaf.ancestor(3), None);
        assert_eq!(set.nodes_per_level(), vec![2, 2, 1]);
        assert_eq!(set.max_depth(), 3);
        // The same paths in another order give the same ids.
        let reversed = LabelSet::from_paths(paths.iter().rev().map(Vec::as_slice), 25);
        assert_eq!(reversed.labels.iter().map(|l| &l.path).collect::<Vec<_>>(), set.labels.iter().map(|l| &l.path).collect::<Vec<_>>());
    }

    #[test]
    fn tail_is_at_most_tail_max_training_records() {
        let paths = [path("a"), path("b")];
        let mut set = LabelSet::from_paths(paths.iter().map(Vec::as_slice), 25);
        set.set_counts(&[[25, 3, 3], [26, 0, 0]]);
        assert!(set.labels[0].tail);
        assert!(!set.labels[1].tail);
    }
}
