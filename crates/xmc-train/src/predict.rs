//! Predicting labels for input texts with a trained model.

use std::sync::{OnceLock, mpsc};

use burn::prelude::*;
use xmc_model::{DecodeConfig, Hypothesis, T5, beam_search};

use crate::batch::pad_batch;
use crate::error::{Result, TrainError};
use crate::task::Seq2SeqTask;

/// How inputs are split for prediction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Records encoded and decoded together.
    pub batch_size: usize,
    /// Threads of the pool that runs the batches, each batch a task: the CPU backend runs small
    /// operations (a decoder step's element-wise work, the beam bookkeeping) on the calling
    /// thread, so a second batch in flight keeps a second core busy. The backend's own parallel
    /// work (large matmuls) runs in the same pool, so the cores are never oversubscribed. Called
    /// from a thread of a rayon pool (the server's), batches run one after another on that thread.
    pub threads: usize,
}

impl Batching {
    /// Batches of `batch_size`, one thread per core.
    pub fn new(batch_size: usize) -> Self {
        Batching { batch_size, threads: default_threads() }
    }

    pub fn with_threads(self, threads: usize) -> Self {
        Batching { threads, ..self }
    }
}

static THREADS: OnceLock<usize> = OnceLock::new();

/// Fixes [`default_threads`] for the rest of the process (e.g. from `--threads`); false when it
/// was already fixed (set or read before) to another value.
pub fn set_default_threads(threads: usize) -> bool {
    let threads = threads.max(1);
    *THREADS.get_or_init(|| threads) == threads
}

/// The number of cores, or `XMC_PREDICT_THREADS` when set (read once per process; a value that
/// is not a positive number is reported and ignored), unless [`set_default_threads`] came first.
pub fn default_threads() -> usize {
    *THREADS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        match std::env::var("XMC_PREDICT_THREADS") {
            Ok(value) => match value.trim().parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    tracing::warn!("XMC_PREDICT_THREADS={value:?} is not a positive number of threads; using {cores} (one per core)");
                    cores
                }
            },
            Err(_) => cores,
        }
    })
}

/// Top labels for each input, best first, in input order. `on_batch` is told how many inputs
/// each finished batch held (on the calling thread, in the order batches finish).
pub fn predict_inputs(
    model: &T5,
    task: &Seq2SeqTask,
    inputs: &[&str],
    max_input_tokens: usize,
    decode: &DecodeConfig,
    batching: Batching,
    mut on_batch: impl FnMut(usize),
) -> Result<Vec<Vec<Hypothesis>>> {
    let device = model_device(model);
    let ids: Vec<Vec<u32>> = inputs.iter().map(|t| task.input_ids(t, max_input_tokens)).collect::<Result<_>>()?;
    let chunks: Vec<&[Vec<u32>]> = ids.chunks(batching.batch_size.max(1)).collect();
    let run = |chunk: &[Vec<u32>]| {
        let rows: Vec<&[u32]> = chunk.iter().map(Vec::as_slice).collect();
        let (ids, mask) = pad_batch(&rows, task.tokenizer.pad_id, &device);
        let enc = model.encode(ids, mask);
        beam_search(model, &enc, &task.trie, decode)
    };
    // Called from a rayon pool (the server's, which runs requests concurrently), batches run on
    // the calling thread: blocking a pool thread on its own tasks could leave none to run them.
    let in_pool = rayon::current_thread_index().is_some();
    let threads = if in_pool { 1 } else { batching.threads.clamp(1, chunks.len().max(1)) };
    if threads == 1 {
        let mut out = Vec::with_capacity(inputs.len());
        for chunk in chunks {
            out.extend(run(chunk));
            on_batch(chunk.len());
        }
        return Ok(out);
    }
    // One task per batch; each sends back (batch index, hypotheses) to this thread.
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("xmc-predict-{i}"))
        .build()
        .map_err(|source| TrainError::Threads { threads, source })?;
    let mut done: Vec<Option<Vec<Vec<Hypothesis>>>> = vec![None; chunks.len()];
    pool.in_place_scope(|scope| {
        let (tx, rx) = mpsc::channel();
        for (i, chunk) in chunks.iter().enumerate() {
            let (tx, run) = (tx.clone(), &run);
            scope.spawn(move |_| {
                // The receiver outlives the scope's tasks.
                let _ = tx.send((i, run(chunk)));
            });
        }
        drop(tx);
        for (i, hyps) in rx {
            on_batch(chunks[i].len());
            done[i] = Some(hyps);
        }
    });
    Ok(done.into_iter().flat_map(|h| h.expect("every batch is decoded once")).collect())
}

fn model_device(model: &T5) -> Device {
    use burn::module::Module;
    model.devices().into_iter().next().unwrap_or_else(xmc_model::inference_device)
}
