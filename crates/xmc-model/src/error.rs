use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error(transparent)]
    Io(#[from] xmc_data::IoError),
    #[error("{path}: {message}")]
    BadFile { path: PathBuf, message: String },
    #[error("tokenizer: {0}")]
    Tokenizer(String),
    #[error("the encoder's inference path: {0}")]
    Runtime(String),
    #[error("{path}: the weights do not fit the model: {message}")]
    Weights { path: PathBuf, message: String },
}

pub type Result<T, E = ModelError> = std::result::Result<T, E>;
