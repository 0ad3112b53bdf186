//! The `[embed]` and `[tree]` sections of an experiment config.

use serde::{Deserialize, Serialize};

/// What a label's embedding is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EmbeddingKind {
    /// The pretrained sentence encoder on the label's text.
    Sentence,
    /// Positive instance feature aggregation: the mean TF-IDF of the label's training inputs.
    Pifa,
    /// Both, concatenated.
    SentencePifa,
}

/// The text embedded for a label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LabelText {
    /// The leaf's own name.
    Leaf,
    /// The full path `A > B > C`.
    Path,
}

/// The `[embed]` section of an experiment config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EmbedConfig {
    pub kind: EmbeddingKind,
    pub text: LabelText,
    /// Folder of the sentence encoder (`model.safetensors`, `config.json`, `tokenizer.json`).
    pub encoder_dir: String,
    pub batch_size: usize,
    /// PIFA keeps the most frequent words of the training inputs, at most this many.
    pub pifa_max_features: usize,
}

impl Default for EmbedConfig {
    fn default() -> Self {
        EmbedConfig {
            kind: EmbeddingKind::Sentence,
            text: LabelText::Path,
            encoder_dir: "models/all-MiniLM-L6-v2".into(),
            batch_size: 64,
            pifa_max_features: 4096,
        }
    }
}

impl EmbeddingKind {
    pub fn uses_sentence_encoder(self) -> bool {
        self != EmbeddingKind::Pifa
    }
}

impl EmbedConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.encoder_dir.trim().is_empty() && self.kind != EmbeddingKind::Pifa {
            return Err("`embed.encoder_dir` must name the sentence encoder's folder".into());
        }
        if self.batch_size == 0 || self.pifa_max_features == 0 {
            return Err("`embed.batch_size` and `embed.pifa_max_features` must be at least 1".into());
        }
        Ok(())
    }
}

/// The `[tree]` section of an experiment config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TreeConfig {
    /// `kmeans` (recursive k-means over the label vectors) or `taxonomy` (the category
    /// hierarchy itself; branching and the k-means settings are then unused).
    pub kind: TreeKind,
    /// Children per node (k); a node with fewer than k labels is not split further.
    pub branching: usize,
    /// Give each child floor(n/k) or ceil(n/k) labels (balanced k-means, as PECOS).
    pub balanced: bool,
    pub max_iterations: u64,
    /// k-means restarts per node; the best (lowest inertia) is kept.
    pub runs: usize,
    /// k-means stops when the centroids move less than this (Euclidean, all centroids together).
    pub tolerance: f32,
    pub seed: u64,
}

/// How the label tree is built.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TreeKind {
    #[default]
    Kmeans,
    Taxonomy,
}

impl Default for TreeConfig {
    fn default() -> Self {
        TreeConfig { kind: TreeKind::Kmeans, branching: 6, balanced: false, max_iterations: 100, runs: 1, tolerance: 1e-3, seed: 42 }
    }
}

impl TreeConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.branching < 2 {
            return Err(format!("`tree.branching` = {} must be at least 2", self.branching));
        }
        if !(self.tolerance > 0.0) {
            return Err(format!("`tree.tolerance` = {} must be positive", self.tolerance));
        }
        if self.max_iterations == 0 || self.runs == 0 {
            return Err("`tree.max_iterations` and `tree.runs` must be at least 1".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn branching_below_two_is_rejected_by_name() {
        let err = TreeConfig { branching: 1, ..TreeConfig::default() }.validate().unwrap_err();
        assert!(err.contains("tree.branching"));
        TreeConfig::default().validate().unwrap();
    }
}
