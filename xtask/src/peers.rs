//! `cargo xtask bench peers`: fastText, Omikuji, PECOS XR-Linear and scikit-learn's LinearSVC on
//! TF-IDF trained and scored on exactly xmc's split with xmc's metrics, next to finished xmc
//! runs, in one table.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

use anyhow::{Context, Result, bail};
use clap::Args;
use xmc_data::{PreparedData, Split};

#[derive(Debug, Args)]
pub struct PeersBenchArgs {
    /// Dataset descriptor name under datasets/ (amazon-uk, flipkart, amazon-uk-sample) or a path.
    #[arg(long)]
    dataset: String,
    /// Finished xmc runs for the same table; the first one's data stage gives the split
    /// (default: experiments/{xr,hkmeans_t5,plain_t5}_<dataset> when they exist).
    #[arg(long)]
    ours: Vec<PathBuf>,
    /// Experiment config whose `[data]` section prepares the split when no run has one.
    #[arg(long)]
    config: Option<PathBuf>,
    /// The peers to run: fasttext, omikuji, pecos, linearsvc.
    #[arg(long, default_value = "fasttext,omikuji,pecos,linearsvc")]
    tools: String,
    /// Python with the peers installed (or $XMC_BENCH_PYTHON); default: a virtualenv under
    /// target/xmc-bench made on first use.
    #[arg(long)]
    python: Option<PathBuf>,
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// The split the peers are scored on: `test` for the final tables, `valid` to compare choices
    /// with the peers without looking at the test split (xmc's rows then show the train stage's
    /// validation accuracy and tail from its report, where the run has them).
    #[arg(long, default_value = "test", value_parser = ["test", "valid"])]
    split: String,
}

/// The peers' packages, as the bench installs them from PyPI.
const PACKAGES: [&str; 6] = ["numpy<2", "scipy", "scikit-learn", "fasttext-wheel", "omikuji", "libpecos"];

fn peers_python(dir: &Path) -> Result<PathBuf> {
    let venv = dir.join("peers-venv");
    let python = venv.join("bin/python");
    if !python.is_file() {
        eprintln!("creating {} with {} (first run only) ...", venv.display(), PACKAGES.join(", "));
        if !Command::new("python3").args(["-m", "venv"]).arg(&venv).status()?.success() {
            bail!("python3 -m venv failed");
        }
        if !Command::new(&python).args(["-m", "pip", "install", "--quiet"]).args(PACKAGES).status()?.success() {
            bail!("pip install {} failed", PACKAGES.join(" "));
        }
    }
    Ok(python)
}

fn write_split(data: &PreparedData, split: Split, path: &Path) -> Result<usize> {
    let mut text = String::new();
    let mut n = 0;
    for r in data.split(split) {
        let input: String = r.input.chars().map(|c| if c == '\t' || c == '\n' || c == '\r' { ' ' } else { c }).collect();
        let _ = writeln!(text, "{}\t{input}", r.label);
        n += 1;
    }
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))?;
    Ok(n)
}

