//! Benchmarks that time a stage in a child process, so its wall time and peak memory are its own.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

use crate::bench_child::{default_taxonomy, measure, synthetic_dataset};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Prepare 1.68M synthetic records (the CSV is written first, then the stage alone is timed
    /// in a child process: wall time and peak RSS). `--streaming --records 16800000` is the
    /// larger-than-memory figure.
    Data(DataBenchArgs),
    /// Training steps/s of the small-cpu T5 (batch 32) in burn and in PyTorch (transformers).
    Train(TrainBenchArgs),
    /// Records/s of constrained beam-search prediction with a trained model folder.
    Predict(PredictBenchArgs),
    /// `xmc predict` streaming synthetic CSVs of growing size through a model folder, each in a
    /// child process: records/s and peak RSS (which must not grow with the input).
    PredictFile(PredictFileBenchArgs),
    /// The Python package against the command line on the same synthetic CSV, each in a child
    /// process with the same threads: `xmc predict` vs pandas.read_csv + `predict_frame` +
    /// to_parquet (python/bench/predict_frame.py, in the virtualenv `.ci/run` makes).
    Python(PythonBenchArgs),
    /// Spark local[N] (`python -m xmc.spark`, mapInArrow) against `xmc predict` with N threads on
    /// the same synthetic Parquet file, each in a child process.
    Spark(SparkBenchArgs),
    /// Embed 14,262 synthetic label paths with the sentence encoder (burn, and sentence-transformers
    /// for reference) and build the k = 6 tree.
    Tree(TreeBenchArgs),
    /// fastText, Omikuji, PECOS XR-Linear and LinearSVC on TF-IDF on xmc's split, scored with xmc's metrics, next to
    /// finished xmc runs.
    Peers(crate::peers::PeersBenchArgs),
    /// Records/s and p50/p99 latency of `xmc serve` over loopback, batch sizes 1 and 32.
    Serve(crate::serve_bench::ServeBenchArgs),
    /// Train the XR ranker at the reference scale (1.68M synthetic records, 14,262 labels): TF-IDF,
    /// PIFA tree and node scorers in a child process, timed, with its peak memory.
    Ranker(RankerBenchArgs),
    /// Zero-shot labels: hold labels out of a cluster-search run's tree, insert them by nearest
    /// centroid, and measure how often their test records are found.
    ZeroShot(crate::zero_shot::ZeroShotArgs),
    /// The fault suite: corrupted model folders, bad input bytes, killed sharded runs and abusive
    /// clients of `xmc serve`, each in a child process; counts panics, aborts, hangs and rows lost
    /// (all must be 0). `--short` is the sample `.ci/run` runs.
    Faults(crate::faults::FaultsArgs),
    /// The sentence encoder alone on a dataset's test inputs: burn fp32 against the fast path
    /// (ONNX Runtime, fp32 and int8), batches of similar length and in input order, against ONNX
    /// Runtime's Python package and sentence-transformers; records/s and one-record latency.
    Encoder(crate::encoder_bench::EncoderBenchArgs),
    /// The recommended recipe's training (`xmc train`, no config) on synthetic sets of the given
    /// sizes, each in a child process: wall time, peak RSS, the encoder fine-tuning's share and
    /// rate, and the linear projection to the 1.68M-record reference scale (target: <= 2 h, <= 8 GB).
    TrainRecipe(crate::train_recipe_bench::TrainRecipeBenchArgs),
    /// Would a stronger sentence encoder pay as the classifier? all-MiniLM-L6-v2 and
    /// all-mpnet-base-v2 fine-tuned the same way (PyTorch) on a dataset's training split, every
    /// epoch scored on its validation split: accuracy, macro-F1, tail accuracy, records/s.
    Teacher(crate::teacher_bench::TeacherBenchArgs),
}

#[derive(Debug, Args)]
pub struct TrainBenchArgs {
    #[arg(long, default_value_t = 8000)]
    vocab: usize,
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[arg(long, default_value_t = 28)]
    input_len: usize,
    #[arg(long, default_value_t = 8)]
    target_len: usize,
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Python with torch and transformers (or $XMC_BENCH_PYTHON); default: the bench virtualenv.
    #[arg(long)]
    python: Option<PathBuf>,
    #[arg(long)]
    no_reference: bool,
}

#[derive(Debug, Args)]
pub struct PredictBenchArgs {
    /// Trained model folders (e.g. experiments/hkmeans_t5/train experiments/plain_t5/train).
    #[arg(required = true)]
    models: Vec<PathBuf>,
    /// Prepared data whose test split is predicted (default: the data stage beside each model).
    #[arg(long)]
    data: Option<PathBuf>,
    #[arg(long, default_value_t = 5)]
    beam_width: usize,
    /// Records encoded and decoded together.
    #[arg(long, default_value_t = xmc_methods::generative::PREDICT_BATCH)]
    batch_size: usize,
    /// Batches decoded at once, one per thread (default: one per core, or $XMC_PREDICT_THREADS).
    #[arg(long, default_value_t = xmc_train::default_threads())]
    threads: usize,
    /// Timed passes over the test split; the median rate is reported.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
}

