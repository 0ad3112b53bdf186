//! `xmc predict`: a file or standard input predicted chunk by chunk, bad rows to a rejects file.

use anyhow::Result;
use xmc_methods::output::PredictionWriter;
use xmc_methods::{ModelInput, PredictionRow, Predictor};



/// Settings of a streamed prediction.
#[derive(Debug, Clone)]
pub struct StreamPredict {
    pub beam: usize,
    pub top_k: usize,
    pub stream: xmc_data::StreamOptions,
}

/// Where rows skipped while predicting go: a JSON lines file (line, kind, reason), or standard
/// error when no file is named.
pub struct RejectsWriter {
    path: Option<std::path::PathBuf>,
    file: Option<std::io::BufWriter<std::fs::File>>,
    written: u64,
}

impl RejectsWriter {
    /// Rejects to `path` (created on the first rejected row; a file left there by an earlier
    /// run is removed now), or to standard error for `None`.
    pub fn new(path: Option<std::path::PathBuf>) -> Result<Self> {
        if let Some(path) = &path
            && path.is_file()
        {
            std::fs::remove_file(path).map_err(|e| anyhow::anyhow!("removing the old rejects file {}: {e}", path.display()))?;
        }
        Ok(RejectsWriter { path, file: None, written: 0 })
    }

    pub fn write(&mut self, row: &xmc_data::SkippedRow) -> Result<()> {
        use std::io::Write;
        self.written += 1;
        let Some(path) = &self.path else {
            eprintln!("skipped line {}: {}: {}", row.line, row.kind, row.reason);
            return Ok(());
        };
        if self.file.is_none() {
            let file = std::fs::File::create(path).map_err(|e| anyhow::anyhow!("creating the rejects file {}: {e}", path.display()))?;
            self.file = Some(std::io::BufWriter::new(file));
        }
        let out = self.file.as_mut().expect("opened above");
        serde_json::to_writer(&mut *out, row)?;
        out.write_all(b"\n")?;
        Ok(())
    }

    /// Flushes; the file's path when rows were written to one.
    pub fn finish(self) -> Result<Option<std::path::PathBuf>> {
        use std::io::Write;
        match self.file {
            Some(mut f) => {
                f.flush()?;
                Ok(self.path)
            }
            None => Ok(None),
        }
    }
}

/// Reads `source` chunk by chunk, predicts each chunk and writes it before reading the next:
/// memory holds one chunk of records and predictions, whatever the input's size. Output rows
/// are in input order. The writer is finished (a file gets its final name) only when every row
/// was read and written.
pub fn predict_stream(
    predictor: &Predictor,
    desc: &xmc_data::DatasetDescriptor,
    source: &xmc_data::InputSource,
    options: &StreamPredict,
    mut writer: PredictionWriter,
    rejects: &mut RejectsWriter,
) -> Result<xmc_data::StreamSummary> {
    // A file shows the reader's bar over its bytes; standard input (length unknown) a count.
    let counter = match source {
        xmc_data::InputSource::Stdin => {
            let bar = indicatif::ProgressBar::new_spinner();
            bar.set_style(indicatif::ProgressStyle::with_template("{spinner} {pos} records predicted ({per_sec})").expect("valid template"));
            bar
        }
        xmc_data::InputSource::File(_) => indicatif::ProgressBar::hidden(),
    };
    let input: ModelInput = predictor.input(desc.clone());
    let summary = xmc_data::stream_records(
        desc,
        source,
        &options.stream,
        |bad| rejects.write(&bad),
        |chunk| {
            let texts: Vec<String> = chunk.iter().map(|r| input.text(r)).collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let ranked = predictor.predict_texts(&refs, options.beam, options.top_k, |_| {})?;
            let rows: Vec<PredictionRow> =
                chunk.iter().zip(&ranked).map(|(r, ranked)| PredictionRow::from_ranked(&r.id, None, ranked, predictor.labels())).collect();
            counter.inc(rows.len() as u64);
            writer.write(&rows)
        },
    )?;
    counter.finish_and_clear();
    writer.finish()?;
    Ok(summary)
}
