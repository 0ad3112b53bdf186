//! The command line, shared by the `xmc` binary and `cargo xtask`.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::builder::TypedValueParser;
use clap::{Args, Parser, Subcommand};

use xmc_methods::limits;
use xmc_methods::output::OutputFormat;

use crate::ranges::count;
use xmc_methods::{PredictionRow, Predictor};
use xmc_pipeline::{
    ExperimentConfig, RunOptions, RunSummary, StageName, StageOutcome, SweepConfig, compare_runs, parse_overrides, run_experiment, run_sweep,
};

#[derive(Debug, Parser)]
#[command(name = "xmc", version, about = "Hierarchical extreme multi-label product categorisation")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The data stage alone: prepare a dataset, show a prepared one's statistics, make synthetic data.
    #[command(subcommand)]
    Data(DataCommand),
    /// Run every stage of an experiment config, skipping stages whose inputs did not change.
    Experiment(ExperimentArgs),
    /// Run one experiment per combination of a sweep's values and write one comparison table.
    Sweep(SweepArgs),
    /// Write one side-by-side table of finished runs.
    Compare(CompareArgs),
    /// Train a model folder from a file: the experiment's stages up to `train`, without keeping
    /// the experiment folder.
    Train(TrainArgs),
    /// Predict the category of every record of a file with a trained model.
    Predict(PredictArgs),
    /// Predict a labelled file with a trained model and write its metrics.
    Evaluate(EvaluateArgs),
    /// Fit a model folder's confidence calibration (temperature) on the validation split of its
    /// prepared data, writing `calibration.json` into the folder (training does this already).
    Calibrate(CalibrateArgs),
    /// Serve a trained model over HTTP (POST /predict, GET /health).
    Serve(crate::serve::ServeArgs),
    /// Change a trained model's labels without retraining (`xmc labels add`).
    #[command(subcommand)]
    Labels(crate::labels::LabelsCommand),
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Experiment config (TOML) naming the method and its settings, e.g. configs/xr.toml.
    /// Default: the recommended recipe (configs/recommended.toml, built in), which chooses its
    /// tree, path score, fine-tuning epoch and classifier candidates on your validation split
    /// and records them in the folder's choices.json; it needs --dataset.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The dataset descriptor (column mapping, cleaning rules, template); default: the config's.
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// The labelled records (CSV, JSON lines or Parquet); default: the descriptor's file.
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// The model folder to write (must not exist).
    #[arg(long)]
    pub output: PathBuf,
    /// Override a config key, e.g. --set tree.branching=8 (TOML value syntax).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PredictArgs {
    /// A trained model folder of any method (e.g. experiments/<name>/train, or `xmc train`'s output).
    #[arg(long)]
    pub model: PathBuf,
    /// Records to categorise: CSV, JSON lines or Parquet (by extension, else the descriptor's
    /// format), or `-` for standard input (CSV or JSON lines). Read in chunks: memory does not
    /// grow with the input. A folder or a pattern (`shards/*.parquet`) predicts each file into
    /// its own output shard in the --output folder, skipping shards already done.
    #[arg(long)]
    pub input: PathBuf,
    /// The format of --input when its extension does not say (or it is `-`): csv, jsonl or parquet.
    #[arg(long)]
    pub input_format: Option<xmc_data::FileFormat>,
    /// The dataset descriptor whose column mapping and cleaning rules apply to --input
    /// (default: the one the model was trained with, `<model>/dataset.toml`).
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Output file (.csv, .jsonl or .parquet), or `-` for standard output; a folder when
    /// --input names shards. A file appears at its name only when complete.
    #[arg(long)]
    pub output: PathBuf,
    /// With sharded input: take only the shards whose position (in path order) is i modulo n,
    /// e.g. 0/4 ... 3/4 in four processes.
    #[arg(long, value_name = "i/n")]
    pub shard: Option<crate::shards::ShardSlice>,
    /// The output format (default: by --output's extension; JSON lines for `-`).
    #[arg(long, value_parser = output_format())]
    pub format: Option<OutputFormat>,
    /// Labels per record, best first (1 to 1000).
    #[arg(long, default_value_t = 5, value_parser = count(1, limits::MAX_TOP_K))]
    pub top_k: usize,
    /// Beam width (1 to 1000; default: the model's).
    #[arg(long, value_parser = count(1, limits::MAX_BEAM))]
    pub beam_width: Option<usize>,
    /// Threads (1 to 1024; default: one per core, or XMC_PREDICT_THREADS).
    #[arg(long, value_parser = count(1, limits::MAX_THREADS))]
    pub threads: Option<usize>,
    /// Records read, predicted and written together (1 to 1,000,000).
    #[arg(long, default_value_t = 4096, value_parser = count(1, limits::MAX_CHUNK_RECORDS))]
    pub chunk_size: usize,
    /// Skip malformed rows (each written to the rejects file with its line and reason) instead
    /// of failing on the first.
    #[arg(long)]
    pub skip_bad_rows: bool,
    /// Where skipped rows go (JSON lines: line, kind, reason); default `<output>.rejects.jsonl`,
    /// or standard error when the output is `-`.
    #[arg(long)]
    pub rejects: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Read, clean, label and split a dataset into a prepared-data folder.
    Prepare(PrepareArgs),
    /// Print the statistics of a prepared-data folder.
    Stats(StatsArgs),
    /// Write a synthetic CSV at the reference scale over the Google product taxonomy (benchmarks only).
    Synth(SynthArgs),
}

