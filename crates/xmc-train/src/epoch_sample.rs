//! What one fine-tuning epoch sees, beyond the shuffle: a budget of records drawn so that the
//! tail keeps its records ([`budgeted`]), and batches of records of similar length
//! ([`similar_length_batches`]) so that a batch's padding costs little.

use std::collections::HashMap;

use xmc_data::SplitMix64;

/// The first `budget` records of `order` under the highest per-label cap that fits: with
/// `c` the largest cap for which the labels' `min(count, c)` sum to at most `budget`, every
/// label keeps its first `c` records in `order`, and the slots left over go to the next record
/// of as many labels as fit, in `order`'s order. So a label with at most `c` records keeps all of
/// them and the head labels are sampled. `order` keeps its order; `order` itself is returned when
/// it is within the budget.
pub(crate) fn budgeted(order: Vec<usize>, labels: &[u32], budget: usize) -> Vec<usize> {
    if order.len() <= budget {
        return order;
    }
    let mut counts = HashMap::<u32, usize>::new();
    for &i in &order {
        *counts.entry(labels[i]).or_default() += 1;
    }
    let kept_under = |cap: usize| counts.values().map(|&n| n.min(cap)).sum::<usize>();
    // The largest cap within the budget (0 keeps nothing; the largest count keeps everything,
    // which is over the budget here).
    let (mut low, mut high) = (0usize, counts.values().copied().max().unwrap_or(0));
    while low + 1 < high {
        let mid = (low + high) / 2;
        if kept_under(mid) <= budget { low = mid } else { high = mid }
    }
    let mut spare = budget - kept_under(low);
    let mut seen = HashMap::<u32, usize>::new();
    order
        .into_iter()
        .filter(|&i| {
            let n = seen.entry(labels[i]).or_default();
            *n += 1;
            if *n <= low {
                true
            } else if *n == low + 1 && spare > 0 {
                spare -= 1;
                true
            } else {
                false
            }
        })
        .collect()
}

/// At most `n` of `items` (0 = all): a seeded sample, in `items`' order.
pub(crate) fn at_most<T: Copy>(items: &[T], n: usize, seed: u64) -> Vec<T> {
    if n == 0 || items.len() <= n {
        return items.to_vec();
    }
    let mut picked: Vec<usize> = (0..items.len()).collect();
    SplitMix64::new(seed).shuffle(&mut picked);
    picked.truncate(n);
    picked.sort_unstable();
    picked.into_iter().map(|i| items[i]).collect()
}

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

    fn count(order: &[usize], labels: &[u32], label: u32) -> usize {
        order.iter().filter(|&&i| labels[i] == label).count()
    }

    #[test]
    fn a_budget_keeps_the_tail_and_samples_the_head() {
        // Label 0 has 10 records, label 1 has 4, labels 2 and 3 one each.
        let labels: Vec<u32> = [vec![0; 10], vec![1; 4], vec![2, 3]].concat();
        let order: Vec<usize> = (0..labels.len()).rev().collect();
        let kept = budgeted(order.clone(), &labels, 8);
        assert_eq!(kept.len(), 8, "exactly the budget");
        // Cap 3 keeps 3 + 3 + 1 + 1 = 8.
        assert_eq!([0, 1, 2, 3].map(|l| count(&kept, &labels, l)), [3, 3, 1, 1]);
        // In order's order, the first records of each label.
        assert_eq!(kept, vec![15, 14, 13, 12, 11, 9, 8, 7]);
        // A budget between two caps: cap 4 would keep 10, so cap 3 (8) and one spare record
        // for the first label whose fourth record comes first in the order (label 1's record 10).
        let nine = budgeted(order.clone(), &labels, 9);
        assert_eq!([0, 1, 2, 3].map(|l| count(&nine, &labels, l)), [3, 4, 1, 1]);
        assert_eq!(budgeted(order.clone(), &labels, 16), order, "within the budget: all, in order");
        assert_eq!(budgeted(order.clone(), &labels, 100), order);
        assert_eq!(budgeted(order, &labels, 2).len(), 2);
    }

    #[test]
    fn at_most_samples_in_order() {
        let items: Vec<u32> = (0..100).collect();
        let five = at_most(&items, 5, 7);
        assert_eq!(five.len(), 5);
        assert!(five.windows(2).all(|w| w[0] < w[1]), "{five:?}");
        assert_ne!(five, vec![0, 1, 2, 3, 4], "a sample, not the first ones");
        assert_eq!(at_most(&items, 5, 7), five, "seeded");
        assert_eq!(at_most(&items, 0, 7), items);
        assert_eq!(at_most(&items, 100, 7), items);
    }

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
