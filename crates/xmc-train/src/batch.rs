//! Padding token sequences into tensors.

use burn::prelude::*;

/// Ids [b, max_len] padded with `pad`, and the mask [b, max_len] (1 = token).
pub fn pad_batch(rows: &[&[u32]], pad: u32, device: &Device) -> (Tensor<2, Int>, Tensor<2>) {
    let len = rows.iter().map(|r| r.len()).max().unwrap_or(1).max(1);
    let mut ids = Vec::with_capacity(rows.len() * len);
    let mut mask = Vec::with_capacity(rows.len() * len);
    for row in rows {
        ids.extend(row.iter().map(|&t| t as i64));
        ids.extend(std::iter::repeat_n(pad as i64, len - row.len()));
        mask.extend(std::iter::repeat_n(1.0f32, row.len()));
        mask.extend(std::iter::repeat_n(0.0f32, len - row.len()));
    }
    let shape = [rows.len(), len];
    (Tensor::from_data(TensorData::new(ids, shape), device), Tensor::from_data(TensorData::new(mask, shape), device))
}

/// Teacher forcing: decoder inputs `[start, t0, .., t(n-2)]` and targets `[t0, .., t(n-1)]`,
/// padded with `pad` (which the loss ignores).
pub fn decoder_batch(targets: &[&[u32]], start: u32, pad: u32, device: &Device) -> (Tensor<2, Int>, Tensor<2, Int>) {
    let len = targets.iter().map(|t| t.len()).max().unwrap_or(1).max(1);
    let mut inputs = Vec::with_capacity(targets.len() * len);
    let mut outputs = Vec::with_capacity(targets.len() * len);
    for t in targets {
        inputs.push(start as i64);
        inputs.extend(t[..t.len() - 1].iter().map(|&x| x as i64));
        outputs.extend(t.iter().map(|&x| x as i64));
        inputs.extend(std::iter::repeat_n(pad as i64, len - t.len()));
        outputs.extend(std::iter::repeat_n(pad as i64, len - t.len()));
    }
    let shape = [targets.len(), len];
    (Tensor::from_data(TensorData::new(inputs, shape), device), Tensor::from_data(TensorData::new(outputs, shape), device))
}
