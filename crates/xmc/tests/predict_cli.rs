//! `xmc predict` as a user runs it, on the small model folders of `tests/fixtures/folders`:
//! every input format and the standard streams, bad rows and their rejects, numeric flags out of
//! range, and sharded reruns.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn xmc() -> Command {
    Command::new(env!("CARGO_BIN_EXE_xmc"))
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/folders")
}

fn model() -> PathBuf {
    fixtures().join("xr")
}

fn run(args: &[&str]) -> Output {
    xmc().args(args).output().unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// (id, top labels) of each JSON-lines prediction.
fn predictions(jsonl: &str) -> Vec<(String, Vec<String>)> {
    jsonl
        .lines()
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).unwrap();
            let labels = v["top_k"].as_array().unwrap().iter().map(|t| t[0].as_str().unwrap().to_string()).collect();
            (v["id"].as_str().unwrap().to_string(), labels)
        })
        .collect()
}

/// The first `n` products of the fixture input as (id, title, manufacturer, price) rows.
fn products(n: usize) -> Vec<[String; 4]> {
    let mut reader = csv::Reader::from_path(fixtures().join("input.csv")).unwrap();
    reader.records().take(n).map(|r| {
        let r = r.unwrap();
        [r[0].to_string(), r[1].to_string(), r[3].to_string(), r[4].to_string()]
    }).collect()
}

