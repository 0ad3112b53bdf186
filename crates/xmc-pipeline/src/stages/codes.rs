//! The codes stage: each label's path in the tree as its prefix code, with the tree's statistics.

use std::collections::BTreeMap;

use anyhow::Result;

use crate::figures::{CodesFigures, Figures};
use crate::context::{StageContext, StageOutcome};
use crate::stage::StageName;

pub(super) fn run(ctx: &StageContext) -> Result<(StageOutcome, String)> {
    let cfg = &ctx.cfg.codes;
    let inputs = BTreeMap::from([ctx.upstream(StageName::Data), ctx.upstream(StageName::Tree)]);
    ctx.run(StageName::Codes, cfg, inputs, |out| {
        let labels = xmc_data::LabelSet::load(&ctx.dir(StageName::Data))?;
        let tree = xmc_cluster::load_tree(&ctx.dir(StageName::Tree))?;
        let codes = xmc_codes::build_codes(&tree, &labels, cfg)?;
        codes.save(out)?;
        let s = &codes.stats;
        let c = &s.coherence;
        eprintln!(
            "codes: {} labels, code length mean {:.2} / max {}; taxonomy siblings sharing a code prefix: \
             length 1 {:.1}% (random tree {:.1}%), length 2 {:.1}% (random {:.1}%)",
            s.labels,
            s.mean_code_length,
            s.max_code_length,
            100.0 * c.prefix_1,
            100.0 * c.random_prefix_1,
            100.0 * c.prefix_2,
            100.0 * c.random_prefix_2
        );
        Ok(Figures::Codes(CodesFigures {
            mean_code_length: s.mean_code_length,
            max_code_length: s.max_code_length,
            coherence_1: c.prefix_1,
            coherence_2: c.prefix_2,
            random_coherence_1: c.random_prefix_1,
            random_coherence_2: c.random_prefix_2,
        }))
    })
}

