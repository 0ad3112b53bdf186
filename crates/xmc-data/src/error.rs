//! The one error type of the data stage.

use std::path::PathBuf;

/// Where in an input file a row starts: 1-based line for text formats, 1-based row for Parquet.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RowLocation {
    pub file: PathBuf,
    pub line: u64,
}

impl std::fmt::Display for RowLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file.display(), self.line)
    }
}

/// A file that could not be read or written, and why: the I/O error every crate's error type
/// wraps, so that each names the file the same way.
#[derive(Debug, thiserror::Error)]
#[error("cannot read or write {path}: {source}")]
pub struct IoError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

impl IoError {
    pub fn new(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        IoError { path: path.into(), source }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error(transparent)]
    Io(#[from] IoError),
    #[error("{path}: {message}")]
    Descriptor { path: PathBuf, message: String },
    #[error("invalid config: {0}")]
    Config(String),
    #[error("{file}: the input has no rows")]
    EmptyInput { file: PathBuf },
    #[error("{file}: column `{column}` (configured as {role}) is missing; the file has columns: {available}")]
    MissingColumn {
        file: PathBuf,
        column: String,
        role: &'static str,
        available: String,
    },
    #[error("{location}: {reason}")]
    BadRow { location: RowLocation, reason: String },
    #[error("{file}: {message}")]
    Format { file: PathBuf, message: String },
    #[error("no labelled records are left after cleaning ({skipped} rows skipped)")]
    NoLabelledRecords { skipped: u64 },
    #[error("artifact {path}: {message}")]
    Artifact { path: PathBuf, message: String },
    #[error("polars: {0}")]
    Polars(#[from] polars::error::PolarsError),
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io(IoError::new(path, source))
    }
    pub(crate) fn artifact(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        DataError::Artifact { path: path.into(), message: message.to_string() }
    }
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;
