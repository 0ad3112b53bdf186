//! Writing predictions as they are made: CSV, JSON lines or Parquet, to a file (written under a
//! temporary name and renamed when complete, so a file at the final name is always whole) or to
//! standard output.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use polars::prelude::*;

use crate::rows::PredictionRow;

/// The formats predictions can be written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// `id,path,score,top_k` with top_k a JSON array of [path, score] pairs.
    Csv,
    /// One JSON object per record: id, path, score, top_k.
    Jsonl,
    /// Columns id, path, score, labels (list of paths), scores (list of scores).
    Parquet,
}

impl std::str::FromStr for OutputFormat {
    type Err = String;

    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "csv" => Ok(OutputFormat::Csv),
            "jsonl" => Ok(OutputFormat::Jsonl),
            "parquet" => Ok(OutputFormat::Parquet),
            other => Err(format!("`{other}` is not an output format (csv, jsonl, parquet)")),
        }
    }
}

impl OutputFormat {
    /// The formats' names, as `--format` takes them.
    pub const NAMES: [&str; 3] = ["csv", "jsonl", "parquet"];

    /// The format a file name's extension names (the extensions input files are told by).
    /// Not `.tsv` / `.tab`: predictions are written comma-separated, which such a name would belie.
    pub fn from_path(path: &Path) -> Option<Self> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        if ext == "tsv" || ext == "tab" {
            return None;
        }
        Some(match xmc_data::FileFormat::from_path(path)? {
            xmc_data::FileFormat::Csv => OutputFormat::Csv,
            xmc_data::FileFormat::Jsonl => OutputFormat::Jsonl,
            xmc_data::FileFormat::Parquet => OutputFormat::Parquet,
        })
    }

    /// The format for `--output`: `--format` when given, else the extension; standard output
    /// (`-`) defaults to JSON lines.
    pub fn choose(explicit: Option<OutputFormat>, output: &Path) -> Result<Self> {
        if let Some(format) = explicit {
            return Ok(format);
        }
        if output == Path::new("-") {
            return Ok(OutputFormat::Jsonl);
        }
        OutputFormat::from_path(output).with_context(|| {
            format!("{}: cannot tell the output format from the extension; use .csv, .jsonl or .parquet, or --format", output.display())
        })
    }
}

type Sink = Box<dyn Write + Send>;

enum Encoder {
    Csv(csv::Writer<Sink>),
    Jsonl(BufWriter<Sink>),
    Parquet(Box<polars::io::parquet::write::BatchedWriter<Sink>>),
}

/// Predictions written chunk by chunk. Call [`PredictionWriter::finish`]: dropped without it, a
/// file output leaves nothing at its final name.
pub struct PredictionWriter {
    encoder: Encoder,
    /// The temporary file and the name it gets when complete (file outputs only).
    pending: Option<(tempfile::TempPath, PathBuf)>,
    rows: u64,
}

/// The Parquet columns, in order.
fn parquet_schema() -> Schema {
    Schema::from_iter([
        Field::new("id".into(), DataType::String),
        Field::new("path".into(), DataType::String),
        Field::new("score".into(), DataType::Float32),
        Field::new("labels".into(), DataType::List(Box::new(DataType::String))),
        Field::new("scores".into(), DataType::List(Box::new(DataType::Float32))),
    ])
}

