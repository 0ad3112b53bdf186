//! What the encoder tests share: the fixtures folder, the reference vectors, cosine, and the
//! real all-MiniLM-L6-v2 folder when `cargo xtask fetch-models` has put it in place.
// Each test file is its own crate and uses a part of this.
#![allow(dead_code)]

use std::path::{Path, PathBuf};

use xmc_model::SentenceEncoder;

pub fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// Texts, their token ids (where recorded) and the vectors the reference implementation gave.
#[derive(serde::Deserialize)]
pub struct Reference {
    pub texts: Vec<String>,
    #[serde(default)]
    pub token_ids: Vec<Vec<u32>>,
    pub vectors: Vec<Vec<f32>>,
}

pub fn load_reference(path: &Path) -> Reference {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    let dot: f32 = a.iter().zip(b).map(|(x, y)| x * y).sum();
    let na: f32 = a.iter().map(|x| x * x).sum::<f32>().sqrt();
    let nb: f32 = b.iter().map(|x| x * x).sum::<f32>().sqrt();
    dot / (na * nb)
}

/// The all-MiniLM-L6-v2 folder (`XMC_MODELS_DIR` or the repository's `models/`), or `None`
/// with a line saying the test was skipped.
pub fn minilm_dir() -> Option<PathBuf> {
    model_dir("all-MiniLM-L6-v2", "cargo xtask fetch-models")
}

/// The all-mpnet-base-v2 folder, as [`minilm_dir`].
pub fn mpnet_dir() -> Option<PathBuf> {
    model_dir("all-mpnet-base-v2", "cargo xtask fetch-models --teacher")
}

fn model_dir(name: &str, fetch: &str) -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let dir = std::env::var_os("XMC_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("models")).join(name);
    if dir.join(SentenceEncoder::WEIGHTS).is_file() {
        Some(dir)
    } else {
        eprintln!("skipped: {} not found (run `{fetch}`)", dir.display());
        None
    }
}
