//! The real pipeline on the bundled Amazon UK sample, through the command line.

use std::path::Path;
use std::process::ExitCode;

use xmc_e2e::{repo_root, xmc};

fn sample_descriptor() -> String {
    repo_root().join("datasets/amazon-uk-sample.toml").display().to_string()
}

#[test]
fn data_prepare_on_the_bundled_sample() {
    let out = tempfile::tempdir().unwrap();
    let dir = out.path().join("data");
    let code = xmc(&["data", "prepare", "--dataset", &sample_descriptor(), "--out", dir.to_str().unwrap()]).unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    let prepared = xmc_data::PreparedData::load(&dir).unwrap();
    let stats = &prepared.stats;
    assert_eq!(stats.rows_read, 2500);
    // The sample's rows without a category are skipped and counted, not lost.
    assert_eq!(stats.records + stats.skipped, 2500);
    assert_eq!(stats.skipped_by_kind.get("no category path").copied(), Some(stats.skipped));
    assert!(stats.skipped > 0);
    assert_eq!(stats.train_records + stats.valid_records + stats.test_records, stats.records);
    assert!(stats.labels > 100 && stats.tail_labels > 0 && stats.tail_labels < stats.labels);
    let first = &prepared.records[0];
    // The sample's descriptor puts the manufacturer in the input.
    let maker = first.record.manufacturer.clone().unwrap_or_default();
    assert!(first.input.starts_with(&format!("Retailer: Amazon UK Manufacturer: {maker} Price: ")), "{}", first.input);
    assert!(first.input.contains(&format!("Description: {}", first.record.title)));
    assert!(prepared.records.iter().all(|r| !r.input.contains("null")));
    // Every leaf with at least two records is trained on.
    for label in &prepared.labels.labels {
        let total = label.train_count + label.valid_count + label.test_count;
        assert!(total < 2 || label.train_count >= 1, "{}", label.path);
    }
    let code = xmc(&["data", "stats", dir.to_str().unwrap()]).unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    // The streaming stage from the command line writes the same artifact.
    let streamed = out.path().join("streamed");
    let code = xmc(&["data", "prepare", "--dataset", &sample_descriptor(), "--out", streamed.to_str().unwrap(), "--streaming"]).unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(xmc_data::PreparedData::load(&streamed).unwrap() == prepared, "streaming and in-memory artifacts differ");
}

/// A tiny T5 trained for two epochs: the pipeline's code path, not its accuracy.
const TINY_MODEL: &str = "[model]\npreset = \"tiny\"\nvocab_size = 400\nbeam_width = 3\ntop_k = 3\n[train]\nmax_epochs = 2\nbatch_size = 64\nlearning_rate = 0.003\nwarmup_steps = 5\n";

/// The tiny random BERT fixture stands in for the real sentence encoder, which CI may not have.
fn tiny_encoder() -> String {
    repo_root().join("crates/xmc-model/tests/fixtures/tiny-bert").display().to_string()
}

fn write_config(dir: &Path, extra: &str) -> String {
    let text = format!(
        "name = \"e2e\"\noutput_dir = {:?}\n[embed]\nencoder_dir = {:?}\n{TINY_MODEL}[data]\ndataset = {:?}\n{extra}",
        dir.join("experiments").display().to_string(),
        tiny_encoder(),
        sample_descriptor()
    );
    let path = dir.join("exp.toml");
    std::fs::write(&path, text).unwrap();
    path.display().to_string()
}

fn stage_fingerprint(dir: &Path) -> String {
    xmc_pipeline::StageRecord::load(&dir.join("experiments/e2e/data")).unwrap().fingerprint
}

fn modified(dir: &Path) -> std::time::SystemTime {
    std::fs::metadata(dir.join("experiments/e2e/data/records.parquet")).unwrap().modified().unwrap()
}

#[test]
fn experiment_runs_every_stage_and_caches_them() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "");
    let code = xmc(&["experiment", &config]).unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    let data_dir = tmp.path().join("experiments/e2e/data");
    for file in ["records.parquet", "labels.json", "stats.json", "config.json", "stage.json"] {
        assert!(data_dir.join(file).is_file(), "{file}");
    }
    for (stage, file) in [("embed", "embeddings.npy"), ("tree", "tree.json"), ("codes", "codes.json")] {
        assert!(tmp.path().join("experiments/e2e").join(stage).join(file).is_file(), "{stage}");
    }
    for (stage, file) in [("train", "model.bpk"), ("train", "metrics.jsonl"), ("predict", "predictions.jsonl")] {
        assert!(tmp.path().join("experiments/e2e").join(stage).join(file).is_file(), "{stage}/{file}");
    }
    for file in ["metrics.json", "report.md", "accuracy_by_frequency.png", "per_level.png", "training.png"] {
        assert!(tmp.path().join("experiments/e2e/report").join(file).is_file(), "report/{file}");
    }
    let predictions = std::fs::read_to_string(tmp.path().join("experiments/e2e/predict/predictions.jsonl")).unwrap();
    let data = xmc_data::PreparedData::load(&tmp.path().join("experiments/e2e/data")).unwrap();
    assert_eq!(predictions.lines().count(), data.split(xmc_data::Split::Test).count());
    let label_paths: std::collections::BTreeSet<&str> = data.labels.labels.iter().map(|l| l.path.as_str()).collect();
    for line in predictions.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let top = row["top_k"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        for entry in top {
            assert!(label_paths.contains(entry[0].as_str().unwrap()), "only real labels come out: {entry}");
        }
    }

    // The trained model categorises raw records, unlabelled ones included.
    let out = tmp.path().join("predictions.csv");
    let code = xmc(&[
        "predict",
        "--model",
        tmp.path().join("experiments/e2e/train").to_str().unwrap(),
        "--input",
        repo_root().join("datasets/amazon-uk-sample/products.csv").to_str().unwrap(),
        "--dataset",
        &sample_descriptor(),
        "--output",
        out.to_str().unwrap(),
        "--top-k",
        "2",
    ])
    .unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    let mut reader = csv::Reader::from_path(&out).unwrap();
    assert_eq!(reader.records().count(), 2500);
    let labels = xmc_data::LabelSet::load(&tmp.path().join("experiments/e2e/data")).unwrap();
    let codes = xmc_codes::LabelCodes::load(&tmp.path().join("experiments/e2e/codes")).unwrap();
    assert_eq!(codes.codes.len(), labels.len());
    let trie = codes.trie();
    assert_eq!(trie.len(), labels.len(), "every label gets exactly one code");
    let first = stage_fingerprint(tmp.path());
    let written = modified(tmp.path());

    // Same inputs: skipped, the artifact untouched.
    xmc(&["experiment", &config]).unwrap();
    assert_eq!(modified(tmp.path()), written);

    // --force and --from rerun with the same fingerprint.
    std::thread::sleep(std::time::Duration::from_millis(20));
    xmc(&["experiment", &config, "--force"]).unwrap();
    assert_ne!(modified(tmp.path()), written);
    assert_eq!(stage_fingerprint(tmp.path()), first);

    // A changed tree key reruns tree and codes but leaves data and embed alone.
    let embed_record = || xmc_pipeline::StageRecord::load(&tmp.path().join("experiments/e2e/embed")).unwrap();
    let tree_record = || xmc_pipeline::StageRecord::load(&tmp.path().join("experiments/e2e/tree")).unwrap();
    let (embed_before, tree_before) = (embed_record(), tree_record());
    xmc(&["experiment", &config, "--set", "tree.branching=3"]).unwrap();
    assert_eq!(embed_record(), embed_before);
    assert_ne!(tree_record().fingerprint, tree_before.fingerprint);
    assert_eq!(stage_fingerprint(tmp.path()), first);

    // --from reruns that stage and the later ones only.
    let (embed_before, tree_before) = (embed_record(), tree_record());
    std::thread::sleep(std::time::Duration::from_millis(20));
    xmc(&["experiment", &config, "--set", "tree.branching=3", "--from", "tree"]).unwrap();
    assert_eq!(embed_record(), embed_before);
    assert_ne!(tree_record().seconds, tree_before.seconds);
    assert_eq!(tree_record().fingerprint, tree_before.fingerprint);

    // A changed data key reruns with a new fingerprint, and everything after it.
    xmc(&["experiment", &config, "--set", "data.split.seed=7"]).unwrap();
    assert_ne!(stage_fingerprint(tmp.path()), first);
    assert_ne!(embed_record().fingerprint, embed_before.fingerprint);
}

