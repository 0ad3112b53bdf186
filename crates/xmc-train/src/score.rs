//! Teacher-forced log-probabilities of given labels: how likely the T5 finds each candidate's
//! target sequence for a record (one encoder pass per record; the candidates' decoder rows
//! attend to that record's encoder states), for the fused method's reranker.

use burn::prelude::*;
use burn::tensor::activation::log_softmax;

use crate::batch::{decoder_batch, pad_batch};
use crate::error::Result;
use crate::task::Seq2SeqTask;

/// Records encoded together.
const SCORE_BATCH: usize = 16;

/// `log p(target(label) | input)` for every candidate label of every input, summed over the
/// target's tokens (the decoder's softmax is over the task's output tokens, as in training).
pub fn score_candidates(model: &xmc_model::T5, task: &Seq2SeqTask, inputs: &[&str], candidates: &[Vec<u32>], max_input_tokens: usize) -> Result<Vec<Vec<f32>>> {
    assert_eq!(inputs.len(), candidates.len(), "one candidate list per input");
    use burn::module::Module;
    let device = model.devices().into_iter().next().unwrap_or_else(xmc_model::inference_device);
    let columns: Vec<u32> = match &task.output_tokens {
        Some(t) => t.clone(),
        None => Vec::new(),
    };
    let tokens = task.output_tokens.as_ref().map(|_| columns.as_slice());
    let mut out = Vec::with_capacity(inputs.len());
    for (chunk, cands) in inputs.chunks(SCORE_BATCH).zip(candidates.chunks(SCORE_BATCH)) {
        let ids: Vec<Vec<u32>> = chunk.iter().map(|t| task.input_ids(t, max_input_tokens)).collect::<Result<_>>()?;
        let rows: Vec<&[u32]> = ids.iter().map(Vec::as_slice).collect();
        let (ids, mask) = pad_batch(&rows, task.tokenizer.pad_id, &device);
        let enc = model.encode(ids, mask);
        // Each candidate row points at its record's encoder states.
        let owner: Vec<i64> = cands.iter().enumerate().flat_map(|(i, c)| std::iter::repeat_n(i as i64, c.len())).collect();
        if owner.is_empty() {
            out.extend(cands.iter().map(|_| Vec::new()));
            continue;
        }
        let index = Tensor::<1, Int>::from_data(TensorData::new(owner.clone(), [owner.len()]), &device);
        let enc = xmc_model::t5::EncoderOutput { hidden: enc.hidden.select(0, index.clone()), mask_bias: enc.mask_bias.select(0, index) };
        let targets: Vec<&[u32]> = cands.iter().flatten().map(|&l| task.targets[l as usize].as_slice()).collect();
        let (dec_in, _) = decoder_batch(&targets, task.tokenizer.pad_id, task.tokenizer.pad_id, &device);
        let logp = log_softmax(model.decode_over(&enc, dec_in, tokens), 2);
        let [n, t, _] = logp.dims();
        let values: Vec<f32> = logp.into_data().try_to_vec().expect("f32 log-probabilities");
        let width = values.len() / (n * t);
        let mut scores = Vec::with_capacity(n);
        for (r, target) in targets.iter().enumerate() {
            let mut s = 0f32;
            for (step, &tok) in target.iter().enumerate() {
                let col = task.output_column(tok) as usize;
                s += values[(r * t + step) * width + col];
            }
            scores.push(s);
        }
        let mut at = 0;
        for c in cands {
            out.push(scores[at..at + c.len()].to_vec());
            at += c.len();
        }
    }
    Ok(out)
}
