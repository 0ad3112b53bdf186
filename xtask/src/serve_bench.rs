//! `cargo xtask bench serve`: records/s and latency of `xmc serve` over loopback at batch sizes 1
//! and 32, with a bounded number of requests from client threads that each keep one connection.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use clap::Args;

#[derive(Debug, Args)]
pub struct ServeBenchArgs {
    /// A trained model folder (e.g. experiments/hkmeans_t5/train).
    model: PathBuf,
    /// Prepared data whose test records are sent (default: the data stage beside the model).
    #[arg(long)]
    data: Option<PathBuf>,
    /// Requests per batch size.
    #[arg(long, default_value_t = 64)]
    requests: usize,
    /// Concurrent clients, each with one connection kept open for all its requests.
    #[arg(long, default_value_t = 2)]
    clients: usize,
    /// The soak and abuse run instead: the server in a child process (`xmc serve`), clients
    /// mixing valid requests with malformed, oversized, slow and dropped ones, bounded by
    /// --soak-requests and --soak-seconds; then SIGTERM, and the server must exit 0.
    #[arg(long)]
    soak: bool,
    #[arg(long, default_value_t = 2000)]
    soak_requests: usize,
    #[arg(long, default_value_t = 180)]
    soak_seconds: u64,
}

/// One client: a `ureq` agent whose connection stays open across its requests (HTTP/1.1
/// keep-alive), so that the bench measures the server, not TCP set-up.
struct Client {
    agent: ureq::Agent,
    url: String,
}

impl Client {
    fn connect(addr: SocketAddr) -> Result<Self> {
        let config = ureq::Agent::config_builder().http_status_as_error(false).timeout_global(Some(Duration::from_secs(120))).build();
        Ok(Client { agent: config.into(), url: format!("http://{addr}/predict") })
    }

    /// Sends one request and reads its whole answer: the status and the time it took.
    fn post(&mut self, body: &str) -> Result<(u16, Duration)> {
        let started = Instant::now();
        let mut response = self.agent.post(&self.url).header("Content-Type", "application/json").send(body)?;
        response.body_mut().read_to_vec()?;
        Ok((response.status().as_u16(), started.elapsed()))
    }
}

fn record_json(r: &xmc_data::ProductRecord) -> serde_json::Value {
    serde_json::json!({ "id": r.id, "title": r.title, "store": r.store, "manufacturer": r.manufacturer, "brand": r.brand, "price": r.price })
}

fn percentile(sorted: &[Duration], q: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

pub fn bench_serve(args: ServeBenchArgs) -> Result<ExitCode> {
    if args.soak {
        return crate::soak::soak(&args.model, args.data.as_deref(), args.clients.max(8), args.soak_requests, Duration::from_secs(args.soak_seconds));
    }
    let data_dir = args.data.clone().unwrap_or_else(|| args.model.parent().unwrap_or(Path::new(".")).join("data"));
    let data = xmc_data::PreparedData::load(&data_dir)?;
    let records: Vec<serde_json::Value> = data.split(xmc_data::Split::Test).map(|r| record_json(&r.record)).collect();
    if records.is_empty() {
        bail!("{} has no test records", data_dir.display());
    }
    let server = xmc::serve::start(&args.model, "127.0.0.1:0".parse()?, xmc::serve::ServeOptions::default())?;
    let addr = server.addr;
    println!("| batch | requests | clients | records/s | p50 latency | p99 latency |");
    println!("|---|---|---|---|---|---|");
    for batch in [1usize, 32] {
        let bodies: Vec<String> = (0..args.requests)
            .map(|i| {
                let items: Vec<_> = (0..batch).map(|j| records[(i * batch + j) % records.len()].clone()).collect();
                serde_json::json!({ "records": items }).to_string()
            })
            .collect();
        Client::connect(addr)?.post(&bodies[0])?; // warm-up
        let started = Instant::now();
        let chunks: Vec<Vec<String>> = (0..args.clients.max(1))
            .map(|c| bodies.iter().skip(c).step_by(args.clients.max(1)).cloned().collect())
            .collect();
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|mine| {
                std::thread::spawn(move || {
                    let mut client = Client::connect(addr)?;
                    mine.iter().map(|b| client.post(b)).collect::<Result<Vec<_>>>()
                })
            })
            .collect();
        let mut latencies = Vec::new();
        for h in handles {
            for (status, took) in h.join().expect("client thread")? {
                if status != 200 {
                    bail!("the server answered {status}");
                }
                latencies.push(took);
            }
        }
        let wall = started.elapsed().as_secs_f64();
        latencies.sort();
        println!(
            "| {batch} | {} | {} | {:.0} | {:.1} ms | {:.1} ms |",
            args.requests,
            args.clients,
            (args.requests * batch) as f64 / wall,
            percentile(&latencies, 0.5).as_secs_f64() * 1e3,
            percentile(&latencies, 0.99).as_secs_f64() * 1e3
        );
    }
    Ok(ExitCode::SUCCESS)
}
