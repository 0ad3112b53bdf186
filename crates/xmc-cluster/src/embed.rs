//! The embed stage: one vector per leaf label.

use std::path::Path;

use serde::{Deserialize, Serialize};
use xmc_data::{LabelSet, PreparedData};
use xmc_model::SentenceEncoder;

use crate::config::{EmbedConfig, EmbeddingKind, LabelText};
use crate::error::{ClusterError, Result};
use crate::npy;

pub const EMBEDDINGS_FILE: &str = "embeddings.npy";
pub const EMBEDDINGS_META_FILE: &str = "embeddings.json";

/// Row `l` is label `l`'s embedding; rows are L2-normalised (a concatenation has norm sqrt(2)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelEmbeddings {
    pub kind: EmbeddingKind,
    pub labels: usize,
    pub dim: usize,
    #[serde(skip)]
    pub data: Vec<f32>,
}

impl LabelEmbeddings {
    pub fn row(&self, label: usize) -> &[f32] {
        &self.data[label * self.dim..(label + 1) * self.dim]
    }

    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| ClusterError::io(dir, e))?;
        npy::write_f32(&dir.join(EMBEDDINGS_FILE), self.labels, self.dim, &self.data)?;
        let meta = dir.join(EMBEDDINGS_META_FILE);
        std::fs::write(&meta, serde_json::to_string_pretty(self).expect("serialises") + "\n").map_err(|e| ClusterError::io(&meta, e))
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let meta_path = dir.join(EMBEDDINGS_META_FILE);
        let text = std::fs::read_to_string(&meta_path).map_err(|e| ClusterError::io(&meta_path, e))?;
        let mut meta: LabelEmbeddings =
            serde_json::from_str(&text).map_err(|e| ClusterError::Artifact { path: meta_path.clone(), message: e.to_string() })?;
        let (rows, cols, data) = npy::read_f32(&dir.join(EMBEDDINGS_FILE))?;
        if (rows, cols) != (meta.labels, meta.dim) {
            return Err(ClusterError::Artifact {
                path: dir.join(EMBEDDINGS_FILE),
                message: format!("shape ({rows}, {cols}) does not match embeddings.json ({}, {})", meta.labels, meta.dim),
            });
        }
        meta.data = data;
        Ok(meta)
    }
}

/// The text embedded for each label.
pub fn label_texts(labels: &LabelSet, text: LabelText) -> Vec<String> {
    labels
        .labels
        .iter()
        .map(|l| match text {
            LabelText::Path => l.path.clone(),
            LabelText::Leaf => l.levels.last().cloned().unwrap_or_default(),
        })
        .collect()
}

/// Runs the embed stage. `encoder` is needed unless the kind is PIFA alone; `on_batch` reports
/// how many labels each finished encoder batch held.
pub fn embed_labels(
    data: &PreparedData,
    cfg: &EmbedConfig,
    encoder: Option<&SentenceEncoder>,
    on_batch: impl FnMut(usize),
) -> Result<LabelEmbeddings> {
    cfg.validate().map_err(ClusterError::Config)?;
    let n = data.labels.len();
    let sentence = |on_batch| -> Result<(usize, Vec<f32>)> {
        let encoder = encoder.ok_or_else(|| ClusterError::Config("this embedding kind needs the sentence encoder".into()))?;
        let texts = label_texts(&data.labels, cfg.text);
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let vectors = encoder.encode(&refs, cfg.batch_size, on_batch)?;
        Ok((encoder.dim(), vectors.concat()))
    };
    let (dim, values) = match cfg.kind {
        EmbeddingKind::Sentence => sentence(Box::new(on_batch) as Box<dyn FnMut(usize)>)?,
        EmbeddingKind::Pifa => crate::pifa::pifa_embeddings(data, cfg.pifa_max_features),
        EmbeddingKind::SentencePifa => {
            let (ds, s) = sentence(Box::new(on_batch))?;
            let (dp, p) = crate::pifa::pifa_embeddings(data, cfg.pifa_max_features);
            let mut values = Vec::with_capacity(n * (ds + dp));
            for l in 0..n {
                values.extend_from_slice(&s[l * ds..(l + 1) * ds]);
                values.extend_from_slice(&p[l * dp..(l + 1) * dp]);
            }
            (ds + dp, values)
        }
    };
    Ok(LabelEmbeddings { kind: cfg.kind, labels: n, dim, data: values })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_text_is_the_full_path_or_the_leaf() {
        let paths: Vec<Vec<String>> = vec![vec!["Toys".into(), "Trains".into()], vec!["Games".into()]];
        let labels = LabelSet::from_paths(paths.iter().map(Vec::as_slice), 25);
        assert_eq!(label_texts(&labels, LabelText::Path), vec!["Games", "Toys > Trains"]);
        assert_eq!(label_texts(&labels, LabelText::Leaf), vec!["Games", "Trains"]);
    }
}
