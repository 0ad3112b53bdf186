//! The figures a finished stage records in `stage.json` (its `report`): one struct per stage,
//! written by the stage and read back typed by the report, `xmc train`, the comparison tables and
//! the benches. On disk each is a flat JSON object (the field names are the comparison tables'
//! column names); which struct it is follows from the record's `stage`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::stage::StageName;
pub use xmc_methods::TrainFigures;

/// One stage's figures. In `stage.json` they are the record's `report`, typed by its `stage`
/// (serde's adjacently tagged form, flattened into the record).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "stage", content = "report", rename_all = "lowercase")]
pub enum Figures {
    Data(DataFigures),
    Embed(EmbedFigures),
    Tree(TreeFigures),
    Codes(CodesFigures),
    Train(TrainFigures),
    Predict(PredictFigures),
    Brand(BrandFigures),
    Eval(EvalFigures),
    Report(ReportFigures),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataFigures {
    pub records: u64,
    pub skipped: u64,
    pub labels: usize,
    pub tail_labels: usize,
    pub tail_label_share: f64,
    /// Records in each split.
    pub train: u64,
    pub valid: u64,
    pub test: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmbedFigures {
    pub dim: usize,
    pub labels_per_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TreeFigures {
    pub internal_nodes: usize,
    pub build_seconds: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CodesFigures {
    pub mean_code_length: f64,
    pub max_code_length: usize,
    /// Share of taxonomy siblings sharing a code prefix of length 1 and 2, and the same for a
    /// random tree of the same shape.
    pub coherence_1: f64,
    pub coherence_2: f64,
    pub random_coherence_1: f64,
    pub random_coherence_2: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PredictFigures {
    /// Top-1 accuracy on the test split.
    pub test_accuracy: f64,
    pub records_per_s: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrandFigures {
    pub accuracy: f64,
    pub macro_f1: f64,
    pub weighted_f1: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalFigures {
    pub accuracy: f64,
    pub macro_f1: f64,
    pub micro_f1: f64,
    pub weighted_f1: f64,
    pub tail_accuracy: Option<f64>,
    pub hierarchical_f1: f64,
    /// `p@k` and `psp@k` for each k, `l<level>_accuracy` for each level: columns for the
    /// comparison tables (the full metrics are in `metrics.json`).
    #[serde(flatten)]
    pub columns: BTreeMap<String, f64>,
}

impl EvalFigures {
    pub fn of(m: &xmc_eval::Metrics) -> Self {
        let mut columns = BTreeMap::new();
        for a in &m.at_k {
            columns.insert(format!("p@{}", a.k), a.precision);
            columns.insert(format!("psp@{}", a.k), a.psp);
        }
        for l in &m.levels {
            columns.insert(format!("l{}_accuracy", l.level), l.accuracy);
        }
        EvalFigures {
            accuracy: m.accuracy,
            macro_f1: m.leaf.macro_avg.f1,
            micro_f1: m.leaf.micro_avg.f1,
            weighted_f1: m.leaf.weighted_avg.f1,
            tail_accuracy: m.tail_accuracy,
            hierarchical_f1: m.hierarchical.f1,
            columns,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportFigures {
    /// The files the report wrote.
    pub files: Vec<String>,
}

impl Figures {
    /// Reads the figures of `stage` from the JSON object in `stage.json`.
    pub fn read(stage: StageName, value: serde_json::Value) -> serde_json::Result<Self> {
        serde_json::from_value(serde_json::json!({ "stage": stage, "report": value }))
    }

    /// The stage these figures belong to.
    pub fn stage(&self) -> StageName {
        match self {
            Figures::Data(_) => StageName::Data,
            Figures::Embed(_) => StageName::Embed,
            Figures::Tree(_) => StageName::Tree,
            Figures::Codes(_) => StageName::Codes,
            Figures::Train(_) => StageName::Train,
            Figures::Predict(_) => StageName::Predict,
            Figures::Brand(_) => StageName::Brand,
            Figures::Eval(_) => StageName::Eval,
            Figures::Report(_) => StageName::Report,
        }
    }

    /// Every figure as (column name, value), for tables that show all of them.
    pub fn columns(&self) -> Vec<(String, serde_json::Value)> {
        match serde_json::to_value(self).map(|mut v| v["report"].take()) {
            Ok(serde_json::Value::Object(map)) => map.into_iter().filter(|(_, v)| !v.is_null()).collect(),
            _ => Vec::new(),
        }
    }

    pub fn train(&self) -> Option<&TrainFigures> {
        match self {
            Figures::Train(f) => Some(f),
            _ => None,
        }
    }

    pub fn predict(&self) -> Option<&PredictFigures> {
        match self {
            Figures::Predict(f) => Some(f),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn figures_round_trip_as_their_stage_and_empty_fields_are_not_written() {
        let train = Figures::Train(TrainFigures { best_valid_accuracy: Some(0.5), epochs: Some(3), ..Default::default() });
        let json = serde_json::to_value(&train).unwrap();
        assert_eq!(json, serde_json::json!({ "stage": "train", "report": { "best_valid_accuracy": 0.5, "epochs": 3 } }));
        assert_eq!(Figures::read(StageName::Train, json["report"].clone()).unwrap(), train);
        let eval = Figures::Eval(EvalFigures {
            accuracy: 0.7,
            macro_f1: 0.4,
            micro_f1: 0.7,
            weighted_f1: 0.6,
            tail_accuracy: None,
            hierarchical_f1: 0.8,
            columns: BTreeMap::from([("p@1".to_string(), 0.7)]),
        });
        let json = serde_json::to_value(&eval).unwrap()["report"].take();
        assert_eq!(json["p@1"], 0.7, "table columns are flat");
        assert_eq!(Figures::read(StageName::Eval, json).unwrap(), eval);
        assert!(eval.columns().iter().all(|(k, _)| k != "tail_accuracy"), "empty figures are not columns");
    }

    #[test]
    fn a_record_of_the_wrong_shape_is_an_error_not_a_guess() {
        let err = Figures::read(StageName::Predict, serde_json::json!({ "records_per_s": 3.0 })).unwrap_err();
        assert!(err.to_string().contains("test_accuracy"), "{err}");
        assert!(Figures::read(StageName::Train, serde_json::json!({ "epochs": "three" })).is_err());
    }
}
