//! Training a tiny model on a tiny data set: it overfits, it resumes to the same result, and the
//! model folder predicts what the trained model predicts.

use std::path::Path;

use xmc_data::{DataConfig, DatasetDescriptor, PreparedData, SplitConfig};
use xmc_model::{DecodeConfig, ModelConfig, TargetMode, inference_device};
use xmc_train::{Batching, Seq2SeqTask, TrainConfig, TrainedModel, accuracy, predict_inputs, train};

const WORDS: [&str; 4] = ["apple pear", "hammer nail", "violin cello", "tent rope"];
const PATHS: [&str; 4] = ["Food > Fruit", "Tools > Hand Tools", "Music > Strings", "Outdoor > Camping"];

/// 20 records, 5 per label, every one in train.
fn data(dir: &Path) -> PreparedData {
    let mut csv = String::from("id,title,category_path\n");
    for i in 0..20 {
        let l = i % 4;
        csv.push_str(&format!("r{i},{} item {i},{}\n", WORDS[l], PATHS[l]));
    }
    std::fs::write(dir.join("p.csv"), csv).unwrap();
    std::fs::write(
        dir.join("d.toml"),
        "name = \"tiny\"\npath = \"p.csv\"\nrelative_to = \"descriptor\"\n[columns]\nid = \"id\"\ntitle = \"title\"\ncategory_path = \"category_path\"\n",
    )
    .unwrap();
    let desc = DatasetDescriptor::load(&dir.join("d.toml")).unwrap();
    let cfg = DataConfig { split: SplitConfig { train: 1.0, valid: 0.0, test: 0.0, seed: 1 }, ..DataConfig::default() };
    xmc_data::prepare(&desc, &cfg).unwrap()
}

fn configs(mode: TargetMode, epochs: usize) -> (ModelConfig, TrainConfig) {
    let model = ModelConfig { mode, preset: "tiny".into(), vocab_size: 60, dropout: 0.0, beam_width: 2, top_k: 2, ..ModelConfig::default() };
    let train = TrainConfig {
        learning_rate: 3e-3,
        batch_size: 8,
        max_epochs: epochs,
        patience: 1000,
        // A 60-piece vocabulary spells the template out in characters: keep the title in view.
        max_input_tokens: 64,
        warmup_steps: 3,
        schedule: xmc_train::Schedule::Constant,
        ..TrainConfig::default()
    };
    (model, train)
}

fn codes() -> Vec<Vec<u32>> {
    vec![vec![0, 0], vec![0, 1], vec![1, 0], vec![1, 1]]
}

