//! The data stage: raw file -> cleaned, labelled, split records (the [`PreparedData`] artifact).

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::clean::{RowPolicy, parse_price};
use crate::descriptor::DatasetDescriptor;
use crate::error::{DataError, Result, RowLocation};
use crate::ingest::{Field, RawRow, RowEvent, read_rows};
use crate::labels::LabelSet;
use crate::record::{PreparedRecord, ProductRecord, Split};
use crate::split::{SplitConfig, assign_splits};
use crate::stats::{CleaningStats, DataStats, SkippedRow};
use crate::template::InputTemplate;

/// How many skipped rows of each kind are kept as examples in the report.
const EXAMPLES_PER_KIND: usize = 5;

/// The `[data]` section of an experiment config.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// The dataset descriptor (`datasets/<name>.toml`), relative to the working directory.
    pub dataset: PathBuf,
    /// The model input; unset: the dataset descriptor's `template`, else
    /// [`crate::template::DEFAULT_TEMPLATE`].
    pub template: Option<InputTemplate>,
    pub split: SplitConfig,
    /// A label with at most this many training records is in the tail.
    pub tail_max: u32,
    /// Skip malformed rows (counted and listed in `stats.json`) instead of failing.
    pub skip_bad_rows: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dataset: PathBuf::from("datasets/amazon-uk-sample.toml"),
            template: None,
            split: SplitConfig::default(),
            tail_max: 25,
            skip_bad_rows: false,
        }
    }
}

impl DataConfig {
    /// The template records of `desc` are rendered with: the config's, else the descriptor's,
    /// else the default.
    pub fn template_for(&self, desc: &DatasetDescriptor) -> InputTemplate {
        self.template.clone().or_else(|| desc.template.clone()).unwrap_or_default()
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.dataset.as_os_str().is_empty() {
            return Err("`data.dataset` must name a dataset descriptor, e.g. datasets/amazon-uk.toml".into());
        }
        self.split.validate()
    }
}

/// A row that cannot become a record, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowIssue {
    pub kind: &'static str,
    pub reason: String,
}

impl RowIssue {
    fn new(kind: &'static str, reason: impl Into<String>) -> Self {
        RowIssue { kind, reason: reason.into() }
    }
}

fn cleaned(rules: &crate::clean::CleaningRules, value: Option<&str>) -> Option<String> {
    value.map(|v| rules.clean_text(v)).filter(|v| !v.is_empty())
}

/// Turns a raw row into a product record by the descriptor's rules. The category may come back
/// empty; whether that is allowed is the caller's decision.
pub fn clean_row(desc: &DatasetDescriptor, row: &RawRow) -> std::result::Result<(ProductRecord, crate::clean::PathChanges), RowIssue> {
    let rules = &desc.cleaning;
    let title = cleaned(rules, row.get(Field::Title)).ok_or_else(|| RowIssue::new("empty title", "the title is empty"))?;
    let id = match (&desc.columns.id, row.get(Field::Id).map(str::trim)) {
        (None, _) => format!("row-{}", row.line),
        (Some(_), Some(id)) if !id.is_empty() => id.to_string(),
        (Some(column), _) => return Err(RowIssue::new("empty id", format!("the id column `{column}` is empty"))),
    };
    let price = parse_price(row.get(Field::Price).unwrap_or_default()).map_err(|e| RowIssue::new("bad price", e))?;
    let (category, changes) = match row.get(Field::CategoryPath) {
        Some(raw) => rules.clean_path(raw, &title),
        None => (Vec::new(), Default::default()),
    };
    let record = ProductRecord {
        id,
        line: row.line,
        description: cleaned(rules, row.get(Field::Description)),
        store: cleaned(rules, row.get(Field::Store)).or_else(|| desc.store_name.clone()),
        manufacturer: cleaned(rules, row.get(Field::Manufacturer)),
        brand: cleaned(rules, row.get(Field::Brand)),
        price: price.value,
        price_max: price.max,
        category,
        title,
    };
    Ok((record, changes))
}

