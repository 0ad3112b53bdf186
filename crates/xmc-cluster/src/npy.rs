//! Reading and writing 2-D little-endian f32 arrays in NumPy's `.npy` format (through
//! `ndarray-npy`), so that embeddings can be inspected from Python.

use std::path::Path;

use ndarray::ArrayView2;
use ndarray_npy::{ViewNpyExt, WriteNpyError};

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
/// The header's shape is checked against the file's length before anything is sized by it: the
/// file is read whole (its own size bounds the memory) and viewed in place.
pub fn read_f32(path: &Path) -> Result<(usize, usize, Vec<f32>)> {
    let bytes = std::fs::read(path).map_err(|e| ClusterError::io(path, e))?;
    // An f32-aligned copy, so that the data can be viewed where it lies.
    let mut aligned = vec![0f32; bytes.len().div_ceil(4)];
    let buffer: &mut [u8] = bytemuck::cast_slice_mut(&mut aligned);
    buffer[..bytes.len()].copy_from_slice(&bytes);
    let array: ArrayView2<f32> = ArrayView2::view_npy(&buffer[..bytes.len()])
        .map_err(|e| ClusterError::Artifact { path: path.into(), message: format!("not a 2-D float32 .npy array: {e}") })?;
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
        // A header whose shape is far past the file's length is refused before anything is sized.
        let header_end = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
        let header = String::from_utf8(bytes[10..header_end].to_vec()).unwrap();
        let grown = header.replacen("(2, 3)", "(100000000000000, 3)", 1);
        let grown = format!("{}{}\n", &grown[..grown.len() - 1].trim_end(), " ".repeat(header.len().saturating_sub(grown.trim_end().len() + 1)));
        let mut huge = bytes[..8].to_vec();
        huge.extend_from_slice(&(grown.len() as u16).to_le_bytes());
        huge.extend_from_slice(grown.as_bytes());
        huge.extend_from_slice(&bytes[header_end..]);
        std::fs::write(&path, &huge).unwrap();
        let err = read_f32(&path).unwrap_err().to_string();
        assert!(err.contains("a.npy"), "{err}");
        std::fs::write(&path, b"not an array").unwrap();
        let err = read_f32(&path).unwrap_err().to_string();
        assert!(err.contains("a.npy") && err.contains("float32"), "{err}");
    }
}
