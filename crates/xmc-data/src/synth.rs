//! A synthetic product generator at the reference work's scale (1.68M records), over the Google
//! product taxonomy with Zipf-like label frequencies. For scale benchmarks only: its text is
//! made of the label's own words, so accuracy on it means nothing.

use std::path::Path;

use crate::error::{DataError, Result};
use crate::labels::PATH_SEPARATOR;
use crate::rng::SplitMix64;

#[derive(Debug, Clone, PartialEq)]
pub struct SynthConfig {
    pub records: usize,
    /// Number of leaf labels; beyond the taxonomy's leaves, brand sub-levels are added.
    pub labels: usize,
    /// Zipf exponent of label frequencies.
    pub zipf_exponent: f64,
    pub seed: u64,
}

impl Default for SynthConfig {
    fn default() -> Self {
        // The reference work: 1.68M records, 14,262 brands.
        SynthConfig { records: 1_680_000, labels: 14_262, zipf_exponent: 1.0, seed: 7 }
    }
}

/// Reads a Google taxonomy file (`ID - A > B > C` per line, `#` comments) and returns its leaves.
pub fn taxonomy_leaves(path: &Path) -> Result<Vec<Vec<String>>> {
    let text = std::fs::read_to_string(path).map_err(|e| DataError::io(path, e))?;
    let mut paths = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (_, path) = line.split_once(" - ").ok_or_else(|| DataError::BadRow {
            location: crate::RowLocation { file: path.to_path_buf(), line: i as u64 + 1 },
            reason: "expected `ID - Level 1 > Level 2 > ...`".into(),
        })?;
        paths.push(path.split(" > ").map(|s| s.trim().to_string()).collect::<Vec<_>>());
    }
    let parents: std::collections::BTreeSet<&[String]> =
        paths.iter().filter(|p| p.len() > 1).map(|p| &p[..p.len() - 1]).collect();
    let leaves = paths.iter().filter(|p| !parents.contains(p.as_slice())).cloned().collect();
    Ok(leaves)
}

const SYLLABLES: [&str; 24] = [
    "ka", "lo", "mi", "ren", "tor", "va", "zen", "qui", "bel", "dor", "fa", "gri", "hu", "jo", "nex", "pa", "ro",
    "sa", "ti", "ul", "vik", "wo", "xa", "yo",
];
const ADJECTIVES: [&str; 16] = [
    "Classic", "Premium", "Compact", "Deluxe", "Portable", "Heavy Duty", "Mini", "Pro", "Eco", "Vintage", "Smart",
    "Large", "Kids", "Outdoor", "Wireless", "Professional",
];
const STORES: [&str; 6] = ["Amazon UK", "Flipkart", "Walmart", "Target", "Argos", "eBay"];

fn brand_name(rng: &mut SplitMix64) -> String {
    let n = 2 + rng.below(2);
    let mut name: String = (0..n).map(|_| SYLLABLES[rng.below(SYLLABLES.len())]).collect();
    if let Some(first) = name.get_mut(0..1) {
        first.make_ascii_uppercase();
    }
    name
}

/// The synthetic label paths: the taxonomy's leaves, extended with brand sub-levels up to `n`.
pub fn synthetic_labels(leaves: &[Vec<String>], n: usize, seed: u64) -> Vec<Vec<String>> {
    let mut rng = SplitMix64::new(seed);
    let mut labels: Vec<Vec<String>> = leaves.iter().take(n).cloned().collect();
    let mut seen: std::collections::BTreeSet<Vec<String>> = labels.iter().cloned().collect();
    while labels.len() < n && !leaves.is_empty() {
        let mut path = leaves[rng.below(leaves.len())].clone();
        path.push(brand_name(&mut rng));
        if seen.insert(path.clone()) {
            labels.push(path);
        }
    }
    labels
}

