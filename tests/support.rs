//! Helpers for the end-to-end tests: the repository root and running the `xmc` command line in
//! process, exactly as the binary parses it.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;

/// The repository root (this crate lives in `<root>/tests`).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ has a parent").to_path_buf()
}

/// Runs `xmc <args>`; a parse error or a failed command comes back as the error text the binary prints.
pub fn xmc(args: &[&str]) -> Result<ExitCode, String> {
    let cli = xmc::cli::Cli::try_parse_from(std::iter::once("xmc").chain(args.iter().copied())).map_err(|e| e.to_string())?;
    xmc::cli::run(cli).map_err(|e| format!("{e:#}"))
}
