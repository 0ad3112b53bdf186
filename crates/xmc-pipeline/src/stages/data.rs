//! The data stage: the dataset's file cleaned, labelled and split (in memory, or streamed in two
//! passes with `data.streaming`).

use std::collections::BTreeMap;

use anyhow::{Context, Result};

use crate::figures::{DataFigures, Figures};
use crate::context::{StageContext, StageOutcome};
use crate::stage::StageName;
use crate::fingerprint::file_sha256;

pub(super) fn run(ctx: &StageContext) -> Result<(StageOutcome, String)> {
    let cfg = ctx.cfg;
    let desc = xmc_data::DatasetDescriptor::load(&cfg.data.dataset)
        .with_context(|| format!("loading dataset descriptor {}", cfg.data.dataset.display()))?;
    let file = desc.resolve_path()?;
    let file_hash = file_sha256(&file).with_context(|| format!("dataset {}", desc.name))?;
    let config = serde_json::json!({ "data": cfg.data, "dataset": desc });
    ctx.run(StageName::Data, &config, BTreeMap::from([("dataset_file".to_string(), file_hash)]), |out| {
        tracing::info!("data: preparing {} from {}", desc.name, file.display());
        let stats = if cfg.data.streaming {
            prepare_streaming_with_progress(&desc, &cfg.data, out)?
        } else {
            let prepared = xmc_data::prepare(&desc, &cfg.data)?;
            prepared.save(out)?;
            prepared.stats
        };
        eprint!("{}", stats.summary());
        Ok(data_figures(&stats))
    })
}

fn data_figures(stats: &xmc_data::DataStats) -> Figures {
    Figures::Data(DataFigures {
        records: stats.records,
        skipped: stats.skipped,
        labels: stats.labels,
        tail_labels: stats.tail_labels,
        tail_label_share: stats.tail_label_share,
        train: stats.train_records,
        valid: stats.valid_records,
        test: stats.test_records,
    })
}


/// The streaming data stage with a spinner per pass (the number of records is not known before
/// the first pass ends).
pub fn prepare_streaming_with_progress(desc: &xmc_data::DatasetDescriptor, cfg: &xmc_data::DataConfig, out: &std::path::Path) -> Result<xmc_data::DataStats> {
    let bar = indicatif::ProgressBar::new_spinner();
    bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("valid template"));
    let prepared = xmc_data::prepare_streaming(desc, cfg, out, &Default::default(), |pass, records| {
        let what = if pass == 1 { "reading and cleaning" } else { "writing" };
        bar.set_message(format!("pass {pass} of 2, {what}: {records} records"));
        bar.tick();
    })
    .with_context(|| format!("preparing {} into {}", desc.name, out.display()))?;
    bar.finish_and_clear();
    Ok(prepared.stats)
}
