//! The data stage on small files written by the tests: every format, every error, the artifact.

use std::path::{Path, PathBuf};

use xmc_data::{DataConfig, DataError, DatasetDescriptor, PreparedData, Split, prepare};

const HEADER: &str = "id,title,description,manufacturer,price,category_path\r\n";

fn descriptor(dir: &Path, file: &str, extra: &str) -> DatasetDescriptor {
    let text = format!(
        "name = \"t\"\npath = \"{file}\"\nrelative_to = \"descriptor\"\nstore_name = \"Shop\"\n{extra}\n[columns]\nid = \"id\"\ntitle = \"title\"\ndescription = \"description\"\nmanufacturer = \"manufacturer\"\nprice = \"price\"\ncategory_path = \"category_path\"\n[cleaning]\npath_separator = \" > \"\nunlabelled = \"skip\"\n"
    );
    let path = dir.join("d.toml");
    std::fs::write(&path, text).unwrap();
    DatasetDescriptor::load(&path).unwrap()
}

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path
}

fn rows(n: usize) -> String {
    let mut s = String::from(HEADER);
    for i in 0..n {
        let cat = if i % 3 == 0 { "Toys > Trains" } else { "Toys > Dolls > Accessories" };
        s.push_str(&format!("id{i},Item {i},,Maker,£{i}.50,{cat}\r\n"));
    }
    s
}

#[test]
fn csv_with_quoted_multiline_fields_prepares_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = rows(30);
    text.push_str("q1,\"A, quoted \"\"title\"\"\",\"two\r\nlines\",M,,\"Games > Cards\"\r\n");
    text.push_str("q2,No category,,M,£1.00,\r\n");
    write(dir.path(), "p.csv", &text);
    let desc = descriptor(dir.path(), "p.csv", "");
    let prepared = prepare(&desc, &DataConfig::default()).unwrap();
    assert_eq!(prepared.stats.rows_read, 32);
    assert_eq!(prepared.records.len(), 31);
    assert_eq!(prepared.stats.skipped_by_kind.get("no category path"), Some(&1));
    assert_eq!(prepared.stats.skipped_examples[0].line, 34, "a record after a two-line field starts on line 34");
    let quoted = prepared.records.iter().find(|r| r.record.id == "q1").unwrap();
    assert_eq!(quoted.record.title, "A, quoted \"title\"");
    assert_eq!(quoted.record.description.as_deref(), Some("two lines"));
    assert_eq!(quoted.input, "Retailer: Shop Price:  Description: A, quoted \"title\"");
    assert_eq!(prepared.labels.len(), 3);
    assert_eq!(prepared.stats.nodes_per_level, vec![2, 3, 1]);
    // Every record's label is its own cleaned path.
    for r in &prepared.records {
        assert_eq!(prepared.labels.get(r.label).unwrap().levels, r.record.category);
    }
}

#[test]
fn the_artifact_round_trips_exactly() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "p.csv", &rows(40));
    let prepared = prepare(&descriptor(dir.path(), "p.csv", ""), &DataConfig::default()).unwrap();
    let out = dir.path().join("out");
    prepared.save(&out).unwrap();
    let loaded = PreparedData::load(&out).unwrap();
    assert_eq!(loaded, prepared);
    assert!(loaded.split(Split::Train).count() >= 2);
}

#[test]
fn two_runs_give_byte_identical_artifacts() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "p.csv", &rows(50));
    let desc = descriptor(dir.path(), "p.csv", "");
    for name in ["a", "b"] {
        prepare(&desc, &DataConfig::default()).unwrap().save(&dir.path().join(name)).unwrap();
    }
    for file in [xmc_data::RECORDS_FILE, xmc_data::LABELS_FILE] {
        let a = std::fs::read(dir.path().join("a").join(file)).unwrap();
        let b = std::fs::read(dir.path().join("b").join(file)).unwrap();
        assert!(a == b, "{file} differs between runs");
    }
}

fn expect_bad_row(err: DataError, line: u64, needle: &str) {
    match err {
        DataError::BadRow { location, reason } => {
            assert_eq!(location.line, line, "{reason}");
            assert!(reason.contains(needle), "{reason}");
        }
        other => panic!("expected a bad row, got {other}"),
    }
}

