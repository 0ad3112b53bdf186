//! Contrastive fine-tuning of a (tiny, random) sentence encoder: records whose words say nothing
//! about their label's name end up nearest to their own label after training, and the folder it
//! writes loads back to the same encoder.

use std::path::{Path, PathBuf};

use xmc_model::{SentenceEncoder, inference_device};
use xmc_train::{ContrastiveConfig, FineTuneLoss, finetune_encoder, retrieval_accuracy};

fn tiny_bert() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../xmc-model/tests/fixtures/tiny-bert")
}

/// Six labels, three records each; a record's words (all in the tiny vocabulary) are unrelated
/// to its label's text.
fn examples() -> (Vec<String>, Vec<(String, u32)>) {
    let labels = ["arts", "bead", "fiction", "hobbies", "jewellery", "uk"].map(String::from).to_vec();
    let words = [
        ["model trains", "model rail", "trains rail"],
        ["science kits", "science sets", "kits sets"],
        ["toy vehicles", "toy figures", "vehicles figures"],
        ["children playsets", "children craft", "playsets craft"],
        ["amazon catalogue", "amazon making", "catalogue making"],
        ["railway price", "railway retailer", "price retailer"],
    ];
    let records = words.iter().enumerate().flat_map(|(l, ws)| ws.iter().map(move |w| (w.to_string(), l as u32))).collect();
    (labels, records)
}

#[test]
fn fine_tuning_pulls_records_to_their_labels_and_saves_a_loadable_encoder() {
    let (labels, records) = examples();
    let pairs: Vec<(&str, u32)> = records.iter().map(|(t, l)| (t.as_str(), *l)).collect();
    let out = tempfile::tempdir().unwrap();
    let cfg = ContrastiveConfig { epochs: 30, batch_size: 6, learning_rate: 3e-3, warmup_steps: 0, temperature: 0.1, ..ContrastiveConfig::default() };
    let outcome = finetune_encoder(&tiny_bert(), &pairs, &pairs, &labels, &[], &cfg, out.path(), false).unwrap();
    assert!(outcome.pretrained_valid_accuracy < 0.5, "a random encoder should not already know: {outcome:?}");
    assert!(outcome.best_valid_accuracy >= 0.9, "{outcome:?}");
    assert!(outcome.best_epoch > 0);
    let lines = std::fs::read_to_string(out.path().join("metrics.jsonl")).unwrap();
    assert_eq!(lines.lines().count(), 30);
    let losses: Vec<f64> = lines.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["train_loss"].as_f64().unwrap()).collect();
    assert!(losses[29] < losses[0] * 0.5, "loss {} -> {}", losses[0], losses[29]);

    let reloaded = SentenceEncoder::load(out.path(), &inference_device()).unwrap();
    let again = retrieval_accuracy(&reloaded, &pairs, &labels, 8).unwrap();
    assert_eq!(again, outcome.best_valid_accuracy, "the saved folder is the best epoch's encoder");
    let pretrained = SentenceEncoder::load(&tiny_bert(), &inference_device()).unwrap();
    assert_eq!(retrieval_accuracy(&pretrained, &pairs, &labels, 8).unwrap(), outcome.pretrained_valid_accuracy);
}

#[test]
fn bad_settings_are_refused_before_any_work() {
    let (labels, records) = examples();
    let pairs: Vec<(&str, u32)> = records.iter().map(|(t, l)| (t.as_str(), *l)).collect();
    let out = tempfile::tempdir().unwrap();
    for (cfg, key) in [
        (ContrastiveConfig { batch_size: 1, ..ContrastiveConfig::default() }, "batch_size"),
        (ContrastiveConfig { temperature: 0.0, ..ContrastiveConfig::default() }, "temperature"),
        (ContrastiveConfig { members: 0, ..ContrastiveConfig::default() }, "members"),
        (ContrastiveConfig { members: 2, ..ContrastiveConfig::default() }, "members"),
        (ContrastiveConfig { dropout: 1.0, ..ContrastiveConfig::default() }, "dropout"),
        (ContrastiveConfig { logit_adjustment: -0.5, loss: FineTuneLoss::Labels, ..ContrastiveConfig::default() }, "logit_adjustment"),
        (ContrastiveConfig { logit_adjustment: 0.5, ..ContrastiveConfig::default() }, "logit_adjustment"),
        (ContrastiveConfig { shared_ancestors: true, ..ContrastiveConfig::default() }, "shared_ancestors"),
        // With the labels loss, but no label paths to share along.
        (ContrastiveConfig { shared_ancestors: true, loss: FineTuneLoss::Labels, ..ContrastiveConfig::default() }, "shared_ancestors"),
    ] {
        let err = finetune_encoder(&tiny_bert(), &pairs, &pairs, &labels, &[], &cfg, out.path(), false).unwrap_err().to_string();
        assert!(err.contains(key), "{err}");
    }
}

