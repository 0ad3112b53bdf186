//! The sentence encoder's fast inference path: its ONNX graph ([`crate::onnx`]) run by ONNX
//! Runtime, loaded at run time from the library that `cargo xtask fetch-models` unpacks from the
//! `onnxruntime` wheel (`models/onnxruntime/`), or from `XMC_ORT_LIB`. Training stays in burn;
//! [`crate::SentenceEncoder::encode`] goes through this path when the encoder was given one.
//!
//! Which path runs is `XMC_ENCODER`: `auto` (the default: int8 through ONNX Runtime where its
//! library is found, burn otherwise, saying so in one log line), `burn`, `ort-fp32`, `ort-int8`
//! (weights and activations in blocks of 32, [`Precision::INT8`]) or `ort-int8-channel`
//! (per-channel weights and one activation scale per call: about twice as fast here, and less
//! close to float). ONNX Runtime picks its kernels by the CPU it runs on (AVX-512 VNNI,
//! AVX-VNNI, AVX2, ...); on a CPU without VNNI the per-channel weights keep to 7 bits.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::Tensor;

use crate::onnx::{BertWeights, Precision};

/// The environment variable naming the ONNX Runtime library.
pub const LIBRARY_ENV: &str = "XMC_ORT_LIB";
/// The environment variable choosing the encoder's inference path.
pub const RUNTIME_ENV: &str = "XMC_ENCODER";
/// Where `cargo xtask fetch-models` puts the library, under the models folder.
pub const LIBRARY_DIR: &str = "onnxruntime";

/// The encoder's inference path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncoderRuntime {
    /// Int8 through ONNX Runtime when its library is found, else burn.
    Auto,
    Burn,
    Ort(Precision),
}

impl EncoderRuntime {
    /// The path `XMC_ENCODER` asks for (`auto` when unset).
    pub fn from_env() -> Result<Self, FastPathError> {
        match std::env::var(RUNTIME_ENV) {
            Ok(v) => Self::parse(&v),
            Err(_) => Ok(EncoderRuntime::Auto),
        }
    }

    pub fn parse(value: &str) -> Result<Self, FastPathError> {
        match value.trim() {
            "" | "auto" => Ok(EncoderRuntime::Auto),
            "burn" => Ok(EncoderRuntime::Burn),
            "ort-fp32" => Ok(EncoderRuntime::Ort(Precision::Fp32)),
            "ort-int8" => Ok(EncoderRuntime::Ort(Precision::INT8)),
            "ort-int8-channel" => Ok(EncoderRuntime::Ort(Precision::int8_per_channel())),
            other => Err(FastPathError(format!("{RUNTIME_ENV}={other:?}: expected auto, burn, ort-fp32, ort-int8 or ort-int8-channel"))),
        }
    }
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct FastPathError(pub String);

/// The ONNX Runtime library's path: `XMC_ORT_LIB`, else `onnxruntime/libonnxruntime.so*` in
/// `XMC_MODELS_DIR`, else in `models/` of the working folder or of one of its ancestors.
pub fn library_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(LIBRARY_ENV).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let mut dirs: Vec<PathBuf> = std::env::var_os("XMC_MODELS_DIR").map(|d| PathBuf::from(d).join(LIBRARY_DIR)).into_iter().collect();
    if let Ok(cwd) = std::env::current_dir() {
        dirs.extend(cwd.ancestors().map(|a| a.join("models").join(LIBRARY_DIR)));
    }
    dirs.iter().find_map(|d| library_in(d))
}

/// The library in `dir` (the file whose name starts with the platform's library name).
pub fn library_in(dir: &Path) -> Option<PathBuf> {
    let prefix = format!("{}onnxruntime{}", std::env::consts::DLL_PREFIX, std::env::consts::DLL_SUFFIX);
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(&prefix)))
        .collect();
    found.sort();
    found.into_iter().next()
}

/// The process's ONNX Runtime environment, loaded once; the error says what was looked for.
fn environment() -> Result<&'static ort::environment::Environment, FastPathError> {
    static ENV: OnceLock<Result<ort::environment::Environment, FastPathError>> = OnceLock::new();
    ENV.get_or_init(|| {
        let path = library_path().ok_or_else(|| {
            FastPathError(format!(
                "no ONNX Runtime library (looked for {LIBRARY_ENV}, then models/{LIBRARY_DIR}/; `cargo xtask fetch-models` fetches it)"
            ))
        })?;
        let builder = ort::init_from(&path).map_err(|e| FastPathError(format!("ONNX Runtime library {}: {e}", path.display())))?;
        builder.with_name("xmc").build().map_err(|e| FastPathError(format!("ONNX Runtime library {}: {e}", path.display())))
    })
    .as_ref()
    .map_err(Clone::clone)
}

/// Whether the ONNX Runtime library loads in this process.
pub fn available() -> bool {
    environment().is_ok()
}

/// A sentence encoder's graph in an ONNX Runtime session.
pub struct FastEncoder {
    session: Mutex<Session>,
    precision: Precision,
    dim: usize,
}

impl std::fmt::Debug for FastEncoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FastEncoder").field("precision", &self.precision).field("dim", &self.dim).finish()
    }
}

impl FastEncoder {
    /// Exports `weights` at `precision` and opens a session with `threads` threads.
    pub fn new(weights: &BertWeights, precision: Precision, threads: usize) -> Result<Self, FastPathError> {
        let env = environment()?;
        let graph = crate::onnx::export(weights, precision);
        let fail = |e: ort::Error<_>| FastPathError(format!("ONNX Runtime session: {e}"));
        let session = Session::builder(env)
            .map_err(|e| FastPathError(format!("ONNX Runtime session: {e}")))?
            .with_optimization_level(GraphOptimizationLevel::All)
            .map_err(fail)?
            .with_intra_threads(threads.max(1))
            .map_err(fail)?
            .with_intra_op_spinning(false)
            .map_err(fail)?
            .commit_from_memory(&graph)
            .map_err(|e| FastPathError(format!("ONNX Runtime session: {e}")))?;
        Ok(FastEncoder { session: Mutex::new(session), precision, dim: weights.hidden })
    }

    pub fn precision(&self) -> Precision {
        self.precision
    }

    /// Unit vectors of one batch of tokenised texts, padded to the longest.
    pub fn embed(&self, tokens: &[&[u32]]) -> Result<Vec<Vec<f32>>, FastPathError> {
        if tokens.is_empty() {
            return Ok(Vec::new());
        }
        let (ids, mask, shape) = crate::batch::pad_batch(tokens);
        let fail = |e: ort::Error| FastPathError(format!("ONNX Runtime: {e}"));
        let ids = Tensor::from_array((shape, ids)).map_err(fail)?;
        let mask = Tensor::from_array((shape, mask)).map_err(fail)?;
        let mut session = self.session.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let outputs = session.run(ort::inputs!["input_ids" => ids, "attention_mask" => mask]).map_err(fail)?;
        let (out_shape, values) = outputs["embedding"].try_extract_tensor::<f32>().map_err(fail)?;
        if out_shape.len() != 2 || out_shape[0] as usize != tokens.len() || out_shape[1] as usize != self.dim {
            return Err(FastPathError(format!("ONNX Runtime gave embeddings of shape {out_shape:?}")));
        }
        Ok(values.chunks_exact(self.dim).map(<[f32]>::to_vec).collect())
    }
}