fn copy_folder(from: &Path, to: &Path) {
    for entry in walkdir::WalkDir::new(from) {
        let entry = entry.unwrap();
        let target = to.join(entry.path().strip_prefix(from).unwrap());
        if entry.file_type().is_dir() {
            std::fs::create_dir_all(&target).unwrap();
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

fn write_csv(path: &Path, rows: &[[String; 4]]) {
    let mut w = csv::Writer::from_path(path).unwrap();
    w.write_record(["id", "title", "manufacturer", "price"]).unwrap();
    for row in rows {
        w.write_record(row).unwrap();
    }
    w.flush().unwrap();
}

#[test]
fn every_input_format_and_the_standard_streams_give_the_same_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let rows = products(40);
    let csv_in = dir.path().join("in.csv");
    write_csv(&csv_in, &rows);
    let jsonl_in = dir.path().join("in.jsonl");
    let mut jsonl = String::new();
    for [id, title, manufacturer, price] in &rows {
        jsonl += &serde_json::json!({ "id": id, "title": title, "manufacturer": manufacturer, "price": price }).to_string();
        jsonl.push('\n');
    }
    std::fs::write(&jsonl_in, &jsonl).unwrap();
    let parquet_in = dir.path().join("in.parquet");
    {
        use polars::prelude::*;
        let column = |i: usize, name: &str| Column::new(name.into(), rows.iter().map(|r| r[i].as_str()).collect::<Vec<_>>());
        let mut df = DataFrame::new(rows.len(), vec![column(0, "id"), column(1, "title"), column(2, "manufacturer"), column(3, "price")]).unwrap();
        ParquetWriter::new(std::fs::File::create(&parquet_in).unwrap()).finish(&mut df).unwrap();
    }
    let model = model();
    let m = model.to_str().unwrap();
    let mut answers = Vec::new();
    for input in [&csv_in, &jsonl_in, &parquet_in] {
        let out = dir.path().join(format!("{}.out.jsonl", input.file_name().unwrap().to_string_lossy()));
        let done = run(&["predict", "--model", m, "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap(), "--top-k", "3"]);
        assert!(done.status.success(), "{}: {}", input.display(), stderr(&done));
        answers.push((input.display().to_string(), predictions(&std::fs::read_to_string(&out).unwrap())));
    }
    // Standard input to standard output, CSV and JSON lines.
    for (format, bytes) in [("csv", std::fs::read(&csv_in).unwrap()), ("jsonl", jsonl.clone().into_bytes())] {
        let mut child = xmc()
            .args(["predict", "--model", m, "--input", "-", "--input-format", format, "--output", "-", "--top-k", "3"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&bytes).unwrap();
        let done = child.wait_with_output().unwrap();
        assert!(done.status.success(), "stdin {format}: {}", stderr(&done));
        answers.push((format!("stdin {format}"), predictions(&String::from_utf8(done.stdout).unwrap())));
    }
    let (first_name, first) = &answers[0];
    assert_eq!(first.len(), rows.len());
    assert_eq!(first.iter().map(|(id, _)| id.as_str()).collect::<Vec<_>>(), rows.iter().map(|r| r[0].as_str()).collect::<Vec<_>>());
    for (name, answer) in &answers[1..] {
        assert_eq!(answer, first, "{name} differs from {first_name}");
    }
}

#[test]
fn a_json_lines_row_after_invalid_utf8_is_predicted_and_rejects_say_line_kind_and_reason() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.jsonl");
    std::fs::write(
        &input,
        b"{\"id\":\"a\",\"title\":\"Hornby coach\"}\n{\"id\":\"b\",\"title\":\"\xff\"}\n{\"id\":\"c\",\"title\":\"Lego car\"}\n{\"id\":\"d\",\"title\":\"Brio train\",\"price\":\"zz\"}\n{\"id\":\"e\",\"title\":\"\"}\n{\"id\":\"f\",\"title\":\"Barbie doll\"}\n",
    )
    .unwrap();
    let out = dir.path().join("out.jsonl");
    let done = run(&["predict", "--model", model().to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap(), "--skip-bad-rows"]);
    assert!(done.status.success(), "{}", stderr(&done));
    let ids: Vec<String> = predictions(&std::fs::read_to_string(&out).unwrap()).into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, ["a", "c", "f"], "every good row is predicted");
    let rejects: Vec<serde_json::Value> =
        std::fs::read_to_string(dir.path().join("out.jsonl.rejects.jsonl")).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let got: Vec<(u64, &str)> = rejects.iter().map(|r| (r["line"].as_u64().unwrap(), r["kind"].as_str().unwrap())).collect();
    assert_eq!(got, [(2, "malformed row"), (4, "bad price"), (5, "empty title")]);
    assert!(rejects[0]["reason"].as_str().unwrap().contains("invalid UTF-8"), "{rejects:?}");
    assert!(rejects[1]["reason"].as_str().unwrap().contains("`zz`"), "{rejects:?}");
    assert!(rejects[2]["reason"].as_str().unwrap().contains("title is empty"), "{rejects:?}");
    assert!(stderr(&done).contains("read 6 rows; wrote 3 predictions"), "{}", stderr(&done));
}

#[test]
fn numeric_flags_out_of_range_are_refused_with_the_flag_not_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    write_csv(&input, &products(3));
    let out = dir.path().join("out.jsonl");
    let m = model();
    let base = ["predict", "--model", m.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap()];
    for (flag, value) in [("--chunk-size", "1000000000000"), ("--chunk-size", "0"), ("--top-k", "0"), ("--top-k", "5000"), ("--beam-width", "100000000"), ("--threads", "0"), ("--threads", "100000")] {
        let arg = format!("{flag}={value}");
        let done = xmc().args(base).arg(&arg).output().unwrap();
        assert_eq!(done.status.code(), Some(2), "{arg}: {}", stderr(&done));
        let err = stderr(&done);
        assert!(err.contains(flag) && err.contains(value) && !err.contains("panicked"), "{arg}: {err}");
    }
    assert!(!out.exists());
    for arg in ["--deadline-secs=1e20", "--deadline-secs=0", "--header-timeout-secs=-1", "--drain-secs=NaN", "--max-connections=0", "--top-k=0", "--max-top-k=1000000"] {
        let done = run(&["serve", "--model", m.to_str().unwrap(), "--port", "0", arg]);
        assert_eq!(done.status.code(), Some(2), "{arg}: {}", stderr(&done));
        let (flag, value) = arg.split_once('=').unwrap();
        let err = stderr(&done);
        assert!(err.contains(flag) && err.contains(value) && !err.contains("panicked"), "{arg}: {err}");
    }
    // The limits the parsers share: inside them, the work is sized by the labels that exist.
    let done = run(&[&base[..], &["--top-k", "1000", "--beam-width", "1000"]].concat());
    assert!(done.status.success(), "{}", stderr(&done));
    let rows = predictions(&std::fs::read_to_string(&out).unwrap());
    let labels = xmc_data::LabelSet::load(&m).unwrap().len();
    assert!(rows.iter().all(|(_, top)| top.len() <= labels && !top.is_empty()), "at most every label once");
}

#[test]
fn a_sharded_rerun_redoes_the_shards_made_by_another_model_or_other_options() {
    let dir = tempfile::tempdir().unwrap();
    let shards = dir.path().join("shards");
    std::fs::create_dir(&shards).unwrap();
    let rows = products(20);
    write_csv(&shards.join("part-0.csv"), &rows[..10]);
    write_csv(&shards.join("part-1.csv"), &rows[10..]);
    // A copy of the model folder, so that it can be changed (retrained) between runs.
    let model = dir.path().join("model");
    copy_folder(&self::model(), &model);
    let out = dir.path().join("out");
    let predict = |top_k: &str| {
        let done = run(&["predict", "--model", model.to_str().unwrap(), "--input", shards.to_str().unwrap(), "--output", out.to_str().unwrap(), "--format", "jsonl", "--top-k", top_k]);
        assert!(done.status.success(), "{}", stderr(&done));
        stderr(&done)
    };
    let widths = || -> Vec<usize> {
        (0..2).flat_map(|i| predictions(&std::fs::read_to_string(out.join(format!("part-{i}.jsonl"))).unwrap())).map(|(_, top)| top.len()).collect()
    };
    assert!(predict("1").contains("2 shards: 0 done already, 2 to predict"));
    assert!(widths().iter().all(|&w| w == 1));
    let again = predict("5");
    assert!(again.contains("0 done already, 2 to predict") && again.contains("2 of them made by another model"), "{again}");
    assert!(widths().iter().all(|&w| w == 5), "the rerun with --top-k 5 rewrote both shards");
    assert!(predict("5").contains("2 done already, 0 to predict"));
    // A retrained model (here: another calibration) redoes them too.
    let calibration = model.join("calibration.json");
    let mut cal: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&calibration).unwrap()).unwrap();
    cal["temperature"] = serde_json::json!(cal["temperature"].as_f64().unwrap() * 2.0);
    std::fs::write(&calibration, cal.to_string()).unwrap();
    assert!(predict("5").contains("0 done already, 2 to predict"));
    // A changed input shard is redone alone.
    write_csv(&shards.join("part-1.csv"), &rows[12..]);
    let changed = predict("5");
    assert!(changed.contains("1 done already, 1 to predict"), "{changed}");
    assert_eq!(widths().len(), 18);
}