#[test]
fn a_bad_price_fails_with_its_line_or_is_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = rows(5);
    text.push_str("bad,Thing,,M,twelve pounds,Toys > Trains\r\n");
    write(dir.path(), "p.csv", &text);
    let desc = descriptor(dir.path(), "p.csv", "");
    expect_bad_row(prepare(&desc, &DataConfig::default()).unwrap_err(), 7, "twelve pounds");
    let cfg = DataConfig { skip_bad_rows: true, ..DataConfig::default() };
    let prepared = prepare(&desc, &cfg).unwrap();
    assert_eq!(prepared.records.len(), 5);
    assert_eq!(prepared.stats.skipped_by_kind.get("bad price"), Some(&1));
    assert_eq!(prepared.stats.skipped_examples[0].line, 7);
}

#[test]
fn a_row_with_the_wrong_number_of_fields_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = rows(3);
    text.push_str("x,Too,many,fields,£1,Toys,extra\r\n");
    write(dir.path(), "p.csv", &text);
    let err = prepare(&descriptor(dir.path(), "p.csv", ""), &DataConfig::default()).unwrap_err();
    expect_bad_row(err, 5, "expected 6 fields, found 7");
}

#[test]
fn empty_title_and_duplicate_id_are_bad_rows() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "p.csv", &format!("{}z,  ,,M,,Toys\r\n", rows(2)));
    expect_bad_row(prepare(&descriptor(dir.path(), "p.csv", ""), &DataConfig::default()).unwrap_err(), 4, "empty title");
    write(dir.path(), "p.csv", &format!("{}id1,Again,,M,,Toys\r\n", rows(2)));
    expect_bad_row(prepare(&descriptor(dir.path(), "p.csv", ""), &DataConfig::default()).unwrap_err(), 4, "line 3");
}

#[test]
fn unlabelled_rows_fail_when_the_descriptor_says_so() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "p.csv", &format!("{}u,Unlabelled,,M,,\r\n", rows(2)));
    let mut desc = descriptor(dir.path(), "p.csv", "");
    desc.cleaning.unlabelled = xmc_data::clean::RowPolicy::Fail;
    expect_bad_row(prepare(&desc, &DataConfig::default()).unwrap_err(), 4, "category path is empty");
}

#[test]
fn a_missing_column_names_it_and_the_columns_present() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "p.csv", "id,title,price,category_path\r\n1,a,£1,X\r\n");
    let err = prepare(&descriptor(dir.path(), "p.csv", ""), &DataConfig::default()).unwrap_err().to_string();
    assert!(err.contains("`description`") && err.contains("id, title, price, category_path"), "{err}");
}

#[test]
fn empty_files_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in [("empty.csv", ""), ("header.csv", HEADER), ("empty.jsonl", "\n\n")] {
        write(dir.path(), name, text);
        let err = prepare(&descriptor(dir.path(), name, ""), &DataConfig::default()).unwrap_err();
        assert!(matches!(err, DataError::EmptyInput { .. }), "{name}: {err}");
        assert!(err.to_string().contains("no rows"), "{err}");
    }
}

#[test]
fn json_lines_are_read_with_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::new();
    for i in 0..6 {
        text.push_str(&format!(
            "{{\"id\": \"j{i}\", \"title\": \"Item {i}\", \"description\": null, \"manufacturer\": \"M\", \"price\": {i}.5, \"category_path\": \"A > B\"}}\n"
        ));
    }
    text.push('\n');
    text.push_str("{\"id\": \"broken\", \n");
    write(dir.path(), "p.jsonl", &text);
    let desc = descriptor(dir.path(), "p.jsonl", "");
    expect_bad_row(prepare(&desc, &DataConfig::default()).unwrap_err(), 8, "not a JSON object");
    let prepared = prepare(&desc, &DataConfig { skip_bad_rows: true, ..DataConfig::default() }).unwrap();
    assert_eq!(prepared.records.len(), 6);
    assert_eq!(prepared.records[2].record.price, Some(2.5));
    assert_eq!(prepared.records[2].record.line, 3);
}

