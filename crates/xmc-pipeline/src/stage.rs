//! The pipeline's stages by name.

use serde::{Deserialize, Serialize};

/// Bump when a stage's artifact format changes, so old artifacts are rebuilt rather than misread.
pub const ARTIFACT_VERSION: u32 = 1;

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
}
