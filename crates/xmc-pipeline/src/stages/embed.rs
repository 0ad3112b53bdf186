//! The embed stage: each label's vector (sentence encoder and/or PIFA).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::figures::{EmbedFigures, Figures};
use crate::fingerprint::file_sha256;
use crate::context::{StageContext, StageOutcome};
use crate::stage::StageName;

pub(super) fn run(ctx: &StageContext) -> Result<(StageOutcome, String)> {
    let cfg = &ctx.cfg.embed;
    let mut inputs = BTreeMap::from([ctx.upstream(StageName::Data)]);
    let encoder_dir = PathBuf::from(&cfg.encoder_dir);
    if cfg.kind.uses_sentence_encoder() {
        let weights = encoder_dir.join(xmc_model::SentenceEncoder::WEIGHTS);
        let hash = file_sha256(&weights).with_context(|| {
            format!("the sentence encoder is missing from {} (run `cargo xtask fetch-models`)", encoder_dir.display())
        })?;
        inputs.insert("encoder_weights".into(), hash);
    }
    ctx.run(StageName::Embed, cfg, inputs, |out| {
        let data = xmc_data::PreparedData::load(&ctx.dir(StageName::Data))?;
        let encoder = if cfg.kind.uses_sentence_encoder() {
            Some(xmc_model::SentenceEncoder::load(&encoder_dir, &xmc_model::inference_device())?)
        } else {
            None
        };
        let bar = crate::context::progress_bar(data.labels.len() as u64, "embedding labels");
        let started = Instant::now();
        let embeddings = xmc_cluster::embed_labels(&data, cfg, encoder.as_ref(), |n| bar.inc(n as u64))?;
        bar.finish_and_clear();
        let seconds = started.elapsed().as_secs_f64();
        embeddings.save(out)?;
        tracing::info!("embed: {} labels, {} dimensions, {:.1} labels/s", embeddings.labels, embeddings.dim, embeddings.labels as f64 / seconds);
        Ok(Figures::Embed(EmbedFigures { dim: embeddings.dim, labels_per_s: embeddings.labels as f64 / seconds }))
    })
}

