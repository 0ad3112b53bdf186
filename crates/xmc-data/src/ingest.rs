//! Readers for the raw formats. Each yields rows with the mapped fields and the row's location, or
//! a bad-row event with its line; the caller decides whether a bad row fails the stage.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use polars::prelude::*;

use crate::descriptor::{ColumnMap, FileFormat};
use crate::error::{DataError, Result};

/// The product-record fields a column can fill.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    Id,
    Title,
    Description,
    Store,
    Manufacturer,
    Brand,
    Price,
    CategoryPath,
}

impl Field {
    pub const ALL: [Field; 8] = [
        Field::Id,
        Field::Title,
        Field::Description,
        Field::Store,
        Field::Manufacturer,
        Field::Brand,
        Field::Price,
        Field::CategoryPath,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Field::Id => "id",
            Field::Title => "title",
            Field::Description => "description",
            Field::Store => "store",
            Field::Manufacturer => "manufacturer",
            Field::Brand => "brand",
            Field::Price => "price",
            Field::CategoryPath => "category_path",
        }
    }
}

/// The configured column for each field, in [`Field::ALL`] order.
pub fn mapped_columns(columns: &ColumnMap) -> [Option<&str>; 8] {
    [
        columns.id.as_deref(),
        Some(columns.title.as_str()),
        columns.description.as_deref(),
        columns.store.as_deref(),
        columns.manufacturer.as_deref(),
        columns.brand.as_deref(),
        columns.price.as_deref(),
        columns.category_path.as_deref(),
    ]
}

/// One raw row: the value of each mapped field (in [`Field::ALL`] order) and where it starts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RawRow {
    pub line: u64,
    pub values: [Option<String>; 8],
}

impl RawRow {
    pub fn get(&self, field: Field) -> Option<&str> {
        self.values[field as usize].as_deref()
    }
}

/// What a reader hands to its visitor.
#[derive(Debug)]
pub enum RowEvent {
    Row(RawRow),
    Bad { line: u64, reason: String },
}

/// Where rows come from: a file, or standard input (`-` on the command line).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputSource {
    File(PathBuf),
    Stdin,
}

impl InputSource {
    /// `-` is standard input; anything else a file.
    pub fn from_arg(arg: &Path) -> Self {
        if arg == Path::new("-") { InputSource::Stdin } else { InputSource::File(arg.to_path_buf()) }
    }

    /// The name errors and row locations use: the file's path, or `<stdin>`.
    pub fn name(&self) -> PathBuf {
        match self {
            InputSource::File(path) => path.clone(),
            InputSource::Stdin => PathBuf::from("<stdin>"),
        }
    }

    /// The format its extension names, if any (standard input has none).
    pub fn format_by_extension(&self) -> Option<FileFormat> {
        match self {
            InputSource::File(path) => FileFormat::from_path(path),
            InputSource::Stdin => None,
        }
    }

    /// A buffered reader and the byte length when known (for the progress bar).
    fn open(&self) -> Result<(Box<dyn Read>, u64)> {
        match self {
            InputSource::File(path) => {
                let file = File::open(path).map_err(|e| DataError::io(path, e))?;
                let bytes = file.metadata().map(|m| m.len()).unwrap_or(0);
                Ok((Box::new(file), bytes))
            }
            InputSource::Stdin => Ok((Box::new(std::io::stdin().lock()), 0)),
        }
    }
}

/// Reads every row of `path`, calling `visit` for each. Returns the number of rows seen (bad ones
/// included). An empty input and a missing column are errors.
pub fn read_rows(
    path: &Path,
    format: FileFormat,
    columns: &ColumnMap,
    visit: impl FnMut(RowEvent) -> Result<()>,
) -> Result<u64> {
    read_source(&InputSource::File(path.to_path_buf()), format, columns, MissingColumns::Fail, visit)
}

/// Rows handed from the background reader to the visitor at once.
const BACKGROUND_BATCH: usize = 4096;
/// Batches read ahead at most.
const BACKGROUND_AHEAD: usize = 4;

