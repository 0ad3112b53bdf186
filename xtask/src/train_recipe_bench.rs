//! `cargo xtask bench train-recipe`: the recommended recipe's training (`xmc train` with no
//! config) on synthetic sets of growing size, each in a child process: wall time, peak RSS, the
//! encoder fine-tuning's share and rate, and the time the same rates give at the reference scale
//! (the fine-tuning's records growing up to the recipe's budget, the rest linearly).

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result};
use clap::Args;

/// The reference scale the speed issue sets the budget at.
const REFERENCE_RECORDS: usize = 1_680_000;
const BUDGET_SECONDS: f64 = 2.0 * 3600.0;
const BUDGET_RSS: u64 = 8_000_000_000;

#[derive(Debug, Args)]
pub struct TrainRecipeBenchArgs {
    /// Sizes of the synthetic sets (records before the split), each trained in its own child.
    #[arg(long, value_delimiter = ',', default_values_t = [6_500usize])]
    records: Vec<usize>,
    /// Labels of each synthetic set (default: one per 20 records, between 50 and 14,262).
    #[arg(long)]
    labels: Option<usize>,
    /// Override a key of the recipe, as `xmc train --set` does (e.g. contrastive.epochs=1).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Google taxonomy file (default: taxonomy-with-ids.en-US.txt under the data folder).
    #[arg(long)]
    taxonomy: Option<PathBuf>,
}

/// What one training's folder says about its fine-tuning (`metrics.jsonl` of the classifier's
/// encoder): seconds (validation included), records (steps times the batch size) and epochs.
fn fine_tuning(model: &Path, batch_size: usize) -> Result<(f64, f64, usize)> {
    let path = model.join(xmc_ranker::classifier_member_dir(0)).join("metrics.jsonl");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let (mut seconds, mut steps, mut epochs) = (0.0, 0, 0);
    for line in text.lines().filter(|l| !l.trim().is_empty()) {
        let m: xmc_train::EpochMetrics = serde_json::from_str(line).with_context(|| format!("{}: {line}", path.display()))?;
        seconds += m.seconds;
        steps = m.steps;
        epochs += 1;
    }
    Ok((seconds, (steps * batch_size) as f64, epochs))
}

/// The whole training's seconds at `scale` times the records: the rest grows linearly, the
/// fine-tuning's records too until they reach `max_records` per epoch (0 = no budget).
fn projected_seconds(seconds: f64, tune_seconds: f64, tune_records_per_epoch: f64, max_records: usize, scale: f64) -> f64 {
    let tune_scale = if max_records > 0 { scale.min(max_records as f64 / tune_records_per_epoch.max(1.0)).max(1.0) } else { scale };
    (seconds - tune_seconds) * scale + tune_seconds * tune_scale
}

/// The target's verdict on one row: only a run at the reference scale can meet it.
fn verdict(records: usize, seconds: f64, rss: u64) -> String {
    if records < REFERENCE_RECORDS {
        return format!("<= 2 h, <= 8 GB at {REFERENCE_RECORDS} records (not this size)");
    }
    let time = if seconds <= BUDGET_SECONDS { "time met" } else { "time MISSED" };
    let memory = if rss <= BUDGET_RSS { "memory met" } else { "memory MISSED" };
    format!("<= 2 h: {time}; <= 8 GB: {memory}")
}

