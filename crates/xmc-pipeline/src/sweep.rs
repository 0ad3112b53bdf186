//! Sweeps: one base experiment config and list-valued keys, expanded into one run per combination
//! of values, with one comparison table at the end.
//!
//! ```toml
//! name = "sweep_branching"
//! base = "hkmeans_t5.toml"        # relative to this file
//! [vary]
//! "tree.branching" = [2, 4, 6, 8, 16, 32]
//! ```

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::compare::{Comparison, compare_runs};
use xmc_methods::ExperimentConfig;
use crate::runner::{RunOptions, RunSummary, run_experiment};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    pub name: String,
    pub base: PathBuf,
    pub vary: BTreeMap<String, Vec<toml::Value>>,
}

/// One expanded run: its name and the (key, value) overrides that make it.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepPoint {
    pub name: String,
    pub overrides: Vec<(String, toml::Value)>,
}

fn value_label(value: &toml::Value) -> String {
    match value {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl SweepConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut cfg: SweepConfig = toml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if cfg.base.is_relative() {
            cfg.base = path.parent().unwrap_or(Path::new(".")).join(&cfg.base);
        }
        if cfg.vary.is_empty() || cfg.vary.values().any(Vec::is_empty) {
            bail!("{}: `[vary]` must list at least one key with at least one value", path.display());
        }
        Ok(cfg)
    }

    /// Every combination of the varied values, in key order.
    pub fn points(&self) -> Vec<SweepPoint> {
        let mut points = vec![SweepPoint { name: String::new(), overrides: Vec::new() }];
        for (key, values) in &self.vary {
            let short = key.rsplit('.').next().unwrap_or(key);
            points = points
                .into_iter()
                .flat_map(|p| {
                    values.iter().map(move |v| {
                        let mut next = p.clone();
                        let part = format!("{short}-{}", value_label(v)).replace(|c: char| !c.is_ascii_alphanumeric() && c != '-' && c != '.', "_");
                        next.name = if next.name.is_empty() { part } else { format!("{}_{part}", next.name) };
                        next.overrides.push((key.clone(), v.clone()));
                        next
                    })
                })
                .collect();
        }
        points
    }
}

/// Runs every point of the sweep (all validated before the first runs) and writes
/// `<output_dir>/<sweep>/comparison.{md,csv}`.
pub fn run_sweep(sweep: &SweepConfig, opts: &RunOptions) -> Result<(Comparison, Vec<RunSummary>, PathBuf)> {
    let base = ExperimentConfig::load(&sweep.base, &[])?;
    let sweep_dir = base.output_dir.join(&sweep.name);
    let mut configs = Vec::new();
    for point in sweep.points() {
        let mut overrides = point.overrides.clone();
        overrides.push(("name".into(), toml::Value::String(point.name.clone())));
        overrides.push(("output_dir".into(), toml::Value::String(sweep_dir.display().to_string())));
        let cfg = ExperimentConfig::load(&sweep.base, &overrides).with_context(|| format!("sweep point {}", point.name))?;
        configs.push((point, cfg));
    }
    let mut summaries = Vec::new();
    let mut runs = Vec::new();
    for (point, cfg) in &configs {
        tracing::info!("sweep {}: run {}", sweep.name, point.name);
        summaries.push(run_experiment(cfg, opts)?);
        let labels = point.overrides.iter().map(|(k, v)| (k.clone(), value_label(v))).collect();
        runs.push((cfg.run_dir(), labels));
    }
    let table = compare_runs(&runs)?;
    table.save(&sweep_dir, "comparison")?;
    Ok((table, summaries, sweep_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn points_are_the_cartesian_product_in_key_order() {
        let cfg: SweepConfig = toml::from_str(
            "name = \"s\"\nbase = \"b.toml\"\n[vary]\n\"tree.branching\" = [2, 4]\n\"model.mode\" = [\"plain\", \"hierarchical\"]\n",
        )
        .unwrap();
        let names: Vec<String> = cfg.points().into_iter().map(|p| p.name).collect();
        assert_eq!(names, vec!["mode-plain_branching-2", "mode-plain_branching-4", "mode-hierarchical_branching-2", "mode-hierarchical_branching-4"]);
        assert_eq!(cfg.points()[1].overrides[1], ("tree.branching".to_string(), toml::Value::Integer(4)));
    }
}
