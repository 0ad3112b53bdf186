//! `cargo xtask bench encoder`: the sentence encoder alone on a dataset's test inputs, every
//! inference path in one sitting with the same texts, threads and batch size: burn (fp32), the
//! fast path (the encoder's ONNX graph in ONNX Runtime, fp32 and per-channel int8), each with
//! batches of similar length and in input order (padding to each batch's longest), and the
//! Python references on the same graphs (`onnxruntime`) and on the pretrained folder
//! (sentence-transformers). Prints the CPU's model and SIMD flags first.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use xmc_model::SentenceEncoder;
use xmc_model::onnx::Precision;

#[derive(Debug, Args)]
pub struct EncoderBenchArgs {
    /// The encoder folder (default: the recommended amazon-uk run's fine-tuned classifier encoder
    /// when it exists, else the pretrained all-MiniLM-L6-v2).
    #[arg(long)]
    encoder: Option<PathBuf>,
    /// The dataset whose test inputs are encoded (its descriptor under datasets/, split seed 42).
    #[arg(long, default_value = "amazon-uk")]
    dataset: String,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    #[arg(long, default_value_t = 2)]
    threads: usize,
    /// Timed rounds per row; the median is reported.
    #[arg(long, default_value_t = 3)]
    rounds: usize,
    /// Records for the one-at-a-time latency (the first N test inputs).
    #[arg(long, default_value_t = 200)]
    latency_records: usize,
    /// Python with onnxruntime, torch and sentence-transformers (or $XMC_BENCH_PYTHON); default:
    /// a virtualenv under target/xmc-bench made on first use.
    #[arg(long)]
    python: Option<PathBuf>,
    /// Skip the Python references.
    #[arg(long)]
    no_reference: bool,
    /// The Rust paths to time, by name (burn, fp32, int8-channel, int8-blocks-16, int8-blocks-32,
    /// int8-blocks-64); all by default.
    #[arg(long, value_delimiter = ',')]
    paths: Vec<String>,
}

/// One row: a path's throughput, its one-record latency and its closeness to burn fp32.
struct Row {
    name: String,
    rate: f64,
    latency_ms: f64,
    cosine: Option<(f64, f64)>,
}

