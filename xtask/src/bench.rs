//! Benchmarks that time a stage in a child process, so its wall time and peak memory are its own.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Prepare 1.68M synthetic records (the CSV is written first, then the stage alone is timed).
    Data(DataBenchArgs),
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
}

#[derive(Debug, Args)]
pub struct ChildArgs {
    /// What to run: `data-prepare`.
    task: String,
    descriptor: PathBuf,
    out: PathBuf,
}

fn bench_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("target"));
    target.join("xmc-bench")
}

pub fn run(cmd: BenchCommand) -> Result<ExitCode> {
    match cmd {
        BenchCommand::Data(args) => bench_data(args),
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
        other => bail!("unknown bench task {other}"),
    }
}

/// Wall seconds and peak resident memory (bytes) of one child run.
fn measure(mut command: Command) -> Result<(f64, u64)> {
    let started = Instant::now();
    let mut child = command.spawn().context("starting the bench child")?;
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    let seconds = started.elapsed().as_secs_f64();
    if waited != pid {
        let _ = child.kill();
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    if !(libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0) {
        bail!("the bench child failed (status {status})");
    }
    Ok((seconds, usage.ru_maxrss as u64 * 1024))
}

fn bench_data(args: DataBenchArgs) -> Result<ExitCode> {
    let dir = bench_dir();
    std::fs::create_dir_all(&dir)?;
    let taxonomy = match args.taxonomy {
        Some(t) => t,
        None => xmc_data::descriptor::data_dir(Some(Path::new("datasets/x.toml")))?.join("google-taxonomy/taxonomy-with-ids.en-US.txt"),
    };
    let csv = dir.join(format!("synthetic-{}-{}.csv", args.records, args.labels));
    if !csv.exists() {
        eprintln!("writing {} synthetic records to {}", args.records, csv.display());
        let cfg = xmc_data::synth::SynthConfig { records: args.records, labels: args.labels, ..Default::default() };
        let partial = csv.with_extension("csv.partial");
        xmc_data::synth::write_synthetic_csv(&taxonomy, &partial, &cfg)?;
        std::fs::rename(&partial, &csv)?;
    }
    let descriptor = dir.join("synthetic.toml");
    let csv_abs = std::fs::canonicalize(&csv)?;
    std::fs::write(
        &descriptor,
        format!(
            "name = \"synthetic\"\npath = {:?}\n[columns]\nid = \"id\"\ntitle = \"title\"\nstore = \"store\"\nmanufacturer = \"manufacturer\"\nprice = \"price\"\ncategory_path = \"category_path\"\n",
            csv_abs.display().to_string()
        ),
    )?;
    let exe = std::env::current_exe()?;
    let mut times = Vec::new();
    let mut peak = 0u64;
    for run in 0..args.runs.max(1) {
        let out = dir.join("synthetic-prepared");
        let mut command = Command::new(&exe);
        command.args(["bench-child", "data-prepare"]).arg(&descriptor).arg(&out);
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
    println!(
        "| data prepare | {} | {csv_mb:.0} MB CSV | {} | {median:.2} s | {:.0} MiB | <= 15 s, <= 3 GB |",
        args.records,
        times.len(),
        peak as f64 / (1 << 20) as f64
    );
    let ok = median <= 15.0 && peak <= 3_000_000_000;
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
