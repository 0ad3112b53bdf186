//! `xmc serve`: an HTTP JSON API over a trained model folder, loaded once.
//!
//! - `GET /health`: `{"status": "ok", "model": {"id", "method", "path"}, "labels": n, ...}`.
//! - `POST /predict`: one record (`{"title": ..., "store": ..., "price": ...}`) or a batch
//!   (`{"records": [...], "top_k": 3}`); returns `{"model": {"id", "method"}, "predictions":
//!   [{"id", "path", "score", "top_k": [{"path", "score"}]}]}` in request order.
//! - `GET /metrics`: Prometheus text format (requests by status, latency histogram, records
//!   predicted, requests in flight, the model's id and method).
//!
//! Bounds: bad JSON, a record without a title, a wrong field type, a text field longer than
//! `max_text_bytes`, too many records, a `top_k` above `max_top_k` or too large a body get a 4xx
//! naming the field, with `{"error": message}`. At most `max_in_flight` prediction requests run
//! at once; beyond that a request gets 503 with `Retry-After` at once (no queue grows). A request
//! not answered within `deadline` of its arrival gets 503, also when its answer is ready only
//! just after (its work finishes in the background, still holding its in-flight slot).
//!
//! Connections: at most `max_connections` are open at once (more wait in the listen backlog);
//! a client that has not sent its request's headers within `header_timeout` of connecting (or
//! of its previous answer), or leaves more than `body_timeout` between two pieces of its body,
//! is disconnected (the latter with 408). SIGTERM or Ctrl-C stops accepting connections, lets
//! the requests in flight finish for up to `drain` and then closes what is left; the process
//! exits 0 either way. Requests are batched dynamically: a batching thread collects the
//! requests that arrive within `batch_wait` of the first waiting one (up to `batch_records`
//! records) and predicts them together, each batch as a task of one rayon pool of
//! `XMC_PREDICT_THREADS` threads (default one per core) while the next batch is collected.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Value, json};
use xmc_methods::{ModelInput, PredictionRow, Predictor, ProductFields, limits};

use crate::ranges::{Span, count};

/// Limits and defaults of a server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub max_batch: usize,
    pub max_body_bytes: usize,
    pub top_k: usize,
    /// The largest `top_k` a request may ask for (it widens the search's beam).
    pub max_top_k: usize,
    /// The longest text field (title, description, ...) in bytes.
    pub max_text_bytes: usize,
    /// Prediction requests running at once; more get 503 at once.
    pub max_in_flight: usize,
    /// A request not answered within this gets 503.
    pub deadline: Duration,
    /// Dynamic batching: requests arriving within this of the first waiting one are predicted
    /// together (up to `batch_records` records), so that many clients sending one record each
    /// share a batch. Zero: only what is already waiting is batched.
    pub batch_wait: Duration,
    pub batch_records: usize,
    /// The dataset descriptor whose cleaning rules and default store apply to the records
    /// (default: the one the model was trained with, `<model>/dataset.toml`).
    pub dataset: Option<PathBuf>,
    /// Connections open at once; further clients wait in the listen backlog.
    pub max_connections: usize,
    /// A connection that has not sent a request's headers within this is closed.
    pub header_timeout: Duration,
    /// A request whose body stalls for this long between two pieces gets 408.
    pub body_timeout: Duration,
    /// After SIGTERM (or [`Server::shutdown`]): how long the requests in flight may take before
    /// the remaining connections are closed.
    pub drain: Duration,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions {
            max_batch: 256,
            max_body_bytes: 1 << 20,
            top_k: 5,
            max_top_k: 100,
            max_text_bytes: 16 << 10,
            max_in_flight: 64,
            deadline: Duration::from_secs(30),
            batch_wait: Duration::from_millis(2),
            batch_records: 32,
            dataset: None,
            max_connections: 1024,
            header_timeout: Duration::from_secs(10),
            body_timeout: Duration::from_secs(10),
            drain: Duration::from_secs(30),
        }
    }
}

/// The model, its input renderer and the threads that predict with it.
struct Engine {
    model: Predictor,
    input: ModelInput,
    pool: rayon::ThreadPool,
}

