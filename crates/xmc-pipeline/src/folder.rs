//! `xmc train` (and Python's `xmc.train`): a config's stages up to `train` in a work folder beside
//! the output, whose train stage becomes the model folder; the work folder is removed.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use xmc_methods::ExperimentConfig;

use crate::runner::{RunOptions, run_experiment};
use crate::record::StageRecord;
use crate::stage::StageName;

/// The recommended recipe (`configs/recommended.toml`), which `xmc train` without a config uses.
pub const RECOMMENDED_CONFIG: &str = include_str!("../../../configs/recommended.toml");
/// Its file name in the work folder.
const RECOMMENDED_FILE: &str = "recommended.toml";

/// What `xmc train` is asked.
#[derive(Debug, Clone)]
pub struct TrainFolder {
    /// The experiment config; `None`: the recommended recipe ([`RECOMMENDED_CONFIG`]).
    pub config: Option<PathBuf>,
    /// Another dataset descriptor than the config's.
    pub dataset: Option<PathBuf>,
    /// Another input file than the descriptor's (same columns and rules).
    pub input: Option<PathBuf>,
    /// The model folder to write (must not exist).
    pub output: PathBuf,
    /// Config overrides (`KEY=VALUE`).
    pub set: Vec<String>,
}

/// Trains `args.config` into the model folder `args.output`; returns the train stage's record.
pub fn train_folder(args: &TrainFolder) -> Result<Option<StageRecord>> {
    if args.output.exists() {
        bail!("{} already exists: name a new model folder", args.output.display());
    }
    if args.config.is_none() && args.dataset.is_none() {
        bail!("the recommended recipe (no --config) trains on your catalogue: name its dataset descriptor with --dataset");
    }
    let parent = args.output.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    let work = tempfile::Builder::new().prefix(".xmc-train-").tempdir_in(parent).with_context(|| format!("a work folder in {}", parent.display()))?;
    let config = match &args.config {
        Some(path) => path.clone(),
        None => {
            let path = work.path().join(RECOMMENDED_FILE);
            std::fs::write(&path, RECOMMENDED_CONFIG).with_context(|| format!("writing {}", path.display()))?;
            path
        }
    };
    let mut cfg = ExperimentConfig::load(&config, &crate::parse_overrides(&args.set)?)?;
    if let Some(d) = &args.dataset {
        cfg.data.dataset = d.clone();
    }
    if let Some(input) = &args.input {
        let mut desc = xmc_data::DatasetDescriptor::load(&cfg.data.dataset)?;
        let input = std::fs::canonicalize(input).with_context(|| format!("the input {}", input.display()))?;
        if desc.format.is_none() {
            desc.format = xmc_data::FileFormat::from_path(&desc.path);
        }
        if let Some(f) = xmc_data::FileFormat::from_path(&input) {
            desc.format = Some(f);
        }
        desc.path = input;
        let path = work.path().join("dataset.toml");
        std::fs::write(&path, toml::to_string(&desc)?).with_context(|| format!("writing {}", path.display()))?;
        cfg.data.dataset = path;
    }
    cfg.output_dir = work.path().to_path_buf();
    let summary = run_experiment(&cfg, &RunOptions { until: Some(StageName::Train), ..RunOptions::default() })?;
    let record = StageRecord::load(&summary.run_dir.join(StageName::Train.as_str()));
    std::fs::rename(summary.run_dir.join(StageName::Train.as_str()), &args.output)
        .with_context(|| format!("moving the model folder to {}", args.output.display()))?;
    if let Some(valid) = record.as_ref().and_then(|r| r.report.train()).and_then(|t| t.best_valid_accuracy) {
        eprintln!("validation accuracy {valid:.4}");
    }
    eprintln!("wrote the model folder {} (method {})", args.output.display(), cfg.method);
    Ok(record)
}
