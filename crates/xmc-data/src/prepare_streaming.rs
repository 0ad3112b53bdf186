//! The data stage for files larger than memory: the same artifact as [`crate::prepare`] +
//! [`crate::PreparedData::save`], without holding the records.
//!
//! Pass 1 reads and cleans every row with the same rules and decisions as the in-memory path,
//! keeping per kept record only its path number and its line (12 bytes), plus the distinct ids
//! ([`crate::id_index`]) and paths. Labels and the stratified split need nothing more. Pass 2
//! reads the file again, takes the rows pass 1 kept (by line), and hands chunks of records with
//! their label and split to a writer thread that renders the inputs and appends each chunk to
//! `records.parquet` as a row group through polars' batched Parquet writer. Peak memory is the
//! per-record 12 bytes, the id index and a few chunks in flight, whatever the file's size.
//!
//! Rows are read by the crate's own readers, not polars' lazy scan, because the cleaning rules are
//! row functions and a bad row must be reported with its line in the file (a CSV field may span
//! lines), which the `csv` crate gives and a columnar scan does not.

use std::path::Path;
use std::sync::mpsc;

use polars::prelude::ParquetWriter;

use crate::artifact::{RECORDS_FILE, STATS_FILE, records_frame, write_json};
use crate::descriptor::DatasetDescriptor;
use crate::error::{DataError, Result, RowLocation};
use crate::ingest::{RowEvent, read_rows_mapped};
use crate::labels::LabelSet;
use crate::prepare::{DataConfig, Labelled, PathNumbering, clean_row, compute_stats, label_and_split, visit_records};
use crate::record::{PreparedRecord, ProductRecord, Split};
use crate::stats::DataStats;
use crate::template::InputTemplate;

/// How the streaming data stage cuts its work.
#[derive(Debug, Clone, PartialEq)]
pub struct StreamingOptions {
    /// Records per chunk handed to the writer (one Parquet row group each).
    pub chunk_records: usize,
}

impl Default for StreamingOptions {
    fn default() -> Self {
        StreamingOptions { chunk_records: 65_536 }
    }
}
/// Chunks waiting for the writer at most.
const CHUNKS_IN_FLIGHT: usize = 2;

/// What the streaming data stage wrote besides `records.parquet`.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedSummary {
    pub labels: LabelSet,
    pub stats: DataStats,
}