/// A request waiting for its batch: its records, its `top_k`, its in-flight slot (freed when the
/// job is done) and where the answer goes.
struct Job {
    records: Vec<RecordIn>,
    /// Each record's model input, rendered as every front door renders it ([`ModelInput`]).
    texts: Vec<String>,
    top_k: usize,
    _permit: tokio::sync::OwnedSemaphorePermit,
    reply: tokio::sync::oneshot::Sender<Result<Vec<PredictionOut>>>,
}

struct AppState {
    engine: Arc<Engine>,
    jobs: std::sync::mpsc::Sender<Job>,
    name: String,
    model_id: String,
    opts: ServeOptions,
    in_flight: Arc<tokio::sync::Semaphore>,
    metrics: crate::serve_metrics::ServeMetrics,
}

/// One record as a client sends it; only `title` is required.
#[derive(Debug)]
struct RecordIn {
    id: Option<Value>,
    fields: ProductFields,
}

#[derive(Debug, Serialize)]
struct Scored {
    path: String,
    score: f32,
}

#[derive(Debug, Serialize)]
struct PredictionOut {
    id: Value,
    path: Option<String>,
    score: Option<f32>,
    top_k: Vec<Scored>,
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({ "error": message.into() }))).into_response()
}

/// Reads a request body: one record, or `{"records": [...], "top_k": k}`.
fn parse_request(body: &[u8], opts: &ServeOptions) -> Result<(Vec<RecordIn>, usize), Response> {
    let value: Value =
        serde_json::from_slice(body).map_err(|e| error(StatusCode::BAD_REQUEST, format!("the body is not valid JSON: {e}")))?;
    let Value::Object(mut object) = value else {
        return Err(error(StatusCode::BAD_REQUEST, "the body must be a JSON object: one record, or {\"records\": [...]}"));
    };
    let top_k = match object.remove("top_k") {
        None => opts.top_k,
        Some(v) => v
            .as_u64()
            .filter(|&k| k >= 1 && k <= opts.max_top_k as u64)
            .ok_or_else(|| {
                error(StatusCode::UNPROCESSABLE_ENTITY, format!("`top_k` must be an integer from 1 to {}", opts.max_top_k))
            })? as usize,
    };
    let items: Vec<Value> = match object.remove("records") {
        Some(Value::Array(items)) => {
            if let Some(key) = object.keys().next() {
                return Err(error(StatusCode::UNPROCESSABLE_ENTITY, format!("unknown field `{key}` beside `records`")));
            }
            items
        }
        Some(_) => return Err(error(StatusCode::UNPROCESSABLE_ENTITY, "`records` must be an array of records")),
        None => vec![Value::Object(object)],
    };
    if items.is_empty() {
        return Err(error(StatusCode::UNPROCESSABLE_ENTITY, "`records` is empty"));
    }
    if items.len() > opts.max_batch {
        return Err(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("{} records in one request; at most {} are allowed", items.len(), opts.max_batch),
        ));
    }
    let records = items
        .into_iter()
        .enumerate()
        .map(|(i, item)| record_from_json(item, opts.max_text_bytes).map_err(|m| error(StatusCode::UNPROCESSABLE_ENTITY, format!("record {i}: {m}"))))
        .collect::<Result<Vec<_>, Response>>()?;
    Ok((records, top_k))
}

/// A record as a client writes it: only `title` is required, and any other key is refused.
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct RecordJson {
    #[serde(default)]
    id: Option<Value>,
    title: String,
    #[serde(default)]
    description: Option<String>,
    #[serde(default)]
    store: Option<String>,
    #[serde(default)]
    manufacturer: Option<String>,
    #[serde(default)]
    brand: Option<String>,
    #[serde(default)]
    price: Option<f64>,
}

