use std::path::PathBuf;

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum CodesError {
    #[error("invalid tree: {0}")]
    InvalidTree(String),
    #[error("code {code:?}: {reason}")]
    InvalidCode { code: Vec<u32>, reason: String },
    #[error("artifact {path}: {message}")]
    Artifact { path: PathBuf, message: String },
}

pub type Result<T, E = CodesError> = std::result::Result<T, E>;