#[test]
fn pifa_and_concatenated_embeddings_build_trees() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "");
    for kind in ["pifa", "sentence-pifa"] {
        let code = xmc(&["experiment", &config, "--set", &format!("embed.kind={kind}")]).unwrap();
        assert_eq!(code, ExitCode::SUCCESS, "{kind}");
        let meta = std::fs::read_to_string(tmp.path().join("experiments/e2e/embed/embeddings.json")).unwrap();
        assert!(meta.contains(kind), "{meta}");
        let codes = xmc_codes::LabelCodes::load(&tmp.path().join("experiments/e2e/codes")).unwrap();
        assert!(codes.stats.coherence.prefix_1 > codes.stats.coherence.random_prefix_1, "{kind}: {:?}", codes.stats.coherence);
    }
}

#[test]
fn bad_config_keys_and_values_are_named_before_any_work() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "tail_maxx = 3\n");
    let err = xmc(&["experiment", &config]).unwrap_err();
    assert!(err.contains("tail_maxx") && err.contains("tail_max"), "{err}");
    let config = write_config(tmp.path(), "[data.split]\ntrain = 0.9\n");
    let err = xmc(&["experiment", &config]).unwrap_err();
    assert!(err.contains("sum to 1"), "{err}");
    assert!(!tmp.path().join("experiments/e2e/data").exists());
}

#[test]
fn sweep_expands_and_writes_one_table() {
    let tmp = tempfile::tempdir().unwrap();
    let base = write_config(tmp.path(), "");
    let sweep = tmp.path().join("sweep.toml");
    std::fs::write(&sweep, format!("name = \"sw\"\nbase = {base:?}\n[vary]\n\"tree.branching\" = [2, 8]\n")).unwrap();
    let code = xmc(&["sweep", sweep.to_str().unwrap()]).unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    let table = std::fs::read_to_string(tmp.path().join("experiments/sw/comparison.md")).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].contains("tree.branching") && lines[0].contains("data.labels"));
    assert!(lines[2].contains("branching-2") && lines[3].contains("branching-8"));
    assert!(lines[2].contains("complete") && lines[0].contains("eval.accuracy") && lines[0].contains("eval.macro_f1"));
    assert!(lines[0].contains("codes.mean_code_length") && lines[0].contains("codes.coherence_1"));
    // A binary tree has longer codes than an 8-ary one.
    let column = lines[0].split(" | ").position(|c| c.trim() == "codes.mean_code_length").unwrap();
    let length = |line: &str| line.split(" | ").nth(column).unwrap().trim().parse::<f64>().unwrap();
    assert!(length(lines[2]) > length(lines[3]), "{table}");
    assert!(tmp.path().join("experiments/sw/comparison.csv").is_file());
}

/// The eval stage's metrics agree with the predictions it read, and `xmc evaluate` on a labelled
/// file reports the records whose label the model never saw.
#[test]
fn metrics_agree_with_predictions_and_evaluate_reports_unseen_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "");
    assert_eq!(xmc(&["experiment", &config]).unwrap(), ExitCode::SUCCESS);
    let run = tmp.path().join("experiments/e2e");
    let metrics = xmc_eval::Metrics::load(&run.join("eval/metrics.json")).unwrap();
    let predictions = std::fs::read_to_string(run.join("predict/predictions.jsonl")).unwrap();
    let rows: Vec<serde_json::Value> = predictions.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let correct = rows.iter().filter(|r| r["correct"] == true).count();
    assert_eq!(metrics.records, rows.len());
    assert!((metrics.accuracy - correct as f64 / rows.len() as f64).abs() < 1e-12);
    let in_top3 = rows.iter().filter(|r| r["top_k"].as_array().unwrap().iter().any(|e| e[0] == r["label"])).count();
    assert!((metrics.at_k[2].recall - in_top3 as f64 / rows.len() as f64).abs() < 1e-12);
    assert!(metrics.code_prefix.is_some(), "hierarchical runs get code-prefix credit");
    assert_eq!(metrics.levels[0].level, 0);
    assert!(metrics.levels[0].accuracy >= metrics.accuracy, "an ancestor is right whenever the leaf is");
    let report = std::fs::read_to_string(run.join("report/report.md")).unwrap();
    assert!(report.contains(&format!("| accuracy (top 1) | {:.1}", 100.0 * metrics.accuracy)), "{report}");
    // The brand target (the sample's manufacturer column) has its own scores in the report.
    let brand = xmc_brand::BrandMetrics::load(&run.join("brand/brand_metrics.json")).expect("brand metrics");
    assert_eq!(brand.records, metrics.records);
    assert!(brand.accuracy > 0.3, "manufacturers are mostly named in the titles: {brand:?}");
    assert!(report.contains("## Brand (second target)"), "{report}");

    // A labelled file with one category the model never saw.
    let sample = std::fs::read_to_string(repo_root().join("datasets/amazon-uk-sample/products.csv")).unwrap();
    let mut reader = csv::ReaderBuilder::new().from_reader(sample.as_bytes());
    let headers = reader.headers().unwrap().clone();
    let category = headers.iter().position(|h| h.contains("categor")).expect("a category column");
    let mut writer = csv::Writer::from_path(tmp.path().join("labelled.csv")).unwrap();
    writer.write_record(headers.iter()).unwrap();
    let mut written = 0;
    for (i, row) in reader.records().enumerate() {
        let mut row: Vec<String> = row.unwrap().iter().map(str::to_string).collect();
        if row[category].is_empty() {
            continue;
        }
        if i < 3 {
            row[category] = "Brand New Top > Never Seen Leaf".into();
        }
        writer.write_record(&row).unwrap();
        written += 1;
        if written == 40 {
            break;
        }
    }
    writer.flush().unwrap();
    let out = tmp.path().join("eval/metrics.json");
    let code = xmc(&[
        "evaluate",
        "--model",
        run.join("train").to_str().unwrap(),
        "--input",
        tmp.path().join("labelled.csv").to_str().unwrap(),
        "--output",
        out.to_str().unwrap(),
    ])
    .unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    let m = xmc_eval::Metrics::load(&out).unwrap();
    assert_eq!(m.records, 40);
    let unseen_records: usize = m.unseen.labels.iter().filter(|(p, _)| p == "Brand New Top > Never Seen Leaf").map(|(_, n)| *n).sum();
    assert_eq!(unseen_records, 3, "{:?}", m.unseen);
    assert_eq!(m.buckets[0].bucket, "unseen");
    assert_eq!(m.buckets[0].accuracy, Some(0.0), "a label never seen is always an error");
}

/// `xmc evaluate` on the bundled sample scores what `xmc predict` wrote for the same file: its
/// record count is the sample's labelled records and its accuracy the share of them whose top
/// prediction is their category.
fn evaluate_agrees_with_predict(model: &Path, predictions: &Path, out: &Path) {
    let input = repo_root().join("datasets/amazon-uk-sample/products.csv");
    let args = ["evaluate", "--model", model.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap(), "--skip-bad-rows"];
    assert_eq!(xmc(&args).unwrap(), ExitCode::SUCCESS);
    let metrics = xmc_eval::Metrics::load(out).unwrap();
    let mut reader = csv::Reader::from_path(&input).unwrap();
    let truth: std::collections::HashMap<String, String> =
        reader.deserialize::<(String, String, String, String, String, String)>().map(|r| r.unwrap()).map(|r| (r.0, r.5)).filter(|(_, c)| !c.is_empty()).collect();
    let rows = xmc_methods::scoring::read_predictions(predictions).unwrap();
    let labelled: Vec<_> = rows.iter().filter(|r| truth.contains_key(&r.id)).collect();
    assert_eq!(metrics.records, labelled.len());
    assert!(labelled.len() > 2000, "the sample's labelled records: {}", labelled.len());
    let correct = labelled.iter().filter(|r| r.path.as_deref() == Some(truth[&r.id].as_str())).count();
    assert!((metrics.accuracy - correct as f64 / labelled.len() as f64).abs() < 1e-12, "{} vs {correct}/{}", metrics.accuracy, labelled.len());
}