/// A record from its JSON object, naming the field that is missing, unknown, of the wrong type
/// (serde's message, with the field's path) or longer than `max_text_bytes`.
fn record_from_json(item: Value, max_text_bytes: usize) -> Result<RecordIn, String> {
    let Value::Object(fields) = &item else { return Err("a record must be a JSON object".into()) };
    if let Some((name, len)) = fields.iter().find_map(|(k, v)| v.as_str().map(|s| (k, s.len())).filter(|&(_, n)| n > max_text_bytes)) {
        return Err(format!("`{name}` is {len} bytes long; at most {max_text_bytes} are allowed"));
    }
    let r: RecordJson = serde_path_to_error::deserialize(item).map_err(|e| match e.path().to_string().as_str() {
        "." => e.inner().to_string(),
        path => format!("`{path}`: {}", e.inner()),
    })?;
    if r.title.trim().is_empty() {
        return Err("`title` is empty".into());
    }
    let fields = ProductFields {
        title: r.title,
        description: r.description,
        store: r.store,
        manufacturer: r.manufacturer,
        brand: r.brand,
        price: r.price.map(|p| p.to_string()),
    };
    Ok(RecordIn { id: r.id, fields })
}

/// Collects jobs into batches: after the first waiting job, more for up to `wait` or until
/// `max_records` records; each batch is predicted on the pool while the next one is collected.
fn run_batcher(engine: Arc<Engine>, jobs: std::sync::mpsc::Receiver<Job>, wait: Duration, max_records: usize) {
    while let Ok(first) = jobs.recv() {
        let mut n = first.records.len();
        let mut batch = vec![first];
        let until = Instant::now() + wait;
        while n < max_records {
            let next = match until.checked_duration_since(Instant::now()) {
                Some(left) if !left.is_zero() => jobs.recv_timeout(left).ok(),
                _ => jobs.try_recv().ok(),
            };
            let Some(job) = next else { break };
            n += job.records.len();
            batch.push(job);
        }
        let worker = engine.clone();
        engine.pool.spawn(move || predict_jobs(&worker.model, batch));
    }
}

/// Predicts a batch of jobs: those with the same beam (the model's, widened by `top_k`) in one
/// call over the beam's whole pool, then each job's answer cut to its own `top_k` (the same
/// answer as predicting the job alone: confidences are normalised over the pool). A panic inside
/// the model is caught and answered as an error to that group's requests: the prediction pool
/// runs on rayon, which aborts the whole process on an uncaught panic.
fn predict_jobs(model: &Predictor, batch: Vec<Job>) {
    let mut groups: std::collections::BTreeMap<usize, Vec<Job>> = Default::default();
    for job in batch {
        groups.entry(model.default_beam().max(job.top_k)).or_default().push(job);
    }
    for (beam, group) in groups {
        let answered = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| predict_group(model, &group, beam)))
            .unwrap_or_else(|panic| Err(anyhow::anyhow!("the model failed while predicting: {}", panic_message(&panic))));
        match answered {
            Ok(answers) => {
                for (job, answer) in group.into_iter().zip(answers) {
                    let _ = job.reply.send(Ok(answer));
                }
            }
            Err(e) => {
                for job in group {
                    let _ = job.reply.send(Err(anyhow::anyhow!("{e:#}")));
                }
            }
        }
    }
}

/// One beam group's answers, in the order of its jobs.
fn predict_group(model: &Predictor, group: &[Job], beam: usize) -> Result<Vec<Vec<PredictionOut>>> {
    let refs: Vec<&str> = group.iter().flat_map(|j| &j.texts).map(String::as_str).collect();
    let mut ranked = model.predict_texts(&refs, beam, beam, |_| {})?.into_iter();
    Ok(group
        .iter()
        .map(|job| {
            let mine: Vec<Vec<(u32, f32)>> = ranked.by_ref().take(job.records.len()).collect();
            outputs(model, &job.records, mine, job.top_k)
        })
        .collect())
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| panic.downcast_ref::<String>().cloned()).unwrap_or_else(|| "a panic".into())
}

/// A request's answers from its records' ranked labels (each cut to `top_k`), as every front door
/// turns label ids into rows ([`PredictionRow::from_ranked`]).
fn outputs(model: &Predictor, records: &[RecordIn], ranked: Vec<Vec<(u32, f32)>>, top_k: usize) -> Vec<PredictionOut> {
    records
        .iter()
        .zip(ranked)
        .enumerate()
        .map(|(i, (r, h))| {
            let row = PredictionRow::from_ranked("", None, &h[..h.len().min(top_k)], model.labels());
            PredictionOut {
                id: r.id.clone().unwrap_or(json!(i)),
                path: row.path,
                score: row.score,
                top_k: row.top_k.into_iter().map(|(path, score)| Scored { path, score }).collect(),
            }
        })
        .collect()
}

