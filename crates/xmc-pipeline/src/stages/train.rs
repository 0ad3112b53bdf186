//! The train stage: the config's method trains its model folder ([`xmc_methods::Method::train`]);
//! the stage fingerprints what the method's plan says it reads, and fits the folder's
//! confidence calibration on the validation split.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use xmc_methods::TrainContext;

use crate::figures::Figures;
use crate::fingerprint::file_sha256;
use crate::context::{StageContext, StageOutcome};
use crate::stage::StageName;

pub(super) fn run(ctx: &StageContext, resume: bool) -> Result<(StageOutcome, String)> {
    let method = ctx.cfg.method();
    let plan = method.train_plan(ctx.cfg)?;
    let mut inputs: BTreeMap<String, String> = plan.upstream.iter().map(|&u| ctx.upstream(StageName::from(u))).collect();
    for file in &plan.files {
        inputs.insert(file.key.clone(), file_sha256(&file.path).with_context(|| file.missing.clone())?);
    }
    ctx.run_keeping(StageName::Train, &plan.config, inputs, resume, |out| {
        let train = TrainContext { cfg: ctx.cfg, run_dir: ctx.run_dir, out, resume };
        let figures = method.train(&train)?;
        // Every method's confidences, fitted on the validation split of the data it trained on.
        let data = xmc_data::PreparedData::load(&ctx.dir(StageName::Data))?;
        let calibration = xmc_methods::predictor::calibrate_folder(out, &data)?;
        Ok(Figures::Train(figures.with_calibration(&calibration)))
    })
}
