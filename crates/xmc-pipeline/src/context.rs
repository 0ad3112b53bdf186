//! What a stage runs in: the config, the run's folder, the upstream fingerprints; the plan (its
//! fingerprint: the stage, the artifact format, its code version, its config and its inputs'
//! hashes), the skip when the stored fingerprint matches, and the commit of a finished stage
//! (run into `<stage>.partial`, renamed into place with `stage.json` written last).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};
use xmc_methods::ExperimentConfig;

use crate::figures::Figures;
use crate::fingerprint::value_sha256;
use crate::record::{CONFIG_FILE, StageRecord};
use crate::stage::{ARTIFACT_VERSION, StageName};

#[derive(Debug, Clone, PartialEq)]
pub enum StageOutcome {
    Ran,
    UpToDate,
    /// The config's method does not read this stage's artifact ([`crate::stages::needed`]).
    NotNeeded,
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

/// What every stage runner gets: the config, where the run lives, whether to rerun regardless,
/// and the fingerprints of the stages before it.
pub(crate) struct StageContext<'a> {
    pub cfg: &'a ExperimentConfig,
    pub run_dir: &'a Path,
    pub forced: bool,
    pub upstream: &'a BTreeMap<StageName, String>,
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
    anyhow::ensure!(report.stage() == stage, "the {stage} stage returned the {} stage's figures", report.stage());
    StageRecord {
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

pub(crate) use xmc_methods::progress_bar;

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