/// A body that could not be read: 408 when it stalled past the body timeout, else the
/// extractor's own status (413 past the size limit, 400 otherwise), each with a JSON message.
fn body_rejection(rejection: BytesRejection, timeout: Duration) -> Response {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&rejection);
    while let Some(e) = source {
        if e.is::<tower_http::timeout::TimeoutError>() {
            return error(StatusCode::REQUEST_TIMEOUT, format!("the request body stalled for more than {:.1} s", timeout.as_secs_f64()));
        }
        source = e.source();
    }
    error(rejection.status(), rejection.body_text())
}

fn busy(message: String) -> Response {
    let mut response = error(StatusCode::SERVICE_UNAVAILABLE, message);
    response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

async fn predict_handler(State(state): State<Arc<AppState>>, body: Result<Bytes, BytesRejection>) -> Response {
    // The deadline runs from the request's arrival, parsing included.
    let deadline = tokio::time::Instant::now() + state.opts.deadline;
    let body = match body {
        Ok(body) => body,
        Err(rejection) => return body_rejection(rejection, state.opts.body_timeout),
    };
    let (records, top_k) = match parse_request(&body, &state.opts) {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    // A slot, or 503 at once: the work a server holds is bounded, not a growing queue.
    let Ok(permit) = state.in_flight.clone().try_acquire_owned() else {
        return busy(format!("{} requests are being predicted; retry shortly", state.opts.max_in_flight));
    };
    let n = records.len();
    let texts = match records.iter().enumerate().map(|(i, r)| state.engine.input.text_of_fields(&r.fields).map_err(|e| (i, e))).collect() {
        Ok(texts) => texts,
        Err((i, e)) => return error(StatusCode::UNPROCESSABLE_ENTITY, format!("record {i}: {}: {}", e.kind, e.reason)),
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    if state.jobs.send(Job { records, texts, top_k, _permit: permit, reply }).is_err() {
        return error(StatusCode::INTERNAL_SERVER_ERROR, "the prediction worker has stopped");
    }
    // Past the deadline the job still finishes in the background, holding its in-flight slot.
    // `timeout_at` polls the answer before the clock, so an answer that is ready only after the
    // deadline is refused too: the deadline is a promise about when answers are sent.
    let waited = tokio::time::timeout_at(deadline, answer).await;
    let past_deadline = tokio::time::Instant::now() >= deadline;
    match waited {
        Ok(Ok(Ok(predictions))) if !past_deadline => {
            state.metrics.records.inc_by(n as u64);
            let model = json!({ "id": state.model_id, "method": state.engine.model.method() });
            axum::Json(json!({ "model": model, "predictions": predictions })).into_response()
        }
        Ok(Ok(Err(e))) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("prediction failed: {e:#}")),
        Ok(Err(_)) => error(StatusCode::INTERNAL_SERVER_ERROR, "prediction failed: the worker dropped the request"),
        Ok(Ok(Ok(_))) | Err(_) => busy(format!("not answered within the deadline of {:.1} s; retry, or send fewer records", state.opts.deadline.as_secs_f64())),
    }
}

async fn health_handler(State(state): State<Arc<AppState>>) -> Response {
    let model = &state.engine.model;
    axum::Json(json!({
        "status": "ok",
        "model": { "id": state.model_id, "method": model.method(), "path": state.name },
        "labels": model.labels().len(),
        "max_batch": state.opts.max_batch,
        "max_top_k": state.opts.max_top_k,
        "in_flight": state.opts.max_in_flight - state.in_flight.available_permits(),
    }))
    .into_response()
}

async fn metrics_handler(State(state): State<Arc<AppState>>) -> Response {
    let mut response = state.metrics.encode().into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"));
    response
}

/// Counts every response (413s from the body limit and 404s included) by status, with its latency.
async fn count_responses(State(state): State<Arc<AppState>>, request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let started = Instant::now();
    let response = next.run(request).await;
    state.metrics.observe(response.status().as_u16(), started.elapsed());
    response
}

async fn fallback() -> Response {
    error(StatusCode::NOT_FOUND, "unknown route: use GET /health, GET /metrics or POST /predict")
}

/// The router over a loaded model; `model_id` names it in answers and metrics.
pub fn router(model: Predictor, input: ModelInput, name: String, model_id: String, opts: ServeOptions) -> Result<Router> {
    let (limit, body_timeout) = (opts.max_body_bytes, opts.body_timeout);
    let threads = xmc_train::default_threads();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("xmc-serve-{i}"))
        .build()
        .with_context(|| format!("starting {threads} prediction threads"))?;
    anyhow::ensure!(opts.max_in_flight >= 1, "max_in_flight must be at least 1");
    anyhow::ensure!(
        (1..=limits::MAX_TOP_K).contains(&opts.max_top_k) && (1..=opts.max_top_k).contains(&opts.top_k),
        "max_top_k ({}) must be between 1 and {}, and top_k ({}) between 1 and max_top_k",
        opts.max_top_k,
        limits::MAX_TOP_K,
        opts.top_k
    );
    let metrics = crate::serve_metrics::ServeMetrics::new(&model_id, model.method());
    let in_flight = Arc::new(tokio::sync::Semaphore::new(opts.max_in_flight));
    let engine = Arc::new(Engine { model, input, pool });
    let (jobs, queue) = std::sync::mpsc::channel();
    let (batcher, wait, max_records) = (engine.clone(), opts.batch_wait, opts.batch_records.max(1));
    std::thread::Builder::new()
        .name("xmc-serve-batcher".into())
        .spawn(move || run_batcher(batcher, queue, wait, max_records))
        .context("starting the batching thread")?;
    let state = Arc::new(AppState { engine, jobs, name, model_id, opts, in_flight, metrics });
    Ok(Router::new()
        .route("/health", get(health_handler))
        .route("/predict", post(predict_handler))
        .route("/metrics", get(metrics_handler))
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(limit))
        .layer(tower_http::timeout::RequestBodyTimeoutLayer::new(body_timeout))
        .layer(axum::middleware::from_fn_with_state(state.clone(), count_responses))
        .with_state(state))
}

