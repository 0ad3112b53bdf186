//! The ranker's model folder: everything prediction needs, checked on load.
//!
//! `xr.json` (method, format, configs, feature layout, template), `tfidf.json` (vocabulary and
//! idf, when the features have a sparse block), `tree.json`, `weights.safetensors` (every node's
//! weights as (feature, child, weight) entries, the children's biases) and `labels.json`; an
//! ensemble adds `tree-{i}.json` and `weights-{i}.safetensors` for its further trees (i = 1, 2, ...). A
//! dense block's sentence encoder is the folder `encoder/` inside the model folder; the encoder
//! of the classifier (`classifier.json`) is `classifier-encoder/` (folders written before it
//! existed kept it in `encoder/`, without a dense block). The caller loads the encoders.

use std::collections::HashMap;
use std::path::Path;

use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use serde::{Deserialize, Serialize};
use xmc_codes::LabelTree;
use xmc_data::{InputTemplate, LabelSet};

use crate::classifier::{CLASSIFIER_FILE, EncoderClassifier, WeightFit};
use crate::config::RankerConfig;
use crate::error::{RankerError, Result};
use crate::features::FeatureLayout;
use crate::ranker::{NodeScorer, TreeRanker};
use crate::sparse::SparseRows;
use crate::tfidf::TfidfVectorizer;

/// The method a model folder of this crate holds, as written in `xr.json`.
pub const METHOD: &str = "xr";
/// Bump when the folder's layout or meaning changes; older folders are refused.
pub const FORMAT: u32 = 1;
pub const META_FILE: &str = "xr.json";
const TFIDF_FILE: &str = "tfidf.json";
const TREE_FILE: &str = "tree.json";
/// The most trees beyond the first an ensemble may have (`ranker.ensemble`).
const MAX_EXTRA_TREES: usize = 64;
const WEIGHTS_FILE: &str = "weights.safetensors";
/// Candidates the beam hands to the encoder's classifier (the true label is among the TF-IDF
/// ranker's top 20 for ~96% of amazon-uk's validation records).
pub const CLASSIFIER_POOL: usize = 20;
/// The sentence encoder's folder inside the model folder, for a dense block.
pub const ENCODER_DIR: &str = "encoder";
/// The fine-tuned encoder's folder inside the model folder, for the classifier (its first
/// member; see [`classifier_member_dir`]).
pub const CLASSIFIER_ENCODER_DIR: &str = "classifier-encoder";

/// The folder of the classifier's encoder `member` (0-based) inside the model folder:
/// `classifier-encoder`, `classifier-encoder-2`, ... An ensemble's classifier takes the
/// concatenation of its members' embeddings, in member order.
pub fn classifier_member_dir(member: usize) -> String {
    if member == 0 { CLASSIFIER_ENCODER_DIR.to_string() } else { format!("{CLASSIFIER_ENCODER_DIR}-{}", member + 1) }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct XrMeta {
    pub method: String,
    pub format: u32,
    pub xmc_version: String,
    pub config: RankerConfig,
    pub layout: FeatureLayout,
    /// The template that turned records into inputs, so prediction renders them the same way.
    pub template: InputTemplate,
    /// Further trees of the ensemble (`tree-{i}.json`, `weights-{i}.safetensors`).
    #[serde(default)]
    pub extra_trees: usize,
}

/// A trained ranker with what turns text into its features.
#[derive(Debug, Clone)]
pub struct XrModel {
    pub meta: XrMeta,
    pub vectorizer: Option<TfidfVectorizer>,
    /// The ranker over the tree stage's tree (whose codes the generator shares).
    pub ranker: TreeRanker,
    /// Rankers over the ensemble's further trees (`RankerConfig::ensemble`); their scores are
    /// averaged with the main one's.
    pub extra: Vec<TreeRanker>,
    pub labels: LabelSet,
    /// The fine-tuned encoder's classifier that rescores the ranker's candidates
    /// (`classifier.json`), when the run fitted one.
    pub classifier: Option<EncoderClassifier>,
}

/// What [`XrModel::fit`] learns from.
pub struct TrainingData<'a> {
    /// Rendered inputs of the training records.
    pub texts: &'a [&'a str],
    /// Each training record's label id.
    pub labels: &'a [u32],
    /// Their embeddings, when the features have a dense block.
    pub dense: Option<&'a [Vec<f32>]>,
}

