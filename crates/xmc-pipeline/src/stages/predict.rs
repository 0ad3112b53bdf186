//! The predict stage: the test split through the [`Predictor`] of the train stage's folder (with
//! `search.new_labels` placed first, where the method takes new labels), and what each part of a
//! composite model answers alone (`components/<part>.jsonl`, for the report's comparison).

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::{Context, Result};
use xmc_methods::{PredictionRow, Predictor};

use crate::figures::{Figures, PredictFigures};
use crate::fingerprint::file_sha256;
use crate::context::{StageContext, StageOutcome, progress_bar};
use crate::stage::StageName;

/// `predict/new_labels.json`: the labels of `search.new_labels`, with the ids and codes they got.
pub(crate) const NEW_LABELS_FILE: &str = "new_labels.json";
/// Each part's own predictions of the test split, beside the model's.
pub(crate) const COMPONENTS_DIR: &str = "components";

pub(super) fn run(ctx: &StageContext) -> Result<(StageOutcome, String)> {
    let cfg = ctx.cfg;
    let settings = cfg.method().predict_settings(cfg);
    let (beam, top_k) = (settings.beam, settings.top_k);
    let config = serde_json::json!({ "beam_width": beam, "top_k": top_k, "confidence": "calibrated" });
    let mut inputs = BTreeMap::from([ctx.upstream(StageName::Data), ctx.upstream(StageName::Train)]);
    // The config refuses new labels for a method that cannot take them.
    let new_labels = cfg.search.new_labels.as_ref();
    if let Some(file) = new_labels {
        inputs.insert("new_labels".into(), file_sha256(file).with_context(|| format!("the new-labels file {}", file.display()))?);
    }
    ctx.run(StageName::Predict, &config, inputs, |out| {
        let data = xmc_data::PreparedData::load(&ctx.dir(StageName::Data))?;
        let mut predictor = Predictor::load(&ctx.dir(StageName::Train))?;
        // Leaves added after training: placed by nearest centroid, predictable at once.
        if let Some(file) = new_labels {
            let paths = xmc_cluster::read_new_labels(file, predictor.labels())?;
            let added = predictor.add_labels(&paths)?;
            std::fs::write(out.join(NEW_LABELS_FILE), serde_json::to_string_pretty(&added)? + "\n")?;
            eprintln!("predict: {} new labels placed in the tree", added.len());
        }
        let test: Vec<&xmc_data::PreparedRecord> = data.split(xmc_data::Split::Test).collect();
        let texts: Vec<&str> = test.iter().map(|r| r.input.as_str()).collect();
        let bar = progress_bar(texts.len() as u64, "predicting");
        let started = Instant::now();
        let predictions = predictor.predict_texts(&texts, beam, top_k, |n| bar.inc(n as u64))?;
        let seconds = started.elapsed().as_secs_f64();
        bar.finish_and_clear();
        let rows_of = |ranked: &[Vec<(u32, f32)>]| test_rows(&test, ranked, predictor.labels(), top_k);
        let rows = rows_of(&predictions);
        xmc_methods::output::write_predictions(&out.join("predictions.jsonl"), &rows)?;
        for (part, ranked) in predictor.components(&texts)? {
            xmc_methods::output::write_predictions(&out.join(COMPONENTS_DIR).join(format!("{part}.jsonl")), &rows_of(&ranked))?;
        }
        let correct = rows.iter().filter(|r| r.correct == Some(true)).count();
        let accuracy = correct as f64 / rows.len().max(1) as f64;
        eprintln!("predict: test accuracy (top 1) {accuracy:.4} on {} records, {:.0} records/s", rows.len(), rows.len() as f64 / seconds);
        Ok(Figures::Predict(PredictFigures { test_accuracy: accuracy, records_per_s: rows.len() as f64 / seconds }))
    })
}

/// Prediction rows of the test records: each record's ranked labels (at most `top_k`) and its truth.
fn test_rows(test: &[&xmc_data::PreparedRecord], ranked: &[Vec<(u32, f32)>], labels: &xmc_data::LabelSet, top_k: usize) -> Vec<PredictionRow> {
    test.iter()
        .zip(ranked)
        .map(|(r, ranked)| PredictionRow::from_ranked(&r.record.id, Some(r.label), &ranked[..ranked.len().min(top_k)], labels))
        .collect()
}
