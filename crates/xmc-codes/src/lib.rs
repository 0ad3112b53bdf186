//! Prefix codes for labels: each label's path in the label tree is its code (e.g. `[5, 4, 3]`),
//! and a trie over the codes tells a decoder which tokens may come next so that only real labels
//! are generated. No tensor library here: the decoder asks through an `allowed_next` hook.
//!
//! Status: only the stage's configuration exists yet; codes and the trie land with the label-tree
//! issue.

use serde::{Deserialize, Serialize};

/// The `[codes]` section of an experiment config.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CodesConfig {
    /// Also report how often taxonomy siblings share a code prefix, against a random tree.
    pub coherence_report: bool,
}
