use std::path::{Path, PathBuf};

#[derive(Debug, thiserror::Error)]
pub enum RankerError {
    #[error(transparent)]
    Io(#[from] xmc_data::IoError),
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
        RankerError::Io(xmc_data::IoError::new(path, source))
    }

    pub fn model(path: &Path, message: impl Into<String>) -> Self {
        RankerError::Model { path: path.to_path_buf(), message: message.into() }
    }
}

pub type Result<T, E = RankerError> = std::result::Result<T, E>;
