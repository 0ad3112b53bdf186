use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    xmc::cli::init_logging();
    match xmc::cli::run(xmc::cli::Cli::parse()) {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