/// Prepares the dataset `desc` names into the folder `dir` (`records.parquet`, `labels.json`,
/// `stats.json`) in two passes over the file with bounded memory. `progress` gets the rows read
/// by each pass as they go (`(pass, rows)`, pass 1 or 2).
pub fn prepare_streaming(
    desc: &DatasetDescriptor,
    cfg: &DataConfig,
    dir: &Path,
    opts: &StreamingOptions,
    progress: impl Fn(u8, u64),
) -> Result<PreparedSummary> {
    cfg.validate().map_err(DataError::Config)?;
    let chunk_records = opts.chunk_records.max(1);
    let file = desc.resolve_path()?;
    let started = std::time::Instant::now();

    // Pass 1: every decision, and per kept record its path number and line.
    let mut numbering = PathNumbering::default();
    let mut record_paths: Vec<u32> = Vec::new();
    let mut summary = visit_records(desc, &file, cfg.skip_bad_rows, true, |record| {
        record_paths.push(numbering.number(&record.category));
        if record_paths.len() % chunk_records == 0 {
            progress(1, record_paths.len() as u64);
        }
        Ok(())
    })?;
    let kept_lines = std::mem::take(&mut summary.kept_lines);
    if record_paths.is_empty() {
        return Err(DataError::NoLabelledRecords { skipped: summary.rows_read });
    }
    tracing::debug!("pass 1: {} records kept of {} rows in {:.2?}", kept_lines.len(), summary.rows_read, started.elapsed());
    let Labelled { labels, record_labels, splits } = label_and_split(&numbering, &record_paths, cfg);
    tracing::debug!("labelled and split in {:.2?}", started.elapsed());

    // Pass 2: the kept rows again, cleaned, with their label and split, written chunk by chunk.
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let template = cfg.template_for(desc);
    let records_path = dir.join(RECORDS_FILE);
    let changed = |line: u64, what: String| DataError::BadRow {
        location: RowLocation { file: file.clone(), line },
        reason: format!("{what}: the file changed between the two passes of the streaming data stage"),
    };
    std::thread::scope(|scope| -> Result<()> {
        let (send, receive) = mpsc::sync_channel::<Vec<(ProductRecord, u32, Split)>>(CHUNKS_IN_FLIGHT);
        let writer = scope.spawn(|| write_chunks(receive, &template, &records_path));
        let mut next = 0usize;
        let mut chunk = Vec::with_capacity(chunk_records);
        let format = crate::FileFormat::from_path(&file).unwrap_or_else(|| desc.format());
        // The reading thread picks the kept rows and cleans them; this one checks and batches.
        let mut picked = 0usize;
        let pick = |event: RowEvent| match event {
            RowEvent::Row(row) if kept_lines.get(picked) == Some(&row.line) => {
                picked += 1;
                Some((row.line, clean_row(desc, &row)))
            }
            _ => None,
        };
        let read = read_rows_mapped(&file, format, &desc.columns, pick, |item| {
            let Some((line, cleaned)) = item else { return Ok(()) };
            let (record, _) = cleaned.map_err(|issue| changed(line, issue.reason))?;
            if numbering.get(&record.category) != Some(record_paths[next]) {
                return Err(changed(line, "its category path is not the one read before".into()));
            }
            chunk.push((record, record_labels[next], splits[next]));
            next += 1;
            if chunk.len() == chunk_records {
                progress(2, next as u64);
                let full = std::mem::replace(&mut chunk, Vec::with_capacity(chunk_records));
                // A closed channel means the writer failed: its error is returned below.
                if send.send(full).is_err() {
                    return Err(DataError::Format { file: records_path.clone(), message: "the Parquet writer stopped".into() });
                }
            }
            Ok(())
        });
        if read.is_ok() && !chunk.is_empty() {
            let _ = send.send(std::mem::take(&mut chunk));
        }
        drop(send);
        let written = writer.join().map_err(|_| DataError::Format { file: records_path.clone(), message: "the Parquet writer panicked".into() })?;
        // The writer's own error explains a reader that stopped because the writer did.
        let written = written?;
        read?;
        if next != kept_lines.len() || written != kept_lines.len() as u64 {
            let line = kept_lines.get(next).copied().unwrap_or_default();
            return Err(changed(line, format!("{} of {} kept rows found again, {written} written", next, kept_lines.len())));
        }
        Ok(())
    })?;
    tracing::debug!("pass 2: rendered and written in {:.2?}", started.elapsed());

    let stats = compute_stats(desc, &file, &splits, &labels, summary);
    labels.save(dir)?;
    write_json(&dir.join(STATS_FILE), &stats)?;
    Ok(PreparedSummary { labels, stats })
}

/// The writer thread: renders each chunk's inputs, appends it as a row group; returns the number
/// of records written.
fn write_chunks(receive: mpsc::Receiver<Vec<(ProductRecord, u32, Split)>>, template: &InputTemplate, path: &Path) -> Result<u64> {
    let file = std::fs::File::create(path).map_err(|e| DataError::io(path, e))?;
    let mut writer = None;
    let mut written = 0u64;
    for chunk in receive {
        let records: Vec<PreparedRecord> =
            chunk.into_iter().map(|(record, label, split)| PreparedRecord { input: template.render(&record), record, label, split }).collect();
        let df = records_frame(&records)?;
        let w = match &mut writer {
            Some(w) => w,
            None => writer.insert(ParquetWriter::new(file.try_clone().map_err(|e| DataError::io(path, e))?).batched(df.schema())?),
        };
        w.write_batch(&df)?;
        written += records.len() as u64;
    }
    if let Some(w) = writer {
        w.finish()?;
    }
    Ok(written)
}
