//! Model folders written by older code still load and predict the same. `fixtures/folders/`
//! holds one tiny folder per method, trained on the bundled sample by the code before the
//! methods moved behind one trait (commit b6ac656, `make_folders.sh`), with what that code's
//! `xmc predict --top-k 3` wrote for `input.csv`. Today's code must give the same top labels in
//! the same order and the same confidences. They were made with the encoder in burn, so that
//! comparison runs with `XMC_ENCODER=burn`; on the fast path (the default: int8 through ONNX
//! Runtime) they must still load and agree on the top label for at least 99% of the records.

use std::path::PathBuf;
use std::process::ExitCode;

use xmc_e2e::{repo_root, xmc};
use xmc_methods::PredictionRow;

fn fixtures() -> PathBuf {
    repo_root().join("tests/fixtures/folders")
}

fn read_rows(path: &std::path::Path) -> Vec<PredictionRow> {
    xmc_methods::scoring::read_predictions(path).unwrap_or_else(|e| panic!("{}: {e:#}", path.display()))
}

/// The top label of each row of `xmc predict --top-k 3` of `folder` over the fixture input.
fn predict_top_labels(folder: &std::path::Path, method: &str) -> Vec<PredictionRow> {
    let tmp = tempfile::tempdir().unwrap();
    let out = tmp.path().join("predictions.jsonl");
    let input = fixtures().join("input.csv");
    let code = xmc(&["predict", "--model", folder.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap(), "--top-k", "3"]);
    assert_eq!(code.unwrap(), ExitCode::SUCCESS, "{method}");
    read_rows(&out)
}

// One test in this binary: it sets `XMC_ENCODER` for the predictions it makes in-process, one
// setting after the other.
#[test]
fn every_methods_old_folder_predicts_what_the_old_code_predicted() {
    // SAFETY: no other thread of this test binary reads the environment meanwhile.
    unsafe { std::env::set_var(xmc_model::fast_encoder::RUNTIME_ENV, "burn") };
    let registered = xmc_methods::registry::names();
    for method in ["generative", "xr", "fused", "cluster-search"] {
        assert!(registered.contains(&method), "{method} is no longer a method");
        let folder = fixtures().join(method);
        assert_eq!(xmc_methods::Predictor::load(&folder).unwrap().method(), method, "{}", folder.display());
        let tmp = tempfile::tempdir().unwrap();
        let out = tmp.path().join("predictions.jsonl");
        let input = fixtures().join("input.csv");
        let code = xmc(&["predict", "--model", folder.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap(), "--top-k", "3"]);
        assert_eq!(code.unwrap(), ExitCode::SUCCESS, "{method}");
        let (now, then) = (read_rows(&out), read_rows(&fixtures().join(format!("expected-{method}.jsonl"))));
        assert_eq!(now.len(), then.len(), "{method}: rows");
        assert!(now.len() >= 300, "{method}: the fixture predicts the whole input");
        let mut largest: f32 = 0.0;
        for (a, b) in now.iter().zip(&then) {
            assert_eq!(a.id, b.id, "{method}: row order");
            let labels = |r: &PredictionRow| r.top_k.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
            assert_eq!(labels(a), labels(b), "{method}: the top labels of {}", a.id);
            for ((_, x), (_, y)) in a.top_k.iter().zip(&b.top_k) {
                largest = largest.max((x - y).abs());
            }
        }
        assert!(largest <= 1e-6, "{method}: a confidence moved by {largest}");
    }
    // The same folders on the fast path, where the machine has ONNX Runtime's library.
    if !xmc_model::fast_encoder::available() {
        eprintln!("skipped the fast path: no ONNX Runtime library (run `cargo xtask fetch-models`)");
        return;
    }
    unsafe { std::env::set_var(xmc_model::fast_encoder::RUNTIME_ENV, "auto") };
    for method in ["xr", "fused", "cluster-search"] {
        let (now, then) = (predict_top_labels(&fixtures().join(method), method), read_rows(&fixtures().join(format!("expected-{method}.jsonl"))));
        assert_eq!(now.len(), then.len(), "{method}: rows");
        let same = now.iter().zip(&then).filter(|(a, b)| a.top_k[0].0 == b.top_k[0].0).count();
        eprintln!("{method}: the fast path agrees with burn on the top label of {same} of {} records", now.len());
        assert!(same * 100 >= now.len() * 99, "{method}: the fast path agrees on {same} of {} top labels", now.len());
    }
}
