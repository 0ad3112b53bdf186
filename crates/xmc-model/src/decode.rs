//! Greedy and beam search over the T5 decoder, constrained by a [`PrefixConstraint`] so that every
//! output is a real label. Batched: all live beams of all records go through the decoder together.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;
use xmc_codes::PrefixConstraint;

use crate::t5::{EncoderOutput, T5};

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DecodeConfig {
    /// Beams kept per record (1 = greedy).
    pub beam_width: usize,
    /// Labels returned per record (at most `beam_width`).
    pub top_k: usize,
    /// The token the decoder starts from.
    pub start_token: u32,
    /// A safety bound on the number of steps; a finite trie ends every beam before it.
    pub max_steps: usize,
    /// Softmax over [`output_tokens`] (the tokens that occur in some label's sequence, and the
    /// start token) rather than the whole vocabulary: the output layer then costs a few columns,
    /// not thousands. Exact for a model trained that way (`ModelConfig::softmax_over_targets`).
    pub normalise_over_alphabet: bool,
    /// Finish a beam as soon as its prefix names a single label: the remaining tokens (at least
    /// the closing `</s>`) are forced, so their steps are skipped and not scored.
    pub stop_when_unique: bool,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig { beam_width: 5, top_k: 5, start_token: 0, max_steps: 64, normalise_over_alphabet: true, stop_when_unique: true }
    }
}

/// The output columns of a model whose softmax covers only its targets: every token of the
/// constraint's sequences and the start token (the padding of training batches), sorted.
pub fn output_tokens(constraint: &dyn PrefixConstraint, start_token: u32) -> Option<Vec<u32>> {
    let mut tokens = constraint.alphabet()?;
    if let Err(i) = tokens.binary_search(&start_token) {
        tokens.insert(i, start_token);
    }
    Some(tokens)
}

impl DecodeConfig {
    /// Every label scored by its full sequence's log-probability under the whole vocabulary.
    pub fn exact(self) -> Self {
        DecodeConfig { normalise_over_alphabet: false, stop_when_unique: false, ..self }
    }
}

/// One predicted label.
#[derive(Debug, Clone, PartialEq)]
pub struct Hypothesis {
    pub label: u32,
    /// The label's whole sequence (forced tokens that were not decoded included).
    pub tokens: Vec<u32>,
    /// Sum of the decoded tokens' log-probabilities.
    pub log_prob: f32,
    /// Softmax of the log-probabilities over the returned hypotheses of the record.
    pub score: f32,
}

/// One row of the search.
#[derive(Clone)]
struct Beam {
    tokens: Vec<u32>,
    log_prob: f32,
    /// A filler row of a record with fewer live beams than the width (or already done).
    dead: bool,
}

/// Decodes every record of `enc`; returns, per record, up to `top_k` labels best first.
///
/// The first step runs one row per record (every beam starts from the same token); then every
/// record keeps exactly `beam_width` rows: a block of queries against its one copy of the encoder's
/// keys and values, so the cache only reorders the decoder's past within each record's block.
pub fn beam_search(model: &T5, enc: &EncoderOutput, constraint: &dyn PrefixConstraint, cfg: &DecodeConfig) -> Vec<Vec<Hypothesis>> {
    let [records, _, _] = enc.hidden.dims();
    let device = enc.hidden.device();
    let width = cfg.beam_width.max(1);
    let top_k = cfg.top_k.clamp(1, width);
    let alphabet = if cfg.normalise_over_alphabet { output_tokens(constraint, cfg.start_token) } else { None };
    let projection = model.output_projection(alphabet.as_deref(), &device);
    let [_, columns] = projection.dims();
    let column = |token: u32| match &alphabet {
        Some(a) => a.binary_search(&token).ok(),
        None => ((token as usize) < columns).then_some(token as usize),
    };
    let finish = |tokens: &[u32]| match constraint.label_of(tokens) {
        Some(label) => Some((label, Vec::new())),
        None if cfg.stop_when_unique => constraint.unique_completion(tokens),
        None => None,
    };
    let mut cache = model.start_cache(enc);
    let mut finished: Vec<Vec<(Vec<u32>, f32, u32)>> = vec![Vec::new(); records];
    let mut beams: Vec<Beam> = (0..records).map(|_| Beam { tokens: Vec::new(), log_prob: 0.0, dead: false }).collect();
    let mut inputs: Vec<i64> = vec![cfg.start_token as i64; records];
    for _ in 0..cfg.max_steps {
        if beams.iter().all(|b| b.dead) {
            break;
        }
        let tokens = Tensor::<1, Int>::from_data(TensorData::new(inputs.clone(), [inputs.len()]), &device);
        let logits = model.decode_step_hidden(tokens, &mut cache).matmul(projection.clone());
        let log_probs = log_softmax(logits, 1).into_data().try_to_vec::<f32>().expect("float logits");
        let mut next_beams = Vec::with_capacity(records * width);
        let mut parents: Vec<usize> = Vec::with_capacity(records * width);
        let rows_per_record = cache.rows_per_input();
        for record in 0..records {
            let block = record * rows_per_record..(record + 1) * rows_per_record;
            // Candidates: (log prob, parent row, token).
            let mut cands: Vec<(f32, usize, u32)> = Vec::new();
            for row in block.clone() {
                let beam = &beams[row];
                if beam.dead {
                    continue;
                }
                for &token in constraint.allowed_next(&beam.tokens) {
                    if let Some(c) = column(token) {
                        cands.push((beam.log_prob + log_probs[row * columns + c], row, token));
                    }
                }
            }
            cands.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
            let mut chosen = 0;
            for (log_prob, parent, token) in cands {
                if chosen == width {
                    break;
                }
                let mut tokens = beams[parent].tokens.clone();
                tokens.push(token);
                if let Some((label, rest)) = finish(&tokens) {
                    tokens.extend(rest);
                    finished[record].push((tokens, log_prob, label));
                    continue;
                }
                // Log-probabilities only fall: a live beam below the k-th finished one cannot win.
                let done = &mut finished[record];
                if done.len() >= top_k {
                    done.sort_by(|a, b| b.1.total_cmp(&a.1));
                    if log_prob <= done[top_k - 1].1 {
                        break;
                    }
                }
                next_beams.push(Beam { tokens, log_prob, dead: false });
                parents.push(parent);
                chosen += 1;
            }
            for _ in chosen..width {
                next_beams.push(Beam { tokens: Vec::new(), log_prob: f32::NEG_INFINITY, dead: true });
                parents.push(block.start);
            }
        }
        inputs = next_beams.iter().map(|b| b.tokens.last().map_or(cfg.start_token as i64, |&t| t as i64)).collect();
        cache = cache.select(&parents, width);
        beams = next_beams;
    }
    finished
        .into_iter()
        .map(|mut done| {
            done.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.2.cmp(&b.2)));
            done.truncate(top_k);
            let max = done.first().map_or(0.0, |d| d.1);
            let total: f32 = done.iter().map(|d| (d.1 - max).exp()).sum();
            done.into_iter()
                .map(|(tokens, log_prob, label)| Hypothesis { label, tokens, log_prob, score: (log_prob - max).exp() / total })
                .collect()
        })
        .collect()
}

/// Greedy decoding: a beam of one.
pub fn greedy(model: &T5, enc: &EncoderOutput, constraint: &dyn PrefixConstraint, start_token: u32) -> Vec<Option<Hypothesis>> {
    let cfg = DecodeConfig { beam_width: 1, top_k: 1, start_token, ..DecodeConfig::default() };
    beam_search(model, enc, constraint, &cfg).into_iter().map(|mut h| h.pop()).collect()
}
