//! Predicting with a trained model folder: the predict stage and `xmc predict`.

use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use xmc_data::LabelSet;
use xmc_model::{DecodeConfig, Hypothesis};
use xmc_train::{Batching, TrainedModel};

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

/// Records encoded and decoded together.
pub const PREDICT_BATCH: usize = 32;

/// The decoder settings for a trained model (the fast decoder: see [`DecodeConfig`]).
pub fn decode_config(trained: &TrainedModel, beam_width: usize, top_k: usize) -> DecodeConfig {
    trained.task.decode_config(beam_width, top_k)
}

/// Beam search over `texts` (already rendered inputs).
pub fn predict_texts(trained: &TrainedModel, texts: &[&str], beam_width: usize, top_k: usize, on_batch: impl FnMut(usize)) -> Result<Vec<Vec<Hypothesis>>> {
    predict_texts_with(trained, texts, &decode_config(trained, beam_width, top_k), Batching::new(PREDICT_BATCH), on_batch)
}

/// [`predict_texts`] with explicit decoder settings, batch size and threads.
pub fn predict_texts_with(
    trained: &TrainedModel,
    texts: &[&str],
    decode: &DecodeConfig,
    batching: Batching,
    on_batch: impl FnMut(usize),
) -> Result<Vec<Vec<Hypothesis>>> {
    Ok(xmc_train::predict_inputs(&trained.model, &trained.task, texts, trained.meta.train.max_input_tokens, decode, batching, on_batch)?)
}

/// Writes JSON lines, or CSV (`id,path,score,top_k` with top_k as a JSON array) for a `.csv` path.
pub fn write_predictions(path: &Path, rows: &[PredictionRow]) -> Result<()> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut out = std::io::BufWriter::new(file);
    if path.extension().is_some_and(|e| e == "csv") {
        let mut writer = csv::Writer::from_writer(out);
        writer.write_record(["id", "path", "score", "top_k"])?;
        for row in rows {
            writer.write_record([
                row.id.clone(),
                row.path.clone().unwrap_or_default(),
                row.score.map(|s| format!("{s:.6}")).unwrap_or_default(),
                serde_json::to_string(&row.top_k)?,
            ])?;
        }
        writer.flush()?;
    } else {
        for row in rows {
            writeln!(out, "{}", serde_json::to_string(row)?)?;
        }
        out.flush()?;
    }
    Ok(())
}
