//! `cargo xtask bench faults`: the fault suite. Every case runs the real `xmc` in a child
//! process (through this binary's `xmc` passthrough) and is classified by how it ended:
//!
//! - **model folders**: every numeric field of every file of each method's fixture folder
//!   (`tests/fixtures/folders/<method>`: JSON values, npy header shapes, safetensors header
//!   shapes and offsets) grown, shrunk, zeroed, negated, made huge and made NaN, then
//!   `xmc predict` with the folder;
//! - **inputs**: CSV, JSON lines and Parquet with bad bytes at random places (and cut short),
//!   predicted with `--skip-bad-rows`; every input row must come out as a prediction or a reject;
//! - **shards**: `xmc predict --input shards/` killed (SIGKILL) at a random moment and rerun; the
//!   union of the outputs must equal an uninterrupted run's;
//! - **server**: `xmc serve` sent stalled, truncated, oversized and garbage requests, then /health,
//!   then SIGTERM with a client stalled mid-body: it must exit 0 within its drain time.
//!
//! Counted per part: cases, answers (exit 0), errors with a message, panics, aborts (a signal or
//! an allocation failure), hangs (past the time limit), rows lost, and the largest peak RSS of a
//! child. Panics, aborts, hangs and rows lost must all be 0: the command exits 1 otherwise.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use rand_xoshiro::Xoshiro256PlusPlus;
use rand_xoshiro::rand_core::{RngCore, SeedableRng};
use serde_json::Value;

/// A whole number in `range` (the small modulo bias does not matter here).
fn below(rng: &mut Xoshiro256PlusPlus, range: std::ops::Range<usize>) -> usize {
    range.start + (rng.next_u64() % (range.end - range.start).max(1) as u64) as usize
}

fn unit(rng: &mut Xoshiro256PlusPlus) -> f64 {
    (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64
}

fn shuffle<T>(rng: &mut Xoshiro256PlusPlus, items: &mut [T]) {
    for i in (1..items.len()).rev() {
        items.swap(i, below(rng, 0..i + 1));
    }
}

#[derive(Debug, Args)]
pub struct FaultsArgs {
    /// A sample of each part (for CI: a few minutes) instead of every case.
    #[arg(long)]
    short: bool,
    /// Seed of the random corruptions and kill times.
    #[arg(long, default_value_t = 7)]
    seed: u64,
    /// Only the model-folder cases whose `method/file` contains this (e.g. `xr/tree.json`), and
    /// no other part.
    #[arg(long)]
    only: Option<String>,
}

/// How one case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Answer,
    Error,
    Panic,
    Abort,
    Hang,
}

/// One part's tally.
#[derive(Debug, Default)]
struct Tally {
    cases: usize,
    by_outcome: BTreeMap<Outcome, usize>,
    rows_lost: u64,
    peak_rss: u64,
    /// Every panic, abort, hang or loss, described.
    bad_cases: Vec<String>,
}

impl Tally {
    fn add(&mut self, outcome: Outcome, rss: u64, what: impl FnOnce() -> String) {
        self.cases += 1;
        *self.by_outcome.entry(outcome).or_default() += 1;
        self.peak_rss = self.peak_rss.max(rss);
        if matches!(outcome, Outcome::Panic | Outcome::Abort | Outcome::Hang) {
            self.bad_cases.push(format!("{outcome:?}: {}", what()));
        }
    }

    fn lose(&mut self, rows: u64, what: impl FnOnce() -> String) {
        self.rows_lost += rows;
        if rows > 0 {
            self.bad_cases.push(format!("{rows} rows lost: {}", what()));
        }
    }

    fn count(&self, outcome: Outcome) -> usize {
        self.by_outcome.get(&outcome).copied().unwrap_or(0)
    }

    fn failed(&self) -> bool {
        self.count(Outcome::Panic) + self.count(Outcome::Abort) + self.count(Outcome::Hang) > 0 || self.rows_lost > 0
    }
}

/// A finished child: how it ended, its standard error and peak RSS.
struct Finished {
    outcome: Outcome,
    stderr: String,
    rss: u64,
}

