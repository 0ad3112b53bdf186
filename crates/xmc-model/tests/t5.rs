//! The burn T5 against transformers (fixtures from fixtures/make_t5_fixtures.py), and its own
//! invariants: incremental decoding equals the full pass; a saved model gives the same logits.

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::prelude::*;
use xmc_model::t5::{T5, T5Config, preset};
use xmc_model::inference_device;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

#[derive(serde::Deserialize)]
struct Expected {
    input_ids: Vec<Vec<i64>>,
    attention_mask: Vec<Vec<f32>>,
    decoder_input_ids: Vec<Vec<i64>>,
    logits: Vec<Vec<Vec<f32>>>,
}

fn ints(rows: &[Vec<i64>], device: &Device) -> Tensor<2, Int> {
    let shape = [rows.len(), rows[0].len()];
    Tensor::from_data(TensorData::new(rows.concat(), shape), device)
}

fn floats(rows: &[Vec<f32>], device: &Device) -> Tensor<2> {
    let shape = [rows.len(), rows[0].len()];
    Tensor::from_data(TensorData::new(rows.concat(), shape), device)
}

fn to_vec(t: Tensor<3>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn parity(name: &str) {
    let device = inference_device();
    let (cfg, model) = T5::load_hf(&fixture(name), &device).unwrap();
    let expected: Expected = serde_json::from_str(&std::fs::read_to_string(fixture(name).join("expected.json")).unwrap()).unwrap();
    let logits = model.forward(
        ints(&expected.input_ids, &device),
        floats(&expected.attention_mask, &device),
        ints(&expected.decoder_input_ids, &device),
    );
    assert_eq!(logits.dims(), [2, 5, cfg.vocab_size]);
    let ours = to_vec(logits);
    let theirs: Vec<f32> = expected.logits.iter().flatten().flatten().copied().collect();
    let max_diff = ours.iter().zip(&theirs).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    eprintln!("{name}: max abs logit diff vs transformers {max_diff:e}");
    assert!(max_diff < 1e-4, "{name}: max abs diff {max_diff}");
}

#[test]
fn relu_tied_t5_matches_transformers() {
    parity("tiny-t5-relu");
}

#[test]
fn gated_gelu_t5_matches_transformers() {
    parity("tiny-t5-gated");
}

fn tiny(tie: bool) -> (T5Config, T5) {
    let cfg = preset("tiny", 40).unwrap().with_tie_word_embeddings(tie).with_dropout_rate(0.0);
    let model = cfg.init(&inference_device());
    (cfg, model)
}

#[test]
fn incremental_decoding_equals_the_full_pass() {
    for tie in [true, false] {
        let device = inference_device();
        let (cfg, model) = tiny(tie);
        let input = ints(&[vec![3, 4, 5, 6, 1], vec![7, 8, 1, 0, 0]], &device);
        let mask = floats(&[vec![1.0; 5], vec![1.0, 1.0, 1.0, 0.0, 0.0]], &device);
        let decoder = vec![vec![0i64, 9, 10, 11, 12, 13], vec![0, 14, 15, 16, 17, 18]];
        let enc = model.encode(input, mask);
        let full = to_vec(model.decode(&enc, ints(&decoder, &device)));
        let mut cache = model.start_cache(&enc);
        let v = cfg.vocab_size;
        for step in 0..decoder[0].len() {
            let tokens = Tensor::<1, Int>::from_data(TensorData::new(vec![decoder[0][step], decoder[1][step]], [2]), &device);
            let logits = model.decode_step(tokens, &mut cache).into_data().try_to_vec::<f32>().unwrap();
            for row in 0..2 {
                let full_row = &full[(row * decoder[0].len() + step) * v..][..v];
                let diff = logits[row * v..][..v].iter().zip(full_row).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                assert!(diff < 1e-4, "tie {tie}, step {step}, row {row}: {diff}");
            }
        }
        assert_eq!(cache.len(), decoder[0].len());
    }
}

#[test]
fn a_saved_model_gives_the_same_logits() {
    let device = inference_device();
    let (cfg, model) = tiny(false);
    let input = ints(&[vec![3, 4, 5, 1]], &device);
    let mask = floats(&[vec![1.0; 4]], &device);
    let decoder = ints(&[vec![0, 6, 7]], &device);
    let before = to_vec(model.forward(input.clone(), mask.clone(), decoder.clone()));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("model.bpk");
    model.save_file(&path).unwrap();
    let loaded = cfg.init(&device).load_file(&path);
    let after = to_vec(loaded.forward(input, mask, decoder));
    assert_eq!(before, after);
    // A fresh model with another initialisation differs, so the check above can fail.
    let other = to_vec(cfg.init(&device).forward(ints(&[vec![3, 4, 5, 1]], &device), floats(&[vec![1.0; 4]], &device), ints(&[vec![0, 6, 7]], &device)));
    assert_ne!(before, other);
}

#[test]
fn presets_have_the_documented_sizes() {
    let small = preset("small-cpu", 32_128).unwrap();
    let params = small.num_params_estimate();
    assert!((10_000_000..=20_000_000).contains(&params), "small-cpu: {params}");
    let reference = preset("t5-small", 32_128).unwrap().num_params_estimate();
    assert!((55_000_000..=65_000_000).contains(&reference), "t5-small: {reference}");
    assert!(preset("huge", 10).is_none());
}

/// Training runs attention as matmul-softmax-matmul (dropout can act on the weights), inference
/// through burn's fused kernel: the two must agree.
#[test]
fn training_and_inference_attention_agree() {
    for tie in [true, false] {
        let cfg = preset("tiny", 40).unwrap().with_tie_word_embeddings(tie).with_dropout_rate(0.0);
        let train = cfg.init(&xmc_model::training_device());
        let infer = train.valid();
        let run = |model: &T5, device: &Device| {
            let input = ints(&[vec![3, 4, 5, 6, 1], vec![7, 8, 1, 0, 0]], device);
            let mask = floats(&[vec![1.0; 5], vec![1.0, 1.0, 1.0, 0.0, 0.0]], device);
            to_vec(model.forward(input, mask, ints(&[vec![0, 9, 10, 11], vec![0, 12, 13, 14]], device)))
        };
        let (a, b) = (run(&train, &xmc_model::training_device()), run(&infer, &inference_device()));
        assert_eq!(a.len(), b.len());
        let diff = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0.0f32, f32::max);
        assert!(diff < 1e-4, "tie {tie}: {diff}");
    }
}

