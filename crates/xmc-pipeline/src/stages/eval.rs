//! The eval stage: the test predictions scored against their labels (with the labels added after
//! training, and code-prefix credit where the method has a tree).

use std::collections::BTreeMap;

use anyhow::{Context, Result};

use crate::figures::{EvalFigures, Figures};
use crate::context::{StageContext, StageOutcome};
use crate::stage::StageName;

pub(super) fn run(ctx: &StageContext) -> Result<(StageOutcome, String)> {
    let cfg = ctx.cfg;
    let hierarchical = cfg.uses_label_tree();
    let eval_cfg = xmc_eval::EvalConfig { baseline: None, ..cfg.eval.clone() };
    let mut inputs = BTreeMap::from([ctx.upstream(StageName::Data), ctx.upstream(StageName::Predict)]);
    if hierarchical {
        inputs.extend([ctx.upstream(StageName::Codes)]);
    }
    ctx.run(StageName::Eval, &eval_cfg, inputs, |out| {
        let mut labels = xmc_data::LabelSet::load(&ctx.dir(StageName::Data))?;
        let rows = xmc_methods::scoring::read_predictions(&ctx.dir(StageName::Predict).join("predictions.jsonl"))?;
        let mut codes = if hierarchical { Some(xmc_codes::LabelCodes::load(&ctx.dir(StageName::Codes))?.codes) } else { None };
        // Labels added after training (cluster search) can be predicted: they are labels too.
        let added_file = ctx.dir(StageName::Predict).join(super::predict::NEW_LABELS_FILE);
        if added_file.is_file() {
            let added: Vec<xmc_cluster::AddedLabel> = serde_json::from_str(&std::fs::read_to_string(&added_file)?)
                .with_context(|| format!("reading {}", added_file.display()))?;
            labels = labels.with_added(&added.iter().map(|a| a.path.clone()).collect::<Vec<_>>());
            if let Some(codes) = codes.as_mut() {
                codes.extend(added.into_iter().map(|a| a.code));
            }
        }
        let metrics = xmc_methods::scoring::score_rows(&labels, &rows, codes.as_deref(), &eval_cfg)?;
        metrics.save(&out.join(xmc_eval::report::METRICS_FILE))?;
        eprintln!(
            "eval: accuracy {:.4}, macro-F1 {:.4}, tail accuracy {} on {} test records",
            metrics.accuracy,
            metrics.leaf.macro_avg.f1,
            metrics.tail_accuracy.map_or("-".into(), |a| format!("{a:.4}")),
            metrics.records
        );
        Ok(Figures::Eval(EvalFigures::of(&metrics)))
    })
}

