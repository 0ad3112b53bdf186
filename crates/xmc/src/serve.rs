//! `xmc serve`: an HTTP JSON API over a trained model folder, loaded once.
//!
//! - `GET /health`: `{"status": "ok", "model": ..., "labels": n, "mode": ...}`.
//! - `POST /predict`: one record (`{"title": ..., "store": ..., "price": ...}`) or a batch
//!   (`{"records": [...], "top_k": 3}`); returns `{"predictions": [{"id", "path", "score",
//!   "top_k": [{"path", "score"}]}]}` in request order.
//!
//! Bad JSON, a record without a title, a wrong field type, too many records or too large a body
//! get a 4xx with `{"error": message}`. Requests predict concurrently in one rayon pool of
//! `XMC_PREDICT_THREADS` threads (default one per core): on the CPU backend a small batch keeps
//! about one core busy, and the backend's parallel matmuls share the same pool.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::{Value, json};
use xmc_data::ProductRecord;
use crate::predictor::Predictor;

/// Limits and defaults of a server.
#[derive(Debug, Clone)]
pub struct ServeOptions {
    pub max_batch: usize,
    pub max_body_bytes: usize,
    pub top_k: usize,
    /// The largest `top_k` a request may ask for (it widens the search's beam).
    pub max_top_k: usize,
}

impl Default for ServeOptions {
    fn default() -> Self {
        ServeOptions { max_batch: 256, max_body_bytes: 1 << 20, top_k: 5, max_top_k: 100 }
    }
}

struct AppState {
    model: Predictor,
    pool: rayon::ThreadPool,
    name: String,
    opts: ServeOptions,
}

/// One record as a client sends it; only `title` is required.
#[derive(Debug)]
struct RecordIn {
    id: Option<Value>,
    title: String,
    description: Option<String>,
    store: Option<String>,
    manufacturer: Option<String>,
    brand: Option<String>,
    price: Option<f64>,
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
        .map(|(i, item)| record_from_json(item).map_err(|m| error(StatusCode::UNPROCESSABLE_ENTITY, format!("record {i}: {m}"))))
        .collect::<Result<Vec<_>, Response>>()?;
    Ok((records, top_k))
}

const TEXT_FIELDS: [&str; 4] = ["description", "store", "manufacturer", "brand"];

/// A record from its JSON object, naming the field that is missing, unknown or of the wrong type.
fn record_from_json(item: Value) -> Result<RecordIn, String> {
    let Value::Object(mut fields) = item else { return Err("a record must be a JSON object".into()) };
    let title = match fields.remove("title") {
        Some(Value::String(t)) if !t.trim().is_empty() => t,
        Some(Value::String(_)) => return Err("`title` is empty".into()),
        Some(_) => return Err("`title` must be a string".into()),
        None => return Err("`title` is missing (it is the one required field)".into()),
    };
    let mut text = |name: &str| match fields.remove(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(format!("`{name}` must be a string")),
    };
    let [description, store, manufacturer, brand] = TEXT_FIELDS.map(|f| text(f));
    let price = match fields.remove("price") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => n.as_f64(),
        Some(_) => return Err("`price` must be a number".into()),
    };
    let id = fields.remove("id");
    if let Some(key) = fields.keys().next() {
        return Err(format!("unknown field `{key}` (known: id, title, {}, price)", TEXT_FIELDS.join(", ")));
    }
    Ok(RecordIn { id, title, description: description?, store: store?, manufacturer: manufacturer?, brand: brand?, price })
}

fn product(record: &RecordIn) -> ProductRecord {
    ProductRecord {
        title: record.title.clone(),
        description: record.description.clone(),
        store: record.store.clone(),
        manufacturer: record.manufacturer.clone(),
        brand: record.brand.clone(),
        price: record.price,
        ..ProductRecord::default()
    }
}

fn predict(state: &AppState, records: &[RecordIn], top_k: usize) -> Result<Vec<PredictionOut>> {
    state.pool.install(|| predict_in_pool(&state.model, records, top_k))
}

