//! Brand prediction, the second target: which brand (Flipkart) or manufacturer (Amazon UK) a
//! product is, from its title and description. A brand seen in training whose name appears in the
//! title (as whole words) is taken, the longest name first, then the one with more training
//! records. Otherwise each brand is the normalised sum of its training records' TF-IDF vectors
//! (word unigrams and bigrams), and the record gets the brand with the most similar vector. A record without a brand belongs to the class [`NO_BRAND`], which is predicted
//! like any other.

use std::collections::HashMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use xmc_data::{PreparedData, ProductRecord, Split};

/// The class of records whose brand is empty or missing.
pub const NO_BRAND: &str = "(no brand)";
pub const METRICS_FILE: &str = "brand_metrics.json";

#[derive(Debug, thiserror::Error)]
pub enum BrandError {
    #[error("{}: {source}", path.display())]
    Io { path: std::path::PathBuf, source: std::io::Error },
}

/// The brand of a record: `brand`, else `manufacturer`, trimmed; matched case-insensitively.
pub fn brand_of(record: &ProductRecord) -> String {
    let raw = record.brand.as_deref().or(record.manufacturer.as_deref()).unwrap_or("").trim();
    if raw.is_empty() { NO_BRAND.to_string() } else { raw.to_lowercase() }
}

fn terms(record: &ProductRecord) -> HashMap<String, f32> {
    let words = words(&format!("{} {}", record.title, record.description.as_deref().unwrap_or("")));
    let mut tf: HashMap<String, f32> = HashMap::new();
    for w in &words {
        *tf.entry(w.clone()).or_default() += 1.0;
    }
    for pair in words.windows(2) {
        *tf.entry(format!("{} {}", pair[0], pair[1])).or_default() += 1.0;
    }
    tf
}

/// The trained classifier: idf weights and one sparse unit vector per brand.
#[derive(Debug, Clone)]
pub struct BrandModel {
    idf: HashMap<String, f32>,
    pub brands: Vec<String>,
    /// term -> (brand index, weight)
    postings: HashMap<String, Vec<(u32, f32)>>,
    /// A brand's name as lower-case words joined by spaces -> (brand index, training records).
    names: HashMap<String, (u32, u32)>,
    longest_name: usize,
}

/// Lower-case alphanumeric words.
fn words(text: &str) -> Vec<String> {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase).collect()
}

impl BrandModel {
    pub fn train<'a>(records: impl IntoIterator<Item = &'a ProductRecord>) -> BrandModel {
        let docs: Vec<(String, HashMap<String, f32>)> = records.into_iter().map(|r| (brand_of(r), terms(r))).collect();
        let mut df: HashMap<&str, f32> = HashMap::new();
        for (_, tf) in &docs {
            for t in tf.keys() {
                *df.entry(t.as_str()).or_default() += 1.0;
            }
        }
        let n = docs.len() as f32;
        let idf: HashMap<String, f32> = df.iter().map(|(t, d)| (t.to_string(), ((1.0 + n) / (1.0 + d)).ln() + 1.0)).collect();
        let mut brand_index: HashMap<String, u32> = HashMap::new();
        let mut brands = Vec::new();
        let mut sums: Vec<HashMap<String, f32>> = Vec::new();
        for (brand, tf) in &docs {
            let b = *brand_index.entry(brand.clone()).or_insert_with(|| {
                brands.push(brand.clone());
                sums.push(HashMap::new());
                (brands.len() - 1) as u32
            });
            let v = weigh(tf, &idf);
            for (t, w) in v {
                *sums[b as usize].entry(t).or_default() += w;
            }
        }
        let mut names: HashMap<String, (u32, u32)> = HashMap::new();
        for (brand, _) in &docs {
            if brand == NO_BRAND {
                continue;
            }
            let key = words(brand).join(" ");
            if !key.is_empty() {
                let b = brand_index[brand];
                let entry = names.entry(key).or_insert((b, 0));
                if entry.0 == b {
                    entry.1 += 1;
                }
            }
        }
        let longest_name = names.keys().map(|k| k.split(' ').count()).max().unwrap_or(0);
        let mut postings: HashMap<String, Vec<(u32, f32)>> = HashMap::new();
        for (b, sum) in sums.into_iter().enumerate() {
            let norm = sum.values().map(|w| w * w).sum::<f32>().sqrt().max(1e-12);
            for (t, w) in sum {
                postings.entry(t).or_default().push((b as u32, w / norm));
            }
        }
        BrandModel { idf, brands, postings, names, longest_name }
    }

    /// The most similar brand (`NO_BRAND` when nothing matches and that class exists).
    pub fn predict(&self, record: &ProductRecord) -> String {
        let title = words(&record.title);
        let mut best: Option<(usize, u32, u32)> = None; // (name length, count, brand)
        for n in (1..=self.longest_name.min(title.len())).rev() {
            for gram in title.windows(n) {
                if let Some(&(b, count)) = self.names.get(&gram.join(" ")) {
                    if best.is_none_or(|(bn, bc, _)| (n, count) > (bn, bc)) {
                        best = Some((n, count, b));
                    }
                }
            }
            if best.is_some() {
                break;
            }
        }
        if let Some((_, _, b)) = best {
            return self.brands[b as usize].clone();
        }
        let v = weigh(&terms(record), &self.idf);
        let mut scores: HashMap<u32, f32> = HashMap::new();
        for (t, w) in &v {
            for &(b, bw) in self.postings.get(t).map(Vec::as_slice).unwrap_or(&[]) {
                *scores.entry(b).or_default() += w * bw;
            }
        }
        scores
            .into_iter()
            .max_by(|a, b| a.1.total_cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(b, _)| self.brands[b as usize].clone())
            .unwrap_or_else(|| NO_BRAND.to_string())
    }
}

