//! `xmc serve` driven over loopback: a tiny model trained on the bundled sample, then real HTTP
//! requests, good and bad.

use std::process::ExitCode;

use serde_json::Value;
use xmc_e2e::{http, http_with_headers, repo_root, xmc};

fn train_tiny(dir: &std::path::Path) -> std::path::PathBuf {
    let config = format!(
        "name = \"srv\"\noutput_dir = {:?}\n[embed]\nkind = \"pifa\"\n[data]\ndataset = {:?}\n\
         [model]\npreset = \"tiny\"\nvocab_size = 400\nbeam_width = 3\ntop_k = 3\n[train]\nmax_epochs = 1\nbatch_size = 64\n",
        dir.join("experiments").display().to_string(),
        repo_root().join("datasets/amazon-uk-sample.toml").display().to_string()
    );
    let path = dir.join("srv.toml");
    std::fs::write(&path, config).unwrap();
    assert_eq!(xmc(&["experiment", path.to_str().unwrap()]).unwrap(), ExitCode::SUCCESS);
    dir.join("experiments/srv/train")
}

#[test]
fn serves_predictions_and_refuses_bad_requests() {
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = train_tiny(tmp.path());
    let opts = xmc::serve::ServeOptions { max_batch: 4, max_body_bytes: 4096, top_k: 2, max_top_k: 10, max_text_bytes: 1000, ..Default::default() };
    let server = xmc::serve::start(&model_dir, "127.0.0.1:0".parse().unwrap(), opts).unwrap();
    let addr = server.addr;
    let labels = xmc_data::LabelSet::load(&model_dir).unwrap();
    let known = |p: &str| labels.labels.iter().any(|l| l.path == p);

    let (status, body) = http(addr, "GET", "/health", "");
    assert_eq!(status, 200, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["labels"].as_u64().unwrap() as usize, labels.len());
    assert_eq!(health["model"]["method"], "generative");
    let model_id = health["model"]["id"].as_str().unwrap().to_string();
    assert_eq!(model_id, server.model_id);
    assert_eq!(model_id.len(), 16);

    // One record.
    let (status, body) = http(addr, "POST", "/predict", r#"{"title": "Hornby 00 Gauge Coach", "store": "Amazon UK", "price": 24.99}"#);
    assert_eq!(status, 200, "{body}");
    let out: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(out["model"]["id"], model_id.as_str(), "each answer names the model");
    let p = &out["predictions"][0];
    assert!(known(p["path"].as_str().unwrap()), "{p}");
    assert_eq!(p["top_k"].as_array().unwrap().len(), 2, "the server's default top_k");

    // A batch keeps order and ids, and agrees with the single-record answer.
    let batch = r#"{"top_k": 3, "records": [{"id": "a", "title": "Hornby 00 Gauge Coach", "store": "Amazon UK", "price": 24.99}, {"id": "b", "title": "Lego City fire station"}]}"#;
    let (status, body) = http(addr, "POST", "/predict", batch);
    assert_eq!(status, 200, "{body}");
    let out: Value = serde_json::from_str(&body).unwrap();
    let preds = out["predictions"].as_array().unwrap();
    assert_eq!(preds.len(), 2);
    assert_eq!((preds[0]["id"].as_str(), preds[1]["id"].as_str()), (Some("a"), Some("b")));
    assert_eq!(preds[0]["path"], p["path"]);
    for pred in preds {
        let top = pred["top_k"].as_array().unwrap();
        assert_eq!(top.len(), 3);
        assert!(top.iter().all(|t| known(t["path"].as_str().unwrap())));
    }

    // Requests in flight at once (they predict concurrently) get the sequential answer.
    let answers: Vec<Value> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..4)
            .map(|_| {
                scope.spawn(|| {
                    let (status, body) = http(addr, "POST", "/predict", batch);
                    assert_eq!(status, 200, "{body}");
                    serde_json::from_str::<Value>(&body).unwrap()
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for answer in answers {
        assert_eq!(answer["predictions"], out["predictions"]);
    }

    // Dynamic batching: concurrent requests with different titles and top_k, predicted together,
    // get what each gets alone (confidences are normalised over the beam's pool, not the
    // returned top); an answer given to the wrong request would differ.
    let titles = ["Lego City fire station", "Hornby 00 gauge coach", "Brio wooden railway bridge", "Barbie dream house", "Scalextric slot car", "Playmobil pirate ship"];
    let bodies: Vec<String> = titles.iter().enumerate().map(|(i, t)| format!(r#"{{"title": "{t}", "top_k": {}}}"#, 1 + 2 * (i % 2))).collect();
    let alone: Vec<Value> = bodies.iter().map(|b| serde_json::from_str(&http(addr, "POST", "/predict", b).1).unwrap()).collect();
    let distinct: std::collections::BTreeSet<String> = alone.iter().map(|a| a["predictions"].to_string()).collect();
    assert!(distinct.len() >= 4, "the titles get different answers: {alone:?}");
    let together: Vec<Value> = std::thread::scope(|scope| {
        let workers: Vec<_> = bodies.iter().map(|b| scope.spawn(move || http(addr, "POST", "/predict", b))).collect();
        workers.into_iter().map(|w| serde_json::from_str(&w.join().unwrap().1).unwrap()).collect()
    });
    for (i, answer) in together.iter().enumerate() {
        assert_eq!(answer["predictions"], alone[i]["predictions"], "request {i}");
    }
    assert_eq!(alone[0]["predictions"][0]["top_k"].as_array().unwrap().len(), 1);
    assert_eq!(alone[1]["predictions"][0]["top_k"].as_array().unwrap().len(), 3);

    // Bad requests get a 4xx with a message, and the server keeps serving.
    let long_description = format!(r#"{{"title": "Hornby coach", "description": "{}"}}"#, "d".repeat(1001));
    let cases = [
        ("{not json", 400, "not valid JSON"),
        ("[1, 2]", 400, "JSON object"),
        (r#"{"store": "Amazon UK"}"#, 422, "title"),
        (r#"{"title": "   "}"#, 422, "empty"),
        (r#"{"title": "x", "price": "cheap"}"#, 422, "price"),
        (r#"{"title": "x", "colour": "red"}"#, 422, "colour"),
        (r#"{"records": []}"#, 422, "empty"),
        (r#"{"records": [{"title":"a"},{"title":"b"},{"title":"c"},{"title":"d"},{"title":"e"}]}"#, 413, "at most 4"),
        (r#"{"title": "x", "top_k": 0}"#, 422, "top_k"),
        (r#"{"title": "Hornby coach", "top_k": 100000000}"#, 422, "top_k"),
        (&long_description, 422, "`description` is 1001 bytes long"),
    ];
    for (body, want, says) in cases {
        let (status, text) = http(addr, "POST", "/predict", body);
        assert_eq!(status, want, "{body} -> {text}");
        let err: Value = serde_json::from_str(&text).unwrap_or_else(|_| panic!("{body}: JSON error body, got {text}"));
        assert!(err["error"].as_str().unwrap().contains(says), "{body} -> {text}");
    }
    let big = format!(r#"{{"title": "{}"}}"#, "x".repeat(5000));
    let (status, _) = http(addr, "POST", "/predict", &big);
    assert_eq!(status, 413, "the body limit holds");
    let (status, _) = http(addr, "GET", "/nowhere", "");
    assert_eq!(status, 404);
    let (status, _) = http(addr, "GET", "/health", "");
    assert_eq!(status, 200, "still up after the bad requests");

    // Metrics count every answer by status, the records predicted, and name the model.
    let (status, metrics) = http(addr, "GET", "/metrics", "");
    assert_eq!(status, 200);
    let count = |status: u16| -> u64 {
        let key = format!("xmc_requests_total{{status=\"{status}\"}} ");
        metrics.lines().find_map(|l| l.strip_prefix(&key)).map_or(0, |v| v.trim().parse().unwrap())
    };
    assert_eq!(count(422), 8, "{metrics}");
    assert_eq!((count(400), count(413), count(404)), (2, 2, 1), "{metrics}");
    assert!(count(200) >= 15, "{metrics}");
    assert!(metrics.contains("xmc_records_predicted_total 23"), "1 + 2 + 4 x 2 + 6 + 6 records: {metrics}");
    assert!(metrics.contains(&format!("xmc_model_info{{id=\"{model_id}\",method=\"generative\"}} 1")), "{metrics}");

    // Graceful shutdown: a request in flight when the server is told to stop still gets its answer.
    std::thread::scope(|scope| {
        let pending = scope.spawn(|| http(addr, "POST", "/predict", batch));
        std::thread::sleep(std::time::Duration::from_millis(20));
        server.shutdown();
        let (status, body) = pending.join().unwrap();
        assert_eq!(status, 200, "{body}");
    });
    assert!(std::net::TcpStream::connect(addr).is_err(), "no longer listening");
}

/// A deadline too short to predict in: every request is answered 503 with Retry-After at once,
/// also when its answer is ready by the first look (the race seen in CI once), and the server
/// stays up.
#[test]
fn deadlines_get_503_with_retry_after() {
    let model_dir = repo_root().join("tests/fixtures/folders/generative");
    let opts = xmc::serve::ServeOptions { deadline: std::time::Duration::from_nanos(1), ..Default::default() };
    let server = xmc::serve::start(&model_dir, "127.0.0.1:0".parse().unwrap(), opts).unwrap();
    let batch = r#"{"top_k": 10, "records": [{"title": "Hornby coach"}, {"title": "Lego fire station"}, {"title": "Brio train"}, {"title": "Barbie doll"}]}"#;
    let answers: Vec<(u16, String, String)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..6).map(|_| scope.spawn(|| http_with_headers(server.addr, "POST", "/predict", batch))).collect();
        workers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    for (status, head, body) in &answers {
        assert_eq!(*status, 503, "{body}");
        assert!(head.contains("retry-after: 1"), "{head}");
        assert!(body.contains("deadline"), "{body}");
    }
    let (status, _) = http(server.addr, "GET", "/health", "");
    assert_eq!(status, 200);
}

/// `--max-in-flight 1`: while one request holds the only slot, another is answered 503 with
/// Retry-After at once (no queue grows); once the slot is free, it is answered.
#[test]
fn the_in_flight_limit_answers_503_with_retry_after_at_once() {
    let model_dir = repo_root().join("tests/fixtures/folders/generative");
    let opts = xmc::serve::ServeOptions { max_in_flight: 1, max_batch: 5000, max_body_bytes: 1 << 24, ..Default::default() };
    let server = xmc::serve::start(&model_dir, "127.0.0.1:0".parse().unwrap(), opts).unwrap();
    let addr = server.addr;
    // A request that takes about a second: 600 records, each searched with a beam of 100.
    let records: Vec<Value> = (0..600).map(|i| serde_json::json!({ "title": format!("Hornby coach number {i}") })).collect();
    let heavy = serde_json::json!({ "top_k": 100, "records": records }).to_string();
    let light = r#"{"title": "Lego fire station"}"#;
    std::thread::scope(|scope| {
        let worker = scope.spawn(|| http(addr, "POST", "/predict", &heavy));
        let started = std::time::Instant::now();
        loop {
            let health: Value = serde_json::from_str(&http(addr, "GET", "/health", "").1).unwrap();
            if health["in_flight"] == 1 {
                break;
            }
            assert!(started.elapsed() < std::time::Duration::from_secs(60), "the heavy request never held the slot");
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        let asked = std::time::Instant::now();
        let (status, head, body) = http_with_headers(addr, "POST", "/predict", light);
        assert_eq!(status, 503, "{body}");
        assert!(head.contains("retry-after: 1"), "{head}");
        assert!(body.contains("being predicted"), "{body}");
        assert!(asked.elapsed() < std::time::Duration::from_secs(1), "refused at once, not queued: {:?}", asked.elapsed());
        let (status, body) = worker.join().unwrap();
        assert_eq!(status, 200, "{body}");
    });
    assert_eq!(http(addr, "POST", "/predict", light).0, 200, "the slot is free again");
}

#[test]
fn a_missing_model_folder_is_refused_before_listening() {
    let err = xmc::serve::start(std::path::Path::new("/nonexistent/model"), "127.0.0.1:0".parse().unwrap(), Default::default())
        .err()
        .expect("refused");
    assert!(format!("{err:#}").contains("/nonexistent/model"), "{err:#}");
}

/// A server holds its model in memory: the folder it was loaded from can be replaced or removed
/// (a retraining writing to the same place) before the first request, and answers still come.
#[test]
fn a_served_model_does_not_read_its_folder_after_loading() {
    let tmp = tempfile::tempdir().unwrap();
    let model_dir = train_tiny(tmp.path());
    let server = xmc::serve::start(&model_dir, "127.0.0.1:0".parse().unwrap(), Default::default()).unwrap();
    std::fs::remove_dir_all(tmp.path().join("experiments")).unwrap();
    let (status, body) = http(server.addr, "POST", "/predict", r#"{"title": "Hornby 00 Gauge Coach"}"#);
    assert_eq!(status, 200, "{body}");
    let out: Value = serde_json::from_str(&body).unwrap();
    assert!(out["predictions"][0]["path"].is_string(), "{out}");
}

/// Options built in code are held to the command line's ranges: a `max_top_k` past
/// `xmc_methods::limits::MAX_TOP_K`, or a default `top_k` past `max_top_k`, is refused at start.
#[test]
fn options_out_of_range_are_refused_before_listening() {
    let model_dir = repo_root().join("tests/fixtures/folders/xr");
    for opts in [
        xmc::serve::ServeOptions { max_top_k: 5000, ..Default::default() },
        xmc::serve::ServeOptions { top_k: 20, max_top_k: 10, ..Default::default() },
    ] {
        let err = xmc::serve::start(&model_dir, "127.0.0.1:0".parse().unwrap(), opts).err().expect("refused");
        assert!(format!("{err:#}").contains("max_top_k"), "{err:#}");
    }
}