#[derive(Debug, Args)]
pub struct TreeBenchArgs {
    #[arg(long, default_value_t = 14_262)]
    labels: usize,
    #[arg(long, default_value_t = 64)]
    batch_size: usize,
    /// Python with torch and sentence-transformers (or $XMC_BENCH_PYTHON); default: a virtualenv
    /// under target/xmc-bench made on first use.
    #[arg(long)]
    python: Option<PathBuf>,
    /// Skip the PyTorch reference.
    #[arg(long)]
    no_reference: bool,
    /// Reuse the embeddings of the last run instead of encoding again (tree timing only).
    #[arg(long)]
    reuse_embeddings: bool,
    #[arg(long)]
    taxonomy: Option<PathBuf>,
    /// k-means restarts per node (the tree config's `runs`).
    #[arg(long, default_value_t = xmc_cluster::TreeConfig::default().runs)]
    runs: usize,
    /// k-means tolerance (the tree config's `tolerance`).
    #[arg(long, default_value_t = xmc_cluster::TreeConfig::default().tolerance)]
    tolerance: f32,
}

#[derive(Debug, Args)]
pub struct DataBenchArgs {
    #[arg(long, default_value_t = 1_680_000)]
    records: usize,
    #[arg(long, default_value_t = 14_262)]
    labels: usize,
    /// Timed repetitions; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Google taxonomy file (default: taxonomy-with-ids.en-US.txt under the data folder).
    #[arg(long)]
    taxonomy: Option<PathBuf>,
    /// Prepare with the streaming data stage (`data.streaming`: two passes, bounded memory)
    /// instead of the in-memory one.
    #[arg(long)]
    streaming: bool,
}