/// Reaps `child`, killing it if it runs past `limit`: its wait status (`None` when it had to be
/// killed) and its peak RSS in bytes.
fn reap(child: &mut std::process::Child, limit: Duration) -> Result<(Option<libc::c_int>, u64)> {
    let pid = child.id() as libc::pid_t;
    let started = Instant::now();
    let (mut status, mut killed) = (0, false);
    // SAFETY: zeroed rusage is a valid value; wait4 fills it for our own child.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    loop {
        let waited = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        if waited == pid {
            break;
        }
        if waited < 0 {
            bail!("wait4: {}", std::io::Error::last_os_error());
        }
        if started.elapsed() > limit && !killed {
            killed = true;
            let _ = child.kill();
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Ok(((!killed).then_some(status), usage.ru_maxrss as u64 * 1024))
}

/// Runs `command` to its end (killed after `limit`), classifying the exit.
fn run_classified(mut command: Command, limit: Duration) -> Result<Finished> {
    let stderr_file = tempfile::tempfile()?;
    command.stdout(Stdio::null()).stderr(stderr_file.try_clone()?);
    let mut child = command.spawn().context("starting an xmc child")?;
    let (status, rss) = reap(&mut child, limit)?;
    let mut stderr = String::new();
    let mut file = stderr_file;
    use std::io::Seek;
    file.seek(std::io::SeekFrom::Start(0))?;
    file.read_to_string(&mut stderr).ok();
    let Some(status) = status else {
        return Ok(Finished { outcome: Outcome::Hang, stderr, rss });
    };
    let outcome = if libc::WIFSIGNALED(status) {
        Outcome::Abort
    } else if stderr.contains("panicked") || libc::WEXITSTATUS(status) == 101 {
        Outcome::Panic
    } else if libc::WEXITSTATUS(status) == 0 {
        Outcome::Answer
    } else if stderr.contains("memory allocation") {
        Outcome::Abort
    } else if stderr.trim().is_empty() {
        // A failure that says nothing is not an error a user can act on.
        Outcome::Panic
    } else {
        Outcome::Error
    };
    Ok(Finished { outcome, stderr, rss })
}

fn xmc(args: &[&str]) -> Result<Command> {
    let mut command = Command::new(std::env::current_exe()?);
    command.arg("xmc").args(args).env("XMC_PREDICT_THREADS", "1");
    Ok(command)
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/folders")
}

// ---------------------------------------------------------------------------------------------
// Model folders

/// One way of changing a number.
const MUTATIONS: [&str; 7] = ["grown", "shrunk", "zero", "negative", "huge", "NaN", "plus one"];

fn mutate_number(text: &str, how: &str) -> String {
    let value: f64 = text.parse().unwrap_or(1.0);
    let integer = !text.contains(['.', 'e', 'E']);
    let show = |v: f64| if integer { format!("{}", v as i64) } else { format!("{v:e}") };
    match how {
        "grown" => show(value * 1000.0 + 7.0),
        "shrunk" => show((value / 2.0).floor()),
        "zero" => "0".into(),
        "negative" => show(-(value.abs().max(1.0))),
        "huge" => if integer { "100000000000000".into() } else { "1e300".into() },
        "NaN" => "NaN".into(),
        _ => show(value + 1.0),
    }
}

/// Every JSON number's byte span in `text` (numbers outside strings).
fn json_number_spans(text: &str) -> Vec<(usize, usize)> {
    let bytes = text.as_bytes();
    let (mut spans, mut i, mut in_string) = (Vec::new(), 0, false);
    while i < bytes.len() {
        let c = bytes[i];
        if in_string {
            if c == b'\\' {
                i += 1;
            } else if c == b'"' {
                in_string = false;
            }
        } else if c == b'"' {
            in_string = true;
        } else if c == b'-' || c.is_ascii_digit() {
            let start = i;
            while i < bytes.len() && (bytes[i].is_ascii_digit() || b"+-.eE".contains(&bytes[i])) {
                i += 1;
            }
            spans.push((start, i));
            continue;
        }
        i += 1;
    }
    spans
}

/// The key path of the number at `at` (for naming cases and picking one number per key): the
/// nearest preceding `"key":`.
fn key_before(text: &str, at: usize) -> String {
    let before = &text[..at];
    before.rfind("\":").and_then(|end| before[..end].rfind('"').map(|start| before[start + 1..end].to_string())).unwrap_or_else(|| "[]".into())
}

/// The numeric fields of one file, as (name, byte span in the part that holds them), and how
/// to put a changed part back together.
enum Layout {
    Json,
    /// An npy file: the header text follows a 10-byte preamble (v1) with its u16 length.
    Npy { header_end: usize },
    /// safetensors: an 8-byte little-endian header length, the JSON header, the data.
    Safetensors { header_end: usize },
}

fn layout_of(path: &Path, bytes: &[u8]) -> Option<Layout> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    if name.ends_with(".json") {
        return std::str::from_utf8(bytes).ok().map(|_| Layout::Json);
    }
    if name.ends_with(".npy") && bytes.len() > 10 && bytes.starts_with(b"\x93NUMPY") && bytes[6] == 1 {
        let len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        return Some(Layout::Npy { header_end: 10 + len });
    }
    if name.ends_with(".safetensors") && bytes.len() > 8 {
        let len = u64::from_le_bytes(bytes[..8].try_into().ok()?) as usize;
        return (8 + len <= bytes.len()).then_some(Layout::Safetensors { header_end: 8 + len });
    }
    None
}