/// The encoder fine-tuned against label vectors, long and fast enough for the tiny examples.
fn fine_tuning_as_classifier() -> ContrastiveConfig {
    ContrastiveConfig {
        epochs: 30,
        batch_size: 6,
        learning_rate: 3e-3,
        warmup_steps: 0,
        temperature: 0.1,
        loss: FineTuneLoss::Labels,
        ..ContrastiveConfig::default()
    }
}

#[test]
fn a_budgeted_fine_tuning_runs_its_budget_per_epoch_and_still_learns() {
    let (labels, records) = examples();
    let pairs: Vec<(&str, u32)> = records.iter().map(|(t, l)| (t.as_str(), *l)).collect();
    let out = tempfile::tempdir().unwrap();
    // 12 of the 18 records per epoch (two of each label), batches of similar length, and 7 of
    // the 18 records scoring each epoch.
    let cfg = ContrastiveConfig { max_records: 12, max_valid_records: 7, length_batches: true, ..fine_tuning_as_classifier() };
    let outcome = finetune_encoder(&tiny_bert(), &pairs, &pairs, &labels, &[], &cfg, out.path(), false).unwrap();
    let lines = std::fs::read_to_string(out.path().join("metrics.jsonl")).unwrap();
    let field = |l: &str, k: &str| serde_json::from_str::<serde_json::Value>(l).unwrap()[k].as_f64().unwrap();
    let steps: Vec<f64> = lines.lines().map(|l| field(l, "steps")).collect();
    assert_eq!(steps.len(), 30);
    assert!(steps.iter().enumerate().all(|(e, &s)| s == 2.0 * (e as f64 + 1.0)), "two batches of 6 per epoch: {steps:?}");
    // Each epoch's score is over the 7-record sample: a multiple of 1/7 (of all 18 records, only
    // 0 and 1 would be), and not always 0 or 1.
    let scores: Vec<f64> = lines.lines().map(|l| field(l, "valid_accuracy")).chain([outcome.pretrained_valid_accuracy]).collect();
    assert!(scores.iter().all(|a| ((a * 7.0).round() - a * 7.0).abs() < 1e-9), "{scores:?}");
    assert!(scores.iter().any(|&a| a > 0.0 && a < 1.0), "{scores:?}");
    assert!(outcome.best_valid_accuracy > outcome.pretrained_valid_accuracy + 0.3, "{outcome:?}");
}

#[test]
fn fine_tuning_against_label_vectors_learns_the_labels_and_writes_them_beside_the_encoder() {
    let (labels, records) = examples();
    let pairs: Vec<(&str, u32)> = records.iter().map(|(t, l)| (t.as_str(), *l)).collect();
    let out = tempfile::tempdir().unwrap();
    let cfg = fine_tuning_as_classifier();
    let outcome = finetune_encoder(&tiny_bert(), &pairs, &pairs, &labels, &[], &cfg, out.path(), false).unwrap();
    let pretrained = SentenceEncoder::load(&tiny_bert(), &inference_device()).unwrap();
    // Before any step the label vectors are the label texts' embeddings.
    assert_eq!(retrieval_accuracy(&pretrained, &pairs, &labels, 8).unwrap(), outcome.pretrained_valid_accuracy);
    assert!(outcome.pretrained_valid_accuracy < 0.5, "{outcome:?}");
    assert!(outcome.best_valid_accuracy >= 0.9, "{outcome:?}");
    let lines = std::fs::read_to_string(out.path().join("metrics.jsonl")).unwrap();
    let losses: Vec<f64> = lines.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["train_loss"].as_f64().unwrap()).collect();
    assert!(losses[losses.len() - 1] < losses[0] * 0.5, "loss {losses:?}");
    // The folder is an encoder like any other, with the best epoch's label vectors (unit rows,
    // one per label) beside it; the encoder differs from the pretrained one.
    let vectors: Vec<Vec<f32>> = serde_json::from_slice(&std::fs::read(out.path().join(xmc_train::LABEL_VECTORS)).unwrap()).unwrap();
    assert_eq!(vectors.len(), labels.len());
    assert!(vectors.iter().all(|v| (v.iter().map(|x| x * x).sum::<f32>() - 1.0).abs() < 1e-4));
    let tuned = SentenceEncoder::load(out.path(), &inference_device()).unwrap();
    let a = tuned.encode(&["model trains"], 1, |_| {}).unwrap();
    let b = pretrained.encode(&["model trains"], 1, |_| {}).unwrap();
    assert_ne!(a, b);
    assert!(!out.path().join("checkpoint").exists());
}

