//! The experiment runner: a config's stages in order (data, embed, tree, codes, train, predict,
//! brand, eval, report), each writing `<run>/<stage>/` with its artifact, its resolved config and
//! `stage.json` (the fingerprint of its inputs); a stage whose fingerprint did not change is
//! skipped. [`runner`] holds the plan, the cache and the records; [`stages`] one module per
//! stage; the train stage asks the config's method ([`xmc_methods::Method`]) and the predict
//! stage goes through the [`xmc_methods::Predictor`]. Also sweeps, comparison tables and
//! [`train_folder`] (`xmc train`: a config's stages up to a model folder).

mod compare;
mod context;
pub mod figures;
pub mod fingerprint;
mod folder;
mod record;
mod runner;
mod stage;
pub mod stages;
mod sweep;

pub use compare::{Comparison, compare_runs};
pub use folder::{RECOMMENDED_CONFIG, TrainFolder, train_folder};
pub use context::StageOutcome;
pub use record::{CONFIG_FILE, STAGE_FILE, StageRecord};
pub use runner::{RunOptions, RunSummary, run_experiment};
pub use stage::{ARTIFACT_VERSION, StageName};
pub use sweep::{SweepConfig, SweepPoint, run_sweep};
pub use xmc_methods::config::{ENV_PREFIX, ExperimentConfig, parse_overrides};