fn predict_in_pool(model: &Predictor, records: &[RecordIn], top_k: usize) -> Result<Vec<PredictionOut>> {
    let texts: Vec<String> = records.iter().map(|r| model.template().render(&product(r))).collect();
    let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
    let beam = model.default_beam().max(top_k);
    let ranked = model.predict_texts(&refs, beam, top_k, |_| {})?;
    let path = |l: u32| model.labels().get(l).map(|l| l.path.clone()).unwrap_or_default();
    Ok(records
        .iter()
        .zip(ranked)
        .enumerate()
        .map(|(i, (r, h))| PredictionOut {
            id: r.id.clone().unwrap_or(json!(i)),
            path: h.first().map(|&(l, _)| path(l)),
            score: h.first().map(|&(_, s)| s),
            top_k: h.iter().map(|&(l, s)| Scored { path: path(l), score: s }).collect(),
        })
        .collect())
}

async fn predict_handler(State(state): State<Arc<AppState>>, body: Bytes) -> Response {
    let (records, top_k) = match parse_request(&body, &state.opts) {
        Ok(parsed) => parsed,
        Err(response) => return response,
    };
    let worker = state.clone();
    match tokio::task::spawn_blocking(move || predict(&worker, &records, top_k)).await {
        Ok(Ok(predictions)) => axum::Json(json!({ "predictions": predictions })).into_response(),
        Ok(Err(e)) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("prediction failed: {e:#}")),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, format!("prediction failed: {e}")),
    }
}

async fn health_handler(State(state): State<Arc<AppState>>) -> Response {
    let model = &state.model;
    axum::Json(json!({
        "status": "ok",
        "model": state.name,
        "labels": model.labels().len(),
        "method": model.method(),
        "max_batch": state.opts.max_batch,
    }))
    .into_response()
}

async fn fallback() -> Response {
    error(StatusCode::NOT_FOUND, "unknown route: use GET /health or POST /predict")
}

/// The router over a loaded model.
pub fn router(model: Predictor, name: String, opts: ServeOptions) -> Result<Router> {
    let limit = opts.max_body_bytes;
    let threads = xmc_train::default_threads();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("xmc-serve-{i}"))
        .build()
        .with_context(|| format!("starting {threads} prediction threads"))?;
    let state = Arc::new(AppState { model, pool, name, opts });
    Ok(Router::new()
        .route("/health", get(health_handler))
        .route("/predict", post(predict_handler))
        .fallback(fallback)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state))
}

/// A running server: its address, and a handle that stops it when dropped.
pub struct Server {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Loads `model_dir` and serves it on `addr` (port 0 picks a free port) from a background thread.
pub fn start(model_dir: &std::path::Path, addr: SocketAddr, opts: ServeOptions) -> Result<Server> {
    let model = Predictor::load(model_dir)?;
    let name = model_dir.display().to_string();
    let app = router(model, name, opts)?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let listener = runtime.block_on(tokio::net::TcpListener::bind(addr)).with_context(|| format!("binding {addr}"))?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::spawn(move || {
        runtime.block_on(async move {
            let _ = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = rx.await;
            })
            .await;
        });
    });
    Ok(Server { addr, shutdown: Some(tx), thread: Some(thread) })
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
    /// Most records in one request.
    #[arg(long, default_value_t = 256)]
    pub max_batch: usize,
    /// Largest request body in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_body_bytes: usize,
    /// Labels returned per record when the request does not say.
    #[arg(long, default_value_t = 5)]
    pub top_k: usize,
    /// The largest `top_k` a request may ask for (larger ones get 422).
    #[arg(long, default_value_t = 100)]
    pub max_top_k: usize,
}

pub fn serve(args: ServeArgs) -> Result<std::process::ExitCode> {
    let opts = ServeOptions { max_batch: args.max_batch, max_body_bytes: args.max_body_bytes, top_k: args.top_k, max_top_k: args.max_top_k };
    let server = start(&args.model, SocketAddr::new(args.host, args.port), opts)?;
    eprintln!("serving {} on http://{} (GET /health, POST /predict); Ctrl-C stops", args.model.display(), server.addr);
    loop {
        std::thread::park();
    }
}