/// The file with the number at `span` (within the header text) replaced by `new`.
fn rewrite(bytes: &[u8], layout: &Layout, span: (usize, usize), new: &str) -> Vec<u8> {
    match layout {
        Layout::Json => [&bytes[..span.0], new.as_bytes(), &bytes[span.1..]].concat(),
        Layout::Npy { header_end } => {
            // Keep the header's length: pad or trim the spaces before its newline.
            let header = &bytes[10..*header_end];
            let mut text = [&header[..span.0], new.as_bytes(), &header[span.1..]].concat();
            let old_len = header.len();
            while text.len() > old_len && text.len() >= 2 && text[text.len() - 2] == b' ' {
                text.remove(text.len() - 2);
            }
            while text.len() < old_len {
                text.insert(text.len() - 1, b' ');
            }
            let mut out = bytes[..8].to_vec();
            out.extend_from_slice(&(text.len() as u16).to_le_bytes());
            out.extend_from_slice(&text);
            out.extend_from_slice(&bytes[*header_end..]);
            out
        }
        Layout::Safetensors { header_end } => {
            let header = &bytes[8..*header_end];
            let text = [&header[..span.0], new.as_bytes(), &header[span.1..]].concat();
            let mut out = (text.len() as u64).to_le_bytes().to_vec();
            out.extend_from_slice(&text);
            out.extend_from_slice(&bytes[*header_end..]);
            out
        }
    }
}

/// The text whose numbers are mutated: the whole JSON file, or the binary file's header.
fn header_text<'a>(bytes: &'a [u8], layout: &Layout) -> &'a str {
    let slice = match layout {
        Layout::Json => bytes,
        Layout::Npy { header_end } => &bytes[10..*header_end],
        Layout::Safetensors { header_end } => &bytes[8..*header_end],
    };
    std::str::from_utf8(slice).unwrap_or("")
}

fn copy_folder(from: &Path, to: &Path) -> Result<()> {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry?;
        let target = to.join(entry.path().strip_prefix(from)?);
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target)?;
        } else {
            std::fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}

/// The first `n` rows of the fixture input as a CSV file.
fn small_input(dir: &Path, n: usize) -> Result<PathBuf> {
    let text = std::fs::read_to_string(fixtures().join("input.csv"))?;
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let path = dir.join(format!("input-{n}.csv"));
    let mut writer = csv::Writer::from_path(&path)?;
    writer.write_record(reader.headers()?)?;
    for record in reader.records().take(n) {
        writer.write_record(&record?)?;
    }
    writer.flush()?;
    Ok(path)
}