impl XrModel {
    /// Fits the vectorizer on the training texts and trains a ranker over `tree` and over each of
    /// `extra_trees` (the ensemble's further trees). `progress` is called once per trained node.
    pub fn fit(
        data: &TrainingData,
        tree: &LabelTree,
        extra_trees: &[LabelTree],
        labels: &LabelSet,
        cfg: &RankerConfig,
        template: &InputTemplate,
        progress: impl Fn(usize) + Sync,
    ) -> Result<(Self, crate::ranker::TrainingSummary)> {
        cfg.validate().map_err(RankerError::Config)?;
        if let Some(t) = std::iter::once(tree).chain(extra_trees).find(|t| t.n_labels != labels.len()) {
            return Err(RankerError::Train(format!("{} labels but a tree has {}", labels.len(), t.n_labels)));
        }
        let vectorizer = cfg.features.uses_sparse().then(|| TfidfVectorizer::fit(data.texts, &cfg.tfidf));
        let dense_dim = match data.dense {
            Some(d) if cfg.features.uses_dense() => d.first().map_or(0, Vec::len),
            _ => 0,
        };
        let layout = FeatureLayout {
            kind: cfg.features,
            sparse_dim: vectorizer.as_ref().map_or(0, TfidfVectorizer::dim),
            dense_dim,
            dense_weight: cfg.dense_weight,
        };
        let x = layout.rows(vectorizer.as_ref(), data.texts, data.dense)?;
        tracing::info!("ranker: {} training rows, {} features ({} non-zeros)", x.rows(), x.n_cols, x.nnz());
        let (ranker, summary) = TreeRanker::train(tree, &x, data.labels, cfg, layout.dense_start(), &progress)?;
        let extra = extra_trees
            .iter()
            .map(|t| TreeRanker::train(t, &x, data.labels, cfg, layout.dense_start(), &progress).map(|(r, _)| r))
            .collect::<Result<Vec<_>>>()?;
        let meta = XrMeta {
            method: METHOD.into(),
            format: FORMAT,
            xmc_version: env!("CARGO_PKG_VERSION").into(),
            config: cfg.clone(),
            layout,
            template: template.clone(),
            extra_trees: extra.len(),
        };
        Ok((XrModel { meta, vectorizer, ranker, extra, labels: labels.clone(), classifier: None }, summary))
    }

    /// Feature rows of rendered inputs; `dense` holds their embeddings when the layout has a
    /// dense block.
    pub fn features(&self, texts: &[&str], dense: Option<&[Vec<f32>]>) -> Result<SparseRows> {
        self.meta.layout.rows(self.vectorizer.as_ref(), texts, dense)
    }

    /// Top-k labels with path scores for each row, with the model's beam unless `beam` is given;
    /// an ensemble's score is the mean over its trees.
    pub fn predict(&self, x: &SparseRows, beam: Option<usize>, top_k: usize) -> Vec<Vec<(u32, f32)>> {
        let beam = beam.unwrap_or(self.meta.config.beam).max(1);
        if self.extra.is_empty() {
            return self.ranker.predict_all(x, beam, top_k);
        }
        use rayon::prelude::*;
        let n = (1 + self.extra.len()) as f32;
        (0..x.rows())
            .into_par_iter()
            .map(|r| {
                let mut sum: HashMap<u32, f32> = HashMap::new();
                for ranker in std::iter::once(&self.ranker).chain(&self.extra) {
                    for (label, score) in ranker.predict(x.row(r), beam, top_k.max(beam)) {
                        *sum.entry(label).or_default() += score / n;
                    }
                }
                let mut best: Vec<(u32, f32)> = sum.into_iter().collect();
                best.sort_unstable_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
                best.truncate(top_k);
                best
            })
            .collect()
    }

