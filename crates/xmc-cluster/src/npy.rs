//! Reading and writing 2-D little-endian f32 arrays in NumPy's `.npy` format (through
//! `ndarray-npy`), so that embeddings can be inspected from Python.

use std::path::Path;

use ndarray::{Array2, ArrayView2};
use ndarray_npy::{ReadNpyError, WriteNpyError};

use crate::error::{ClusterError, Result};

pub fn write_f32(path: &Path, rows: usize, cols: usize, data: &[f32]) -> Result<()> {
    let bad = |m: String| ClusterError::Artifact { path: path.into(), message: m };
    let array = ArrayView2::from_shape((rows, cols), data).map_err(|e| bad(format!("shape ({rows}, {cols}) for {} values: {e}", data.len())))?;
    ndarray_npy::write_npy(path, &array).map_err(|e| match e {
        WriteNpyError::Io(e) => ClusterError::io(path, e),
        e => bad(e.to_string()),
    })
}

/// Reads a 2-D `<f4` array written by [`write_f32`] or by NumPy (either memory order).
pub fn read_f32(path: &Path) -> Result<(usize, usize, Vec<f32>)> {
    let array: Array2<f32> = ndarray_npy::read_npy(path).map_err(|e| match e {
        ReadNpyError::Io(e) => ClusterError::io(path, e),
        e => ClusterError::Artifact { path: path.into(), message: format!("not a 2-D float32 .npy array: {e}") },
    })?;
    let (rows, cols) = array.dim();
    Ok((rows, cols, array.as_standard_layout().iter().copied().collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_pads_the_header() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.npy");
        let data: Vec<f32> = (0..6).map(|i| i as f32 * 0.5).collect();
        write_f32(&path, 2, 3, &data).unwrap();
        let bytes = std::fs::read(&path).unwrap();
        assert_eq!(&bytes[..6], b"\x93NUMPY");
        assert_eq!((bytes.len() - 24) % 4, 0);
        assert_eq!(read_f32(&path).unwrap(), (2, 3, data));
        std::fs::write(&path, b"not an array").unwrap();
        let err = read_f32(&path).unwrap_err().to_string();
        assert!(err.contains("a.npy") && err.contains("float32"), "{err}");
    }
}
