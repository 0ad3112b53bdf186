//! The burn BERT sentence encoder against vectors computed by the reference implementation
//! (transformers / sentence-transformers); fixtures made by fixtures/make_bert_fixtures.py.

mod common;

use common::{cosine, fixtures, load_reference, minilm_dir};
use xmc_model::{SentenceEncoder, inference_device};

#[test]
fn tiny_random_bert_matches_transformers() {
    let dir = fixtures().join("tiny-bert");
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
    let reference = load_reference(&fixtures().join("minilm_reference.json"));
    let encoder = SentenceEncoder::load(&dir, &inference_device()).unwrap();
    let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
    let vectors = encoder.encode(&texts, 3, |_| {}).unwrap();
    let mut lowest = 1.0f32;
    for ((text, ours), theirs) in texts.iter().zip(&vectors).zip(&reference.vectors) {
        let c = cosine(ours, theirs);
        assert!(c > 0.999, "{text}: cosine {c}");
        lowest = lowest.min(c);
    }
    eprintln!("all-MiniLM-L6-v2, burn vs sentence-transformers: lowest cosine {lowest:.7} over {} texts", texts.len());
}
