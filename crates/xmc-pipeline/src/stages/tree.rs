//! The tree stage: the label tree by recursive k-means over the label vectors, or the taxonomy.

use std::collections::BTreeMap;
use std::time::Instant;

use anyhow::Result;

use crate::figures::{Figures, TreeFigures};
use crate::context::{StageContext, StageOutcome};
use crate::stage::StageName;

pub(super) fn run(ctx: &StageContext) -> Result<(StageOutcome, String)> {
    let cfg = &ctx.cfg.tree;
    let upstream = match cfg.kind {
        xmc_cluster::TreeKind::Kmeans => ctx.upstream(StageName::Embed),
        xmc_cluster::TreeKind::Taxonomy => ctx.upstream(StageName::Data),
    };
    ctx.run(StageName::Tree, cfg, BTreeMap::from([upstream]), |out| {
        let started = Instant::now();
        let tree = match cfg.kind {
            xmc_cluster::TreeKind::Kmeans => xmc_cluster::build_tree(&xmc_cluster::LabelEmbeddings::load(&ctx.dir(StageName::Embed))?, cfg)?,
            xmc_cluster::TreeKind::Taxonomy => {
                let labels = xmc_data::LabelSet::load(&ctx.dir(StageName::Data))?;
                xmc_codes::LabelTree::from_taxonomy(&labels.labels.iter().map(|l| l.levels.clone()).collect::<Vec<_>>())?
            }
        };
        let seconds = started.elapsed().as_secs_f64();
        xmc_cluster::save_tree(&tree, out)?;
        tracing::info!("tree: {} labels in {} internal nodes, built in {seconds:.2} s", tree.n_labels, tree.nodes.len());
        Ok(Figures::Tree(TreeFigures { internal_nodes: tree.nodes.len(), build_seconds: seconds }))
    })
}

