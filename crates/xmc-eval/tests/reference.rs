//! Every metric against values computed by scikit-learn (and pyxclib's / hiclass's formulas) on
//! a small random table: `tests/fixtures/make_metric_fixtures.py` made `metrics_reference.json`.

use serde_json::Value;
use xmc_data::LabelSet;
use xmc_eval::{EvalConfig, Scored, evaluate};

fn close(name: &str, got: f64, want: &Value) {
    let want = want.as_f64().unwrap_or_else(|| panic!("{name}: not a number"));
    assert!((got - want).abs() < 1e-9, "{name}: got {got}, scikit-learn says {want}");
}

#[test]
fn metrics_match_the_reference_table() {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/metrics_reference.json")).unwrap();
    let fixture: Value = serde_json::from_str(&text).unwrap();
    let paths: Vec<Vec<String>> = serde_json::from_value(fixture["paths"].clone()).unwrap();
    let mut labels = LabelSet::from_paths(paths.iter().map(Vec::as_slice), 25);
    for (l, c) in labels.labels.iter_mut().zip(fixture["train_counts"].as_array().unwrap()) {
        l.train_count = c.as_u64().unwrap() as u32;
    }
    for (i, p) in paths.iter().enumerate() {
        assert_eq!(&labels.labels[i].levels, p, "label ids follow the fixture's order");
    }
    let codes: Vec<Vec<u32>> = serde_json::from_value(fixture["codes"].clone()).unwrap();
    let records: Vec<Scored> = serde_json::from_value(fixture["records"].clone()).unwrap();
    let m = evaluate(&labels, &records, Some(&codes), &EvalConfig::default());
    let e = &fixture["expected"];

    close("accuracy", m.accuracy, &e["accuracy"]);
    for (name, got) in [("macro", m.leaf.macro_avg), ("micro", m.leaf.micro_avg), ("weighted", m.leaf.weighted_avg)] {
        close(&format!("{name} precision"), got.precision, &e[name]["precision"]);
        close(&format!("{name} recall"), got.recall, &e[name]["recall"]);
        close(&format!("{name} f1"), got.f1, &e[name]["f1"]);
    }
    assert_eq!(m.leaf.classes as u64, e["classes"].as_u64().unwrap());
    close("tail accuracy", m.tail_accuracy.unwrap(), &e["tail_accuracy"]);
    let buckets = e["buckets"].as_array().unwrap();
    assert_eq!(m.buckets.len(), buckets.len());
    for (got, want) in m.buckets.iter().zip(buckets) {
        assert_eq!(got.bucket, want["bucket"].as_str().unwrap());
        assert_eq!(got.records as u64, want["records"].as_u64().unwrap(), "{}", got.bucket);
        match got.accuracy {
            Some(a) => close(&format!("bucket {}", got.bucket), a, &want["accuracy"]),
            None => assert!(want["accuracy"].is_null(), "{}", got.bucket),
        }
    }
    let levels = e["levels"].as_array().unwrap();
    assert_eq!(m.levels.len(), levels.len());
    for (got, want) in m.levels.iter().zip(levels) {
        assert_eq!(got.records as u64, want["records"].as_u64().unwrap());
        close(&format!("L{} accuracy", got.level), got.accuracy, &want["accuracy"]);
        close(&format!("L{} macro-F1", got.level), got.macro_f1, &want["macro_f1"]);
    }
    close("hierarchical precision", m.hierarchical.precision, &e["hierarchical"]["precision"]);
    close("hierarchical recall", m.hierarchical.recall, &e["hierarchical"]["recall"]);
    close("hierarchical f1", m.hierarchical.f1, &e["hierarchical"]["f1"]);
    for (got, want) in m.at_k.iter().zip(e["at_k"].as_array().unwrap()) {
        assert_eq!(got.k as u64, want["k"].as_u64().unwrap());
        close(&format!("P@{}", got.k), got.precision, &want["precision"]);
        close(&format!("nDCG@{}", got.k), got.ndcg, &want["ndcg"]);
        close(&format!("PSP@{}", got.k), got.psp, &want["psp"]);
    }
    let prefix = m.code_prefix.as_ref().unwrap();
    for (got, want) in prefix.iter().zip(e["code_prefix"].as_array().unwrap()) {
        assert_eq!(got.records as u64, want["records"].as_u64().unwrap());
        close(&format!("prefix {}", got.depth), got.accuracy, &want["accuracy"]);
    }
    // The unseen labels (training count 0) are reported with their test records.
    let unseen: usize = records.iter().filter(|r| labels.labels[r.truth as usize].train_count == 0).count();
    assert!(unseen > 0, "the fixture has unseen labels");
    assert_eq!(m.unseen.records, unseen);
    // The interval brackets the point estimate.
    let [lo, hi] = m.accuracy_ci.unwrap();
    assert!(lo <= m.accuracy && m.accuracy <= hi && lo < hi);
    let [lo, hi] = m.macro_f1_ci.unwrap();
    assert!(lo <= m.leaf.macro_avg.f1 + 0.05 && m.leaf.macro_avg.f1 <= hi + 0.05);
}

