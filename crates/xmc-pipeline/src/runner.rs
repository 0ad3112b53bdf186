//! Runs an experiment's stages in order. Each stage writes `<run>/<stage>/` with its artifact, the
//! resolved config (`config.json`) and `stage.json` (fingerprint of its inputs). A stage whose
//! fingerprint matches the stored one is skipped; `force` and `from` rerun.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use xmc_methods::ExperimentConfig;

use crate::figures::Figures;
use crate::fingerprint::value_sha256;
use crate::stage::{ARTIFACT_VERSION, CONFIG_FILE, StageName, StageRecord};
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

#[derive(Debug, Clone, PartialEq)]
pub enum StageOutcome {
    Ran,
    UpToDate,
    /// The config's method does not read this stage's artifact ([`stages::needed`]).
    NotNeeded,
}

#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_dir: PathBuf,
    pub stages: Vec<(StageName, StageOutcome)>,
    /// The baseline check's lines (`eval.baseline`), when the config names one.
    pub baseline: Vec<String>,
}

/// What a stage computes before deciding whether to run: its fingerprint and the inputs behind it.
struct Plan {
    fingerprint: String,
    inputs: BTreeMap<String, String>,
}

impl Plan {
    fn new(stage: StageName, config: &impl serde::Serialize, inputs: BTreeMap<String, String>) -> Self {
        Plan::with_code_version(stage, stage.code_version(), config, inputs)
    }

    /// The fingerprint covers the stage, the artifact format, the stage's code version, its
    /// config and its inputs' hashes.
    fn with_code_version(stage: StageName, code_version: u32, config: &impl serde::Serialize, mut inputs: BTreeMap<String, String>) -> Self {
        inputs.insert("config".into(), value_sha256(config));
        inputs.insert("code_version".into(), code_version.to_string());
        let fingerprint = value_sha256(&(stage, ARTIFACT_VERSION, &inputs));
        Plan { fingerprint, inputs }
    }
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

/// What every stage runner gets: the config, where the run lives, whether to rerun regardless,
/// and the fingerprints of the stages before it.
pub(crate) struct StageContext<'a> {
    pub cfg: &'a ExperimentConfig,
    pub run_dir: &'a Path,
    forced: bool,
    upstream: &'a BTreeMap<StageName, String>,
}

impl StageContext<'_> {
    pub fn dir(&self, stage: StageName) -> PathBuf {
        self.run_dir.join(stage.as_str())
    }

    pub fn upstream(&self, stage: StageName) -> (String, String) {
        (format!("{stage}_stage"), self.upstream.get(&stage).cloned().expect("stages run in order"))
    }

    /// Skips the stage if its stored fingerprint matches, otherwise runs `work` and commits it.
    pub fn run(
        &self,
        stage: StageName,
        config: &impl serde::Serialize,
        inputs: BTreeMap<String, String>,
        work: impl FnOnce(&Path) -> Result<Figures>,
    ) -> Result<(StageOutcome, String)> {
        self.run_keeping(stage, config, inputs, false, work)
    }

    /// [`StageContext::run`], optionally keeping what an interrupted run left in `<stage>.partial`.
    pub fn run_keeping(
        &self,
        stage: StageName,
        config: &impl serde::Serialize,
        inputs: BTreeMap<String, String>,
        keep_partial: bool,
        work: impl FnOnce(&Path) -> Result<Figures>,
    ) -> Result<(StageOutcome, String)> {
        let plan = Plan::new(stage, config, inputs);
        let fingerprint = plan.fingerprint.clone();
        let dir = self.dir(stage);
        if !self.forced && up_to_date(&dir, &plan) {
            tracing::info!("{stage}: inputs unchanged, skipped ({})", dir.display());
            return Ok((StageOutcome::UpToDate, fingerprint));
        }
        tracing::info!("{stage}: running");
        commit_stage(self.run_dir, stage, plan, config, keep_partial, work)?;
        Ok((StageOutcome::Ran, fingerprint))
    }
}

/// Runs `work` into a fresh `<stage>.partial` folder and swaps it in only when it succeeded, so a
/// failed or killed stage never leaves a half-written folder that looks finished.
fn commit_stage(
    run_dir: &Path,
    stage: StageName,
    plan: Plan,
    config: &impl serde::Serialize,
    keep_partial: bool,
    work: impl FnOnce(&Path) -> Result<Figures>,
) -> Result<()> {
    let final_dir = run_dir.join(stage.as_str());
    let partial = run_dir.join(format!("{stage}.partial"));
    if partial.exists() && !keep_partial {
        std::fs::remove_dir_all(&partial).with_context(|| format!("removing {}", partial.display()))?;
    }
    std::fs::create_dir_all(&partial)?;
    let started = Instant::now();
    let report = work(&partial)?;
    std::fs::write(partial.join(CONFIG_FILE), serde_json::to_string_pretty(config)? + "\n")?;
    StageRecord {
        stage,
        artifact_version: ARTIFACT_VERSION,
        xmc_version: env!("CARGO_PKG_VERSION").into(),
        fingerprint: plan.fingerprint,
        inputs: plan.inputs,
        seconds: started.elapsed().as_secs_f64(),
        report,
    }
    .save(&partial)?;
    if final_dir.exists() {
        std::fs::remove_dir_all(&final_dir).with_context(|| format!("removing {}", final_dir.display()))?;
    }
    std::fs::rename(&partial, &final_dir).with_context(|| format!("moving {} into place", partial.display()))?;
    Ok(())
}

fn up_to_date(dir: &Path, plan: &Plan) -> bool {
    StageRecord::load(dir).is_some_and(|r| r.fingerprint == plan.fingerprint)
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

pub(crate) fn progress_bar(len: u64, message: &'static str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(message);
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_changes_with_the_code_version_config_and_inputs() {
        let inputs = BTreeMap::from([("data_stage".to_string(), "abc".to_string())]);
        let base = Plan::with_code_version(StageName::Brand, 1, &serde_json::json!({}), inputs.clone()).fingerprint;
        assert_eq!(base, Plan::with_code_version(StageName::Brand, 1, &serde_json::json!({}), inputs.clone()).fingerprint);
        assert_ne!(base, Plan::with_code_version(StageName::Brand, 2, &serde_json::json!({}), inputs.clone()).fingerprint);
        assert_ne!(base, Plan::with_code_version(StageName::Brand, 1, &serde_json::json!({"k": 1}), inputs).fingerprint);
        let other = BTreeMap::from([("data_stage".to_string(), "abd".to_string())]);
        assert_ne!(base, Plan::with_code_version(StageName::Brand, 1, &serde_json::json!({}), other).fingerprint);
        assert_eq!(Plan::new(StageName::Brand, &serde_json::json!({}), BTreeMap::new()).inputs["code_version"], StageName::Brand.code_version().to_string());
    }
}
