use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error("invalid config: {0}")]
    Config(String),
    #[error(transparent)]
    Io(#[from] xmc_data::IoError),
    #[error("artifact {path}: {message}")]
    Artifact { path: PathBuf, message: String },
    #[error(transparent)]
    Model(#[from] xmc_model::ModelError),
    #[error(transparent)]
    Codes(#[from] xmc_codes::CodesError),
}

impl ClusterError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ClusterError::Io(xmc_data::IoError::new(path, source))
    }
}

pub type Result<T, E = ClusterError> = std::result::Result<T, E>;
