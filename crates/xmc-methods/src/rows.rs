//! The one path from label ids to output rows: every front door (the predict stage, `xmc
//! predict`, `xmc serve`, Python) writes what [`PredictionRow::from_ranked`] makes.

use serde::{Deserialize, Serialize};
use xmc_data::LabelSet;
use xmc_model::Hypothesis;

/// One output row: the record's id, the best label and the top k with scores.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictionRow {
    pub id: String,
    pub path: Option<String>,
    pub score: Option<f32>,
    pub top_k: Vec<(String, f32)>,
    /// The record's true label, when known (test split).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub correct: Option<bool>,
}

impl PredictionRow {
    pub fn new(id: &str, truth: Option<u32>, hyps: &[Hypothesis], labels: &LabelSet) -> Self {
        let ranked: Vec<(u32, f32)> = hyps.iter().map(|h| (h.label, h.score)).collect();
        PredictionRow::from_ranked(id, truth, &ranked, labels)
    }

    /// A row from ranked (label id, score) pairs, best first.
    pub fn from_ranked(id: &str, truth: Option<u32>, ranked: &[(u32, f32)], labels: &LabelSet) -> Self {
        let path = |l: u32| labels.get(l).map(|l| l.path.clone()).unwrap_or_default();
        PredictionRow {
            id: id.to_string(),
            path: ranked.first().map(|&(l, _)| path(l)),
            score: ranked.first().map(|&(_, s)| s),
            top_k: ranked.iter().map(|&(l, s)| (path(l), s)).collect(),
            label: truth.map(path),
            correct: truth.map(|t| ranked.first().is_some_and(|&(l, _)| l == t)),
        }
    }
}
