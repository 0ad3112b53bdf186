//! TF-IDF features computed as scikit-learn's `TfidfVectorizer` computes them, so that our
//! features and the peers' can be compared term for term: lower-cased word n-grams
//! (`token_pattern = (?u)\b\w\w+\b`) and character n-grams within word boundaries
//! (`analyzer = "char_wb"`), smoothed idf `ln((1 + n) / (1 + df)) + 1`, sublinear tf
//! `1 + ln(tf)`, each block L2-normalised. Blocks are laid side by side (word block first) and
//! the whole vector is L2-normalised again, as `normalize(hstack([word, char]))` would give.

use rustc_hash::FxHashMap as HashMap;

use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::sparse::SparseVec;

/// The `[ranker.tfidf]` settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TfidfConfig {
    /// Word n-gram range `[min, max]`; `[]` leaves word n-grams out.
    pub word_ngrams: Vec<usize>,
    /// Character n-gram range within word boundaries `[min, max]`; `[]` leaves them out.
    pub char_ngrams: Vec<usize>,
    /// Terms in fewer training documents than this are dropped.
    pub min_df: u32,
    /// `1 + ln(tf)` instead of the raw count.
    pub sublinear_tf: bool,
}

impl Default for TfidfConfig {
    fn default() -> Self {
        TfidfConfig { word_ngrams: vec![1, 2], char_ngrams: vec![2, 5], min_df: 1, sublinear_tf: true }
    }
}

impl TfidfConfig {
    pub fn validate(&self) -> Result<(), String> {
        for (name, range) in [("ranker.tfidf.word_ngrams", &self.word_ngrams), ("ranker.tfidf.char_ngrams", &self.char_ngrams)] {
            match range[..] {
                [] => {}
                [lo, hi] if lo >= 1 && lo <= hi && hi <= 16 => {}
                _ => return Err(format!("`{name}` = {range:?} must be [] or [min, max] with 1 <= min <= max <= 16")),
            }
        }
        if self.word_ngrams.is_empty() && self.char_ngrams.is_empty() {
            return Err("`ranker.tfidf`: word_ngrams and char_ngrams are both empty: there would be no features".into());
        }
        if self.min_df == 0 {
            return Err("`ranker.tfidf.min_df` must be at least 1".into());
        }
        Ok(())
    }

    fn analyzers(&self) -> Vec<Analyzer> {
        let mut out = Vec::new();
        if let [lo, hi] = self.word_ngrams[..] {
            out.push(Analyzer::Word { min: lo, max: hi });
        }
        if let [lo, hi] = self.char_ngrams[..] {
            out.push(Analyzer::CharWb { min: lo, max: hi });
        }
        out
    }
}

/// How a text becomes terms.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Analyzer {
    Word { min: usize, max: usize },
    CharWb { min: usize, max: usize },
}

impl Analyzer {
    /// Calls `emit` with every term of `text` (already lower-cased), repeats included.
    fn terms(self, text: &str, buf: &mut String, mut emit: impl FnMut(&str)) {
        match self {
            Analyzer::Word { min, max } => {
                let tokens = word_tokens(text);
                for n in min..=max {
                    for window in tokens.windows(n) {
                        buf.clear();
                        for (i, t) in window.iter().enumerate() {
                            if i > 0 {
                                buf.push(' ');
                            }
                            buf.push_str(t);
                        }
                        emit(buf);
                    }
                }
            }
            Analyzer::CharWb { min, max } => {
                let mut chars: Vec<char> = Vec::new();
                for word in text.split_whitespace() {
                    chars.clear();
                    chars.push(' ');
                    chars.extend(word.chars());
                    chars.push(' ');
                    let len = chars.len();
                    for n in min..=max {
                        // scikit-learn's _char_wb_ngrams: the first n-gram always (a word shorter
                        // than n gives itself), then every further start; a short word counts once.
                        let mut offset = 0;
                        buf.clear();
                        buf.extend(&chars[..n.min(len)]);
                        emit(buf);
                        while offset + n < len {
                            offset += 1;
                            buf.clear();
                            buf.extend(&chars[offset..offset + n]);
                            emit(buf);
                        }
                        if offset == 0 {
                            break;
                        }
                    }
                }
            }
        }
    }
}

/// Runs of two or more word characters (`(?u)\b\w\w+\b`): letters, digits and `_`.
fn word_tokens(text: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let mut start: Option<usize> = None;
    let mut count = 0;
    for (i, c) in text.char_indices() {
        if c.is_alphanumeric() || c == '_' {
            if start.is_none() {
                start = Some(i);
                count = 0;
            }
            count += 1;
        } else if let Some(s) = start.take() {
            if count >= 2 {
                tokens.push(&text[s..i]);
            }
        }
    }
    if let Some(s) = start
        && count >= 2
    {
        tokens.push(&text[s..]);
    }
    tokens
}