/// The CI regression check: a run passes its own baseline, fails one set above it, and
/// `--update-baseline` rewrites the file.
#[test]
fn baseline_check_fails_a_regressed_run() {
    let tmp = tempfile::tempdir().unwrap();
    let baseline = tmp.path().join("baseline.json");
    let config = write_config(tmp.path(), &format!("[eval]\nbaseline = {:?}\nbootstrap = 0\n", baseline.display().to_string()));
    let err = xmc(&["experiment", &config]).unwrap_err();
    assert!(err.contains("--update-baseline"), "a missing baseline says how to write it: {err}");
    assert_eq!(xmc(&["experiment", &config, "--update-baseline"]).unwrap(), ExitCode::SUCCESS);
    let written = xmc_eval::Baseline::load(&baseline).unwrap();
    assert_eq!(xmc(&["experiment", &config]).unwrap(), ExitCode::SUCCESS, "a run passes its own baseline");
    let raised = xmc_eval::Baseline { accuracy: written.accuracy + written.tolerance + 0.01, ..written };
    raised.save(&baseline).unwrap();
    let err = xmc(&["experiment", &config]).unwrap_err();
    assert!(err.contains("regression") && err.contains("accuracy"), "{err}");
}

/// `model.encoder = "bert"`: the sentence encoder's BERT (here the tiny fixture) and its WordPiece
/// tokenizer under a T5 decoder; the model folder carries the input tokenizer and reloads to the
/// same predictions.
#[test]
fn bert_encoder_option_trains_saves_and_predicts() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "");
    let encoder = format!("model.encoder_dir={:?}", tiny_encoder());
    assert_eq!(xmc(&["experiment", &config, "--set", "model.encoder=bert", "--set", &encoder]).unwrap(), ExitCode::SUCCESS);
    let run = tmp.path().join("experiments/e2e");
    assert!(run.join("train/input_tokenizer.json").is_file());
    let t5: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("train/t5.json")).unwrap()).unwrap();
    assert!(t5["bert_encoder"]["hidden_size"].as_u64().is_some(), "{t5}");
    let stage = xmc_pipeline::StageRecord::load(&run.join("train")).unwrap();
    assert!(stage.inputs.contains_key("bert_encoder_weights"), "the encoder's weights are a train input");

    // The stage's predictions and a reload of the model folder agree.
    let stage_rows = std::fs::read_to_string(run.join("predict/predictions.jsonl")).unwrap();
    let trained = xmc_train_model(&run.join("train"));
    let data = xmc_data::PreparedData::load(&run.join("data")).unwrap();
    let texts: Vec<&str> = data.split(xmc_data::Split::Test).map(|r| r.input.as_str()).collect();
    let hyps = xmc_methods::generative::predict_texts(&trained, &texts, 3, 3, |_| {}).unwrap();
    for (line, h) in stage_rows.lines().zip(&hyps) {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(row["path"].as_str().unwrap(), trained.labels.get(h[0].label).unwrap().path);
    }
    // A different encoder folder is a different training input.
    let err = xmc(&["experiment", &config, "--set", "model.encoder=bert", "--set", "model.encoder_dir=\"/nonexistent\""]).unwrap_err();
    assert!(err.contains("/nonexistent"), "{err}");
}

fn xmc_train_model(dir: &Path) -> xmc_train::TrainedModel {
    xmc_train::TrainedModel::load(dir, &xmc_model::inference_device()).unwrap()
}

/// `method = "cluster-search"`: the train stage fine-tunes the sentence encoder (contrastive),
/// predictions come from the level-by-level search (only real labels), are scored by the same
/// eval stage, with code-prefix credit; PIFA label vectors are refused; `contrastive.epochs = 0`
/// searches with the pretrained encoder.
#[test]
fn cluster_search_runs_through_eval_and_report() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "[search]\nbeam = 3\ntop_k = 3\n[contrastive]\nepochs = 1\nmax_per_label = 2\nbatch_size = 16\n");
    let code = xmc(&["experiment", &config, "--set", "method=cluster-search"]).unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    let run = tmp.path().join("experiments/e2e");
    assert!(!run.join("train/model.bpk").exists(), "no T5 is trained");
    assert!(run.join("train/encoder/model.bpk").is_file(), "the fine-tuned encoder is in the train stage");
    let epochs = std::fs::read_to_string(run.join("train/encoder/metrics.jsonl")).unwrap();
    assert_eq!(epochs.lines().count(), 1);
    let data = xmc_data::PreparedData::load(&run.join("data")).unwrap();
    let rows = std::fs::read_to_string(run.join("predict/predictions.jsonl")).unwrap();
    assert_eq!(rows.lines().count(), data.split(xmc_data::Split::Test).count());
    for line in rows.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let top = row["top_k"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        assert!(top.iter().all(|t| data.labels.labels.iter().any(|l| l.path == t[0].as_str().unwrap())));
    }
    let metrics = xmc_eval::Metrics::load(&run.join("report/metrics.json")).unwrap();
    assert!(metrics.code_prefix.is_some());
    let report = std::fs::read_to_string(run.join("report/report.md")).unwrap();
    assert!(report.contains("cluster search") && report.contains("contrastive"), "{report}");
    let err = xmc(&["experiment", &config, "--set", "method=cluster-search", "--set", "embed.kind=pifa"]).unwrap_err();
    assert!(err.contains("embed.kind"), "{err}");
    // Leaves added after training: near copies of existing labels' names, placed in the tree.
    let added: Vec<String> = data.labels.labels.iter().take(30).map(|l| format!("{} Deluxe", l.path)).collect();
    let labels_file = tmp.path().join("new-labels.txt");
    std::fs::write(&labels_file, format!("{}\n\n", added.join("\n"))).unwrap();
    let set_file = format!("search.new_labels={:?}", labels_file.display().to_string());
    let code = xmc(&["experiment", &config, "--set", "method=cluster-search", "--set", &set_file]).unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    let placed: Vec<serde_json::Value> = serde_json::from_str(&std::fs::read_to_string(run.join("predict/new_labels.json")).unwrap()).unwrap();
    assert_eq!(placed.len(), 30);
    let mut codes = xmc_codes::LabelCodes::load(&run.join("codes")).unwrap().codes;
    for (i, p) in placed.iter().enumerate() {
        assert_eq!(p["id"].as_u64().unwrap() as usize, data.labels.len() + i);
        assert_eq!(p["path"].as_str().unwrap(), added[i]);
        codes.push(p["code"].as_array().unwrap().iter().map(|c| c.as_u64().unwrap() as u32).collect());
    }
    xmc_codes::PrefixTrie::from_codes(&codes).expect("the new codes are unique and prefix-free among the old ones");
    let rows = std::fs::read_to_string(run.join("predict/predictions.jsonl")).unwrap();
    assert!(rows.contains(" Deluxe\""), "an added label is predicted for some record");
    assert!(xmc_eval::Metrics::load(&run.join("report/metrics.json")).is_ok(), "eval scores predictions of added labels");
    std::fs::write(&labels_file, format!("Toys > Brand New\n{}\n", data.labels.labels[0].path)).unwrap();
    let err = xmc(&["experiment", &config, "--set", "method=cluster-search", "--set", &set_file]).unwrap_err();
    assert!(err.contains("line 2") && err.contains("already a label"), "{err}");
    let err = xmc(&["experiment", &config, "--set", &set_file]).unwrap_err();
    assert!(err.contains("cluster-search"), "{err}");
    let code = xmc(&["experiment", &config, "--set", "method=cluster-search", "--set", "contrastive.epochs=0"]).unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    let meta: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run.join("train/search.json")).unwrap()).unwrap();
    assert!(meta["fine_tuned"] == false && !run.join("train/encoder/metrics.jsonl").exists(), "the pretrained encoder is used as it is");
    let report = std::fs::read_to_string(run.join("report/report.md")).unwrap();
    assert!(report.contains("not fine-tuned"), "{report}");
}