/// [`read_rows`] with the parsing, and `map` applied to each row, on a thread of their own, so
/// that reading and cleaning the file (`map`) and the visitor's work run on two cores. The visitor
/// sees the mapped rows in file order; an error from either side stops both and is returned.
pub fn read_rows_mapped<T: Send>(
    path: &Path,
    format: FileFormat,
    columns: &ColumnMap,
    mut map: impl FnMut(RowEvent) -> T + Send,
    mut visit: impl FnMut(T) -> Result<()>,
) -> Result<u64> {
    std::thread::scope(|scope| {
        let (send, receive) = std::sync::mpsc::sync_channel::<Vec<T>>(BACKGROUND_AHEAD);
        let reader = scope.spawn(move || {
            let mut batch = Vec::with_capacity(BACKGROUND_BATCH);
            let seen = read_rows(path, format, columns, |event| {
                batch.push(map(event));
                if batch.len() == BACKGROUND_BATCH {
                    let full = std::mem::replace(&mut batch, Vec::with_capacity(BACKGROUND_BATCH));
                    // The visitor stopped (its error is the one returned): stop reading.
                    send.send(full).map_err(|_| DataError::Format { file: path.to_path_buf(), message: "reading stopped".into() })?;
                }
                Ok(())
            })?;
            if !batch.is_empty() {
                let _ = send.send(batch);
            }
            Ok(seen)
        });
        let mut visited: Result<()> = Ok(());
        'batches: for batch in receive.iter() {
            for item in batch {
                visited = visit(item);
                if visited.is_err() {
                    break 'batches;
                }
            }
        }
        drop(receive);
        let seen = reader.join().map_err(|_| DataError::Format { file: path.to_path_buf(), message: "the reader thread panicked".into() })?;
        visited?;
        seen
    })
}

/// [`read_rows`] from any source, with the visitor's own error type: an error from `visit` stops
/// the reading and is returned as it is. Text formats are read as a stream; Parquet in slices of
/// [`PARQUET_SLICE_ROWS`] rows (it cannot come from standard input: the format needs to seek).
pub fn read_source<E: From<DataError>>(
    source: &InputSource,
    format: FileFormat,
    columns: &ColumnMap,
    missing_columns: MissingColumns,
    mut visit: impl FnMut(RowEvent) -> Result<(), E>,
) -> Result<u64, E> {
    let seen = match format {
        FileFormat::Csv => read_csv(source, columns, missing_columns, &mut visit)?,
        FileFormat::Jsonl => read_jsonl(source, columns, missing_columns, &mut visit)?,
        FileFormat::Parquet => read_parquet(source, columns, missing_columns, &mut visit)?,
    };
    if seen == 0 {
        return Err(DataError::EmptyInput { file: source.name() }.into());
    }
    Ok(seen)
}

/// What to do when a mapped column other than the title is not in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MissingColumns {
    /// Fail, naming the column and the columns the file has (training data).
    #[default]
    Fail,
    /// Leave the field empty and say so on standard error (files given only to predict).
    Warn,
}

impl MissingColumns {
    /// Whether reading may go on without `column` (filling `field`), warning when it may.
    fn tolerate(self, path: &Path, column: &str, field: Field) -> bool {
        let ok = self == MissingColumns::Warn && field != Field::Title;
        // Predicting never reads the category; its absence is not worth a word.
        if ok && field != Field::CategoryPath {
            eprintln!("warning: {}: no column `{column}` ({}); that field stays empty", path.display(), field.name());
        }
        ok
    }
}

/// Rows of a Parquet file read and handed on together.
pub const PARQUET_SLICE_ROWS: usize = 65_536;