#[derive(Debug, Args)]
pub struct PredictFileBenchArgs {
    /// A trained model folder of any method.
    model: PathBuf,
    /// Input sizes, each a synthetic CSV over the Google taxonomy (written once, then reused).
    #[arg(long, value_delimiter = ',', default_values_t = [100_000usize, 1_000_000])]
    records: Vec<usize>,
    /// Output format of `xmc predict`.
    #[arg(long, value_enum, default_value = "parquet")]
    format: xmc_methods::output::OutputFormat,
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// Threads of `xmc predict` (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Google taxonomy file (default: taxonomy-with-ids.en-US.txt under the data folder).
    #[arg(long)]
    taxonomy: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PythonBenchArgs {
    /// A trained model folder of any method.
    model: PathBuf,
    #[arg(long, default_value_t = 100_000)]
    records: usize,
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// Python with the xmc wheel installed (default: the virtualenv `.ci/run` makes).
    #[arg(long)]
    python: Option<PathBuf>,
    /// Timed repetitions of each side; the median is reported.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    #[arg(long)]
    taxonomy: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SparkBenchArgs {
    /// A trained model folder of any method.
    model: PathBuf,
    #[arg(long, default_value_t = 1_000_000)]
    records: usize,
    #[arg(long, default_value_t = 5)]
    top_k: usize,
    /// Spark's local[N] and the CLI's threads (default: one per core).
    #[arg(long)]
    threads: Option<usize>,
    /// Python with the xmc wheel and pyspark installed (default: the virtualenv `.ci/run` makes).
    #[arg(long)]
    python: Option<PathBuf>,
    #[arg(long)]
    taxonomy: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct RankerBenchArgs {
    #[arg(long, default_value_t = 1_680_000)]
    records: usize,
    #[arg(long, default_value_t = 14_262)]
    labels: usize,
    /// Override a `tree.` or `ranker.` key (TOML value), e.g. --set tree.balanced=false
    /// --set ranker.max_iter=20. The bench's own defaults: a balanced k = 16 tree over PIFA
    /// label vectors, the ranker's defaults with a training beam of 3 and `max_iter` 8.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Google taxonomy file (default: taxonomy-with-ids.en-US.txt under the data folder).
    #[arg(long)]
    taxonomy: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ChildArgs {
    /// What to run: `data-prepare`, `data-prepare-streaming`, or `ranker-train` (the ranker
    /// bench's work).
    task: String,
    descriptor: PathBuf,
    out: PathBuf,
    /// The ranker bench's tree and ranker settings, as JSON.
    #[arg(long)]
    settings: Option<String>,
}

/// The ranker bench's settings: its defaults with `--set tree.KEY=VALUE` / `ranker.KEY=VALUE`
/// applied (unknown keys are refused by the configs' own deserialisers).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct RankerBenchSettings {
    tree: xmc_cluster::TreeConfig,
    ranker: xmc_ranker::RankerConfig,
}

impl RankerBenchSettings {
    fn with_overrides(sets: &[String]) -> Result<Self> {
        // The recipe at scale: PECOS's balanced k-means (4 levels for 14k labels, not 9), a
        // training beam of 3 and at most 8 coordinate-descent passes (on amazon-uk neither the
        // balance nor the cap moved validation accuracy: experiments/README.md).
        let defaults = RankerBenchSettings {
            tree: xmc_cluster::TreeConfig { branching: 16, balanced: true, ..Default::default() },
            ranker: xmc_ranker::RankerConfig { train_beam: 3, max_iter: 8, ..Default::default() },
        };
        let mut value = serde_json::to_value(defaults)?;
        for item in sets {
            let (key, raw) = item.split_once('=').with_context(|| format!("--set {item}: expected KEY=VALUE"))?;
            let parsed: toml::Table = toml::from_str(&format!("v = {raw}")).with_context(|| format!("--set {item}: not a TOML value"))?;
            let mut path = key.split('.');
            let section = path.next().filter(|s| *s == "tree" || *s == "ranker").with_context(|| format!("--set {item}: only tree. and ranker. keys apply here"))?;
            let mut target = &mut value[section];
            for field in path {
                target = target.get_mut(field).with_context(|| format!("--set {item}: no key `{field}` there"))?;
            }
            *target = serde_json::to_value(&parsed["v"])?;
        }
        let settings: RankerBenchSettings = serde_json::from_value(value).context("--set")?;
        settings.tree.validate().map_err(anyhow::Error::msg)?;
        settings.ranker.validate().map_err(anyhow::Error::msg)?;
        Ok(settings)
    }
}

fn bench_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target"));
    target.join("xmc-bench")
}

pub fn run(cmd: BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Data(args) => bench_data(args),
        BenchCommand::Tree(args) => bench_tree(args),
        BenchCommand::Train(args) => bench_train(args),
        BenchCommand::Predict(args) => bench_predict(args),
        BenchCommand::PredictFile(args) => bench_predict_file(args),
        BenchCommand::Python(args) => bench_python(args),
        BenchCommand::Spark(args) => bench_spark(args),
        BenchCommand::Peers(args) => crate::peers::bench_peers(args, &bench_dir()),
        BenchCommand::Serve(args) => crate::serve_bench::bench_serve(args),
        BenchCommand::ZeroShot(args) => crate::zero_shot::bench_zero_shot(args),
        BenchCommand::Ranker(args) => bench_ranker(args),
        BenchCommand::Faults(args) => crate::faults::bench_faults(args, &bench_dir()),
        BenchCommand::Encoder(args) => crate::encoder_bench::bench_encoder(args, &bench_dir()),
        BenchCommand::TrainRecipe(args) => crate::train_recipe_bench::bench_train_recipe(args, &bench_dir()),
        BenchCommand::Teacher(args) => crate::teacher_bench::bench_teacher(args, &bench_dir()),
    }
}

pub fn child(args: ChildArgs) -> Result<ExitCode> {
    match args.task.as_str() {
        "data-prepare" => {
            let desc = xmc_data::DatasetDescriptor::load(&args.descriptor)?;
            let cfg = xmc_data::DataConfig { dataset: args.descriptor.clone(), ..Default::default() };
            let started = std::time::Instant::now();
            let prepared = xmc_data::prepare(&desc, &cfg)?;
            let prepared_at = started.elapsed();
            prepared.save(&args.out)?;
            tracing::info!("prepare {:.2?}, save {:.2?}", prepared_at, started.elapsed() - prepared_at);
            eprint!("{}", prepared.stats.summary());
            Ok(ExitCode::SUCCESS)
        }
        "data-prepare-streaming" => {
            let desc = xmc_data::DatasetDescriptor::load(&args.descriptor)?;
            let cfg = xmc_data::DataConfig { dataset: args.descriptor.clone(), streaming: true, ..Default::default() };
            let prepared = xmc_data::prepare_streaming(&desc, &cfg, &args.out, &Default::default(), |_, _| {})?;
            eprint!("{}", prepared.stats.summary());
            Ok(ExitCode::SUCCESS)
        }
        "ranker-train" => {
            let settings: RankerBenchSettings = serde_json::from_str(args.settings.as_deref().context("ranker-train needs --settings")?)?;
            ranker_child(&args.descriptor, &settings, &args.out)
        }
        other => bail!("unknown bench task {other}"),
    }
}



/// A virtualenv with torch and sentence-transformers for reference runs, made once.
fn reference_python(dir: &Path) -> Result<PathBuf> {
    let venv = dir.join("venv");
    let python = venv.join("bin/python");
    if !python.is_file() {
        eprintln!("creating {} with torch and sentence-transformers (first run only) ...", venv.display());
        let status = Command::new("python3").args(["-m", "venv"]).arg(&venv).status()?;
        if !status.success() {
            bail!("python3 -m venv failed");
        }
        let status = Command::new(&python).args(["-m", "pip", "install", "--quiet", "torch", "sentence-transformers"]).status()?;
        if !status.success() {
            bail!("pip install torch sentence-transformers failed");
        }
    }
    Ok(python)
}

fn bench_train(args: TrainBenchArgs) -> Result<ExitCode> {
    use burn::module::Module;
    use burn::nn::loss::CrossEntropyLossConfig;
    use burn::optim::{AdamWConfig, GradientsParams};
    use burn::prelude::*;

    let device = xmc_model::training_device();
    let cfg = xmc_model::t5::preset("small-cpu", args.vocab).expect("preset exists");
    let mut model = cfg.init_seeded(&device, 0);
    let params = model.num_params();
    let mut optim = AdamWConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(0.01)
        .with_grad_clipping(Some(burn::grad_clipping::GradientClippingConfig::Norm(1.0)))
        .init();
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut rng = xmc_data::SplitMix64::new(1);
    let mut random_ids = |len: usize| -> Tensor<2, Int> {
        let ids: Vec<i64> = (0..args.batch_size * len).map(|_| 2 + rng.below(args.vocab - 2) as i64).collect();
        Tensor::from_data(TensorData::new(ids, [args.batch_size, len]), &device)
    };
    let (ids, dec_in, targets) = (random_ids(args.input_len), random_ids(args.target_len), random_ids(args.target_len));
    let mask = Tensor::<2>::ones([args.batch_size, args.input_len], &device);
    let mut step = |model: xmc_model::T5| {
        let logits = model.forward(ids.clone(), mask.clone(), dec_in.clone());
        let [b, t, v] = logits.dims();
        let loss = loss_fn.forward(logits.reshape([b * t, v]), targets.clone().reshape([b * t]));
        let grads = GradientsParams::from_grads(loss.backward(), &model);
        optim.step(1e-4, model, grads)
    };
    for _ in 0..args.warmup {
        model = step(model);
    }
    let started = Instant::now();
    for _ in 0..args.steps {
        model = step(model);
    }
    let burn_rate = args.steps as f64 / started.elapsed().as_secs_f64();
    eprintln!("burn: {burn_rate:.3} steps/s ({params} parameters)");
    let reference = if args.no_reference {
        None
    } else {
        let python = match args.python.or_else(|| std::env::var_os("XMC_BENCH_PYTHON").map(PathBuf::from)) {
            Some(p) => p,
            None => reference_python(&bench_dir())?,
        };
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/train_reference.py");
        let numbers = [args.vocab, args.batch_size, args.input_len, args.target_len, args.warmup, args.steps, 2];
        let out = Command::new(&python)
            .arg(&script)
            .args(numbers.iter().map(|n| n.to_string()))
            .stderr(std::process::Stdio::inherit())
            .output()?;
        if !out.status.success() {
            bail!("the PyTorch reference failed");
        }
        let value: serde_json::Value = serde_json::from_str(String::from_utf8(out.stdout)?.lines().last().unwrap_or_default())?;
        Some((value["steps_per_s"].as_f64().unwrap_or_default(), value["params"].as_u64().unwrap_or_default(), value["torch"].as_str().unwrap_or_default().to_string()))
    };
    println!("| benchmark | burn (flex) | PyTorch (transformers) | ratio | target |");
    println!("|---|---|---|---|---|");
    let (cell, ratio, ok) = match &reference {
        Some((rate, p, version)) => (format!("{rate:.3} steps/s ({p} params, torch {version})"), format!("{:.2}", burn_rate / rate), burn_rate / rate >= 0.8),
        None => ("not run".into(), "-".into(), true),
    };
    println!(
        "| train small-cpu T5, batch {}, input {} / target {} tokens, vocab {} | {burn_rate:.3} steps/s ({params} params) | {cell} | {ratio} | >= 0.8 |",
        args.batch_size, args.input_len, args.target_len, args.vocab
    );
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn bench_predict(args: PredictBenchArgs) -> Result<ExitCode> {
    use xmc_model::DecodeConfig;
    println!("| model | mode | records | beam | batch | threads | decoder | records/s (median of {}) | test accuracy | target |", args.rounds);
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let batching = xmc_train::Batching::new(args.batch_size).with_threads(args.threads);
    let mut ok = true;
    for dir in &args.models {
        let predictor = xmc_methods::Predictor::load(dir)?;
        let any: &dyn std::any::Any = predictor.model();
        let Some(xmc_methods::generative::GenerativeModel(trained)) = any.downcast_ref() else {
            // The other methods: through the Predictor, with their own beams.
            ok &= bench_predict_ranked(dir, &predictor, &args)?;
            continue;
        };
        let data = bench_data_of(dir, &args)?;
        let test: Vec<&xmc_data::PreparedRecord> = data.split(xmc_data::Split::Test).collect();
        let texts: Vec<&str> = test.iter().map(|r| r.input.as_str()).collect();
        let fast = xmc_methods::generative::decode_config(&trained, args.beam_width, args.beam_width);
        // Decoding every token of every sequence, and stopping once a prefix names one label.
        let variants = [("whole sequences", DecodeConfig { stop_when_unique: false, ..fast }), ("stop when unique (default)", fast)];
        let softmax = if trained.task.output_tokens.is_some() { "targets" } else { "vocabulary" };
        for (name, decode) in variants {
            xmc_methods::generative::predict_texts_with(&trained, &texts[..texts.len().min(32)], &decode, batching, |_| {})?; // warm-up
            let mut rates = Vec::new();
            let mut hyps = Vec::new();
            for _ in 0..args.rounds {
                let started = Instant::now();
                hyps = xmc_methods::generative::predict_texts_with(&trained, &texts, &decode, batching, |_| {})?;
                rates.push(texts.len() as f64 / started.elapsed().as_secs_f64());
            }
            rates.sort_by(f64::total_cmp);
            let rate = rates[rates.len() / 2];
            let correct = hyps.iter().zip(&test).filter(|(h, r)| h.first().is_some_and(|h| h.label == r.label)).count();
            let accuracy = correct as f64 / test.len().max(1) as f64;
            if decode == fast {
                ok &= rate >= 300.0;
            }
            println!(
                "| {} | {:?}, softmax over {softmax} | {} | {} | {} | {} | {name} | {rate:.0} | {accuracy:.4} | >= 300 |",
                dir.display(),
                trained.meta.model.mode,
                texts.len(),
                args.beam_width,
                args.batch_size,
                args.threads
            );
        }
    }
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The prepared data whose test split `bench predict` uses for a model folder: `--data`, else
/// the data stage beside the folder.
fn bench_data_of(dir: &Path, args: &PredictBenchArgs) -> Result<xmc_data::PreparedData> {
    let data_dir = match &args.data {
        Some(d) => d.clone(),
        None => dir.parent().unwrap_or(Path::new(".")).join("data"),
    };
    Ok(xmc_data::PreparedData::load(&data_dir)?)
}

/// Records/s of an XR or fused model folder over its run's test split (the rayon pool of the
/// process: one thread per core unless RAYON_NUM_THREADS says otherwise); the target is 3,000
/// records/s for the ranker alone and 300 for the fused method (each method's `speed_target`).
fn bench_predict_ranked(dir: &Path, predictor: &xmc_methods::Predictor, args: &PredictBenchArgs) -> Result<bool> {
    let data = bench_data_of(dir, args)?;
    let test: Vec<&xmc_data::PreparedRecord> = data.split(xmc_data::Split::Test).collect();
    let texts: Vec<&str> = test.iter().map(|r| r.input.as_str()).collect();
    let beam = predictor.default_beam();
    predictor.predict_texts(&texts[..texts.len().min(32)], beam, 5, |_| {})?; // warm-up
    let mut rates = Vec::new();
    let mut ranked = Vec::new();
    for _ in 0..args.rounds {
        let started = Instant::now();
        ranked = predictor.predict_texts(&texts, beam, 5, |_| {})?;
        rates.push(texts.len() as f64 / started.elapsed().as_secs_f64());
    }
    rates.sort_by(f64::total_cmp);
    let rate = rates[rates.len() / 2];
    let correct = ranked.iter().zip(&test).filter(|(h, r)| h.first().is_some_and(|&(l, _)| l == r.label)).count();
    let target = xmc_methods::registry::detect(dir)?.speed_target();
    println!(
        "| {} | {} | {} | {beam} | - | {} | top 5 | {rate:.0} | {:.4} | >= {target:.0} |",
        dir.display(),
        predictor.method(),
        texts.len(),
        rayon::current_num_threads(),
        correct as f64 / test.len().max(1) as f64
    );
    Ok(rate >= target)
}

/// `xmc predict` (through this binary's `xmc` passthrough) of `input` into `output`, for a bench
/// child process.
fn xmc_predict_command(exe: &Path, model: &Path, input: &Path, descriptor: &Path, output: &Path, top_k: usize, threads: usize) -> Command {
    let mut command = Command::new(exe);
    command.args(["xmc", "predict", "--model"]).arg(model).arg("--input").arg(input).arg("--dataset").arg(descriptor);
    command.arg("--output").arg(output).args(["--top-k", &top_k.to_string(), "--threads", &threads.to_string()]);
    command
}

fn bench_predict_file(args: PredictFileBenchArgs) -> Result<ExitCode> {
    let dir = bench_dir();
    let method = xmc_methods::Predictor::load(&args.model)?.method();
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let exe = std::env::current_exe()?;
    let mut rows = Vec::new();
    for &records in &args.records {
        let (csv, descriptor) = synthetic_dataset(&dir, records, 14_262, args.taxonomy.clone())?;
        let ext = format!("{:?}", args.format).to_lowercase();
        let out = dir.join(format!("predictions-{records}.{ext}"));
        let command = xmc_predict_command(&exe, &args.model, &csv, &descriptor, &out, args.top_k, threads);
        eprintln!("predicting {records} records ...");
        let (seconds, rss) = measure(command)?;
        let rss_mib = rss as f64 / (1 << 20) as f64;
        eprintln!("{records} records: {seconds:.1} s, peak RSS {rss_mib:.0} MiB");
        rows.push(format!(
            "| {} | {method} | {records} | {threads} | {ext} | {seconds:.1} | {:.0} | {rss_mib:.0} | < 1536 |",
            args.model.display(),
            records as f64 / seconds
        ));
        std::fs::remove_file(&out)?;
    }
    println!("| model | method | records | threads | output | wall s | records/s | peak RSS MiB | target MiB |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!("{row}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The Python the benches run: `given`, else the virtualenv `.ci/run` fills with `what`.
fn venv_python(bench_dir: &Path, given: Option<PathBuf>, what: &str) -> Result<PathBuf> {
    let python = given.unwrap_or_else(|| bench_dir.parent().unwrap_or(Path::new(".")).join("xmc-python-venv/bin/python"));
    if !python.is_file() {
        bail!("{} not found: run .ci/run once (it installs {what} into that virtualenv), or pass --python", python.display());
    }
    Ok(python)
}

fn bench_python(args: PythonBenchArgs) -> Result<ExitCode> {
    let dir = bench_dir();
    let python = venv_python(&dir, args.python.clone(), "the wheel")?;
    let (csv, descriptor) = synthetic_dataset(&dir, args.records, 14_262, args.taxonomy.clone())?;
    let threads = std::thread::available_parallelism().map_or(1, usize::from);
    let exe = std::env::current_exe()?;
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../python/bench/predict_frame.py");
    let (mut cli, mut py) = (Vec::new(), Vec::new());
    for run in 0..args.runs.max(1) {
        let out = dir.join("bench-python-cli.parquet");
        let (seconds, rss) = measure(xmc_predict_command(&exe, &args.model, &csv, &descriptor, &out, args.top_k, threads))?;
        cli.push((seconds, rss));
        let out = dir.join("bench-python-py.parquet");
        let mut command = Command::new(&python);
        command.arg(&script).arg("--model").arg(&args.model).arg("--dataset").arg(&descriptor).arg("--input").arg(&csv);
        command.arg("--output").arg(&out).args(["--top-k", &args.top_k.to_string()]).env("RAYON_NUM_THREADS", threads.to_string());
        let (seconds, rss) = measure(command)?;
        py.push((seconds, rss));
        eprintln!("run {}: CLI {:.1} s, Python {:.1} s", run + 1, cli[run].0, seconds);
    }
    let median = |v: &mut Vec<(f64, u64)>| {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v[v.len() / 2]
    };
    let (c, p) = (median(&mut cli), median(&mut py));
    let rate = |s: f64| args.records as f64 / s;
    println!("| side | records | threads | wall s (median of {}) | records/s | peak RSS MiB |", args.runs.max(1));
    println!("|---|---|---|---|---|---|");
    println!("| `xmc predict` (CSV in, Parquet out) | {} | {threads} | {:.1} | {:.0} | {:.0} |", args.records, c.0, rate(c.0), c.1 as f64 / (1 << 20) as f64);
    println!("| Python: read_csv + predict_frame + to_parquet | {} | {threads} | {:.1} | {:.0} | {:.0} |", args.records, p.0, rate(p.0), p.1 as f64 / (1 << 20) as f64);
    let ratio = rate(p.0) / rate(c.0);
    println!("\nPython's records/s are {:.0}% of the CLI's (target: at least 90%).", 100.0 * ratio);
    Ok(if ratio >= 0.9 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn bench_spark(args: SparkBenchArgs) -> Result<ExitCode> {
    let dir = bench_dir();
    let python = venv_python(&dir, args.python.clone(), "the wheel and pyspark")?;
    let (csv, descriptor) = synthetic_dataset(&dir, args.records, 14_262, args.taxonomy.clone())?;
    let parquet = csv.with_extension("parquet");
    if !parquet.exists() {
        // Row groups of 64k rows: Spark splits the file into tasks along them.
        let convert = "import sys, pyarrow.csv as c, pyarrow.parquet as p\n\
            t = c.read_csv(sys.argv[1], convert_options=c.ConvertOptions(column_types={n: 'string' for n in c.read_csv(sys.argv[1], read_options=c.ReadOptions(skip_rows_after_names=10**9)).column_names}))\n\
            p.write_table(t, sys.argv[2] + '.partial', row_group_size=65536)";
        let status = Command::new(&python).args(["-c", convert]).arg(&csv).arg(&parquet).status()?;
        anyhow::ensure!(status.success(), "converting {} to Parquet failed", csv.display());
        std::fs::rename(format!("{}.partial", parquet.display()), &parquet)?;
    }
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    let exe = std::env::current_exe()?;
    let cli_out = dir.join("bench-spark-cli.parquet");
    eprintln!("xmc predict: {} records ...", args.records);
    let (cli_s, cli_rss) = measure(xmc_predict_command(&exe, &args.model, &parquet, &descriptor, &cli_out, args.top_k, threads))?;
    let spark_out = dir.join("bench-spark-out");
    let mut command = Command::new(&python);
    command.args(["-m", "xmc.spark", "--master", &format!("local[{threads}]"), "--model"]).arg(&args.model);
    command.arg("--dataset").arg(&descriptor).arg("--input").arg(&parquet).arg("--output").arg(&spark_out);
    command.args(["--top-k", &args.top_k.to_string(), "--conf", "spark.sql.files.maxPartitionBytes=8m", "--conf", "spark.ui.enabled=false"]);
    eprintln!("Spark local[{threads}]: {} records ...", args.records);
    let (spark_s, spark_rss) = measure(command)?;
    let rate = |s: f64| args.records as f64 / s;
    println!("| side | records | cores | wall s | records/s | peak RSS MiB (parent process) |");
    println!("|---|---|---|---|---|---|");
    println!("| `xmc predict` (Parquet in and out) | {} | {threads} | {cli_s:.1} | {:.0} | {:.0} |", args.records, rate(cli_s), cli_rss as f64 / (1 << 20) as f64);
    println!("| Spark local[{threads}], mapInArrow (Parquet in and out) | {} | {threads} | {spark_s:.1} | {:.0} | {:.0} |", args.records, rate(spark_s), spark_rss as f64 / (1 << 20) as f64);
    let ratio = rate(spark_s) / rate(cli_s);
    println!("\nSpark's records/s are {:.0}% of the CLI's (target: at least 75%); wall time includes Spark's start-up.", 100.0 * ratio);
    Ok(if ratio >= 0.75 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

fn bench_tree(args: TreeBenchArgs) -> Result<ExitCode> {
    let dir = bench_dir();
    std::fs::create_dir_all(&dir)?;
    let leaves = xmc_data::synth::taxonomy_leaves(&default_taxonomy(args.taxonomy)?)?;
    let paths = xmc_data::synth::synthetic_labels(&leaves, args.labels, xmc_data::synth::SynthConfig::default().seed);
    // Embed in label-id order so the codes can be scored against the taxonomy.
    let labels = xmc_data::LabelSet::from_paths(paths.iter().map(Vec::as_slice), 25);
    let texts: Vec<String> = labels.labels.iter().map(|l| l.path.clone()).collect();
    let texts_file = dir.join(format!("label-paths-{}.txt", texts.len()));
    std::fs::write(&texts_file, texts.join("\n") + "\n")?;
    let encoder_dir = crate::models::models_dir().join(crate::models::DEFAULT_ENCODER);
    crate::models::fetch_encoder(&encoder_dir)?;

    let cached = dir.join(format!("label-embeddings-{}", texts.len()));
    let (embeddings, burn_rate) = if args.reuse_embeddings && cached.is_dir() {
        (xmc_cluster::LabelEmbeddings::load(&cached)?, f64::NAN)
    } else {
        let encoder = xmc_model::SentenceEncoder::load(&encoder_dir, &xmc_model::inference_device())?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        encoder.encode(&refs[..args.batch_size.min(refs.len())], args.batch_size, |_| {})?; // warm-up
        let started = Instant::now();
        let vectors = encoder.encode(&refs, args.batch_size, |_| {})?;
        let encode_seconds = started.elapsed().as_secs_f64();
        let burn_rate = texts.len() as f64 / encode_seconds;
        eprintln!("burn: {} labels in {encode_seconds:.2} s ({burn_rate:.0} labels/s)", texts.len());
        let embeddings = xmc_cluster::LabelEmbeddings {
            kind: xmc_cluster::EmbeddingKind::Sentence,
            labels: texts.len(),
            dim: encoder.dim(),
            data: vectors.concat(),
        };
        embeddings.save(&cached)?;
        (embeddings, burn_rate)
    };
    let cfg = xmc_cluster::TreeConfig { runs: args.runs, tolerance: args.tolerance, ..Default::default() };
    let started = Instant::now();
    let tree = xmc_cluster::build_tree(&embeddings, &cfg)?;
    let tree_seconds = started.elapsed().as_secs_f64();
    let codes = xmc_codes::build_codes(&tree, &labels, &Default::default())?;
    let c = &codes.stats.coherence;
    eprintln!(
        "tree: k = {}, runs {}, tolerance {}: {} internal nodes, depth {}, {tree_seconds:.2} s; siblings sharing prefix 1: {:.3} (random {:.3}), 2: {:.3} (random {:.3})",
        cfg.branching,
        cfg.runs,
        cfg.tolerance,
        tree.nodes.len(),
        codes.stats.max_code_length,
        c.prefix_1,
        c.random_prefix_1,
        c.prefix_2,
        c.random_prefix_2
    );

    let reference = if args.no_reference {
        None
    } else {
        let python = match args.python.or_else(|| std::env::var_os("XMC_BENCH_PYTHON").map(PathBuf::from)) {
            Some(p) => p,
            None => reference_python(&dir)?,
        };
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/encode_reference.py");
        let out = Command::new(&python)
            .arg(&script)
            .arg(&encoder_dir)
            .arg(&texts_file)
            .arg(args.batch_size.to_string())
            .arg(std::thread::available_parallelism().map_or(2, |n| n.get()).to_string())
            .stderr(std::process::Stdio::inherit())
            .output()?;
        if !out.status.success() {
            bail!("the PyTorch reference failed");
        }
        let line = String::from_utf8(out.stdout)?;
        let value: serde_json::Value = serde_json::from_str(line.lines().last().unwrap_or_default())?;
        Some((value["labels_per_s"].as_f64().unwrap_or_default(), value["torch"].as_str().unwrap_or_default().to_string()))
    };
    println!("| benchmark | labels | burn (flex) | PyTorch (sentence-transformers) | ratio | target |");
    println!("|---|---|---|---|---|---|");
    let (reference_cell, ratio, ok) = match &reference {
        Some((rate, version)) => (format!("{rate:.0} labels/s (torch {version})"), format!("{:.2}", burn_rate / rate), burn_rate / rate >= 0.5),
        None => ("not run".into(), "-".into(), true),
    };
    println!("| encode label paths, batch {} | {} | {burn_rate:.0} labels/s | {reference_cell} | {ratio} | >= 0.5 |", args.batch_size, texts.len());
    println!(
        "| build tree, k = {}, runs {} | {} | {tree_seconds:.2} s (sibling coherence {:.3} / {:.3}, random tree {:.3} / {:.3}) | | | < 5 s |",
        cfg.branching,
        cfg.runs,
        texts.len(),
        c.prefix_1,
        c.prefix_2,
        c.random_prefix_1,
        c.random_prefix_2
    );
    Ok(if ok && tree_seconds < 5.0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}


fn bench_data(args: DataBenchArgs) -> Result<ExitCode> {
    let dir = bench_dir();
    let (csv, descriptor) = synthetic_dataset(&dir, args.records, args.labels, args.taxonomy)?;
    let exe = std::env::current_exe()?;
    let mut times = Vec::new();
    let mut peak = 0u64;
    for run in 0..args.runs.max(1) {
        let out = dir.join("synthetic-prepared");
        let mut command = Command::new(&exe);
        let task = if args.streaming { "data-prepare-streaming" } else { "data-prepare" };
        command.args(["bench-child", task]).arg(&descriptor).arg(&out);
        let (seconds, rss) = measure(command)?;
        eprintln!("run {}: {seconds:.2} s, peak RSS {:.0} MiB", run + 1, rss as f64 / (1 << 20) as f64);
        times.push(seconds);
        peak = peak.max(rss);
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    let csv_mb = std::fs::metadata(&csv)?.len() as f64 / 1e6;
    println!("| benchmark | records | input | runs | median wall | peak RSS | target |");
    println!("|---|---|---|---|---|---|---|");
    // 15 s at the reference scale (1.68M records), growing no faster than the records.
    let target_seconds = 15.0 * (args.records as f64 / 1_680_000.0).max(1.0);
    println!(
        "| data prepare{} | {} | {csv_mb:.0} MB CSV | {} | {median:.2} s | {:.0} MiB | <= {target_seconds:.0} s, <= 3 GB |",
        if args.streaming { " (streaming)" } else { "" },
        args.records,
        times.len(),
        peak as f64 / (1 << 20) as f64
    );
    let ok = median <= target_seconds && peak <= 3_000_000_000;
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

/// The ranker bench's child: prepare the synthetic data, PIFA label vectors, the k-means tree,
/// TF-IDF, the ranker; each step timed (JSON on stdout), the model saved to `out`.
fn ranker_child(descriptor: &Path, settings: &RankerBenchSettings, out: &Path) -> Result<ExitCode> {
    let mut times = serde_json::Map::new();
    let mut lap = {
        let mut last = Instant::now();
        move |name: &str, times: &mut serde_json::Map<String, serde_json::Value>| {
            let s = last.elapsed().as_secs_f64();
            eprintln!("{name}: {s:.1} s");
            times.insert(name.into(), serde_json::json!(s));
            last = Instant::now();
        }
    };
    let desc = xmc_data::DatasetDescriptor::load(descriptor)?;
    let data = xmc_data::prepare(&desc, &xmc_data::DataConfig { dataset: descriptor.to_path_buf(), ..Default::default() })?;
    lap("prepare", &mut times);
    let embed_cfg = xmc_cluster::EmbedConfig { kind: xmc_cluster::EmbeddingKind::Pifa, ..Default::default() };
    let embeddings = xmc_cluster::embed_labels(&data, &embed_cfg, None, |_| {})?;
    lap("pifa", &mut times);
    let tree = xmc_cluster::build_tree(&embeddings, &settings.tree)?;
    drop(embeddings);
    lap("tree", &mut times);
    let template = data_template(&desc);
    let (model, summary) = xmc_methods::xr::fit_ranker(&data, &tree, &[], None, &settings.ranker, &template)?;
    lap("tfidf_and_ranker", &mut times);
    model.save(out)?;
    lap("save", &mut times);
    let (test_texts, test_labels): (Vec<&str>, Vec<u32>) = data.split(xmc_data::Split::Test).take(20_000).map(|r| (r.input.as_str(), r.label)).unzip();
    let x = model.features(&test_texts, None)?;
    let predicted = model.predict(&x, None, 1);
    lap("predict_20k", &mut times);
    let correct = predicted.iter().zip(&test_labels).filter(|(p, l)| p.first().is_some_and(|&(x, _)| x == **l)).count();
    times.insert("test_accuracy_20k".into(), serde_json::json!(correct as f64 / test_labels.len().max(1) as f64));
    times.insert("features".into(), serde_json::json!(model.meta.layout.dim()));
    times.insert("weights".into(), serde_json::json!(summary.weights_kept));
    times.insert("internal_nodes".into(), serde_json::json!(tree.nodes.len()));
    times.insert("train_records".into(), serde_json::json!(data.split(xmc_data::Split::Train).count()));
    println!("{}", serde_json::Value::Object(times));
    Ok(ExitCode::SUCCESS)
}

fn data_template(desc: &xmc_data::DatasetDescriptor) -> xmc_data::InputTemplate {
    xmc_data::DataConfig::default().template_for(desc)
}

fn bench_ranker(args: RankerBenchArgs) -> Result<ExitCode> {
    let dir = bench_dir();
    let (_, descriptor) = synthetic_dataset(&dir, args.records, args.labels, args.taxonomy)?;
    let settings = RankerBenchSettings::with_overrides(&args.set)?;
    let out = dir.join("ranker-model");
    let mut command = Command::new(std::env::current_exe()?);
    command.args(["bench-child", "ranker-train"]).arg(&descriptor).arg(&out).arg("--settings").arg(serde_json::to_string(&settings)?);
    command.stdout(std::process::Stdio::piped());
    let child_out = dir.join("ranker-child.json");
    command.stdout(std::fs::File::create(&child_out)?);
    let (seconds, rss) = measure(command)?;
    let figures: serde_json::Value = serde_json::from_str(std::fs::read_to_string(&child_out)?.trim())?;
    let f = |k: &str| figures[k].as_f64().unwrap_or(f64::NAN);
    let train = f("tfidf_and_ranker");
    println!("settings: {}", if args.set.is_empty() { "the bench's defaults".to_string() } else { args.set.join(" ") });
    println!("| benchmark | records (train) | labels | k, train beam | features | weights | prepare | PIFA + tree | TF-IDF + ranker training | predict 20k test | test accuracy (20k) | whole child | peak RSS | target |");
    println!("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| ranker at the reference scale | {} ({}) | {} | {}, {} | {} | {} | {:.1} s | {:.1} s | {:.1} s | {:.1} s | {:.4} | {seconds:.1} s | {:.0} MiB | training <= 600 s, RSS <= 8 GB |",
        args.records,
        figures["train_records"],
        args.labels,
        settings.tree.branching,
        settings.ranker.train_beam,
        figures["features"],
        figures["weights"],
        f("prepare"),
        f("pifa") + f("tree"),
        train,
        f("predict_20k"),
        f("test_accuracy_20k"),
        rss as f64 / (1 << 20) as f64
    );
    Ok(if train <= 600.0 && rss <= 8_000_000_000 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
