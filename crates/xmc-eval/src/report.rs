//! `report/`: `metrics.json`, `report.md` (the table a person reads at a glance) and PNG plots.

use std::fmt::Write;
use std::path::Path;

use crate::plots::{EpochPoint, bar_chart, reliability_diagram, training_curves};
use crate::{EvalError, Metrics, Result};

pub const METRICS_FILE: &str = "metrics.json";
pub const REPORT_FILE: &str = "report.md";

/// What the report says besides the metrics.
#[derive(Debug, Clone, Default)]
pub struct ReportContext {
    pub name: String,
    /// e.g. "hierarchical codes (k = 6)".
    pub method: String,
    /// Extra `(name, value)` facts: train time, prediction speed, parameters.
    pub facts: Vec<(String, String)>,
    pub curve: Vec<EpochPoint>,
    /// Further `(title, markdown)` sections, e.g. the brand target's scores.
    pub sections: Vec<(String, String)>,
}

/// Writes the report folder; returns the files written.
pub fn write_report(dir: &Path, metrics: &Metrics, ctx: &ReportContext) -> Result<Vec<String>> {
    std::fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, e))?;
    metrics.save(&dir.join(METRICS_FILE))?;
    let mut files = vec![METRICS_FILE.to_string(), REPORT_FILE.to_string()];

    let buckets: Vec<String> = metrics.buckets.iter().map(|b| format!("{} ({})", b.bucket, b.records)).collect();
    let values = metrics.buckets.iter().map(|b| b.accuracy).collect();
    bar_chart(&dir.join("accuracy_by_frequency.png"), "Accuracy by training frequency of the label", "training records per label (test records)", &buckets, &[(ctx.name.clone(), values)])?;
    files.push("accuracy_by_frequency.png".into());

    let levels: Vec<String> = metrics.levels.iter().map(|l| format!("L{}", l.level)).collect();
    let series = vec![
        ("accuracy".to_string(), metrics.levels.iter().map(|l| Some(l.accuracy)).collect()),
        ("macro-F1".to_string(), metrics.levels.iter().map(|l| Some(l.macro_f1)).collect()),
    ];
    bar_chart(&dir.join("per_level.png"), "Per-level scores (ancestors of the predicted leaf)", "taxonomy level", &levels, &series)?;
    files.push("per_level.png".into());

    if let Some(r) = &metrics.calibration {
        reliability_diagram(&dir.join("reliability.png"), "Reliability of the top-1 confidence (test split)", r)?;
        files.push("reliability.png".into());
    }
    if !ctx.curve.is_empty() {
        training_curves(&dir.join("training.png"), &format!("Training: {}", ctx.name), &ctx.curve)?;
        files.push("training.png".into());
    }
    let md = render_markdown(metrics, ctx, &files);
    std::fs::write(dir.join(REPORT_FILE), md).map_err(|e| EvalError::io(dir.join(REPORT_FILE), e))?;
    Ok(files)
}

fn pct(x: f64) -> String {
    format!("{:.1}", 100.0 * x)
}

fn ci(c: Option<[f64; 2]>) -> String {
    c.map(|[lo, hi]| format!(" ({}-{})", pct(lo), pct(hi))).unwrap_or_default()
}

fn opt(x: Option<f64>) -> String {
    x.map_or_else(|| "-".into(), pct)
}

/// The report as Markdown: scores in percent.
pub fn render_markdown(m: &Metrics, ctx: &ReportContext, files: &[String]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# {}\n", ctx.name);
    if !ctx.method.is_empty() {
        let _ = writeln!(s, "Method: {}. ", ctx.method);
    }
    let _ = writeln!(s, "{} test records, {} distinct true labels. Scores in %; 95% bootstrap intervals in parentheses.\n", m.records, m.labels);
    let _ = writeln!(s, "| metric | value |\n|---|---|");
    let mut row = |k: &str, v: String| {
        let _ = writeln!(s, "| {k} | {v} |");
    };
    row("accuracy (top 1)", format!("{}{}", pct(m.accuracy), ci(m.accuracy_ci)));
    row("macro F1", format!("{}{}", pct(m.leaf.macro_avg.f1), ci(m.macro_f1_ci)));
    row("macro precision / recall", format!("{} / {}", pct(m.leaf.macro_avg.precision), pct(m.leaf.macro_avg.recall)));
    row("micro F1", pct(m.leaf.micro_avg.f1));
    row("weighted F1", pct(m.leaf.weighted_avg.f1));
    row(&format!("tail accuracy (<= {} training records; {} test records)", m.tail_max, m.tail_records), opt(m.tail_accuracy));
    row("head accuracy", opt(m.head_accuracy));
    row("hierarchical P / R / F1", format!("{} / {} / {}", pct(m.hierarchical.precision), pct(m.hierarchical.recall), pct(m.hierarchical.f1)));
    for a in &m.at_k {
        row(&format!("P@{k} / nDCG@{k} / PSP@{k}", k = a.k), format!("{} / {} / {}", pct(a.precision), pct(a.ndcg), pct(a.psp)));
    }
    if let Some(r) = &m.calibration {
        row(
            "expected calibration error of the top-1 confidence (15 bins)",
            format!("{:.3} (mean confidence {}, accuracy {})", r.ece, pct(r.mean_confidence), pct(r.accuracy)),
        );
    }
    if m.unseen.records > 0 {
        row("records with a label unseen in training (errors)", format!("{} ({} labels)", m.unseen.records, m.unseen.labels.len()));
    }
    for (k, v) in &ctx.facts {
        row(k, v.clone());
    }

    let _ = writeln!(s, "\n## By training frequency of the true label\n\n| training records | test records | labels | accuracy |\n|---|---|---|---|");
    for b in &m.buckets {
        let _ = writeln!(s, "| {} | {} | {} | {} |", b.bucket, b.records, b.labels, opt(b.accuracy));
    }
    let _ = writeln!(s, "\n## By level\n\n| level | records | accuracy | macro F1 |\n|---|---|---|---|");
    for l in &m.levels {
        let _ = writeln!(s, "| L{} | {} | {} | {} |", l.level, l.records, pct(l.accuracy), pct(l.macro_f1));
    }
    if let Some(prefix) = &m.code_prefix {
        let _ = writeln!(s, "\n## Code prefix credit\n\n| code symbols | records | prefix correct |\n|---|---|---|");
        for p in prefix {
            let _ = writeln!(s, "| {} | {} | {} |", p.depth, p.records, pct(p.accuracy));
        }
    }
    if !m.unseen.labels.is_empty() {
        let _ = writeln!(s, "\n## Labels never seen in training\n\n| label | test records |\n|---|---|");
        for (label, n) in m.unseen.labels.iter().take(20) {
            let _ = writeln!(s, "| {label} | {n} |");
        }
        if m.unseen.labels.len() > 20 {
            let _ = writeln!(s, "| ... {} more (all in metrics.json) | |", m.unseen.labels.len() - 20);
        }
    }
    for (title, body) in &ctx.sections {
        let _ = writeln!(s, "\n## {title}\n\n{body}");
    }
    let plots: Vec<&String> = files.iter().filter(|f| f.ends_with(".png")).collect();
    if !plots.is_empty() {
        let _ = writeln!(s);
        for p in plots {
            let _ = writeln!(s, "![{p}]({p})");
        }
    }
    s
}