/// A cluster-search train stage is a model folder: `xmc predict` answers what the predict stage
/// did and `xmc evaluate` scores it; `xmc labels add` writes a new folder whose added leaves are predicted, leaves the old
/// folder as it was, and is refused (with the reason) by the methods that learn labels from
/// records.
#[test]
fn cluster_search_model_folder_predicts_and_takes_new_labels() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "[search]\nbeam = 3\ntop_k = 3\n[contrastive]\nepochs = 0\n");
    assert_eq!(xmc(&["experiment", &config, "--set", "method=cluster-search"]).unwrap(), ExitCode::SUCCESS);
    let run = tmp.path().join("experiments/e2e");
    let model = run.join("train");
    let stage = xmc_methods::scoring::read_predictions(&run.join("predict/predictions.jsonl")).unwrap();
    let input = repo_root().join("datasets/amazon-uk-sample/products.csv");
    let out = tmp.path().join("pred.jsonl");
    let predict = |model: &Path, out: &Path| {
        xmc(&["predict", "--model", model.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap(), "--top-k", "3"])
    };
    assert_eq!(predict(&model, &out).unwrap(), ExitCode::SUCCESS);
    let cli: std::collections::HashMap<String, xmc_methods::PredictionRow> =
        xmc_methods::scoring::read_predictions(&out).unwrap().into_iter().map(|r| (r.id.clone(), r)).collect();
    for row in &stage {
        let mine = &cli[&row.id];
        assert_eq!(mine.path, row.path, "record {}", row.id);
        assert!((mine.score.unwrap() - row.score.unwrap()).abs() < 1e-5, "record {}", row.id);
    }
    evaluate_agrees_with_predict(&model, &out, &tmp.path().join("evaluate.json"));

    // New leaves named like existing ones ("<path> Deluxe"): placed, predicted, old folder untouched.
    let data = xmc_data::PreparedData::load(&run.join("data")).unwrap();
    let added: Vec<String> = data.labels.labels.iter().take(30).map(|l| format!("{} Deluxe", l.path)).collect();
    let labels_file = tmp.path().join("new-labels.txt");
    std::fs::write(&labels_file, added.join("\n") + "\n").unwrap();
    let before = std::fs::read(model.join("labels.json")).unwrap();
    let grown = tmp.path().join("grown");
    let args = |m: &Path, o: &Path| ["labels", "add", "--model", m.to_str().unwrap(), "--labels", labels_file.to_str().unwrap(), "--output", o.to_str().unwrap()].map(String::from);
    let code = xmc(&args(&model, &grown).each_ref().map(String::as_str)).unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(std::fs::read(model.join("labels.json")).unwrap(), before, "the source folder is not changed");
    let p = xmc_methods::Predictor::load(&grown).unwrap();
    assert_eq!(p.labels().len(), data.labels.len() + 30);
    assert_eq!(p.labels().get(data.labels.len() as u32).unwrap().path, added[0]);
    let codes = p.codes().unwrap();
    xmc_codes::PrefixTrie::from_codes(&codes).expect("the new codes are unique and prefix-free among the old ones");
    let out2 = tmp.path().join("pred-grown.jsonl");
    assert_eq!(predict(&grown, &out2).unwrap(), ExitCode::SUCCESS);
    let rows = std::fs::read_to_string(&out2).unwrap();
    assert!(rows.contains(" Deluxe\""), "an added label is predicted for some record");
    // Adding the same labels again names the line; an existing output is refused.
    let again = tmp.path().join("again");
    let err = xmc(&args(&grown, &again).each_ref().map(String::as_str)).unwrap_err();
    assert!(err.contains("line 1") && err.contains("already a label"), "{err}");
    assert!(!again.exists());
    let err = xmc(&args(&model, &grown).each_ref().map(String::as_str)).unwrap_err();
    assert!(err.contains("already exists"), "{err}");

    // A ranker learns each label from its records: it refuses, saying so.
    assert_eq!(xmc(&["experiment", &config, "--set", "method=xr"]).unwrap(), ExitCode::SUCCESS);
    let refused = tmp.path().join("refused");
    let err = xmc(&args(&model, &refused).each_ref().map(String::as_str)).unwrap_err();
    assert!(err.contains("`xr` model cannot take new labels") && err.contains("cluster-search"), "{err}");
    assert!(!refused.exists());
}