#[test]
fn a_tiny_model_overfits_twenty_examples_in_both_modes() {
    for mode in [TargetMode::Hierarchical, TargetMode::Plain] {
        let dir = tempfile::tempdir().unwrap();
        let data = data(dir.path());
        let (model_cfg, train_cfg) = configs(mode, 80);
        let task = Seq2SeqTask::build(&data, Some(&codes()), &model_cfg).unwrap();
        let out = dir.path().join("model");
        let outcome = train(&data, &task, &model_cfg, &train_cfg, &Default::default(), &out, false).unwrap();
        let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        assert_eq!(outcome.best_valid_accuracy, 1.0, "{mode:?}: {outcome:?}\n{metrics}");
        let loaded = TrainedModel::load(&out, &inference_device()).unwrap();
        let inputs: Vec<&str> = data.records.iter().map(|r| r.input.as_str()).collect();
        let labels: Vec<u32> = data.records.iter().map(|r| r.label).collect();
        assert_eq!(accuracy(&loaded.model, &loaded.task, &inputs, &labels, 64).unwrap(), 1.0);
        let decode = DecodeConfig { beam_width: 2, top_k: 2, start_token: 0, ..DecodeConfig::default() };
        let top = predict_inputs(&loaded.model, &loaded.task, &inputs[..4], 64, &decode, Batching::new(4), |_| {}).unwrap();
        for (hyps, label) in top.iter().zip(&labels) {
            assert_eq!(hyps.len(), 2);
            assert_eq!(hyps[0].label, *label);
            assert!(hyps[0].score > hyps[1].score);
        }
        // Batches decoded on several threads come back in input order, each counted once.
        let run = |threads| {
            let mut seen = 0;
            let out = predict_inputs(&loaded.model, &loaded.task, &inputs, 64, &decode, Batching::new(3).with_threads(threads), |n| seen += n).unwrap();
            (out, seen)
        };
        let (serial, parallel) = (run(1), run(3));
        assert_eq!(serial.1, inputs.len());
        assert_eq!(parallel.1, inputs.len());
        assert_eq!(parallel.0, serial.0, "{mode:?}");
        // Called from a rayon pool (as the server does), the batches run on the calling thread.
        let in_pool = rayon::ThreadPoolBuilder::new().num_threads(2).build().unwrap().install(|| run(3));
        assert_eq!(in_pool.1, inputs.len());
        assert_eq!(in_pool.0, serial.0, "{mode:?}");
        let metrics = std::fs::read_to_string(out.join("metrics.jsonl")).unwrap();
        assert_eq!(metrics.lines().count(), 80);
        // Teacher-forced scores of given labels: the true one is the likeliest, the label
        // sequences' probabilities sum to at most 1, and a candidate scores the same alone or
        // among others, in any batch.
        let all: Vec<Vec<u32>> = vec![vec![0, 1, 2, 3]; 20];
        let scores = xmc_train::score_candidates(&loaded.model, &loaded.task, &inputs, &all, 64).unwrap();
        for (s, &label) in scores.iter().zip(&labels) {
            let best = (0..4).max_by(|&a, &b| s[a].total_cmp(&s[b])).unwrap();
            assert_eq!(best as u32, label, "{mode:?}: {s:?}");
            assert!(s.iter().map(|x| x.exp()).sum::<f32>() <= 1.0 + 1e-4, "{mode:?}: {s:?}");
        }
        let alone: Vec<Vec<u32>> = labels.iter().map(|&l| vec![(l + 1) % 4]).collect();
        let single = xmc_train::score_candidates(&loaded.model, &loaded.task, &inputs, &alone, 64).unwrap();
        for ((one, many), &l) in single.iter().zip(&scores).zip(&labels) {
            assert!((one[0] - many[((l + 1) % 4) as usize]).abs() < 1e-4, "{mode:?}: {one:?} vs {many:?}");
        }
        // Lists of different lengths in one batch (an empty one among them) score as the full list does.
        let ragged: Vec<Vec<u32>> = (0..inputs.len()).map(|i| (0..(i % 5) as u32).rev().collect()).collect();
        let ragged_scores = xmc_train::score_candidates(&loaded.model, &loaded.task, &inputs, &ragged, 64).unwrap();
        for ((r, s), many) in ragged.iter().zip(&ragged_scores).zip(&scores) {
            assert_eq!(s.len(), r.len());
            for (&l, x) in r.iter().zip(s) {
                assert!((x - many[l as usize]).abs() < 1e-4, "{mode:?}: {r:?} {s:?} vs {many:?}");
            }
        }
    }
}

