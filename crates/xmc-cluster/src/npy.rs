//! Reading and writing 2-D little-endian f32 arrays in NumPy's `.npy` format (version 1.0), so
//! that embeddings can be inspected from Python.

use std::io::{Read, Write};
use std::path::Path;

use crate::error::{ClusterError, Result};

const MAGIC: &[u8] = b"\x93NUMPY";

pub fn write_f32(path: &Path, rows: usize, cols: usize, data: &[f32]) -> Result<()> {
    assert_eq!(rows * cols, data.len(), "shape and data disagree");
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': ({rows}, {cols}), }}");
    // magic (6) + version (2) + length (2) + header + '\n' is padded to a multiple of 64.
    while (MAGIC.len() + 4 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(64 + header.len() + data.len() * 4);
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&[1, 0]);
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    let mut file = std::fs::File::create(path).map_err(|e| ClusterError::io(path, e))?;
    file.write_all(&out).map_err(|e| ClusterError::io(path, e))
}

/// Reads a file written by [`write_f32`] (or by NumPy for a C-ordered `<f4` 2-D array).
pub fn read_f32(path: &Path) -> Result<(usize, usize, Vec<f32>)> {
    let bad = |m: &str| ClusterError::Artifact { path: path.into(), message: m.into() };
    let mut bytes = Vec::new();
    std::fs::File::open(path).and_then(|mut f| f.read_to_end(&mut bytes)).map_err(|e| ClusterError::io(path, e))?;
    if bytes.len() < 10 || &bytes[..6] != MAGIC || bytes[6] != 1 {
        return Err(bad("not a version 1 .npy file"));
    }
    let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    let header = std::str::from_utf8(bytes.get(10..10 + header_len).ok_or_else(|| bad("truncated header"))?)
        .map_err(|_| bad("header is not UTF-8"))?;
    if !header.contains("'descr': '<f4'") || !header.contains("'fortran_order': False") {
        return Err(bad("expected a C-ordered little-endian float32 array"));
    }
    let shape = header.split("'shape': (").nth(1).and_then(|s| s.split(')').next()).ok_or_else(|| bad("no shape"))?;
    let dims: Vec<usize> = shape.split(',').filter(|s| !s.trim().is_empty()).map(|s| s.trim().parse()).collect::<Result<_, _>>().map_err(|_| bad("bad shape"))?;
    let [rows, cols] = dims[..] else { return Err(bad("expected a 2-D array")) };
    let body = &bytes[10 + header_len..];
    if body.len() != rows * cols * 4 {
        return Err(bad("data length does not match the shape"));
    }
    let data = body.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect();
    Ok((rows, cols, data))
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
        assert_eq!((bytes.len() - 24) % 4, 0);
        let header_len = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + header_len) % 64, 0);
        assert_eq!(read_f32(&path).unwrap(), (2, 3, data));
    }
}
