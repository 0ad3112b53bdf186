//! Teacher-forced log-probabilities of given labels: how likely the T5 finds each candidate's
//! target sequence for a record (one encoder pass per record; the candidates' decoder rows
//! attend to that record's encoder states), for the fused method's reranker.

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
        if cands.iter().all(Vec::is_empty) {
            out.extend(cands.iter().map(|_| Vec::new()));
            continue;
        }
        // Every record decodes the same number of rows (its candidates, padded by repeating
        // its first; an empty list by label 0) so that its rows share its encoder projections.
        let rows_per_input = cands.iter().map(Vec::len).max().unwrap_or(0);
        let targets: Vec<&[u32]> = cands
            .iter()
            .flat_map(|c| (0..rows_per_input).map(move |j| *c.get(j).or(c.first()).unwrap_or(&0)))
            .map(|l| task.targets[l as usize].as_slice())
            .collect();
        let (dec_in, _) = decoder_batch(&targets, task.tokenizer.pad_id, task.tokenizer.pad_id, &device);
        let logp = log_softmax(model.decode_rows_over(&enc, dec_in, rows_per_input, tokens), 2);
        let [n, t, _] = logp.dims();
        let values: Vec<f32> = logp.into_data().try_to_vec().expect("f32 log-probabilities");
        let width = values.len() / (n * t);
        let score = |row: usize| -> f32 { targets[row].iter().enumerate().map(|(step, &tok)| values[(row * t + step) * width + task.output_column(tok) as usize]).sum() };
        for (i, c) in cands.iter().enumerate() {
            out.push((0..c.len()).map(|j| score(i * rows_per_input + j)).collect());
        }
    }
    Ok(out)
}