/// A checkpoint resumes only the run it was made for. (That a resumed run reaches the weights of
/// the uninterrupted one is tested by killing the process: crates/xmc/tests/resume.rs.)
#[test]
fn a_checkpoint_of_another_run_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let (model_cfg, train_cfg) = configs(TargetMode::Hierarchical, 2);
    let task = Seq2SeqTask::build(&data, Some(&codes()), &model_cfg).unwrap();
    let out = dir.path().join("model");
    train(&data, &task, &model_cfg, &train_cfg, &Default::default(), &out, false).unwrap();
    assert!(xmc_train::checkpoint_tokenizer(&out).is_file(), "the tokenizer goes with the checkpoint");
    let refused = |model_cfg: &ModelConfig, train_cfg: &TrainConfig, task: &Seq2SeqTask, data: &PreparedData| {
        train(data, task, model_cfg, train_cfg, &Default::default(), &out, true).unwrap_err().to_string()
    };
    let err = refused(&model_cfg, &TrainConfig { learning_rate: 1e-3, ..train_cfg.clone() }, &task, &data);
    assert!(err.contains("checkpoint/state.json") && err.contains("differs from this one in: configuration;") && err.contains("--resume"), "{err}");
    let mut fewer = data.clone();
    fewer.records.truncate(16);
    let err = refused(&model_cfg, &train_cfg, &task, &fewer);
    assert!(err.contains("in: training and validation records;"), "{err}");
    let other_tokenizer = Seq2SeqTask::build(&data, Some(&codes()), &ModelConfig { vocab_size: 50, ..model_cfg.clone() }).unwrap();
    let err = refused(&model_cfg, &train_cfg, &other_tokenizer, &data);
    assert!(err.contains("in: tokenizer;"), "{err}");
    // The same run resumes: it was finished, so nothing more is trained.
    let outcome = train(&data, &task, &model_cfg, &train_cfg, &Default::default(), &out, true).unwrap();
    assert_eq!((outcome.epochs, outcome.steps), (2, 6));
    assert_eq!(std::fs::read_to_string(out.join("metrics.jsonl")).unwrap().lines().count(), 2);
}

#[test]
fn an_incomplete_or_foreign_model_folder_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let err = TrainedModel::load(dir.path(), &inference_device()).unwrap_err().to_string();
    assert!(err.contains("meta.json is missing") || err.contains("`meta.json` is missing"), "{err}");
    let data = data(dir.path());
    let (model_cfg, train_cfg) = configs(TargetMode::Hierarchical, 1);
    let task = Seq2SeqTask::build(&data, Some(&codes()), &model_cfg).unwrap();
    let out = dir.path().join("model");
    train(&data, &task, &model_cfg, &train_cfg, &Default::default(), &out, false).unwrap();
    let meta = std::fs::read_to_string(out.join("meta.json")).unwrap().replace("\"format\": 1", "\"format\": 99");
    std::fs::write(out.join("meta.json"), meta).unwrap();
    let err = TrainedModel::load(&out, &inference_device()).unwrap_err().to_string();
    assert!(err.contains("format 99"), "{err}");
}

/// Label smoothing reaches the loss: trained to fit the same twenty records, the smoothed model
/// is still right but less sure (its best codes' log-probabilities stay further below 0).
#[test]
fn label_smoothing_keeps_the_fitted_model_less_certain() {
    let dir = tempfile::tempdir().unwrap();
    let data = data(dir.path());
    let inputs: Vec<&str> = data.records.iter().map(|r| r.input.as_str()).collect();
    let labels: Vec<u32> = data.records.iter().map(|r| r.label).collect();
    let decode = DecodeConfig { beam_width: 2, top_k: 1, start_token: 0, ..DecodeConfig::default() };
    let mean_best = |smoothing: f64| {
        let (model_cfg, train_cfg) = configs(TargetMode::Hierarchical, 60);
        let train_cfg = TrainConfig { label_smoothing: smoothing, ..train_cfg };
        let task = Seq2SeqTask::build(&data, Some(&codes()), &model_cfg).unwrap();
        let out = dir.path().join(format!("model-{smoothing}"));
        train(&data, &task, &model_cfg, &train_cfg, &Default::default(), &out, false).unwrap();
        let loaded = TrainedModel::load(&out, &inference_device()).unwrap();
        let top = predict_inputs(&loaded.model, &loaded.task, &inputs, 64, &decode, Batching::new(8), |_| {}).unwrap();
        let right = top.iter().zip(&labels).filter(|(h, l)| h[0].label == **l).count();
        (right, top.iter().map(|h| h[0].log_prob as f64).sum::<f64>() / top.len() as f64)
    };
    let ((right_plain, plain), (right_smooth, smooth)) = (mean_best(0.0), mean_best(0.3));
    assert_eq!((right_plain, right_smooth), (20, 20));
    assert!(smooth < plain - 0.1, "mean best log-probability: smoothed {smooth}, plain {plain}");
}
