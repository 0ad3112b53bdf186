//! The `[ranker]` section of an experiment config.

use serde::{Deserialize, Serialize};

use crate::tfidf::TfidfConfig;

/// Which features the linear scorers see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FeatureKind {
    /// TF-IDF of word and character n-grams.
    Sparse,
    /// The sentence encoder's embedding of the record's input.
    Dense,
    /// Both side by side (the XR-Transformer recipe), each block unit length times its weight.
    Both,
}

impl FeatureKind {
    pub fn uses_sparse(self) -> bool {
        self != FeatureKind::Dense
    }

    pub fn uses_dense(self) -> bool {
        self != FeatureKind::Sparse
    }
}

/// Which records train the scorers of a node's children.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Negatives {
    /// Records whose label is under the node (teacher-forced negatives: a record is a negative
    /// for the siblings of the child on its path).
    Siblings,
    /// Those, plus records the trained upper levels' beam brings to the node although their
    /// label is elsewhere (matcher-aware hard negatives): negatives for every child.
    SiblingsAndBeam,
}

/// How node scores combine along a path.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathScore {
    /// Product of exp(-max(0, 1 - s)³) over the path (PECOS's `l3-hinge`).
    L3Hinge,
    /// Product of the logistic sigmoid over the path.
    Sigmoid,
}

impl PathScore {
    pub fn transform(self, s: f32) -> f32 {
        match self {
            PathScore::L3Hinge => (-(1.0 - s).max(0.0).powi(3)).exp(),
            PathScore::Sigmoid => 1.0 / (1.0 + (-s).exp()),
        }
    }
}

/// How the node scores along a path become the label's score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathCombine {
    /// The product of the transformed node scores (PECOS, whose trees have leaves at one depth).
    Product,
    /// Their geometric mean: labels at different depths of xmc's tree (a cluster of one label
    /// hangs where it was split off) compete on the mean confidence per level, not on how few
    /// levels they pass.
    GeometricMean,
}