    /// The score of each of `labels` for row `x`, whether or not a beam would reach it (the mean
    /// over an ensemble's trees).
    pub fn label_scores(&self, x: crate::sparse::RowView, labels: &[u32]) -> Vec<f32> {
        let mut scores = self.ranker.label_scores(x, labels);
        for ranker in &self.extra {
            for (s, t) in scores.iter_mut().zip(ranker.label_scores(x, labels)) {
                *s += t;
            }
        }
        let n = (1 + self.extra.len()) as f32;
        scores.iter_mut().for_each(|s| *s /= n);
        scores
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| RankerError::io(dir, e))?;
        write_json(&dir.join(META_FILE), &self.meta)?;
        if let Some(v) = &self.vectorizer {
            write_json(&dir.join(TFIDF_FILE), v)?;
        }
        write_json(&dir.join(TREE_FILE), &self.ranker.tree)?;
        save_weights(&dir.join(WEIGHTS_FILE), &self.ranker)?;
        for (i, ranker) in self.extra.iter().enumerate() {
            write_json(&dir.join(extra_file(TREE_FILE, i)), &ranker.tree)?;
            save_weights(&dir.join(extra_file(WEIGHTS_FILE, i)), ranker)?;
        }
        self.labels.save(dir).map_err(|e| RankerError::model(dir, e.to_string()))?;
        if let Some(c) = &self.classifier {
            write_json(&dir.join(CLASSIFIER_FILE), c)?;
        }
        Ok(())
    }

    /// Loads a folder written by [`XrModel::save`], refusing one of another method, format or an
    /// incomplete one with a message naming what is wrong.
    pub fn load(dir: &Path) -> Result<Self> {
        if !dir.is_dir() {
            return Err(RankerError::model(dir, "not a model folder (it does not exist)"));
        }
        let meta: XrMeta = read_json(&dir.join(META_FILE))?;
        if meta.method != METHOD {
            return Err(RankerError::model(dir, format!("holds method `{}`, not `{METHOD}`", meta.method)));
        }
        if meta.format != FORMAT {
            return Err(RankerError::model(
                dir,
                format!("written in xr format {} by xmc {}; this xmc reads format {FORMAT}: retrain it", meta.format, meta.xmc_version),
            ));
        }
        if meta.extra_trees > MAX_EXTRA_TREES {
            return Err(RankerError::model(&dir.join(META_FILE), format!("`extra_trees` = {} is more than {MAX_EXTRA_TREES}", meta.extra_trees)));
        }
        let mut required: Vec<String> = [TREE_FILE, WEIGHTS_FILE, xmc_data::LABELS_FILE].map(String::from).to_vec();
        if meta.layout.kind.uses_sparse() {
            required.push(TFIDF_FILE.into());
        }
        for i in 0..meta.extra_trees {
            required.extend([extra_file(TREE_FILE, i), extra_file(WEIGHTS_FILE, i)]);
        }
        if let Some(missing) = required.iter().find(|f| !dir.join(f).is_file()) {
            return Err(RankerError::model(dir, format!("not a complete model folder: `{missing}` is missing (expected {})", required.join(", "))));
        }
        let vectorizer = if meta.layout.kind.uses_sparse() {
            let v: TfidfVectorizer = read_json(&dir.join(TFIDF_FILE))?;
            v.check().map_err(|e| RankerError::model(&dir.join(TFIDF_FILE), e))?;
            if v.dim() != meta.layout.sparse_dim {
                return Err(RankerError::model(&dir.join(TFIDF_FILE), format!("{} features, but xr.json says {}", v.dim(), meta.layout.sparse_dim)));
            }
            Some(v.after_load())
        } else {
            None
        };
        let labels = LabelSet::load(dir).map_err(|e| RankerError::model(dir, e.to_string()))?;
        let load_ranker = |tree_file: &str, weights_file: &str| -> Result<TreeRanker> {
            let tree: LabelTree = read_json(&dir.join(tree_file))?;
            tree.validate().map_err(|e| RankerError::model(&dir.join(tree_file), e.to_string()))?;
            if labels.len() != tree.n_labels {
                return Err(RankerError::model(dir, format!("{} labels in labels.json but {} in {tree_file}", labels.len(), tree.n_labels)));
            }
            let nodes = load_weights(&dir.join(weights_file), &tree, meta.layout.dim())?;
            Ok(TreeRanker::new(tree, nodes, meta.config.bias, meta.config.path_score, meta.config.path_combine))
        };
        let ranker = load_ranker(TREE_FILE, WEIGHTS_FILE)?;
        let extra = (0..meta.extra_trees).map(|i| load_ranker(&extra_file(TREE_FILE, i), &extra_file(WEIGHTS_FILE, i))).collect::<Result<_>>()?;
        let classifier_path = dir.join(CLASSIFIER_FILE);
        let classifier = if classifier_path.is_file() {
            let c: EncoderClassifier = read_json(&classifier_path)?;
            let dim = c.vectors.first().map_or(0, Vec::len);
            c.check(labels.len(), dim).map_err(|e| RankerError::model(&classifier_path, e.to_string()))?;
            Some(c)
        } else {
            None
        };
        Ok(XrModel { meta, vectorizer, ranker, extra, labels, classifier })
    }

    /// True when prediction needs the sentence encoder's embedding of the inputs (a dense
    /// feature block or the encoder's classifier).
    pub fn needs_embeddings(&self) -> bool {
        self.meta.layout.kind.uses_dense() || self.classifier.is_some()
    }

    /// The folders (inside the model folder `dir`) of the classifier's encoders, in member
    /// order, when the model has a classifier: `classifier-encoder/` and its further members'
    /// folders, or `encoder/` in folders written before `classifier-encoder/` existed.
    pub fn classifier_encoder_dirs(&self, dir: &Path) -> Vec<std::path::PathBuf> {
        if self.classifier.is_none() {
            return Vec::new();
        }
        if !dir.join(CLASSIFIER_ENCODER_DIR).is_dir() {
            return vec![dir.join(ENCODER_DIR)];
        }
        (0..).map(|m| dir.join(classifier_member_dir(m))).take_while(|d| d.is_dir()).collect()
    }

    /// How many candidates to take from the beam so that `top_k` remain after rescoring.
    pub fn pool_size(&self, top_k: usize) -> usize {
        if self.classifier.is_some() { top_k.max(CLASSIFIER_POOL) } else { top_k }
    }

    /// Whether the classifier has a say on a record with these ranker candidates (best first),
    /// so that its encoder must embed the record ([`EncoderClassifier::consulted`]).
    pub fn consults_classifier(&self, candidates: &[(u32, f32)]) -> bool {
        self.classifier.as_ref().is_some_and(|c| c.consulted(candidates))
    }

    /// Fits `classifier` on validation records (their feature rows `x`, unit `embeddings` by its
    /// encoder and true labels): its weights over the ranker's [`CLASSIFIER_POOL`] candidates
    /// ([`EncoderClassifier::fit_weight`]), then its cascade ([`EncoderClassifier::fit_skip`]).
    /// With `own_candidates` > 0 the weights are also fitted over the candidates widened by the
    /// classifier's own most probable labels ([`Self::widen`]), and the widening is kept only if
    /// its cross-fitted accuracy beats that of the ranker's candidates alone. With
    /// `ranker.classifier_parent` the weights are also fitted with the parent's evidence
    /// ([`EncoderClassifier::parent_weight`]), kept on the same terms; with
    /// `ranker.classifier_label_text` and the labels' text vectors in `classifier`, so is the
    /// label text's evidence ([`EncoderClassifier::text_weight`]). Returns the fit over the
    /// ranker's candidates alone too when the widening was tried, for the record.
    pub fn fit_classifier(
        &self,
        mut classifier: EncoderClassifier,
        x: &SparseRows,
        embeddings: &[Vec<f32>],
        truths: &[u32],
        own_candidates: usize,
    ) -> (EncoderClassifier, Option<WeightFit>) {
        let mut candidates = self.predict(x, None, CLASSIFIER_POOL);
        classifier.own_candidates = 0;
        // The label texts' vectors join only in their own trial below.
        let text_vectors = std::mem::take(&mut classifier.text_vectors);
        classifier.fit_weight(&candidates, embeddings, truths, &self.labels);
        let mut narrow_fit = None;
        if own_candidates > 0 {
            let mut wide = EncoderClassifier { own_candidates, ..classifier.clone() };
            use rayon::prelude::*;
            let widened: Vec<Vec<(u32, f32)>> = candidates
                .par_iter()
                .zip(embeddings)
                .enumerate()
                .map(|(i, (pool, e))| {
                    let mut pool = pool.clone();
                    self.widen_one(&wide, x.row(i), &mut pool, e);
                    pool
                })
                .collect();
            wide.fit_weight(&widened, embeddings, truths, &self.labels);
            narrow_fit = Some(classifier.fit.clone());
            if wide.fit.cross_fitted_accuracy > classifier.fit.cross_fitted_accuracy && wide.weight > 0.0 {
                (classifier, candidates) = (wide, widened);
            }
        }
        if self.meta.config.classifier_parent {
            let without = classifier.fit.cross_fitted_accuracy;
            let mut with_parent = EncoderClassifier { parents: crate::classifier::parent_groups(&self.labels), ..classifier.clone() };
            with_parent.fit_weight(&candidates, embeddings, truths, &self.labels);
            if with_parent.fit.cross_fitted_accuracy > without && with_parent.parent_weight > 0.0 {
                classifier = with_parent;
            }
            classifier.fit.without_parent_cross_fitted_accuracy = Some(without);
        }
        if self.meta.config.classifier_label_text && !text_vectors.is_empty() {
            let without = classifier.fit.clone();
            let mut with_text = EncoderClassifier { text_vectors, ..classifier.clone() };
            with_text.fit_weight(&candidates, embeddings, truths, &self.labels);
            tracing::info!(
                "the label text's evidence: best weight {:.2} (classifier weight {:.2}); cross-fitted validation accuracy / tail accuracy {:.4} / {:?} with it, {:.4} / {:?} without",
                with_text.text_weight,
                with_text.weight,
                with_text.fit.cross_fitted_accuracy,
                with_text.fit.cross_fitted_tail_accuracy,
                without.cross_fitted_accuracy,
                without.cross_fitted_tail_accuracy
            );
            if with_text.fit.cross_fitted_accuracy > without.cross_fitted_accuracy && with_text.text_weight > 0.0 {
                with_text.fit.without_parent_cross_fitted_accuracy = without.without_parent_cross_fitted_accuracy;
                classifier = with_text;
            }
            classifier.fit.without_text_cross_fitted_accuracy = Some(without.cross_fitted_accuracy);
        }
        classifier.fit_skip(&candidates, embeddings, truths, &self.labels);
        (classifier, narrow_fit)
    }

    /// Adds to each pool where the classifier is consulted the classifier's own
    /// [`EncoderClassifier::own_candidates`] most probable labels that the pool lacks, with the
    /// ranker's path score for them ([`Self::label_scores`]), after the ranker's candidates (so the
    /// cascade's gate, which reads the first ones, is unchanged). `x` holds the pools' feature
    /// rows; `embedding(i)` is as in [`Self::rescore`], which calls it.
    pub fn widen<'e>(&self, x: &SparseRows, pools: &mut [Vec<(u32, f32)>], embedding: impl Fn(usize) -> Option<&'e [f32]>) {
        let Some(c) = self.classifier.as_ref().filter(|c| c.own_candidates > 0) else { return };
        for (i, pool) in pools.iter_mut().enumerate() {
            if let Some(e) = embedding(i).filter(|_| c.consulted(pool)) {
                self.widen_one(c, x.row(i), pool, e);
            }
        }
    }

    /// [`Self::widen`] for one record with classifier `c`, whether or not it would be consulted
    /// (the fit widens every validation record before the weights exist).
    pub fn widen_one(&self, c: &EncoderClassifier, x: crate::sparse::RowView, pool: &mut Vec<(u32, f32)>, embedding: &[f32]) {
        let missing: Vec<u32> = c.top_labels(embedding, c.own_candidates).into_iter().filter(|l| !pool.iter().any(|p| p.0 == *l)).collect();
        if !missing.is_empty() {
            pool.extend(missing.iter().copied().zip(self.label_scores(x, &missing)));
        }
    }

    /// The ranker's candidates rescored by the encoder's classifier where it is consulted
    /// (widened first by its own candidates, [`Self::widen`]), the ranker's order elsewhere; `x`
    /// holds the pools' feature rows, `embedding(i)` is input `i`'s unit embedding by the
    /// classifier's encoder (`None` when it was not embedded: the ranker's order).
    pub fn rescore<'e>(&self, mut pools: Vec<Vec<(u32, f32)>>, x: &SparseRows, embedding: impl Fn(usize) -> Option<&'e [f32]>, top_k: usize) -> Vec<Vec<(u32, f32)>> {
        self.widen(x, &mut pools, &embedding);
        pools
            .into_iter()
            .enumerate()
            .map(|(i, mut pool)| match (&self.classifier, embedding(i)) {
                (Some(c), Some(e)) if c.consulted(&pool) => c.rescore(e, &pool, top_k),
                _ => {
                    pool.truncate(top_k);
                    pool
                }
            })
            .collect()
    }
}

