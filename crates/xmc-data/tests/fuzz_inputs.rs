//! Property tests over the readers and the dataset descriptor: whatever the bytes, reading ends in
//! records or in an error that names the file (and, for a bad row, its line); never a panic.
//! Case counts are proptest's (256 per property by default, `PROPTEST_CASES` to change).

use proptest::prelude::*;
use xmc_data::{DatasetDescriptor, InputSource, StreamOptions, load_records, stream_records};

fn descriptor(dir: &std::path::Path) -> DatasetDescriptor {
    let path = dir.join("d.toml");
    std::fs::write(
        &path,
        "name = \"fuzz\"\npath = \"in.csv\"\nrelative_to = \"descriptor\"\n[columns]\nid = \"id\"\ntitle = \"title\"\nprice = \"price\"\ncategory_path = \"category_path\"\n",
    )
    .unwrap();
    DatasetDescriptor::load(&path).unwrap()
}

/// Text that looks enough like the formats to reach deep into the parsers.
fn csvish() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just(b"id,title,price,category_path".to_vec()),
        "[a-z0-9 ,\"\r>|.$-]{0,40}".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..30),
    ];
    proptest::collection::vec(line, 0..12).prop_map(|lines| lines.join(&b'\n'))
}

fn jsonish() -> impl Strategy<Value = Vec<u8>> {
    let line = prop_oneof![
        Just(br#"{"id": "a", "title": "Hornby coach", "price": 3, "category_path": "A > B"}"#.to_vec()),
        "\\{(\"[a-z_]{1,12}\": ?(\"[a-z >]{0,10}\"|[0-9.]{1,4}|null|true|\\[\\]|\\{\\}),? ?){0,4}\\}?".prop_map(String::into_bytes),
        proptest::collection::vec(any::<u8>(), 0..30),
    ];
    proptest::collection::vec(line, 0..10).prop_map(|lines| lines.join(&b'\n'))
}

fn check(bytes: &[u8], file_name: &str, skip_bad_rows: bool) {
    let dir = tempfile::tempdir().unwrap();
    let desc = descriptor(dir.path());
    let file = dir.path().join(file_name);
    std::fs::write(&file, bytes).unwrap();
    for require_label in [false, true] {
        if let Err(e) = load_records(&desc, &file, skip_bad_rows, require_label) {
            let message = e.to_string();
            assert!(message.contains(file_name) || message.contains("d.toml") || message.contains("no labelled"), "{message}");
        }
    }
    let options = StreamOptions { format: None, chunk_records: 3, skip_bad_rows };
    let result = stream_records(&desc, &InputSource::File(file.clone()), &options, |_| Ok::<_, xmc_data::DataError>(()), |_| Ok(()));
    if let Err(e) = result {
        assert!(e.to_string().contains(file_name), "{e}");
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    #[test]
    fn csv_never_panics(bytes in csvish(), skip in any::<bool>()) {
        check(&bytes, "in.csv", skip);
    }

    #[test]
    fn json_lines_never_panic(bytes in jsonish(), skip in any::<bool>()) {
        check(&bytes, "in.jsonl", skip);
    }

    #[test]
    fn parquet_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        check(&bytes, "in.parquet", true);
    }

    #[test]
    fn descriptors_never_panic(lines in proptest::collection::vec("(name|path|relative_to|format|\\[columns\\]|\\[cleaning\\]|title|id|price|path_separator|unlabelled|max_depth)( ?= ?(\"[a-z. >/]{0,8}\"|[0-9]{1,3}|true))?", 0..10)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.toml");
        std::fs::write(&path, lines.join("\n")).unwrap();
        if let Err(e) = DatasetDescriptor::load(&path) {
            prop_assert!(e.to_string().contains("d.toml"), "{}", e);
        }
    }
}
