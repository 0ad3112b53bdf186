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

/// One HTTP/1.1 request over loopback with a plain TCP stream: `(status, body)`.
pub fn http(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> (u16, String) {
    let (status, _, body) = http_with_headers(addr, method, path, body);
    (status, body)
}

/// [`http`] with the response's header block (lower-cased names) as well.
pub fn http_with_headers(addr: std::net::SocketAddr, method: &str, path: &str, body: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(std::time::Duration::from_secs(60))).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("a status line");
    let (head, body) = response.split_once("\r\n\r\n").map(|(h, b)| (h.to_ascii_lowercase(), b.to_string())).unwrap_or_default();
    (status, head, body)
}