/// `contrastive.dropout` reaches the encoder while it fine-tunes (the losses move), and its masks
/// follow the run's seed: the same settings give the same run.
#[test]
fn dropout_changes_the_fine_tuning_and_follows_its_seed() {
    let (labels, records) = examples();
    let pairs: Vec<(&str, u32)> = records.iter().map(|(t, l)| (t.as_str(), *l)).collect();
    let losses = |cfg: &ContrastiveConfig| -> Vec<f64> {
        let out = tempfile::tempdir().unwrap();
        finetune_encoder(&tiny_bert(), &pairs, &pairs, &labels, &[], cfg, out.path(), false).unwrap();
        let lines = std::fs::read_to_string(out.path().join("metrics.jsonl")).unwrap();
        lines.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["train_loss"].as_f64().unwrap()).collect()
    };
    for loss in [FineTuneLoss::Labels, FineTuneLoss::Pairs] {
        let plain = ContrastiveConfig { epochs: 3, loss, ..fine_tuning_as_classifier() };
        let dropped = ContrastiveConfig { dropout: 0.3, ..plain.clone() };
        let (a, b) = (losses(&dropped), losses(&dropped));
        assert_eq!(a, b, "{loss:?}: one seed, one run");
        assert_ne!(a[0], losses(&plain)[0], "{loss:?}: the first epoch's loss with and without dropout");
        assert_ne!(a, losses(&ContrastiveConfig { seed: 7, ..dropped }), "{loss:?}: another seed, other masks");
    }
}

/// `contrastive.logit_adjustment` reaches the labels loss as each label's log share of the
/// training records: where every label has as many records it shifts all logits alike and
/// the run is the same; where they differ, the losses move.
#[test]
fn the_logit_adjustment_moves_the_fine_tuning_only_where_the_labels_shares_differ() {
    let (labels, records) = examples();
    let losses = |pairs: &[(&str, u32)], cfg: &ContrastiveConfig| -> Vec<f64> {
        let out = tempfile::tempdir().unwrap();
        finetune_encoder(&tiny_bert(), pairs, pairs, &labels, &[], cfg, out.path(), false).unwrap();
        let lines = std::fs::read_to_string(out.path().join("metrics.jsonl")).unwrap();
        lines.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["train_loss"].as_f64().unwrap()).collect()
    };
    let plain = ContrastiveConfig { epochs: 3, ..fine_tuning_as_classifier() };
    let adjusted = ContrastiveConfig { logit_adjustment: 1.0, ..plain.clone() };
    let even: Vec<(&str, u32)> = records.iter().map(|(t, l)| (t.as_str(), *l)).collect();
    let (a, b) = (losses(&even, &plain), losses(&even, &adjusted));
    assert!(a.iter().zip(&b).all(|(x, y)| (x - y).abs() < 1e-4), "equal shares: {a:?} against {b:?}");
    // One record of the last label, three of the others.
    let uneven: Vec<(&str, u32)> = even.iter().copied().filter(|&(t, l)| l != 5 || t == "railway price").collect();
    let (a, b) = (losses(&uneven, &plain), losses(&uneven, &adjusted));
    assert!((a[0] - b[0]).abs() > 1e-3, "unequal shares: {a:?} against {b:?}");
}

/// `contrastive.shared_ancestors`: two parents of three labels each, and one label under each
/// without a training record. Without sharing, both record-less labels are only ever negatives;
/// with it, the one under the first parent takes its parent's part, learnt from its siblings'
/// records, and ends nearer to those records than the other record-less label does.
#[test]
fn shared_ancestor_vectors_carry_a_parents_records_to_its_labels_without_any() {
    let (labels, records) = examples();
    let levels: Vec<Vec<String>> = labels.iter().enumerate().map(|(l, name)| vec![if l < 3 { "first" } else { "second" }.to_string(), name.clone()]).collect();
    // Labels 2 ("fiction", under the first parent) and 5 ("uk", under the second) have no records.
    let train: Vec<(&str, u32)> = records.iter().filter(|(_, l)| *l != 2 && *l != 5).map(|(t, l)| (t.as_str(), *l)).collect();
    let siblings: Vec<&str> = train.iter().filter(|(_, l)| *l < 2).map(|(t, _)| *t).collect();
    // How much nearer the first parent's records are to label 2 than to label 5, on average.
    let lead = |cfg: &ContrastiveConfig| -> f32 {
        let out = tempfile::tempdir().unwrap();
        finetune_encoder(&tiny_bert(), &train, &train, &labels, &levels, cfg, out.path(), false).unwrap();
        let vectors: Vec<Vec<f32>> = serde_json::from_slice(&std::fs::read(out.path().join(xmc_train::LABEL_VECTORS)).unwrap()).unwrap();
        let embedded = SentenceEncoder::load(out.path(), &inference_device()).unwrap().encode(&siblings, 8, |_| {}).unwrap();
        let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
        embedded.iter().map(|r| dot(r, &vectors[2]) - dot(r, &vectors[5])).sum::<f32>() / embedded.len() as f32
    };
    let plain = ContrastiveConfig { epochs: 10, ..fine_tuning_as_classifier() };
    let (without, with) = (lead(&plain), lead(&ContrastiveConfig { shared_ancestors: true, ..plain }));
    assert!(with > 0.2, "with shared ancestors, label 2 is nearer its siblings' records: {with}");
    assert!(with > without + 0.2, "{with} against {without} without sharing");
}

