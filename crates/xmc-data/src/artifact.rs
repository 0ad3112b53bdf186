//! Saving and loading the data stage's artifact: `records.parquet`, `labels.json`, `stats.json`.

use std::fs::File;
use std::path::Path;

use polars::prelude::*;

use crate::error::{DataError, Result};
use crate::labels::{Label, LabelSet};
use crate::prepare::PreparedData;
use crate::record::{PreparedRecord, ProductRecord, Split};
use crate::stats::DataStats;

pub const RECORDS_FILE: &str = "records.parquet";
pub const LABELS_FILE: &str = "labels.json";
pub const STATS_FILE: &str = "stats.json";

#[derive(serde::Serialize, serde::Deserialize)]
struct LabelsFile {
    tail_max: u32,
    labels: Vec<Label>,
}

pub(crate) fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).expect("artifact types serialise");
    std::fs::write(path, text + "\n").map_err(|e| DataError::io(path, e))
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| DataError::artifact(path, e))
}

impl LabelSet {
    /// Writes `labels.json` into `dir` (as the data stage does).
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        write_json(&dir.join(LABELS_FILE), &LabelsFile { tail_max: self.tail_max, labels: self.labels.clone() })
    }

    /// The labels of a prepared-data folder, without reading its records.
    pub fn load(dir: &Path) -> Result<Self> {
        let file: LabelsFile = read_json(&dir.join(LABELS_FILE))?;
        let labels = LabelSet::from_labels(file.labels, file.tail_max);
        labels.check().map_err(|m| DataError::artifact(dir.join(LABELS_FILE), m))?;
        Ok(labels)
    }
}

impl PreparedData {
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
        let mut df = records_frame(&self.records)?;
        let path = dir.join(RECORDS_FILE);
        let file = File::create(&path).map_err(|e| DataError::io(&path, e))?;
        ParquetWriter::new(file).finish(&mut df)?;
        self.labels.save(dir)?;
        write_json(&dir.join(STATS_FILE), &self.stats)
    }

    pub fn load(dir: &Path) -> Result<Self> {
        let labels = LabelSet::load(dir)?;
        let stats: DataStats = read_json(&dir.join(STATS_FILE))?;
        let path = dir.join(RECORDS_FILE);
        let file = File::open(&path).map_err(|e| DataError::io(&path, e))?;
        let df = ParquetReader::new(file).finish()?;
        let records = records_from_frame(&df, &labels).map_err(|m| DataError::artifact(&path, m))?;
        Ok(PreparedData { records, labels, stats })
    }

    /// The records of one split.
    pub fn split(&self, split: Split) -> impl Iterator<Item = &PreparedRecord> {
        self.records.iter().filter(move |r| r.split == split)
    }
}

pub(crate) fn records_frame(records: &[PreparedRecord]) -> Result<DataFrame> {
    fn text(records: &[PreparedRecord], f: impl Fn(&PreparedRecord) -> Option<&str>) -> Vec<Option<&str>> {
        records.iter().map(f).collect()
    }
    let columns = vec![
        Column::new("id".into(), records.iter().map(|r| r.record.id.as_str()).collect::<Vec<_>>()),
        Column::new("line".into(), records.iter().map(|r| r.record.line).collect::<Vec<_>>()),
        Column::new("split".into(), records.iter().map(|r| r.split.as_str()).collect::<Vec<_>>()),
        Column::new("label".into(), records.iter().map(|r| r.label).collect::<Vec<_>>()),
        Column::new("input".into(), records.iter().map(|r| r.input.as_str()).collect::<Vec<_>>()),
        Column::new("title".into(), records.iter().map(|r| r.record.title.as_str()).collect::<Vec<_>>()),
        Column::new("description".into(), text(records, |r| r.record.description.as_deref())),
        Column::new("store".into(), text(records, |r| r.record.store.as_deref())),
        Column::new("manufacturer".into(), text(records, |r| r.record.manufacturer.as_deref())),
        Column::new("brand".into(), text(records, |r| r.record.brand.as_deref())),
        Column::new("price".into(), records.iter().map(|r| r.record.price).collect::<Vec<_>>()),
        Column::new("price_max".into(), records.iter().map(|r| r.record.price_max).collect::<Vec<_>>()),
    ];
    Ok(DataFrame::new(records.len(), columns)?)
}

fn records_from_frame(df: &DataFrame, labels: &LabelSet) -> std::result::Result<Vec<PreparedRecord>, String> {
    let col = |name: &str| df.column(name).map_err(|_| format!("column `{name}` is missing"));
    let strs = |name: &str| -> std::result::Result<StringChunked, String> {
        col(name)?.str().cloned().map_err(|e| format!("column `{name}`: {e}"))
    };
    let (id, split, input, title) = (strs("id")?, strs("split")?, strs("input")?, strs("title")?);
    let (description, store, manufacturer, brand) = (strs("description")?, strs("store")?, strs("manufacturer")?, strs("brand")?);
    let line = col("line")?.u64().map_err(|e| e.to_string())?.clone();
    let label = col("label")?.u32().map_err(|e| e.to_string())?.clone();
    let price = col("price")?.f64().map_err(|e| e.to_string())?.clone();
    let price_max = col("price_max")?.f64().map_err(|e| e.to_string())?.clone();
    let owned = |c: &StringChunked, i: usize| c.get(i).map(str::to_string);
    (0..df.height())
        .map(|i| {
            let label_id = label.get(i).ok_or_else(|| format!("row {i}: label is null"))?;
            let category = labels
                .get(label_id)
                .ok_or_else(|| format!("row {i}: label {label_id} is not in labels.json"))?
                .levels
                .clone();
            let split_name = split.get(i).unwrap_or_default();
            Ok(PreparedRecord {
                record: ProductRecord {
                    id: owned(&id, i).ok_or_else(|| format!("row {i}: id is null"))?,
                    line: line.get(i).unwrap_or(0),
                    title: owned(&title, i).unwrap_or_default(),
                    description: owned(&description, i),
                    store: owned(&store, i),
                    manufacturer: owned(&manufacturer, i),
                    brand: owned(&brand, i),
                    price: price.get(i),
                    price_max: price_max.get(i),
                    category,
                },
                input: owned(&input, i).unwrap_or_default(),
                label: label_id,
                split: Split::parse(split_name).ok_or_else(|| format!("row {i}: unknown split `{split_name}`"))?,
            })
        })
        .collect()
}
