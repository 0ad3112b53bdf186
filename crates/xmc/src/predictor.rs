//! One interface over the model folders of every method: load a folder, whatever method wrote
//! it, and predict rendered inputs to top-k (label id, score). `xmc predict`, `xmc evaluate` and
//! the predict stage go through it.

use std::path::Path;

use anyhow::{Context, Result, bail};
use xmc_data::{InputTemplate, LabelSet};
use xmc_model::SentenceEncoder;
use xmc_cluster::{AddedLabel, SearchModel};
use xmc_ranker::XrModel;
use xmc_train::TrainedModel;

use crate::calibration::Calibration;

/// Records whose dense embeddings are computed together by the XR ranker's encoder.
const ENCODE_BATCH: usize = 64;
/// Records featurised and ranked together (for the progress callback).
const RANK_CHUNK: usize = 2048;

/// A loaded model folder of any method, with its confidence calibration
/// ([`crate::calibration`]).
pub struct Predictor {
    model: Model,
    calibration: Calibration,
}

/// The model of each method.
enum Model {
    /// A T5 generating the label's code or path (`method = "generative"`).
    Generative(Box<TrainedModel>),
    /// Linear scorers over the label tree (`method = "xr"`), with the sentence encoders of its
    /// dense block and of its classifier when it has them.
    Xr { model: Box<XrModel>, encoders: XrEncoders },
    /// Ranker and generator candidates rescored together (`method = "fused"`).
    Fused(Box<crate::fused::FusedModel>),
    /// Level-by-level search of the label tree by sentence-encoder similarity
    /// (`method = "cluster-search"`), with the folder's encoder.
    Search { model: Box<SearchModel>, encoder: SentenceEncoder },
}

/// The encoders an xr model folder carries: one for the dense feature block, one for the
/// classifier; folders written before `classifier-encoder/` existed use one for both.
struct XrEncoders {
    dense: Option<SentenceEncoder>,
    classifier: ClassifierEncoder,
}

enum ClassifierEncoder {
    None,
    /// The dense block's encoder (an older folder with a dense block and a classifier).
    Dense,
    /// The classifier's own encoders, one per ensemble member, their embeddings concatenated.
    Own(Vec<SentenceEncoder>),
}

impl XrEncoders {
    fn load(dir: &Path, model: &XrModel) -> Result<Self> {
        let load = |enc_dir: &Path, what: &str| {
            SentenceEncoder::load(enc_dir, &xmc_model::inference_device())
                .with_context(|| format!("{}: the ranker's {what} needs its sentence encoder in `{}`", dir.display(), enc_dir.display()))
        };
        let dense_dir = dir.join(xmc_ranker::ENCODER_DIR);
        let dense = if model.meta.layout.kind.uses_dense() { Some(load(&dense_dir, "dense feature block")?) } else { None };
        let dirs = model.classifier_encoder_dirs(dir);
        let classifier = match dirs.as_slice() {
            [] => ClassifierEncoder::None,
            [d] if *d == dense_dir && dense.is_some() => ClassifierEncoder::Dense,
            dirs => ClassifierEncoder::Own(dirs.iter().map(|d| load(d, "classifier")).collect::<Result<_>>()?),
        };
        if let (Some(c), ClassifierEncoder::Own(encoders)) = (&model.classifier, &classifier) {
            let (want, have) = (c.vectors.first().map_or(0, Vec::len), encoders.iter().map(SentenceEncoder::dim).sum::<usize>());
            if want != have {
                bail!(
                    "{}: the classifier's label vectors have {want} dimensions, but its {} encoder(s) embed in {have}",
                    dir.display(),
                    encoders.len()
                );
            }
        }
        Ok(XrEncoders { dense, classifier })
    }

    /// The inputs' embeddings for the dense block (`None` without one).
    fn embed_dense(&self, texts: &[&str]) -> Result<Option<Vec<Vec<f32>>>> {
        Ok(self.dense.as_ref().map(|e| e.encode(texts, ENCODE_BATCH, |_| {})).transpose()?)
    }

    /// The classifier's embeddings of the inputs at positions `asked` (the others `None`),
    /// reusing the dense block's `dense` embeddings where the two share an encoder.
    fn embed_for_classifier(&self, texts: &[&str], asked: &[usize], dense: Option<&[Vec<f32>]>) -> Result<Vec<Option<Vec<f32>>>> {
        let mut out = vec![None; texts.len()];
        let embedded = match (&self.classifier, dense) {
            (ClassifierEncoder::None, _) => return Ok(out),
            (ClassifierEncoder::Dense, Some(dense)) => asked.iter().map(|&i| dense[i].clone()).collect(),
            (ClassifierEncoder::Dense, None) => bail!("the classifier shares the dense block's encoder, but the model has no dense block"),
            (ClassifierEncoder::Own(encoders), _) => {
                let asked_texts: Vec<&str> = asked.iter().map(|&i| texts[i]).collect();
                embed_concatenated(encoders, &asked_texts, |_| {})?
            }
        };
        for (&i, v) in asked.iter().zip(embedded) {
            out[i] = Some(v);
        }
        Ok(out)
    }
}