/// The loss on the margin.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Loss {
    /// Squared hinge, max(0, 1 - y wᵀx)² (liblinear solver 1, PECOS's default).
    SquaredHinge,
    /// Hinge, max(0, 1 - y wᵀx) (liblinear solver 3).
    Hinge,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RankerConfig {
    pub features: FeatureKind,
    pub tfidf: TfidfConfig,
    /// Scale of the dense block against the unit-length sparse block (`features = "both"`).
    pub dense_weight: f32,
    pub loss: Loss,
    /// Cost of a positive example (liblinear's C for the positive class).
    pub c_pos: f32,
    /// Cost of a negative example.
    pub c_neg: f32,
    /// Passes of dual coordinate descent at most.
    pub max_iter: usize,
    /// Stopping tolerance on the projected gradient.
    pub eps: f32,
    /// The constant feature appended to every record.
    pub bias: f32,
    /// Weights smaller than this in absolute value are dropped after training (PECOS: 0.1).
    pub threshold: f32,
    pub negatives: Negatives,
    /// The beam over tree levels at prediction: nodes kept per level.
    pub beam: usize,
    /// The beam that brings hard negatives at training: a record is a negative at the nodes
    /// (other than its own) among the best `train_beam` of each level. Each unit adds about one
    /// pass over the records per level to training.
    pub train_beam: usize,
    pub top_k: usize,
    pub path_score: PathScore,
    pub path_combine: PathCombine,
    /// Branching factors of further trees over the same label vectors, each k-means run with its
    /// own seed (e.g. `[16, 16]`: two more trees like the main one): a ranker
    /// is trained over each, and a label's score is the mean of its path scores over all the
    /// trees (0 from a tree whose beam did not reach it), as PECOS averages an ensemble. Empty:
    /// the tree stage's tree alone.
    pub ensemble: Vec<usize>,
    /// With the encoder's classifier (`contrastive.loss = "labels"`): how many of the
    /// classifier's own most probable labels join the ranker's candidates where it is consulted,
    /// scored by the ranker along their paths whether or not its beam reached them. The fit keeps
    /// them only if, cross-fitted on the validation split, they beat the ranker's candidates
    /// alone. 0: the ranker's candidates alone.
    pub classifier_candidates: usize,
    /// With the encoder's classifier: also try the label's parent's evidence beside its own
    /// (the log of the classifier's probability summed over the labels under the same taxonomy
    /// parent), its weight fitted on the validation split and kept only if it wins there
    /// cross-fitted. Left out of the serialised config when off (old fingerprints stay valid).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub classifier_parent: bool,
    /// With the encoder's classifier: also try the label's own text as evidence beside its
    /// learnt vector (the cosine of the record and of the label text, both embedded by the
    /// fine-tuned encoder), its weight fitted on the validation split and kept only if it wins
    /// there cross-fitted. Left out of the serialised config when off.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub classifier_label_text: bool,
    /// At most this many validation records (a seeded sample) are embedded for the encoder's
    /// classifier, fit its weights and gate, and score `[choose]`'s settings in the train stage
    /// (0 = all): each record is scored against every label several times over, which at a
    /// catalogue's scale would cost more than the rankers. Left out of the serialised config at 0.
    #[serde(skip_serializing_if = "is_zero")]
    pub max_valid_records: usize,
    pub seed: u64,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Default for RankerConfig {
    fn default() -> Self {
        RankerConfig {
            features: FeatureKind::Sparse,
            tfidf: TfidfConfig::default(),
            dense_weight: 1.0,
            loss: Loss::SquaredHinge,
            c_pos: 1.0,
            c_neg: 1.0,
            max_iter: 20,
            eps: 0.1,
            bias: 1.0,
            threshold: 0.1,
            negatives: Negatives::SiblingsAndBeam,
            beam: 10,
            train_beam: 10,
            top_k: 10,
            path_score: PathScore::L3Hinge,
            path_combine: PathCombine::GeometricMean,
            ensemble: Vec::new(),
            classifier_candidates: 0,
            classifier_parent: false,
            classifier_label_text: false,
            max_valid_records: 0,
            seed: 42,
        }
    }
}

impl RankerConfig {
    pub fn validate(&self) -> Result<(), String> {
        self.tfidf.validate()?;
        let positive = |name: &str, v: f32| {
            if v.is_finite() && v > 0.0 { Ok(()) } else { Err(format!("`ranker.{name}` = {v} must be a positive number")) }
        };
        positive("c_pos", self.c_pos)?;
        positive("c_neg", self.c_neg)?;
        positive("eps", self.eps)?;
        positive("dense_weight", self.dense_weight)?;
        if !(self.bias.is_finite() && self.bias >= 0.0) {
            return Err(format!("`ranker.bias` = {} must be 0 or more", self.bias));
        }
        if !(self.threshold.is_finite() && self.threshold >= 0.0) {
            return Err(format!("`ranker.threshold` = {} must be 0 or more", self.threshold));
        }
        if self.ensemble.len() > 64 {
            return Err(format!("`ranker.ensemble` holds {} trees: at most 64", self.ensemble.len()));
        }
        if let Some(k) = self.ensemble.iter().find(|&&k| k < 2) {
            return Err(format!("`ranker.ensemble` holds branching factor {k}: each must be at least 2"));
        }
        if self.max_iter == 0 {
            return Err("`ranker.max_iter` must be at least 1".into());
        }
        if self.beam == 0 || self.top_k == 0 || self.train_beam == 0 {
            return Err(format!(
                "`ranker.beam` = {}, `ranker.train_beam` = {} and `ranker.top_k` = {} must be at least 1",
                self.beam, self.train_beam, self.top_k
            ));
        }
        Ok(())
    }

}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate_and_bad_values_name_the_key() {
        RankerConfig::default().validate().unwrap();
        let bad = RankerConfig { c_pos: 0.0, ..RankerConfig::default() };
        assert!(bad.validate().unwrap_err().contains("ranker.c_pos"));
        let bad = RankerConfig { beam: 0, ..RankerConfig::default() };
        assert!(bad.validate().unwrap_err().contains("ranker.beam"));
        let bad = RankerConfig { ensemble: vec![16, 1], ..RankerConfig::default() };
        assert!(bad.validate().unwrap_err().contains("ranker.ensemble"));
    }

    #[test]
    fn l3_hinge_is_one_past_the_margin_and_falls_below_it() {
        assert_eq!(PathScore::L3Hinge.transform(1.5), 1.0);
        assert!((PathScore::L3Hinge.transform(0.0) - (-1f32).exp()).abs() < 1e-7);
        assert!(PathScore::L3Hinge.transform(-1.0) < PathScore::L3Hinge.transform(0.0));
    }
}
