//! Constrained decoding: only real labels come out, even from a random model, and a wide beam
//! finds the label sequence the model scores highest.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use xmc_codes::{PrefixConstraint, PrefixTrie};
use xmc_model::t5::{EncoderOutput, T5, preset};
use xmc_model::{DecodeConfig, beam_search, greedy, inference_device};

const EOS: u32 = 1;

fn model() -> T5 {
    preset("tiny", 30).unwrap().with_dropout_rate(0.0).init(&inference_device())
}

fn encode(model: &T5, rows: &[Vec<i64>]) -> EncoderOutput {
    let device = inference_device();
    let shape = [rows.len(), rows[0].len()];
    let ids = Tensor::<2, Int>::from_data(TensorData::new(rows.concat(), shape), &device);
    model.encode(ids, Tensor::ones(shape, &device))
}

/// Label sequences over tokens 2..30, each ending with EOS (some are prefixes of others before EOS).
fn label_sequences() -> Vec<Vec<u32>> {
    let mut seqs = vec![vec![5, EOS], vec![5, 6, EOS], vec![5, 7, 8, EOS], vec![9, EOS], vec![10, 11, 12, 13, EOS], vec![10, 11, 14, EOS]];
    for i in 0..6u32 {
        seqs.push(vec![20 + i, 2 + i, EOS]);
    }
    seqs
}

fn trie() -> PrefixTrie {
    PrefixTrie::from_codes(&label_sequences()).unwrap()
}

/// Teacher-forced log-probability of `tokens` for record `row`.
fn sequence_log_prob(model: &T5, enc: &EncoderOutput, row: usize, tokens: &[u32]) -> f32 {
    let lp = teacher_forced_logits(model, enc, row, tokens);
    let lp = log_softmax(lp, 1).into_data().try_to_vec::<f32>().unwrap();
    let vocab = lp.len() / tokens.len();
    tokens.iter().enumerate().map(|(i, &t)| lp[i * vocab + t as usize]).sum()
}

/// The fast decoder's score of `tokens`: softmax over the trie's alphabet and the start token, tokens counted up to
/// the first prefix that names a single label.
fn alphabet_log_prob(model: &T5, enc: &EncoderOutput, row: usize, tokens: &[u32], trie: &PrefixTrie) -> f32 {
    let alphabet = xmc_model::output_tokens(trie, 0).unwrap();
    let ids = Tensor::<1, Int>::from_data(TensorData::new(alphabet.iter().map(|&t| t as i64).collect::<Vec<_>>(), [alphabet.len()]), &inference_device());
    let lp = log_softmax(teacher_forced_logits(model, enc, row, tokens).select(1, ids), 1).into_data().try_to_vec::<f32>().unwrap();
    let decoded = (1..=tokens.len()).find(|&n| trie.unique_completion(&tokens[..n]).is_some()).unwrap();
    let n = alphabet.len();
    tokens[..decoded].iter().enumerate().map(|(i, t)| lp[i * n + alphabet.binary_search(t).unwrap()]).sum()
}

/// Logits [len, vocab] of the decoder fed the start token and `tokens` but the last.
fn teacher_forced_logits(model: &T5, enc: &EncoderOutput, row: usize, tokens: &[u32]) -> Tensor<2> {
    let device = inference_device();
    let enc_row = EncoderOutput {
        hidden: enc.hidden.clone().narrow(0, row, 1),
        mask_bias: enc.mask_bias.clone().narrow(0, row, 1),
    };
    let mut input = vec![0i64];
    input.extend(tokens[..tokens.len() - 1].iter().map(|&t| t as i64));
    let ids = Tensor::<2, Int>::from_data(TensorData::new(input.clone(), [1, input.len()]), &device);
    let logits = model.decode(&enc_row, ids);
    let [_, t, vocab] = logits.dims();
    logits.reshape([t, vocab])
}

