//! `xmc serve` driven over loopback: a tiny model trained on the bundled sample, then real HTTP
//! requests, good and bad.

use std::process::ExitCode;

use serde_json::Value;
use xmc_e2e::{http, repo_root, xmc};

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
    let opts = xmc::serve::ServeOptions { max_batch: 4, max_body_bytes: 4096, top_k: 2, max_top_k: 10 };
    let server = xmc::serve::start(&model_dir, "127.0.0.1:0".parse().unwrap(), opts).unwrap();
    let addr = server.addr;
    let labels = xmc_data::LabelSet::load(&model_dir).unwrap();
    let known = |p: &str| labels.labels.iter().any(|l| l.path == p);

    let (status, body) = http(addr, "GET", "/health", "");
    assert_eq!(status, 200, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["labels"].as_u64().unwrap() as usize, labels.len());

    // One record.
    let (status, body) = http(addr, "POST", "/predict", r#"{"title": "Hornby 00 Gauge Coach", "store": "Amazon UK", "price": 24.99}"#);
    assert_eq!(status, 200, "{body}");
    let out: Value = serde_json::from_str(&body).unwrap();
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

    // Bad requests get a 4xx with a message, and the server keeps serving.
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
}

#[test]
fn a_missing_model_folder_is_refused_before_listening() {
    let err = xmc::serve::start(std::path::Path::new("/nonexistent/model"), "127.0.0.1:0".parse().unwrap(), Default::default())
        .err()
        .expect("refused");
    assert!(format!("{err:#}").contains("/nonexistent/model"), "{err:#}");
}
