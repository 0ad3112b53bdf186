//! What one fine-tuning epoch sees, beyond the shuffle: a budget of records drawn so that the
//! tail keeps its records ([`budgeted`]), a sample of the validation records ([`at_most`]), and
//! batches of records of similar length ([`similar_length_batches`]) so that a batch's padding
//! costs little.

use xmc_data::SplitMix64;

pub(crate) use xmc_data::sample::{at_most, capped_by_label as budgeted};

/// Records per window sorted by length: this many batches.
const WINDOW_BATCHES: usize = 64;

/// `order` regrouped into batches of `batch_size` records of similar length: each window of
/// `WINDOW_BATCHES` batches is sorted by `lengths` (stable), cut into batches, and the batches
/// of all windows are shuffled by `rng`. A short last batch stays last, so the batches line up
/// when the result is cut into `batch_size` chunks.
pub(crate) fn similar_length_batches(order: Vec<usize>, lengths: &[usize], batch_size: usize, rng: &mut SplitMix64) -> Vec<usize> {
    let batch_size = batch_size.max(1);
    let mut batches: Vec<Vec<usize>> = Vec::with_capacity(order.len() / batch_size + 1);
    for window in order.chunks(batch_size * WINDOW_BATCHES) {
        let mut window = window.to_vec();
        window.sort_by_key(|&i| lengths[i]);
        batches.extend(window.chunks(batch_size).map(<[usize]>::to_vec));
    }
    let short = batches.pop_if(|b| b.len() < batch_size);
    rng.shuffle(&mut batches);
    batches.into_iter().chain(short).flatten().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn similar_length_batches_keep_every_record_and_group_by_length() {
        let n = 1_000;
        let lengths: Vec<usize> = (0..n).map(|i| (i * 7919) % 97).collect();
        let order: Vec<usize> = (0..n).collect();
        let batched = similar_length_batches(order.clone(), &lengths, 8, &mut SplitMix64::new(1));
        let mut sorted = batched.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, order, "every record once");
        // The padding (batch maximum minus length) falls well below the input order's.
        let padding = |o: &[usize]| o.chunks(8).map(|c| {
            let max = c.iter().map(|&i| lengths[i]).max().unwrap_or(0);
            c.iter().map(|&i| max - lengths[i]).sum::<usize>()
        }).sum::<usize>();
        assert!(padding(&batched) * 5 < padding(&order), "{} vs {}", padding(&batched), padding(&order));
        // The short batch (1,000 = 125 x 8, so none here; 1,003 leaves 3) stays last.
        let lengths: Vec<usize> = (0..1_003).map(|i| i % 13).collect();
        let batched = similar_length_batches((0..1_003).collect(), &lengths, 8, &mut SplitMix64::new(1));
        let last = &batched[1_000..];
        assert_eq!(last.len(), 3);
        assert!(last.iter().all(|&i| i >= 512), "the short batch is the last window's: {last:?}");
        // The batches are shuffled across the windows, not taken window by window.
        let windows: Vec<usize> = batched[..1_000].chunks(8).map(|c| c[0] / 512).collect();
        assert!(windows.windows(2).any(|w| w[0] > w[1]), "{windows:?}");
    }
}
