//! The experiment runner: configs, stages with cached artifacts, sweeps and comparison tables.

mod compare;
mod config;
pub mod figures;
mod runner;
mod stage;
mod sweep;

pub use compare::{Comparison, compare_runs};
pub use config::{ENV_PREFIX, ExperimentConfig, Method};
pub use runner::{RunOptions, RunSummary, StageOutcome, run_experiment};
pub use stage::{ARTIFACT_VERSION, CONFIG_FILE, STAGE_FILE, StageName, StageRecord};
pub use sweep::{SweepConfig, SweepPoint, run_sweep};