/// One analyzer's vocabulary: terms in ascending order (their position is their id) and idf.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TermBlock {
    pub analyzer: Analyzer,
    pub terms: Vec<String>,
    pub idf: Vec<f64>,
    #[serde(skip)]
    index: HashMap<String, u32>,
}

impl TermBlock {
    fn rebuild_index(&mut self) {
        self.index = self.terms.iter().enumerate().map(|(i, t)| (t.clone(), i as u32)).collect();
    }

    /// This block's TF-IDF of `text` (lower-cased), L2-normalised, ids local to the block and
    /// ascending; in f64 so that the final rounding to f32 is the only one.
    fn transform(&self, text: &str, sublinear: bool, buf: &mut String) -> Vec<(u32, f64)> {
        let mut counts: HashMap<u32, u32> = HashMap::default();
        self.analyzer.terms(text, buf, |t| {
            if let Some(&id) = self.index.get(t) {
                *counts.entry(id).or_insert(0) += 1;
            }
        });
        let mut v: Vec<(u32, f64)> = counts
            .into_iter()
            .map(|(id, tf)| {
                let tf = if sublinear { 1.0 + (tf as f64).ln() } else { tf as f64 };
                (id, tf * self.idf[id as usize])
            })
            .collect();
        v.sort_unstable_by_key(|&(id, _)| id);
        let norm = v.iter().map(|(_, x)| x * x).sum::<f64>().sqrt();
        if norm > 0.0 {
            v.iter_mut().for_each(|(_, x)| *x /= norm);
        }
        v
    }
}

/// A fitted TF-IDF vectorizer: one [`TermBlock`] per analyzer, side by side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TfidfVectorizer {
    pub config: TfidfConfig,
    pub blocks: Vec<TermBlock>,
}

impl TfidfVectorizer {
    /// Learns the vocabulary and idf from `texts` (the training split).
    pub fn fit(texts: &[&str], config: &TfidfConfig) -> Self {
        let n = texts.len();
        let blocks = config
            .analyzers()
            .into_iter()
            .map(|analyzer| {
                let df: HashMap<String, u32> = texts
                    .par_chunks(1024)
                    .map(|chunk| {
                        let mut df: HashMap<String, u32> = HashMap::default();
                        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
                        let mut buf = String::new();
                        for text in chunk {
                            seen.clear();
                            let lower = text.to_lowercase();
                            analyzer.terms(&lower, &mut buf, |t| {
                                if !seen.contains(t) {
                                    seen.insert(t.to_string());
                                }
                            });
                            for t in seen.drain() {
                                *df.entry(t).or_insert(0) += 1;
                            }
                        }
                        df
                    })
                    .reduce(HashMap::default, |mut a, b| {
                        let (mut a, b) = if a.len() >= b.len() { (a, b) } else { (b, std::mem::take(&mut a)) };
                        for (t, c) in b {
                            *a.entry(t).or_insert(0) += c;
                        }
                        a
                    });
                let mut terms: Vec<(String, u32)> = df.into_iter().filter(|&(_, c)| c >= config.min_df).collect();
                terms.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                let idf = terms.iter().map(|&(_, d)| ((1 + n) as f64 / (1 + d) as f64).ln() + 1.0).collect();
                let mut block = TermBlock { analyzer, terms: terms.into_iter().map(|(t, _)| t).collect(), idf, index: HashMap::default() };
                block.rebuild_index();
                block
            })
            .collect();
        TfidfVectorizer { config: config.clone(), blocks }
    }

    /// The number of features (all blocks).
    pub fn dim(&self) -> usize {
        self.blocks.iter().map(|b| b.terms.len()).sum()
    }

    /// The feature vector of one text, unit length (or zero when no term is known).
    pub fn transform(&self, text: &str) -> SparseVec {
        let lower = text.to_lowercase();
        let mut buf = String::new();
        let mut all: Vec<(u32, f64)> = Vec::new();
        let mut offset = 0u32;
        for block in &self.blocks {
            all.extend(block.transform(&lower, self.config.sublinear_tf, &mut buf).into_iter().map(|(i, x)| (i + offset, x)));
            offset += block.terms.len() as u32;
        }
        let norm = all.iter().map(|(_, x)| x * x).sum::<f64>().sqrt().max(f64::MIN_POSITIVE);
        SparseVec { indices: all.iter().map(|&(i, _)| i).collect(), values: all.iter().map(|&(_, x)| (x / norm) as f32).collect() }
    }

    /// [`TfidfVectorizer::transform`] of many texts, in parallel, in order.
    pub fn transform_all(&self, texts: &[&str]) -> Vec<SparseVec> {
        texts.par_iter().map(|t| self.transform(t)).collect()
    }

    /// Restores the term index after deserialising.
    pub fn after_load(mut self) -> Self {
        self.blocks.iter_mut().for_each(TermBlock::rebuild_index);
        self
    }

