//! The encoder's fast inference path against burn on the bundled sample, with the real
//! all-MiniLM-L6-v2 (`cargo xtask fetch-models` fetches it and ONNX Runtime's library; without
//! them the tests say they were skipped).

use std::path::Path;
use std::process::ExitCode;

use xmc_e2e::{repo_root, xmc};
use xmc_model::SentenceEncoder;
use xmc_model::onnx::Precision;

fn minilm_and_runtime() -> Option<std::path::PathBuf> {
    let dir = repo_root().join("models/all-MiniLM-L6-v2");
    if dir.join(SentenceEncoder::WEIGHTS).is_file() && xmc_model::fast_encoder::available() {
        Some(dir)
    } else {
        eprintln!("skipped: needs {} and ONNX Runtime's library (run `cargo xtask fetch-models`)", dir.display());
        None
    }
}

fn fast(burn: &SentenceEncoder, precision: Precision) -> SentenceEncoder {
    burn.with_weights(burn.model().clone()).with_runtime(precision).map_err(|(_, e)| e).unwrap()
}

fn agreeing(a: &[u32], b: &[u32]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x == y).count()
}

/// The recommended kind of model (the XR ranker's candidates rescored by MiniLM fine-tuned as
/// a classifier), trained on the bundled sample, with the classifier consulted on every
/// validation and test record (no cascade): its top label on the fast path (int8) is burn
/// fp32's for at least 99% of the records.
#[test]
fn the_fast_path_agrees_with_burn_on_the_recommended_models_top_labels() {
    let Some(minilm) = minilm_and_runtime() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let config = tmp.path().join("exp.toml");
    let text = format!(
        "name = \"fast\"\nmethod = \"xr\"\noutput_dir = {:?}\n[data]\ndataset = {:?}\n[embed]\nencoder_dir = {:?}\n\
         [ranker]\nbeam = 5\ntop_k = 5\nfeatures = \"sparse\"\n[contrastive]\nloss = \"labels\"\nepochs = 1\nbatch_size = 32\nmax_per_label = 3\n",
        tmp.path().join("experiments").display().to_string(),
        repo_root().join("datasets/amazon-uk-sample.toml").display().to_string(),
        minilm.display().to_string()
    );
    std::fs::write(&config, text).unwrap();
    assert_eq!(xmc(&["experiment", config.to_str().unwrap()]).unwrap(), ExitCode::SUCCESS);
    let run = tmp.path().join("experiments/fast");
    let model = run.join("train");
    let data = xmc_data::PreparedData::load(&run.join("data")).unwrap();
    let texts: Vec<&str> = data.records.iter().filter(|r| r.split != xmc_data::Split::Train).map(|r| r.input.as_str()).collect();

    let mut xr = xmc_ranker::XrModel::load(&model).unwrap();
    let classifier = xr.classifier.as_mut().expect("the run has a classifier");
    classifier.skip = None;
    classifier.weight = classifier.weight.max(1.0);
    let burn = SentenceEncoder::load(&model.join(xmc_ranker::CLASSIFIER_ENCODER_DIR), &xmc_model::inference_device()).unwrap();
    let x = xr.features(&texts, None).unwrap();
    let top_labels = |encoder: &SentenceEncoder| -> (Vec<u32>, Vec<u32>) {
        let embeddings = encoder.encode(&texts, 64, |_| {}).unwrap();
        let pools = xr.predict(&x, Some(5), xr.pool_size(5));
        let ranked = xr.rescore(pools, &x, |i| Some(embeddings[i].as_slice()), 1);
        let classifier = xr.classifier.as_ref().unwrap();
        let own = embeddings.iter().map(|e| {
            let p = classifier.log_probs(e);
            (0..p.len()).max_by(|&a, &b| p[a].total_cmp(&p[b])).unwrap() as u32
        });
        (ranked.iter().map(|r| r[0].0).collect(), own.collect())
    };
    let (expected, expected_own) = top_labels(&burn);
    let (got, got_own) = top_labels(&fast(&burn, Precision::INT8));
    let (same, same_own) = (agreeing(&got, &expected), agreeing(&got_own, &expected_own));
    eprintln!(
        "int8 against burn fp32 on {} records: the model's top label agrees on {same}, the classifier's own (over all {} labels) on {same_own}",
        texts.len(),
        data.labels.len()
    );
    assert!(same * 100 >= texts.len() * 99, "the model's top label agrees on {same} of {}", texts.len());
}

/// Each record's nearest label path by the pretrained encoder's embeddings (its zero-shot
/// classification, with far smaller margins than a fine-tuned classifier's): float on the fast
/// path gives burn's on every record, int8 in blocks on all but a few (per-channel int8 with one
/// activation scale per call changed 11% of them when measured).
#[test]
fn the_fast_path_keeps_the_pretrained_encoders_nearest_labels() {
    let Some(minilm) = minilm_and_runtime() else { return };
    let descriptor = repo_root().join("datasets/amazon-uk-sample.toml");
    let desc = xmc_data::DatasetDescriptor::load(&descriptor).unwrap();
    let data = xmc_data::prepare(&desc, &xmc_data::DataConfig { dataset: descriptor.clone(), ..Default::default() }).unwrap();
    let texts: Vec<&str> = data.records.iter().filter(|r| r.split != xmc_data::Split::Train).map(|r| r.input.as_str()).collect();
    let paths: Vec<&str> = data.labels.labels.iter().map(|l| l.path.as_str()).collect();
    let burn = SentenceEncoder::load(Path::new(&minilm), &xmc_model::inference_device()).unwrap();
    let labels = burn.encode(&paths, 64, |_| {}).unwrap();
    let nearest = |records: Vec<Vec<f32>>| -> Vec<u32> {
        records
            .iter()
            .map(|r| {
                let scores = labels.iter().map(|l| l.iter().zip(r).map(|(a, b)| a * b).sum::<f32>());
                scores.enumerate().max_by(|a, b| a.1.total_cmp(&b.1)).map_or(0, |(i, _)| i as u32)
            })
            .collect()
    };
    let expected = nearest(burn.encode(&texts, 64, |_| {}).unwrap());
    for (precision, at_least) in [(Precision::Fp32, 1.0), (Precision::INT8, 0.98)] {
        let same = agreeing(&nearest(fast(&burn, precision).encode(&texts, 64, |_| {}).unwrap()), &expected);
        eprintln!("{}: the same nearest label as burn for {same} of {} records", precision.name(), texts.len());
        assert!(same as f64 >= at_least * texts.len() as f64, "{}: {same} of {} nearest labels agree", precision.name(), texts.len());
    }
}