pub fn bench_encoder(args: EncoderBenchArgs, bench_dir: &Path) -> Result<std::process::ExitCode> {
    print_cpu();
    let dir = bench_dir.join("encoder");
    if dir.exists() {
        std::fs::remove_dir_all(&dir)?;
    }
    std::fs::create_dir_all(&dir)?;
    let pretrained = crate::models::models_dir().join(crate::models::DEFAULT_ENCODER);
    crate::models::fetch_all(&crate::models::models_dir())?;
    let encoder_dir = args.encoder.clone().unwrap_or_else(|| {
        let tuned = PathBuf::from(format!("experiments/xr_{}/train/{}", args.dataset, xmc_ranker::CLASSIFIER_ENCODER_DIR));
        if tuned.join(SentenceEncoder::FINE_TUNED_WEIGHTS).is_file() { tuned } else { pretrained.clone() }
    });
    let texts = test_inputs(&args.dataset)?;
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let pool = rayon::ThreadPoolBuilder::new().num_threads(args.threads).build()?;
    let (rows, tokens) = pool.install(|| rust_rows(&args, &encoder_dir, &refs, &dir))?;
    let mut rows = rows;
    if !args.no_reference {
        rows.extend(python_rows(&args, &encoder_dir, &pretrained, &texts, &dir)?);
    }
    println!();
    println!(
        "Encoder {} on {} test inputs of {} ({:.1} tokens on average), batch {}, {} threads, median of {} rounds:",
        encoder_dir.display(),
        texts.len(),
        args.dataset,
        tokens,
        args.batch_size,
        args.threads,
        args.rounds
    );
    println!();
    println!("| path | records/s | per-record latency, one at a time (p50) | cosine to burn fp32 (mean / lowest) |");
    println!("|---|---|---|---|");
    for r in &rows {
        let cosine = r.cosine.map_or("-".into(), |(mean, low)| format!("{mean:.4} / {low:.4}"));
        println!("| {} | {:.0} | {:.2} ms | {cosine} |", r.name, r.rate, r.latency_ms);
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// The CPU's model name and the SIMD flags that matter to the encoder's kernels.
fn print_cpu() {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = info.lines().find_map(|l| l.strip_prefix("model name").map(|v| v.trim_start_matches([' ', '\t', ':']).to_string()));
    let flags: Vec<&str> = info.lines().find_map(|l| l.strip_prefix("flags")).map(|f| f.split_whitespace().collect()).unwrap_or_default();
    let wanted = ["avx2", "fma", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16", "amx_int8"];
    let present: Vec<&str> = wanted.iter().copied().filter(|w| flags.contains(w)).collect();
    println!("CPU: {} ({} logical cores); SIMD: {}", model.as_deref().unwrap_or("unknown"), std::thread::available_parallelism().map_or(0, |n| n.get()), present.join(" "));
}

/// The dataset's test inputs, rendered by its template (the project's split, seed 42).
fn test_inputs(dataset: &str) -> Result<Vec<String>> {
    let descriptor = PathBuf::from(format!("datasets/{dataset}.toml"));
    let run_data = PathBuf::from(format!("experiments/xr_{dataset}/data"));
    let data = if run_data.join("stage.json").is_file() {
        xmc_data::PreparedData::load(&run_data)?
    } else {
        let desc = xmc_data::DatasetDescriptor::load(&descriptor)?;
        xmc_data::prepare(&desc, &xmc_data::DataConfig { dataset: descriptor.clone(), ..Default::default() })?
    };
    Ok(data.split(xmc_data::Split::Test).map(|r| r.input.clone()).collect())
}

/// The median of `rounds` timings of `run` over `n` records, as records/s.
fn rate(rounds: usize, n: usize, mut run: impl FnMut() -> Result<()>) -> Result<f64> {
    run()?; // warm-up
    let mut rates = Vec::new();
    for _ in 0..rounds.max(1) {
        let started = Instant::now();
        run()?;
        rates.push(n as f64 / started.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    Ok(rates[rates.len() / 2])
}

/// p50 milliseconds of encoding one record at a time.
fn latency(encoder: &SentenceEncoder, texts: &[&str]) -> Result<f64> {
    let mut ms = Vec::with_capacity(texts.len());
    for t in texts {
        let started = Instant::now();
        encoder.encode(std::slice::from_ref(t), 1, |_| {})?;
        ms.push(started.elapsed().as_secs_f64() * 1e3);
    }
    ms.sort_by(f64::total_cmp);
    Ok(ms.get(ms.len() / 2).copied().unwrap_or(f64::NAN))
}

/// Encodes in input order, one call per batch, so each batch is padded to its own longest.
fn in_order(encoder: &SentenceEncoder, texts: &[&str], batch: usize) -> Result<Vec<Vec<f32>>> {
    let mut out = Vec::with_capacity(texts.len());
    for chunk in texts.chunks(batch.max(1)) {
        out.extend(encoder.encode(chunk, batch, |_| {})?);
    }
    Ok(out)
}

fn closeness(a: &[Vec<f32>], b: &[Vec<f32>]) -> (f64, f64) {
    let cos: Vec<f64> = a.iter().zip(b).map(|(x, y)| x.iter().zip(y).map(|(p, q)| (p * q) as f64).sum::<f64>()).collect();
    (cos.iter().sum::<f64>() / cos.len().max(1) as f64, cos.iter().copied().fold(1.0, f64::min))
}

/// The Rust rows, and the inputs' mean token count. Also writes the fp32 and int8 graphs for
/// the Python reference.
fn rust_rows(args: &EncoderBenchArgs, encoder_dir: &Path, texts: &[&str], dir: &Path) -> Result<(Vec<Row>, f64)> {
    let burn = SentenceEncoder::load(encoder_dir, &xmc_model::inference_device())?;
    let tokens = texts.iter().map(|t| burn.tokenize(t).map(|ids| ids.len())).sum::<Result<usize, _>>()? as f64 / texts.len().max(1) as f64;
    let latency_texts = &texts[..texts.len().min(args.latency_records)];
    let reference = burn.encode(texts, args.batch_size, |_| {})?;
    let mut rows = Vec::new();
    let add = |name: String, encoder: &SentenceEncoder, rows: &mut Vec<Row>| -> Result<()> {
        eprintln!("bench encoder: {name} ...");
        let mut vectors = Vec::new();
        let sorted = rate(args.rounds, texts.len(), || {
            vectors = encoder.encode(texts, args.batch_size, |_| {})?;
            Ok(())
        })?;
        let lat = latency(encoder, latency_texts)?;
        rows.push(Row { name: format!("{name}, batches of similar length"), rate: sorted, latency_ms: lat, cosine: Some(closeness(&vectors, &reference)) });
        let unsorted = rate(args.rounds, texts.len(), || {
            vectors = in_order(encoder, texts, args.batch_size)?;
            Ok(())
        })?;
        rows.push(Row { name: format!("{name}, batches in input order (padded)"), rate: unsorted, latency_ms: lat, cosine: Some(closeness(&vectors, &reference)) });
        Ok(())
    };
    let wanted = |name: &str| args.paths.is_empty() || args.paths.iter().any(|p| p == name);
    if wanted("burn") {
        add("burn fp32 (flex)".into(), &burn, &mut rows)?;
    }
    for precision in [Precision::Fp32, Precision::int8_per_channel(), Precision::Int8Blocks { block: 16 }, Precision::INT8, Precision::Int8Blocks { block: 64 }] {
        let slug = precision.slug();
        if !wanted(slug.trim_end_matches("-7bit")) {
            continue;
        }
        let copy = burn.with_weights(burn.model().clone());
        match copy.with_runtime(precision) {
            Ok(fast) => add(format!("xmc fast path: ONNX Runtime (ort), {}", precision.slug()), &fast, &mut rows)?,
            Err((_, why)) => eprintln!("bench encoder: the fast path at {} is not available: {why}", precision.name()),
        }
        let file = dir.join(format!("encoder-{}.onnx", precision.slug()));
        std::fs::write(&file, burn.export_onnx(precision)?).with_context(|| format!("writing {}", file.display()))?;
    }
    Ok((rows, tokens))
}

/// A virtualenv with onnxruntime (the fast path's version), torch and sentence-transformers.
pub(crate) fn reference_python(python: Option<PathBuf>, bench_dir: &Path) -> Result<PathBuf> {
    if let Some(p) = python.or_else(|| std::env::var_os("XMC_BENCH_PYTHON").map(PathBuf::from)) {
        return Ok(p);
    }
    let venv = bench_dir.join("encoder-venv");
    let python = venv.join("bin/python");
    if !python.is_file() {
        eprintln!("creating {} with onnxruntime, torch and sentence-transformers (first run only) ...", venv.display());
        let ok = Command::new("python3").args(["-m", "venv"]).arg(&venv).status()?.success()
            && Command::new(&python).args(["-m", "pip", "install", "--quiet", "onnxruntime==1.31.1", "torch", "sentence-transformers"]).status()?.success();
        if !ok {
            bail!("making {} failed", venv.display());
        }
    }
    Ok(python)
}

fn python_rows(args: &EncoderBenchArgs, encoder_dir: &Path, pretrained: &Path, texts: &[String], dir: &Path) -> Result<Vec<Row>> {
    let python = reference_python(args.python.clone(), dir.parent().unwrap_or(dir))?;
    let texts_file = dir.join("texts.txt");
    std::fs::write(&texts_file, texts.join("\n") + "\n")?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/encoder_reference.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(dir)
        .arg(encoder_dir.join(SentenceEncoder::TOKENIZER))
        .arg(pretrained)
        .arg(&texts_file)
        .args([args.batch_size, args.threads, args.rounds, args.latency_records].map(|n| n.to_string()))
        .stderr(std::process::Stdio::inherit())
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    if !out.status.success() {
        bail!("{} failed", script.display());
    }
    let mut rows = Vec::new();
    for line in String::from_utf8(out.stdout)?.lines().filter(|l| l.starts_with('{')) {
        let v: serde_json::Value = serde_json::from_str(line)?;
        rows.push(Row {
            name: v["name"].as_str().unwrap_or_default().to_string(),
            rate: v["records_per_s"].as_f64().unwrap_or(f64::NAN),
            latency_ms: v["latency_ms"].as_f64().unwrap_or(f64::NAN),
            cosine: None,
        });
    }
    Ok(rows)
}
