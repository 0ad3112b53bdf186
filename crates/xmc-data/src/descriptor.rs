//! Dataset descriptors (`datasets/*.toml`): where a dataset's file is, how its columns map to
//! product-record fields, and which cleaning rules apply to it.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::clean::CleaningRules;
use crate::error::{DataError, Result};

/// The environment variable that points at the folder holding the real datasets.
pub const DATA_DIR_ENV: &str = "XMC_DATA_DIR";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    Csv,
    Jsonl,
    Parquet,
}

impl std::str::FromStr for FileFormat {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, String> {
        match text.to_ascii_lowercase().as_str() {
            "csv" => Ok(FileFormat::Csv),
            "jsonl" | "ndjson" | "json" => Ok(FileFormat::Jsonl),
            "parquet" => Ok(FileFormat::Parquet),
            other => Err(format!("unknown format `{other}`; expected csv, jsonl or parquet")),
        }
    }
}

impl FileFormat {
    /// Guesses the format from a file name's extension (`.tsv` and `.tab` are delimited text:
    /// CSV read at the delimiter its header shows).
    pub fn from_path(path: &Path) -> Option<Self> {
        match path.extension()?.to_str()?.to_ascii_lowercase().as_str() {
            "csv" | "tsv" | "tab" => Some(FileFormat::Csv),
            "jsonl" | "ndjson" | "json" => Some(FileFormat::Jsonl),
            "parquet" | "pq" => Some(FileFormat::Parquet),
            _ => None,
        }
    }
}

/// What a relative `path` in a descriptor is relative to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PathBase {
    /// `XMC_DATA_DIR`, or `shared/datasets` found beside the repository.
    #[default]
    DataDir,
    /// The folder that holds the descriptor itself (for samples bundled with the repo).
    Descriptor,
}

/// Which column of the file fills each field of a product record. Unset optional fields stay empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ColumnMap {
    /// Without an id column, a record's id is `row-<line>`.
    pub id: Option<String>,
    pub title: String,
    pub description: Option<String>,
    pub store: Option<String>,
    pub manufacturer: Option<String>,
    pub brand: Option<String>,
    pub price: Option<String>,
    /// Required for training data; files given only to predict may lack it.
    pub category_path: Option<String>,
}

/// The parsed `datasets/<name>.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatasetDescriptor {
    pub name: String,
    pub path: PathBuf,
    #[serde(default)]
    pub relative_to: PathBase,
    /// Defaults to the extension of `path`.
    pub format: Option<FileFormat>,
    /// The retailer shown to the model when the file has no store column (e.g. "Amazon UK").
    #[serde(default)]
    pub store_name: Option<String>,
    pub columns: ColumnMap,
    #[serde(default)]
    pub cleaning: CleaningRules,
    #[serde(default)]
    pub source: Option<String>,
    #[serde(default)]
    pub licence: Option<String>,
    /// The model input for this dataset's records, used when the experiment config sets no
    /// `data.template` (e.g. with the manufacturer or brand column the dataset has).
    #[serde(default)]
    pub template: Option<crate::template::InputTemplate>,
    /// Where the descriptor was read from; set by [`DatasetDescriptor::load`].
    #[serde(skip)]
    pub origin: Option<PathBuf>,
}

impl DatasetDescriptor {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
        let mut desc: DatasetDescriptor = toml::from_str(&text).map_err(|e| DataError::Descriptor {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        desc.origin = Some(path.to_path_buf());
        desc.validate().map_err(|message| DataError::Descriptor { path: path.to_path_buf(), message })?;
        Ok(desc)
    }

    pub fn validate(&self) -> std::result::Result<(), String> {
        if self.name.trim().is_empty() {
            return Err("`name` must not be empty".into());
        }
        if self.columns.title.trim().is_empty() {
            return Err("`columns.title` must name a column".into());
        }
        if self.format.is_none() && FileFormat::from_path(&self.path).is_none() {
            return Err(format!(
                "cannot tell the format of `{}` from its extension; set `format` to one of csv, jsonl, parquet",
                self.path.display()
            ));
        }
        self.cleaning.validate()
    }

    pub fn format(&self) -> FileFormat {
        self.format
            .or_else(|| FileFormat::from_path(&self.path))
            .expect("validated: format is set or guessable")
    }

    /// The absolute location of the data file.
    pub fn resolve_path(&self) -> Result<PathBuf> {
        if self.path.is_absolute() {
            return Ok(self.path.clone());
        }
        let base = match self.relative_to {
            PathBase::Descriptor => self
                .origin
                .as_deref()
                .and_then(Path::parent)
                .map(Path::to_path_buf)
                .unwrap_or_else(|| PathBuf::from(".")),
            PathBase::DataDir => data_dir(self.origin.as_deref())?,
        };
        Ok(base.join(&self.path))
    }
}

/// The folder of the real datasets: `$XMC_DATA_DIR`, else the first `shared/datasets` found beside
/// the descriptor's folder or one of its ancestors (the layout `<work>/main` + `<work>/shared`).
pub fn data_dir(near: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os(DATA_DIR_ENV) {
        return Ok(PathBuf::from(dir));
    }
    let start = near
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let start = std::fs::canonicalize(&start).unwrap_or(start);
    for dir in start.ancestors() {
        let candidate = dir.join("shared").join("datasets");
        if candidate.is_dir() {
            return Ok(candidate);
        }
    }
    Err(DataError::Config(format!(
        "the real datasets were not found: set {DATA_DIR_ENV} to the folder that holds them \
         (looked for shared/datasets beside {} and its parents)",
        start.display()
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AMAZON: &str = r#"
        name = "amazon-uk"
        path = "amazon-uk/products.csv"
        store_name = "Amazon UK"
        [columns]
        id = "id"
        title = "title"
        manufacturer = "manufacturer"
        price = "price"
        category_path = "category_path"
        [cleaning]
        path_separator = " > "
    "#;

    #[test]
    fn parses_and_guesses_format() {
        let d: DatasetDescriptor = toml::from_str(AMAZON).unwrap();
        d.validate().unwrap();
        assert_eq!(d.format(), FileFormat::Csv);
        assert_eq!(d.relative_to, PathBase::DataDir);
        assert_eq!(d.columns.brand, None);
        let tsv: DatasetDescriptor = toml::from_str(&AMAZON.replace("products.csv", "products.tsv")).unwrap();
        assert_eq!(tsv.format(), FileFormat::Csv, "a .tsv is delimited text");
    }

    #[test]
    fn unknown_key_is_an_error_naming_it() {
        let bad = AMAZON.replace("store_name", "shop_name");
        let err = toml::from_str::<DatasetDescriptor>(&bad).unwrap_err().to_string();
        assert!(err.contains("shop_name"), "{err}");
    }

    #[test]
    fn unknown_extension_needs_a_format() {
        let bad = AMAZON.replace("products.csv", "products.dat");
        let d: DatasetDescriptor = toml::from_str(&bad).unwrap();
        assert!(d.validate().unwrap_err().contains("format"));
    }

    #[test]
    fn descriptor_relative_paths_resolve_beside_the_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("d.toml");
        std::fs::write(&file, AMAZON.replace("store_name", "relative_to = \"descriptor\"\nstore_name")).unwrap();
        let d = DatasetDescriptor::load(&file).unwrap();
        assert_eq!(d.resolve_path().unwrap(), dir.path().join("amazon-uk/products.csv"));
    }
}