/// The fine-tuning's batch size and records per epoch at most (`contrastive.max_records` of the
/// folder's config; 0 = no budget).
fn recipe_budget(model: &Path) -> Result<(usize, usize)> {
    let path = model.join("config.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let config: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    let key = |k: &str| config["contrastive"][k].as_u64().map(|n| n as usize);
    Ok((key("batch_size").with_context(|| format!("{}: no contrastive.batch_size", path.display()))?, key("max_records").unwrap_or(0)))
}

pub fn bench_train_recipe(args: TrainRecipeBenchArgs, dir: &Path) -> Result<ExitCode> {
    let exe = std::env::current_exe()?;
    let mut rows = Vec::new();
    let mut met = true;
    for &records in &args.records {
        let labels = args.labels.unwrap_or((records / 20).clamp(50, 14_262));
        let (_, descriptor) = crate::bench_child::synthetic_dataset(dir, records, labels, args.taxonomy.clone())?;
        let model = dir.join(format!("train-recipe-{records}-{labels}"));
        if model.exists() {
            std::fs::remove_dir_all(&model).with_context(|| format!("removing {}", model.display()))?;
        }
        let mut command = Command::new(&exe);
        command.args(["xmc", "train", "--dataset"]).arg(&descriptor).arg("--output").arg(&model);
        for set in &args.set {
            command.args(["--set", set]);
        }
        eprintln!("training the recommended recipe on {records} synthetic records ({labels} labels) ...");
        let (seconds, rss) = crate::bench_child::measure(command)?;
        let (batch_size, max_records) = recipe_budget(&model)?;
        let (tune_seconds, tune_records, epochs) = fine_tuning(&model, batch_size)?;
        let rate = tune_records / tune_seconds.max(1e-9);
        // The same rates at the reference scale: the rest grows with the set (at most linearly,
        // measured by the ranker bench), and so do the fine-tuning's records up to its budget
        // (`contrastive.max_records` per epoch, when set).
        let scale = REFERENCE_RECORDS as f64 / records as f64;
        let projected = projected_seconds(seconds, tune_seconds, tune_records / epochs.max(1) as f64, max_records, scale);
        met &= records >= REFERENCE_RECORDS && seconds <= BUDGET_SECONDS && rss <= BUDGET_RSS;
        rows.push(format!(
            "| {records} | {labels} | {seconds:.0} s | {tune_seconds:.0} s ({epochs} epochs, {rate:.1} records/s) | {:.0} s | {:.0} MiB ({:.2} GB) | {:.1} h | {} |",
            seconds - tune_seconds,
            rss as f64 / (1 << 20) as f64,
            rss as f64 / 1e9,
            projected / 3600.0,
            verdict(records, seconds, rss)
        ));
    }
    println!("settings: the recommended recipe{}", if args.set.is_empty() { String::new() } else { format!(" with {}", args.set.join(" ")) });
    println!("| records | labels | whole training | encoder fine-tuning | the rest | peak RSS | at {REFERENCE_RECORDS} records (the rest linearly, the fine-tuning up to its budget) | target (<= 2 h, <= 8 GB = 8e9 bytes) |");
    println!("|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    Ok(if met { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_projection_holds_the_fine_tuning_at_its_budget() {
        // 100 s of which 60 fine-tuning over 1,000 records per epoch, 10x the records.
        assert_eq!(projected_seconds(100.0, 60.0, 1_000.0, 0, 10.0), 1_000.0, "no budget: all linear");
        assert_eq!(projected_seconds(100.0, 60.0, 1_000.0, 1_000, 10.0), 460.0, "at its budget already");
        assert_eq!(projected_seconds(100.0, 60.0, 1_000.0, 4_000, 10.0), 640.0, "grows 4x, then stops");
        assert_eq!(projected_seconds(100.0, 60.0, 1_000.0, 50_000, 10.0), 1_000.0, "a budget beyond the scale");
    }

    #[test]
    fn the_verdict_counts_8_gb_as_8e9_bytes_and_only_at_the_reference_scale() {
        assert_eq!(verdict(REFERENCE_RECORDS, 3_258.0, 7_000 << 20), "<= 2 h: time met; <= 8 GB: memory met");
        // 7,676 MiB is under 8 GiB but over 8e9 bytes.
        assert_eq!(verdict(REFERENCE_RECORDS, 3_258.0, 7_676 << 20), "<= 2 h: time met; <= 8 GB: memory MISSED");
        assert_eq!(verdict(REFERENCE_RECORDS, 7_300.0, 1 << 30), "<= 2 h: time MISSED; <= 8 GB: memory met");
        assert!(verdict(168_000, 10.0, 1 << 20).contains("not this size"));
    }
}
