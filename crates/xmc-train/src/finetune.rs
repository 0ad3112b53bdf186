//! The sentence encoder's fine-tuning run: the pretrained encoder's validation score, the
//! tokens, the checkpointed loop of [`crate::fit`] over the objective the loss asks for (in-batch
//! pairs, [`crate::contrastive`], or a learnt vector per label, [`crate::label_vectors`]), the
//! best epoch's encoder written as a folder.

use std::path::Path;

use xmc_model::SentenceEncoder;

use crate::contrastive::{ContrastiveConfig, ContrastiveObjective, ContrastiveOutcome, EVAL_BATCH, Example, FineTuneLoss, retrieval_accuracy, truncate};
use crate::error::{Result, TrainError};
use crate::fit::{Fingerprint, FitRun, fit};
use crate::label_vectors::LabelsObjective;

/// What a fine-tuning run is made from, for its checkpoint.
fn fingerprint(encoder_dir: &Path, cfg: &ContrastiveConfig, train: &[Example], valid: &[Example], label_texts: &[String]) -> Result<Fingerprint> {
    let config = serde_json::to_vec(cfg).expect("serialises");
    let labels = serde_json::to_vec(label_texts).expect("serialises");
    let mut fingerprint = Fingerprint::default()
        .part("configuration", [config.as_slice()])
        .part("label texts", [labels.as_slice()])
        .texts_part("training and validation records", train.iter().chain(valid).copied());
    let weights = [SentenceEncoder::FINE_TUNED_WEIGHTS, SentenceEncoder::WEIGHTS].map(|f| encoder_dir.join(f));
    if let Some(path) = weights.iter().find(|p| p.is_file()) {
        fingerprint = fingerprint.file_part("pretrained encoder", path)?;
    }
    Ok(fingerprint)
}

/// Fine-tunes the sentence encoder in `encoder_dir` on `train` pairs and writes the best epoch's
/// encoder (by validation retrieval accuracy; the pretrained one if no epoch beats it) to `out`
/// as a folder [`SentenceEncoder::load`] reads, with `metrics.jsonl`. `out/checkpoint` holds the
/// resumable state while it runs; with `resume`, a checkpoint of the same run is continued.
/// `label_levels` are the labels' taxonomy paths (root first), which `shared_ancestors` reads.
#[allow(clippy::too_many_arguments)]
pub fn finetune_encoder(
    encoder_dir: &Path,
    train: &[Example],
    valid: &[Example],
    label_texts: &[String],
    label_levels: &[Vec<String>],
    cfg: &ContrastiveConfig,
    out: &Path,
    resume: bool,
) -> Result<ContrastiveOutcome> {
    cfg.validate().map_err(TrainError::Config)?;
    if cfg.shared_ancestors && label_levels.len() != label_texts.len() {
        return Err(TrainError::Config(format!("`contrastive.shared_ancestors` needs every label's path: {} paths for {} labels", label_levels.len(), label_texts.len())));
    }
    let full_valid = valid.len();
    std::fs::create_dir_all(out).map_err(|e| TrainError::io(out, e))?;
    let encoder = SentenceEncoder::load(encoder_dir, &xmc_model::training_device())?;
    let valid = &crate::epoch_sample::at_most(valid, cfg.max_valid_records, cfg.seed);
    if valid.len() < full_valid {
        tracing::info!("contrastive: {} of the {full_valid} validation records score each epoch (`contrastive.max_valid_records`)", valid.len());
    }
    if cfg.max_records > 0 && train.len() > cfg.max_records {
        tracing::info!("contrastive: {} of the {} training records per epoch (`contrastive.max_records`), drawn under a per-label cap", cfg.max_records, train.len());
    }
    let pretrained_valid_accuracy = retrieval_accuracy(&encoder.valid(), valid, label_texts, EVAL_BATCH)?;
    tracing::info!("contrastive: pretrained encoder, validation retrieval accuracy {pretrained_valid_accuracy:.4}");
    let record_tokens: Vec<Vec<u32>> = train.iter().map(|e| Ok(truncate(encoder.tokenize(e.0)?, cfg.max_tokens))).collect::<Result<_>>()?;
    let label_tokens: Vec<Vec<u32>> = label_texts.iter().map(|t| Ok(truncate(encoder.tokenize(t)?, cfg.max_tokens))).collect::<Result<_>>()?;
    let checkpoint = out.join("checkpoint");
    let run = FitRun {
        name: "contrastive epoch",
        optimization: cfg.optimization(),
        epochs: cfg.epochs,
        patience: usize::MAX,
        seed: cfg.seed,
        out,
        checkpoint: &checkpoint,
        resume,
        fingerprint: fingerprint(encoder_dir, cfg, train, valid, label_texts)?,
        baseline: Some(pretrained_valid_accuracy),
    };
    let train_labels = train.iter().map(|e| e.1).collect();
    let outcome = match cfg.loss {
        FineTuneLoss::Pairs => {
            let model = encoder.model().clone();
            let objective = ContrastiveObjective { encoder, cfg, record_tokens, label_tokens, train_labels, valid, label_texts, out };
            fit(&objective, model, &run)?
        }
        FineTuneLoss::Labels => {
            let (objective, model) = LabelsObjective::new(encoder, cfg, record_tokens, train_labels, valid, label_texts, label_levels, out)?;
            fit(&objective, model, &run)?
        }
    };
    if outcome.best_epoch == 0 {
        SentenceEncoder::load(encoder_dir, &xmc_model::inference_device())?.save(out)?;
    }
    std::fs::remove_dir_all(&checkpoint).map_err(|e| TrainError::io(&checkpoint, e))?;
    Ok(ContrastiveOutcome {
        pretrained_valid_accuracy,
        best_valid_accuracy: outcome.best_score,
        best_epoch: outcome.best_epoch,
        epochs: outcome.epochs,
        train_seconds: outcome.seconds,
        records_per_s: outcome.records_run as f64 / outcome.seconds.max(1e-9),
    })
}

