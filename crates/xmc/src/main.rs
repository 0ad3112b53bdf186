use std::process::ExitCode;

use clap::Parser;

/// mimalloc: the data stage and prediction allocate many small strings on one thread and free
/// them on another, where glibc's allocator spends a third of the time on its arena locks.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    xmc::cli::init_logging();
    match xmc::cli::run(xmc::cli::Cli::parse()) {
        Ok(code) => code,
        // A reader that stopped early (`xmc predict --output - | head`) is not an error.
        Err(error) if is_broken_pipe(&error) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn is_broken_pipe(error: &anyhow::Error) -> bool {
    error.chain().any(|e| {
        e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            || e.downcast_ref::<csv::Error>().is_some_and(|e| matches!(e.kind(), csv::ErrorKind::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe))
    })
}