fn model_folders(args: &FaultsArgs, work: &Path, rng: &mut Xoshiro256PlusPlus) -> Result<Tally> {
    let mut tally = Tally::default();
    let input = small_input(work, 20)?;
    for method in ["generative", "xr", "fused", "cluster-search"] {
        let folder = fixtures().join(method);
        let mut cases: Vec<(PathBuf, usize, String, &str)> = Vec::new();
        for entry in walkdir::WalkDir::new(&folder).sort_by_file_name() {
            let entry = entry?;
            if !entry.file_type().is_file() {
                continue;
            }
            let bytes = std::fs::read(entry.path())?;
            let Some(layout) = layout_of(entry.path(), &bytes) else { continue };
            let text = header_text(&bytes, &layout);
            // One number per key (the first), plus up to three others at random: a file such as
            // tree.json holds thousands of numbers under a few keys.
            let spans = json_number_spans(text);
            let mut by_key: BTreeMap<String, Vec<usize>> = BTreeMap::new();
            for (i, span) in spans.iter().enumerate() {
                by_key.entry(key_before(text, span.0)).or_default().push(i);
            }
            let mut picked: Vec<usize> = by_key.values().map(|v| v[0]).collect();
            let rest: Vec<usize> = by_key.values().flat_map(|v| v[1..].iter().copied()).collect();
            let mut rest = rest;
            shuffle(rng, &mut rest);
            picked.extend(rest.into_iter().take(3));
            let rel = entry.path().strip_prefix(&folder)?.to_path_buf();
            for i in picked {
                for how in MUTATIONS {
                    cases.push((rel.clone(), i, key_before(text, spans[i].0), how));
                }
            }
        }
        if let Some(only) = &args.only {
            cases.retain(|(rel, ..)| format!("{method}/{}", rel.display()).contains(only.as_str()));
        }
        if args.short {
            shuffle(rng, &mut cases);
            cases.truncate(24);
        }
        eprintln!("model folders: {method}: {} cases", cases.len());
        for (rel, index, key, how) in cases {
            let copy = work.join("folder");
            let _ = std::fs::remove_dir_all(&copy);
            copy_folder(&folder, &copy)?;
            let path = copy.join(&rel);
            let bytes = std::fs::read(&path)?;
            let layout = layout_of(&path, &bytes).expect("listed above");
            let text = header_text(&bytes, &layout);
            let span = json_number_spans(text)[index];
            let new = mutate_number(&text[span.0..span.1], how);
            std::fs::write(&path, rewrite(&bytes, &layout, span, &new))?;
            let out = work.join("folder-out.jsonl");
            let _ = std::fs::remove_file(&out);
            let command = xmc(&["predict", "--model", copy.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap(), "--top-k", "3"])?;
            let done = run_classified(command, Duration::from_secs(120))?;
            let what = || format!("{method}/{} `{key}` {how} ({}): {}", rel.display(), new, last_line(&done.stderr));
            tally.add(done.outcome, done.rss, what);
            if done.outcome == Outcome::Answer {
                let rows = std::fs::read_to_string(&out).map(|t| t.lines().count()).unwrap_or(0) as u64;
                tally.lose(20u64.saturating_sub(rows), what);
            }
        }
    }
    Ok(tally)
}

/// What a child said last: the panic's message when it panicked, else its last line.
fn last_line(text: &str) -> String {
    let lines: Vec<&str> = text.lines().collect();
    if let Some(i) = lines.iter().position(|l| l.contains("panicked at")) {
        return format!("{} {}", lines[i], lines.get(i + 1).unwrap_or(&"")).chars().take(300).collect();
    }
    lines.iter().rev().find(|l| !l.trim().is_empty() && !l.starts_with("note:")).unwrap_or(&"").chars().take(300).collect()
}

// ---------------------------------------------------------------------------------------------
// Inputs

/// Rows a text input holds: its non-empty lines after the header (CSV) or all of them (JSON lines).
fn text_rows(bytes: &[u8], header: bool) -> u64 {
    let lines = bytes.split(|&b| b == b'\n').filter(|l| !l.iter().all(|b| b.is_ascii_whitespace())).count() as u64;
    lines.saturating_sub(header as u64)
}

