//! Prefix codes for labels: each label's path in the label tree is its code (e.g. `[5, 4, 3]`),
//! and a trie over the codes tells a decoder which tokens may come next so that only real labels
//! are generated. No tensor library here: a decoder asks through the [`PrefixConstraint`] trait.

mod codes;
mod error;
mod tree;
mod trie;

pub use codes::{CODE_STATS_FILE, CODES_FILE, CodeStats, CodesConfig, Coherence, LabelCodes, build_codes, leaf_order};
pub use error::{CodesError, Result};
pub use tree::{Child, LabelTree, TreeNode};
pub use trie::{PrefixConstraint, PrefixTrie};
