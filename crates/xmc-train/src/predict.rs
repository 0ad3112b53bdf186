//! Predicting labels for input texts with a trained model.

use burn::prelude::*;
use xmc_model::{DecodeConfig, Hypothesis, T5, beam_search};

use crate::batch::pad_batch;
use crate::error::Result;
use crate::task::Seq2SeqTask;

/// Top labels for each input, best first. `on_batch` is told how many inputs each batch held.
pub fn predict_inputs(
    model: &T5,
    task: &Seq2SeqTask,
    inputs: &[&str],
    max_input_tokens: usize,
    decode: &DecodeConfig,
    batch_size: usize,
    mut on_batch: impl FnMut(usize),
) -> Result<Vec<Vec<Hypothesis>>> {
    let device = model_device(model);
    let ids: Vec<Vec<u32>> = inputs.iter().map(|t| task.input_ids(t, max_input_tokens)).collect::<Result<_>>()?;
    let mut out = Vec::with_capacity(inputs.len());
    for chunk in ids.chunks(batch_size.max(1)) {
        let rows: Vec<&[u32]> = chunk.iter().map(Vec::as_slice).collect();
        let (ids, mask) = pad_batch(&rows, task.tokenizer.pad_id, &device);
        let enc = model.encode(ids, mask);
        out.extend(beam_search(model, &enc, &task.trie, decode));
        on_batch(chunk.len());
    }
    Ok(out)
}

fn model_device(model: &T5) -> Device {
    use burn::module::Module;
    model.devices().into_iter().next().unwrap_or_else(xmc_model::inference_device)
}
