//! The brand stage (second target) and its section of the report.

use std::collections::BTreeMap;

use anyhow::Result;

use crate::figures::{BrandFigures, Figures};
use crate::context::{StageContext, StageOutcome};
use crate::stage::StageName;

/// The second target: the product's brand (or manufacturer) from its title and description.
pub(super) fn run(ctx: &StageContext) -> Result<(StageOutcome, String)> {
    // No settings: what decides its output is the data and the stage's code version.
    ctx.run(StageName::Brand, &serde_json::json!({}), BTreeMap::from([ctx.upstream(StageName::Data)]), |out| {
        let data = xmc_data::PreparedData::load(&ctx.dir(StageName::Data))?;
        let m = xmc_brand::train_and_evaluate(&data);
        m.save(&out.join(xmc_brand::METRICS_FILE))?;
        eprintln!(
            "brand: accuracy {:.4}, macro-F1 {:.4}, weighted F1 {:.4} on {} test records ({} brands in training)",
            m.accuracy, m.scores.macro_avg.f1, m.scores.weighted_avg.f1, m.records, m.brands_in_training
        );
        Ok(Figures::Brand(BrandFigures { accuracy: m.accuracy, macro_f1: m.scores.macro_avg.f1, weighted_f1: m.scores.weighted_avg.f1 }))
    })
}

pub(super) fn section(ctx: &StageContext) -> Option<(String, String)> {
    let m = xmc_brand::BrandMetrics::load(&ctx.dir(StageName::Brand).join(xmc_brand::METRICS_FILE))?;
    let pct = |x: f64| format!("{:.1}", 100.0 * x);
    let body = format!(
        "The brand most often seen in training with the title's first 1-3 words (longest seen prefix), else the title's first word as a new brand; {} brands seen in training (brand, else manufacturer; an empty one is the class `{}`).\n\n\
         | metric | value |\n|---|---|\n| accuracy | {} |\n| macro F1 | {} |\n| micro F1 | {} |\n| weighted F1 | {} |\n\
         | accuracy on records with a brand | {} |\n| test records without a brand | {} |\n| test records with a brand unseen in training (found) | {} ({}) |\n\
         | titles starting with an unseen word (first word right) | {} ({}) |\n| prediction speed | {:.0} records/s |",
        m.brands_in_training,
        xmc_brand::NO_BRAND,
        pct(m.accuracy),
        pct(m.scores.macro_avg.f1),
        pct(m.scores.micro_avg.f1),
        pct(m.scores.weighted_avg.f1),
        m.known_brand_accuracy.map_or("-".into(), pct),
        m.no_brand_records,
        m.unseen_brand_records,
        m.unseen_brand_found,
        m.first_word_records,
        m.first_word_accuracy.map_or("-".into(), pct),
        m.records_per_s
    );
    Some(("Brand (second target)".into(), body))
}

