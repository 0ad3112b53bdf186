//! Runs an experiment's stages in order. Each stage writes `<run>/<stage>/` with its artifact, the
//! resolved config (`config.json`) and `stage.json` (fingerprint of its inputs). A stage whose
//! fingerprint matches the stored one is skipped; `force` and `from` rerun.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use xmc_methods::ExperimentConfig;

use crate::context::{StageContext, StageOutcome};
use crate::stage::StageName;
use crate::stages;

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Rerun every stage.
    pub force: bool,
    /// Rerun this stage and every later one.
    pub from: Option<StageName>,
    /// Continue an interrupted training run from its last checkpoint.
    pub resume: bool,
    /// Rewrite the config's `eval.baseline` file with this run's figures instead of checking them.
    pub update_baseline: bool,
    /// Stop after this stage (`xmc train` stops after `train`).
    pub until: Option<StageName>,
}

#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_dir: PathBuf,
    pub stages: Vec<(StageName, StageOutcome)>,
    /// The baseline check's lines (`eval.baseline`), when the config names one.
    pub baseline: Vec<String>,
}

pub fn run_experiment(cfg: &ExperimentConfig, opts: &RunOptions) -> Result<RunSummary> {
    let run_dir = cfg.run_dir();
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let mut summary = RunSummary { run_dir: run_dir.clone(), stages: Vec::new(), baseline: Vec::new() };
    let mut fingerprints: BTreeMap<StageName, String> = BTreeMap::new();
    for stage in StageName::ALL {
        let forced = opts.force || opts.from.is_some_and(|from| stage >= from);
        if !stages::needed(cfg, stage) {
            summary.stages.push((stage, StageOutcome::NotNeeded));
            continue;
        }
        let ctx = StageContext { cfg, run_dir: &run_dir, forced, upstream: &fingerprints };
        let (outcome, fingerprint) = stages::run(stage, &ctx, opts.resume)?;
        fingerprints.insert(stage, fingerprint);
        summary.stages.push((stage, outcome));
        if opts.until == Some(stage) {
            return Ok(summary);
        }
    }
    if let Some(path) = &cfg.eval.baseline {
        summary.baseline = check_baseline(cfg, path, &run_dir, opts.update_baseline)?;
    } else if opts.update_baseline {
        anyhow::bail!("--update-baseline: the config has no `eval.baseline` file to write");
    }
    Ok(summary)
}

/// Checks the run's metrics against the committed baseline, or rewrites it (`--update-baseline`).
fn check_baseline(cfg: &ExperimentConfig, path: &Path, run_dir: &Path, update: bool) -> Result<Vec<String>> {
    let metrics = xmc_eval::Metrics::load(&run_dir.join(StageName::Eval.as_str()).join(xmc_eval::report::METRICS_FILE))?;
    if update {
        let previous = xmc_eval::Baseline::load(path).ok();
        let tolerance = previous.as_ref().map_or(0.05, |b| b.tolerance);
        let command = format!("cargo xtask experiment <config of `{}`> --update-baseline", cfg.name);
        let mut baseline = xmc_eval::Baseline::from_metrics(&metrics, &command, tolerance);
        baseline.note = previous.map(|b| b.note).unwrap_or_default();
        baseline.save(path)?;
        return Ok(vec![format!("baseline {} rewritten: accuracy {:.4}, macro-F1 {:.4}", path.display(), baseline.accuracy, baseline.macro_f1)]);
    }
    let baseline = xmc_eval::Baseline::load(path)
        .with_context(|| format!("the config's eval.baseline {} (write it with --update-baseline)", path.display()))?;
    Ok(baseline.check(&metrics, path)?)
}

