//! `cargo xtask bench serve MODEL --soak`: the server in a child process under concurrent
//! clients that mix valid requests with malformed JSON, wrong types, huge `top_k`, empty and 1 MB
//! titles, non-UTF-8 bytes, slow bodies and dropped connections. Reports the status counts,
//! p50/p99 latency of the valid requests, the server's peak RSS, whether every valid answer equals
//! the offline prediction, and the server's exit status after SIGTERM.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde_json::{Value, json};

/// The kinds of request a client sends, in rotation.
const KINDS: [&str; 11] =
    ["valid", "valid batch", "malformed JSON", "wrong type", "huge top_k", "empty title", "1 MB title", "non-UTF-8", "slow body", "dropped", "valid"];

/// One request of `kind` (for the valid kinds, built from `records`); `None` status: the client
/// closed the connection on purpose.
fn send(addr: SocketAddr, kind: &str, records: &[Value], i: usize) -> Result<(Option<u16>, Duration, Option<Value>, Vec<usize>)> {
    let pick = |j: usize| records[(i * 7 + j) % records.len()].clone();
    let (body, which): (Vec<u8>, Vec<usize>) = match kind {
        "valid" => (json!({ "records": [pick(0)], "top_k": 3 }).to_string().into_bytes(), vec![(i * 7) % records.len()]),
        "valid batch" => (json!({ "records": (0..8).map(pick).collect::<Vec<_>>(), "top_k": 3 }).to_string().into_bytes(), (0..8).map(|j| (i * 7 + j) % records.len()).collect()),
        "malformed JSON" => (b"{\"title\": \"Hornby".to_vec(), vec![]),
        "wrong type" => (br#"{"title": 5, "price": "cheap"}"#.to_vec(), vec![]),
        "huge top_k" => (br#"{"title": "Hornby coach", "top_k": 100000000}"#.to_vec(), vec![]),
        "empty title" => (br#"{"title": ""}"#.to_vec(), vec![]),
        "1 MB title" => (format!(r#"{{"title": "{}"}}"#, "x".repeat(1_000_000)).into_bytes(), vec![]),
        "non-UTF-8" => (b"{\"title\": \"Hornby \xff\xfe coach\"}".to_vec(), vec![]),
        _ => (json!({ "records": [pick(0)], "top_k": 3 }).to_string().into_bytes(), vec![]),
    };
    let started = Instant::now();
    let mut stream = TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(120)))?;
    write!(stream, "POST /predict HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n", body.len())?;
    match kind {
        "slow body" => {
            let (a, b) = body.split_at(body.len() / 2);
            stream.write_all(a)?;
            stream.flush()?;
            std::thread::sleep(Duration::from_millis(300));
            stream.write_all(b)?;
        }
        "dropped" => {
            stream.write_all(&body[..body.len() / 2])?;
            drop(stream);
            return Ok((None, started.elapsed(), None, vec![]));
        }
        _ => stream.write_all(&body)?,
    }
    let mut response = Vec::new();
    stream.read_to_end(&mut response)?;
    let text = String::from_utf8_lossy(&response);
    let status: u16 = text.split(' ').nth(1).and_then(|s| s.parse().ok()).context("no status line")?;
    let json = text.split_once("\r\n\r\n").and_then(|(_, b)| serde_json::from_str(b).ok());
    Ok((Some(status), started.elapsed(), json, which))
}

/// Peak RSS of a running process from /proc (kB -> bytes).
fn vm_hwm(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmHWM:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok()).map(|kb| kb * 1024)
}

pub fn soak(model: &Path, data: Option<&Path>, clients: usize, max_requests: usize, max_time: Duration) -> Result<ExitCode> {
    let data_dir = data.map(Path::to_path_buf).unwrap_or_else(|| model.parent().unwrap_or(Path::new(".")).join("data"));
    let prepared = xmc_data::PreparedData::load(&data_dir)?;
    let test: Vec<&xmc_data::PreparedRecord> = prepared.split(xmc_data::Split::Test).collect();
    if test.is_empty() {
        bail!("{} has no test records", data_dir.display());
    }
    let records: Vec<Value> = test
        .iter()
        .enumerate()
        .map(|(i, r)| json!({ "id": i, "title": r.record.title, "store": r.record.store, "manufacturer": r.record.manufacturer, "brand": r.record.brand, "price": r.record.price }))
        .collect();
    // The offline answers: the same records through the Predictor, as `xmc predict` would.
    let predictor = xmc_methods::Predictor::load(model)?;
    let texts: Vec<String> = test
        .iter()
        .map(|r| {
            let p = xmc_data::ProductRecord {
                title: r.record.title.clone(),
                store: r.record.store.clone(),
                manufacturer: r.record.manufacturer.clone(),
                brand: r.record.brand.clone(),
                price: r.record.price,
                ..Default::default()
            };
            predictor.template().render(&p)
        })
        .collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let offline = predictor.predict_texts(&refs, predictor.default_beam().max(3), 3, |_| {})?;
    let labels: Vec<String> = predictor.labels().labels.iter().map(|l| l.path.clone()).collect();
    drop(predictor);

    let exe = std::env::current_exe()?;
    let mut server = Command::new(&exe)
        .args(["xmc", "serve", "--port", "0", "--model"])
        .arg(model)
        .stderr(Stdio::piped())
        .spawn()
        .context("starting the server")?;
    let mut lines = BufReader::new(server.stderr.take().context("server stderr")?).lines();
    let addr: SocketAddr = loop {
        let line = lines.next().context("the server exited before listening")??;
        if let Some(rest) = line.split("http://").nth(1) {
            break rest.split_whitespace().next().context("address")?.parse()?;
        }
    };
    std::thread::spawn(move || for _ in lines {}); // keep draining the server's stderr
    let pid = server.id();

    let started = Instant::now();
    let next = AtomicUsize::new(0);
    let results: Vec<Vec<(&str, Result<(Option<u16>, Duration, Option<Value>, Vec<usize>)>)>> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..clients)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= max_requests || started.elapsed() > max_time {
                            break;
                        }
                        let kind = KINDS[i % KINDS.len()];
                        mine.push((kind, send(addr, kind, &records, i)));
                    }
                    mine
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().expect("client thread")).collect()
    });
    let wall = started.elapsed();
    let peak_rss = vm_hwm(pid);
    let alive = TcpStream::connect(addr).is_ok();
    // SAFETY: sending SIGTERM to our own child.
    unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
    let exit = server.wait()?;

    let mut by_status: BTreeMap<String, usize> = BTreeMap::new();
    let mut by_kind: BTreeMap<(&str, String), usize> = BTreeMap::new();
    let (mut latencies, mut mismatches, mut compared, mut client_errors) = (Vec::new(), 0usize, 0usize, 0usize);
    for (kind, result) in results.into_iter().flatten() {
        let (status, took, body, which) = match result {
            Ok(r) => r,
            Err(e) => {
                client_errors += 1;
                eprintln!("{kind}: client error {e:#}");
                continue;
            }
        };
        let status_name = status.map_or("closed by the client".to_string(), |s| s.to_string());
        *by_status.entry(status_name.clone()).or_default() += 1;
        *by_kind.entry((kind, status_name)).or_default() += 1;
        if status == Some(200) && !which.is_empty() {
            latencies.push(took);
            let predictions = body.as_ref().and_then(|b| b["predictions"].as_array()).cloned().unwrap_or_default();
            for (p, &r) in predictions.iter().zip(&which) {
                compared += 1;
                let want: Vec<(&str, f32)> = offline[r].iter().map(|&(l, s)| (labels[l as usize].as_str(), s)).collect();
                let got: Vec<(&str, f32)> =
                    p["top_k"].as_array().into_iter().flatten().map(|t| (t["path"].as_str().unwrap_or(""), t["score"].as_f64().unwrap_or(f64::NAN) as f32)).collect();
                let same = got.len() == want.len() && got.iter().zip(&want).all(|(a, b)| a.0 == b.0 && (a.1 - b.1).abs() < 1e-5);
                mismatches += usize::from(!same);
            }
        }
    }
    latencies.sort();
    let pct = |q: f64| latencies.get(((latencies.len().max(1) - 1) as f64 * q).round() as usize).map_or(f64::NAN, |d| d.as_secs_f64() * 1e3);
    let total: usize = by_status.values().sum();
    println!("soak of {} with {clients} clients: {total} requests in {:.1} s", model.display(), wall.as_secs_f64());
    println!("\n| request kind | status | count |\n|---|---|---|");
    for ((kind, status), n) in &by_kind {
        println!("| {kind} | {status} | {n} |");
    }
    let server_errors: usize = by_status.iter().filter(|(s, _)| s.starts_with('5') && s.as_str() != "503").map(|(_, n)| n).sum();
    println!("\nvalid requests: p50 {:.1} ms, p99 {:.1} ms; {compared} predictions compared with the offline ones, {mismatches} differ", pct(0.5), pct(0.99));
    println!("server peak RSS {:.0} MiB; 5xx other than 503: {server_errors}; client-side errors: {client_errors}", peak_rss.unwrap_or(0) as f64 / (1 << 20) as f64);
    println!("server alive after the soak: {alive}; exit after SIGTERM: {exit}");
    let ok = alive && exit.success() && mismatches == 0 && server_errors == 0 && client_errors == 0 && compared > 0;
    println!("{}", if ok { "PASS" } else { "FAIL" });
    Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}
