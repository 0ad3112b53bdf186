//! Reading records in chunks while they are used: memory holds one chunk, whatever the input's
//! size. Prediction reads its input this way; the data stage, which splits by label and so needs
//! every record, reads with [`crate::load_records`].

use std::collections::BTreeMap;

use crate::descriptor::{DatasetDescriptor, FileFormat};
use crate::error::{DataError, RowLocation};
use crate::ingest::{InputSource, MissingColumns, RowEvent, read_source};
use crate::prepare::clean_row;
use crate::record::ProductRecord;
use crate::stats::SkippedRow;

/// What a streamed read saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StreamSummary {
    /// Rows read, bad ones included.
    pub rows_read: u64,
    /// Records handed on.
    pub records: u64,
    /// Rows skipped, by kind (only with `skip_bad_rows`).
    pub skipped_by_kind: BTreeMap<String, u64>,
}

impl StreamSummary {
    pub fn skipped(&self) -> u64 {
        self.skipped_by_kind.values().sum()
    }
}

/// How to read a stream of records.
#[derive(Debug, Clone)]
pub struct StreamOptions {
    /// The format; `None`: the source's extension, else the descriptor's format.
    pub format: Option<FileFormat>,
    /// Records per chunk (at least 1).
    pub chunk_records: usize,
    /// Hand bad rows to `on_bad` and go on, instead of failing on the first.
    pub skip_bad_rows: bool,
}

impl StreamOptions {
    /// The format `source` is read in.
    pub fn format_of(&self, source: &InputSource, desc: &DatasetDescriptor) -> FileFormat {
        self.format.or_else(|| source.format_by_extension()).unwrap_or_else(|| desc.format())
    }
}

/// Reads `source` by the descriptor's column mapping and cleaning rules, handing records to
/// `on_chunk` in input order, `chunk_records` at a time (the last chunk may be shorter). The
/// category column is read when present but not required. A malformed row fails the read with its
/// file and line, or with `skip_bad_rows` goes to `on_bad`. A mapped column other than the title
/// that the file lacks leaves its field empty, with a warning on standard error. Ids are passed through as they are
/// (duplicates are not checked: that would hold every id in memory).
pub fn stream_records<E: From<DataError>>(
    desc: &DatasetDescriptor,
    source: &InputSource,
    options: &StreamOptions,
    mut on_bad: impl FnMut(SkippedRow) -> Result<(), E>,
    mut on_chunk: impl FnMut(Vec<ProductRecord>) -> Result<(), E>,
) -> Result<StreamSummary, E> {
    let chunk_records = options.chunk_records.max(1);
    let format = options.format_of(source, desc);
    let mut summary = StreamSummary::default();
    let mut chunk: Vec<ProductRecord> = Vec::with_capacity(chunk_records);
    summary.rows_read = read_source(source, format, &desc.columns, MissingColumns::Warn, |event| {
        let bad = match event {
            RowEvent::Bad { line, reason } => SkippedRow { line, kind: "malformed row".into(), reason },
            RowEvent::Row(row) => match clean_row(desc, &row) {
                Ok((record, _)) => {
                    chunk.push(record);
                    summary.records += 1;
                    if chunk.len() == chunk_records {
                        on_chunk(std::mem::replace(&mut chunk, Vec::with_capacity(chunk_records)))?;
                    }
                    return Ok(());
                }
                Err(issue) => SkippedRow { line: row.line, kind: issue.kind.into(), reason: issue.reason },
            },
        };
        if !options.skip_bad_rows {
            let location = RowLocation { file: source.name(), line: bad.line };
            let reason = format!("{}: {} (use --skip-bad-rows to skip such rows and go on)", bad.kind, bad.reason);
            return Err(DataError::BadRow { location, reason }.into());
        }
        *summary.skipped_by_kind.entry(bad.kind.clone()).or_default() += 1;
        on_bad(bad)
    })?;
    if !chunk.is_empty() {
        on_chunk(chunk)?;
    }
    Ok(summary)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn descriptor(dir: &std::path::Path, file: &str) -> DatasetDescriptor {
        let text = format!(
            "name = \"t\"\npath = \"{}\"\n[columns]\nid = \"id\"\ntitle = \"title\"\nprice = \"price\"\n",
            dir.join(file).display()
        );
        let path = dir.join("d.toml");
        std::fs::write(&path, text).unwrap();
        DatasetDescriptor::load(&path).unwrap()
    }

    fn collect(desc: &DatasetDescriptor, file: &std::path::Path, chunk: usize, skip: bool) -> Result<(Vec<Vec<String>>, Vec<SkippedRow>, StreamSummary), DataError> {
        let options = StreamOptions { format: None, chunk_records: chunk, skip_bad_rows: skip };
        let (mut chunks, mut bad) = (Vec::new(), Vec::new());
        let summary = stream_records(
            desc,
            &InputSource::File(file.to_path_buf()),
            &options,
            |b| {
                bad.push(b);
                Ok::<_, DataError>(())
            },
            |c| {
                chunks.push(c.into_iter().map(|r| r.id).collect());
                Ok(())
            },
        )?;
        Ok((chunks, bad, summary))
    }

    #[test]
    fn chunks_keep_input_order_and_bad_rows_are_reported_or_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("in.csv");
        std::fs::write(&file, "id,title,price\na,one,1\nb,two,2\nc,,3\nd,four,x\ne,five,5\n").unwrap();
        let desc = descriptor(dir.path(), "in.csv");
        let err = collect(&desc, &file, 2, false).unwrap_err().to_string();
        assert!(err.contains("in.csv:4") && err.contains("empty title"), "{err}");
        let (chunks, bad, summary) = collect(&desc, &file, 2, true).unwrap();
        assert_eq!(chunks, vec![vec!["a".to_string(), "b".into()], vec!["e".into()]]);
        assert_eq!(bad.iter().map(|b| b.line).collect::<Vec<_>>(), vec![4, 5]);
        assert_eq!((summary.rows_read, summary.records, summary.skipped()), (5, 3, 2));
    }

    #[test]
    fn a_missing_optional_column_leaves_its_field_empty_but_a_missing_title_fails() {
        let dir = tempfile::tempdir().unwrap();
        let desc = descriptor(dir.path(), "in.csv");
        let file = dir.path().join("in.csv");
        std::fs::write(&file, "id,title\na,one\n").unwrap();
        let (chunks, _, _) = collect(&desc, &file, 8, false).unwrap();
        assert_eq!(chunks, vec![vec!["a".to_string()]]);
        std::fs::write(&file, "id,name\na,one\n").unwrap();
        let err = collect(&desc, &file, 8, false).unwrap_err().to_string();
        assert!(err.contains("`title`"), "{err}");
    }

    #[derive(Debug, PartialEq)]
    enum Stop {
        Caller,
        Data(String),
    }
    impl From<DataError> for Stop {
        fn from(e: DataError) -> Self {
            Stop::Data(e.to_string())
        }
    }

    #[test]
    fn the_callers_error_stops_the_read() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("in.csv");
        std::fs::write(&file, "id,title,price\na,one,1\nb,two,2\nc,three,3\n").unwrap();
        let desc = descriptor(dir.path(), "in.csv");
        let mut seen = 0;
        let result = stream_records(
            &desc,
            &InputSource::File(file),
            &StreamOptions { format: None, chunk_records: 1, skip_bad_rows: false },
            |_| Ok::<_, Stop>(()),
            |_| {
                seen += 1;
                if seen == 2 { Err(Stop::Caller) } else { Ok(()) }
            },
        );
        assert_eq!(result.unwrap_err(), Stop::Caller);
        assert_eq!(seen, 2);
    }
}