#[derive(Debug, Args)]
pub struct PrepareArgs {
    /// Dataset descriptor (datasets/<name>.toml). Overrides the config's `data.dataset`.
    #[arg(long, required_unless_present_any = ["config", "print_config"])]
    pub dataset: Option<PathBuf>,
    /// Output folder for records.parquet, labels.json and stats.json.
    #[arg(long, required_unless_present = "print_config")]
    pub out: Option<PathBuf>,
    /// Take the `[data]` section from this experiment config.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Skip malformed rows (counted and listed in stats.json) instead of failing on the first.
    #[arg(long)]
    pub skip_bad_rows: bool,
    /// Seed of the train/valid/test split.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Two passes over the file with bounded memory, for files larger than memory (the same
    /// artifact as without; also `data.streaming = true` in a config).
    #[arg(long)]
    pub streaming: bool,
    /// Print the full default `[data]` config and exit.
    #[arg(long)]
    pub print_config: bool,
}

#[derive(Debug, Args)]
pub struct StatsArgs {
    /// A prepared-data folder (e.g. experiments/<name>/data).
    pub dir: PathBuf,
    /// Print stats.json instead of the summary.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Google product taxonomy with ids (taxonomy-with-ids.en-US.txt).
    #[arg(long)]
    pub taxonomy: PathBuf,
    #[arg(long)]
    pub out: PathBuf,
    /// Records to write (1 to 10^9).
    #[arg(long, default_value_t = 1_680_000, value_parser = count(1, 1_000_000_000))]
    pub records: usize,
    /// Labels to draw from the taxonomy (1 to 10^6).
    #[arg(long, default_value_t = 14_262, value_parser = count(1, 1_000_000))]
    pub labels: usize,
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct ExperimentArgs {
    /// Experiment config (TOML), e.g. configs/hkmeans_t5.toml.
    #[arg(required_unless_present = "print_config")]
    pub config: Option<PathBuf>,
    /// Rerun every stage even if its inputs did not change.
    #[arg(long)]
    pub force: bool,
    /// Rerun this stage and every later one.
    #[arg(long, value_parser = stage_name())]
    pub from: Option<StageName>,
    /// Continue an interrupted training run from its last checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Override a config key, e.g. --set tree.branching=8 (TOML value syntax).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Print the full default experiment config and exit.
    #[arg(long)]
    pub print_config: bool,
    /// Rewrite the config's `eval.baseline` file with this run's accuracy and macro-F1 (on purpose:
    /// after a change that moves them) instead of checking the run against it.
    #[arg(long)]
    pub update_baseline: bool,
}

#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// A trained model folder of any method.
    #[arg(long)]
    pub model: PathBuf,
    /// The prepared-data folder the model was trained on (e.g. experiments/<name>/data).
    #[arg(long)]
    pub data: PathBuf,
}