/// `method = "xr"`: TF-IDF features, linear scorers at every node of the tree, beam over levels;
/// scored by the same eval stage; the train folder is a model folder that `xmc predict` and
/// `xmc evaluate` load (with the model's own descriptor) and predicts what the predict stage did.
/// With `features = "both"` the folder carries its sentence encoder.
#[test]
fn xr_ranker_runs_through_eval_report_and_the_command_line() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "[ranker]\nbeam = 5\ntop_k = 4\n");
    let code = xmc(&["experiment", &config, "--set", "method=xr"]).unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    let run = tmp.path().join("experiments/e2e");
    assert!(run.join("train/xr.json").is_file() && !run.join("train/model.bpk").exists(), "no T5 is trained");
    let data = xmc_data::PreparedData::load(&run.join("data")).unwrap();
    let rows = std::fs::read_to_string(run.join("predict/predictions.jsonl")).unwrap();
    let test: Vec<_> = data.split(xmc_data::Split::Test).collect();
    assert_eq!(rows.lines().count(), test.len());
    let mut stage_top: std::collections::HashMap<String, String> = Default::default();
    for line in rows.lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        let top = row["top_k"].as_array().unwrap();
        assert_eq!(top.len(), 4);
        assert!(top.iter().all(|t| data.labels.labels.iter().any(|l| l.path == t[0].as_str().unwrap())));
        let scores: Vec<f64> = top.iter().map(|t| t[1].as_f64().unwrap()).collect();
        assert!(scores.windows(2).all(|w| w[0] >= w[1]), "{scores:?}");
        stage_top.insert(row["id"].as_str().unwrap().to_string(), row["path"].as_str().unwrap().to_string());
    }
    let metrics = xmc_eval::Metrics::load(&run.join("report/metrics.json")).unwrap();
    assert!(metrics.code_prefix.is_some());
    // TF-IDF on the sample's titles is far above chance (162 labels).
    assert!(metrics.accuracy > 0.3, "accuracy {}", metrics.accuracy);
    let report = std::fs::read_to_string(run.join("report/report.md")).unwrap();
    assert!(report.contains("XR ranker"), "{report}");
    // Confidences: a temperature fitted on validation, their calibration error in the report
    // with its reliability plot, and a top-1 confidence below 1 even when one label is asked for.
    let cal = xmc_methods::calibration::Calibration::load(&run.join("train")).unwrap();
    assert!(cal.records > 0 && cal.temperature > 0.0 && cal.valid_ece_after <= cal.valid_ece_before + 1e-9, "{cal:?}");
    let reliability = metrics.calibration.as_ref().expect("the predictions carry confidences");
    assert!(reliability.ece >= 0.0 && reliability.ece < 0.5, "{reliability:?}");
    assert!(report.contains("expected calibration error") && run.join("report/reliability.png").is_file());
    let p = xmc_methods::Predictor::load(&run.join("train")).unwrap();
    let one = p.predict_texts(&[test[0].input.as_str(), test[1].input.as_str()], 5, 1, |_| {}).unwrap();
    assert!(one.iter().all(|r| r.len() == 1 && r[0].1 > 0.0 && r[0].1 < 1.0), "{one:?}");

    // The command line: no --dataset (the model's own), the same predictions as the stage.
    let input = repo_root().join("datasets/amazon-uk-sample/products.csv");
    let out = tmp.path().join("pred.jsonl");
    let model = run.join("train");
    let code = xmc(&["predict", "--model", model.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap(), "--top-k", "4"]).unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    let mut matched = 0;
    for line in std::fs::read_to_string(&out).unwrap().lines() {
        let row: serde_json::Value = serde_json::from_str(line).unwrap();
        if let Some(path) = stage_top.get(row["id"].as_str().unwrap()) {
            assert_eq!(row["path"].as_str().unwrap(), path);
            matched += 1;
        }
    }
    assert_eq!(matched, test.len());

    // Streaming: the same predictions whatever the chunk size and the output format.
    let jsonl = xmc_methods::scoring::read_predictions(&out).unwrap();
    for (name, chunk) in [("chunked.parquet", "7"), ("chunked.csv", "1000"), ("chunked.jsonl", "1")] {
        let path = tmp.path().join(name);
        let args = ["predict", "--model", model.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", path.to_str().unwrap(), "--top-k", "4", "--chunk-size", chunk];
        assert_eq!(xmc(&args).unwrap(), ExitCode::SUCCESS);
        let back = xmc_methods::scoring::read_predictions(&path).unwrap();
        assert_eq!(back.len(), jsonl.len(), "{name}");
        for (a, b) in back.iter().zip(&jsonl) {
            assert_eq!((&a.id, &a.path), (&b.id, &b.path), "{name}");
            let paths = |r: &xmc_methods::PredictionRow| r.top_k.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
            assert_eq!(paths(a), paths(b), "{name}");
            assert!(a.top_k.iter().zip(&b.top_k).all(|(x, y)| (x.1 - y.1).abs() < 1e-5), "{name}");
        }
    }
    // Sharded and resumable: three CSV shards into a folder of Parquet outputs. A run that fails
    // on the second shard (a bad row) leaves the first shard's output whole and nothing else at a
    // final name; fixed and rerun, it skips the first and writes the rest; the union equals the
    // single-file run. `--shard i/n` splits the shards between processes.
    let shards = tmp.path().join("shards");
    std::fs::create_dir(&shards).unwrap();
    let write_shards = |with_bad_row: bool| {
        let mut reader = csv::Reader::from_path(&input).unwrap();
        let header = reader.headers().unwrap().clone();
        let mut writers: Vec<csv::Writer<std::fs::File>> =
            (0..3).map(|i| csv::Writer::from_path(shards.join(format!("part-{i}.csv"))).unwrap()).collect();
        for w in &mut writers {
            w.write_record(&header).unwrap();
        }
        if with_bad_row {
            // The second shard starts with a row whose title is empty.
            let bad: Vec<&str> = header.iter().map(|h| if h == "id" { "bad-row" } else { "" }).collect();
            writers[1].write_record(&bad).unwrap();
        }
        for (i, record) in reader.records().enumerate() {
            writers[i * 3 / 2500].write_record(&record.unwrap()).unwrap();
        }
    };
    write_shards(true);
    let sharded_out = tmp.path().join("sharded");
    let run_sharded = |extra: &[&str]| {
        let mut args = vec!["predict", "--model", model.to_str().unwrap(), "--input", shards.to_str().unwrap(), "--output", sharded_out.to_str().unwrap(), "--top-k", "4"];
        args.extend_from_slice(extra);
        xmc(&args)
    };
    let err = run_sharded(&[]).unwrap_err();
    assert!(err.contains("part-1.csv:2") && err.contains("empty title"), "{err}");
    let finished = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).filter(|n| !n.starts_with('.')).collect();
        names.sort();
        names
    };
    assert_eq!(finished(&sharded_out), ["part-0.parquet"]);
    let first_written = std::fs::metadata(sharded_out.join("part-0.parquet")).unwrap().modified().unwrap();
    write_shards(false);
    assert_eq!(run_sharded(&["--shard", "1/2"]).unwrap(), ExitCode::SUCCESS);
    assert_eq!(finished(&sharded_out), ["part-0.parquet", "part-1.parquet"], "1/2 takes the second shard only");
    assert_eq!(run_sharded(&[]).unwrap(), ExitCode::SUCCESS);
    assert_eq!(finished(&sharded_out), ["part-0.parquet", "part-1.parquet", "part-2.parquet"]);
    assert_eq!(std::fs::metadata(sharded_out.join("part-0.parquet")).unwrap().modified().unwrap(), first_written, "a finished shard is not redone");
    let union: Vec<xmc_methods::PredictionRow> =
        (0..3).flat_map(|i| xmc_methods::scoring::read_predictions(&sharded_out.join(format!("part-{i}.parquet"))).unwrap()).collect();
    assert_eq!(union.len(), jsonl.len());
    for (a, b) in union.iter().zip(&jsonl) {
        assert_eq!((&a.id, &a.path), (&b.id, &b.path));
        assert!((a.score.unwrap() - b.score.unwrap()).abs() < 1e-5);
    }

    // Truncated or altered model files: loading (and predicting with what loads) ends in a result
    // or an error naming the folder; never a panic.
    let mut cases = 0;
    let files: Vec<_> = std::fs::read_dir(&model).unwrap().map(|e| e.unwrap().path()).filter(|p| p.is_file()).collect();
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        let n = bytes.len();
        let variants: Vec<Vec<u8>> = vec![
            Vec::new(),
            bytes[..n / 3].to_vec(),
            bytes[..n.saturating_sub(1)].to_vec(),
            { let mut b = bytes.clone(); if n > 0 { b[n / 2] ^= 0x5a; } b },
            { let mut b = bytes.clone(); if n > 10 { b[n - 5] = b'9'; } b },
            { let mut b = bytes.clone(); if n > 0 { b[0] = b'#'; } b },
        ];
        for variant in variants {
            let copy = tmp.path().join("altered");
            let _ = std::fs::remove_dir_all(&copy);
            std::fs::create_dir(&copy).unwrap();
            for f in &files {
                std::fs::copy(f, copy.join(f.file_name().unwrap())).unwrap();
            }
            std::fs::write(copy.join(file.file_name().unwrap()), &variant).unwrap();
            cases += 1;
            match xmc_methods::Predictor::load(&copy) {
                Ok(p) => {
                    let _ = p.predict_texts(&[test[0].input.as_str()], 5, 3, |_| {});
                }
                Err(e) => assert!(format!("{e:#}").contains("altered"), "{}: {e:#}", file.display()),
            }
        }
    }
    eprintln!("model-folder corruption cases: {cases}");
    assert!(cases >= 30);

    // A file without the optional columns, with bad rows: each bad row is refused with its line,
    // or with --skip-bad-rows written to the rejects file while the rest is predicted.
    let bad = tmp.path().join("bad.csv");
    std::fs::write(&bad, "id,title,price\na,Hornby coach,3\nb,,4\nc,Lego car,zz\nd,Brio train,5\n").unwrap();
    let bad_out = tmp.path().join("bad.jsonl");
    let args = ["predict", "--model", model.to_str().unwrap(), "--input", bad.to_str().unwrap(), "--output", bad_out.to_str().unwrap()];
    let err = xmc(&args).unwrap_err();
    assert!(err.contains("bad.csv:3") && err.contains("empty title"), "{err}");
    assert!(!bad_out.exists(), "a failed run leaves no output at the final name");
    let skip: Vec<&str> = args.iter().copied().chain(["--skip-bad-rows"]).collect();
    assert_eq!(xmc(&skip).unwrap(), ExitCode::SUCCESS);
    let kept: Vec<String> = xmc_methods::scoring::read_predictions(&bad_out).unwrap().into_iter().map(|r| r.id).collect();
    assert_eq!(kept, ["a", "d"]);
    let rejects = std::fs::read_to_string(tmp.path().join("bad.jsonl.rejects.jsonl")).unwrap();
    let lines: Vec<u64> = rejects.lines().map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["line"].as_u64().unwrap()).collect();
    assert_eq!(lines, [3, 4]);

    let metrics_out = tmp.path().join("metrics.json");
    let code = xmc(&["evaluate", "--model", model.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", metrics_out.to_str().unwrap(), "--skip-bad-rows"]).unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    let all = xmc_eval::Metrics::load(&metrics_out).unwrap();
    assert_eq!(all.records, data.records.len());
    assert!(all.accuracy > metrics.accuracy, "the whole file includes the training records");

    // `xmc train`: the same config from a file straight to a model folder that predicts what the
    // experiment's model does; an existing output is refused.
    let trained = tmp.path().join("models/xr");
    let code = xmc(&["train", "--config", &config, "--set", "method=xr", "--input", input.to_str().unwrap(), "--output", trained.to_str().unwrap()]).unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(trained.join("xr.json").is_file());
    assert_eq!(std::fs::read_dir(tmp.path().join("models")).unwrap().count(), 1, "the work folder is removed");
    let out2 = tmp.path().join("pred2.jsonl");
    let code = xmc(&["predict", "--model", trained.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", out2.to_str().unwrap(), "--top-k", "4"]).unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(std::fs::read_to_string(&out2).unwrap(), std::fs::read_to_string(&out).unwrap());
    let err = xmc(&["train", "--config", &config, "--output", trained.to_str().unwrap()]).unwrap_err();
    assert!(err.contains("already exists"), "{err}");

    // Dense features beside TF-IDF: the folder carries the encoder and predicts on its own.
    let code = xmc(&["experiment", &config, "--set", "method=xr", "--set", "ranker.features=both", "--set", "contrastive.epochs=0"]).unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    assert!(run.join("train/encoder/model.safetensors").is_file());
    let p = xmc_methods::Predictor::load(&model).unwrap();
    assert_eq!(p.method(), "xr");
    let ranked = p.predict_texts(&[test[0].input.as_str()], 5, 2, |_| {}).unwrap();
    assert_eq!(ranked[0].len(), 2);
    // A folder of no method is refused, naming what it lacks.
    let err = xmc_methods::Predictor::load(&run.join("data")).err().unwrap().to_string();
    assert!(err.contains("not a model folder") && err.contains("xr.json"), "{err}");
}

/// `method = "fused"`: ranker and generator candidates rescored by a combination fitted on the
/// validation split; the report compares each component with the fusion; `xmc predict` and `xmc evaluate` load the
/// folder. The fit reads the validation split only: changing every test record leaves it
/// unchanged, changing the validation records does not. The cascade: the fitted one costs no
/// validation hit; one set by hand runs the generator only below its threshold, and the
/// Predictor keeps the ranker's order above it.
#[test]
fn fused_method_fits_on_validation_only_and_reports_its_components() {
    let tmp = tempfile::tempdir().unwrap();
    let extra = "[ranker]\nbeam = 5\ntop_k = 3\n[fusion]\nranker_candidates = 5\ngenerator_candidates = 2\n[contrastive]\nepochs = 0\n";
    let config = write_config(tmp.path(), extra);
    let code = xmc(&["experiment", &config, "--set", "method=fused"]).unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    let run = tmp.path().join("experiments/e2e");
    let model_dir = run.join("train");
    for file in ["fusion.json", "xr.json", "generator/model.bpk", "encoder/model.safetensors"] {
        assert!(model_dir.join(file).is_file(), "{file}");
    }
    let report = std::fs::read_to_string(run.join("report/report.md")).unwrap();
    for row in ["| ranker alone |", "| generator alone |", "| fused |"] {
        assert!(report.contains(row), "{row} in\n{report}");
    }
    let data = xmc_data::PreparedData::load(&run.join("data")).unwrap();
    let rows = std::fs::read_to_string(run.join("predict/predictions.jsonl")).unwrap();
    assert_eq!(rows.lines().count(), data.split(xmc_data::Split::Test).count());

    let saved: xmc_ranker::FusionModel = serde_json::from_str(&std::fs::read_to_string(model_dir.join("fusion.json")).unwrap()).unwrap();
    let parts = xmc_methods::fused::FusedParts::load(&model_dir, &saved.config).unwrap();
    // Compared as written to fusion.json (serde_json's float parsing rounds the last digit).
    let refit = |data: &xmc_data::PreparedData| -> xmc_ranker::FusionModel {
        let fitted = xmc_methods::fused::fit_fusion(&parts, &saved.config, data).unwrap().0;
        serde_json::from_str(&serde_json::to_string_pretty(&fitted).unwrap()).unwrap()
    };
    let mut test_changed = data.clone();
    for r in test_changed.records.iter_mut().filter(|r| r.split == xmc_data::Split::Test) {
        r.input = "nothing like the original".into();
        r.label = 0;
    }
    assert_eq!(refit(&test_changed), saved, "the fit does not read the test split");
    let mut valid_changed = data.clone();
    for r in valid_changed.records.iter_mut().filter(|r| r.split == xmc_data::Split::Valid) {
        r.label = 0;
    }
    assert_ne!(refit(&valid_changed), saved, "the fit does read the validation split");

    // The cascade as fitted never costs a validation hit: on the records it skips, the ranker's
    // top is right at least as often as the fusion's.
    let (fitted, valid_cands, truths) = xmc_methods::fused::fit_fusion(&parts, &saved.config, &data).unwrap();
    if let Some(skip) = fitted.skip {
        let (mut ranker, mut fused) = (0, 0);
        for (c, t) in valid_cands.iter().zip(&truths).filter(|(c, _)| skip.skips(&c.ranker_top)) {
            ranker += (c.ranker_top[0].0 == *t) as usize;
            fused += (xmc_methods::fused::rank_with(&fitted, c, 1)[0].0 == *t) as usize;
        }
        assert!(ranker >= fused, "skipping cost validation hits: ranker {ranker}, fused {fused}");
    }
    // A cascade at the median top score, over a fusion that follows the generator alone: the
    // records at or above it keep the ranker's order and cost no generator hypotheses, the
    // others get the fused order, through the Predictor as through the parts.
    let texts: Vec<&str> = data.split(xmc_data::Split::Test).map(|r| r.input.as_str()).collect();
    let full = parts.candidates(&saved.config, &texts, None).unwrap();
    let mut tops: Vec<f32> = full.iter().map(|c| c.ranker_top[0].1).collect();
    tops.sort_by(f32::total_cmp);
    let threshold = tops[tops.len() / 2];
    let skip = xmc_ranker::Skip { gate: xmc_ranker::Gate::TopScore, threshold, skipped: 0.5 };
    let generator_only = xmc_ranker::FusionModel {
        weights: saved.features.iter().map(|f| if *f == xmc_ranker::FusionFeature::GeneratorLogProb { 1.0 } else { 0.0 }).collect(),
        ranker_only: false,
        skip: None,
        ..saved.clone()
    };
    let cascaded = parts.candidates(&saved.config, &texts, Some(&skip)).unwrap();
    let labels = |ranked: Vec<(u32, f32)>| ranked.into_iter().map(|(l, _)| l).collect::<Vec<_>>();
    let expected: Vec<Vec<u32>> = full
        .iter()
        .zip(&cascaded)
        .map(|(f, c)| {
            assert_eq!(c.consulted, !skip.skips(&f.ranker_top));
            assert_eq!(c.ranker_top, f.ranker_top);
            if c.consulted {
                assert_eq!((&c.labels, &c.generator_top), (&f.labels, &f.generator_top));
                labels(xmc_methods::fused::rank_with(&generator_only, f, 2))
            } else {
                assert!(c.generator_top.is_empty() && c.rows.is_empty());
                labels(f.ranker_top.iter().take(2).copied().collect())
            }
        })
        .collect();
    let skipped = cascaded.iter().filter(|c| !c.consulted).count();
    assert!(skipped > 0 && skipped < texts.len(), "{skipped} of {} skipped", texts.len());
    let differs = full.iter().filter(|f| labels(xmc_methods::fused::rank_with(&generator_only, f, 1)) != labels(f.ranker_top.iter().take(1).copied().collect())).count();
    assert!(differs > 0, "the generator's order should differ from the ranker's somewhere");
    let cascade_dir = tmp.path().join("cascade-model");
    std::fs::create_dir_all(&cascade_dir).unwrap();
    for entry in std::fs::read_dir(&model_dir).unwrap() {
        let entry = entry.unwrap();
        let target = cascade_dir.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
            for f in std::fs::read_dir(entry.path()).unwrap() {
                let f = f.unwrap();
                if f.file_type().unwrap().is_file() {
                    std::fs::copy(f.path(), target.join(f.file_name())).unwrap();
                }
            }
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
    let with_skip = xmc_ranker::FusionModel { skip: Some(skip), ..generator_only.clone() };
    std::fs::write(cascade_dir.join("fusion.json"), serde_json::to_string_pretty(&with_skip).unwrap()).unwrap();
    let predicted = xmc_methods::Predictor::load(&cascade_dir).unwrap().predict_texts(&texts, 5, 2, |_| {}).unwrap();
    assert_eq!(predicted.into_iter().map(labels).collect::<Vec<_>>(), expected);

    let p = xmc_methods::Predictor::load(&model_dir).unwrap();
    assert_eq!(p.method(), "fused");
    let input = repo_root().join("datasets/amazon-uk-sample/products.csv");
    let out = tmp.path().join("pred.csv");
    let code = xmc(&["predict", "--model", model_dir.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap(), "--top-k", "2"]).unwrap();
    assert_eq!(code, ExitCode::SUCCESS);
    assert_eq!(std::fs::read_to_string(&out).unwrap().lines().count(), 2501);
    evaluate_agrees_with_predict(&model_dir, &out, &tmp.path().join("evaluate.json"));
}

/// A T5 generating plain label paths reads no label tree: the embed, tree and codes stages are
/// not run, and the sentence encoder is not needed (it does not exist here).
#[test]
fn plain_generation_runs_without_embeddings_tree_or_codes() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "");
    let args = ["experiment", &config, "--set", "model.mode=\"plain\"", "--set", "embed.encoder_dir=\"/nonexistent/encoder\"", "--set", "train.max_epochs=1", "--set", "model.vocab_size=3000", "--set", "model.max_target_tokens=64"];
    assert_eq!(xmc(&args).unwrap(), ExitCode::SUCCESS);
    let run = tmp.path().join("experiments/e2e");
    for stage in ["embed", "tree", "codes"] {
        assert!(!run.join(stage).exists(), "{stage} was built");
    }
    for stage in ["data", "train", "predict", "brand", "eval", "report"] {
        assert!(run.join(stage).join("stage.json").is_file(), "{stage} did not run");
    }
    let metrics = xmc_eval::Metrics::load(&run.join("report/metrics.json")).unwrap();
    assert!(metrics.code_prefix.is_none());
}

/// Two runs of one config give the same tokenizer, targets, model file (written without burn's
/// random parameter ids), weights, predictions and metrics. This is the
/// determinism ARCHITECTURE.md states; training is deterministic whatever the thread count (the
/// Unigram tokenizer's training is made order-stable in `xmc_model::tokenizer`).
#[test]
fn two_runs_of_one_config_give_the_same_model_and_predictions() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path(), "");
    for name in ["first", "second"] {
        assert_eq!(xmc(&["experiment", &config, "--set", &format!("name=\"{name}\"")]).unwrap(), ExitCode::SUCCESS);
    }
    let run = |name: &str| tmp.path().join("experiments").join(name);
    for file in ["train/tokenizer.json", "train/targets.json", "train/model.bpk", "train/calibration.json", "predict/predictions.jsonl", "eval/metrics.json"] {
        let (a, b) = (std::fs::read(run("first").join(file)).unwrap(), std::fs::read(run("second").join(file)).unwrap());
        assert!(a == b, "{file} differs between two runs of one config");
    }
    let digest = |name: &str| xmc_train_model(&run(name).join("train")).model.weights_sha256();
    assert_eq!(digest("first"), digest("second"));
}