/// The file of the ensemble's further tree `i` (0-based): `tree.json` -> `tree-1.json`.
fn extra_file(file: &str, i: usize) -> String {
    let (stem, ext) = file.split_once('.').expect("file names have an extension");
    format!("{stem}-{}.{ext}", i + 1)
}

fn write_json(path: &Path, value: &impl Serialize) -> Result<()> {
    std::fs::write(path, serde_json::to_string(value).expect("serialises") + "\n").map_err(|e| RankerError::io(path, e))
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| RankerError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| RankerError::model(path, e.to_string()))
}

fn le_bytes<T: Copy, const N: usize>(values: &[T], to: impl Fn(T) -> [u8; N]) -> Vec<u8> {
    values.iter().flat_map(|&v| to(v)).collect()
}

fn save_weights(path: &Path, ranker: &TreeRanker) -> Result<()> {
    let mut node_ptr = vec![0u64];
    let (mut feature, mut child, mut weight, mut bias) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for node in &ranker.nodes {
        for (i, &f) in node.features.iter().enumerate() {
            for e in node.row_ptr[i] as usize..node.row_ptr[i + 1] as usize {
                feature.push(f);
                child.push(node.child[e]);
                weight.push(node.weight[e]);
            }
        }
        node_ptr.push(feature.len() as u64);
        bias.extend_from_slice(&node.bias);
    }
    let buffers = [
        ("node_ptr", Dtype::U64, le_bytes(&node_ptr, u64::to_le_bytes)),
        ("feature", Dtype::U32, le_bytes(&feature, u32::to_le_bytes)),
        ("child", Dtype::U32, le_bytes(&child, u32::to_le_bytes)),
        ("weight", Dtype::F32, le_bytes(&weight, f32::to_le_bytes)),
        ("bias", Dtype::F32, le_bytes(&bias, f32::to_le_bytes)),
    ];
    let views = buffers
        .iter()
        .map(|(name, dtype, bytes)| {
            let n = bytes.len() / 4 / if *dtype == Dtype::U64 { 2 } else { 1 };
            TensorView::new(*dtype, vec![n], bytes).map(|v| (name.to_string(), v))
        })
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| RankerError::model(path, e.to_string()))?;
    let info = HashMap::from([("format".to_string(), FORMAT.to_string())]);
    safetensors::serialize_to_file(views, Some(info), path).map_err(|e| RankerError::model(path, e.to_string()))
}

