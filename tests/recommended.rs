//! The recommended recipe as a catalogue team runs it: `xmc train` with no config on the bundled
//! sample, with the real all-MiniLM-L6-v2 (`cargo xtask fetch-models`; without it the test says
//! it was skipped). The fine-tuning is shortened (2 epochs, 3 records per label) to keep it to a
//! minute; every choice the recipe makes on the validation split is still made. A second
//! training reuses the first one's fine-tuned encoder (`contrastive.reuse`) and must choose the
//! same.

use std::process::ExitCode;

use xmc_e2e::{repo_root, xmc};
use xmc_ranker::{Choices, PathCombine, Setting};

#[test]
fn xmc_train_without_a_config_chooses_its_settings_on_validation_records_them_and_predicts() {
    let minilm = repo_root().join("models/all-MiniLM-L6-v2");
    if !minilm.join(xmc_model::SentenceEncoder::WEIGHTS).is_file() {
        eprintln!("skipped: needs {} (run `cargo xtask fetch-models`)", minilm.display());
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let dataset = repo_root().join("datasets/amazon-uk-sample.toml");
    let (dataset, out) = (dataset.to_str().unwrap(), tmp.path().join("model"));
    let encoder = format!("embed.encoder_dir={}", minilm.display());
    let shorter = ["--set", "contrastive.epochs=2", "--set", "contrastive.max_per_label=3", "--set", encoder.as_str()];

    let without_dataset = xmc(&[&["train", "--output", out.to_str().unwrap()][..], &shorter[..]].concat()).unwrap_err();
    assert!(without_dataset.contains("--dataset"), "{without_dataset}");
    assert!(!out.exists());

    let args = [&["train", "--dataset", dataset, "--output", out.to_str().unwrap()][..], &shorter[..]].concat();
    assert_eq!(xmc(&args).unwrap(), ExitCode::SUCCESS);

    // Every pair of the recipe's branching and path score was tried, and the best kept.
    let choices = Choices::load(&out).unwrap().expect("the folder records its choices");
    let tried: Vec<Setting> = choices.trials.iter().map(|t| t.setting).collect();
    for branching in [16, 6] {
        for path_combine in [PathCombine::Product, PathCombine::GeometricMean] {
            assert!(tried.contains(&Setting { branching, path_combine }), "{tried:?}");
        }
    }
    let chosen = choices.trials.iter().find(|t| t.setting == choices.chosen).expect("the chosen setting was tried");
    assert!(choices.trials.iter().all(|t| !t.beats(chosen)), "{choices:#?}");
    assert!(choices.note.contains("validation"), "{}", choices.note);
    let (honest, _) = choices.cross_chosen.expect("the choice cross-fitted is recorded");
    // A half's choice is at least as good as any other setting on that half, so scoring it on
    // the other half cannot beat the best setting's own figure.
    assert!(honest <= chosen.accuracy + 1e-9, "the choice cross-fitted {honest} beats the chosen setting's {}", chosen.accuracy);
    let epoch = choices.fine_tuning.expect("the fine-tuning's epoch is recorded");
    assert_eq!(epoch.epochs, 2);
    assert!((1..=2).contains(&epoch.best_epoch), "{epoch:?}");
    assert_eq!(choices.classifier_candidates.map(|c| c.0), Some(5));

    // The saved model is the chosen one.
    let model = xmc_ranker::XrModel::load(&out).unwrap();
    assert_eq!(model.meta.config.path_combine, choices.chosen.path_combine);
    assert_eq!(model.ranker.tree.nodes[0].children.len(), choices.chosen.branching);
    assert_eq!(model.classifier.is_some_and(|c| c.weight > 0.0), chosen.classifier);

    // And it predicts.
    let input = repo_root().join("datasets/amazon-uk-sample/products.csv");
    let predictions = tmp.path().join("p.jsonl");
    let args = ["predict", "--model", out.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", predictions.to_str().unwrap(), "--top-k", "3"];
    assert_eq!(xmc(&args).unwrap(), ExitCode::SUCCESS);
    let rows = std::fs::read_to_string(&predictions).unwrap().lines().count();
    let inputs = csv::Reader::from_path(&input).unwrap().records().count();
    assert_eq!(rows, inputs);

    // `contrastive.reuse` takes that folder's fine-tuned encoder instead of fine-tuning again,
    // and what follows the fine-tuning comes out the same.
    let again = tmp.path().join("again");
    let reuse = format!("contrastive.reuse={}", out.display());
    let args = [&["train", "--dataset", dataset, "--output", again.to_str().unwrap()][..], &shorter[..], &["--set", reuse.as_str()][..]].concat();
    assert_eq!(xmc(&args).unwrap(), ExitCode::SUCCESS);
    let reused = Choices::load(&again).unwrap().unwrap();
    assert_eq!(reused.chosen, choices.chosen);
    assert_eq!(reused.fine_tuning, choices.fine_tuning);
    let strip_seconds = |c: &Choices| c.trials.iter().map(|t| xmc_ranker::Trial { seconds: 0.0, ..t.clone() }).collect::<Vec<_>>();
    assert_eq!(strip_seconds(&reused), strip_seconds(&choices));
    assert_eq!(xmc_ranker::XrModel::load(&again).unwrap().classifier, xmc_ranker::XrModel::load(&out).unwrap().classifier);

    // `ranker.classifier_label_text`: the label texts read by the fine-tuned encoder are tried as
    // evidence beside the learnt vectors (kept only where they win cross-fitted), and the folder
    // still predicts every row.
    let text = tmp.path().join("text");
    let args = [&["train", "--dataset", dataset, "--output", text.to_str().unwrap()][..], &shorter[..], &["--set", reuse.as_str(), "--set", "ranker.classifier_label_text=true"][..]].concat();
    assert_eq!(xmc(&args).unwrap(), ExitCode::SUCCESS);
    let with_text = xmc_ranker::XrModel::load(&text).unwrap().classifier.unwrap();
    assert!(with_text.fit.without_text_cross_fitted_accuracy.is_some(), "the label text's evidence was tried: {:?}", with_text.fit);
    assert_eq!(with_text.text_weight > 0.0, with_text.text_vectors.len() == with_text.vectors.len(), "its vectors are kept with a weight");
    let predictions = tmp.path().join("text.jsonl");
    let args = ["predict", "--model", text.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", predictions.to_str().unwrap(), "--top-k", "3"];
    assert_eq!(xmc(&args).unwrap(), ExitCode::SUCCESS);
    assert_eq!(std::fs::read_to_string(&predictions).unwrap().lines().count(), inputs);

    // `[distill]`: a one-layer student of that encoder, kept whatever validation says
    // (`keep = "always"`): the folder records both models' validation figures, carries the
    // student in the classifier encoder's place, and predicts every row.
    let student = tmp.path().join("student");
    let distill = ["--set", "distill.layers=1", "--set", "distill.epochs=1", "--set", "distill.keep=\"always\""];
    let args = [&["train", "--dataset", dataset, "--output", student.to_str().unwrap()][..], &shorter[..], &["--set", reuse.as_str()][..], &distill[..]].concat();
    assert_eq!(xmc(&args).unwrap(), ExitCode::SUCCESS);
    let record: xmc_train::StudentRecord = serde_json::from_slice(&std::fs::read(student.join(xmc_train::StudentRecord::FILE)).unwrap()).unwrap();
    assert!(record.kept && record.note.contains("validation"), "{record:?}");
    assert_eq!(record.training.layers, vec![5]);
    assert!((0.0..=1.0).contains(&record.student.accuracy) && (0.0..=1.0).contains(&record.teacher.accuracy), "{record:?}");
    let encoder_dir = student.join(xmc_ranker::classifier_member_dir(0));
    assert_eq!(xmc_model::SentenceEncoder::load(&encoder_dir, &xmc_model::inference_device()).unwrap().layers(), 1);
    let teacher_figures = xmc_ranker::XrModel::load(&again).unwrap().classifier.unwrap();
    assert_ne!(xmc_ranker::XrModel::load(&student).unwrap().classifier.unwrap().fit, teacher_figures.fit, "the classifier is fitted for the student");
    let predictions = tmp.path().join("student.jsonl");
    let args = ["predict", "--model", student.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", predictions.to_str().unwrap(), "--top-k", "3"];
    assert_eq!(xmc(&args).unwrap(), ExitCode::SUCCESS);
    assert_eq!(std::fs::read_to_string(&predictions).unwrap().lines().count(), inputs);

    // `choose.max_records` and `ranker.max_valid_records`: the settings tried on a sample of the training records that keeps
    // the tail, the chosen one trained again on all of them (so its features are the full
    // vocabulary's, as in the folder trained without the sample).
    let sampled = tmp.path().join("sampled");
    let cap = ["--set", "choose.max_records=60", "--set", "ranker.max_valid_records=50"];
    let args = [&["train", "--dataset", dataset, "--output", sampled.to_str().unwrap()][..], &shorter[..], &["--set", reuse.as_str()][..], &cap[..]].concat();
    assert_eq!(xmc(&args).unwrap(), ExitCode::SUCCESS);
    let on_sample = Choices::load(&sampled).unwrap().unwrap();
    assert_eq!(on_sample.trial_records, Some(60));
    assert_eq!(on_sample.trials.len(), 4);
    assert!(on_sample.trials.iter().zip(&reused.trials).any(|(a, b)| a.ranker_accuracy != b.ranker_accuracy), "the trials ran on the sample");
    assert_eq!(reused.trial_records, None);
    let model = xmc_ranker::XrModel::load(&sampled).unwrap();
    assert_eq!(model.meta.layout.sparse_dim, xmc_ranker::XrModel::load(&again).unwrap().meta.layout.sparse_dim, "the chosen setting is trained on all records");
    assert_eq!(model.meta.config.path_combine, on_sample.chosen.path_combine);
    assert_eq!(model.ranker.tree.nodes[0].children.len(), on_sample.chosen.branching);
    // `ranker.max_valid_records`: the classifier fitted on 50 of the validation records.
    let full_fit = xmc_ranker::XrModel::load(&again).unwrap().classifier.unwrap().fit.records;
    assert!(full_fit > 50, "{full_fit}");
    assert_eq!(model.classifier.as_ref().unwrap().fit.records, 50);
}
