//! The data stage: raw file -> cleaned, labelled, split records (the [`PreparedData`] artifact).

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::clean::{RowPolicy, parse_price};
use crate::descriptor::DatasetDescriptor;
use crate::error::{DataError, Result, RowLocation};
use crate::ingest::{Field, RawRow, RowEvent, read_rows_mapped};
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
    /// Prepare in two passes over the file with bounded memory (files larger than memory; see
    /// [`crate::prepare_streaming`]) instead of holding every record: the same artifact.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub streaming: bool,
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            dataset: PathBuf::from("datasets/amazon-uk-sample.toml"),
            template: None,
            split: SplitConfig::default(),
            tail_max: 25,
            skip_bad_rows: false,
            streaming: false,
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

/// What reading a file left besides its records: rows seen and skipped, cleaning counts.
#[derive(Debug, Default)]
pub(crate) struct ReadSummary {
    pub rows_read: u64,
    pub skipped: Vec<SkippedRow>,
    pub skipped_by_kind: BTreeMap<String, u64>,
    pub cleaning: CleaningStats,
    /// The line of every kept record, in order.
    pub kept_lines: Vec<u64>,
}

impl ReadSummary {
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
    let mut records = Vec::new();
    let summary = visit_records(desc, file, skip_bad_rows, require_label, |record| {
        records.push(record);
        Ok(())
    })?;
    Ok(LoadedRecords {
        records,
        rows_read: summary.rows_read,
        skipped: summary.skipped,
        skipped_by_kind: summary.skipped_by_kind,
        cleaning: summary.cleaning,
    })
}

/// [`load_records`] handing each kept record to `keep` in file order instead of collecting them
/// (memory: the distinct ids and raw paths, not the records).
pub(crate) fn visit_records(
    desc: &DatasetDescriptor,
    file: &Path,
    skip_bad_rows: bool,
    require_label: bool,
    mut keep: impl FnMut(ProductRecord) -> Result<()>,
) -> Result<ReadSummary> {
    if require_label && desc.columns.category_path.is_none() {
        return Err(DataError::Descriptor {
            path: desc.origin.clone().unwrap_or_default(),
            message: "`columns.category_path` is required to prepare training data".into(),
        });
    }
    let mut out = ReadSummary::default();
    let mut ids = crate::id_index::IdIndex::default();
    let mut raw_paths: rustc_hash::FxHashMap<String, crate::clean::PathChanges> = Default::default();
    let bad_row = |line: u64, reason: String| DataError::BadRow {
        location: RowLocation { file: file.to_path_buf(), line },
        reason,
    };
    let format = crate::FileFormat::from_path(file).unwrap_or_else(|| desc.format());
    // Cleaning happens on the reading thread; the decisions that need every earlier row here.
    let clean = |event: RowEvent| match event {
        RowEvent::Bad { line, reason } => (line, None, Err(RowIssue::new("malformed row", reason))),
        RowEvent::Row(mut row) => {
            let cleaned = clean_row(desc, &row);
            (row.line, row.values[Field::CategoryPath as usize].take(), cleaned)
        }
    };
    out.rows_read = read_rows_mapped(file, format, &desc.columns, clean, |(line, raw_path, cleaned)| {
        let issue = match cleaned {
            Ok((record, changes)) => {
                if let Some(raw) = raw_path
                    && !raw_paths.contains_key(&raw)
                {
                    raw_paths.insert(raw, changes);
                }
                if changes.any() {
                    out.cleaning.rows_changed += 1;
                }
                let unlabelled = require_label && record.category.is_empty();
                // A kept record's id is recorded in the same probe that looks for it.
                if let Some(first) = ids.first_line_or_insert(&record.id, line, !unlabelled) {
                    RowIssue::new("duplicate id", format!("id `{}` was already used at line {first}", record.id))
                } else if unlabelled {
                    let (kind, reason) = if changes.product_name {
                        ("path is only a product name", "the category path holds only the product's name")
                    } else {
                        ("no category path", "the category path is empty")
                    };
                    match desc.cleaning.unlabelled {
                        RowPolicy::Skip => {
                            out.skip(line, kind, reason.to_string());
                            return Ok(());
                        }
                        RowPolicy::Fail => RowIssue::new(kind, format!("{reason} (set `cleaning.unlabelled = \"skip\"` in the descriptor to skip such rows)")),
                    }
                } else {
                    return keep(record);
                }
            }
            Err(issue) => issue,
        };
        if skip_bad_rows {
            out.skip(line, issue.kind, issue.reason);
            Ok(())
        } else {
            Err(bad_row(line, format!("{}: {} (use --skip-bad-rows or `data.skip_bad_rows = true` to skip and count such rows)", issue.kind, issue.reason)))
        }
    })?;
    out.kept_lines = ids.into_lines();
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
    let mut records = Vec::new();
    let summary = visit_records(desc, &file, cfg.skip_bad_rows, true, |record| {
        records.push(record);
        Ok(())
    })?;
    tracing::debug!("read and cleaned {} records in {:.2?}", records.len(), started.elapsed());
    if records.is_empty() {
        return Err(DataError::NoLabelledRecords { skipped: summary.rows_read });
    }
    let mut numbering = PathNumbering::default();
    let record_paths: Vec<u32> = records.iter().map(|r| numbering.number(&r.category)).collect();
    let Labelled { labels, record_labels, splits } = label_and_split(&numbering, &record_paths, cfg);
    tracing::debug!("labelled and split in {:.2?}", started.elapsed());

    let template = cfg.template_for(desc);
    let records: Vec<PreparedRecord> = records
        .into_iter()
        .zip(record_labels.iter().zip(&splits))
        .map(|(record, (&label, &split))| PreparedRecord { input: template.render(&record), record, label, split })
        .collect();
    tracing::debug!("rendered inputs in {:.2?}", started.elapsed());
    let stats = compute_stats(desc, &file, &splits, &labels, summary);
    Ok(PreparedData { records, labels, stats })
}