/// Writes `cfg.records` synthetic records as CSV (`id,title,description,store,manufacturer,price,category_path`).
pub fn write_synthetic_csv(taxonomy: &Path, out: &Path, cfg: &SynthConfig) -> Result<()> {
    let leaves = taxonomy_leaves(taxonomy)?;
    let labels = synthetic_labels(&leaves, cfg.labels, cfg.seed);
    let mut rng = SplitMix64::new(cfg.seed ^ 0x5eed);
    // Zipf over a random order of labels: the CDF of 1 / rank^s.
    let mut order: Vec<usize> = (0..labels.len()).collect();
    rng.shuffle(&mut order);
    let mut cdf = Vec::with_capacity(order.len());
    let mut total = 0.0;
    for rank in 0..order.len() {
        total += 1.0 / ((rank + 1) as f64).powf(cfg.zipf_exponent);
        cdf.push(total);
    }
    let brands: Vec<String> = (0..2000).map(|_| brand_name(&mut rng)).collect();
    let joined: Vec<String> = labels.iter().map(|p| p.join(PATH_SEPARATOR)).collect();
    let file = std::fs::File::create(out).map_err(|e| DataError::io(out, e))?;
    let mut writer = csv::Writer::from_writer(std::io::BufWriter::with_capacity(1 << 20, file));
    let io = |e: csv::Error| DataError::Format { file: out.to_path_buf(), message: e.to_string() };
    writer.write_record(["id", "title", "description", "store", "manufacturer", "price", "category_path"]).map_err(io)?;
    let mut title = String::new();
    for i in 0..cfg.records {
        let u = rng.next_f64() * total;
        let rank = cdf.partition_point(|&c| c < u).min(order.len() - 1);
        let label = order[rank];
        let path = &labels[label];
        let brand = &brands[rng.below(brands.len())];
        title.clear();
        title.push_str(brand);
        title.push(' ');
        title.push_str(ADJECTIVES[rng.below(ADJECTIVES.len())]);
        title.push(' ');
        title.push_str(path.last().map(String::as_str).unwrap_or_default());
        title.push_str(&format!(" {}{}", SYLLABLES[rng.below(SYLLABLES.len())].to_uppercase(), rng.below(1000)));
        let price = format!("£{:.2}", (rng.next_f64() * 6.0).exp());
        let id = format!("{:032x}", (cfg.seed as u128) << 64 | i as u128);
        let store = STORES[rng.below(STORES.len())];
        writer
            .write_record([id.as_str(), title.as_str(), "", store, brand.as_str(), price.as_str(), joined[label].as_str()])
            .map_err(io)?;
    }
    writer.flush().map_err(|e| DataError::io(out, e))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn leaves_are_categories_without_children() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.txt");
        std::fs::write(&path, "# v\n1 - A\n2 - A > B\n3 - A > B > C\n4 - A > D\n5 - E").unwrap();
        let leaves = taxonomy_leaves(&path).unwrap();
        let names: Vec<String> = leaves.iter().map(|p| p.join(" > ")).collect();
        assert_eq!(names, vec!["A > B > C", "A > D", "E"]);
        std::fs::write(&path, "1 - A\nbroken line").unwrap();
        assert!(taxonomy_leaves(&path).unwrap_err().to_string().contains(":2:"));
    }

    #[test]
    fn labels_extend_with_brands_and_stay_unique() {
        let leaves = vec![vec!["A".to_string()], vec!["B".to_string()]];
        let labels = synthetic_labels(&leaves, 50, 1);
        assert_eq!(labels.len(), 50);
        let distinct: std::collections::BTreeSet<_> = labels.iter().collect();
        assert_eq!(distinct.len(), 50);
    }

    #[test]
    fn writes_a_zipf_skewed_deterministic_csv() {
        let dir = tempfile::tempdir().unwrap();
        let tax = dir.path().join("t.txt");
        std::fs::write(&tax, "1 - A\n2 - A > B\n3 - A > C\n4 - D\n5 - E > F").unwrap();
        let cfg = SynthConfig { records: 2000, labels: 40, zipf_exponent: 1.0, seed: 3 };
        let (a, b) = (dir.path().join("a.csv"), dir.path().join("b.csv"));
        write_synthetic_csv(&tax, &a, &cfg).unwrap();
        write_synthetic_csv(&tax, &b, &cfg).unwrap();
        assert_eq!(std::fs::read(&a).unwrap(), std::fs::read(&b).unwrap());
        let mut reader = csv::Reader::from_path(&a).unwrap();
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for row in reader.records() {
            *counts.entry(row.unwrap()[6].to_string()).or_default() += 1;
        }
        let mut sizes: Vec<usize> = counts.values().copied().collect();
        sizes.sort_unstable_by(|x, y| y.cmp(x));
        assert_eq!(sizes.iter().sum::<usize>(), 2000);
        // Zipf with s = 1 over 40 labels: the top label holds about 23%, far above uniform 2.5%.
        assert!(sizes[0] > 300, "{sizes:?}");
    }
}