/// Records read from a file, with the rows that were skipped.
#[derive(Debug, Default)]
pub struct LoadedRecords {
    pub records: Vec<ProductRecord>,
    pub rows_read: u64,
    pub skipped: Vec<SkippedRow>,
    pub skipped_by_kind: BTreeMap<String, u64>,
    pub cleaning: CleaningStats,
}

impl LoadedRecords {
    fn skip(&mut self, line: u64, kind: &str, reason: String) {
        let n = self.skipped_by_kind.entry(kind.to_string()).or_default();
        *n += 1;
        if *n as usize <= EXAMPLES_PER_KIND {
            self.skipped.push(SkippedRow { line, kind: kind.to_string(), reason });
        }
    }
}

/// Reads and cleans every row of a dataset. With `require_label`, a row without a category path
/// follows the descriptor's `unlabelled` policy; malformed rows fail unless `skip_bad_rows`.
pub fn load_records(desc: &DatasetDescriptor, file: &Path, skip_bad_rows: bool, require_label: bool) -> Result<LoadedRecords> {
    if require_label && desc.columns.category_path.is_none() {
        return Err(DataError::Descriptor {
            path: desc.origin.clone().unwrap_or_default(),
            message: "`columns.category_path` is required to prepare training data".into(),
        });
    }
    let mut out = LoadedRecords::default();
    let mut first_line_of_id: HashMap<String, u64> = HashMap::new();
    let mut raw_paths: HashMap<String, crate::clean::PathChanges> = HashMap::new();
    let bad_row = |line: u64, reason: String| DataError::BadRow {
        location: RowLocation { file: file.to_path_buf(), line },
        reason,
    };
    let format = crate::FileFormat::from_path(file).unwrap_or_else(|| desc.format());
    out.rows_read = read_rows(file, format, &desc.columns, |event| {
        let (line, issue) = match event {
            RowEvent::Bad { line, reason } => (line, RowIssue::new("malformed row", reason)),
            RowEvent::Row(row) => match clean_row(desc, &row) {
                Ok((record, changes)) => {
                    if let Some(raw) = row.get(Field::CategoryPath)
                        && !raw_paths.contains_key(raw)
                    {
                        raw_paths.insert(raw.to_string(), changes);
                    }
                    if changes.any() {
                        out.cleaning.rows_changed += 1;
                    }
                    if let Some(first) = first_line_of_id.get(&record.id) {
                        (row.line, RowIssue::new("duplicate id", format!("id `{}` was already used at line {first}", record.id)))
                    } else if require_label && record.category.is_empty() {
                        let (kind, reason) = if changes.product_name {
                            ("path is only a product name", "the category path holds only the product's name")
                        } else {
                            ("no category path", "the category path is empty")
                        };
                        match desc.cleaning.unlabelled {
                            RowPolicy::Skip => {
                                out.skip(row.line, kind, reason.to_string());
                                return Ok(());
                            }
                            RowPolicy::Fail => (row.line, RowIssue::new(kind, format!("{reason} (set `cleaning.unlabelled = \"skip\"` in the descriptor to skip such rows)"))),
                        }
                    } else {
                        first_line_of_id.insert(record.id.clone(), row.line);
                        out.records.push(record);
                        return Ok(());
                    }
                }
                Err(issue) => (row.line, issue),
            },
        };
        if skip_bad_rows {
            out.skip(line, issue.kind, issue.reason);
            Ok(())
        } else {
            Err(bad_row(line, format!("{}: {} (use --skip-bad-rows or `data.skip_bad_rows = true` to skip and count such rows)", issue.kind, issue.reason)))
        }
    })?;
    out.cleaning.raw_paths = raw_paths.len();
    for changes in raw_paths.values() {
        out.cleaning.changed_by_product_name += usize::from(changes.product_name);
        out.cleaning.changed_by_brand_line += usize::from(changes.brand_line);
        out.cleaning.changed_by_max_depth += usize::from(changes.max_depth);
    }
    Ok(out)
}

/// The data stage's artifact.
#[derive(Debug, Clone, PartialEq)]
pub struct PreparedData {
    pub records: Vec<PreparedRecord>,
    pub labels: LabelSet,
    pub stats: DataStats,
}

