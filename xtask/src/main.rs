//! `cargo xtask`: experiments, sweeps and benchmarks. A thin orchestrator: the work happens in the
//! crates (mostly through `xmc::cli`), where it is tested.

mod bench;

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
    /// Internal: the measured child process of a benchmark.
    #[command(hide = true)]
    BenchChild(bench::ChildArgs),
}

fn main() -> ExitCode {
    xmc::cli::init_logging();
    let result = match Cli::parse().command {
        Command::Experiment(args) => xmc::cli::experiment(args),
        Command::Sweep(args) => xmc::cli::sweep(args),
        Command::Compare(args) => xmc::cli::compare(args),
        Command::Bench(cmd) => bench::run(cmd),
        Command::BenchChild(args) => bench::child(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
