//! PIFA (positive instance feature aggregation, as PECOS): a label's embedding is the normalised
//! sum of the TF-IDF vectors of its training inputs.

use std::collections::HashMap;

use xmc_data::{PreparedData, Split};

/// Lower-cased alphanumeric words.
fn words(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric()).filter(|w| !w.is_empty()).map(str::to_lowercase)
}

pub(crate) fn normalise(v: &mut [f32]) {
    let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Dense PIFA vectors `[labels, features]`, row-major; a label without training records gets zeros.
/// The vocabulary is the `max_features` most frequent words (by document frequency, ties by word).
pub fn pifa_embeddings(data: &PreparedData, max_features: usize) -> (usize, Vec<f32>) {
    let train: Vec<_> = data.split(Split::Train).collect();
    let mut df: HashMap<String, u32> = HashMap::new();
    let docs: Vec<HashMap<String, u32>> = train
        .iter()
        .map(|r| {
            let mut tf: HashMap<String, u32> = HashMap::new();
            for w in words(&r.input) {
                *tf.entry(w).or_default() += 1;
            }
            for w in tf.keys() {
                *df.entry(w.clone()).or_default() += 1;
            }
            tf
        })
        .collect();
    let mut vocab: Vec<(String, u32)> = df.into_iter().collect();
    vocab.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    vocab.truncate(max_features);
    let n_docs = train.len() as f32;
    let index: HashMap<&str, (usize, f32)> = vocab
        .iter()
        .enumerate()
        .map(|(i, (w, df))| (w.as_str(), (i, ((1.0 + n_docs) / (1.0 + *df as f32)).ln() + 1.0)))
        .collect();
    let dim = vocab.len().max(1);
    let mut out = vec![0f32; data.labels.len() * dim];
    for (record, tf) in train.iter().zip(&docs) {
        let doc: Vec<(usize, f32)> =
            tf.iter().filter_map(|(w, &count)| index.get(w.as_str()).map(|&(i, idf)| (i, count as f32 * idf))).collect();
        let norm = doc.iter().map(|(_, v)| v * v).sum::<f32>().sqrt();
        if norm == 0.0 {
            continue;
        }
        let row = &mut out[record.label as usize * dim..(record.label as usize + 1) * dim];
        for (i, v) in doc {
            row[i] += v / norm;
        }
    }
    for row in out.chunks_mut(dim) {
        normalise(row);
    }
    (dim, out)
}
