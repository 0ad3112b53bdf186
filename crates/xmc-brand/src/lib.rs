//! Brand prediction, the second target: which brand (Flipkart) or manufacturer (Amazon UK) a
//! product is, from its title. Sellers put the brand first: the title's first one to three words
//! are looked up in a table built from the training records (the longest prefix seen in training
//! wins; it maps to the brand most often seen with it, [`NO_BRAND`] included). A title whose first
//! word was never seen names a brand the model does not know, and its first word is extracted as
//! the brand. A record without a brand belongs to the class [`NO_BRAND`], predicted like any other.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use xmc_data::{PreparedData, ProductRecord, Split};

/// The class of records whose brand is empty or missing.
pub const NO_BRAND: &str = "(no brand)";
pub const METRICS_FILE: &str = "brand_metrics.json";
/// The longest title prefix, in words, looked up.
const PREFIX_WORDS: usize = 3;

#[derive(Debug, thiserror::Error)]
pub enum BrandError {
    #[error(transparent)]
    Io(#[from] xmc_data::IoError),
}

/// The brand of a record: `brand`, else `manufacturer`, as lower-case words joined by single
/// spaces (`Black & Decker` and `BLACK+DECKER` are one brand); [`NO_BRAND`] when empty.
pub fn brand_of(record: &ProductRecord) -> String {
    let raw = record.brand.as_deref().or(record.manufacturer.as_deref()).unwrap_or("");
    let name = words(raw).join(" ");
    if name.is_empty() { NO_BRAND.to_string() } else { name }
}

/// Lower-case alphanumeric words.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

/// How a brand was predicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Evidence {
    /// The title starts with words seen in training.
    KnownPrefix,
    /// The title's first word was never seen: it is taken as a new brand.
    FirstWord,
    /// An empty title.
    Nothing,
}

/// The trained model: title prefixes (1 to 3 words) -> the brand seen most often with them.
#[derive(Debug, Clone)]
pub struct BrandModel {
    /// Every brand of the training records ([`NO_BRAND`] included), in order of first appearance.
    pub brands: Vec<String>,
    prefixes: HashMap<String, u32>,
}