/// A running server: its address, and a handle that stops it when dropped.
pub struct Server {
    pub addr: SocketAddr,
    pub model_id: String,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Stops accepting connections, lets the requests in flight finish, and returns when done.
    pub fn shutdown(mut self) {
        self.stop();
    }

    /// Blocks until the server stops (on SIGTERM or Ctrl-C when started with signals).
    pub fn wait(mut self) {
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }

    fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The bounds on connections (see the module's documentation).
#[derive(Debug, Clone, Copy)]
struct ConnectionLimits {
    max_connections: usize,
    header_timeout: Duration,
    drain: Duration,
}

impl ConnectionLimits {
    fn of(opts: &ServeOptions) -> Self {
        ConnectionLimits { max_connections: opts.max_connections.max(1), header_timeout: opts.header_timeout, drain: opts.drain }
    }
}

/// Accepts connections until `stop` resolves, each served by hyper with the header timeout and
/// counted against the connection cap; then lets the open ones finish their requests for up to
/// the drain time.
async fn serve_connections(listener: tokio::net::TcpListener, app: Router, limits: ConnectionLimits, stop: impl std::future::Future<Output = ()>) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections));
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(hyper_util::rt::TokioTimer::new()).header_read_timeout(limits.header_timeout);
    tokio::pin!(stop);
    loop {
        // A free slot first: past the cap, clients wait in the backlog instead of holding sockets.
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = &mut stop => break,
        };
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait for connections to close.
                    tracing::warn!("accepting a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = &mut stop => break,
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        let connection = graceful.watch(http.serve_connection(hyper_util::rt::TokioIo::new(stream), service));
        tokio::spawn(async move {
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    let open = limits.max_connections - slots.available_permits();
    if tokio::time::timeout(limits.drain, graceful.shutdown()).await.is_err() {
        let left = limits.max_connections - slots.available_permits();
        eprintln!("the drain time of {:.1} s is over: closing {left} of {open} connections", limits.drain.as_secs_f64());
    }
}

/// Resolves on SIGTERM or Ctrl-C (SIGINT).
async fn termination() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// Loads `model_dir` and serves it on `addr` (port 0 picks a free port) from a background thread.
/// With `on_signals`, SIGTERM and Ctrl-C stop it gracefully too.
pub fn start(model_dir: &std::path::Path, addr: SocketAddr, opts: ServeOptions) -> Result<Server> {
    start_with(model_dir, addr, opts, false)
}

fn start_with(model_dir: &std::path::Path, addr: SocketAddr, opts: ServeOptions, on_signals: bool) -> Result<Server> {
    let model = Predictor::load(model_dir)?;
    let dataset = opts.dataset.clone().unwrap_or_else(|| model_dir.join(xmc_methods::DATASET_FILE));
    let descriptor = xmc_data::DatasetDescriptor::load(&dataset)
        .with_context(|| format!("loading the dataset descriptor {} (name one with --dataset)", dataset.display()))?;
    let input = model.input(descriptor);
    let name = model_dir.display().to_string();
    let model_id = xmc_pipeline::fingerprint::folder_sha256(model_dir)?[..16].to_string();
    let connections = ConnectionLimits::of(&opts);
    let app = router(model, input, name, model_id.clone(), opts)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind(addr)).with_context(|| format!("binding {addr}"))?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        runtime.block_on(async move {
            let stop = async move {
                if on_signals {
                    tokio::select! {
                        _ = rx => {}
                        _ = termination() => eprintln!("stopping: finishing the requests in flight"),
                    }
                } else {
                    let _ = rx.await;
                }
            };
            serve_connections(listener, app, connections, stop).await;
        });
        // Dropping the runtime here cancels the connections the drain left open.
    });
    Ok(Server { addr, model_id, shutdown: Some(tx), thread: Some(thread) })
}