/// The classifier members' embeddings of `texts`, concatenated per text in member order (as
/// their label vectors are, each over the number of members, so that a logit is the members'
/// mean); `progress` hears of each batch, member after member.
pub(crate) fn embed_concatenated(encoders: &[SentenceEncoder], texts: &[&str], mut progress: impl FnMut(usize)) -> Result<Vec<Vec<f32>>> {
    let mut joined = vec![Vec::with_capacity(encoders.iter().map(SentenceEncoder::dim).sum()); texts.len()];
    for e in encoders {
        for (row, v) in joined.iter_mut().zip(e.encode(texts, ENCODE_BATCH, &mut progress)?) {
            row.extend(v);
        }
    }
    Ok(joined)
}

impl Predictor {
    /// Loads `dir`, telling the method by the file that describes it (`xr.json` or the T5's
    /// `meta.json`), and refusing a folder that holds neither.
    pub fn load(dir: &Path) -> Result<Self> {
        let model = Model::load(dir)?;
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

    pub fn labels(&self) -> &LabelSet {
        self.model.labels()
    }

    /// The template that renders a record into the model's input.
    pub fn template(&self) -> &InputTemplate {
        self.model.template()
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
    pub fn predict_texts(&self, texts: &[&str], beam: usize, top_k: usize, on_batch: impl FnMut(usize)) -> Result<Vec<Vec<(u32, f32)>>> {
        let pools = self.predict_pools(texts, beam.max(top_k), on_batch)?;
        Ok(pools.iter().map(|p| self.calibration.apply(p, top_k)).collect())
    }

    /// Adds leaves `paths` (levels joined by ` > `) to the model, placed so that they can be
    /// predicted at once. Only cluster search can: the other methods learn a label from its
    /// training records, and the error says so.
    pub fn add_labels(&mut self, paths: &[String]) -> Result<Vec<AddedLabel>> {
        let Model::Search { model, encoder } = &mut self.model else {
            bail!(
                "a `{}` model cannot take new labels without retraining: {}. Retrain with records of the new labels, or use \
                 `method = \"cluster-search\"`, which places a new label by its name's embedding",
                self.model.method(),
                match self.model {
                    Model::Generative(_) => "the T5 learns each label's code or name from its training records",
                    _ => "the ranker's scorer for a label is trained on that label's records, and a new label has none",
                }
            );
        };
        let texts = model.texts_of(paths);
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = encoder.encode(&texts, model.meta.search.batch_size, |_| {})?;
        Ok(model.add_labels(paths, &vectors)?)
    }

    /// Writes the model's own files back into `dir` after [`Self::add_labels`] (the encoder and
    /// calibration are unchanged and stay as they are).
    pub fn save_labels(&self, dir: &Path) -> Result<()> {
        match &self.model {
            Model::Search { model, .. } => Ok(model.save(dir)?),
            m => bail!("a `{}` model has no labels to save apart from its training", m.method()),
        }
    }

    /// Each input's pool: the `beam` best labels the search reached with the method's own
    /// (uncalibrated, positive) scores, best first.
    pub fn predict_pools(&self, texts: &[&str], beam: usize, on_batch: impl FnMut(usize)) -> Result<Vec<Vec<(u32, f32)>>> {
        self.model.pools(texts, beam.max(1), on_batch)
    }
}

impl Model {
    fn load(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            bail!("{}: not a model folder (it does not exist)", dir.display());
        }
        if dir.join(crate::fused::FUSION_FILE).is_file() {
            return Ok(Model::Fused(Box::new(crate::fused::FusedModel::load(dir)?)));
        }
        if dir.join(xmc_ranker::META_FILE).is_file() {
            let model = XrModel::load(dir)?;
            let encoders = XrEncoders::load(dir, &model)?;
            return Ok(Model::Xr { model: Box::new(model), encoders });
        }
        if dir.join(xmc_cluster::model::META_FILE).is_file() {
            let model = SearchModel::load(dir)?;
            let enc_dir = dir.join(xmc_cluster::model::ENCODER_DIR);
            let encoder = SentenceEncoder::load(&enc_dir, &xmc_model::inference_device())
                .with_context(|| format!("{}: cluster search needs its sentence encoder in `{}`", dir.display(), xmc_cluster::model::ENCODER_DIR))?;
            return Ok(Model::Search { model: Box::new(model), encoder });
        }
        if dir.join("meta.json").is_file() {
            return Ok(Model::Generative(Box::new(TrainedModel::load(dir, &xmc_model::inference_device())?)));
        }
        bail!(
            "{}: not a model folder: it has none of `{}` (method fused), `{}` (method xr), `{}` (method cluster-search), \
             `meta.json` (method generative)",
            dir.display(),
            crate::fused::FUSION_FILE,
            xmc_ranker::META_FILE,
            xmc_cluster::model::META_FILE
        )
    }

    /// The method's name as configs spell it.
    fn method(&self) -> &'static str {
        match self {
            Model::Generative(_) => "generative",
            Model::Xr { .. } => "xr",
            Model::Fused(_) => "fused",
            Model::Search { .. } => "cluster-search",
        }
    }

