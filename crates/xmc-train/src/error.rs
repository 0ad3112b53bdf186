use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("invalid config: {0}")]
    Config(String),
    #[error("{path}: {message}")]
    Artifact { path: PathBuf, message: String },
    #[error(transparent)]
    Io(#[from] xmc_data::IoError),
    #[error("cannot start {threads} prediction threads: {source}")]
    Threads {
        threads: usize,
        #[source]
        source: rayon::ThreadPoolBuildError,
    },
    #[error(transparent)]
    Model(#[from] xmc_model::ModelError),
    #[error(transparent)]
    Data(#[from] xmc_data::DataError),
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io(xmc_data::IoError::new(path, source))
    }
}

pub type Result<T, E = TrainError> = std::result::Result<T, E>;