/// A copy of the fixture folder of `method` with the JSON number at `pointer` in `file` set to
/// `value`.
fn altered_folder(dir: &Path, method: &str, file: &str, pointer: &str, value: serde_json::Value) -> PathBuf {
    let to = dir.join(format!("{method}-{}", file.replace('/', "-")));
    copy_folder(&fixtures().join(method), &to);
    let path = to.join(file);
    let mut json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    *json.pointer_mut(pointer).unwrap_or_else(|| panic!("{file} has no {pointer}")) = value;
    std::fs::write(&path, json.to_string()).unwrap();
    to
}

/// Counts and sizes read from a model folder are checked against the folder's other files and
/// sane limits before they size anything: each case is an error naming the file and the field,
/// not an allocation failure (SIGABRT) or a panic.
#[test]
fn model_folder_numbers_are_checked_before_they_size_anything() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    write_csv(&input, &products(3));
    let huge = serde_json::json!(100_000_000_000_000u64);
    let cases: Vec<(&str, &str, &str, serde_json::Value, &[&str])> = vec![
        ("xr", "tree.json", "/n_labels", huge.clone(), &["tree.json", "n_labels"]),
        ("cluster-search", "tree.json", "/n_labels", huge.clone(), &["tree.json", "n_labels"]),
        ("xr", "xr.json", "/extra_trees", huge.clone(), &["xr.json", "extra_trees"]),
        ("generative", "t5.json", "/num_layers", huge.clone(), &["t5.json", "num_layers"]),
        ("generative", "t5.json", "/d_model", serde_json::json!(32007), &["t5.json", "model.bpk"]),
        ("generative", "t5.json", "/layer_norm_epsilon", serde_json::json!(0.0), &["t5.json", "layer_norm_epsilon"]),
        ("generative", "targets.json", "/0/0", serde_json::json!(7007), &["targets.json", "vocab"]),
        ("xr", "classifier-encoder/config.json", "/num_hidden_layers", huge.clone(), &["config.json", "num_hidden_layers"]),
        ("xr", "tfidf.json", "/blocks/0/analyzer/min", serde_json::json!(0), &["tfidf.json", "n-gram"]),
    ];
    for (method, file, pointer, value, says) in cases {
        let folder = altered_folder(dir.path(), method, file, pointer, value);
        let out = dir.path().join("out.jsonl");
        let done = run(&["predict", "--model", folder.to_str().unwrap(), "--input", input.to_str().unwrap(), "--output", out.to_str().unwrap()]);
        let err = stderr(&done);
        assert_eq!(done.status.code(), Some(1), "{method}/{file} {pointer}: {err}");
        assert!(says.iter().all(|s| err.contains(s)) && !err.contains("panicked"), "{method}/{file} {pointer}: {err}");
    }
}

/// Predictions of the fixture xr folder (its classifier's encoder is consulted) over the first
/// 60 fixture products, with `env` set; (status, stdout, stderr).
fn predict_with_env(env: &[(&str, &str)]) -> (bool, String, String) {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("in.csv");
    write_csv(&input, &products(60));
    let mut command = xmc();
    command.args(["predict", "--model"]).arg(model()).arg("--input").arg(&input).args(["--top-k", "3", "--output", "-"]);
    for (k, v) in env {
        command.env(k, v);
    }
    let out = command.output().unwrap();
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned(), stderr(&out))
}

/// Without ONNX Runtime's library the encoder runs in burn: the predictions are burn's, and
/// one log line says so and why; a runtime setting that does not exist is refused by name.
#[test]
fn without_the_runtime_library_the_encoder_falls_back_to_burn_with_one_log_line() {
    let (ok, burn, _) = predict_with_env(&[("XMC_ENCODER", "burn")]);
    assert!(ok);
    let (ok, fell_back, err) = predict_with_env(&[("XMC_ORT_LIB", "/nonexistent/libonnxruntime.so")]);
    assert!(ok, "{err}");
    assert_eq!(predictions(&fell_back), predictions(&burn), "the fallback predicts as burn does");
    let lines: Vec<&str> = err.lines().filter(|l| l.contains("runs in burn")).collect();
    assert_eq!(lines.len(), 1, "one log line: {err}");
    assert!(lines[0].contains("/nonexistent/libonnxruntime.so"), "the line names the library it tried: {}", lines[0]);
    let (ok, _, err) = predict_with_env(&[("XMC_ENCODER", "gpu")]);
    assert!(!ok && err.contains("XMC_ENCODER") && err.contains("gpu"), "{err}");
}