#[derive(Debug, clap::Args)]
pub struct ServeArgs {
    /// A trained model folder (e.g. experiments/<name>/train).
    #[arg(long)]
    pub model: PathBuf,
    #[arg(long, default_value_t = 8080)]
    pub port: u16,
    /// Address to listen on (127.0.0.1: this machine only; 0.0.0.0: every interface).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: std::net::IpAddr,
    /// Most records in one request (1 to 100,000).
    #[arg(long, default_value_t = 256, value_parser = count(1, 100_000))]
    pub max_batch: usize,
    /// Largest request body in bytes (1 to 2^30).
    #[arg(long, default_value_t = 1 << 20, value_parser = count(1, 1 << 30))]
    pub max_body_bytes: usize,
    /// Labels returned per record when the request does not say (1 to --max-top-k).
    #[arg(long, default_value_t = 5, value_parser = count(1, limits::MAX_TOP_K))]
    pub top_k: usize,
    /// The largest `top_k` a request may ask for (1 to 1000; larger requests get 422).
    #[arg(long, default_value_t = 100, value_parser = count(1, limits::MAX_TOP_K))]
    pub max_top_k: usize,
    /// The longest text field of a record, in bytes (1 to 2^24; longer ones get 422).
    #[arg(long, default_value_t = 16 << 10, value_parser = count(1, 1 << 24))]
    pub max_text_bytes: usize,
    /// Prediction requests running at once (1 to 100,000); more get 503 with Retry-After.
    #[arg(long, default_value_t = 64, value_parser = count(1, 100_000))]
    pub max_in_flight: usize,
    /// Seconds a request may take before it gets 503 (more than 0, at most 86,400).
    #[arg(long, default_value_t = 30.0, value_parser = Span::positive(86_400.0))]
    pub deadline_secs: f64,
    /// Dynamic batching: milliseconds to wait for more requests to predict together (0 to
    /// 10,000; 0: batch only what is already waiting).
    #[arg(long, default_value_t = 2.0, value_parser = Span::non_negative(10_000.0))]
    pub batch_wait_ms: f64,
    /// Most records predicted together by dynamic batching (1 to 100,000).
    #[arg(long, default_value_t = 32, value_parser = count(1, 100_000))]
    pub batch_records: usize,
    /// Connections open at once (1 to 1,000,000); further clients wait in the listen backlog.
    #[arg(long, default_value_t = 1024, value_parser = count(1, 1_000_000))]
    pub max_connections: usize,
    /// Seconds a connection may take to send a request's headers before it is closed (more
    /// than 0, at most 3,600).
    #[arg(long, default_value_t = 10.0, value_parser = Span::positive(3_600.0))]
    pub header_timeout_secs: f64,
    /// Seconds a request body may stall between two pieces before the request gets 408 (more
    /// than 0, at most 3,600).
    #[arg(long, default_value_t = 10.0, value_parser = Span::positive(3_600.0))]
    pub body_timeout_secs: f64,
    /// After SIGTERM or Ctrl-C: seconds the requests in flight may take before the remaining
    /// connections are closed (0 to 3,600); the process exits 0 either way.
    #[arg(long, default_value_t = 30.0, value_parser = Span::non_negative(3_600.0))]
    pub drain_secs: f64,
    /// The dataset descriptor whose cleaning rules (and default store name) apply to the records
    /// (default: the one the model was trained with, `<model>/dataset.toml`).
    #[arg(long)]
    pub dataset: Option<PathBuf>,
}

