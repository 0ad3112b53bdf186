//! The cluster search's model folder: everything prediction needs besides the sentence encoder,
//! checked on load, and the one method that takes new labels without retraining.
//!
//! `search.json` (method, format, search settings, label text, template), `tree.json`,
//! `labels.json`, and the labels' unit vectors under the encoder the folder carries
//! (`embeddings.npy` + `embeddings.json`). The encoder itself is `encoder/`, which the caller
//! loads (it is a burn model; this crate only reads its vectors).

use std::path::Path;

use serde::{Deserialize, Serialize};
use xmc_codes::LabelTree;
use xmc_data::{InputTemplate, LabelSet};

use crate::config::{EmbeddingKind, LabelText};
use crate::embed::{LabelEmbeddings, label_texts};
use crate::error::{ClusterError, Result};
use crate::search::{ClusterIndex, SearchConfig};

/// The method a model folder of this module holds, as written in `search.json`.
pub const METHOD: &str = "cluster-search";
/// Bump when the folder's layout or meaning changes; older folders are refused.
pub const FORMAT: u32 = 1;
pub const META_FILE: &str = "search.json";
/// The sentence encoder's folder inside the model folder.
pub const ENCODER_DIR: &str = "encoder";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchMeta {
    pub method: String,
    pub format: u32,
    pub xmc_version: String,
    /// Beam, top-k and encoder batch of the search (`new_labels` is always empty here: added
    /// labels are part of the folder).
    pub search: SearchConfig,
    /// The text each label is embedded from (its path or its leaf), for labels added later.
    pub label_text: LabelText,
    /// The template that turned records into inputs, so prediction renders them the same way.
    pub template: InputTemplate,
    /// Whether `encoder/` was fine-tuned (contrastive) or is the pretrained encoder.
    pub fine_tuned: bool,
    /// Labels added after training (`xmc labels add`): the last ones of `labels.json`.
    pub added_labels: usize,
}

/// A label added after training: its id, path and place in the tree.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AddedLabel {
    pub id: u32,
    pub path: String,
    pub code: Vec<u32>,
}

/// A loaded cluster-search model (without its encoder).
#[derive(Debug, Clone)]
pub struct SearchModel {
    pub meta: SearchMeta,
    pub index: ClusterIndex,
    pub labels: LabelSet,
}

impl SearchModel {
    /// The model over `tree` with the labels' vectors `embeddings` (a sentence encoder's, the
    /// one the folder will carry).
    pub fn new(meta: SearchMeta, tree: LabelTree, embeddings: &LabelEmbeddings, labels: LabelSet) -> Result<Self> {
        let bad = |message: String| ClusterError::Artifact { path: META_FILE.into(), message };
        if embeddings.kind != EmbeddingKind::Sentence {
            return Err(bad("cluster search compares sentence-encoder vectors: the label vectors must be `sentence` embeddings".into()));
        }
        if labels.len() != tree.n_labels || embeddings.labels != tree.n_labels {
            return Err(bad(format!("{} labels, {} label vectors, but the tree has {} labels", labels.len(), embeddings.labels, tree.n_labels)));
        }
        Ok(SearchModel { meta, index: ClusterIndex::new(tree, embeddings), labels })
    }

    /// Up to `top_k` labels for each (unit) query vector, best first, with their mean path
    /// similarity, searching with `beam` partial paths per level.
    pub fn search(&self, queries: &[Vec<f32>], beam: usize, top_k: usize) -> Vec<Vec<(u32, f32)>> {
        queries.iter().map(|q| self.index.search(q, beam, top_k)).collect()
    }

    /// The texts to embed for new label paths, by the folder's label-text rule.
    pub fn texts_of(&self, paths: &[String]) -> Vec<String> {
        let with = self.labels.with_added(paths);
        label_texts(&with, self.meta.label_text).split_off(self.labels.len())
    }

    /// Adds leaves `paths` with their vectors (from [`Self::texts_of`] through the folder's
    /// encoder): each is placed in the tree by nearest centroid and can be predicted at once.
    /// A path already a label is refused.
    pub fn add_labels(&mut self, paths: &[String], vectors: &[Vec<f32>]) -> Result<Vec<AddedLabel>> {
        if paths.len() != vectors.len() {
            return Err(ClusterError::Config(format!("{} new labels but {} vectors", paths.len(), vectors.len())));
        }
        if let Some(p) = paths.iter().find(|p| self.labels.labels.iter().any(|l| &l.path == *p)) {
            return Err(ClusterError::Config(format!("`{p}` is already a label")));
        }
        let mut added = Vec::with_capacity(paths.len());
        for (path, vector) in paths.iter().zip(vectors) {
            let (id, code) = self.index.insert(vector);
            added.push(AddedLabel { id, path: path.clone(), code });
        }
        self.labels = self.labels.with_added(paths);
        self.meta.added_labels += paths.len();
        Ok(added)
    }