    fn labels(&self) -> &LabelSet {
        match self {
            Model::Generative(t) => &t.labels,
            Model::Xr { model, .. } => &model.labels,
            Model::Fused(f) => &f.parts.xr.labels,
            Model::Search { model, .. } => &model.labels,
        }
    }

    /// The template that renders a record into the model's input.
    fn template(&self) -> &InputTemplate {
        match self {
            Model::Generative(t) => &t.meta.template,
            Model::Xr { model, .. } => &model.meta.template,
            Model::Fused(f) => &f.parts.xr.meta.template,
            Model::Search { model, .. } => &model.meta.template,
        }
    }

    /// The beam the model was configured with.
    fn default_beam(&self) -> usize {
        match self {
            Model::Generative(t) => t.meta.model.beam_width,
            Model::Xr { model, .. } => model.meta.config.beam,
            Model::Fused(f) => f.parts.xr.meta.config.beam,
            Model::Search { model, .. } => model.meta.search.beam,
        }
    }

    /// Each label's code in the model's tree, for code-prefix credit; `None` when the model has
    /// no tree (plain text generation).
    fn codes(&self) -> Option<Vec<Vec<u32>>> {
        match self {
            Model::Generative(t) => crate::evaluate::model_codes(t),
            Model::Xr { model, .. } => Some(model.ranker.tree.codes()),
            Model::Fused(f) => Some(f.parts.xr.ranker.tree.codes()),
            Model::Search { model, .. } => Some(model.index.tree.codes()),
        }
    }

    /// The `beam` best labels of each rendered input with the method's scores, best first.
    /// `on_batch` gets the number of inputs done.
    fn pools(&self, texts: &[&str], beam: usize, mut on_batch: impl FnMut(usize)) -> Result<Vec<Vec<(u32, f32)>>> {
        match self {
            Model::Generative(t) => {
                let hyps = crate::predict::predict_texts(t, texts, beam, beam, on_batch)?;
                Ok(hyps.into_iter().map(|h| h.into_iter().map(|h| (h.label, h.score)).collect()).collect())
            }
            Model::Xr { model, encoders } => {
                let mut out = Vec::with_capacity(texts.len());
                for chunk in texts.chunks(RANK_CHUNK) {
                    let dense = encoders.embed_dense(chunk)?;
                    let x = model.features(chunk, dense.as_deref())?;
                    let pools = model.predict(&x, Some(beam), model.pool_size(beam));
                    // The classifier's encoder embeds only the records the classifier is consulted on.
                    let asked: Vec<usize> = (0..chunk.len()).filter(|&i| model.consults_classifier(&pools[i])).collect();
                    let for_classifier = encoders.embed_for_classifier(chunk, &asked, dense.as_deref())?;
                    out.extend(model.rescore(pools, &x, |i| for_classifier[i].as_deref(), beam));
                    on_batch(chunk.len());
                }
                Ok(out)
            }
            // The candidates and the beams are the fused model's own; the pool is every candidate.
            Model::Fused(f) => f.predict_texts(texts, usize::MAX, on_batch),
            // Mean cosine similarities, made positive as exp(s): the confidence is then a softmax
            // of s / T.
            Model::Search { model, encoder } => {
                let mut out = Vec::with_capacity(texts.len());
                for chunk in texts.chunks(RANK_CHUNK) {
                    let queries = encoder.encode(chunk, model.meta.search.batch_size, |_| {})?;
                    let hits = model.search(&queries, beam, beam);
                    out.extend(hits.into_iter().map(|h| h.into_iter().map(|(l, s)| (l, s.exp())).collect::<Vec<_>>()));
                    on_batch(chunk.len());
                }
                Ok(out)
            }
        }
    }
}
