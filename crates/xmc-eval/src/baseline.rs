//! The regression check: a committed baseline (`experiments/baselines/<name>.json`) states the
//! accuracy and macro-F1 a run must keep, and how far below them it may fall.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{EvalError, Metrics, Result};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Baseline {
    /// What made the figures, for a person reading the file.
    pub command: String,
    /// Why the tolerance is what it is, or anything else a reader should know.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub note: String,
    /// How far (absolute, in [0, 1]) a run may fall below each figure before the check fails.
    pub tolerance: f64,
    pub accuracy: f64,
    pub macro_f1: f64,
}

impl Baseline {
    pub fn load(path: &Path) -> Result<Baseline> {
        let text = std::fs::read_to_string(path).map_err(|e| EvalError::io(path, e))?;
        let b: Baseline = serde_json::from_str(&text).map_err(|e| EvalError::Format { path: path.into(), message: e.to_string() })?;
        if !(0.0..1.0).contains(&b.tolerance) {
            return Err(EvalError::Format { path: path.into(), message: format!("tolerance must be in [0, 1), got {}", b.tolerance) });
        }
        Ok(b)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| EvalError::io(dir, e))?;
        }
        std::fs::write(path, serde_json::to_string_pretty(self).expect("serialises") + "\n").map_err(|e| EvalError::io(path, e))
    }

    /// The baseline a run sets: its own figures, keeping an existing file's tolerance.
    pub fn from_metrics(metrics: &Metrics, command: &str, tolerance: f64) -> Baseline {
        Baseline { command: command.into(), note: String::new(), tolerance, accuracy: round4(metrics.accuracy), macro_f1: round4(metrics.leaf.macro_avg.f1) }
    }

    /// One line per figure; an error listing the figures that fell too far.
    pub fn check(&self, metrics: &Metrics, path: &Path) -> Result<Vec<String>> {
        let mut lines = Vec::new();
        let mut failures = Vec::new();
        for (name, base, now) in [("accuracy", self.accuracy, metrics.accuracy), ("macro-F1", self.macro_f1, metrics.leaf.macro_avg.f1)] {
            let floor = base - self.tolerance;
            let line = format!("{name}: {now:.4} (baseline {base:.4}, tolerance {:.4}, floor {floor:.4})", self.tolerance);
            if now + 1e-12 < floor {
                failures.push(line.clone());
            }
            lines.push(line);
        }
        if failures.is_empty() { Ok(lines) } else { Err(EvalError::Regression { baseline: path.into(), failures }) }
    }
}

fn round4(x: f64) -> f64 {
    (x * 1e4).round() / 1e4
}
