//! Training set-up that more than one method runs: the T5 generator (generative, fused), the
//! sentence encoder's fine-tuning (cluster search, xr), the files every model folder carries.

use std::path::Path;

use anyhow::{Context, Result};
use xmc_data::{InputTemplate, PreparedData, Split};

use crate::config::ExperimentConfig;

/// The template the data stage rendered the inputs with (config, else descriptor, else default).
pub(crate) fn resolved_template(cfg: &ExperimentConfig) -> Result<InputTemplate> {
    let desc = xmc_data::DatasetDescriptor::load(&cfg.data.dataset)
        .with_context(|| format!("loading dataset descriptor {}", cfg.data.dataset.display()))?;
    Ok(cfg.data.template_for(&desc))
}

/// The dataset descriptor copied into the model folder, so that a new file is cleaned with the
/// rules the model was trained under.
pub(crate) fn copy_dataset(cfg: &ExperimentConfig, out: &Path) -> Result<()> {
    std::fs::copy(&cfg.data.dataset, out.join(crate::scoring::DATASET_FILE))
        .with_context(|| format!("copying {} into the model folder", cfg.data.dataset.display()))?;
    Ok(())
}

/// Puts the pretrained sentence encoder's files in the model folder (a hard link where the file
/// system allows, a copy otherwise), so the folder predicts on its own.
pub(crate) fn copy_encoder(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    use xmc_model::SentenceEncoder as E;
    for file in [E::WEIGHTS, E::CONFIG, E::TOKENIZER] {
        let (src, dst) = (from.join(file), to.join(file));
        if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst).with_context(|| format!("copying {} to {}", src.display(), dst.display()))?;
        }
    }
    Ok(())
}

/// Copies the files of `from` into `to`, recursively (copies, not links: the copy may be
/// rewritten afterwards while the source folder must not change).
pub fn copy_dir(from: &Path, to: &Path) -> Result<()> {
    for entry in walkdir::WalkDir::new(from).follow_links(true) {
        let entry = entry.with_context(|| format!("reading {}", from.display()))?;
        let dst = to.join(entry.path().strip_prefix(from).expect("walkdir stays under its root"));
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&dst).with_context(|| format!("creating {}", dst.display()))?;
        } else {
            std::fs::copy(entry.path(), &dst).with_context(|| format!("copying {} to {}", entry.path().display(), dst.display()))?;
        }
    }
    Ok(())
}

/// The tokenizer kept with a generator's checkpoint, when the run resumes from it.
fn resumed_tokenizer(out: &Path, resuming: bool) -> Result<Option<xmc_model::TextTokenizer>> {
    let path = xmc_train::checkpoint_tokenizer(out);
    Ok(if resuming && path.is_file() { Some(xmc_model::TextTokenizer::load(&path)?) } else { None })
}

/// Trains the T5 generator of `cfg.model` / `cfg.train` into `dir` (codes as targets, or label
/// paths without them), resuming its checkpoint when asked and one exists; the checkpoint is
/// removed once the model folder is written.
pub(crate) fn train_generator(
    cfg: &ExperimentConfig,
    data: &PreparedData,
    codes: Option<&[Vec<u32>]>,
    template: &InputTemplate,
    dir: &Path,
    resume: bool,
) -> Result<xmc_train::TrainOutcome> {
    let resuming = resume && dir.join("checkpoint/state.json").is_file();
    let task = xmc_train::Seq2SeqTask::build_with(data, codes, &cfg.model, resumed_tokenizer(dir, resuming)?)?;
    let outcome = xmc_train::train(data, &task, &cfg.model, &cfg.train, template, dir, resuming)?;
    std::fs::remove_dir_all(dir.join("checkpoint")).ok();
    Ok(outcome)
}

/// Fine-tunes the pretrained sentence encoder of `cfg.embed` on the training split (validation
/// split for the best epoch) with `contrastive`'s loss and settings, into `target`.
pub(crate) fn finetune_encoder(
    cfg: &ExperimentConfig,
    data: &PreparedData,
    contrastive: &xmc_train::ContrastiveConfig,
    target: &Path,
    resume: bool,
) -> Result<xmc_train::ContrastiveOutcome> {
    let examples = |split| data.split(split).map(|r| (r.input.as_str(), r.label)).collect::<Vec<_>>();
    let label_texts = xmc_cluster::label_texts(&data.labels, cfg.embed.text);
    let label_levels: Vec<Vec<String>> = data.labels.labels.iter().map(|l| l.levels.clone()).collect();
    Ok(xmc_train::finetune_encoder(
        Path::new(&cfg.embed.encoder_dir),
        &examples(Split::Train),
        &examples(Split::Valid),
        &label_texts,
        &label_levels,
        contrastive,
        target,
        resume,
    )?)
}

/// Validation metrics (no bootstrap) of ranked label lists.
pub(crate) fn valid_metrics(data: &PreparedData, ranked: &[Vec<u32>], truths: &[u32]) -> xmc_eval::Metrics {
    let scored: Vec<xmc_eval::Scored> = ranked.iter().zip(truths).map(|(r, &truth)| xmc_eval::Scored { truth, ranked: r.clone() }).collect();
    xmc_eval::evaluate(&data.labels, &scored, None, &xmc_eval::EvalConfig { bootstrap: 0, ..Default::default() })
}

/// A progress bar for `len` items of work (the runner's stages use it too).
pub fn progress_bar(len: u64, message: &'static str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(len);
    bar.set_style(
        indicatif::ProgressStyle::with_template("{msg} [{bar:30}] {pos}/{len} ({per_sec}, {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message(message);
    bar
}

/// `serde_json::to_value(x)` as the plain string a unit enum serialises to, for report text.
pub(crate) fn name_of(x: impl serde::Serialize) -> Result<String> {
    Ok(serde_json::to_value(x)?.as_str().unwrap_or("?").to_string())
}
