//! The two traits every method implements: [`Method`] (what the pipeline asks of it: settings,
//! train stage, report text, folder format) and [`Model`] (a loaded model folder).

use std::path::{Path, PathBuf};

use anyhow::{Result, bail};
use xmc_cluster::AddedLabel;
use xmc_data::{InputTemplate, LabelSet};

use crate::config::ExperimentConfig;
use crate::figures::TrainFigures;

/// Each input's pool: labels with the method's own positive scores, best first.
pub type Pools = Vec<Vec<(u32, f32)>>;

/// A stage before the train stage whose artifact a method reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Upstream {
    Data,
    Embed,
    Tree,
    Codes,
}

impl Upstream {
    /// The stage's name, as the run folder and the fingerprints spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Upstream::Data => "data",
            Upstream::Embed => "embed",
            Upstream::Tree => "tree",
            Upstream::Codes => "codes",
        }
    }
}

/// A file outside the run whose content the train stage reads (e.g. the pretrained encoder's
/// weights): hashed into the stage's fingerprint under `key`.
#[derive(Debug, Clone)]
pub struct InputFile {
    pub key: String,
    pub path: PathBuf,
    /// What the error says when the file cannot be read.
    pub missing: String,
}

/// What a method's train stage reads and the settings that decide its output: the runner
/// fingerprints them and skips the stage when none changed.
#[derive(Debug, Clone)]
pub struct TrainPlan {
    pub upstream: Vec<Upstream>,
    pub files: Vec<InputFile>,
    /// The resolved settings (written as the stage's `config.json`).
    pub config: serde_json::Value,
}

/// What a train stage gets: the config, the run's folder (upstream artifacts are under
/// `<run>/<stage>/`), the folder to write the model into and whether to resume a checkpoint.
pub struct TrainContext<'a> {
    pub cfg: &'a ExperimentConfig,
    pub run_dir: &'a Path,
    pub out: &'a Path,
    pub resume: bool,
}

impl TrainContext<'_> {
    /// The folder of an upstream stage's artifact.
    pub fn dir(&self, stage: Upstream) -> PathBuf {
        self.run_dir.join(stage.as_str())
    }
}

/// The predict stage's settings for a method.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PredictSettings {
    /// The beam the search runs with (a method whose candidates are its own, e.g. fused, names
    /// the beam of its first part).
    pub beam: usize,
    pub top_k: usize,
}

/// A method: how the pipeline trains it, what it reads and how its folders load.
pub trait Method: Sync {
    /// The name configs and model folders spell (`method = "xr"`).
    fn name(&self) -> &'static str;

    /// The file that tells a model folder of this method (its presence decides; the registry
    /// asks the methods in order).
    fn folder_file(&self) -> &'static str;

    /// Loads a model folder of this method.
    fn load(&self, dir: &Path) -> Result<Box<dyn Model>>;

    /// Checks the settings that only this method has an opinion on.
    fn validate(&self, _cfg: &ExperimentConfig) -> Result<()> {
        Ok(())
    }

    /// Whether the method reads the label tree (the embed, tree and codes stages): a T5 that
    /// generates plain label paths does not, so those stages are not run for it.
    fn uses_label_tree(&self, _cfg: &ExperimentConfig) -> bool {
        true
    }

    /// Whether its model takes new labels without retraining ([`Model::add_labels`]), so that
    /// `search.new_labels` applies in the predict stage.
    fn takes_new_labels(&self) -> bool {
        false
    }

    /// What the train stage reads and its settings.
    fn train_plan(&self, cfg: &ExperimentConfig) -> Result<TrainPlan>;

    /// The train stage: writes the model folder into `ctx.out` (the runner then fits its
    /// confidences' calibration through the [`crate::Predictor`]).
    fn train(&self, ctx: &TrainContext) -> Result<TrainFigures>;

    /// The predict stage's beam and top k.
    fn predict_settings(&self, cfg: &ExperimentConfig) -> PredictSettings;

    /// One sentence for the report: what the method does with this config's settings.
    fn describe(&self, cfg: &ExperimentConfig) -> Result<String>;

    /// The prediction speed (records/s on two cores) `cargo xtask bench predict` holds a folder
    /// of this method to.
    fn speed_target(&self) -> f64 {
        3000.0
    }
}

/// A loaded model folder of some method: ranks rendered inputs.
pub trait Model: Send + Sync + std::any::Any {
    /// The method's name as configs spell it.
    fn method(&self) -> &'static str;

    fn labels(&self) -> &LabelSet;

    /// The template that renders a record into the model's input.
    fn template(&self) -> &InputTemplate;

    /// The beam the model was configured with.
    fn default_beam(&self) -> usize;

    /// Each label's code in the model's tree, for code-prefix credit; `None` when the model has
    /// no tree (plain text generation).
    fn codes(&self) -> Option<Vec<Vec<u32>>>;

    /// The `beam` best labels of each rendered input with the method's scores (positive), best
    /// first. `on_batch` hears the number of inputs done.
    fn pools(&self, texts: &[&str], beam: usize, on_batch: &mut dyn FnMut(usize)) -> Result<Pools>;

    /// What each part of a composite model answers alone on `texts` (name, ranked labels), for
    /// the report's comparison; empty for a model of one part.
    fn components(&self, _texts: &[&str]) -> Result<Vec<(&'static str, Pools)>> {
        Ok(Vec::new())
    }

    /// Adds leaves `paths` (levels joined by ` > `), predictable at once; only a method that
    /// places a label by its name can.
    fn add_labels(&mut self, _paths: &[String]) -> Result<Vec<AddedLabel>> {
        bail!(
            "a `{}` model cannot take new labels without retraining: {}. Retrain with records of the new labels, or use \
             `method = \"cluster-search\"`, which places a new label by its name's embedding",
            self.method(),
            self.why_no_new_labels()
        )
    }

    /// Why the method cannot take new labels (for [`Model::add_labels`]'s refusal).
    fn why_no_new_labels(&self) -> &'static str {
        "the ranker's scorer for a label is trained on that label's records, and a new label has none"
    }

    /// Writes the model's own files back into `dir` after [`Model::add_labels`].
    fn save_labels(&self, _dir: &Path) -> Result<()> {
        bail!("a `{}` model has no labels to save apart from its training", self.method())
    }
}
