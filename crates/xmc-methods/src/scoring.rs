//! Scoring prediction rows against their true labels (the eval stage, the report's component
//! tables and `xmc evaluate`), and reading prediction files back.

use std::collections::HashMap;
use std::path::Path;

use anyhow::{Context, Result};
use xmc_data::LabelSet;
use xmc_eval::{EvalConfig, Metrics, Scored};

use crate::rows::PredictionRow;

/// The dataset descriptor the train stage copies into the model folder, so that `xmc evaluate`
/// cleans a new file with the rules the model was trained under.
pub const DATASET_FILE: &str = "dataset.toml";

/// The model's labels plus, appended with a training count of 0, every true path it never saw, so
/// that such records count as errors and are reported as unseen.
pub struct EvalLabels {
    pub labels: LabelSet,
    by_path: HashMap<String, u32>,
}

impl EvalLabels {
    pub fn new(model_labels: &LabelSet) -> Self {
        let by_path = model_labels.labels.iter().map(|l| (l.path.clone(), l.id)).collect();
        EvalLabels { labels: model_labels.clone(), by_path }
    }

    /// The id of a path, adding it as an unseen label when the model does not know it.
    pub fn id_or_insert(&mut self, path: &str) -> u32 {
        if let Some(&id) = self.by_path.get(path) {
            return id;
        }
        let id = self.labels.len() as u32;
        self.labels = self.labels.with_added(&[path.to_string()]);
        self.by_path.insert(path.to_string(), id);
        id
    }

    /// The id of a predicted path: always a label the model knows.
    pub fn predicted_id(&self, path: &str) -> Result<u32> {
        self.by_path.get(path).copied().with_context(|| format!("predicted path `{path}` is not one of the model's labels"))
    }
}

/// Metrics of prediction rows that carry their true label.
pub fn score_rows(model_labels: &LabelSet, rows: &[PredictionRow], codes: Option<&[Vec<u32>]>, cfg: &EvalConfig) -> Result<Metrics> {
    let mut labels = EvalLabels::new(model_labels);
    let scored = rows
        .iter()
        .map(|row| {
            let truth = row.label.as_deref().with_context(|| format!("prediction for `{}` has no true label", row.id))?;
            let truth = labels.id_or_insert(truth);
            let ranked = row.top_k.iter().map(|(p, _)| labels.predicted_id(p)).collect::<Result<Vec<u32>>>()?;
            Ok(Scored { truth, ranked })
        })
        .collect::<Result<Vec<_>>>()?;
    let mut metrics = xmc_eval::evaluate(&labels.labels, &scored, codes, cfg);
    // The top-1 confidence against correctness, when every row has a score.
    let top1: Option<Vec<(f64, bool)>> =
        rows.iter().zip(&scored).map(|(row, s)| row.score.map(|c| (c as f64, s.ranked.first() == Some(&s.truth)))).collect();
    metrics.calibration = top1.filter(|t| !t.is_empty()).map(|t| xmc_eval::calibration::reliability(&t, xmc_eval::calibration::BINS));
    Ok(metrics)
}

/// Reads predictions as [`crate::output::PredictionWriter`] wrote them, in the format the
/// extension names (JSON lines when it names none).
pub fn read_predictions(path: &Path) -> Result<Vec<PredictionRow>> {
    match crate::output::OutputFormat::from_path(path) {
        Some(crate::output::OutputFormat::Csv) => read_csv_predictions(path),
        Some(crate::output::OutputFormat::Parquet) => read_parquet_predictions(path),
        _ => read_jsonl_predictions(path),
    }
}

fn read_jsonl_predictions(path: &Path) -> Result<Vec<PredictionRow>> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).with_context(|| format!("{}:{}: not a prediction row", path.display(), i + 1)))
        .collect()
}

fn read_csv_predictions(path: &Path) -> Result<Vec<PredictionRow>> {
    let mut reader = csv::Reader::from_path(path).with_context(|| format!("reading {}", path.display()))?;
    let mut rows = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.with_context(|| format!("{}:{line}: not a CSV record", path.display()))?;
        let field = |k: usize| record.get(k).with_context(|| format!("{}:{line}: expected 4 fields (id,path,score,top_k)", path.display()));
        let score = field(2)?;
        rows.push(PredictionRow {
            id: field(0)?.to_string(),
            path: Some(field(1)?).filter(|p| !p.is_empty()).map(str::to_string),
            score: if score.is_empty() { None } else { Some(score.parse().with_context(|| format!("{}:{line}: score `{score}`", path.display()))?) },
            top_k: serde_json::from_str(field(3)?).with_context(|| format!("{}:{line}: top_k is not a JSON list of [path, score]", path.display()))?,
            label: None,
            correct: None,
        });
    }
    Ok(rows)
}

fn read_parquet_predictions(path: &Path) -> Result<Vec<PredictionRow>> {
    use polars::prelude::{ParquetReader, SerReader};
    let file = std::fs::File::open(path).with_context(|| format!("reading {}", path.display()))?;
    let df = ParquetReader::new(file).finish().with_context(|| format!("reading {}", path.display()))?;
    let column = |name: &str| df.column(name).with_context(|| format!("{}: no column `{name}`", path.display()));
    let (ids, paths, scores) = (column("id")?.str()?, column("path")?.str()?, column("score")?.f32()?);
    let (top_labels, top_scores) = (column("labels")?.list()?, column("scores")?.list()?);
    let mut rows = Vec::with_capacity(df.height());
    for i in 0..df.height() {
        let labels = top_labels.get_as_series(i).map(|s| s.str().map(|c| c.iter().map(|p| p.unwrap_or_default().to_string()).collect::<Vec<_>>())).transpose()?;
        let top = top_scores.get_as_series(i).map(|s| s.f32().map(|c| c.iter().map(|v| v.unwrap_or(f32::NAN)).collect::<Vec<_>>())).transpose()?;
        rows.push(PredictionRow {
            id: ids.get(i).unwrap_or_default().to_string(),
            path: paths.get(i).map(str::to_string),
            score: scores.get(i),
            top_k: labels.unwrap_or_default().into_iter().zip(top.unwrap_or_default()).collect(),
            label: None,
            correct: None,
        });
    }
    Ok(rows)
}