/// A bar over the input's bytes; hidden when the length is unknown (standard input).
fn progress_bar(bytes: u64) -> ProgressBar {
    if bytes == 0 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(bytes);
    bar.set_style(
        ProgressStyle::with_template("{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_message("reading");
    bar
}

fn missing(path: &Path, column: &str, field: Field, available: &[String]) -> DataError {
    DataError::MissingColumn {
        file: path.to_path_buf(),
        column: column.to_string(),
        role: field.name(),
        available: available.join(", "),
    }
}

/// The field delimiter of a delimited text file, told from its header line: the comma, unless the
/// header split at commas lacks the title column and split at a tab, semicolon or pipe holds it
/// (catalogue exports in locales whose decimal mark is the comma use `;`; `.tsv` files use tabs).
fn sniff_delimiter(header: &[u8], title: &str) -> u8 {
    const DELIMITERS: [u8; 4] = [b',', b'\t', b';', b'|'];
    let holds_title = |delimiter: u8| {
        let mut reader = csv::ReaderBuilder::new().has_headers(false).delimiter(delimiter).from_reader(header);
        let mut record = csv::StringRecord::new();
        matches!(reader.read_record(&mut record), Ok(true)) && record.iter().any(|h| h.trim() == title)
    };
    DELIMITERS.into_iter().find(|&d| holds_title(d)).unwrap_or(b',')
}

fn read_csv<E: From<DataError>>(source: &InputSource, columns: &ColumnMap, missing_columns: MissingColumns, visit: &mut dyn FnMut(RowEvent) -> Result<(), E>) -> Result<u64, E> {
    let (file, bytes) = source.open()?;
    let path = source.name();
    let path = path.as_path();
    let mut file = BufReader::with_capacity(1 << 20, file);
    let mut header = Vec::new();
    file.read_until(b'\n', &mut header).map_err(|e| DataError::io(path, e))?;
    let delimiter = sniff_delimiter(&header, &columns.title);
    // Records end at `\n` only: with the default CRLF terminator the csv crate dates a record to the
    // line before it in CRLF files. The `\r` it leaves on a line's last field is removed below.
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .delimiter(delimiter)
        .terminator(csv::Terminator::Any(b'\n'))
        .from_reader(std::io::Cursor::new(header).chain(file));
    let headers: Vec<String> = match reader.headers() {
        Ok(h) => h.iter().map(|s| s.trim().to_string()).collect(),
        Err(e) => return Err(DataError::Format { file: path.to_path_buf(), message: e.to_string() }.into()),
    };
    if headers.is_empty() || headers.iter().all(String::is_empty) {
        return Err(DataError::EmptyInput { file: path.to_path_buf() }.into());
    }
    let mut indices = [None; 8];
    for (slot, (field, column)) in indices.iter_mut().zip(Field::ALL.into_iter().zip(mapped_columns(columns))) {
        if let Some(column) = column {
            match headers.iter().position(|h| h == column) {
                Some(index) => *slot = Some(index),
                None if missing_columns.tolerate(path, column, field) => {}
                None => return Err(missing(path, column, field, &headers).into()),
            }
        }
    }
    let bar = progress_bar(bytes);
    let mut record = csv::StringRecord::new();
    let mut seen = 0u64;
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                if record.len() == 1 && record[0].trim().is_empty() {
                    continue; // a blank line (possibly a lone `\r`)
                }
                seen += 1;
                let line = record.position().map_or(0, |p| p.line());
                if record.len() != headers.len() {
                    visit(RowEvent::Bad {
                        line,
                        reason: format!("expected {} fields, found {}", headers.len(), record.len()),
                    })?;
                } else {
                    let mut row = RawRow { line, ..RawRow::default() };
                    let last = headers.len() - 1;
                    for (value, index) in row.values.iter_mut().zip(indices) {
                        *value = index.map(|i| {
                            let field = &record[i];
                            if i == last { field.strip_suffix('\r').unwrap_or(field) } else { field }.to_string()
                        });
                    }
                    visit(RowEvent::Row(row))?;
                }
                if seen % 8192 == 0 {
                    bar.set_position(record.position().map_or(0, |p| p.byte()));
                }
            }
            Err(e) => {
                let line = e.position().map(|p| p.line());
                match (e.kind(), line) {
                    (csv::ErrorKind::Utf8 { .. }, Some(line)) => {
                        seen += 1;
                        visit(RowEvent::Bad { line, reason: "invalid UTF-8".into() })?;
                    }
                    _ => return Err(DataError::Format { file: path.to_path_buf(), message: e.to_string() }.into()),
                }
            }
        }
    }
    bar.finish_and_clear();
    Ok(seen)
}

fn json_value_text(value: &serde_json::Value) -> std::result::Result<Option<String>, String> {
    match value {
        serde_json::Value::Null => Ok(None),
        serde_json::Value::String(s) => Ok(Some(s.clone())),
        serde_json::Value::Number(n) => Ok(Some(n.to_string())),
        serde_json::Value::Bool(b) => Ok(Some(b.to_string())),
        other => Err(format!("expected a string or a number, found `{other}`")),
    }
}