/// Runs the xr method with `members` encoders fine-tuned against label vectors (one epoch) and
/// the ranker on `features`; returns the run's folder.
fn run_xr_with_classifier(dir: &Path, features: &str, members: usize) -> std::path::PathBuf {
    let extra = format!(
        "[ranker]\nbeam = 5\ntop_k = 4\nfeatures = {features:?}\n[contrastive]\nepochs = 1\nloss = \"labels\"\nbatch_size = 16\nmax_per_label = 2\nmembers = {members}\n"
    );
    let config = write_config(dir, &extra);
    assert_eq!(xmc(&["experiment", &config, "--set", "method=xr"]).unwrap(), ExitCode::SUCCESS);
    dir.join("experiments/e2e")
}

/// `contrastive.loss = "labels"` with the xr method: the encoder is fine-tuned as a classifier
/// over all labels, and that classifier rescores the ranker's candidates with a weight fitted on
/// the validation split. The folder carries `classifier.json` and the encoder in
/// `classifier-encoder/` (without the training-only label vectors) and predicts on its own:
/// with the weight at 0 the ranker's own order comes back, with a large one the classifier's
/// favourite candidate comes first, and with a skip threshold (the cascade) the records the
/// ranker is sure of keep its order while the others get the classifier's favourite; with the
/// classifier's own candidates beside the ranker's, its favourite over all labels comes first.
#[test]
fn xr_with_the_encoder_classifier_rescores_the_ranker_candidates() {
    let tmp = tempfile::tempdir().unwrap();
    let run = run_xr_with_classifier(tmp.path(), "sparse", 1);
    let model = run.join("train");
    let classifier_file = model.join(xmc_ranker::CLASSIFIER_FILE);
    let mut classifier: xmc_ranker::EncoderClassifier = serde_json::from_str(&std::fs::read_to_string(&classifier_file).unwrap()).unwrap();
    let data = xmc_data::PreparedData::load(&run.join("data")).unwrap();
    assert_eq!(classifier.fit.records, data.split(xmc_data::Split::Valid).count(), "fitted on the validation split");
    assert_eq!(classifier.vectors.len(), data.labels.len());
    let classifier_encoder = model.join(xmc_ranker::CLASSIFIER_ENCODER_DIR);
    assert!(!classifier_encoder.join(xmc_train::LABEL_VECTORS).exists(), "the label vectors moved into classifier.json");
    assert!(!model.join(xmc_ranker::ENCODER_DIR).exists(), "no dense block, so no other encoder");

    let texts: Vec<&str> = data.split(xmc_data::Split::Test).take(25).map(|r| r.input.as_str()).collect();
    let xr = xmc_ranker::XrModel::load(&model).unwrap();
    assert!(xr.needs_embeddings() && !xr.meta.layout.kind.uses_dense());
    // Embedded on the path prediction takes (the fast one where ONNX Runtime is found).
    let encoder = xmc_model::SentenceEncoder::load(&classifier_encoder, &xmc_model::inference_device()).unwrap().with_fast_path().unwrap();
    let embeddings = encoder.encode(&texts, 16, |_| {}).unwrap();
    let pools = xr.predict(&xr.features(&texts, None).unwrap(), Some(5), xr.pool_size(5));
    let mut moved = 0;
    classifier.skip = None;
    for weight in [0.0, 1e4] {
        classifier.weight = weight;
        std::fs::write(&classifier_file, serde_json::to_string(&classifier).unwrap()).unwrap();
        let predictor = xmc_methods::Predictor::load(&model).unwrap();
        let got = predictor.predict_texts(&texts, 5, 4, |_| {}).unwrap();
        for ((got, pool), embedding) in got.iter().zip(&pools).zip(&embeddings) {
            let labels: Vec<u32> = got.iter().map(|c| c.0).collect();
            if weight == 0.0 {
                assert_eq!(labels, pool.iter().take(4).map(|c| c.0).collect::<Vec<_>>(), "the ranker's order");
            } else {
                // The classifier's favourite among the ranker's candidates (up to the float noise
                // of embedding in other batches).
                let log_probs = classifier.log_probs(embedding);
                let favourite = pool.iter().map(|c| log_probs[c.0 as usize]).fold(f32::NEG_INFINITY, f32::max);
                assert!(favourite - log_probs[labels[0] as usize] < 1e-3, "{} against {favourite}", log_probs[labels[0] as usize]);
                moved += (labels[0] != pool[0].0) as usize;
            }
        }
    }
    assert!(moved > 0, "the classifier changed no record's top label");

    // The cascade: with a skip threshold at the median top score, records at or above it keep
    // the ranker's order and the others get the classifier's favourite first.
    let mut tops: Vec<f32> = pools.iter().map(|p| p[0].1).collect();
    tops.sort_by(f32::total_cmp);
    let threshold = tops[tops.len() / 2];
    classifier.skip = Some(xmc_ranker::Skip { gate: xmc_ranker::Gate::TopScore, threshold, skipped: 0.5 });
    std::fs::write(&classifier_file, serde_json::to_string(&classifier).unwrap()).unwrap();
    let got = xmc_methods::Predictor::load(&model).unwrap().predict_texts(&texts, 5, 4, |_| {}).unwrap();
    let (mut skipped, mut moved) = (0, 0);
    for ((got, pool), embedding) in got.iter().zip(&pools).zip(&embeddings) {
        let labels: Vec<u32> = got.iter().map(|c| c.0).collect();
        if pool[0].1 >= threshold {
            assert_eq!(labels, pool.iter().take(4).map(|c| c.0).collect::<Vec<_>>(), "a skipped record keeps the ranker's order");
            skipped += 1;
        } else {
            let log_probs = classifier.log_probs(embedding);
            let favourite = pool.iter().map(|c| log_probs[c.0 as usize]).fold(f32::NEG_INFINITY, f32::max);
            assert!(favourite - log_probs[labels[0] as usize] < 1e-3, "{} against {favourite}", log_probs[labels[0] as usize]);
            moved += (labels[0] != pool[0].0) as usize;
        }
    }
    assert!(skipped >= texts.len() / 2 && skipped < texts.len(), "{skipped} of {} skipped", texts.len());
    assert!(moved > 0, "below the threshold the classifier changed no record's top label");

    // The classifier's own candidates (`ranker.classifier_candidates`): with a large weight its
    // favourite over all labels comes first, also where the ranker's beam did not reach it.
    classifier.skip = None;
    classifier.own_candidates = 3;
    std::fs::write(&classifier_file, serde_json::to_string(&classifier).unwrap()).unwrap();
    let got = xmc_methods::Predictor::load(&model).unwrap().predict_texts(&texts, 5, 4, |_| {}).unwrap();
    let mut beyond_the_beam = 0;
    for ((got, pool), embedding) in got.iter().zip(&pools).zip(&embeddings) {
        let log_probs = classifier.log_probs(embedding);
        let favourite = log_probs.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        assert!(favourite - log_probs[got[0].0 as usize] < 1e-3, "{} against {favourite}", log_probs[got[0].0 as usize]);
        beyond_the_beam += pool.iter().all(|c| c.0 != got[0].0) as usize;
    }
    assert!(beyond_the_beam > 0, "no record's favourite was outside the ranker's candidates");
}

