//! The vectorizer against scikit-learn's TfidfVectorizer on a committed fixture
//! (`fixtures/make_tfidf_fixture.py`): the same vocabulary, the same values to 1e-6, for the word
//! block, the char_wb block and their normalised union.

use serde::Deserialize;
use xmc_ranker::{TfidfConfig, TfidfVectorizer};

#[derive(Deserialize)]
struct Row {
    indices: Vec<u32>,
    values: Vec<f64>,
}

#[derive(Deserialize)]
struct Block {
    #[serde(default)]
    vocabulary: Vec<String>,
    rows: Vec<Row>,
}

#[derive(Deserialize)]
struct Reference {
    train: Vec<String>,
    test: Vec<String>,
    word: Block,
    char: Block,
    union: Block,
}

fn reference() -> Reference {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/tfidf_reference.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn check(name: &str, cfg: TfidfConfig, r: &Reference, block: &Block) {
    let train: Vec<&str> = r.train.iter().map(String::as_str).collect();
    let v = TfidfVectorizer::fit(&train, &cfg);
    if !block.vocabulary.is_empty() {
        assert_eq!(v.blocks.len(), 1);
        assert_eq!(v.blocks[0].terms, block.vocabulary, "{name}: vocabulary");
    }
    assert_eq!(r.test.len(), block.rows.len());
    for (i, (text, want)) in r.test.iter().zip(&block.rows).enumerate() {
        let got = v.transform(text);
        assert_eq!(got.indices, want.indices, "{name}: row {i} ({text:?}) feature ids");
        for (g, w) in got.values.iter().zip(&want.values) {
            assert!((*g as f64 - w).abs() < 1e-6, "{name}: row {i}: {g} vs {w}");
        }
    }
}

#[test]
fn word_ngrams_match_scikit_learn() {
    let r = reference();
    check("word", TfidfConfig { word_ngrams: vec![1, 2], char_ngrams: vec![], ..TfidfConfig::default() }, &r, &r.word);
}

#[test]
fn char_wb_ngrams_match_scikit_learn() {
    let r = reference();
    check("char", TfidfConfig { word_ngrams: vec![], char_ngrams: vec![2, 5], ..TfidfConfig::default() }, &r, &r.char);
}

#[test]
fn the_default_union_matches_normalised_hstack() {
    let r = reference();
    check("union", TfidfConfig::default(), &r, &r.union);
}