#[derive(Debug, Args)]
pub struct EvaluateArgs {
    /// A trained model folder (e.g. experiments/<name>/train).
    #[arg(long)]
    pub model: PathBuf,
    /// A labelled file (CSV, JSON lines or Parquet).
    #[arg(long)]
    pub input: PathBuf,
    /// The dataset descriptor whose columns and cleaning rules apply to --input
    /// (default: the one the model was trained with, `<model>/dataset.toml`).
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Where to write metrics.json.
    #[arg(long)]
    pub output: PathBuf,
    /// Beam width (1 to 1000; default: the model's).
    #[arg(long, value_parser = count(1, limits::MAX_BEAM))]
    pub beam_width: Option<usize>,
    /// Skip malformed rows (counted) instead of failing on the first.
    #[arg(long)]
    pub skip_bad_rows: bool,
}

#[derive(Debug, Args)]
pub struct SweepArgs {
    /// Sweep config (TOML), e.g. configs/sweep_branching.toml.
    pub config: PathBuf,
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct CompareArgs {
    /// Run folders (experiments/<name>).
    #[arg(required = true)]
    pub runs: Vec<PathBuf>,
    /// Where to write comparison.md and comparison.csv (default: print the markdown only).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// `--format`: one of the output formats, listed in `--help`.
fn output_format() -> impl clap::builder::TypedValueParser<Value = OutputFormat> {
    clap::builder::PossibleValuesParser::new(OutputFormat::NAMES).map(|s| s.parse::<OutputFormat>().expect("a listed format"))
}

/// `--from`: one of the stages, listed in `--help`.
fn stage_name() -> impl clap::builder::TypedValueParser<Value = StageName> {
    clap::builder::PossibleValuesParser::new(StageName::ALL.map(StageName::as_str)).map(|s| s.parse::<StageName>().expect("a listed stage"))
}

/// Logs to stderr at `info` unless `RUST_LOG` says otherwise.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt().with_env_filter(filter).with_target(false).without_time().with_writer(std::io::stderr).try_init();
}

pub fn run(cli: Cli) -> Result<ExitCode> {
    match cli.command {
        Command::Data(DataCommand::Prepare(args)) => prepare(args),
        Command::Data(DataCommand::Stats(args)) => stats(args),
        Command::Data(DataCommand::Synth(args)) => synth(args),
        Command::Experiment(args) => experiment(args),
        Command::Sweep(args) => sweep(args),
        Command::Compare(args) => compare(args),
        Command::Train(args) => train(args),
        Command::Predict(args) => predict(args),
        Command::Evaluate(args) => evaluate(args),
        Command::Calibrate(args) => {
            let data = xmc_data::PreparedData::load(&args.data)?;
            xmc_methods::predictor::calibrate_folder(&args.model, &data)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Serve(args) => crate::serve::serve(args),
        Command::Labels(command) => crate::labels::run(command),
    }
}

fn prepare(args: PrepareArgs) -> Result<ExitCode> {
    let mut cfg = match &args.config {
        Some(path) => ExperimentConfig::load(path, &[])?.data,
        None => xmc_data::DataConfig::default(),
    };
    if args.print_config {
        print!("{}", toml::to_string_pretty(&cfg)?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(dataset) = args.dataset {
        cfg.dataset = dataset;
    }
    if let Some(seed) = args.seed {
        cfg.split.seed = seed;
    }
    cfg.skip_bad_rows |= args.skip_bad_rows;
    let out = args.out.expect("clap requires --out");
    cfg.streaming |= args.streaming;
    let desc = xmc_data::DatasetDescriptor::load(&cfg.dataset)?;
    let stats = if cfg.streaming {
        xmc_pipeline::stages::prepare_streaming_with_progress(&desc, &cfg, &out)?
    } else {
        let prepared = xmc_data::prepare(&desc, &cfg)?;
        prepared.save(&out).with_context(|| format!("writing {}", out.display()))?;
        prepared.stats
    };
    eprint!("{}", stats.summary());
    eprintln!("wrote {}", out.display());
    Ok(ExitCode::SUCCESS)
}

fn stats(args: StatsArgs) -> Result<ExitCode> {
    let path = args.dir.join(xmc_data::STATS_FILE);
    let text = std::fs::read_to_string(&path).with_context(|| format!("{} is not a prepared-data folder", args.dir.display()))?;
    if args.json {
        print!("{text}");
    } else {
        let stats: xmc_data::DataStats = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        print!("{}", stats.summary());
    }
    Ok(ExitCode::SUCCESS)
}

fn synth(args: SynthArgs) -> Result<ExitCode> {
    let cfg = xmc_data::synth::SynthConfig { records: args.records, labels: args.labels, seed: args.seed, ..Default::default() };
    xmc_data::synth::write_synthetic_csv(&args.taxonomy, &args.out, &cfg)?;
    eprintln!("wrote {} synthetic records to {}", cfg.records, args.out.display());
    Ok(ExitCode::SUCCESS)
}

fn report(summary: &RunSummary) -> ExitCode {
    for (stage, outcome) in &summary.stages {
        let what = match outcome {
            StageOutcome::Ran => "ran",
            StageOutcome::UpToDate => "up to date (skipped)",
            StageOutcome::NotNeeded => "not needed by the method",
        };
        eprintln!("  {stage:<8} {what}");
    }
    for line in &summary.baseline {
        eprintln!("  baseline: {line}");
    }
    eprintln!("all stages done: {} (report: {}/report/report.md)", summary.run_dir.display(), summary.run_dir.display());
    ExitCode::SUCCESS
}

pub fn experiment(args: ExperimentArgs) -> Result<ExitCode> {
    if args.print_config {
        print!("{}", ExperimentConfig::default().to_toml());
        return Ok(ExitCode::SUCCESS);
    }
    let path = args.config.expect("clap requires the config");
    let cfg = ExperimentConfig::load(&path, &parse_overrides(&args.set)?)?;
    let options = RunOptions { force: args.force, from: args.from, resume: args.resume, update_baseline: args.update_baseline, until: None };
    let summary = run_experiment(&cfg, &options)?;
    Ok(report(&summary))
}

pub fn sweep(args: SweepArgs) -> Result<ExitCode> {
    let sweep = SweepConfig::load(&args.config)?;
    let (table, _summaries, dir) = run_sweep(&sweep, &RunOptions { force: args.force, ..RunOptions::default() })?;
    print!("{}", table.to_markdown());
    eprintln!("wrote {}/comparison.md and comparison.csv", dir.display());
    Ok(ExitCode::SUCCESS)
}

pub fn compare(args: CompareArgs) -> Result<ExitCode> {
    let runs: Vec<_> = args.runs.into_iter().map(|r| (r, Default::default())).collect();
    let table = compare_runs(&runs)?;
    print!("{}", table.to_markdown());
    if let Some(out) = args.out {
        let (md, csv) = table.save(&out, "comparison")?;
        eprintln!("wrote {} and {}", md.display(), csv.display());
    }
    Ok(ExitCode::SUCCESS)
}

/// `xmc train`: the config's stages up to `train` in a work folder beside `--output`, whose
/// train stage becomes the model folder; the work folder is removed.
pub fn train(args: TrainArgs) -> Result<ExitCode> {
    let TrainArgs { config, dataset, input, output, set } = args;
    xmc_pipeline::train_folder(&xmc_pipeline::TrainFolder { config, dataset, input, output, set })?;
    Ok(ExitCode::SUCCESS)
}

/// Reads `input` with the descriptor's rules and predicts every record with a progress bar.
fn read_and_predict(
    predictor: &Predictor,
    desc: &xmc_data::DatasetDescriptor,
    input: &std::path::Path,
    skip_bad_rows: bool,
    require_label: bool,
    beam: usize,
    top_k: usize,
) -> Result<(xmc_data::LoadedRecords, Vec<Vec<(u32, f32)>>)> {
    let loaded = xmc_data::load_records(desc, input, skip_bad_rows, require_label)?;
    if !loaded.skipped_by_kind.is_empty() {
        eprintln!("skipped rows: {:?} (first: {:?})", loaded.skipped_by_kind, loaded.skipped.first());
    }
    let input = predictor.input(desc.clone());
    let texts: Vec<String> = loaded.records.iter().map(|r| input.text(r)).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let bar = indicatif::ProgressBar::new(refs.len() as u64);
    let predictions = predictor.predict_texts(&refs, beam, top_k, |n| bar.inc(n as u64))?;
    bar.finish_and_clear();
    Ok((loaded, predictions))
}

pub fn predict(args: PredictArgs) -> Result<ExitCode> {
    if let Some(threads) = args.threads {
        set_threads(threads)?;
    }
    let predictor = Predictor::load(&args.model)?;
    let dataset = args.dataset.clone().unwrap_or_else(|| args.model.join(xmc_methods::DATASET_FILE));
    let desc = xmc_data::DatasetDescriptor::load(&dataset).with_context(|| {
        format!("loading the dataset descriptor {} (name one with --dataset)", dataset.display())
    })?;
    if crate::shards::is_sharded(&args.input) {
        return predict_shards(&args, &predictor, &desc);
    }
    anyhow::ensure!(args.shard.is_none(), "--shard applies to sharded input (a folder or a pattern as --input)");
    let source = xmc_data::InputSource::from_arg(&args.input);
    let format = OutputFormat::choose(args.format, &args.output)?;
    let to_stdout = args.output == std::path::Path::new("-");
    let options = stream_settings(&args, &predictor);
    let rejects = match (&args.rejects, to_stdout) {
        (Some(path), _) => Some(path.clone()),
        (None, false) => Some(PathBuf::from(format!("{}.rejects.jsonl", args.output.display()))),
        (None, true) => None,
    };
    let mut rejects = crate::predict::RejectsWriter::new(rejects.filter(|_| args.skip_bad_rows))?;
    let writer = xmc_methods::output::PredictionWriter::create(&args.output, format)?;
    let summary = crate::predict::predict_stream(&predictor, &desc, &source, &options, writer, &mut rejects)?;
    let rejects_note = rejects.finish()?.map(|p| format!(" (listed in {})", p.display())).unwrap_or_default();
    eprintln!(
        "read {} rows; wrote {} predictions to {}; skipped {}{}",
        summary.rows_read,
        summary.records,
        if to_stdout { "standard output".to_string() } else { args.output.display().to_string() },
        summary.skipped(),
        if summary.skipped() > 0 { rejects_note } else { String::new() }
    );
    Ok(ExitCode::SUCCESS)
}

/// The streaming settings `xmc predict`'s flags ask for.
fn stream_settings(args: &PredictArgs, predictor: &Predictor) -> crate::predict::StreamPredict {
    crate::predict::StreamPredict {
        beam: args.beam_width.unwrap_or(predictor.default_beam()).max(args.top_k),
        top_k: args.top_k,
        stream: xmc_data::StreamOptions { format: args.input_format, chunk_records: args.chunk_size, skip_bad_rows: args.skip_bad_rows },
    }
}

/// `xmc predict` over shards: one output per input shard in the --output folder; shards whose
/// output exists (complete: outputs are renamed into place when whole) are skipped.
fn predict_shards(args: &PredictArgs, predictor: &Predictor, desc: &xmc_data::DatasetDescriptor) -> Result<ExitCode> {
    let format = args.format.unwrap_or(OutputFormat::Parquet);
    anyhow::ensure!(!args.output.is_file(), "{}: with sharded input, --output is a folder", args.output.display());
    std::fs::create_dir_all(&args.output).with_context(|| format!("creating {}", args.output.display()))?;
    let options = stream_settings(args, predictor);
    let settings = crate::shards::RunSettings {
        model: xmc_pipeline::fingerprint::folder_sha256(&args.model)?,
        dataset: xmc_pipeline::fingerprint::value_sha256(desc),
        top_k: options.top_k,
        beam: options.beam,
        skip_bad_rows: args.skip_bad_rows,
        format,
    };
    let plan = crate::shards::plan(&args.input, &args.output, format, args.shard, &settings)?;
    use crate::shards::ShardState;
    let count = |state: ShardState| plan.iter().filter(|p| p.state == state).count();
    let (done, stale) = (count(ShardState::Done), count(ShardState::Stale));
    let todo = plan.len() - done;
    let stale_note = if stale > 0 { format!(" ({stale} of them made by another model, other options or another input: predicted again)") } else { String::new() };
    eprintln!("{} shards: {done} done already, {todo} to predict{stale_note}", plan.len());
    let (mut rows, mut records, mut skipped) = (0u64, 0u64, 0u64);
    for (i, shard) in plan.iter().filter(|p| p.state != ShardState::Done).enumerate() {
        crate::shards::remove_stale_partials(&shard.output)?;
        let rejects = args.skip_bad_rows.then(|| PathBuf::from(format!("{}.rejects.jsonl", shard.output.display())));
        let mut rejects = crate::predict::RejectsWriter::new(rejects)?;
        let writer = xmc_methods::output::PredictionWriter::create(&shard.output, format)?;
        let source = xmc_data::InputSource::File(shard.input.clone());
        let summary = crate::predict::predict_stream(predictor, desc, &source, &options, writer, &mut rejects)
            .with_context(|| format!("shard {}", shard.input.display()))?;
        rejects.finish()?;
        shard.made_by.write(&shard.output)?;
        eprintln!("[{}/{todo}] {} -> {}: {} predictions", i + 1, shard.input.display(), shard.output.display(), summary.records);
        (rows, records, skipped) = (rows + summary.rows_read, records + summary.records, skipped + summary.skipped());
    }
    eprintln!("read {rows} rows; wrote {records} predictions in {todo} shards to {}; skipped {skipped}", args.output.display());
    Ok(ExitCode::SUCCESS)
}

/// Fixes the number of threads prediction uses (rayon's pool and the generator's batches).
fn set_threads(threads: usize) -> Result<()> {
    anyhow::ensure!(threads >= 1, "--threads must be at least 1");
    rayon::ThreadPoolBuilder::new().num_threads(threads).build_global().context("setting the number of threads")?;
    anyhow::ensure!(xmc_train::set_default_threads(threads), "the number of threads was already fixed");
    Ok(())
}

pub fn evaluate(args: EvaluateArgs) -> Result<ExitCode> {
    let predictor = Predictor::load(&args.model)?;
    let dataset = args.dataset.unwrap_or_else(|| args.model.join(xmc_methods::DATASET_FILE));
    let desc = xmc_data::DatasetDescriptor::load(&dataset).with_context(|| {
        format!("loading the dataset descriptor {} (name one with --dataset)", dataset.display())
    })?;
    let beam = args.beam_width.unwrap_or(predictor.default_beam());
    let (loaded, predictions) = read_and_predict(&predictor, &desc, &args.input, args.skip_bad_rows, true, beam, beam)?;
    anyhow::ensure!(!loaded.records.is_empty(), "{} has no labelled records to evaluate", args.input.display());
    let rows: Vec<_> = loaded
        .records
        .iter()
        .zip(&predictions)
        .map(|(r, ranked)| {
            let mut row = PredictionRow::from_ranked(&r.id, None, ranked, predictor.labels());
            row.label = Some(r.category.join(xmc_data::labels::PATH_SEPARATOR));
            row
        })
        .collect();
    let codes = predictor.codes();
    let metrics = xmc_methods::scoring::score_rows(predictor.labels(), &rows, codes.as_deref(), &xmc_eval::EvalConfig::default())?;
    if let Some(dir) = args.output.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    metrics.save(&args.output)?;
    eprintln!(
        "{} records: accuracy {:.4}, macro-F1 {:.4}, tail accuracy {}; {} records ({} labels) have a label the model never saw",
        metrics.records,
        metrics.accuracy,
        metrics.leaf.macro_avg.f1,
        metrics.tail_accuracy.map_or("-".into(), |a| format!("{a:.4}")),
        metrics.unseen.records,
        metrics.unseen.labels.len()
    );
    eprintln!("wrote {}", args.output.display());
    Ok(ExitCode::SUCCESS)
}