/// A dense block beside the classifier keeps the pretrained encoder (`encoder/`), while the
/// classifier gets the fine-tuned one (`classifier-encoder/`); the predictor feeds each part the
/// embeddings of its own encoder (with two encoders whose swap changes the predictions).
#[test]
fn xr_with_a_dense_block_and_the_classifier_gives_each_its_own_encoder() {
    let tmp = tempfile::tempdir().unwrap();
    let run = run_xr_with_classifier(tmp.path(), "both", 1);
    let model = run.join("train");
    use xmc_model::SentenceEncoder as E;
    let (block, own) = (model.join(xmc_ranker::ENCODER_DIR), model.join(xmc_ranker::CLASSIFIER_ENCODER_DIR));
    let pretrained = std::fs::read(Path::new(&tiny_encoder()).join(E::WEIGHTS)).unwrap();
    assert!(std::fs::read(block.join(E::WEIGHTS)).unwrap() == pretrained, "the dense block's encoder is the pretrained one");
    assert!(!block.join(E::FINE_TUNED_WEIGHTS).exists(), "the dense block's encoder is the pretrained one");
    assert!(own.join(E::FINE_TUNED_WEIGHTS).is_file(), "the classifier's encoder is fine-tuned");

    // The tiny encoder's fine-tuning may keep its starting weights (its best epoch can be the
    // 0th), so the classifier gets newly initialised ones here, to tell the two encoders apart.
    let device = xmc_model::inference_device();
    let fresh = E::load(&own, &device).unwrap().with_weights(xmc_model::BertConfig::load(&own.join(E::CONFIG)).unwrap().init(&device));
    fresh.save(&tmp.path().join("fresh")).unwrap();
    std::fs::copy(tmp.path().join("fresh").join(E::FINE_TUNED_WEIGHTS), own.join(E::FINE_TUNED_WEIGHTS)).unwrap();
    // A large weight, so that the classifier's embeddings decide the order.
    let classifier_file = model.join(xmc_ranker::CLASSIFIER_FILE);
    let mut classifier: xmc_ranker::EncoderClassifier = serde_json::from_str(&std::fs::read_to_string(&classifier_file).unwrap()).unwrap();
    classifier.weight = 1e4;
    classifier.skip = None;
    std::fs::write(&classifier_file, serde_json::to_string(&classifier).unwrap()).unwrap();
    let data = xmc_data::PreparedData::load(&run.join("data")).unwrap();
    let texts: Vec<&str> = data.split(xmc_data::Split::Test).take(40).map(|r| r.input.as_str()).collect();
    let xr = xmc_ranker::XrModel::load(&model).unwrap();
    assert!(xr.meta.layout.kind.uses_dense() && xr.classifier.is_some());
    // One batch of all the texts, as the predictor embeds them, so that the embeddings agree exactly.
    let embed = |dir: &str| {
        let encoder = xmc_model::SentenceEncoder::load(&model.join(dir), &xmc_model::inference_device()).unwrap().with_fast_path().unwrap();
        encoder.encode(&texts, 64, |_| {}).unwrap()
    };
    let (dense, for_classifier) = (embed(xmc_ranker::ENCODER_DIR), embed(xmc_ranker::CLASSIFIER_ENCODER_DIR));
    let labels = |ranked: Vec<Vec<(u32, f32)>>| ranked.into_iter().map(|r| r.into_iter().map(|c| c.0).collect::<Vec<_>>()).collect::<Vec<_>>();
    let ranked_with = |block: &[Vec<f32>], classifier: &[Vec<f32>]| {
        let x = xr.features(&texts, Some(block)).unwrap();
        let pools = xr.predict(&x, Some(5), xr.pool_size(5));
        labels(xr.rescore(pools, &x, |i| Some(classifier[i].as_slice()), 4))
    };
    let expected = ranked_with(&dense, &for_classifier);
    assert_ne!(expected, ranked_with(&for_classifier, &dense), "the encoders' embeddings are interchangeable here: the test could not tell");
    let predictor = xmc_methods::Predictor::load(&model).unwrap();
    assert_eq!(labels(predictor.predict_texts(&texts, 5, 4, |_| {}).unwrap()), expected);
}