/// Runs the data stage: reads the dataset the descriptor names, cleans, labels and splits it.
pub fn prepare(desc: &DatasetDescriptor, cfg: &DataConfig) -> Result<PreparedData> {
    cfg.validate().map_err(DataError::Config)?;
    let file = desc.resolve_path()?;
    let started = std::time::Instant::now();
    let loaded = load_records(desc, &file, cfg.skip_bad_rows, true)?;
    tracing::debug!("read and cleaned {} records in {:.2?}", loaded.records.len(), started.elapsed());
    if loaded.records.is_empty() {
        return Err(DataError::NoLabelledRecords { skipped: loaded.rows_read });
    }
    // Number the distinct paths in order of appearance, then map them to the sorted label ids.
    let mut path_index: HashMap<&[String], u32> = HashMap::new();
    let mut distinct: Vec<&[String]> = Vec::new();
    let record_paths: Vec<u32> = loaded
        .records
        .iter()
        .map(|r| {
            *path_index.entry(r.category.as_slice()).or_insert_with(|| {
                distinct.push(r.category.as_slice());
                distinct.len() as u32 - 1
            })
        })
        .collect();
    let mut labels = LabelSet::from_paths(distinct.iter().copied(), cfg.tail_max);
    let path_label: Vec<u32> = distinct.iter().map(|p| labels.id_of(p).expect("every kept path is a label")).collect();
    let record_labels: Vec<u32> = record_paths.iter().map(|&p| path_label[p as usize]).collect();
    drop(path_index);
    let paths: Vec<&str> = labels.labels.iter().map(|l| l.path.as_str()).collect();
    let splits = assign_splits(&record_labels, &paths, &cfg.split);
    let mut counts = vec![[0u32; 3]; labels.len()];
    for (&label, &split) in record_labels.iter().zip(&splits) {
        counts[label as usize][split as usize] += 1;
    }
    labels.set_counts(&counts);
    tracing::debug!("labelled and split in {:.2?}", started.elapsed());

    let template = cfg.template_for(desc);
    let records: Vec<PreparedRecord> = loaded
        .records
        .into_iter()
        .zip(record_labels.iter().zip(&splits))
        .map(|(record, (&label, &split))| PreparedRecord { input: template.render(&record), record, label, split })
        .collect();
    tracing::debug!("rendered inputs in {:.2?}", started.elapsed());
    let stats = compute_stats(desc, &file, &records, &labels, loaded.rows_read, loaded.skipped, loaded.skipped_by_kind, loaded.cleaning);
    Ok(PreparedData { records, labels, stats })
}

#[allow(clippy::too_many_arguments)]
fn compute_stats(
    desc: &DatasetDescriptor,
    file: &Path,
    records: &[PreparedRecord],
    labels: &LabelSet,
    rows_read: u64,
    skipped_examples: Vec<SkippedRow>,
    skipped_by_kind: BTreeMap<String, u64>,
    cleaning: CleaningStats,
) -> DataStats {
    let in_split = |s: Split| records.iter().filter(|r| r.split == s).count() as u64;
    let train_records = in_split(Split::Train);
    let tail: BTreeSet<u32> = labels.labels.iter().filter(|l| l.tail).map(|l| l.id).collect();
    let tail_train = labels.labels.iter().filter(|l| l.tail).map(|l| l.train_count as u64).sum::<u64>();
    let mut depth_histogram = BTreeMap::new();
    for label in &labels.labels {
        *depth_histogram.entry(label.depth()).or_default() += 1;
    }
    DataStats {
        dataset: desc.name.clone(),
        file: file.display().to_string(),
        rows_read,
        records: records.len() as u64,
        skipped: skipped_by_kind.values().sum(),
        skipped_by_kind,
        skipped_examples,
        cleaning,
        train_records,
        valid_records: in_split(Split::Valid),
        test_records: in_split(Split::Test),
        labels: labels.len(),
        nodes_per_level: labels.nodes_per_level(),
        depth_histogram,
        tail_max: labels.tail_max,
        tail_labels: tail.len(),
        tail_label_share: tail.len() as f64 / labels.len().max(1) as f64,
        tail_train_record_share: tail_train as f64 / train_records.max(1) as f64,
    }
}