fn inputs(args: &FaultsArgs, work: &Path, rng: &mut Xoshiro256PlusPlus) -> Result<Tally> {
    let mut tally = Tally::default();
    let model = fixtures().join("xr");
    let csv_path = small_input(work, 300)?;
    let csv_bytes = std::fs::read(&csv_path)?;
    // JSON lines of the same rows, and Parquet.
    let mut reader = csv::Reader::from_path(&csv_path)?;
    let headers = reader.headers()?.clone();
    let mut jsonl = Vec::new();
    let mut columns: Vec<Vec<String>> = vec![Vec::new(); headers.len()];
    for record in reader.records() {
        let record = record?;
        let object: serde_json::Map<String, Value> = headers.iter().zip(record.iter()).map(|(h, v)| (h.to_string(), Value::String(v.to_string()))).collect();
        serde_json::to_writer(&mut jsonl, &object)?;
        jsonl.push(b'\n');
        for (column, value) in columns.iter_mut().zip(record.iter()) {
            column.push(value.to_string());
        }
    }
    let parquet = {
        use polars::prelude::*;
        let cols: Vec<Column> = headers.iter().zip(&columns).map(|(h, c)| Column::new(h.into(), c.clone())).collect();
        let mut df = DataFrame::new(columns[0].len(), cols)?;
        let mut bytes = Vec::new();
        ParquetWriter::new(&mut bytes).finish(&mut df)?;
        bytes
    };
    let per_format = if args.short { 10 } else { 60 };
    for (format, clean) in [("csv", &csv_bytes), ("jsonl", &jsonl), ("parquet", &parquet)] {
        for case in 0..per_format {
            let mut bytes = clean.clone();
            let how = if case % 5 == 4 { "cut short" } else { "bad bytes" };
            if how == "cut short" {
                let at = below(rng, bytes.len() / 10..bytes.len());
                bytes.truncate(at);
            } else {
                for _ in 0..below(rng, 1..4) {
                    let at = below(rng, 0..bytes.len());
                    // Text formats keep their row structure (no new line breaks, quotes or
                    // commas), so that the rows expected can be counted; the bytes include
                    // invalid UTF-8.
                    let choices: &[u8] = if format == "parquet" { b"\x00\xff\x7f9a" } else { b"\xff\xfe\xc3\x80\x00x9{}:" };
                    let new = choices[below(rng, 0..choices.len())];
                    if format != "parquet" && (bytes[at] == b'\n' || bytes[at] == b'"' || bytes[at] == b',') {
                        continue;
                    }
                    bytes[at] = new;
                }
            }
            let path = work.join(format!("bad.{format}"));
            std::fs::write(&path, &bytes)?;
            let out = work.join("bad-out.jsonl");
            let rejects = work.join("bad-out.rejects.jsonl");
            let _ = std::fs::remove_file(&out);
            let _ = std::fs::remove_file(&rejects);
            let command = xmc(&["predict", "--model", model.to_str().unwrap(), "--input", path.to_str().unwrap(), "--output", out.to_str().unwrap(), "--rejects", rejects.to_str().unwrap(), "--skip-bad-rows"])?;
            let done = run_classified(command, Duration::from_secs(120))?;
            let what = || format!("{format} {how} #{case}: {}", last_line(&done.stderr));
            tally.add(done.outcome, done.rss, what);
            if done.outcome == Outcome::Answer {
                let count = |p: &Path| std::fs::read_to_string(p).map(|t| t.lines().count() as u64).unwrap_or(0);
                let came_out = count(&out) + count(&rejects);
                let expected = match format {
                    "csv" => text_rows(&bytes, true),
                    "jsonl" => text_rows(&bytes, false),
                    _ => 300,
                };
                tally.lose(expected.saturating_sub(came_out), what);
            }
        }
    }
    Ok(tally)
}

// ---------------------------------------------------------------------------------------------
// Killed shards

fn read_ids_paths(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') || !name.ends_with(".jsonl") || name.ends_with(".rejects.jsonl") {
            continue;
        }
        for line in std::fs::read_to_string(&path)?.lines() {
            let row: Value = serde_json::from_str(line).with_context(|| format!("{}: a partial line", path.display()))?;
            out.insert(row["id"].as_str().unwrap_or_default().to_string(), row["path"].as_str().unwrap_or_default().to_string());
        }
    }
    Ok(out)
}