#[test]
fn parquet_files_are_read() {
    use polars::prelude::*;
    let dir = tempfile::tempdir().unwrap();
    let n = 8;
    let columns = vec![
        Column::new("id".into(), (0..n).map(|i| format!("p{i}")).collect::<Vec<_>>()),
        Column::new("title".into(), (0..n).map(|i| format!("Item {i}")).collect::<Vec<_>>()),
        Column::new("description".into(), vec![None::<&str>; n]),
        Column::new("manufacturer".into(), vec!["M"; n]),
        Column::new("price".into(), (0..n).map(|i| i as f64 + 0.25).collect::<Vec<_>>()),
        Column::new("category_path".into(), vec!["A > B"; n]),
    ];
    let mut df = DataFrame::new(n, columns).unwrap();
    let path = dir.path().join("p.parquet");
    ParquetWriter::new(std::fs::File::create(&path).unwrap()).finish(&mut df).unwrap();
    let prepared = prepare(&descriptor(dir.path(), "p.parquet", ""), &DataConfig::default()).unwrap();
    assert_eq!(prepared.records.len(), n);
    assert_eq!(prepared.records[3].record.price, Some(3.25));
    assert_eq!(prepared.records[3].input, "Retailer: Shop Price: 3.25 Description: Item 3");
}

#[test]
fn tail_flags_follow_training_counts() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from(HEADER);
    for i in 0..60 {
        text.push_str(&format!("h{i},Head {i},,M,,Big\r\n"));
    }
    for i in 0..3 {
        text.push_str(&format!("t{i},Tail {i},,M,,Small\r\n"));
    }
    write(dir.path(), "p.csv", &text);
    let cfg = DataConfig { tail_max: 25, ..DataConfig::default() };
    let prepared = prepare(&descriptor(dir.path(), "p.csv", ""), &cfg).unwrap();
    let big = &prepared.labels.labels[prepared.labels.id_of(&["Big".to_string()]).unwrap() as usize];
    let small = &prepared.labels.labels[prepared.labels.id_of(&["Small".to_string()]).unwrap() as usize];
    assert!(!big.tail && small.tail);
    assert_eq!(big.train_count + big.valid_count + big.test_count, 60);
    assert_eq!(prepared.stats.tail_labels, 1);
}

/// The streaming data stage writes what the in-memory one does: the same records (ids, lines,
/// inputs, labels, splits), labels and statistics, on the bundled sample (2,500 rows, skipped
/// unlabelled rows) in chunks of 1, 7, 300 and 65,536 records; and on a file with every kind of
/// bad row (quoted multi-line field, duplicate id, bad price, empty title, unlabelled), skipped.
#[test]
fn streaming_preparation_writes_the_in_memory_artifact() {
    let dir = tempfile::tempdir().unwrap();
    let sample = DatasetDescriptor::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/amazon-uk-sample.toml")).unwrap();
    let mut text = rows(40);
    text.push_str("q1,\"A, quoted \"\"title\"\"\",\"two\r\nlines\",M,,\"Games > Cards\"\r\n");
    text.push_str("id3,Duplicate,,M,,Toys > Trains\r\nbad,Thing,,M,twelve pounds,Toys > Trains\r\nz,  ,,M,,Toys\r\nu,Unlabelled,,M,,\r\n");
    write(dir.path(), "p.csv", &text);
    let small = descriptor(dir.path(), "p.csv", "");
    let skip = DataConfig { skip_bad_rows: true, ..DataConfig::default() };
    for (name, desc, chunks) in [("sample", &sample, vec![1, 7, 300, 65_536]), ("small", &small, vec![3])] {
        let in_memory = prepare(desc, &skip).unwrap();
        assert!(in_memory.stats.skipped > 0, "{name}: the comparison covers skipped rows");
        for chunk_records in chunks {
            let out = dir.path().join(format!("{name}-{chunk_records}"));
            let opts = xmc_data::StreamingOptions { chunk_records };
            let summary = xmc_data::prepare_streaming(desc, &skip, &out, &opts, |_, _| {}).unwrap();
            assert_eq!(summary.stats, in_memory.stats, "{name}, chunks of {chunk_records}");
            let streamed = PreparedData::load(&out).unwrap();
            assert_eq!(streamed.labels, in_memory.labels, "{name}, chunks of {chunk_records}");
            assert_eq!(streamed.records.len(), in_memory.records.len());
            for (a, b) in streamed.records.iter().zip(&in_memory.records) {
                assert_eq!(a, b, "{name}, chunks of {chunk_records}");
            }
        }
    }
    // Without skipping, the first bad row fails both paths at the same line.
    let memory = prepare(&small, &DataConfig::default()).unwrap_err();
    let streaming = xmc_data::prepare_streaming(&small, &DataConfig::default(), &dir.path().join("fails"), &Default::default(), |_, _| {}).unwrap_err();
    expect_bad_row(streaming, 44, "already used at line 5");
    expect_bad_row(memory, 44, "already used at line 5");
}