    /// Checks a loaded vectorizer: its config, each block's n-gram range (1 <= min <= max <=
    /// 16) and one idf per term, finite and positive.
    pub fn check(&self) -> Result<(), String> {
        self.config.validate()?;
        for (i, block) in self.blocks.iter().enumerate() {
            let (Analyzer::Word { min, max } | Analyzer::CharWb { min, max }) = block.analyzer;
            if !(1 <= min && min <= max && max <= 16) {
                return Err(format!("block {i}: n-gram range [{min}, {max}] must have 1 <= min <= max <= 16"));
            }
            if block.idf.len() != block.terms.len() {
                return Err(format!("block {i}: {} idf values for {} terms", block.idf.len(), block.terms.len()));
            }
            if let Some(x) = block.idf.iter().find(|x| !(x.is_finite() && **x > 0.0)) {
                return Err(format!("block {i}: idf value {x} is not a positive number"));
            }
        }
        if self.dim() > u32::MAX as usize {
            return Err(format!("{} features: more than a feature id can name", self.dim()));
        }
        Ok(())
    }

    /// The name of feature `id` (`w:` word n-gram, `c:` character n-gram), for inspection.
    pub fn feature_name(&self, id: u32) -> Option<String> {
        let mut id = id as usize;
        for block in &self.blocks {
            if id < block.terms.len() {
                let tag = match block.analyzer {
                    Analyzer::Word { .. } => "w",
                    Analyzer::CharWb { .. } => "c",
                };
                return Some(format!("{tag}:{}", block.terms[id]));
            }
            id -= block.terms.len();
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn terms(a: Analyzer, text: &str) -> Vec<String> {
        let mut out = Vec::new();
        a.terms(text, &mut String::new(), |t| out.push(t.to_string()));
        out
    }

    #[test]
    fn word_tokens_follow_the_default_token_pattern() {
        assert_eq!(word_tokens("a bc d_e f-gh 12 x"), vec!["bc", "d_e", "gh", "12"]);
        assert_eq!(word_tokens("café au lait"), vec!["café", "au", "lait"]);
        assert_eq!(terms(Analyzer::Word { min: 1, max: 2 }, "red toy car"), vec!["red", "toy", "car", "red toy", "toy car"]);
    }

    #[test]
    fn char_ngrams_pad_each_word_and_count_short_words_once() {
        // scikit-learn: CountVectorizer(analyzer="char_wb", ngram_range=(2, 3)).build_analyzer()("ab c")
        assert_eq!(terms(Analyzer::CharWb { min: 2, max: 3 }, "ab c"), vec![" a", "ab", "b ", " ab", "ab ", " c", "c ", " c "]);
        // a word shorter than n gives itself, once, and stops the larger sizes
        assert_eq!(terms(Analyzer::CharWb { min: 4, max: 5 }, "x"), vec![" x "]);
    }

    #[test]
    fn idf_is_smoothed_and_vectors_are_unit_length() {
        let texts = ["red car", "blue car", "red red bike"];
        let cfg = TfidfConfig { word_ngrams: vec![1, 1], char_ngrams: vec![], min_df: 1, sublinear_tf: true };
        let v = TfidfVectorizer::fit(&texts, &cfg);
        assert_eq!(v.blocks[0].terms, vec!["bike", "blue", "car", "red"]);
        let idf_car = (4.0f64 / 3.0).ln() + 1.0;
        assert!((v.blocks[0].idf[2] - idf_car).abs() < 1e-12);
        let x = v.transform("Red red CAR unknown");
        assert_eq!(x.indices, vec![2, 3]);
        assert!((x.norm() - 1.0).abs() < 1e-6);
        let red = (1.0 + 2f64.ln()) * ((4.0f64 / 3.0).ln() + 1.0);
        let car = idf_car;
        let ratio = x.values[1] as f64 / x.values[0] as f64;
        assert!((ratio - red / car).abs() < 1e-5, "{ratio}");
        assert_eq!(v.transform("nothing known").nnz(), 0);
    }

    #[test]
    fn min_df_drops_rare_terms_and_bad_ranges_are_refused() {
        let texts = ["red car", "blue car"];
        let cfg = TfidfConfig { word_ngrams: vec![1, 1], char_ngrams: vec![], min_df: 2, sublinear_tf: true };
        assert_eq!(TfidfVectorizer::fit(&texts, &cfg).blocks[0].terms, vec!["car"]);
        let bad = TfidfConfig { word_ngrams: vec![2, 1], ..TfidfConfig::default() };
        assert!(bad.validate().unwrap_err().contains("word_ngrams"));
        assert!(TfidfConfig { word_ngrams: vec![], char_ngrams: vec![], ..TfidfConfig::default() }.validate().is_err());
    }
}