/// One chunk of rows as a Parquet-ready frame.
pub fn rows_frame(rows: &[PredictionRow]) -> PolarsResult<DataFrame> {
    let id = Column::new("id".into(), rows.iter().map(|r| r.id.as_str()).collect::<Vec<_>>());
    let path = Column::new("path".into(), rows.iter().map(|r| r.path.as_deref()).collect::<Vec<_>>());
    let score = Column::new("score".into(), rows.iter().map(|r| r.score).collect::<Vec<_>>());
    let labels: ListChunked = rows
        .iter()
        .map(|r| Some(Series::new(PlSmallStr::EMPTY, r.top_k.iter().map(|(p, _)| p.as_str()).collect::<Vec<_>>())))
        .collect();
    let scores: ListChunked =
        rows.iter().map(|r| Some(Series::new(PlSmallStr::EMPTY, r.top_k.iter().map(|&(_, s)| s).collect::<Vec<_>>()))).collect();
    let labels = labels.with_name("labels".into()).cast(&DataType::List(Box::new(DataType::String)))?;
    let scores = scores.with_name("scores".into()).cast(&DataType::List(Box::new(DataType::Float32)))?;
    DataFrame::new(rows.len(), vec![id, path, score, labels.into_column(), scores.into_column()])
}

impl PredictionWriter {
    /// Starts writing to `output` (`-`: standard output) in `format`. A file is created under a
    /// temporary name in its folder (created when missing).
    pub fn create(output: &Path, format: OutputFormat) -> Result<Self> {
        let (sink, pending): (Sink, _) = if output == Path::new("-") {
            (Box::new(std::io::stdout()), None)
        } else {
            let dir = output.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            std::fs::create_dir_all(dir).with_context(|| format!("creating the folder {}", dir.display()))?;
            let name = output.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            let prefix = format!(".{name}.");
            let mut builder = tempfile::Builder::new();
            builder.prefix(&prefix).suffix(".partial");
            // A finished output is an ordinary file (the umask applies), not tempfile's 0600.
            #[cfg(unix)]
            builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o666));
            let tmp = builder
                .tempfile_in(dir)
                .with_context(|| format!("creating a temporary file beside {}", output.display()))?;
            let (file, path) = tmp.into_parts();
            (Box::new(file), Some((path, output.to_path_buf())))
        };
        let encoder = match format {
            OutputFormat::Csv => {
                let mut w = csv::Writer::from_writer(sink);
                w.write_record(["id", "path", "score", "top_k"])?;
                Encoder::Csv(w)
            }
            OutputFormat::Jsonl => Encoder::Jsonl(BufWriter::with_capacity(1 << 16, sink)),
            OutputFormat::Parquet => Encoder::Parquet(Box::new(
                ParquetWriter::new(sink).with_compression(ParquetCompression::Snappy).batched(&parquet_schema())?,
            )),
        };
        Ok(PredictionWriter { encoder, pending, rows: 0 })
    }

    /// Appends `rows` (one Parquet row group per call).
    pub fn write(&mut self, rows: &[PredictionRow]) -> Result<()> {
        match &mut self.encoder {
            Encoder::Csv(w) => {
                for row in rows {
                    w.write_record([
                        row.id.as_str(),
                        row.path.as_deref().unwrap_or_default(),
                        &row.score.map(|s| format!("{s:.6}")).unwrap_or_default(),
                        &serde_json::to_string(&row.top_k)?,
                    ])?;
                }
            }
            Encoder::Jsonl(w) => {
                for row in rows {
                    serde_json::to_writer(&mut *w, row)?;
                    w.write_all(b"\n")?;
                }
            }
            Encoder::Parquet(w) => {
                if !rows.is_empty() {
                    w.write_batch(&rows_frame(rows)?)?;
                }
            }
        }
        self.rows += rows.len() as u64;
        Ok(())
    }

    /// Flushes, makes a file durable (its bytes on disk before it is renamed, and the rename on
    /// disk before this returns: a crash leaves no empty or short file at the final name) and
    /// gives it its final name. Returns the rows written.
    pub fn finish(self) -> Result<u64> {
        match self.encoder {
            Encoder::Csv(mut w) => w.flush()?,
            Encoder::Jsonl(mut w) => w.flush()?,
            Encoder::Parquet(w) => {
                w.finish()?;
            }
        }
        if let Some((tmp, path)) = self.pending {
            sync_file(&tmp)?;
            tmp.persist(&path).with_context(|| format!("renaming the finished output to {}", path.display()))?;
            sync_parent(&path)?;
        }
        Ok(self.rows)
    }
}

