//! A training run killed mid-way (the process, SIGKILL) and resumed with `--resume` ends with the
//! weights, curve and predictions of the run that was never interrupted; a checkpoint of another
//! configuration is refused.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn xmc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xmc"))
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

const EPOCHS: usize = 5;

/// The tiny T5 on the bundled sample, with dropout on (the default 0.1) and the default linear
/// schedule, whose warm-up ends inside the first epoch and whose decay runs over all five.
fn write_config(dir: &Path) -> PathBuf {
    let text = format!(
        "name = \"straight\"\noutput_dir = {:?}\n[data]\ndataset = {:?}\n[embed]\nencoder_dir = {:?}\n\
         [model]\npreset = \"tiny\"\nvocab_size = 400\nbeam_width = 3\ntop_k = 3\n\
         [train]\nmax_epochs = {EPOCHS}\nbatch_size = 64\nlearning_rate = 0.003\nwarmup_steps = 20\npatience = {EPOCHS}\n",
        dir.join("experiments").display().to_string(),
        repo_root().join("datasets/amazon-uk-sample.toml").display().to_string(),
        repo_root().join("crates/xmc-model/tests/fixtures/tiny-bert").display().to_string(),
    );
    let path = dir.join("exp.toml");
    std::fs::write(&path, text).unwrap();
    path
}

fn experiment(config: &Path, extra: &[&str]) -> std::process::Output {
    xmc().arg("experiment").arg(config).args(extra).output().unwrap()
}

/// `epochs_done` of a checkpoint's state, once the state exists.
fn epochs_done(state: &Path) -> Option<usize> {
    let value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(state).ok()?).ok()?;
    value["epochs_done"].as_u64().map(|e| e as usize)
}

/// The metrics lines without their timings.
fn curve(run: &Path) -> Vec<serde_json::Value> {
    let text = std::fs::read_to_string(run.join("train/metrics.jsonl")).unwrap();
    text.lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("seconds");
            o.remove("records_per_s");
            v
        })
        .collect()
}

#[test]
fn a_killed_training_run_resumes_to_the_uninterrupted_weights() {
    let tmp = tempfile::tempdir().unwrap();
    let config = write_config(tmp.path());
    let out = experiment(&config, &[]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let runs = tmp.path().join("experiments");

    // Kill the second run's process once its first epoch is checkpointed.
    let mut child = xmc().arg("experiment").arg(&config).args(["--set", "name=\"killed\""]).stderr(Stdio::null()).spawn().unwrap();
    let state = runs.join("killed/train.partial/checkpoint/state.json");
    let started = Instant::now();
    while epochs_done(&state).is_none() {
        assert!(child.try_wait().unwrap().is_none(), "the run ended before it could be killed");
        assert!(started.elapsed() < Duration::from_secs(900), "no checkpoint after 15 minutes");
        std::thread::sleep(Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let killed_after = epochs_done(&state).unwrap();
    assert!((1..EPOCHS).contains(&killed_after), "killed after epoch {killed_after}");
    assert!(!runs.join("killed/train").exists(), "an interrupted stage must not look finished");

    // A checkpoint of another configuration is refused, and kept.
    let out = experiment(&config, &["--set", "name=\"killed\"", "--set", "train.learning_rate=0.002", "--resume"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && err.contains("differs from this one in: configuration"), "{err}");
    assert_eq!(epochs_done(&state), Some(killed_after));

    let out = experiment(&config, &["--set", "name=\"killed\"", "--resume"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let (straight, killed) = (runs.join("straight"), runs.join("killed"));
    for file in ["train/tokenizer.json", "train/model.bpk", "predict/predictions.jsonl"] {
        let same = std::fs::read(straight.join(file)).unwrap() == std::fs::read(killed.join(file)).unwrap();
        assert!(same, "{file} of the run killed after epoch {killed_after} and resumed differs from the uninterrupted run's");
    }
    assert_eq!(curve(&straight), curve(&killed));
    assert_eq!(curve(&killed).len(), EPOCHS);
}
