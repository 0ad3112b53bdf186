//! Samples of records that keep the tail: at most a budget of records, drawn under the highest
//! per-label cap that fits (the fine-tuning's epochs and the ranker's choice at catalogue scale).

use std::collections::HashMap;

/// The first `budget` records of `order` under the highest per-label cap that fits: with
/// `c` the largest cap for which the labels' `min(count, c)` sum to at most `budget`, every
/// label keeps its first `c` records in `order`, and the slots left over go to the next record
/// of as many labels as fit, in `order`'s order. So a label with at most `c` records keeps all of
/// them and the head labels are sampled. `order` keeps its order; `order` itself is returned when
/// it is within the budget.
pub fn capped_by_label(order: Vec<usize>, labels: &[u32], budget: usize) -> Vec<usize> {
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
pub fn at_most<T: Copy>(items: &[T], n: usize, seed: u64) -> Vec<T> {
    if n == 0 || items.len() <= n {
        return items.to_vec();
    }
    let mut picked: Vec<usize> = (0..items.len()).collect();
    crate::SplitMix64::new(seed).shuffle(&mut picked);
    picked.truncate(n);
    picked.sort_unstable();
    picked.into_iter().map(|i| items[i]).collect()
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
        let kept = capped_by_label(order.clone(), &labels, 8);
        assert_eq!(kept.len(), 8, "exactly the budget");
        // Cap 3 keeps 3 + 3 + 1 + 1 = 8.
        assert_eq!([0, 1, 2, 3].map(|l| count(&kept, &labels, l)), [3, 3, 1, 1]);
        // In order's order, the first records of each label.
        assert_eq!(kept, vec![15, 14, 13, 12, 11, 9, 8, 7]);
        // A budget between two caps: cap 4 would keep 10, so cap 3 (8) and one spare record
        // for the first label whose fourth record comes first in the order (label 1's record 10).
        let nine = capped_by_label(order.clone(), &labels, 9);
        assert_eq!([0, 1, 2, 3].map(|l| count(&nine, &labels, l)), [3, 4, 1, 1]);
        assert_eq!(capped_by_label(order.clone(), &labels, 16), order, "within the budget: all, in order");
        assert_eq!(capped_by_label(order.clone(), &labels, 100), order);
        assert_eq!(capped_by_label(order, &labels, 2).len(), 2);
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
}