/// The split seed of a run's data stage (its resolved config, `data/config.json`, as the runner writes it).
fn run_split_seed(data_dir: &Path) -> Result<u64> {
    let path = data_dir.join(xmc_pipeline::CONFIG_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let config: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
    config["data"]["split"]["seed"].as_u64().with_context(|| format!("{}: no data.split.seed", path.display()))
}

fn peers_folder_name(dataset: &str, split_seed: u64, scored: Split) -> String {
    format!("peers-{dataset}-seed{split_seed}-{}", scored.as_str())
}

struct Row {
    name: String,
    metrics: xmc_eval::Metrics,
    train_seconds: Option<f64>,
    records_per_s: Option<f64>,
}

pub fn bench_peers(args: PeersBenchArgs, bench_dir: &Path) -> Result<ExitCode> {
    let descriptor =
        if args.dataset.ends_with(".toml") { PathBuf::from(&args.dataset) } else { PathBuf::from(format!("datasets/{}.toml", args.dataset)) };
    let desc = xmc_data::DatasetDescriptor::load(&descriptor)?;
    let ours: Vec<PathBuf> = if args.ours.is_empty() {
        ["xr", "hkmeans_t5", "plain_t5"].iter().map(|m| PathBuf::from(format!("experiments/{m}_{}", desc.name))).filter(|d| d.is_dir()).collect()
    } else {
        args.ours.clone()
    };
    let (data, split_seed) = match ours.iter().map(|r| r.join("data")).find(|d| d.join("stage.json").is_file()) {
        Some(dir) => {
            eprintln!("peers: the split of {}", dir.display());
            (PreparedData::load(&dir)?, run_split_seed(&dir)?)
        }
        None => {
            let mut cfg = match &args.config {
                Some(path) => xmc_pipeline::ExperimentConfig::load(path, &[])?.data,
                None => xmc_data::DataConfig::default(),
            };
            cfg.dataset = descriptor.clone();
            eprintln!("peers: preparing {} (split seed {})", desc.name, cfg.split.seed);
            (xmc_data::prepare(&desc, &cfg)?, cfg.split.seed)
        }
    };
    let scored_split = if args.split == "valid" { Split::Valid } else { Split::Test };
    // One folder per dataset, split seed and scored split, so that one bench's files (the splits,
    // the peers' rankings, the table) are not overwritten by another's.
    let dir = bench_dir.join(peers_folder_name(&desc.name, split_seed, scored_split));
    std::fs::create_dir_all(&dir)?;
    let n_train = write_split(&data, Split::Train, &dir.join("train.tsv"))?;
    let n_test = write_split(&data, scored_split, &dir.join("test.tsv"))?;
    let truths: Vec<u32> = data.split(scored_split).map(|r| r.label).collect();

    let python = match args.python.clone().or_else(|| std::env::var_os("XMC_BENCH_PYTHON").map(PathBuf::from)) {
        Some(p) => p,
        None => peers_python(bench_dir)?,
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/peers.py");
    let status = Command::new(&python)
        .arg(&script)
        .arg(&dir)
        .arg(data.labels.len().to_string())
        .arg(args.threads.to_string())
        .arg(&args.tools)
        .env("OMP_NUM_THREADS", args.threads.to_string())
        .status()
        .with_context(|| format!("running {}", python.display()))?;
    if !status.success() {
        bail!("{} failed", script.display());
    }
    let text = std::fs::read_to_string(dir.join("peers.json"))?;
    let results: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&text)?;

    let eval_cfg = xmc_eval::EvalConfig::default();
    let mut rows = Vec::new();
    let mut peer_top: Vec<(String, Vec<Option<u32>>)> = Vec::new();
    let mut missing = Vec::new();
    for (tool, r) in &results {
        if let Some(err) = r.get("error") {
            missing.push(format!("{tool}: {err}"));
            continue;
        }
        let ranked: Vec<Vec<u32>> = serde_json::from_value(r["ranked"].clone())?;
        anyhow::ensure!(ranked.len() == truths.len(), "{tool}: {} rankings for {} test records", ranked.len(), truths.len());
        peer_top.push((tool.clone(), ranked.iter().map(|r| r.first().copied()).collect()));
        let scored: Vec<xmc_eval::Scored> =
            truths.iter().zip(ranked).map(|(&truth, ranked)| xmc_eval::Scored { truth, ranked }).collect();
        let predict_seconds = r["predict_seconds"].as_f64().unwrap_or(f64::NAN);
        rows.push(Row {
            name: format!("{} ({})", tool, r["version"].as_str().unwrap_or("?")),
            metrics: xmc_eval::evaluate(&data.labels, &scored, None, &eval_cfg),
            train_seconds: r["train_seconds"].as_f64(),
            records_per_s: Some(n_test as f64 / predict_seconds),
        });
    }
    // xmc's own rows: its test metrics, or on the validation split the train stage's figures.
    let mut ours_valid = Vec::new();
    for run in ours.iter().filter(|r| scored_split == Split::Valid && r.join("train/stage.json").is_file()) {
        let name = run.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        let fig = xmc_pipeline::StageRecord::load(&run.join("train")).and_then(|r| r.report.train().cloned());
        let pct = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.3}"));
        if let Some(t) = fig {
            ours_valid.push(format!(
                "xmc {name} (its train stage's validation figures): accuracy {}, macro-F1 {}, tail accuracy {}",
                pct(t.best_valid_accuracy),
                pct(t.valid_macro_f1),
                pct(t.valid_tail_accuracy)
            ));
        }
    }
    let mut leads = String::new();
    for run in ours.iter().filter(|r| scored_split == Split::Test && r.join("eval/metrics.json").is_file()) {
        let metrics = xmc_eval::Metrics::load(&run.join("eval/metrics.json"))?;
        let predictions = run.join("predict/predictions.jsonl");
        if predictions.is_file() && !peer_top.is_empty() {
            let top = run_top_labels(&predictions, &data, scored_split)?;
            for (tool, theirs) in &peer_top {
                let lead = xmc_eval::lead::lead(&data.labels, &truths, &top, theirs, LEAD_RESAMPLES, eval_cfg.seed);
                let _ = writeln!(
                    leads,
                    "| {} | {tool} | {} | {} | {} |",
                    run.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
                    lead.accuracy.points(),
                    lead.macro_f1.points(),
                    lead.tail_accuracy.map_or("-".into(), |d| d.points())
                );
            }
        }
        let record = |stage: &str| xmc_pipeline::StageRecord::load(&run.join(stage));
        rows.push(Row {
            name: format!("xmc {}", run.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()),
            metrics,
            train_seconds: record("train").and_then(|r| r.report.train().and_then(|t| t.train_seconds)),
            records_per_s: record("predict").and_then(|r| r.report.predict().map(|p| p.records_per_s)),
        });
    }

    let mut table = format!(
        "Dataset {}: {n_train} training records, {n_test} {} records, {} labels; {} threads.\n\n\
         | method | accuracy | macro-F1 | tail accuracy | PSP@5 | hierarchical F1 | train time | predict records/s |\n|---|---|---|---|---|---|---|---|\n",
        desc.name,
        scored_split.as_str(),
        data.labels.len(),
        args.threads
    );
    for r in &rows {
        let m = &r.metrics;
        let _ = writeln!(
            table,
            "| {} | {:.3} | {:.3} | {} | {:.3} | {:.3} | {} | {} |",
            r.name,
            m.accuracy,
            m.leaf.macro_avg.f1,
            m.tail_accuracy.map_or("-".into(), |a| format!("{a:.3}")),
            m.at_k.iter().find(|a| a.k == 5).map_or(f64::NAN, |a| a.psp),
            m.hierarchical.f1,
            r.train_seconds.map_or("-".into(), |s| format!("{s:.1} s")),
            r.records_per_s.map_or("-".into(), |s| format!("{s:.0}")),
        );
    }
    if !leads.is_empty() {
        let _ = write!(
            table,
            "\nxmc's lead over each peer in points (ours minus theirs, with the paired 95% bootstrap interval over \
             {LEAD_RESAMPLES} resamples of these {n_test} records):\n\n\
             | xmc run | over | accuracy | macro-F1 | tail accuracy |\n|---|---|---|---|---|\n{leads}"
        );
    }
    for line in &ours_valid {
        let _ = writeln!(table, "\n{line}");
    }
    for m in &missing {
        let _ = writeln!(table, "\nnot run: {m}");
    }
    print!("{table}");
    let md = dir.join("peers.md");
    std::fs::write(&md, &table)?;
    eprintln!("wrote {}", md.display());
    Ok(ExitCode::SUCCESS)
}