/// The encoder output of `inputs[owner[r]]` for each row `r`: every row its own copy.
fn encode_each_row(model: &T5, inputs: &[Vec<i64>], masks: &[Vec<f32>], owner: &[usize], device: &Device) -> xmc_model::t5::EncoderOutput {
    let ids: Vec<Vec<i64>> = owner.iter().map(|&i| inputs[i].clone()).collect();
    let mask: Vec<Vec<f32>> = owner.iter().map(|&i| masks[i].clone()).collect();
    model.encode(ints(&ids, device), floats(&mask, device))
}

/// A beam search widens the cache to several rows per input and reorders them; each row must
/// decode as if it had its own copy of the encoder output.
#[test]
fn a_widened_and_reordered_cache_equals_the_full_pass() {
    let device = inference_device();
    let (cfg, model) = tiny(false);
    let inputs = [vec![3i64, 4, 5, 6, 1], vec![7, 8, 1, 0, 0]];
    let masks = [vec![1.0f32; 5], vec![1.0, 1.0, 1.0, 0.0, 0.0]];
    let enc = model.encode(ints(&inputs, &device), floats(&masks, &device));
    let mut cache = model.start_cache(&enc);
    // Row histories: which input a row decodes and the tokens it was fed.
    let mut rows: Vec<(usize, Vec<i64>)> = vec![(0, vec![0]), (1, vec![0])];
    let feed = |rows: &[(usize, Vec<i64>)], cache: &mut xmc_model::t5::DecoderCache| {
        let last: Vec<i64> = rows.iter().map(|r| *r.1.last().unwrap()).collect();
        model.decode_step(Tensor::from_data(TensorData::new(last, [rows.len()]), &device), cache).into_data().try_to_vec::<f32>().unwrap()
    };
    feed(&rows, &mut cache);
    // Widen to three rows per input, then reorder (and repeat) within each input.
    let steps: [(&[usize], usize); 2] = [(&[0, 0, 0, 1, 1, 1], 3), (&[2, 0, 0, 5, 3, 4], 3)];
    let mut next_token = 9;
    let mut logits = Vec::new();
    for (select, per_input) in steps {
        cache = cache.select(select, per_input);
        assert_eq!(cache.rows_per_input(), per_input);
        rows = select.iter().map(|&r| rows[r].clone()).collect();
        for row in &mut rows {
            row.1.push(next_token);
            next_token += 1;
        }
        logits = feed(&rows, &mut cache);
    }
    // The full pass, with each row's input repeated.
    let owner: Vec<usize> = rows.iter().map(|r| r.0).collect();
    let enc_rows = encode_each_row(&model, &inputs, &masks, &owner, &device);
    let full = to_vec(model.decode(&enc_rows, ints(&rows.iter().map(|r| r.1.clone()).collect::<Vec<_>>(), &device)));
    let (v, t) = (cfg.vocab_size, rows[0].1.len());
    for row in 0..rows.len() {
        let expected = &full[(row * t + t - 1) * v..][..v];
        let diff = logits[row * v..][..v].iter().zip(expected).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(diff < 1e-4, "row {row}: {diff}");
    }
}

