use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error(transparent)]
    Io(#[from] xmc_data::IoError),
    #[error("{}: {message}", path.display())]
    Format { path: PathBuf, message: String },
    #[error("plot {name}: {message}")]
    Plot { name: String, message: String },
    #[error(
        "regression against the baseline {}:\n{}",
        baseline.display(),
        failures.join("\n")
    )]
    Regression { baseline: PathBuf, failures: Vec<String> },
}

impl EvalError {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EvalError::Io(xmc_data::IoError::new(path, source))
    }
}

pub type Result<T, E = EvalError> = std::result::Result<T, E>;
