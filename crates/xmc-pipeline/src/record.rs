//! The record each finished stage leaves in its folder (`stage.json`): its fingerprint, what went
//! into it, and its figures typed by the stage.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::figures::Figures;
use crate::stage::StageName;

pub const STAGE_FILE: &str = "stage.json";
pub const CONFIG_FILE: &str = "config.json";

/// `stage.json`: written last, so a folder without it holds no finished stage. Its `stage` and
/// `report` are the [`Figures`], typed by the stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    pub artifact_version: u32,
    pub xmc_version: String,
    /// Hash of everything the stage read: its config, upstream fingerprints, input files.
    pub fingerprint: String,
    /// The hashes that went into the fingerprint, by name, for a person to read.
    pub inputs: BTreeMap<String, String>,
    pub seconds: f64,
    /// The stage's figures (for the report and comparison tables), typed by the stage.
    #[serde(flatten)]
    pub report: Figures,
}

impl StageRecord {
    /// The stage that wrote the record.
    pub fn stage(&self) -> StageName {
        self.report.stage()
    }

    /// The record of a finished stage; `None` when there is none or it cannot be read (then the
    /// stage counts as not done, and a warning says why).
    pub fn load(dir: &Path) -> Option<StageRecord> {
        Self::read(dir).unwrap_or_else(|e| {
            tracing::warn!("{e:#}; the stage counts as not done");
            None
        })
    }

    /// [`StageRecord::load`], with an unreadable or malformed record as an error naming the file.
    pub fn read(dir: &Path) -> Result<Option<StageRecord>> {
        let path = dir.join(STAGE_FILE);
        let text = match std::fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e).with_context(|| format!("reading {}", path.display())),
        };
        serde_json::from_str(&text).map(Some).with_context(|| format!("{} is not a stage record", path.display()))
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        let path = dir.join(STAGE_FILE);
        std::fs::write(&path, serde_json::to_string_pretty(self)? + "\n").with_context(|| format!("writing {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record written by the code before the figures were serde's adjacently tagged enum
    /// (a model folder fixture's `stage.json`) reads back typed, and writes back the same.
    #[test]
    fn a_record_of_the_older_code_reads_back_typed() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/folders/xr");
        let record = StageRecord::read(&dir).unwrap().expect("the fixture has a stage.json");
        assert_eq!(record.stage(), StageName::Train);
        assert!(record.report.train().and_then(|t| t.best_valid_accuracy).is_some());
        let old: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(dir.join(STAGE_FILE)).unwrap()).unwrap();
        assert_eq!(serde_json::to_value(&record).unwrap(), old);
    }

    #[test]
    fn a_missing_record_is_none_and_a_malformed_one_an_error_naming_the_file() {
        let dir = tempfile::tempdir().unwrap();
        assert!(StageRecord::read(dir.path()).unwrap().is_none());
        std::fs::write(dir.path().join(STAGE_FILE), "{ not json").unwrap();
        let err = format!("{:#}", StageRecord::read(dir.path()).unwrap_err());
        assert!(err.contains("stage.json is not a stage record"), "{err}");
        assert!(StageRecord::load(dir.path()).is_none());
    }
}