fn killed_shards(args: &FaultsArgs, work: &Path, rng: &mut Xoshiro256PlusPlus) -> Result<Tally> {
    let mut tally = Tally::default();
    let model = fixtures().join("generative");
    let shards = work.join("shards");
    std::fs::create_dir_all(&shards)?;
    let text = std::fs::read_to_string(fixtures().join("input.csv"))?;
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let header = reader.headers()?.clone();
    let mut writers: Vec<csv::Writer<std::fs::File>> = (0..6).map(|i| csv::Writer::from_path(shards.join(format!("part-{i}.csv")))).collect::<Result<_, _>>()?;
    for w in &mut writers {
        w.write_record(&header)?;
    }
    for (i, record) in reader.records().enumerate() {
        writers[i % 6].write_record(&record?)?;
    }
    for w in &mut writers {
        w.flush()?;
    }
    let command = |out: &Path| xmc(&["predict", "--model", model.to_str().unwrap(), "--input", shards.to_str().unwrap(), "--output", out.to_str().unwrap(), "--format", "jsonl", "--top-k", "20", "--beam-width", "20", "--chunk-size", "16"]);
    let reference = work.join("shards-reference");
    let started = Instant::now();
    let done = run_classified(command(&reference)?, Duration::from_secs(300))?;
    if done.outcome != Outcome::Answer {
        bail!("the uninterrupted sharded run failed: {}", done.stderr);
    }
    let full = started.elapsed();
    let want = read_ids_paths(&reference)?;
    let cases = if args.short { 4 } else { 20 };
    for case in 0..cases {
        let out = work.join("shards-killed");
        let _ = std::fs::remove_dir_all(&out);
        let delay = full.mul_f64(0.05 + 0.95 * unit(rng));
        let mut child = command(&out)?.stdout(Stdio::null()).stderr(Stdio::null()).spawn()?;
        std::thread::sleep(delay);
        let _ = child.kill();
        let _ = child.wait();
        let done = run_classified(command(&out)?, Duration::from_secs(300))?;
        let what = || format!("killed after {delay:.2?} (#{case}): {}", last_line(&done.stderr));
        tally.add(done.outcome, done.rss, what);
        if done.outcome == Outcome::Answer {
            let got = read_ids_paths(&out).unwrap_or_default();
            let lost = want.iter().filter(|(id, path)| got.get(*id) != Some(path)).count() as u64;
            tally.lose(lost, what);
        }
    }
    Ok(tally)
}

// ---------------------------------------------------------------------------------------------
// Server

/// The status code of an HTTP response, if there was one.
fn status_of(response: &[u8]) -> Option<u16> {
    String::from_utf8_lossy(response).split(' ').nth(1).and_then(|s| s.parse().ok())
}

/// Sends `bytes` on a new connection (closing its writing side when `half_close`) and reads the
/// answer to its end.
fn send_raw(addr: SocketAddr, bytes: &[u8], half_close: bool) -> Option<u16> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(30))).ok()?;
    stream.write_all(bytes).ok()?;
    if half_close {
        stream.shutdown(std::net::Shutdown::Write).ok()?;
    }
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    status_of(&response)
}

fn server(args: &FaultsArgs, rng: &mut Xoshiro256PlusPlus) -> Result<Tally> {
    let mut tally = Tally::default();
    let model = fixtures().join("xr");
    let mut child = Command::new(std::env::current_exe()?)
        .args(["xmc", "serve", "--model", model.to_str().unwrap(), "--port", "0", "--header-timeout-secs", "1", "--body-timeout-secs", "1", "--drain-secs", "2", "--max-body-bytes", "65536", "--max-connections", "64"])
        .stderr(Stdio::piped())
        .spawn()?;
    let mut stderr = std::io::BufReader::new(child.stderr.take().expect("piped"));
    let addr: SocketAddr = loop {
        let mut line = String::new();
        if std::io::BufRead::read_line(&mut stderr, &mut line)? == 0 {
            bail!("the server stopped before listening");
        }
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.split_whitespace().next().unwrap_or_default().parse()?;
        }
    };
    std::thread::spawn(move || std::io::copy(&mut stderr, &mut std::io::sink()));
    let head = |len: usize| format!("POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n");
    let good = br#"{"title": "Hornby 00 gauge coach"}"#;
    let rounds = if args.short { 3 } else { 20 };
    let mut statuses: BTreeMap<String, BTreeMap<Option<u16>, usize>> = BTreeMap::new();
    for _ in 0..rounds {
        let garbage: Vec<u8> = (0..below(rng, 1..200)).map(|_| rng.next_u64() as u8).collect();
        let kinds: Vec<(&str, Vec<u8>)> = vec![
            ("stalled body", [head(100).as_bytes(), b"{"].concat()),
            ("stalled headers", b"POST /predict HTTP/1.1\r\nHost: x\r\n".to_vec()),
            ("truncated body", [head(100).as_bytes(), &good[..10]].concat()),
            ("oversized body", [head(200_000).as_bytes(), &vec![b' '; 200_000]].concat()),
            ("garbage", garbage),
            ("valid", [head(good.len()).as_bytes(), good].concat()),
        ];
        // All at once, each on its own connection.
        let answers: Vec<(String, Option<u16>, Duration)> = std::thread::scope(|scope| {
            let workers: Vec<_> = kinds
                .iter()
                .map(|(kind, bytes)| {
                    scope.spawn(move || {
                        let started = Instant::now();
                        // A truncated body: part of it, then the writing side closed.
                        let status = send_raw(addr, bytes, *kind == "truncated body");
                        (kind.to_string(), status, started.elapsed())
                    })
                })
                .collect();
            workers.into_iter().map(|w| w.join().expect("client thread")).collect()
        });
        for (kind, status, took) in answers {
            *statuses.entry(kind.clone()).or_default().entry(status).or_default() += 1;
            // Each case must end (answered or closed) within the timeouts, not hang.
            let outcome = match (kind.as_str(), status) {
                (_, _) if took > Duration::from_secs(10) => Outcome::Hang,
                ("valid", Some(200)) => Outcome::Answer,
                ("valid", _) => Outcome::Abort,
                (_, Some(s)) if (400..500).contains(&s) => Outcome::Error,
                (_, None) => Outcome::Error,
                _ => Outcome::Abort,
            };
            tally.add(outcome, 0, || format!("{kind}: {status:?} after {took:?}"));
        }
    }
    // Still healthy, then SIGTERM with a client stalled mid-body: exits 0 within the drain time.
    let health = send_raw(addr, b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", false);
    tally.add(if health == Some(200) { Outcome::Answer } else { Outcome::Abort }, 0, || format!("health after the abuse: {health:?}"));
    let mut stalled = TcpStream::connect(addr)?;
    stalled.write_all([head(100).as_bytes(), b"{"].concat().as_slice())?;
    std::thread::sleep(Duration::from_millis(100));
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let started = Instant::now();
    let (waited, rss) = reap(&mut child, Duration::from_secs(15))?;
    let status = waited.map(|s| if libc::WIFEXITED(s) { libc::WEXITSTATUS(s) } else { -1 });
    let exited = match status {
        Some(0) if started.elapsed() < Duration::from_secs(6) => Outcome::Answer,
        Some(_) => Outcome::Abort,
        None => Outcome::Hang,
    };
    tally.add(exited, rss, || format!("SIGTERM with a stalled client: {status:?} after {:?}", started.elapsed()));
    eprintln!("server statuses by kind: {statuses:?}");
    drop(stalled);
    Ok(tally)
}