/// `contrastive.members = 2`: two encoders fine-tuned with their own seeds, in
/// `classifier-encoder/` and `classifier-encoder-2/`; the classifier's label vectors are the
/// members' concatenated (halved), and the predictor feeds it the members' embeddings
/// concatenated in member order (with two encoders, and two halves of the label vectors, whose
/// order changes the predictions).
#[test]
fn xr_with_two_classifier_members_averages_their_classifiers() {
    let tmp = tempfile::tempdir().unwrap();
    let run = run_xr_with_classifier(tmp.path(), "sparse", 2);
    let model = run.join("train");
    use xmc_model::SentenceEncoder as E;
    let members = [0, 1].map(|m| model.join(xmc_ranker::classifier_member_dir(m)));
    assert_eq!(members[1].file_name().unwrap(), "classifier-encoder-2");
    for dir in &members {
        assert!(dir.join(E::FINE_TUNED_WEIGHTS).is_file() || dir.join(E::WEIGHTS).is_file(), "{} holds an encoder", dir.display());
        assert!(!dir.join(xmc_train::LABEL_VECTORS).exists(), "the label vectors moved into classifier.json");
    }
    assert!(!model.join(xmc_ranker::classifier_member_dir(2)).exists());
    let device = xmc_model::inference_device();
    let dim = E::load(&members[0], &device).unwrap().dim();
    let classifier_file = model.join(xmc_ranker::CLASSIFIER_FILE);
    let mut classifier: xmc_ranker::EncoderClassifier = serde_json::from_str(&std::fs::read_to_string(&classifier_file).unwrap()).unwrap();
    assert!(classifier.vectors.iter().all(|v| v.len() == 2 * dim), "each label's vector is the two members' concatenated");
    // Each half is a member's unit vector over 2.
    for half in classifier.vectors[0].chunks(dim) {
        let norm = half.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 0.5).abs() < 1e-3, "{norm}");
    }

    // The second member gets newly initialised weights, so that the members differ for sure; a
    // large weight and no cascade, so that the classifier decides every record's order.
    let fresh = E::load(&members[1], &device).unwrap().with_weights(xmc_model::BertConfig::load(&members[1].join(E::CONFIG)).unwrap().init(&device));
    fresh.save(&tmp.path().join("fresh")).unwrap();
    std::fs::copy(tmp.path().join("fresh").join(E::FINE_TUNED_WEIGHTS), members[1].join(E::FINE_TUNED_WEIGHTS)).unwrap();
    // The tiny members may keep their starting label vectors (their best epoch can be the 0th),
    // so the second half of each label's vector becomes the next label's: the halves then
    // differ as well.
    let second_halves: Vec<Vec<f32>> = classifier.vectors.iter().map(|v| v[dim..].to_vec()).collect();
    let n = classifier.vectors.len();
    for (l, v) in classifier.vectors.iter_mut().enumerate() {
        v[dim..].copy_from_slice(&second_halves[(l + 1) % n]);
    }
    classifier.weight = 1e4;
    classifier.skip = None;
    std::fs::write(&classifier_file, serde_json::to_string(&classifier).unwrap()).unwrap();
    let data = xmc_data::PreparedData::load(&run.join("data")).unwrap();
    let texts: Vec<&str> = data.split(xmc_data::Split::Test).take(40).map(|r| r.input.as_str()).collect();
    let embed = |dir: &Path| E::load(dir, &device).unwrap().encode(&texts, 64, |_| {}).unwrap();
    let (first, second) = (embed(&members[0]), embed(&members[1]));
    let joined = |a: &[Vec<f32>], b: &[Vec<f32>]| a.iter().zip(b).map(|(x, y)| [x.as_slice(), y].concat()).collect::<Vec<_>>();
    let xr = xmc_ranker::XrModel::load(&model).unwrap();
    let labels = |ranked: Vec<Vec<(u32, f32)>>| ranked.into_iter().map(|r| r.into_iter().map(|c| c.0).collect::<Vec<_>>()).collect::<Vec<_>>();
    let ranked_with = |embeddings: &[Vec<f32>]| {
        let x = xr.features(&texts, None).unwrap();
        let pools = xr.predict(&x, Some(5), xr.pool_size(5));
        labels(xr.rescore(pools, &x, |i| Some(embeddings[i].as_slice()), 4))
    };
    let expected = ranked_with(&joined(&first, &second));
    assert_ne!(expected, ranked_with(&joined(&second, &first)), "the members' order does not matter here: the test could not tell");
    let predictor = xmc_methods::Predictor::load(&model).unwrap();
    assert_eq!(labels(predictor.predict_texts(&texts, 5, 4, |_| {}).unwrap()), expected);
}
