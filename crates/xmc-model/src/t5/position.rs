//! T5's relative position buckets: exact buckets for small distances, logarithmic ones up to
//! `max_distance`, shared by all layers of a stack (the bias is computed once, in the first layer).

/// The bucket of `relative` = key position - query position, as Hugging Face's
/// `_relative_position_bucket` computes it.
pub fn relative_position_bucket(relative: i64, bidirectional: bool, num_buckets: usize, max_distance: usize) -> usize {
    let mut buckets = num_buckets as i64;
    let mut bucket = 0i64;
    let distance = if bidirectional {
        buckets /= 2;
        if relative > 0 {
            bucket += buckets;
        }
        relative.abs()
    } else {
        (-relative).max(0)
    };
    let max_exact = buckets / 2;
    if distance < max_exact {
        bucket += distance;
    } else {
        let scaled = ((distance as f64 / max_exact as f64).ln() / (max_distance as f64 / max_exact as f64).ln()
            * (buckets - max_exact) as f64) as i64;
        bucket += (max_exact + scaled).min(buckets - 1);
    }
    bucket as usize
}

/// Buckets for queries at `query_positions` against keys `0..key_len`, row-major [queries, keys].
pub fn bucket_matrix(query_positions: std::ops::Range<usize>, key_len: usize, bidirectional: bool, num_buckets: usize, max_distance: usize) -> Vec<i64> {
    let mut out = Vec::with_capacity(query_positions.len() * key_len);
    for q in query_positions {
        for k in 0..key_len {
            out.push(relative_position_bucket(k as i64 - q as i64, bidirectional, num_buckets, max_distance) as i64);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from transformers' `T5Attention._relative_position_bucket` (32 buckets, distance 128).
    #[test]
    fn matches_the_reference_buckets() {
        let bi = |r| relative_position_bucket(r, true, 32, 128);
        let cases = [(0, 0), (1, 17), (-1, 1), (7, 23), (-7, 7), (8, 24), (-8, 8), (12, 25), (-20, 10), (64, 30), (-127, 15), (500, 31), (-500, 15)];
        for (r, expected) in cases {
            assert_eq!(bi(r), expected, "bidirectional {r}");
        }
        let uni = |r| relative_position_bucket(r, false, 32, 128);
        let cases = [(0, 0), (3, 0), (-1, 1), (-15, 15), (-16, 16), (-30, 20), (-100, 30), (-1000, 31)];
        for (r, expected) in cases {
            assert_eq!(uni(r), expected, "causal {r}");
        }
    }
}
