//! The fast inference path (the encoder's ONNX graph in ONNX Runtime) against the reference
//! implementation's vectors and against burn. Needs the ONNX Runtime library that `cargo xtask
//! fetch-models` unpacks into `models/onnxruntime/` (or `XMC_ORT_LIB`); without it each test
//! says it was skipped.

mod common;

use common::{cosine, fixtures, load_reference, minilm_dir};
use xmc_model::fast_encoder;
use xmc_model::onnx::Precision;
use xmc_model::{SentenceEncoder, inference_device};

fn runtime_or_skip() -> bool {
    if fast_encoder::available() {
        return true;
    }
    eprintln!("skipped: no ONNX Runtime library (run `cargo xtask fetch-models`, or set {})", fast_encoder::LIBRARY_ENV);
    false
}

/// MiniLM in burn and the sentence-transformers reference texts and vectors, when both the
/// runtime and the model are in place.
fn minilm_and_reference() -> Option<(SentenceEncoder, common::Reference)> {
    if !runtime_or_skip() {
        return None;
    }
    let dir = minilm_dir()?;
    let reference = load_reference(&fixtures().join("minilm_reference.json"));
    Some((SentenceEncoder::load(&dir, &inference_device()).unwrap(), reference))
}

fn on(encoder: &SentenceEncoder, precision: Precision) -> SentenceEncoder {
    let copy = encoder.with_weights(encoder.model().clone());
    copy.with_runtime(precision).map_err(|(_, e)| e).expect("the fast path opens")
}

/// The exported graph in float computes what transformers does (as burn does), batch after
/// batch of mixed lengths, so padding and masking are exercised.
#[test]
fn fp32_graph_matches_the_reference_on_the_tiny_bert() {
    if !runtime_or_skip() {
        return;
    }
    let dir = fixtures().join("tiny-bert");
    let reference = load_reference(&dir.join("expected.json"));
    let burn = SentenceEncoder::load(&dir, &inference_device()).unwrap();
    let fast = on(&burn, Precision::Fp32);
    assert!(fast.runtime_name().starts_with("onnxruntime fp32"), "{}", fast.runtime_name());
    let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
    let vectors = fast.encode(&texts, 4, |_| {}).unwrap();
    for ((text, ours), theirs) in texts.iter().zip(&vectors).zip(&reference.vectors) {
        let max_diff = ours.iter().zip(theirs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(max_diff < 1e-4, "{text}: max abs diff {max_diff}");
    }
    // One at a time gives the same vectors as batched (no padding leaks into a record).
    let single = fast.encode(&texts, 1, |_| {}).unwrap();
    for (a, b) in single.iter().zip(&vectors) {
        assert!(cosine(a, b) > 0.99999);
    }
}

/// Per-channel int8 weights keep the tiny model's vectors close, on every record.
#[test]
fn int8_graph_stays_close_on_the_tiny_bert() {
    if !runtime_or_skip() {
        return;
    }
    let dir = fixtures().join("tiny-bert");
    let reference = load_reference(&dir.join("expected.json"));
    let burn = SentenceEncoder::load(&dir, &inference_device()).unwrap();
    let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
    for precision in [Precision::INT8, Precision::Int8 { reduced: false }, Precision::Int8 { reduced: true }] {
        let vectors = on(&burn, precision).encode(&texts, 4, |_| {}).unwrap();
        let lowest = vectors.iter().zip(&reference.vectors).map(|(a, b)| cosine(a, b)).fold(1.0f32, f32::min);
        assert!(lowest > 0.98, "{}: lowest cosine {lowest}", precision.name());
    }
}

/// The real all-MiniLM-L6-v2 on the fast path against sentence-transformers: float as close as
/// burn is, the default int8 (in blocks) close behind. Needs `cargo xtask fetch-models`.
#[test]
fn minilm_on_the_fast_path_matches_sentence_transformers() {
    let Some((burn, reference)) = minilm_and_reference() else { return };
    let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
    let fp32 = on(&burn, Precision::Fp32).encode(&texts, 3, |_| {}).unwrap();
    let int8 = on(&burn, Precision::INT8).encode(&texts, 3, |_| {}).unwrap();
    let (mut lowest_fp32, mut lowest_int8, mut mean_int8) = (1.0f32, 1.0f32, 0.0f32);
    for ((a, b), theirs) in fp32.iter().zip(&int8).zip(&reference.vectors) {
        lowest_fp32 = lowest_fp32.min(cosine(a, theirs));
        lowest_int8 = lowest_int8.min(cosine(b, theirs));
        mean_int8 += cosine(b, theirs) / texts.len() as f32;
    }
    eprintln!("all-MiniLM-L6-v2 on ONNX Runtime vs sentence-transformers: fp32 lowest cosine {lowest_fp32:.6}, int8 lowest {lowest_int8:.4}, mean {mean_int8:.4}");
    assert!(lowest_fp32 > 0.999, "fp32: lowest cosine {lowest_fp32}");
    assert!(mean_int8 > 0.98 && lowest_int8 > 0.95, "int8: mean cosine {mean_int8}, lowest {lowest_int8}");
}

#[test]
fn the_runtime_setting_is_parsed_or_refused_by_name() {
    use xmc_model::EncoderRuntime;
    assert_eq!(EncoderRuntime::parse("burn").unwrap(), EncoderRuntime::Burn);
    assert_eq!(EncoderRuntime::parse("").unwrap(), EncoderRuntime::Auto);
    assert_eq!(EncoderRuntime::parse("ort-fp32").unwrap(), EncoderRuntime::Ort(Precision::Fp32));
    assert_eq!(EncoderRuntime::parse("ort-int8").unwrap(), EncoderRuntime::Ort(Precision::INT8));
    assert!(matches!(EncoderRuntime::parse("ort-int8-channel").unwrap(), EncoderRuntime::Ort(Precision::Int8 { .. })));
    let err = EncoderRuntime::parse("gpu").unwrap_err().to_string();
    assert!(err.contains("XMC_ENCODER") && err.contains("gpu"), "{err}");
}

/// Int8 in blocks quantizes each row's activations on its own, so a record's vector does not
/// depend on the records batched with it (nor on their padding); per-channel int8, with one
/// activation scale per call, does.
#[test]
fn int8_in_blocks_gives_a_record_the_same_vector_alone_or_batched() {
    let Some((burn, reference)) = minilm_and_reference() else { return };
    let texts: Vec<&str> = reference.texts.iter().map(String::as_str).collect();
    let lowest = |precision: Precision| {
        let fast = on(&burn, precision);
        let (alone, batched) = (fast.encode(&texts, 1, |_| {}).unwrap(), fast.encode(&texts, 64, |_| {}).unwrap());
        alone.iter().zip(&batched).map(|(a, b)| cosine(a, b)).fold(1.0f32, f32::min)
    };
    let (blocks, per_channel) = (lowest(Precision::INT8), lowest(Precision::int8_per_channel()));
    eprintln!("lowest cosine, alone against batched: int8 in blocks {blocks:.7}, per channel {per_channel:.7}");
    assert!(blocks > 0.99999, "int8 in blocks: a record's vector moved with its batch (lowest cosine {blocks})");
}
