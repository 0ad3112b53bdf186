use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RankerError {
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("invalid ranker config: {0}")]
    Config(String),
    #[error("{path}: {message}")]
    Model { path: PathBuf, message: String },
    #[error("ranker training: {0}")]
    Train(String),
    #[error(transparent)]
    Codes(#[from] xmc_codes::CodesError),
}

impl RankerError {
    pub fn io(path: &Path, source: std::io::Error) -> Self {
        RankerError::Io { path: path.to_path_buf(), source }
    }

    pub fn model(path: &Path, message: impl Into<String>) -> Self {
        RankerError::Model { path: path.to_path_buf(), message: message.into() }
    }
}

pub type Result<T, E = RankerError> = std::result::Result<T, E>;
