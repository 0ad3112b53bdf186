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

#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
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
        DataError::Io { path: path.into(), source }
    }
    pub(crate) fn artifact(path: impl Into<PathBuf>, message: impl std::fmt::Display) -> Self {
        DataError::Artifact { path: path.into(), message: message.to_string() }
    }
}

pub type Result<T, E = DataError> = std::result::Result<T, E>;