pub fn serve(args: ServeArgs) -> Result<std::process::ExitCode> {
    let opts = ServeOptions {
        max_batch: args.max_batch,
        max_body_bytes: args.max_body_bytes,
        top_k: args.top_k,
        max_top_k: args.max_top_k,
        max_text_bytes: args.max_text_bytes,
        max_in_flight: args.max_in_flight,
        deadline: Duration::from_secs_f64(args.deadline_secs),
        batch_wait: Duration::from_secs_f64(args.batch_wait_ms / 1e3),
        batch_records: args.batch_records,
        dataset: args.dataset,
        max_connections: args.max_connections,
        header_timeout: Duration::from_secs_f64(args.header_timeout_secs),
        body_timeout: Duration::from_secs_f64(args.body_timeout_secs),
        drain: Duration::from_secs_f64(args.drain_secs),
    };
    let server = start_with(&args.model, SocketAddr::new(args.host, args.port), opts, true)?;
    eprintln!(
        "serving {} (model {}) on http://{} (GET /health, GET /metrics, POST /predict); SIGTERM or Ctrl-C stops",
        args.model.display(),
        server.model_id,
        server.addr
    );
    server.wait();
    eprintln!("stopped");
    Ok(std::process::ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn json_like() -> impl Strategy<Value = Vec<u8>> {
        let value = prop_oneof![
            Just("\"Hornby coach\"".to_string()),
            Just("\"\"".to_string()),
            "-?[0-9]{1,12}(\\.[0-9]{1,3})?".prop_map(String::from),
            Just("null".to_string()),
            Just("[]".to_string()),
            Just("{}".to_string()),
            Just("[{\"title\": \"a\"}, {\"title\": 3}]".to_string()),
        ];
        let key = prop_oneof![
            Just("title"), Just("top_k"), Just("records"), Just("price"), Just("id"), Just("store"), Just("colour"), Just("description")
        ];
        let object = proptest::collection::vec((key, value), 0..6)
            .prop_map(|kv| format!("{{{}}}", kv.iter().map(|(k, v)| format!("\"{k}\": {v}")).collect::<Vec<_>>().join(", ")).into_bytes());
        prop_oneof![object, proptest::collection::vec(any::<u8>(), 0..64)]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Any body ends in records or in a 4xx answer with a JSON message; never a panic.
        #[test]
        fn request_bodies_never_panic(body in json_like()) {
            let opts = ServeOptions { max_batch: 4, max_top_k: 10, ..ServeOptions::default() };
            match parse_request(&body, &opts) {
                Ok((records, top_k)) => {
                    prop_assert!(!records.is_empty() && records.len() <= 4);
                    prop_assert!((1..=10).contains(&top_k));
                    prop_assert!(records.iter().all(|r| !r.fields.title.trim().is_empty()));
                }
                Err(response) => prop_assert!(response.status().is_client_error(), "{}", response.status()),
            }
        }
    }
}