fn read_jsonl<E: From<DataError>>(source: &InputSource, columns: &ColumnMap, missing_columns: MissingColumns, visit: &mut dyn FnMut(RowEvent) -> Result<(), E>) -> Result<u64, E> {
    let (file, bytes) = source.open()?;
    let path = source.name();
    let path = path.as_path();
    let bar = progress_bar(bytes);
    let mapped = mapped_columns(columns);
    let mut reader = BufReader::with_capacity(1 << 20, file);
    let mut bytes_of_line: Vec<u8> = Vec::new();
    let (mut line, mut seen, mut read_bytes) = (0u64, 0u64, 0u64);
    let mut checked_columns = false;
    loop {
        // Read the line as bytes, then check its UTF-8: a bad line is one reject and the next
        // line is read as usual (`read_line` would already have consumed the bad line).
        bytes_of_line.clear();
        let n = reader.read_until(b'\n', &mut bytes_of_line).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        line += 1;
        read_bytes += n as u64;
        let text = match std::str::from_utf8(&bytes_of_line) {
            Ok(text) => text,
            Err(e) => {
                seen += 1;
                visit(RowEvent::Bad { line, reason: format!("invalid UTF-8 at byte {} of the line", e.valid_up_to() + 1) })?;
                continue;
            }
        };
        if text.trim().is_empty() {
            continue;
        }
        seen += 1;
        let object: serde_json::Map<String, serde_json::Value> = match serde_json::from_str(text) {
            Ok(o) => o,
            Err(e) => {
                visit(RowEvent::Bad { line, reason: format!("not a JSON object: {e}") })?;
                continue;
            }
        };
        if !checked_columns {
            // The first object fixes the schema's required columns, as a CSV header would.
            checked_columns = true;
            let keys: Vec<String> = object.keys().cloned().collect();
            for (field, column) in [(Field::Title, mapped[Field::Title as usize]), (Field::CategoryPath, mapped[Field::CategoryPath as usize])] {
                if let Some(column) = column
                    && !object.contains_key(column)
                    && !missing_columns.tolerate(path, column, field)
                {
                    return Err(missing(path, column, field, &keys).into());
                }
            }
        }
        let mut row = RawRow { line, ..RawRow::default() };
        let mut bad = None;
        for ((value, column), field) in row.values.iter_mut().zip(mapped).zip(Field::ALL) {
            if let Some(v) = column.and_then(|c| object.get(c)) {
                match json_value_text(v) {
                    Ok(v) => *value = v,
                    Err(e) => bad = Some(format!("field `{}`: {e}", field.name())),
                }
            }
        }
        match bad {
            Some(reason) => visit(RowEvent::Bad { line, reason })?,
            None => visit(RowEvent::Row(row))?,
        }
        if seen % 8192 == 0 {
            bar.set_position(read_bytes);
        }
    }
    bar.finish_and_clear();
    Ok(seen)
}

