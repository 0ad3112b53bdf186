//! The ranges of the numbers that size prediction work, the same at every front door (command
//! line, server, Python, Spark). A number outside its range is an error naming it and the range,
//! before any work is sized by it; inside, the search is sized by the labels that exist, never
//! by the number asked.

use anyhow::{Result, ensure};

/// The most labels one record may ask for (`--top-k`, `top_k=`, the server's `--max-top-k`).
pub const MAX_TOP_K: usize = 1000;

/// The widest search (`--beam-width`, `beam=`): the labels or clusters kept per step.
pub const MAX_BEAM: usize = 1000;

/// The most records read, predicted and written together (`--chunk-size`, Spark's batch size).
pub const MAX_CHUNK_RECORDS: usize = 1_000_000;

/// The most threads a command may ask for (`--threads`).
pub const MAX_THREADS: usize = 1024;

/// Checks a request's `beam` and `top_k` against their ranges.
pub fn check_search(beam: usize, top_k: usize) -> Result<()> {
    ensure!((1..=MAX_TOP_K).contains(&top_k), "top_k must be between 1 and {MAX_TOP_K}, not {top_k}");
    ensure!((1..=MAX_BEAM).contains(&beam), "the beam width must be between 1 and {MAX_BEAM}, not {beam}");
    Ok(())
}

/// The pool a search keeps for `beam` and `top_k` over `labels` labels: never more labels than
/// exist.
pub fn pool_size(beam: usize, top_k: usize, labels: usize) -> usize {
    beam.max(top_k).min(labels).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn out_of_range_numbers_are_named_and_pools_are_sized_by_the_labels() {
        assert!(check_search(5, 5).is_ok());
        let err = check_search(5, 0).unwrap_err().to_string();
        assert!(err.contains("top_k") && err.contains(&MAX_TOP_K.to_string()), "{err}");
        let err = check_search(usize::MAX, 5).unwrap_err().to_string();
        assert!(err.contains("beam"), "{err}");
        assert_eq!(pool_size(1000, 5, 162), 162);
        assert_eq!(pool_size(3, 10, 162), 10);
        assert_eq!(pool_size(3, 10, 0), 1);
    }
}