    /// Writes the folder's files besides the encoder.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| ClusterError::io(dir, e))?;
        let meta = dir.join(META_FILE);
        std::fs::write(&meta, serde_json::to_string_pretty(&self.meta).expect("serialises") + "\n").map_err(|e| ClusterError::io(&meta, e))?;
        crate::save_tree(&self.index.tree, dir)?;
        self.labels.save(dir).map_err(|e| ClusterError::Artifact { path: dir.join(xmc_data::LABELS_FILE), message: e.to_string() })?;
        self.index.label_embeddings().save(dir)
    }

    /// Loads a folder written by [`SearchModel::save`], refusing one of another method, format
    /// or an incomplete one with a message naming what is wrong.
    pub fn load(dir: &Path) -> Result<Self> {
        let bad = |path: &Path, message: String| ClusterError::Artifact { path: path.to_path_buf(), message };
        if !dir.is_dir() {
            return Err(bad(dir, "not a model folder (it does not exist)".into()));
        }
        let meta_path = dir.join(META_FILE);
        let text = std::fs::read_to_string(&meta_path).map_err(|e| ClusterError::io(&meta_path, e))?;
        let meta: SearchMeta = serde_json::from_str(&text).map_err(|e| bad(&meta_path, e.to_string()))?;
        if meta.method != METHOD {
            return Err(bad(dir, format!("holds method `{}`, not `{METHOD}`", meta.method)));
        }
        if meta.format != FORMAT {
            return Err(bad(dir, format!("written in cluster-search format {} by xmc {}; this xmc reads format {FORMAT}: retrain it", meta.format, meta.xmc_version)));
        }
        meta.search.validate().map_err(|m| bad(&meta_path, m))?;
        let required = [crate::TREE_FILE, xmc_data::LABELS_FILE, crate::EMBEDDINGS_FILE, crate::EMBEDDINGS_META_FILE];
        if let Some(missing) = required.iter().find(|f| !dir.join(f).is_file()) {
            return Err(bad(dir, format!("not a complete model folder: `{missing}` is missing (expected {})", required.join(", "))));
        }
        let tree = crate::load_tree(dir)?;
        let labels = LabelSet::load(dir).map_err(|e| bad(&dir.join(xmc_data::LABELS_FILE), e.to_string()))?;
        let embeddings = LabelEmbeddings::load(dir)?;
        if embeddings.data.iter().any(|v| !v.is_finite()) {
            return Err(bad(&dir.join(crate::EMBEDDINGS_FILE), "holds a value that is not a finite number".into()));
        }
        SearchModel::new(meta, tree, &embeddings, labels).map_err(|e| match e {
            ClusterError::Artifact { message, .. } => bad(dir, message),
            e => e,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> SearchModel {
        let (tree, emb) = crate::search::tests::two_clusters();
        let paths: Vec<Vec<String>> =
            ["A > x1", "A > x2", "B > y1", "B > y2"].iter().map(|p| p.split(" > ").map(str::to_string).collect()).collect();
        let labels = LabelSet::from_paths(paths.iter().map(Vec::as_slice), 25);
        let meta = SearchMeta {
            method: METHOD.into(),
            format: FORMAT,
            xmc_version: "test".into(),
            search: SearchConfig { beam: 2, top_k: 2, ..Default::default() },
            label_text: LabelText::Path,
            template: InputTemplate::try_from("{title}".to_string()).unwrap(),
            fine_tuned: false,
            added_labels: 0,
        };
        SearchModel::new(meta, tree, &emb, labels).unwrap()
    }

    #[test]
    fn a_saved_folder_with_added_labels_loads_and_predicts_them() {
        let mut m = model();
        assert_eq!(m.texts_of(&["B > y3".into()]), vec!["B > y3"]);
        let added = m.add_labels(&["B > y3".into()], &[vec![0.0, 1.0]]).unwrap();
        assert_eq!(added, vec![AddedLabel { id: 4, path: "B > y3".into(), code: vec![1, 2] }]);
        let dir = tempfile::tempdir().unwrap();
        m.save(dir.path()).unwrap();
        let back = SearchModel::load(dir.path()).unwrap();
        assert_eq!(back.meta.added_labels, 1);
        assert_eq!(back.labels.get(4).unwrap().path, "B > y3");
        assert_eq!(back.search(&[vec![0.0, 1.0]], 1, 1)[0][0].0, 4, "the added label is found");
        assert_eq!(back.search(&[vec![1.0, 0.12]], 2, 3), m.search(&[vec![1.0, 0.12]], 2, 3));
        let err = m.add_labels(&["A > x1".into()], &[vec![1.0, 0.0]]).unwrap_err().to_string();
        assert!(err.contains("already a label"), "{err}");
    }

    #[test]
    fn incomplete_or_foreign_folders_are_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let m = model();
        m.save(dir.path()).unwrap();
        std::fs::remove_file(dir.path().join(crate::TREE_FILE)).unwrap();
        let err = SearchModel::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("tree.json") && err.contains("missing"), "{err}");
        m.save(dir.path()).unwrap();
        let meta = std::fs::read_to_string(dir.path().join(META_FILE)).unwrap().replace("\"format\": 1", "\"format\": 99");
        std::fs::write(dir.path().join(META_FILE), meta).unwrap();
        let err = SearchModel::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("format 99"), "{err}");
        m.save(dir.path()).unwrap();
        // Labels and tree disagree: one label dropped from labels.json.
        let mut fewer = m.labels.clone();
        fewer.labels.pop();
        LabelSet::from_labels(fewer.labels, 25).save(dir.path()).unwrap();
        let err = SearchModel::load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("3 labels") && err.contains("tree has 4"), "{err}");
    }
}
