//! The report stage: the table a person reads (report.md, plots), with the method's own words,
//! the training curve, a composite model's parts and the brand.

use std::collections::BTreeMap;

use anyhow::{Context, Result};

use crate::figures::{Figures, ReportFigures};
use crate::context::{StageContext, StageOutcome};
use crate::record::StageRecord;
use crate::stage::StageName;

use super::predict::COMPONENTS_DIR;

pub(super) fn run(ctx: &StageContext) -> Result<(StageOutcome, String)> {
    let cfg = ctx.cfg;
    let inputs = BTreeMap::from([
        ctx.upstream(StageName::Train),
        ctx.upstream(StageName::Predict),
        ctx.upstream(StageName::Brand),
        ctx.upstream(StageName::Eval),
    ]);
    ctx.run(StageName::Report, &serde_json::json!({ "name": cfg.name }), inputs, |out| {
        let metrics = xmc_eval::Metrics::load(&ctx.dir(StageName::Eval).join(xmc_eval::report::METRICS_FILE))?;
        let report_ctx = report_context(ctx)?;
        let files = xmc_eval::write_report(out, &metrics, &report_ctx)?;
        eprintln!("report: {}", out.with_file_name(StageName::Report.as_str()).join(xmc_eval::report::REPORT_FILE).display());
        Ok(Figures::Report(ReportFigures { files }))
    })
}

fn report_context(ctx: &StageContext) -> Result<xmc_eval::ReportContext> {
    let cfg = ctx.cfg;
    let method = cfg.method().describe(cfg)?;
    let mut facts = Vec::new();
    let train = StageRecord::load(&ctx.dir(StageName::Train)).and_then(|r| r.report.train().cloned()).unwrap_or_default();
    if let Some(p) = train.parameters {
        facts.push(("parameters".into(), p.to_string()));
    }
    if let (Some(best), Some(epochs)) = (train.best_epoch, train.epochs) {
        facts.push(("best epoch".into(), format!("{best} of {epochs}")));
    }
    if let Some(s) = train.train_seconds {
        facts.push(("training time".into(), format!("{:.1} min", s / 60.0)));
    }
    if let (Some(before), Some(after)) = (train.pretrained_valid_accuracy, train.best_valid_accuracy) {
        facts.push(("validation retrieval accuracy (pretrained -> fine-tuned)".into(), format!("{before:.4} -> {after:.4}")));
    }
    if let Some(r) = StageRecord::load(&ctx.dir(StageName::Predict)).and_then(|r| r.report.predict().map(|p| p.records_per_s)) {
        let beam = cfg.method().predict_settings(cfg).beam;
        facts.push(("prediction speed".into(), format!("{r:.0} records/s (beam {beam})")));
    }
    // The T5's epochs, or the contrastive fine-tuning's (valid accuracy: retrieval among all labels).
    let train_dir = ctx.dir(StageName::Train);
    let curve_path = match train_dir.join(xmc_cluster::model::ENCODER_DIR).join("metrics.jsonl") {
        p if p.is_file() => p,
        _ => train_dir.join("metrics.jsonl"),
    };
    let point = |l: &str| -> Result<xmc_eval::EpochPoint> {
        let context = || format!("parsing {}", curve_path.display());
        let e: xmc_train::EpochMetrics = serde_json::from_str(l).with_context(context)?;
        Ok(xmc_eval::EpochPoint { epoch: e.epoch, train_loss: e.train_loss, valid_accuracy: e.valid_accuracy })
    };
    let curve = match std::fs::read_to_string(&curve_path) {
        Ok(text) => text.lines().filter(|l| !l.trim().is_empty()).map(point).collect::<Result<Vec<_>>>()?,
        Err(_) => Vec::new(),
    };
    let choices = xmc_ranker::Choices::load(&train_dir)?.map(|c| ("Settings chosen on the validation split (train stage)".to_string(), c.markdown()));
    let sections = choices.into_iter().chain(components_section(ctx)?).chain(super::brand::section(ctx)).collect();
    Ok(xmc_eval::ReportContext { name: cfg.name.clone(), method, facts, curve, sections })
}

/// The report's comparison of a composite model's parts (a fused run's ranker and generator):
/// accuracy overall and by the true label's training frequency, each part alone and the model.
fn components_section(ctx: &StageContext) -> Result<Option<(String, String)>> {
    let dir = ctx.dir(StageName::Predict);
    let parts_dir = dir.join(COMPONENTS_DIR);
    if !parts_dir.is_dir() {
        return Ok(None);
    }
    let labels = xmc_data::LabelSet::load(&ctx.dir(StageName::Data))?;
    let cfg = xmc_eval::EvalConfig { bootstrap: 0, ..Default::default() };
    let mut table = String::from("| predictions | accuracy | macro-F1 | tail accuracy |");
    let buckets: Vec<String> = xmc_eval::metrics::BUCKETS.iter().map(|b| b.0.to_string()).collect();
    for b in &buckets {
        table.push_str(&format!(" {b} |"));
    }
    table.push_str(&format!("\n|---|---|---|---|{}\n", "---|".repeat(buckets.len())));
    let mut parts: Vec<(String, std::path::PathBuf)> = std::fs::read_dir(&parts_dir)
        .with_context(|| format!("reading {}", parts_dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter_map(|p| Some((format!("{} alone", p.file_name()?.to_str()?.strip_suffix(".jsonl")?), p.clone())))
        .collect();
    parts.sort();
    parts.push((ctx.cfg.method.to_string(), dir.join("predictions.jsonl")));
    for (name, file) in parts {
        let m = xmc_methods::scoring::score_rows(&labels, &xmc_methods::scoring::read_predictions(&file)?, None, &cfg)?;
        let pct = |x: Option<f64>| x.map_or("-".into(), |a| format!("{:.1}", 100.0 * a));
        table.push_str(&format!("| {name} | {} | {} | {} |", pct(Some(m.accuracy)), pct(Some(m.leaf.macro_avg.f1)), pct(m.tail_accuracy)));
        for b in &m.buckets {
            table.push_str(&format!(" {} ({}) |", pct(b.accuracy), b.records));
        }
        table.push('\n');
    }
    Ok(Some(("Components alone and together (test split; buckets: training records of the true label, test records in parentheses)".into(), table)))
}

