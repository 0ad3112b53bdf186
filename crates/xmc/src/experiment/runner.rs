//! Runs an experiment's stages in order. Each stage writes `<run>/<stage>/` with its artifact, the
//! resolved config (`config.json`) and `stage.json` (fingerprint of its inputs). A stage whose
//! fingerprint matches the stored one is skipped; `force` and `from` rerun.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result};

use super::config::ExperimentConfig;
use super::stage::{ARTIFACT_VERSION, CONFIG_FILE, StageName, StageRecord};
use crate::fingerprint::{file_sha256, value_sha256};

#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Rerun every stage.
    pub force: bool,
    /// Rerun this stage and every later one.
    pub from: Option<StageName>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum StageOutcome {
    Ran,
    UpToDate,
    /// The stage is not built yet; the run stopped here.
    NotBuilt,
}

#[derive(Debug, Clone)]
pub struct RunSummary {
    pub run_dir: PathBuf,
    pub stages: Vec<(StageName, StageOutcome)>,
}

impl RunSummary {
    /// The first stage the run could not execute, if any.
    pub fn stopped_at(&self) -> Option<StageName> {
        self.stages.iter().find(|(_, o)| *o == StageOutcome::NotBuilt).map(|(s, _)| *s)
    }
}

/// What a stage computes before deciding whether to run: its fingerprint and the inputs behind it.
struct Plan {
    fingerprint: String,
    inputs: BTreeMap<String, String>,
}

impl Plan {
    fn new(stage: StageName, config: &impl serde::Serialize, mut inputs: BTreeMap<String, String>) -> Self {
        inputs.insert("config".into(), value_sha256(config));
        let fingerprint = value_sha256(&(stage, ARTIFACT_VERSION, &inputs));
        Plan { fingerprint, inputs }
    }
}

pub fn run_experiment(cfg: &ExperimentConfig, opts: &RunOptions) -> Result<RunSummary> {
    let run_dir = cfg.run_dir();
    std::fs::create_dir_all(&run_dir).with_context(|| format!("creating {}", run_dir.display()))?;
    let mut summary = RunSummary { run_dir: run_dir.clone(), stages: Vec::new() };
    for stage in StageName::ALL {
        let forced = opts.force || opts.from.is_some_and(|from| stage >= from);
        let outcome = match stage {
            StageName::Data => run_data(cfg, &run_dir, forced)?,
            _ => {
                tracing::warn!(
                    "stage `{stage}` is not built yet (it comes with {}); the run stops here. \
                     Finished stages are in {}",
                    stage.planned_in(),
                    run_dir.display()
                );
                StageOutcome::NotBuilt
            }
        };
        let stop = outcome == StageOutcome::NotBuilt;
        summary.stages.push((stage, outcome));
        if stop {
            break;
        }
    }
    Ok(summary)
}

/// Runs `work` into a fresh `<stage>.partial` folder and swaps it in only when it succeeded, so a
/// failed or killed stage never leaves a half-written folder that looks finished.
fn commit_stage(
    run_dir: &Path,
    stage: StageName,
    plan: Plan,
    config: &impl serde::Serialize,
    work: impl FnOnce(&Path) -> Result<BTreeMap<String, serde_json::Value>>,
) -> Result<()> {
    let final_dir = run_dir.join(stage.as_str());
    let partial = run_dir.join(format!("{stage}.partial"));
    if partial.exists() {
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

fn run_data(cfg: &ExperimentConfig, run_dir: &Path, forced: bool) -> Result<StageOutcome> {
    let desc = xmc_data::DatasetDescriptor::load(&cfg.data.dataset)
        .with_context(|| format!("loading dataset descriptor {}", cfg.data.dataset.display()))?;
    let file = desc.resolve_path()?;
    let file_hash = file_sha256(&file).with_context(|| format!("dataset {}", desc.name))?;
    let config = serde_json::json!({ "data": cfg.data, "dataset": desc });
    let plan = Plan::new(StageName::Data, &config, BTreeMap::from([("dataset_file".to_string(), file_hash)]));
    let dir = run_dir.join(StageName::Data.as_str());
    if !forced && up_to_date(&dir, &plan) {
        tracing::info!("data: inputs unchanged, skipped ({})", dir.display());
        return Ok(StageOutcome::UpToDate);
    }
    tracing::info!("data: preparing {} from {}", desc.name, file.display());
    commit_stage(run_dir, StageName::Data, plan, &config, |out| {
        let prepared = xmc_data::prepare(&desc, &cfg.data)?;
        prepared.save(out)?;
        eprint!("{}", prepared.stats.summary());
        Ok(data_report(&prepared.stats))
    })?;
    Ok(StageOutcome::Ran)
}

fn data_report(stats: &xmc_data::DataStats) -> BTreeMap<String, serde_json::Value> {
    use serde_json::json;
    BTreeMap::from([
        ("records".into(), json!(stats.records)),
        ("skipped".into(), json!(stats.skipped)),
        ("labels".into(), json!(stats.labels)),
        ("tail_labels".into(), json!(stats.tail_labels)),
        ("tail_label_share".into(), json!(stats.tail_label_share)),
        ("train".into(), json!(stats.train_records)),
        ("valid".into(), json!(stats.valid_records)),
        ("test".into(), json!(stats.test_records)),
    ])
}