fn read_parquet<E: From<DataError>>(source: &InputSource, columns: &ColumnMap, missing_columns: MissingColumns, visit: &mut dyn FnMut(RowEvent) -> Result<(), E>) -> Result<u64, E> {
    let path = match source {
        InputSource::File(path) => path.as_path(),
        InputSource::Stdin => {
            let message = "Parquet cannot be read from standard input (the format needs to seek); pass a file".to_string();
            return Err(DataError::Format { file: source.name(), message }.into());
        }
    };
    let format_error = |e: PolarsError| DataError::Format { file: path.to_path_buf(), message: e.to_string() };
    let open = || File::open(path).map_err(|e| DataError::io(path, e));
    let mut reader = ParquetReader::new(open()?);
    let total = reader.num_rows().map_err(format_error)?;
    let names: Vec<String> = reader.schema().map_err(format_error)?.iter_names().map(|s| s.to_string()).collect();
    let mut wanted: Vec<String> = Vec::new();
    for (field, column) in Field::ALL.into_iter().zip(mapped_columns(columns)) {
        if let Some(column) = column {
            if !names.iter().any(|n| n == column) {
                if missing_columns.tolerate(path, column, field) {
                    continue;
                }
                return Err(missing(path, column, field, &names).into());
            }
            if !wanted.iter().any(|w| w == column) {
                wanted.push(column.to_string());
            }
        }
    }
    let bar = ProgressBar::new(total as u64);
    let mut offset = 0usize;
    while offset < total {
        let df = ParquetReader::new(open()?)
            .with_columns(Some(wanted.clone()))
            .with_slice(Some((offset, PARQUET_SLICE_ROWS)))
            .finish()
            .map_err(format_error)?;
        if df.height() == 0 {
            break;
        }
        let mut series = Vec::with_capacity(8);
        for column in mapped_columns(columns) {
            match column {
                Some(column) if wanted.iter().any(|w| w == column) => {
                    let col = df.column(column).map_err(DataError::from)?;
                    series.push(Some(col.as_materialized_series().cast(&DataType::String).map_err(DataError::from)?));
                }
                _ => series.push(None),
            }
        }
        let strings: Vec<Option<&StringChunked>> =
            series.iter().map(|s| s.as_ref().map(|s| s.str()).transpose()).collect::<PolarsResult<_>>().map_err(DataError::from)?;
        for i in 0..df.height() {
            let mut row = RawRow { line: (offset + i) as u64 + 1, ..RawRow::default() };
            for (value, column) in row.values.iter_mut().zip(&strings) {
                *value = column.and_then(|c| c.get(i)).map(str::to_string);
            }
            visit(RowEvent::Row(row))?;
        }
        offset += df.height();
        bar.set_position(offset as u64);
    }
    bar.finish_and_clear();
    Ok(offset as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn columns() -> ColumnMap {
        ColumnMap { id: Some("id".into()), title: "title".into(), description: None, store: None, manufacturer: None, brand: None, price: None, category_path: None }
    }

    /// Rows and rejects by line, as (line, id or reason).
    fn events(bytes: &[u8], name: &str, format: FileFormat) -> Vec<(u64, String)> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let mut seen = Vec::new();
        read_rows(&path, format, &columns(), |event| {
            seen.push(match event {
                RowEvent::Row(row) => (row.line, row.get(Field::Id).unwrap().to_string()),
                RowEvent::Bad { line, reason } => (line, reason),
            });
            Ok(())
        })
        .unwrap();
        seen
    }

    #[test]
    fn semicolon_tab_and_pipe_delimited_files_are_read_by_their_header() {
        let rows = |seen: Vec<(u64, String)>| seen.into_iter().map(|(_, id)| id).collect::<Vec<_>>();
        let semicolon = "id;title;price\na;\"Hornby; coach, OO\";12,99 €\nb;Lego car;5\n";
        assert_eq!(rows(events(semicolon.as_bytes(), "in.csv", FileFormat::Csv)), ["a", "b"]);
        let tab = "id\ttitle\r\na\tHornby, coach\r\nb\tLego; car\r\n";
        assert_eq!(rows(events(tab.as_bytes(), "in.tsv", FileFormat::Csv)), ["a", "b"]);
        let pipe = "\"id\"|\"title\"\na|Brio train\n";
        assert_eq!(rows(events(pipe.as_bytes(), "in.csv", FileFormat::Csv)), ["a"]);
        // The title's text is read whole, not cut at the commas or semicolons inside it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("in.csv");
        std::fs::write(&path, semicolon).unwrap();
        let mut titles = Vec::new();
        read_rows(&path, FileFormat::Csv, &columns(), |event| {
            if let RowEvent::Row(row) = event {
                titles.push(row.get(Field::Title).unwrap().to_string());
            }
            Ok(())
        })
        .unwrap();
        assert_eq!(titles, ["Hornby; coach, OO", "Lego car"]);
        // A comma file whose header has the title is read at commas even when it holds other
        // delimiters; a header without the title under any delimiter is the missing-column error.
        assert_eq!(rows(events(b"id,title,size;colour\na,Lego,x\n", "in.csv", FileFormat::Csv)), ["a"]);
        std::fs::write(&path, "id;name\na;Lego\n").unwrap();
        let err = read_rows(&path, FileFormat::Csv, &columns(), |_| Ok(())).unwrap_err();
        assert!(err.to_string().contains("is missing") && err.to_string().contains("in.csv"), "{err}");
    }

    #[test]
    fn a_row_of_invalid_utf8_is_one_reject_and_the_next_row_is_read() {
        let jsonl = b"{\"id\":\"a\",\"title\":\"Hornby coach\"}\n{\"id\":\"b\",\"title\":\"\xff\"}\n{\"id\":\"c\",\"title\":\"Lego car\"}\n{\"id\":\"d\",\"title\":\"Brio train\"}\n";
        let csv = b"id,title\na,Hornby coach\nb,\xff\nc,Lego car\nd,Brio train\n";
        for (bytes, name, format, first_line) in [(&jsonl[..], "in.jsonl", FileFormat::Jsonl, 1), (&csv[..], "in.csv", FileFormat::Csv, 2)] {
            let seen = events(bytes, name, format);
            let line = |i: u64| first_line + i;
            assert_eq!(seen.len(), 4, "{name}: {seen:?}");
            assert_eq!(seen[0], (line(0), "a".to_string()), "{name}");
            assert_eq!(seen[1].0, line(1), "{name}");
            assert!(seen[1].1.contains("UTF-8"), "{name}: {seen:?}");
            assert_eq!(seen[2], (line(2), "c".to_string()), "{name}: the row after the bad one");
            assert_eq!(seen[3], (line(3), "d".to_string()), "{name}");
        }
    }
}
