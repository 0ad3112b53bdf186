//! Predicting with a trained model folder: the predict stage and `xmc predict`.

use anyhow::Result;
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

pub use crate::output::write_predictions;

/// Settings of a streamed prediction.
#[derive(Debug, Clone)]
pub struct StreamPredict {
    pub beam: usize,
    pub top_k: usize,
    pub stream: xmc_data::StreamOptions,
}

/// Where rows skipped while predicting go: a JSON lines file (line, kind, reason), or standard
/// error when no file is named.
pub struct RejectsWriter {
    path: Option<std::path::PathBuf>,
    file: Option<std::io::BufWriter<std::fs::File>>,
    written: u64,
}

impl RejectsWriter {
    /// Rejects to `path` (created on the first rejected row; a file left there by an earlier
    /// run is removed now), or to standard error for `None`.
    pub fn new(path: Option<std::path::PathBuf>) -> Result<Self> {
        if let Some(path) = &path
            && path.is_file()
        {
            std::fs::remove_file(path).map_err(|e| anyhow::anyhow!("removing the old rejects file {}: {e}", path.display()))?;
        }
        Ok(RejectsWriter { path, file: None, written: 0 })
    }

    pub fn write(&mut self, row: &xmc_data::SkippedRow) -> Result<()> {
        use std::io::Write;
        self.written += 1;
        let Some(path) = &self.path else {
            eprintln!("skipped line {}: {}: {}", row.line, row.kind, row.reason);
            return Ok(());
        };
        if self.file.is_none() {
            let file = std::fs::File::create(path).map_err(|e| anyhow::anyhow!("creating the rejects file {}: {e}", path.display()))?;
            self.file = Some(std::io::BufWriter::new(file));
        }
        let out = self.file.as_mut().expect("opened above");
        serde_json::to_writer(&mut *out, row)?;
        out.write_all(b"\n")?;
        Ok(())
    }

    /// Flushes; the file's path when rows were written to one.
    pub fn finish(self) -> Result<Option<std::path::PathBuf>> {
        use std::io::Write;
        match self.file {
            Some(mut f) => {
                f.flush()?;
                Ok(self.path)
            }
            None => Ok(None),
        }
    }
}

/// Reads `source` chunk by chunk, predicts each chunk and writes it before reading the next:
/// memory holds one chunk of records and predictions, whatever the input's size. Output rows
/// are in input order. The writer is finished (a file gets its final name) only when every row
/// was read and written.
pub fn predict_stream(
    predictor: &crate::predictor::Predictor,
    desc: &xmc_data::DatasetDescriptor,
    source: &xmc_data::InputSource,
    options: &StreamPredict,
    mut writer: crate::output::PredictionWriter,
    rejects: &mut RejectsWriter,
) -> Result<xmc_data::StreamSummary> {
    // A file shows the reader's bar over its bytes; standard input (length unknown) a count.
    let counter = match source {
        xmc_data::InputSource::Stdin => {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {pos} records predicted ({per_sec})").expect("valid template"));
            bar
        }
        xmc_data::InputSource::File(_) => indicatif::ProgressBar::hidden(),
    };
    let summary = xmc_data::stream_records(
        desc,
        source,
        &options.stream,
        |bad| rejects.write(&bad),
        |chunk| {
            let texts: Vec<String> = chunk.iter().map(|r| predictor.template().render(r)).collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let ranked = predictor.predict_texts(&refs, options.beam, options.top_k, |_| {})?;
            let rows: Vec<PredictionRow> =
                chunk.iter().zip(&ranked).map(|(r, ranked)| PredictionRow::from_ranked(&r.id, None, ranked, predictor.labels())).collect();
            counter.inc(rows.len() as u64);
            writer.write(&rows)
        },
    )?;
    counter.finish_and_clear();
    writer.finish()?;
    Ok(summary)
}