#[test]
fn random_models_only_produce_real_labels() {
    let trie = trie();
    for seed_shift in 0..3 {
        let model = model();
        let rows: Vec<Vec<i64>> = (0..4).map(|r| (0..6).map(|i| 2 + ((r * 7 + i * 3 + seed_shift) % 27) as i64).collect()).collect();
        let enc = encode(&model, &rows);
        let cfg = DecodeConfig { beam_width: 4, top_k: 3, ..DecodeConfig::default() };
        let results = beam_search(&model, &enc, &trie, &cfg);
        assert_eq!(results.len(), 4);
        for hyps in &results {
            assert_eq!(hyps.len(), 3);
            for h in hyps {
                assert_eq!(trie.label_of(&h.tokens), Some(h.label), "{:?}", h.tokens);
            }
            assert!(hyps.windows(2).all(|w| w[0].log_prob >= w[1].log_prob));
            let total: f32 = hyps.iter().map(|h| h.score).sum();
            assert!((total - 1.0).abs() < 1e-5);
            let distinct: std::collections::BTreeSet<u32> = hyps.iter().map(|h| h.label).collect();
            assert_eq!(distinct.len(), hyps.len());
        }
        for h in greedy(&model, &enc, &trie, 0) {
            let h = h.unwrap();
            assert_eq!(trie.label_of(&h.tokens), Some(h.label));
        }
    }
}

#[test]
fn a_wide_beam_finds_the_best_scored_label_with_its_true_log_prob() {
    let model = model();
    let trie = trie();
    let rows = vec![vec![3i64, 4, 5, 6], vec![9, 8, 7, 6], vec![12, 2, 19, 25]];
    let enc = encode(&model, &rows);
    let labels = label_sequences();
    let cfg = DecodeConfig { beam_width: labels.len(), top_k: labels.len(), ..DecodeConfig::default() }.exact();
    let results = beam_search(&model, &enc, &trie, &cfg);
    for (row, hyps) in results.iter().enumerate() {
        assert_eq!(hyps.len(), labels.len(), "a beam as wide as the label set returns every label");
        let exact: Vec<f32> = labels.iter().map(|seq| sequence_log_prob(&model, &enc, row, seq)).collect();
        let best = exact.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        assert_eq!(hyps[0].label as usize, best);
        for h in hyps {
            assert!((h.log_prob - exact[h.label as usize]).abs() < 1e-4, "label {}: {} vs {}", h.label, h.log_prob, exact[h.label as usize]);
        }
    }
}

/// The default (fast) decoder: scores over the alphabet, forced tails not decoded; a wide beam
/// still returns every label, with exactly that score, and the full token sequence.
#[test]
fn the_fast_decoder_scores_what_it_decodes() {
    let model = model();
    let trie = trie();
    let rows = vec![vec![3i64, 4, 5, 6], vec![9, 8, 7, 6], vec![12, 2, 19, 25]];
    let enc = encode(&model, &rows);
    let labels = label_sequences();
    let cfg = DecodeConfig { beam_width: labels.len(), top_k: labels.len(), ..DecodeConfig::default() };
    assert!(cfg.normalise_over_alphabet && cfg.stop_when_unique, "the default is the fast decoder");
    for (row, hyps) in beam_search(&model, &enc, &trie, &cfg).iter().enumerate() {
        assert_eq!(hyps.len(), labels.len());
        let expected: Vec<f32> = labels.iter().map(|seq| alphabet_log_prob(&model, &enc, row, seq, &trie)).collect();
        let best = expected.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).unwrap().0;
        assert_eq!(hyps[0].label as usize, best);
        for h in hyps {
            assert_eq!(h.tokens, labels[h.label as usize], "the whole sequence comes back");
            assert!((h.log_prob - expected[h.label as usize]).abs() < 1e-4, "label {}: {} vs {}", h.label, h.log_prob, expected[h.label as usize]);
        }
    }
}
