//! `stats.json`: what the data stage read, kept, skipped and built.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// A row the stage skipped, with where it was and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedRow {
    pub line: u64,
    pub kind: String,
    pub reason: String,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct CleaningStats {
    /// Distinct raw category paths among kept and unlabelled rows.
    pub raw_paths: usize,
    /// Distinct raw paths each rule changed.
    pub changed_by_product_name: usize,
    pub changed_by_brand_line: usize,
    pub changed_by_max_depth: usize,
    /// Rows whose path any rule changed.
    pub rows_changed: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DataStats {
    pub dataset: String,
    pub file: String,
    pub rows_read: u64,
    pub records: u64,
    pub skipped: u64,
    /// Skipped rows by kind (e.g. `no category path`, `bad price`).
    pub skipped_by_kind: BTreeMap<String, u64>,
    /// The first skipped rows of each kind, with their lines.
    pub skipped_examples: Vec<SkippedRow>,
    pub cleaning: CleaningStats,
    pub train_records: u64,
    pub valid_records: u64,
    pub test_records: u64,
    pub labels: usize,
    /// Distinct nodes at each level L0..Ln.
    pub nodes_per_level: Vec<usize>,
    /// Number of labels of each depth (depth 1 = a top-level path).
    pub depth_histogram: BTreeMap<usize, usize>,
    pub tail_max: u32,
    pub tail_labels: usize,
    /// Tail labels / all labels.
    pub tail_label_share: f64,
    /// Training records of tail labels / all training records.
    pub tail_train_record_share: f64,
}

impl DataStats {
    /// A few lines a person reads at a glance.
    pub fn summary(&self) -> String {
        let mut out = format!(
            "{}: {} rows read, {} records kept, {} skipped\n",
            self.dataset, self.rows_read, self.records, self.skipped
        );
        for (kind, n) in &self.skipped_by_kind {
            out.push_str(&format!("  skipped ({kind}): {n}\n"));
        }
        out.push_str(&format!(
            "split: {} train / {} valid / {} test\nlabels: {} (nodes per level {:?})\ntail (<= {} train records): {} labels ({:.1}% of labels, {:.1}% of train records)\n",
            self.train_records,
            self.valid_records,
            self.test_records,
            self.labels,
            self.nodes_per_level,
            self.tail_max,
            self.tail_labels,
            100.0 * self.tail_label_share,
            100.0 * self.tail_train_record_share,
        ));
        let c = &self.cleaning;
        if c.rows_changed > 0 {
            out.push_str(&format!(
                "cleaning: {} of {} raw paths cut by the product-name rule, {} by the brand-line rule, {} by max depth ({} rows)\n",
                c.changed_by_product_name, c.raw_paths, c.changed_by_brand_line, c.changed_by_max_depth, c.rows_changed
            ));
        }
        out
    }
}