/// Teacher-forced decoding of several rows per input (a record's candidates) projects each
/// input's encoder states once; each row must still decode as if it had its own copy of them.
#[test]
fn rows_per_input_decode_as_the_full_pass_on_repeated_inputs() {
    let device = inference_device();
    let (cfg, model) = tiny(true);
    let inputs = [vec![3i64, 4, 5, 6, 1], vec![7, 8, 1, 0, 0]];
    let masks = [vec![1.0f32; 5], vec![1.0, 1.0, 1.0, 0.0, 0.0]];
    let enc = model.encode(ints(&inputs, &device), floats(&masks, &device));
    // Three rows per input, of different tokens (and one padded with 0 as a shorter target is).
    let decoder: Vec<Vec<i64>> = vec![vec![0, 9, 10, 11], vec![0, 12, 13, 0], vec![0, 9, 14, 15], vec![0, 16, 17, 18], vec![0, 9, 10, 11], vec![0, 19, 0, 0]];
    let tokens: Vec<u32> = (0..cfg.vocab_size as u32).step_by(3).collect();
    let grouped = to_vec(model.decode_rows_over(&enc, ints(&decoder, &device), 3, Some(&tokens)));
    let enc_rows = encode_each_row(&model, &inputs, &masks, &[0, 0, 0, 1, 1, 1], &device);
    let full = to_vec(model.decode_over(&enc_rows, ints(&decoder, &device), Some(&tokens)));
    assert_eq!(grouped.len(), full.len());
    assert_eq!(grouped.len(), decoder.len() * decoder[0].len() * tokens.len());
    let diff = grouped.iter().zip(&full).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(diff < 1e-4, "{diff}");
    // Rows of different inputs differ: the grouping did not hand one input's states to the other.
    let (row, width) = (decoder[0].len() * tokens.len(), tokens.len());
    let first = &grouped[..row];
    let same_tokens_other_input = &grouped[4 * row..5 * row];
    assert!(first.iter().zip(same_tokens_other_input).skip(width).any(|(a, b)| (a - b).abs() > 1e-3));
}

#[test]
#[should_panic(expected = "decoder rows for each of")]
fn rows_per_input_must_cover_every_input() {
    let device = inference_device();
    let (_, model) = tiny(false);
    let enc = model.encode(ints(&[vec![3, 4, 1], vec![5, 6, 1]], &device), floats(&[vec![1.0; 3], vec![1.0; 3]], &device));
    model.decode_rows_over(&enc, ints(&[vec![0, 7], vec![0, 8], vec![0, 9]], &device), 2, None);
}

#[test]
#[should_panic(expected = "of another input")]
fn a_row_cannot_move_to_another_input() {
    let device = inference_device();
    let (_, model) = tiny(false);
    let enc = model.encode(ints(&[vec![3, 4, 1], vec![5, 6, 1]], &device), floats(&[vec![1.0; 3], vec![1.0; 3]], &device));
    model.start_cache(&enc).select(&[0, 1, 1, 1], 2);
}