// ---------------------------------------------------------------------------------------------

/// Runs the suite; the list of bad cases, if any, goes to `out_dir`.
pub fn bench_faults(args: FaultsArgs, out_dir: &Path) -> Result<ExitCode> {
    let work = tempfile::tempdir()?;
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(args.seed);
    let started = Instant::now();
    let mut parts: Vec<(&str, Tally)> = vec![("model folders: numbers changed", model_folders(&args, work.path(), &mut rng)?)];
    if args.only.is_none() {
        parts.push(("inputs: bad bytes, cut short", inputs(&args, work.path(), &mut rng)?));
        parts.push(("sharded predict killed and rerun", killed_shards(&args, work.path(), &mut rng)?));
        parts.push(("server: stalled, truncated, oversized, garbage; SIGTERM", server(&args, &mut rng)?));
    }
    println!("fault suite ({}, seed {}, {:.0} s)\n", if args.short { "short" } else { "full" }, args.seed, started.elapsed().as_secs_f64());
    println!("| part | cases | answers | errors with a message | panics | aborts | hangs | rows lost | peak RSS (MiB) |");
    println!("|---|---|---|---|---|---|---|---|---|");
    let mut failed = false;
    for (name, t) in &parts {
        println!(
            "| {name} | {} | {} | {} | {} | {} | {} | {} | {:.0} |",
            t.cases,
            t.count(Outcome::Answer),
            t.count(Outcome::Error),
            t.count(Outcome::Panic),
            t.count(Outcome::Abort),
            t.count(Outcome::Hang),
            t.rows_lost,
            t.peak_rss as f64 / (1u64 << 20) as f64
        );
        failed |= t.failed();
    }
    let bad: Vec<String> = parts.iter().flat_map(|(name, t)| t.bad_cases.iter().map(move |e| format!("{name}: {e}"))).collect();
    for line in bad.iter().take(20) {
        println!("{line}");
    }
    if !bad.is_empty() {
        let list = out_dir.join("faults-bad-cases.txt");
        std::fs::create_dir_all(out_dir)?;
        std::fs::write(&list, bad.join("\n") + "\n")?;
        println!("{} bad cases in all, listed in {}", bad.len(), list.display());
    }
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}