fn load_weights(path: &Path, tree: &LabelTree, dim: usize) -> Result<Vec<NodeScorer>> {
    let bytes = std::fs::read(path).map_err(|e| RankerError::io(path, e))?;
    let st = SafeTensors::deserialize(&bytes).map_err(|e| RankerError::model(path, e.to_string()))?;
    let bad = |m: String| RankerError::model(path, m);
    let tensor = |name: &str, dtype: Dtype| -> Result<Vec<u8>> {
        let t = st.tensor(name).map_err(|e| bad(format!("tensor `{name}`: {e}")))?;
        if t.dtype() != dtype {
            return Err(bad(format!("tensor `{name}` is {:?}, expected {dtype:?}", t.dtype())));
        }
        Ok(t.data().to_vec())
    };
    let u64s = |b: Vec<u8>| b.chunks_exact(8).map(|c| u64::from_le_bytes(c.try_into().expect("8 bytes"))).collect::<Vec<_>>();
    let u32s = |b: Vec<u8>| b.chunks_exact(4).map(|c| u32::from_le_bytes(c.try_into().expect("4 bytes"))).collect::<Vec<_>>();
    let f32s = |b: Vec<u8>| b.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes"))).collect::<Vec<_>>();
    let node_ptr = u64s(tensor("node_ptr", Dtype::U64)?);
    let feature = u32s(tensor("feature", Dtype::U32)?);
    let child = u32s(tensor("child", Dtype::U32)?);
    let weight = f32s(tensor("weight", Dtype::F32)?);
    let bias = f32s(tensor("bias", Dtype::F32)?);
    let n = tree.nodes.len();
    let total_children: usize = tree.nodes.iter().map(|t| t.children.len()).sum();
    if node_ptr.len() != n + 1 || bias.len() != total_children {
        return Err(bad(format!("weights for {} nodes and {} children, the tree has {n} and {total_children}", node_ptr.len().saturating_sub(1), bias.len())));
    }
    if feature.len() != child.len() || feature.len() != weight.len() || node_ptr[n] as usize != feature.len() || node_ptr.windows(2).any(|w| w[0] > w[1]) {
        return Err(bad("entry tensors disagree in length".into()));
    }
    let mut nodes = Vec::with_capacity(n);
    let mut b = 0;
    for (i, node) in tree.nodes.iter().enumerate() {
        let (lo, hi) = (node_ptr[i] as usize, node_ptr[i + 1] as usize);
        let k = node.children.len();
        let mut entries = Vec::with_capacity(hi - lo);
        for e in lo..hi {
            if feature[e] as usize >= dim || child[e] as usize >= k || !weight[e].is_finite() {
                return Err(bad(format!("node {i}: entry {e} (feature {}, child {}) is out of range", feature[e], child[e])));
            }
            entries.push((feature[e], child[e], weight[e]));
        }
        nodes.push(NodeScorer::from_entries(entries, bias[b..b + k].to_vec()));
        b += k;
    }
    Ok(nodes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FeatureKind;
    use crate::tfidf::TfidfConfig;
    use xmc_codes::{Child, TreeNode};

    fn model() -> (XrModel, Vec<&'static str>) {
        let texts = vec!["red racing car", "blue racing car", "red mountain bike", "blue mountain bike", "red car toy", "mountain bike red"];
        let labels_of = [0u32, 0, 1, 1, 0, 1];
        let vectorizer = TfidfVectorizer::fit(&texts, &TfidfConfig::default());
        let layout = FeatureLayout { kind: FeatureKind::Sparse, sparse_dim: vectorizer.dim(), dense_dim: 0, dense_weight: 1.0 };
        let x = layout.rows(Some(&vectorizer), &texts, None).unwrap();
        let tree = LabelTree { n_labels: 2, nodes: vec![TreeNode { children: vec![Child::Label(0), Child::Label(1)] }] };
        let cfg = RankerConfig { threshold: 0.0, ..RankerConfig::default() };
        let (ranker, _) = TreeRanker::train(&tree, &x, &labels_of, &cfg, u32::MAX, |_| {}).unwrap();
        let paths = [vec!["Toys".to_string(), "Cars".to_string()], vec!["Sport".to_string(), "Bikes".to_string()]];
        let labels = LabelSet::from_paths(paths.iter().map(|p| p.as_slice()), 25);
        let meta = XrMeta { method: METHOD.into(), format: FORMAT, xmc_version: "test".into(), config: cfg, layout, template: InputTemplate::default(), extra_trees: 0 };
        (XrModel { meta, vectorizer: Some(vectorizer), ranker, extra: Vec::new(), labels, classifier: None }, texts)
    }

    /// Four labels in two clusters (cars 0, 1; bikes 2, 3) and a beam of 1: a record's pool
    /// holds one cluster's labels only.
    fn two_level_model() -> (XrModel, SparseRows) {
        let texts = ["red racing car", "fast racing car", "blue toy car", "small toy car", "red mountain bike", "steep mountain bike", "blue road bike", "fast road bike"];
        let labels_of = [0u32, 0, 1, 1, 2, 2, 3, 3];
        let vectorizer = TfidfVectorizer::fit(&texts, &TfidfConfig::default());
        let layout = FeatureLayout { kind: FeatureKind::Sparse, sparse_dim: vectorizer.dim(), dense_dim: 0, dense_weight: 1.0 };
        let x = layout.rows(Some(&vectorizer), &texts, None).unwrap();
        let nodes = vec![
            TreeNode { children: vec![Child::Node(1), Child::Node(2)] },
            TreeNode { children: vec![Child::Label(0), Child::Label(1)] },
            TreeNode { children: vec![Child::Label(2), Child::Label(3)] },
        ];
        let tree = LabelTree { n_labels: 4, nodes };
        let cfg = RankerConfig { threshold: 0.0, beam: 1, ..RankerConfig::default() };
        let (ranker, _) = TreeRanker::train(&tree, &x, &labels_of, &cfg, u32::MAX, |_| {}).unwrap();
        let paths: Vec<Vec<String>> = ["Cars > Racing", "Cars > Toy", "Bikes > Mountain", "Bikes > Road"].iter().map(|p| p.split(" > ").map(String::from).collect()).collect();
        let labels = LabelSet::from_paths(paths.iter().map(|p| p.as_slice()), 25);
        let meta = XrMeta { method: METHOD.into(), format: FORMAT, xmc_version: "test".into(), config: cfg, layout, template: InputTemplate::default(), extra_trees: 0 };
        let model = XrModel { meta, vectorizer: Some(vectorizer), ranker, extra: Vec::new(), labels, classifier: None };
        let valid = model.features(&["racing car"; 8], None).unwrap();
        (model, valid)
    }

    /// A classifier over the four labels whose embedding `e(l)` points at label `l`.
    fn classifier_of_four() -> (EncoderClassifier, impl Fn(u32) -> Vec<f32>) {
        let unit = |l: u32| (0..4).map(|i| if i == l { 1.0 } else { 0.0 }).collect::<Vec<f32>>();
        (EncoderClassifier::new(0.1, (0..4).map(unit).collect()), unit)
    }

    #[test]
    fn widening_adds_the_classifiers_labels_the_beam_missed_with_their_path_scores() {
        let (mut model, x) = two_level_model();
        let pools = model.predict(&x, None, CLASSIFIER_POOL);
        assert_eq!(pools[0].iter().map(|p| p.0).collect::<Vec<_>>(), vec![0, 1], "the beam of 1 reaches the cars only");
        let (classifier, e) = classifier_of_four();
        let embeddings: Vec<Vec<f32>> = (0..x.rows()).map(|_| e(2)).collect();
        // No classifier, no weight, or no own candidates: the pools stay as they are.
        let mut same = pools.clone();
        model.widen(&x, &mut same, |i| Some(embeddings[i].as_slice()));
        model.classifier = Some(EncoderClassifier { own_candidates: 2, ..classifier.clone() });
        model.widen(&x, &mut same, |i| Some(embeddings[i].as_slice()));
        model.classifier = Some(EncoderClassifier { weight: 1.0, ..classifier.clone() });
        model.widen(&x, &mut same, |i| Some(embeddings[i].as_slice()));
        assert_eq!(same, pools);
        // Consulted: the classifier's top 2 (labels 2, then 0 and 1 and 3 tied: 0) join where
        // they are missing, after the ranker's candidates, with the ranker's own path scores.
        model.classifier = Some(EncoderClassifier { weight: 1.0, own_candidates: 2, ..classifier });
        let mut wide = pools.clone();
        model.widen(&x, &mut wide, |i| (i != 1).then(|| embeddings[i].as_slice()));
        assert_eq!(wide[1], pools[1], "a record not embedded is not widened");
        assert_eq!(wide[0].len(), 3);
        assert_eq!(wide[0][..2], pools[0][..]);
        assert_eq!(wide[0][2].0, 2);
        assert_eq!(wide[0][2].1, model.label_scores(x.row(0), &[2])[0]);
        assert!(wide[0][2].1 < pools[0][1].1, "the ranker scores the bikes below the cars");
    }

    #[test]
    fn the_fit_keeps_the_classifiers_own_candidates_only_where_they_win() {
        let (model, x) = two_level_model();
        let (classifier, e) = classifier_of_four();
        // Validation records that read like racing cars but are mountain bikes, and the
        // classifier knows it: only a widened pool can hold the truth.
        let truths = vec![2u32; x.rows()];
        let embeddings: Vec<Vec<f32>> = truths.iter().map(|&t| e(t)).collect();
        let (fitted, narrow) = model.fit_classifier(classifier.clone(), &x, &embeddings, &truths, 0);
        assert!(narrow.is_none(), "not tried");
        assert_eq!((fitted.own_candidates, fitted.fit.cross_fitted_accuracy), (0, 0.0));
        let (fitted, narrow) = model.fit_classifier(classifier.clone(), &x, &embeddings, &truths, 1);
        assert_eq!(narrow.unwrap().cross_fitted_accuracy, 0.0);
        assert_eq!(fitted.own_candidates, 1);
        assert_eq!(fitted.fit.cross_fitted_accuracy, 1.0);
        assert!(fitted.weight > 0.0);
        // Records the ranker already gets right: widening adds nothing, so it is not kept.
        let truths = vec![0u32; x.rows()];
        let embeddings: Vec<Vec<f32>> = truths.iter().map(|&t| e(t)).collect();
        let (fitted, narrow) = model.fit_classifier(classifier, &x, &embeddings, &truths, 2);
        assert_eq!(narrow.unwrap().cross_fitted_accuracy, fitted.fit.cross_fitted_accuracy);
        assert_eq!(fitted.own_candidates, 0);
    }

    #[test]
    fn a_saved_model_loads_and_predicts_the_same() {
        let (m, texts) = model();
        let dir = tempfile::tempdir().unwrap();
        m.save(dir.path()).unwrap();
        let loaded = XrModel::load(dir.path()).unwrap();
        assert_eq!(loaded.ranker, m.ranker);
        let x = m.features(&texts, None).unwrap();
        let y = loaded.features(&texts, None).unwrap();
        assert_eq!(x, y);
        assert_eq!(m.predict(&x, None, 2), loaded.predict(&y, None, 2));
        assert_eq!(loaded.predict(&y, None, 1)[2][0].0, m.predict(&x, None, 1)[2][0].0);
    }

    #[test]
    fn an_ensemble_averages_its_trees_and_round_trips() {
        let (mut m, texts) = model();
        let x = m.features(&texts, None).unwrap();
        // A second tree over the same two labels, in the other order.
        let tree = LabelTree { n_labels: 2, nodes: vec![TreeNode { children: vec![Child::Label(1), Child::Label(0)] }] };
        let (other, _) = TreeRanker::train(&tree, &x, &[0, 0, 1, 1, 0, 1], &m.meta.config, u32::MAX, |_| {}).unwrap();
        let single: Vec<_> = (0..texts.len()).map(|r| (m.ranker.predict(x.row(r), 10, 2), other.predict(x.row(r), 10, 2))).collect();
        m.extra = vec![other];
        m.meta.extra_trees = 1;
        let ensemble = m.predict(&x, None, 2);
        for (r, (a, b)) in single.iter().enumerate() {
            for &(label, score) in &ensemble[r] {
                let of = |p: &[(u32, f32)]| p.iter().find(|e| e.0 == label).map_or(0.0, |e| e.1);
                assert!((score - (of(a) + of(b)) / 2.0).abs() < 1e-6, "row {r}, label {label}");
            }
            let scores = m.label_scores(x.row(r), &[ensemble[r][0].0]);
            assert!((scores[0] - ensemble[r][0].1).abs() < 1e-6);
        }
        let dir = tempfile::tempdir().unwrap();
        m.save(dir.path()).unwrap();
        assert!(dir.path().join("tree-1.json").is_file() && dir.path().join("weights-1.safetensors").is_file());
        let loaded = XrModel::load(dir.path()).unwrap();
        assert_eq!(loaded.predict(&x, None, 2), ensemble);
        std::fs::remove_file(dir.path().join("weights-1.safetensors")).unwrap();
        let err = XrModel::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("weights-1.safetensors") && err.contains("missing"), "{err}");
    }

    #[test]
    fn incomplete_altered_or_foreign_folders_are_refused() {
        let (m, _) = model();
        let dir = tempfile::tempdir().unwrap();
        m.save(dir.path()).unwrap();
        let tfidf = dir.path().join(TFIDF_FILE);
        let saved = std::fs::read(&tfidf).unwrap();
        std::fs::remove_file(&tfidf).unwrap();
        let err = XrModel::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("tfidf.json") && err.contains("missing"), "{err}");
        std::fs::write(&tfidf, &saved).unwrap();

        let weights = dir.path().join(WEIGHTS_FILE);
        let bytes = std::fs::read(&weights).unwrap();
        std::fs::write(&weights, &bytes[..bytes.len() / 2]).unwrap();
        let err = XrModel::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("weights.safetensors"), "{err}");
        std::fs::write(&weights, &bytes).unwrap();

        let meta_path = dir.path().join(META_FILE);
        let mut meta = m.meta.clone();
        meta.method = "generative".into();
        write_json(&meta_path, &meta).unwrap();
        assert!(XrModel::load(dir.path()).unwrap_err().to_string().contains("holds method `generative`"));
        meta.method = METHOD.into();
        meta.format = FORMAT + 1;
        write_json(&meta_path, &meta).unwrap();
        assert!(XrModel::load(dir.path()).unwrap_err().to_string().contains("retrain"));
        assert!(XrModel::load(&dir.path().join("nope")).unwrap_err().to_string().contains("does not exist"));
    }
}
