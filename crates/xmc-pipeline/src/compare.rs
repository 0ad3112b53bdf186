//! Side-by-side tables of finished runs, from each stage's `stage.json` report.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::record::StageRecord;
use crate::stage::StageName;

/// A table of runs: one row a run, one column a reported figure.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Comparison {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<String>>,
}

fn render(value: &serde_json::Value) -> String {
    match value {
        serde_json::Value::Number(n) if n.is_f64() => format!("{:.4}", n.as_f64().unwrap_or_default()),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// Compares runs; `labels` gives each run's leading columns (e.g. the swept key's value).
pub fn compare_runs(runs: &[(PathBuf, BTreeMap<String, String>)]) -> Result<Comparison> {
    let mut lead_columns: Vec<String> = Vec::new();
    let mut figure_columns: Vec<(StageName, String)> = Vec::new();
    let mut cells: Vec<BTreeMap<String, String>> = Vec::new();
    for (dir, labels) in runs {
        if !dir.is_dir() {
            anyhow::bail!("{} is not a run folder", dir.display());
        }
        let mut row = labels.clone();
        for key in labels.keys() {
            if !lead_columns.contains(key) {
                lead_columns.push(key.clone());
            }
        }
        row.insert("run".into(), run_name(dir));
        let mut status = "complete".to_string();
        for stage in StageName::ALL {
            let Some(record) = StageRecord::load(&dir.join(stage.as_str())) else {
                status = format!("stopped before {stage}");
                break;
            };
            for (key, value) in record.report.columns() {
                row.insert(format!("{stage}.{key}"), render(&value));
                let column = (stage, key);
                if !figure_columns.contains(&column) {
                    figure_columns.push(column);
                }
            }
        }
        row.insert("status".into(), status);
        cells.push(row);
    }
    figure_columns.sort();
    let mut columns = vec!["run".to_string()];
    columns.extend(lead_columns);
    columns.push("status".into());
    columns.extend(figure_columns.into_iter().map(|(s, k)| format!("{s}.{k}")));
    let rows = cells
        .into_iter()
        .map(|row| columns.iter().map(|c| row.get(c).cloned().unwrap_or_default()).collect())
        .collect();
    Ok(Comparison { columns, rows })
}

fn run_name(dir: &Path) -> String {
    dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| dir.display().to_string())
}

impl Comparison {
    pub fn to_markdown(&self) -> String {
        let escape = |s: &str| s.replace('|', "\\|");
        let mut out = format!("| {} |\n", self.columns.iter().map(|c| escape(c)).collect::<Vec<_>>().join(" | "));
        out.push_str(&format!("|{}\n", "---|".repeat(self.columns.len())));
        for row in &self.rows {
            out.push_str(&format!("| {} |\n", row.iter().map(|c| escape(c)).collect::<Vec<_>>().join(" | ")));
        }
        out
    }

    pub fn to_csv(&self) -> Result<String> {
        let mut writer = csv::Writer::from_writer(Vec::new());
        writer.write_record(&self.columns)?;
        for row in &self.rows {
            writer.write_record(row)?;
        }
        String::from_utf8(writer.into_inner().context("flushing CSV")?).context("CSV is UTF-8")
    }

    /// Writes `<stem>.md` and `<stem>.csv`.
    pub fn save(&self, dir: &Path, stem: &str) -> Result<(PathBuf, PathBuf)> {
        std::fs::create_dir_all(dir)?;
        let (md, csv) = (dir.join(format!("{stem}.md")), dir.join(format!("{stem}.csv")));
        std::fs::write(&md, self.to_markdown()).with_context(|| format!("writing {}", md.display()))?;
        std::fs::write(&csv, self.to_csv()?).with_context(|| format!("writing {}", csv.display()))?;
        Ok((md, csv))
    }
}