/// Numbers the distinct category paths in order of first appearance.
#[derive(Debug, Default)]
pub(crate) struct PathNumbering {
    index: rustc_hash::FxHashMap<Vec<String>, u32>,
    distinct: Vec<Vec<String>>,
}

impl PathNumbering {
    /// The number of `path`, giving it the next one when it is new.
    pub fn number(&mut self, path: &[String]) -> u32 {
        if let Some(&n) = self.index.get(path) {
            return n;
        }
        let n = self.distinct.len() as u32;
        self.distinct.push(path.to_vec());
        self.index.insert(path.to_vec(), n);
        n
    }

    /// The number of a path seen before.
    pub fn get(&self, path: &[String]) -> Option<u32> {
        self.index.get(path).copied()
    }
}

/// The label set of the numbered paths, each record's label and split.
pub(crate) struct Labelled {
    pub labels: LabelSet,
    pub record_labels: Vec<u32>,
    pub splits: Vec<Split>,
}

/// Builds the labels (leaves sorted by path) from the distinct paths, maps each record's path
/// number to its label and splits the records, stratified by label; the labels get their counts.
pub(crate) fn label_and_split(numbering: &PathNumbering, record_paths: &[u32], cfg: &DataConfig) -> Labelled {
    let mut labels = LabelSet::from_paths(numbering.distinct.iter().map(Vec::as_slice), cfg.tail_max);
    let path_label: Vec<u32> = numbering.distinct.iter().map(|p| labels.id_of(p).expect("every kept path is a label")).collect();
    let record_labels: Vec<u32> = record_paths.iter().map(|&p| path_label[p as usize]).collect();
    let paths: Vec<&str> = labels.labels.iter().map(|l| l.path.as_str()).collect();
    let splits = assign_splits(&record_labels, &paths, &cfg.split);
    let mut counts = vec![[0u32; 3]; labels.len()];
    for (&label, &split) in record_labels.iter().zip(&splits) {
        counts[label as usize][split as usize] += 1;
    }
    labels.set_counts(&counts);
    Labelled { labels, record_labels, splits }
}

pub(crate) fn compute_stats(desc: &DatasetDescriptor, file: &Path, splits: &[Split], labels: &LabelSet, summary: ReadSummary) -> DataStats {
    let in_split = |s: Split| splits.iter().filter(|&&r| r == s).count() as u64;
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
        rows_read: summary.rows_read,
        records: splits.len() as u64,
        skipped: summary.skipped_by_kind.values().sum(),
        skipped_by_kind: summary.skipped_by_kind,
        skipped_examples: summary.skipped,
        cleaning: summary.cleaning,
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
