//! A record's feature row: the TF-IDF block, the dense block (a sentence embedding), or both
//! side by side. Each block is unit length; the dense block is then scaled by `dense_weight`.

use rayon::prelude::*;

use crate::config::FeatureKind;
use crate::error::{RankerError, Result};
use crate::sparse::{SparseRows, SparseVec};
use crate::tfidf::TfidfVectorizer;

/// Rows made at a time by [`FeatureLayout::rows`].
const ROWS_PER_CHUNK: usize = 16_384;

/// How rows are laid out: sparse ids first, then `dense_dim` dense ids.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FeatureLayout {
    pub kind: FeatureKind,
    pub sparse_dim: usize,
    pub dense_dim: usize,
    pub dense_weight: f32,
}

impl FeatureLayout {
    pub fn dim(&self) -> usize {
        self.sparse_dim + self.dense_dim
    }

    /// The first dense feature id (weights from here on are exempt from pruning).
    pub fn dense_start(&self) -> u32 {
        self.sparse_dim as u32
    }

    /// The rows of `texts`; `dense[i]` is text i's embedding when the layout has a dense block.
    pub fn rows(&self, vectorizer: Option<&TfidfVectorizer>, texts: &[&str], dense: Option<&[Vec<f32>]>) -> Result<SparseRows> {
        if self.kind.uses_dense() {
            let d = dense.ok_or_else(|| RankerError::Train("dense features asked for but no embeddings given".into()))?;
            if d.len() != texts.len() {
                return Err(RankerError::Train(format!("{} embeddings for {} texts", d.len(), texts.len())));
            }
            if let Some(bad) = d.iter().position(|v| v.len() != self.dense_dim) {
                return Err(RankerError::Train(format!("embedding {bad} has {} dimensions, expected {}", d[bad].len(), self.dense_dim)));
            }
        }
        if self.kind.uses_sparse() && vectorizer.is_none() {
            return Err(RankerError::Train("sparse features asked for but no TF-IDF vectorizer given".into()));
        }
        // In chunks: each chunk's rows are made in parallel and appended, so that at most one
        // chunk exists twice (at 1.68M records the rows alone are gigabytes).
        let mut out = SparseRows::new(self.dim());
        for start in (0..texts.len()).step_by(ROWS_PER_CHUNK) {
            let end = (start + ROWS_PER_CHUNK).min(texts.len());
            let rows: Vec<SparseVec> = (start..end)
                .into_par_iter()
                .map(|i| {
                    let mut v = match (self.kind.uses_sparse(), vectorizer) {
                        (true, Some(vec)) => vec.transform(texts[i]),
                        _ => SparseVec::default(),
                    };
                    if let Some(d) = dense.filter(|_| self.kind.uses_dense()) {
                        let e = &d[i];
                        let norm = e.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
                        for (j, &x) in e.iter().enumerate() {
                            v.indices.push((self.sparse_dim + j) as u32);
                            v.values.push(self.dense_weight * x / norm);
                        }
                    }
                    v
                })
                .collect();
            for r in &rows {
                out.push(r.view());
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tfidf::TfidfConfig;

    #[test]
    fn blocks_sit_side_by_side_and_are_checked() {
        let texts = ["red car", "blue bike"];
        let v = TfidfVectorizer::fit(&texts, &TfidfConfig { char_ngrams: vec![], word_ngrams: vec![1, 1], ..TfidfConfig::default() });
        let layout = FeatureLayout { kind: FeatureKind::Both, sparse_dim: v.dim(), dense_dim: 2, dense_weight: 0.5 };
        let dense = vec![vec![3.0, 4.0], vec![0.0, 1.0]];
        let rows = layout.rows(Some(&v), &texts, Some(&dense)).unwrap();
        assert_eq!(rows.n_cols, 6);
        let r0 = rows.row(0);
        assert_eq!(r0.indices, &[2, 3, 4, 5]);
        assert!((r0.values[2] - 0.3).abs() < 1e-6 && (r0.values[3] - 0.4).abs() < 1e-6);
        assert!(layout.rows(Some(&v), &texts, None).is_err());
        assert!(layout.rows(Some(&v), &texts, Some(&dense[..1])).is_err());
        let sparse_only = FeatureLayout { kind: FeatureKind::Sparse, dense_dim: 0, ..layout };
        assert_eq!(sparse_only.rows(Some(&v), &texts, None).unwrap().row(1).indices, &[0, 1]);
    }
}
