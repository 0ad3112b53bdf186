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

/// One HTTP/1.1 request over loopback: `(status, body)`.
pub fn http(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let (status, _, body) = http_with_headers(addr, method, path, body);
    (status, body)
}

/// [`http`] with the response's header block (lower-cased names), through `ureq` with any status
/// as an answer, not an error.
pub fn http_with_headers(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> (u16, String, String) {
    let agent: ureq::Agent =
        ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(std::time::Duration::from_secs(60))).build().into();
    let url = format!("http://{addr}{path}");
    let mut response = match method {
        "GET" => agent.get(&url).call(),
        "POST" => agent.post(&url).header("Content-Type", "application/json").send(body),
        other => panic!("no {other} requests in these tests"),
    }
    .unwrap_or_else(|e| panic!("{method} {url}: {e}"));
    let head = response.headers().iter().map(|(k, v)| format!("{}: {}\r\n", k.as_str(), v.to_str().unwrap_or_default())).collect::<String>();
    let status = response.status().as_u16();
    let body = response.body_mut().read_to_string().unwrap_or_else(|e| panic!("{method} {url}: the body: {e}"));
    (status, head.to_ascii_lowercase(), body)
}