/// Bootstrap resamples of the lead's intervals.
const LEAD_RESAMPLES: usize = 1000;

/// A run's top label for each record of `split` (in the split's order), read from its
/// predictions by record id.
fn run_top_labels(predictions: &Path, data: &PreparedData, split: Split) -> Result<Vec<Option<u32>>> {
    let rows = xmc_methods::scoring::read_predictions(predictions)?;
    let labels = xmc_methods::scoring::EvalLabels::new(&data.labels);
    let mut by_record = std::collections::HashMap::with_capacity(rows.len());
    for row in &rows {
        let top = match row.top_k.first() {
            Some((path, _)) => Some(labels.predicted_id(path).with_context(|| format!("{}: record `{}` predicts `{path}`", predictions.display(), row.id))?),
            None => None,
        };
        by_record.insert(row.id.as_str(), top);
    }
    data.split(split)
        .map(|r| by_record.get(r.record.id.as_str()).copied().with_context(|| format!("{}: no prediction for record `{}`", predictions.display(), r.record.id)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_split_seed_and_scored_split_has_its_own_folder() {
        let names = [
            peers_folder_name("amazon-uk", 42, Split::Test),
            peers_folder_name("amazon-uk", 42, Split::Valid),
            peers_folder_name("amazon-uk", 7, Split::Test),
            peers_folder_name("flipkart", 42, Split::Test),
        ];
        let distinct: std::collections::BTreeSet<&String> = names.iter().collect();
        assert_eq!(distinct.len(), names.len(), "{names:?}");
        assert_eq!(names[1], "peers-amazon-uk-seed42-valid");
    }

    #[test]
    fn a_runs_split_seed_is_read_from_its_data_stage_config() {
        let dir = std::env::temp_dir().join(format!("xmc-peers-seed-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("config.json"), r#"{"data": {"split": {"seed": 7, "train": 0.8}}}"#).unwrap();
        assert_eq!(run_split_seed(&dir).unwrap(), 7);
        std::fs::write(dir.join("config.json"), r#"{"data": {}}"#).unwrap();
        let err = run_split_seed(&dir).unwrap_err().to_string();
        assert!(err.contains("config.json") && err.contains("data.split.seed"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_runs_top_labels_follow_the_splits_order_by_record_id() {
        let desc = xmc_data::DatasetDescriptor::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../datasets/amazon-uk-sample.toml"))).unwrap();
        let data = xmc_data::prepare(&desc, &xmc_data::DataConfig { skip_bad_rows: true, ..Default::default() }).unwrap();
        let test: Vec<&xmc_data::PreparedRecord> = data.split(Split::Test).collect();
        assert!(test.len() > 3);
        // Rows in reverse order, each predicting the label after its truth first (then a text
        // that is no label: only the first counts); the last record's row with no labels at all.
        let path_of = |l: u32| data.labels.get((l + 1) % data.labels.len() as u32).unwrap().path.clone();
        let row = |r: &xmc_data::PreparedRecord, empty: bool| {
            let top: Vec<(String, f32)> = if empty { vec![] } else { vec![(path_of(r.label), 0.9), (r.record.title.clone(), 0.1)] };
            serde_json::json!({"id": r.record.id, "path": null, "score": null, "top_k": top}).to_string()
        };
        let mut lines: Vec<String> = test.iter().enumerate().map(|(i, r)| row(r, i == test.len() - 1)).collect();
        lines.reverse();
        let dir = std::env::temp_dir().join(format!("xmc-peers-top-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("predictions.jsonl");
        std::fs::write(&file, lines.join("\n")).unwrap();
        let top = run_top_labels(&file, &data, Split::Test).unwrap();
        let expected: Vec<Option<u32>> =
            test.iter().enumerate().map(|(i, r)| (i + 1 < test.len()).then(|| (r.label + 1) % data.labels.len() as u32)).collect();
        assert_eq!(top, expected);
        // A record with no row, and a row whose label the split does not have, are errors that name them.
        std::fs::write(&file, lines[1..].join("\n")).unwrap();
        let err = run_top_labels(&file, &data, Split::Test).unwrap_err().to_string();
        assert!(err.contains("no prediction for record") && err.contains(test[test.len() - 1].record.id.as_str()), "{err}");
        lines[0] = serde_json::json!({"id": test[test.len() - 1].record.id, "top_k": [["Nowhere > Else", 1.0]]}).to_string();
        std::fs::write(&file, lines.join("\n")).unwrap();
        let err = run_top_labels(&file, &data, Split::Test).unwrap_err().to_string();
        assert!(err.contains("Nowhere > Else"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
