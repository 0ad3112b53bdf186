//! The pipeline's stages, and the record each finished stage leaves in its folder (`stage.json`).

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::figures::Figures;

/// Bump when a stage's artifact format changes, so old artifacts are rebuilt rather than misread.
pub const ARTIFACT_VERSION: u32 = 1;
pub const STAGE_FILE: &str = "stage.json";
pub const CONFIG_FILE: &str = "config.json";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StageName {
    Data,
    Embed,
    Tree,
    Codes,
    Train,
    Predict,
    Brand,
    Eval,
    Report,
}

impl StageName {
    pub const ALL: [StageName; 9] = [
        StageName::Data,
        StageName::Embed,
        StageName::Tree,
        StageName::Codes,
        StageName::Train,
        StageName::Predict,
        StageName::Brand,
        StageName::Eval,
        StageName::Report,
    ];

    /// The version of the stage's code, part of its fingerprint: bump it with any change to the
    /// code that changes what the stage writes for the same inputs and config, so that cached
    /// artifacts made by the old code are rebuilt.
    pub fn code_version(self) -> u32 {
        match self {
            StageName::Data => 1,
            StageName::Embed => 1,
            StageName::Tree => 1,
            StageName::Codes => 1,
            // 1: calibration.json in every model folder (session 6).
            // 2: the Unigram tokenizer made order-stable (scores rounded, ids by score then text).
            // 3: one training loop (steps and learning rate in every metrics.jsonl line), burn's
            //    schedulers; `extra_trees` in xr.json.
            // 4: the cascades: `skip` in classifier.json (session 15) and in fusion.json.
            StageName::Train => 4,
            // 1: calibrated confidences as scores.
            StageName::Predict => 1,
            StageName::Brand => 1,
            // 1: calibration error in metrics.json.
            StageName::Eval => 1,
            StageName::Report => 1,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            StageName::Data => "data",
            StageName::Embed => "embed",
            StageName::Tree => "tree",
            StageName::Codes => "codes",
            StageName::Train => "train",
            StageName::Predict => "predict",
            StageName::Brand => "brand",
            StageName::Eval => "eval",
            StageName::Report => "report",
        }
    }
}

impl std::str::FromStr for StageName {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        StageName::ALL.into_iter().find(|st| st.as_str() == s).ok_or_else(|| {
            let names: Vec<&str> = StageName::ALL.iter().map(|st| st.as_str()).collect();
            format!("`{s}` is not a stage ({})", names.join(", "))
        })
    }
}

impl From<xmc_methods::Upstream> for StageName {
    fn from(u: xmc_methods::Upstream) -> Self {
        match u {
            xmc_methods::Upstream::Data => StageName::Data,
            xmc_methods::Upstream::Embed => StageName::Embed,
            xmc_methods::Upstream::Tree => StageName::Tree,
            xmc_methods::Upstream::Codes => StageName::Codes,
        }
    }
}

impl std::fmt::Display for StageName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `stage.json`: written last, so a folder without it holds no finished stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawStageRecord")]
pub struct StageRecord {
    pub stage: StageName,
    pub artifact_version: u32,
    pub xmc_version: String,
    /// Hash of everything the stage read: its config, upstream fingerprints, input files.
    pub fingerprint: String,
    /// The hashes that went into the fingerprint, by name, for a person to read.
    pub inputs: BTreeMap<String, String>,
    pub seconds: f64,
    /// The stage's figures (for the report and comparison tables), typed by the stage.
    pub report: Figures,
}

/// `stage.json` as read, before its figures are typed by its stage.
#[derive(Deserialize)]
struct RawStageRecord {
    stage: StageName,
    artifact_version: u32,
    xmc_version: String,
    fingerprint: String,
    inputs: BTreeMap<String, String>,
    seconds: f64,
    report: serde_json::Value,
}

impl TryFrom<RawStageRecord> for StageRecord {
    type Error = String;

    fn try_from(r: RawStageRecord) -> Result<Self, String> {
        let report = Figures::read(r.stage, r.report).map_err(|e| format!("the {} stage's figures: {e}", r.stage))?;
        Ok(StageRecord {
            stage: r.stage,
            artifact_version: r.artifact_version,
            xmc_version: r.xmc_version,
            fingerprint: r.fingerprint,
            inputs: r.inputs,
            seconds: r.seconds,
            report,
        })
    }
}

impl StageRecord {
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

    #[test]
    fn stage_names_parse_back_and_upstream_stages_keep_their_names() {
        for stage in StageName::ALL {
            assert_eq!(stage.as_str().parse::<StageName>(), Ok(stage));
        }
        assert!("trian".parse::<StageName>().unwrap_err().contains("train"));
        for u in [xmc_methods::Upstream::Data, xmc_methods::Upstream::Embed, xmc_methods::Upstream::Tree, xmc_methods::Upstream::Codes] {
            assert_eq!(StageName::from(u).as_str(), u.as_str());
        }
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
