//! One module per stage: each computes what its fingerprint covers and runs its crate's
//! function from the upstream artifacts to its own, through [`StageContext::run`].

mod brand;
mod codes;
mod data;
mod embed;
mod eval;
mod predict;
mod report;
mod train;
mod tree;

use anyhow::Result;
use xmc_methods::ExperimentConfig;

use crate::context::{StageContext, StageOutcome};
use crate::stage::StageName;

pub use data::prepare_streaming_with_progress;

/// Whether the config's method reads `stage`'s artifact (directly or through a later stage):
/// the label tree's stages are not run for a method that does not use the tree.
pub fn needed(cfg: &ExperimentConfig, stage: StageName) -> bool {
    cfg.uses_label_tree() || !matches!(stage, StageName::Embed | StageName::Tree | StageName::Codes)
}

/// Runs (or skips, when up to date) one stage.
pub(crate) fn run(stage: StageName, ctx: &StageContext, resume: bool) -> Result<(StageOutcome, String)> {
    match stage {
        StageName::Data => data::run(ctx),
        StageName::Embed => embed::run(ctx),
        StageName::Tree => tree::run(ctx),
        StageName::Codes => codes::run(ctx),
        StageName::Train => train::run(ctx, resume),
        StageName::Predict => predict::run(ctx),
        StageName::Brand => brand::run(ctx),
        StageName::Eval => eval::run(ctx),
        StageName::Report => report::run(ctx),
    }
}
