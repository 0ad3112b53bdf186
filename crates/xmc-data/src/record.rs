//! Product records as read from a raw file and as prepared for the models.

use serde::{Deserialize, Serialize};

/// One product after cleaning, before it is given a label id and a split.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ProductRecord {
    pub id: String,
    /// Where the record starts in its file (1-based line; row for Parquet).
    pub line: u64,
    pub title: String,
    pub description: Option<String>,
    pub store: Option<String>,
    pub manufacturer: Option<String>,
    pub brand: Option<String>,
    pub price: Option<f64>,
    /// Upper bound when the raw price was a range.
    pub price_max: Option<f64>,
    /// Cleaned category path segments, root first; empty when the record is unlabelled.
    pub category: Vec<String>,
}

impl ProductRecord {
    /// A text field by its template name.
    pub fn text_field(&self, name: &str) -> Option<&str> {
        match name {
            "id" => Some(&self.id),
            "title" => Some(&self.title),
            "description" => self.description.as_deref(),
            "store" => self.store.as_deref(),
            "manufacturer" => self.manufacturer.as_deref(),
            "brand" => self.brand.as_deref(),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    Train,
    Valid,
    Test,
}

impl Split {
    pub const ALL: [Split; 3] = [Split::Train, Split::Valid, Split::Test];

    pub fn as_str(self) -> &'static str {
        match self {
            Split::Train => "train",
            Split::Valid => "valid",
            Split::Test => "test",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Split::ALL.into_iter().find(|s| s.as_str() == text)
    }
}

/// A record ready for the models: its rendered input, its leaf label and its split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PreparedRecord {
    pub record: ProductRecord,
    pub input: String,
    pub label: u32,
    pub split: Split,
}
