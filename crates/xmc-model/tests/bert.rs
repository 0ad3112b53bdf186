//! The burn BERT sentence encoder against vectors computed by the reference implementation
//! (transformers / sentence-transformers); fixtures made by fixtures/make_bert_fixtures.py.

mod common;

use common::{cosine, fixtures, load_reference, minilm_dir, mpnet_dir};
use xmc_model::onnx::Precision;
use xmc_model::{SentenceEncoder, inference_device, training_device};

#[test]
fn tiny_random_bert_matches_transformers() {
    matches_its_reference("tiny-bert");
}

/// MPNet: no token types, positions after the padding id, and the relative position bias, which
/// the fixture's 162-token text uses at distances up to its last bucket.
#[test]
fn tiny_random_mpnet_matches_transformers() {
    matches_its_reference("tiny-mpnet");
}

#[test]
fn mpnet_relative_buckets_are_transformers_buckets() {
    #[derive(serde::Deserialize)]
    struct Buckets {
        relative_from: i64,
        buckets: Vec<usize>,
    }
    let path = fixtures().join("tiny-mpnet/expected.json");
    let theirs: Buckets = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(theirs.buckets.len(), 601);
    for (i, &bucket) in theirs.buckets.iter().enumerate() {
        let relative = theirs.relative_from + i as i64;
        assert_eq!(xmc_model::relative_bucket(relative, 32), bucket, "relative position {relative}");
    }
}

fn matches_its_reference(fixture: &str) {
    let dir = fixtures().join(fixture);
    let reference = load_reference(&dir.join("expected.json"));
    let encoder = SentenceEncoder::load(&dir, &inference_device()).unwrap();
    assert_eq!(encoder.dim(), 32);
    let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
    for (text, ids) in texts.iter().zip(&reference.token_ids) {
        assert_eq!(&encoder.tokenize(text).unwrap(), ids, "{text}");
    }
    // Batch size 4 mixes lengths, so padding and masking are exercised.
    let mut seen = 0;
    let vectors = encoder.encode(&texts, 4, |n| seen += n).unwrap();
    assert_eq!(seen, texts.len());
    for ((text, ours), theirs) in texts.iter().zip(&vectors).zip(&reference.vectors) {
        let max_diff = ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(max_diff < 1e-4, "{text}: max abs diff {max_diff}");
        let norm: f32 = ours.iter().map(|x| x * x).sum::<f32>().sqrt();
        assert!((norm - 1.0).abs() < 1e-5);
    }
}

/// The fast path's ONNX graph is BERT's: asked for an MPNet encoder it declines, saying why, and
/// hands the encoder back on burn, which still computes the reference's vectors.
#[test]
fn an_mpnet_encoder_declines_the_fast_path_and_stays_on_burn() {
    let dir = fixtures().join("tiny-mpnet");
    let reference = load_reference(&dir.join("expected.json"));
    let encoder = SentenceEncoder::load(&dir, &inference_device()).unwrap();
    let (encoder, why) = encoder.with_runtime(Precision::Fp32).err().expect("MPNet has no fast path");
    assert!(why.0.contains("MPNet"), "{}", why.0);
    assert!(encoder.runtime_name().starts_with("burn"), "{}", encoder.runtime_name());
    let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
    let vectors = encoder.encode(&texts, 4, |_| {}).unwrap();
    for (ours, theirs) in vectors.iter().zip(&reference.vectors) {
        assert!(cosine(ours, theirs) > 0.99999);
    }
}

/// Fine-tuning's dropout: on the training device it drops (its masks follow the seed of
/// `xmc_model::dropout`), at 0 it is the plain forward pass, and at inference it does nothing.
#[test]
fn the_encoders_dropout_acts_only_in_training_and_follows_its_seed() {
    let vector = |t: burn::prelude::Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
    for fixture in ["tiny-bert", "tiny-mpnet"] {
        let dir = fixtures().join(fixture);
        let train = SentenceEncoder::load(&dir, &training_device()).unwrap();
        let tokens = [train.tokenize("die-cast & toy vehicles").unwrap(), train.tokenize("model trains").unwrap()];
        let batch: Vec<&[u32]> = tokens.iter().map(Vec::as_slice).collect();
        let plain = vector(train.embed_tokens_with(train.model(), &batch, 0.0));
        let dropped = |seed| {
            xmc_model::dropout::reseed(seed);
            vector(train.embed_tokens_with(train.model(), &batch, 0.1))
        };
        let a = dropped(3);
        assert_eq!(a, dropped(3), "{fixture}");
        assert_ne!(a, dropped(4), "{fixture}");
        assert_ne!(a, plain, "{fixture}");
        let infer = SentenceEncoder::load(&dir, &inference_device()).unwrap();
        assert_eq!(vector(infer.embed_tokens_with(infer.model(), &batch, 0.5)), vector(infer.embed_tokens(&batch)), "{fixture}");
        let max_diff = plain.iter().zip(vector(infer.embed_tokens(&batch))).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(max_diff < 1e-5, "{fixture}: without dropout training computes inference's vectors ({max_diff})");
    }
}

#[test]
fn batching_does_not_change_vectors() {
    let dir = fixtures().join("tiny-bert");
    let encoder = SentenceEncoder::load(&dir, &inference_device()).unwrap();
    let texts = ["die-cast & toy vehicles", "a", "hobbies > model trains & railway sets > rail vehicles > trains"];
    let one_by_one = encoder.encode(&texts, 1, |_| {}).unwrap();
    let together = encoder.encode(&texts, 8, |_| {}).unwrap();
    for (a, b) in one_by_one.iter().zip(&together) {
        assert!(cosine(a, b) > 0.99999);
    }
}

#[test]
fn a_folder_without_weights_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let err = SentenceEncoder::load(dir.path(), &inference_device()).unwrap_err().to_string();
    assert!(err.contains("model.safetensors"), "{err}");
}

/// The real all-MiniLM-L6-v2 against sentence-transformers. Needs `cargo xtask fetch-models`.
#[test]
fn minilm_matches_sentence_transformers() {
    let Some(dir) = minilm_dir() else { return };
    matches_sentence_transformers(&dir, "minilm_reference.json");
}

/// The real all-mpnet-base-v2 against sentence-transformers. Needs `cargo xtask fetch-models
/// --teacher` (438 MB; not fetched by `.ci/run`).
#[test]
fn mpnet_matches_sentence_transformers() {
    let Some(dir) = mpnet_dir() else { return };
    matches_sentence_transformers(&dir, "mpnet_reference.json");
}

fn matches_sentence_transformers(dir: &std::path::Path, reference: &str) {
    let name = dir.file_name().unwrap().to_string_lossy().into_owned();
    let reference = load_reference(&fixtures().join(reference));
    let encoder = SentenceEncoder::load(dir, &inference_device()).unwrap();
    let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
    let vectors = encoder.encode(&texts, 3, |_| {}).unwrap();
    let mut lowest = 1.0f32;
    for ((text, ours), theirs) in texts.iter().zip(&vectors).zip(&reference.vectors) {
        let c = cosine(ours, theirs);
        assert!(c > 0.999, "{text}: cosine {c}");
        lowest = lowest.min(c);
    }
    eprintln!("{name}, burn vs sentence-transformers: lowest cosine {lowest:.7} over {} texts", texts.len());
}