#[test]
fn a_distilled_student_keeps_the_teachers_choices_with_fewer_layers() {
    let (labels, records) = examples();
    let pairs: Vec<(&str, u32)> = records.iter().map(|(t, l)| (t.as_str(), *l)).collect();
    let teacher_dir = tempfile::tempdir().unwrap();
    let cfg = fine_tuning_as_classifier();
    let taught = finetune_encoder(&tiny_bert(), &pairs, &pairs, &labels, &[], &cfg, teacher_dir.path(), false).unwrap();
    assert!(taught.best_valid_accuracy >= 0.9, "{taught:?}");
    let vectors: Vec<Vec<f32>> = serde_json::from_slice(&std::fs::read(teacher_dir.path().join(xmc_train::LABEL_VECTORS)).unwrap()).unwrap();
    let teacher = SentenceEncoder::load(teacher_dir.path(), &inference_device()).unwrap();

    let out = tempfile::tempdir().unwrap();
    let distill = xmc_train::DistillConfig { layers: 1, epochs: 40, batch_size: 6, learning_rate: 3e-3, warmup_steps: 0, ..Default::default() };
    let mut seen = 0;
    let outcome = xmc_train::distill_encoder(teacher_dir.path(), &teacher, &vectors, 0.1, &pairs, &pairs, &distill, out.path(), false, |n| seen += n).unwrap();
    assert_eq!(seen, pairs.len(), "the teacher embeds every training record once");
    assert_eq!(outcome.layers, vec![1]);
    assert_eq!(outcome.teacher_valid_accuracy, taught.best_valid_accuracy);
    assert!(outcome.best_valid_accuracy >= outcome.teacher_valid_accuracy - 0.2, "{outcome:?}");

    // The student's folder: one layer, the teacher's label vectors, and it embeds like the
    // best epoch it was validated as.
    let student = SentenceEncoder::load(out.path(), &inference_device()).unwrap();
    assert_eq!(student.layers(), 1);
    let config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(out.path().join("config.json")).unwrap()).unwrap();
    assert_eq!(config["num_hidden_layers"], 1);
    let written: Vec<Vec<f32>> = serde_json::from_slice(&std::fs::read(out.path().join(xmc_train::LABEL_VECTORS)).unwrap()).unwrap();
    assert_eq!(written, vectors);
    let nearest = |e: &SentenceEncoder| -> Vec<usize> {
        let texts: Vec<&str> = pairs.iter().map(|p| p.0).collect();
        e.encode(&texts, 8, |_| {})
            .unwrap()
            .iter()
            .map(|q| (0..vectors.len()).max_by(|&a, &b| dot(q, &vectors[a]).total_cmp(&dot(q, &vectors[b]))).unwrap())
            .collect()
    };
    let accuracy = |choices: &[usize]| choices.iter().zip(&pairs).filter(|(c, p)| **c as u32 == p.1).count() as f64 / pairs.len() as f64;
    assert_eq!(accuracy(&nearest(&student)), outcome.best_valid_accuracy);
    // Distillation made the difference: the student's embeddings are nearer the teacher's than
    // the same layer's before training.
    let texts: Vec<&str> = pairs.iter().map(|p| p.0).collect();
    let cosine_to_teacher = |e: &SentenceEncoder| -> f32 {
        let (a, b) = (e.encode(&texts, 8, |_| {}).unwrap(), teacher.encode(&texts, 8, |_| {}).unwrap());
        a.iter().zip(&b).map(|(x, y)| dot(x, y)).sum::<f32>() / a.len() as f32
    };
    let untrained = teacher.student(&outcome.layers).unwrap();
    let (trained, before) = (cosine_to_teacher(&student), cosine_to_teacher(&untrained));
    assert!(1.0 - trained < (1.0 - before) / 10.0, "cosine to the teacher: student {trained}, untrained {before}");

    let too_many = xmc_train::DistillConfig { layers: 2, ..distill };
    let err = xmc_train::distill_encoder(teacher_dir.path(), &teacher, &vectors, 0.1, &pairs, &pairs, &too_many, out.path(), false, |_| {}).unwrap_err();
    assert!(err.to_string().contains("distill.layers"), "{err}");
}

fn dot(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