/// A unit TF-IDF vector (terms unknown to the idf table are dropped).
fn weigh(tf: &HashMap<String, f32>, idf: &HashMap<String, f32>) -> Vec<(String, f32)> {
    let v: Vec<(String, f32)> = tf.iter().filter_map(|(t, c)| idf.get(t).map(|i| (t.clone(), c * i))).collect();
    let norm = v.iter().map(|(_, w)| w * w).sum::<f32>().sqrt().max(1e-12);
    v.into_iter().map(|(t, w)| (t, w / norm)).collect()
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
    /// Test records whose brand never occurs in training (always errors).
    pub unseen_brand_records: usize,
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
    let pairs: Vec<(String, Option<String>)> = test.iter().map(|r| (brand_of(r), Some(model.predict(r)))).collect();
    let seconds = started.elapsed().as_secs_f64().max(1e-9);
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
        seconds_train,
        records_per_s: pairs.len() as f64 / seconds,
    }
}

impl BrandMetrics {
    pub fn save(&self, path: &Path) -> Result<(), BrandError> {
        std::fs::write(path, serde_json::to_string_pretty(self).expect("serialises") + "\n")
            .map_err(|source| BrandError::Io { path: path.into(), source })
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
    fn brands_are_found_in_titles_and_missing_brands_are_a_class() {
        let train = [
            rec("Hornby R4410 coach 00 gauge", Some("Hornby")),
            rec("Hornby locomotive class 08", Some("HORNBY")),
            rec("Bachmann wagon 00 gauge", Some("Bachmann")),
            rec("Bachmann branchline coach", Some("Bachmann")),
            rec("plain white mug", None),
            rec("plain white plate", Some("  ")),
        ];
        let model = BrandModel::train(train.iter());
        assert_eq!(model.predict(&rec("A coach by bachmann, like hornby's", None)), "bachmann", "the longer/commoner named brand");
        assert_eq!(model.brands.len(), 3, "case-insensitive brands plus the no-brand class: {:?}", model.brands);
        assert_eq!(model.predict(&rec("Hornby class 37 locomotive", None)), "hornby");
        assert_eq!(model.predict(&rec("Bachmann coal wagon", None)), "bachmann");
        assert_eq!(model.predict(&rec("white mug", None)), NO_BRAND);
        assert_eq!(model.predict(&rec("zzz qqq", None)), NO_BRAND, "nothing in common");
    }
}
