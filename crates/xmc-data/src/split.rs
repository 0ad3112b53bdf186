//! The seeded train/valid/test split, stratified by leaf label.
//!
//! Each label's records are shuffled with a seed derived from the split seed and the label's path,
//! so a label's split does not change when records of other labels are added or removed. A label
//! with `n` records gets `n * valid` validation records, rounded down and then up with probability
//! equal to the fraction left over (likewise for test), so the fractions hold over the whole data
//! set even for small labels. A label with at least two records always keeps one in train; a label
//! with one record goes to train.

use serde::{Deserialize, Serialize};

use crate::record::Split;
use crate::rng::SplitMix64;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SplitConfig {
    pub train: f64,
    pub valid: f64,
    pub test: f64,
    pub seed: u64,
}

impl Default for SplitConfig {
    fn default() -> Self {
        SplitConfig { train: 0.8, valid: 0.1, test: 0.1, seed: 42 }
    }
}

impl SplitConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [("train", self.train), ("valid", self.valid), ("test", self.test)] {
            if !(0.0..=1.0).contains(&value) {
                return Err(format!("`data.split.{name}` = {value} must be between 0 and 1"));
            }
        }
        if self.train <= 0.0 {
            return Err("`data.split.train` must be above 0".into());
        }
        let sum = self.train + self.valid + self.test;
        if (sum - 1.0).abs() > 1e-6 {
            return Err(format!("`data.split` fractions must sum to 1 (train + valid + test = {sum})"));
        }
        Ok(())
    }
}

fn path_hash(path: &str) -> u64 {
    // FNV-1a: stable across Rust versions, unlike std's hasher.
    path.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ b as u64).wrapping_mul(0x0100_0000_01b3))
}

/// Assigns a split to each record, given each record's label id and each label's path.
pub fn assign_splits(record_labels: &[u32], label_paths: &[&str], cfg: &SplitConfig) -> Vec<Split> {
    let mut members: Vec<Vec<usize>> = vec![Vec::new(); label_paths.len()];
    for (i, &label) in record_labels.iter().enumerate() {
        members[label as usize].push(i);
    }
    let mut splits = vec![Split::Train; record_labels.len()];
    for (records, path) in members.iter_mut().zip(label_paths) {
        let n = records.len();
        if n < 2 {
            continue;
        }
        let mut rng = SplitMix64::new(cfg.seed ^ path_hash(path));
        rng.shuffle(records);
        let mut take = |fraction: f64| {
            let exact = n as f64 * fraction;
            let whole = exact.floor() as usize;
            whole + usize::from(rng.next_f64() < exact - whole as f64)
        };
        let mut n_valid = take(cfg.valid);
        let mut n_test = take(cfg.test);
        while n_valid + n_test >= n {
            if n_valid >= n_test { n_valid -= 1 } else { n_test -= 1 }
        }
        for &i in &records[..n_valid] {
            splits[i] = Split::Valid;
        }
        for &i in &records[n_valid..n_valid + n_test] {
            splits[i] = Split::Test;
        }
    }
    splits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(splits: &[Split], labels: &[u32], label: u32, split: Split) -> usize {
        splits.iter().zip(labels).filter(|(s, l)| **s == split && **l == label).count()
    }

    #[test]
    fn every_label_with_two_records_keeps_one_in_train() {
        let cfg = SplitConfig { train: 0.1, valid: 0.45, test: 0.45, seed: 1 };
        let labels: Vec<u32> = (0..200).flat_map(|l| [l, l]).collect();
        let paths: Vec<String> = (0..200).map(|l| format!("p{l}")).collect();
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        let splits = assign_splits(&labels, &paths, &cfg);
        for l in 0..200 {
            assert!(count(&splits, &labels, l, Split::Train) >= 1, "label {l}");
        }
    }

    #[test]
    fn singletons_go_to_train_and_fractions_hold_overall() {
        let cfg = SplitConfig::default();
        let mut labels = vec![0u32];
        labels.extend(std::iter::repeat_n(1u32, 10_000));
        let splits = assign_splits(&labels, &["a", "b"], &cfg);
        assert_eq!(splits[0], Split::Train);
        let valid = count(&splits, &labels, 1, Split::Valid);
        let test = count(&splits, &labels, 1, Split::Test);
        assert_eq!(valid, 1000);
        assert_eq!(test, 1000);
    }

    #[test]
    fn small_labels_still_reach_test_in_expectation() {
        let cfg = SplitConfig::default();
        let labels: Vec<u32> = (0..2000).flat_map(|l| std::iter::repeat_n(l, 5)).collect();
        let paths: Vec<String> = (0..2000).map(|l| format!("p{l}")).collect();
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        let splits = assign_splits(&labels, &paths, &cfg);
        let test = splits.iter().filter(|s| **s == Split::Test).count() as f64 / splits.len() as f64;
        assert!((test - 0.1).abs() < 0.02, "test share {test}");
    }

    #[test]
    fn same_seed_same_split_other_seed_other_split() {
        let labels: Vec<u32> = (0..50).flat_map(|l| std::iter::repeat_n(l, 20)).collect();
        let paths: Vec<String> = (0..50).map(|l| format!("p{l}")).collect();
        let paths: Vec<&str> = paths.iter().map(String::as_str).collect();
        let a = assign_splits(&labels, &paths, &SplitConfig::default());
        let b = assign_splits(&labels, &paths, &SplitConfig::default());
        let c = assign_splits(&labels, &paths, &SplitConfig { seed: 7, ..SplitConfig::default() });
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn a_labels_split_does_not_depend_on_other_labels() {
        let cfg = SplitConfig::default();
        let a = assign_splits(&[0; 30], &["x"], &cfg);
        let mut labels = vec![0u32; 17];
        labels.extend([1u32; 30]);
        let b = assign_splits(&labels, &["w", "x"], &cfg);
        assert_eq!(a, b[17..]);
    }

    #[test]
    fn bad_fractions_are_rejected() {
        assert!(SplitConfig { train: 0.5, ..SplitConfig::default() }.validate().unwrap_err().contains("sum to 1"));
        assert!(SplitConfig { valid: -0.1, train: 1.0, ..SplitConfig::default() }.validate().is_err());
        SplitConfig::default().validate().unwrap();
    }
}