impl BrandModel {
    pub fn train<'a>(records: impl IntoIterator<Item = &'a ProductRecord>) -> BrandModel {
        let mut brand_index: HashMap<String, u32> = HashMap::new();
        let mut brands = Vec::new();
        let mut counts: HashMap<String, HashMap<u32, u32>> = HashMap::new();
        for record in records {
            let brand = brand_of(record);
            let b = *brand_index.entry(brand.clone()).or_insert_with(|| {
                brands.push(brand);
                (brands.len() - 1) as u32
            });
            let title = words(&record.title);
            for k in 1..=PREFIX_WORDS.min(title.len()) {
                *counts.entry(title[..k].join(" ")).or_default().entry(b).or_default() += 1;
            }
        }
        // The commonest brand per prefix; ties go to the brand seen first.
        let prefixes = counts
            .into_iter()
            .map(|(prefix, by_brand)| {
                let best = by_brand.into_iter().max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0))).expect("counted").0;
                (prefix, best)
            })
            .collect();
        BrandModel { brands, prefixes }
    }

    /// The predicted brand (lower-case words, or [`NO_BRAND`]) and what it rests on.
    pub fn predict_with_evidence(&self, record: &ProductRecord) -> (String, Evidence) {
        let title = words(&record.title);
        for k in (1..=PREFIX_WORDS.min(title.len())).rev() {
            if let Some(&b) = self.prefixes.get(&title[..k].join(" ")) {
                return (self.brands[b as usize].clone(), Evidence::KnownPrefix);
            }
        }
        match title.first() {
            Some(word) => (word.clone(), Evidence::FirstWord),
            None => (NO_BRAND.to_string(), Evidence::Nothing),
        }
    }

    pub fn predict(&self, record: &ProductRecord) -> String {
        self.predict_with_evidence(record).0
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BrandMetrics {
    pub records: usize,
    pub brands_in_training: usize,
    pub accuracy: f64,
    /// Over the brand classes, scikit-learn's definitions.
    pub scores: xmc_eval::classification::Averages,
    /// Test records whose true brand is [`NO_BRAND`], and the accuracy on the others.
    pub no_brand_records: usize,
    pub known_brand_accuracy: Option<f64>,
    /// Test records whose brand never occurs in training.
    pub unseen_brand_records: usize,
    /// Of those, the ones whose brand the title's first word gave.
    #[serde(default)]
    pub unseen_brand_found: usize,
    /// Test records whose title starts with a word never seen in training, and the accuracy of
    /// taking that word as the brand.
    #[serde(default)]
    pub first_word_records: usize,
    #[serde(default)]
    pub first_word_accuracy: Option<f64>,
    pub seconds_train: f64,
    pub records_per_s: f64,
}

/// Trains on the training split and scores the test split.
pub fn train_and_evaluate(data: &PreparedData) -> BrandMetrics {
    let started = std::time::Instant::now();
    let model = BrandModel::train(data.split(Split::Train).map(|r| &r.record));
    let seconds_train = started.elapsed().as_secs_f64();
    let started = std::time::Instant::now();
    let test: Vec<&ProductRecord> = data.split(Split::Test).map(|r| &r.record).collect();
    let predicted: Vec<(String, Evidence)> = test.iter().map(|r| model.predict_with_evidence(r)).collect();
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
    let pairs: Vec<(String, Option<String>)> = test.iter().zip(&predicted).map(|(r, p)| (brand_of(r), Some(p.0.clone()))).collect();
    let first_word: Vec<bool> = pairs
        .iter()
        .zip(&predicted)
        .filter(|(_, p)| p.1 == Evidence::FirstWord)
        .map(|(pair, _)| pair.1.as_deref() == Some(pair.0.as_str()))
        .collect();
    let known: std::collections::HashSet<&str> = model.brands.iter().map(String::as_str).collect();
    let correct = |p: &(String, Option<String>)| p.1.as_deref() == Some(p.0.as_str());
    let branded: Vec<_> = pairs.iter().filter(|p| p.0 != NO_BRAND).collect();
    BrandMetrics {
        records: pairs.len(),
        brands_in_training: model.brands.len(),
        accuracy: pairs.iter().filter(|p| correct(p)).count() as f64 / pairs.len().max(1) as f64,
        scores: xmc_eval::classification::averages(pairs.iter().cloned()),
        no_brand_records: pairs.len() - branded.len(),
        known_brand_accuracy: (!branded.is_empty()).then(|| branded.iter().filter(|p| correct(p)).count() as f64 / branded.len() as f64),
        unseen_brand_records: pairs.iter().filter(|p| !known.contains(p.0.as_str())).count(),
        unseen_brand_found: pairs.iter().filter(|p| !known.contains(p.0.as_str()) && correct(p)).count(),
        first_word_records: first_word.len(),
        first_word_accuracy: (!first_word.is_empty()).then(|| first_word.iter().filter(|&&c| c).count() as f64 / first_word.len() as f64),
        seconds_train,
        records_per_s: pairs.len() as f64 / seconds,
    }
}

impl BrandMetrics {
    pub fn save(&self, path: &Path) -> Result<(), BrandError> {
        std::fs::write(path, serde_json::to_string_pretty(self).expect("serialises") + "\n")
            .map_err(|source| BrandError::Io(xmc_data::IoError::new(path, source)))
    }

    pub fn load(path: &Path) -> Option<BrandMetrics> {
        serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(title: &str, brand: Option<&str>) -> ProductRecord {
        ProductRecord { title: title.into(), brand: brand.map(String::from), ..ProductRecord::default() }
    }

    #[test]
    fn brands_come_from_title_prefixes_and_missing_brands_are_a_class() {
        let train = [
            rec("Hornby R4410 coach 00 gauge", Some("Hornby")),
            rec("Hornby locomotive class 08", Some("HORNBY")),
            rec("Bachmann wagon 00 gauge", Some("Bachmann")),
            rec("Bachmann branchline coach", Some("Bachmann")),
            rec("Plain white mug", None),
            rec("Plain white plate", Some("  ")),
            rec("Plain red jug", Some("Jugs & Co.")),
        ];
        let model = BrandModel::train(train.iter());
        assert_eq!(model.brands, vec!["hornby", "bachmann", NO_BRAND, "jugs co"], "case and punctuation do not split a brand");
        assert_eq!(model.predict_with_evidence(&rec("Hornby class 37 locomotive", None)), ("hornby".into(), Evidence::KnownPrefix));
        assert_eq!(model.predict(&rec("bachmann: coal wagon", None)), "bachmann");
        assert_eq!(model.predict(&rec("Plain white cup", None)), NO_BRAND, "`plain white` is seen twice without a brand");
        assert_eq!(model.predict(&rec("Plain red jug, large", None)), "jugs co", "the longest seen prefix decides");
        assert_eq!(model.predict(&rec("Plain blue bowl", None)), NO_BRAND, "`plain` alone: 2 records without a brand, 1 with");
        assert_eq!(model.predict_with_evidence(&rec("Peco track set", None)), ("peco".into(), Evidence::FirstWord), "an unseen brand is extracted");
        assert_eq!(model.predict_with_evidence(&rec(" - ", None)), (NO_BRAND.into(), Evidence::Nothing));
    }
}