#[test]
fn report_writes_tables_and_plots() {
    let labels = LabelSet::from_paths([vec!["A".to_string(), "B".to_string()], vec!["A".to_string(), "C".to_string()]].iter().map(Vec::as_slice), 25);
    let records = vec![Scored { truth: 0, ranked: vec![0, 1] }, Scored { truth: 1, ranked: vec![0, 1] }];
    let m = evaluate(&labels, &records, None, &EvalConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let ctx = xmc_eval::ReportContext {
        name: "tiny".into(),
        method: "test".into(),
        facts: vec![("train time".into(), "1 s".into())],
        curve: vec![
            xmc_eval::EpochPoint { epoch: 1, train_loss: 2.0, valid_accuracy: 0.1 },
            xmc_eval::EpochPoint { epoch: 2, train_loss: 1.0, valid_accuracy: 0.5 },
        ],
        sections: vec![("Extra".into(), "| a | b |".into())],
    };
    let files = xmc_eval::write_report(dir.path(), &m, &ctx).unwrap();
    for f in &files {
        let bytes = std::fs::read(dir.path().join(f)).unwrap();
        assert!(!bytes.is_empty(), "{f} is empty");
        if f.ends_with(".png") {
            assert_eq!(&bytes[1..4], b"PNG", "{f} is a PNG");
        }
    }
    assert!(files.contains(&"training.png".to_string()));
    let md = std::fs::read_to_string(dir.path().join("report.md")).unwrap();
    assert!(md.contains("| accuracy (top 1) | 50.0"), "{md}");
    assert!(md.contains("| L1 | 2 | 50.0 |"), "{md}");
    assert_eq!(xmc_eval::Metrics::load(&dir.path().join("metrics.json")).unwrap(), m);
}

#[test]
fn baseline_check_fails_only_beyond_tolerance() {
    let labels = LabelSet::from_paths([vec!["A".to_string()], vec!["B".to_string()]].iter().map(Vec::as_slice), 25);
    let records = vec![Scored { truth: 0, ranked: vec![0] }, Scored { truth: 1, ranked: vec![0] }];
    let m = evaluate(&labels, &records, None, &EvalConfig::default());
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("b.json");
    let base = xmc_eval::Baseline::from_metrics(&m, "test", 0.05);
    base.save(&path).unwrap();
    let base = xmc_eval::Baseline::load(&path).unwrap();
    assert!(base.check(&m, &path).is_ok());
    let higher = xmc_eval::Baseline { accuracy: m.accuracy + 0.04, ..base.clone() };
    assert!(higher.check(&m, &path).is_ok(), "within tolerance");
    let higher = xmc_eval::Baseline { accuracy: m.accuracy + 0.06, ..base };
    let err = higher.check(&m, &path).unwrap_err().to_string();
    assert!(err.contains("accuracy: 0.5000") && !err.contains("macro-F1"), "{err}");
}
