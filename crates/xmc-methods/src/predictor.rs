//! One interface over the model folders of every method: load a folder, whatever method wrote
//! it, and predict rendered inputs to top-k (label id, confidence). `xmc predict`, `xmc
//! evaluate`, `xmc serve`, the Python package and the predict stage go through it.

use std::path::Path;

use anyhow::Result;
use xmc_cluster::AddedLabel;
use xmc_data::{InputTemplate, LabelSet};

use crate::calibration::Calibration;
use crate::method::{Model, Pools};

/// A loaded model folder of any method, with its confidence calibration
/// ([`crate::calibration`]).
pub struct Predictor {
    model: Box<dyn Model>,
    calibration: Calibration,
}

impl Predictor {
    /// Loads `dir`, telling the method by the file that describes it (`xr.json` or the T5's
    /// `meta.json`), and refusing a folder that holds neither.
    pub fn load(dir: &Path) -> Result<Self> {
        let model = crate::registry::load(dir)?;
        Ok(Predictor { model, calibration: Calibration::load(dir)? })
    }

    /// The calibration in use (`T = 1` for a folder without `calibration.json`).
    pub fn calibration(&self) -> &Calibration {
        &self.calibration
    }

    /// Replaces the calibration (e.g. after fitting it on the validation split).
    pub fn set_calibration(&mut self, calibration: Calibration) {
        self.calibration = calibration;
    }

    /// The method's name as configs spell it.
    pub fn method(&self) -> &'static str {
        self.model.method()
    }

    /// The loaded model itself (e.g. for a bench that times one method's parts).
    pub fn model(&self) -> &dyn Model {
        self.model.as_ref()
    }

    pub fn labels(&self) -> &LabelSet {
        self.model.labels()
    }

    /// The template that renders a record into the model's input.
    pub fn template(&self) -> &InputTemplate {
        self.model.template()
    }

    /// The renderer of this model's input for records described by `descriptor` (the one the
    /// model was trained with, `<folder>/dataset.toml`, unless the caller names another).
    pub fn input(&self, descriptor: xmc_data::DatasetDescriptor) -> crate::input::ModelInput {
        crate::input::ModelInput::new(descriptor, self.template().clone())
    }

    /// The beam the model was configured with.
    pub fn default_beam(&self) -> usize {
        self.model.default_beam()
    }

    /// Each label's code in the model's tree, for code-prefix credit; `None` when the model has
    /// no tree (plain text generation).
    pub fn codes(&self) -> Option<Vec<Vec<u32>>> {
        self.model.codes()
    }

    /// The top `top_k` labels of each rendered input, best first, with calibrated confidences
    /// (normalised over the `max(beam, top_k)` labels the search reached; see
    /// [`crate::calibration`]), searching with `beam`. `on_batch` gets the number of inputs done.
    /// `beam` and `top_k` outside [`crate::limits`] are an error; the search never keeps more
    /// labels than the model has.
    pub fn predict_texts(&self, texts: &[&str], beam: usize, top_k: usize, on_batch: impl FnMut(usize)) -> Result<Vec<Vec<(u32, f32)>>> {
        crate::limits::check_search(beam, top_k)?;
        let pools = self.predict_pools(texts, crate::limits::pool_size(beam, top_k, self.labels().len()), on_batch)?;
        Ok(pools.iter().map(|p| self.calibration.apply(p, top_k)).collect())
    }

    /// Adds leaves `paths` (levels joined by ` > `) to the model, placed so that they can be
    /// predicted at once. Only cluster search can: the other methods learn a label from its
    /// training records, and the error says so.
    pub fn add_labels(&mut self, paths: &[String]) -> Result<Vec<AddedLabel>> {
        self.model.add_labels(paths)
    }

    /// Writes the model's own files back into `dir` after [`Self::add_labels`] (the encoder and
    /// calibration are unchanged and stay as they are).
    pub fn save_labels(&self, dir: &Path) -> Result<()> {
        self.model.save_labels(dir)
    }

    /// Each input's pool: the `beam` best labels the search reached with the method's own
    /// (uncalibrated, positive) scores, best first.
    pub fn predict_pools(&self, texts: &[&str], beam: usize, mut on_batch: impl FnMut(usize)) -> Result<Pools> {
        self.model.pools(texts, beam.max(1), &mut on_batch)
    }

    /// What each part of a composite model answers alone (see [`Model::components`]).
    pub fn components(&self, texts: &[&str]) -> Result<Vec<(&'static str, Pools)>> {
        self.model.components(texts)
    }
}

/// Fits the calibration of the model folder `dir` on the validation split of `data` (the data
/// the model was trained on: same label ids), saves it in the folder and returns it. The test
/// split is not read.
pub fn calibrate_folder(dir: &Path, data: &xmc_data::PreparedData) -> Result<Calibration> {
    let predictor = Predictor::load(dir)?;
    let valid: Vec<&xmc_data::PreparedRecord> = data.split(xmc_data::Split::Valid).collect();
    let texts: Vec<&str> = valid.iter().map(|r| r.input.as_str()).collect();
    let pool = predictor.default_beam();
    let ranked = predictor.predict_pools(&texts, pool, |_| {})?;
    let pools: Vec<crate::calibration::Pool> = ranked.iter().zip(&valid).map(|(r, v)| crate::calibration::Pool { ranked: r, truth: v.label }).collect();
    let cal = Calibration::fit(&pools, pool);
    cal.save(dir)?;
    eprintln!(
        "calibration: temperature {:.3} fitted on {} validation records; top-1 ECE {:.3} -> {:.3}",
        cal.temperature, cal.records, cal.valid_ece_before, cal.valid_ece_after
    );
    Ok(cal)
}
