//! A batch of tokenised texts padded to its longest, as both encoder paths take it.

/// Token ids and the attention mask (1 for a token, 0 for padding) of a batch padded to its
/// longest text, row-major, with their shape [batch, length].
pub(crate) fn pad_batch(tokens: &[&[u32]]) -> (Vec<i64>, Vec<f32>, [usize; 2]) {
    let len = tokens.iter().map(|t| t.len()).max().unwrap_or(1).max(1);
    let mut ids = Vec::with_capacity(tokens.len() * len);
    let mut mask = Vec::with_capacity(tokens.len() * len);
    for t in tokens {
        ids.extend(t.iter().map(|&id| id as i64));
        ids.extend(std::iter::repeat_n(0i64, len - t.len()));
        mask.extend(std::iter::repeat_n(1.0f32, t.len()));
        mask.extend(std::iter::repeat_n(0.0f32, len - t.len()));
    }
    (ids, mask, [tokens.len(), len])
}