/// Flushes the file at `path` to disk (fsync; on Linux it applies to the file, whichever handle
/// wrote it).
pub fn sync_file(path: &Path) -> Result<()> {
    std::fs::File::open(path).and_then(|f| f.sync_all()).with_context(|| format!("flushing {} to disk", path.display()))
}

/// Flushes the folder holding `path` to disk, so that a rename into it survives a crash.
pub fn sync_parent(path: &Path) -> Result<()> {
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
    #[cfg(unix)]
    std::fs::File::open(dir).and_then(|f| f.sync_all()).with_context(|| format!("flushing the folder {} to disk", dir.display()))?;
    Ok(())
}

/// Writes `rows` to `path` in the format its extension names (JSON lines when it names none).
pub fn write_predictions(path: &Path, rows: &[PredictionRow]) -> Result<()> {
    let format = OutputFormat::from_path(path).unwrap_or(OutputFormat::Jsonl);
    if path == Path::new("-") {
        bail!("write_predictions writes files; use PredictionWriter for standard output");
    }
    let mut writer = PredictionWriter::create(path, format)?;
    writer.write(rows)?;
    writer.finish()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rows() -> Vec<PredictionRow> {
        (0..5)
            .map(|i| PredictionRow {
                id: format!("r{i}"),
                path: Some(format!("A > B{i}")),
                score: Some(0.5 + i as f32 / 10.0),
                top_k: vec![(format!("A > B{i}"), 0.5 + i as f32 / 10.0), ("A > C".into(), 0.1)],
                label: None,
                correct: None,
            })
            .collect()
    }

    #[test]
    fn every_format_round_trips_chunk_by_chunk() {
        let dir = tempfile::tempdir().unwrap();
        let rows = rows();
        for format in [OutputFormat::Csv, OutputFormat::Jsonl, OutputFormat::Parquet] {
            let path = dir.path().join(format!("out.{}", format!("{format:?}").to_lowercase()));
            let mut w = PredictionWriter::create(&path, format).unwrap();
            w.write(&rows[..2]).unwrap();
            assert!(!path.exists(), "{format:?}: nothing at the final name before finish");
            w.write(&rows[2..]).unwrap();
            assert_eq!(w.finish().unwrap(), 5);
            let back = crate::scoring::read_predictions(&path).unwrap();
            assert_eq!(back.len(), 5, "{format:?}");
            for (a, b) in back.iter().zip(&rows) {
                assert_eq!((&a.id, &a.path), (&b.id, &b.path), "{format:?}");
                assert_eq!(a.top_k.len(), 2);
                assert!((a.score.unwrap() - b.score.unwrap()).abs() < 1e-5);
                assert_eq!(a.top_k[1].0, "A > C");
            }
        }
        // Only the three finished files: no temporary file left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 3);
    }

    #[test]
    fn a_writer_dropped_before_finish_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.parquet");
        let mut w = PredictionWriter::create(&path, OutputFormat::Parquet).unwrap();
        w.write(&rows()).unwrap();
        drop(w);
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn the_format_comes_from_the_flag_or_the_extension() {
        assert_eq!(OutputFormat::choose(None, Path::new("a.parquet")).unwrap(), OutputFormat::Parquet);
        assert_eq!(OutputFormat::choose(None, Path::new("-")).unwrap(), OutputFormat::Jsonl);
        assert_eq!(OutputFormat::choose(Some(OutputFormat::Csv), Path::new("a.parquet")).unwrap(), OutputFormat::Csv);
        assert!(OutputFormat::choose(None, Path::new("a.txt")).unwrap_err().to_string().contains("a.txt"));
        assert!(OutputFormat::choose(None, Path::new("a.tsv")).is_err(), "predictions are not written comma-separated into a .tsv");
    }
}
