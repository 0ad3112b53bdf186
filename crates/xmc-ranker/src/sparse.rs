//! Sparse rows: a feature vector is its sorted feature ids and their values.

/// One sparse vector, feature ids ascending.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseVec {
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl SparseVec {
    /// Builds a vector from (id, value) pairs in any order; repeated ids are summed.
    pub fn from_pairs(mut pairs: Vec<(u32, f32)>) -> Self {
        pairs.sort_unstable_by_key(|&(i, _)| i);
        let mut v = SparseVec { indices: Vec::with_capacity(pairs.len()), values: Vec::with_capacity(pairs.len()) };
        for (i, x) in pairs {
            if v.indices.last() == Some(&i) {
                *v.values.last_mut().expect("same length") += x;
            } else {
                v.indices.push(i);
                v.values.push(x);
            }
        }
        v
    }

    pub fn nnz(&self) -> usize {
        self.indices.len()
    }

    pub fn norm(&self) -> f32 {
        self.values.iter().map(|v| v * v).sum::<f32>().sqrt()
    }

    /// Scales to unit L2 norm (a zero vector stays zero).
    pub fn normalize(&mut self) {
        let n = self.norm();
        if n > 0.0 {
            self.values.iter_mut().for_each(|v| *v /= n);
        }
    }

    pub fn view(&self) -> RowView<'_> {
        RowView { indices: &self.indices, values: &self.values }
    }
}

/// A borrowed sparse row.
#[derive(Debug, Clone, Copy)]
pub struct RowView<'a> {
    pub indices: &'a [u32],
    pub values: &'a [f32],
}

impl RowView<'_> {
    pub fn iter(&self) -> impl Iterator<Item = (u32, f32)> + '_ {
        self.indices.iter().copied().zip(self.values.iter().copied())
    }

    pub fn squared_norm(&self) -> f32 {
        self.values.iter().map(|v| v * v).sum()
    }
}

/// Rows in compressed sparse row form.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SparseRows {
    pub n_cols: usize,
    pub indptr: Vec<usize>,
    pub indices: Vec<u32>,
    pub values: Vec<f32>,
}

impl SparseRows {
    pub fn new(n_cols: usize) -> Self {
        SparseRows { n_cols, indptr: vec![0], indices: Vec::new(), values: Vec::new() }
    }

    pub fn from_rows(n_cols: usize, rows: impl IntoIterator<Item = SparseVec>) -> Self {
        let mut m = SparseRows::new(n_cols);
        for r in rows {
            m.push(r.view());
        }
        m
    }

    pub fn push(&mut self, row: RowView) {
        debug_assert!(row.indices.windows(2).all(|w| w[0] < w[1]), "row ids ascend");
        debug_assert!(row.indices.last().is_none_or(|&i| (i as usize) < self.n_cols), "row ids fit the width");
        self.indices.extend_from_slice(row.indices);
        self.values.extend_from_slice(row.values);
        self.indptr.push(self.indices.len());
    }

    pub fn rows(&self) -> usize {
        self.indptr.len() - 1
    }

    pub fn row(&self, i: usize) -> RowView<'_> {
        let (a, b) = (self.indptr[i], self.indptr[i + 1]);
        RowView { indices: &self.indices[a..b], values: &self.values[a..b] }
    }

    pub fn nnz(&self) -> usize {
        self.indices.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pairs_are_sorted_and_merged() {
        let v = SparseVec::from_pairs(vec![(5, 1.0), (2, 2.0), (5, 0.5)]);
        assert_eq!(v.indices, vec![2, 5]);
        assert_eq!(v.values, vec![2.0, 1.5]);
    }

    #[test]
    fn rows_round_trip() {
        let m = SparseRows::from_rows(10, [SparseVec::from_pairs(vec![(1, 1.0)]), SparseVec::default(), SparseVec::from_pairs(vec![(9, 3.0), (0, 4.0)])]);
        assert_eq!(m.rows(), 3);
        assert_eq!(m.row(1).indices.len(), 0);
        assert_eq!(m.row(2).indices, &[0, 9]);
        assert_eq!(m.row(2).squared_norm(), 25.0);
    }
}
