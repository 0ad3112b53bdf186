//! The seq2seq tokenizer: a `tokenizer.json` given by the config, or a Unigram model trained on the
//! training inputs. Special tokens come first: `<pad>` (0, also the decoder's start token), `</s>`
//! (1), `<unk>` (2), then the hierarchical code tokens `<L{level}_{index}>`, which text never
//! produces: the same index at different depths is a different token.

use std::path::Path;

use tokenizers::models::unigram::{Unigram, UnigramTrainer};
use tokenizers::models::{ModelWrapper, TrainerWrapper};
use tokenizers::normalizers::{NormalizerWrapper, unicode::NFKC};
use tokenizers::pre_tokenizers::{PreTokenizerWrapper, metaspace::Metaspace};
use tokenizers::{AddedToken, Tokenizer};

use crate::error::{ModelError, Result};

pub const PAD: &str = "<pad>";
pub const EOS: &str = "</s>";
pub const UNK: &str = "<unk>";

/// The token for child `index` at tree depth `level`.
pub fn code_token(level: usize, index: u32) -> String {
    format!("<L{level}_{index}>")
}

#[derive(Debug, Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    pub pad_id: u32,
    pub eos_id: u32,
}

fn tok_err(e: impl std::fmt::Display) -> ModelError {
    ModelError::Tokenizer(e.to_string())
}

impl TextTokenizer {
    /// Trains a Unigram tokenizer of about `vocab_size` pieces on `texts`; `extra_special` tokens
    /// (e.g. code tokens) get the ids right after `<unk>`.
    pub fn train<'a>(texts: impl Iterator<Item = &'a str> + Send, vocab_size: usize, extra_special: &[String]) -> Result<Self> {
        let mut special: Vec<AddedToken> = [PAD, EOS, UNK].iter().map(|t| AddedToken::from(*t, true)).collect();
        special.extend(extra_special.iter().map(|t| AddedToken::from(t.clone(), true)));
        let trainer = UnigramTrainer::builder()
            .show_progress(false)
            .vocab_size(vocab_size as u32)
            .special_tokens(special.clone())
            .unk_token(Some(UNK.to_string()))
            .build()
            .map_err(tok_err)?;
        let mut tokenizer = Tokenizer::new(Unigram::default());
        tokenizer.with_normalizer(Some(NormalizerWrapper::NFKC(NFKC))).map_err(tok_err)?;
        tokenizer.with_pre_tokenizer(Some(PreTokenizerWrapper::Metaspace(Metaspace::default())));
        tokenizer.train(&mut TrainerWrapper::UnigramTrainer(trainer), texts).map_err(tok_err)?;
        let ModelWrapper::Unigram(trained) = tokenizer.get_model() else {
            return Err(ModelError::Tokenizer("the Unigram trainer returned another model".into()));
        };
        let stable = order_stable(trained, special.len())?;
        tokenizer.with_model(stable);
        tokenizer.add_special_tokens(special).map_err(tok_err)?;
        Self::from_tokenizer(tokenizer)
    }

    /// Serialised `tokenizer.json`, as [`Self::save`] writes it.
    pub fn to_json(&self) -> Result<String> {
        self.inner.to_string(false).map_err(tok_err)
    }

    fn from_tokenizer(mut inner: Tokenizer) -> Result<Self> {
        inner.with_padding(None);
        inner.with_truncation(None).map_err(tok_err)?;
        let id = |t: &str| inner.token_to_id(t).ok_or_else(|| ModelError::Tokenizer(format!("the tokenizer has no `{t}` token")));
        let (pad_id, eos_id) = (id(PAD)?, id(EOS)?);
        Ok(TextTokenizer { inner, pad_id, eos_id })
    }

    /// Every id this tokenizer gives is below `vocab_size` (see [`check_token_ids`]).
    pub fn check_ids(&self, path: &Path, vocab_size: usize) -> Result<()> {
        check_token_ids(path, &self.inner, vocab_size)
    }

    /// Loads a `tokenizer.json` (ours, or e.g. t5-small's, which has the same special tokens).
    pub fn load(path: &Path) -> Result<Self> {
        Self::from_tokenizer(Tokenizer::from_file(path).map_err(tok_err)?)
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        self.inner.save(path, false).map_err(tok_err)
    }

    /// Adds tokens that must never be split (the code tokens of a tokenizer loaded from a file).
    pub fn add_special(&mut self, tokens: &[String]) -> Result<()> {
        let added: Vec<AddedToken> = tokens.iter().map(|t| AddedToken::from(t.clone(), true)).collect();
        self.inner.add_special_tokens(added).map_err(tok_err)?;
        Ok(())
    }

    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Token ids of `text` followed by `</s>`, at most `max_len` ids (the last is always `</s>`).
    pub fn encode(&self, text: &str, max_len: usize) -> Result<Vec<u32>> {
        let encoding = self.inner.encode(text, false).map_err(tok_err)?;
        let mut ids: Vec<u32> = encoding.get_ids().iter().copied().take(max_len.saturating_sub(1)).collect();
        ids.push(self.eos_id);
        Ok(ids)
    }

    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner.decode(ids, true).map_err(tok_err)
    }
}

/// Decimal places a trained piece's score keeps: the trainer's run-to-run wobble (about 1e-11,
/// from summing in hash-map order) disappears, and a log-probability to 1e-4 tokenizes the same.
const SCORE_DECIMALS: i32 = 4;

/// The step by which the trainer raises the score of each character it must add to the pieces
/// (tokenizers' `UnigramTrainer::finalize`: the lowest score, plus 1e-4 per character added).
const ADDED_CHAR_STEP: f64 = 1e-4;

/// The trained vocabulary made independent of the trainer's hash-map order, which decides two
/// things: the low digits of every score (sums in a different order) and which of the characters
/// the trainer adds at the end gets which score (the lowest score plus 1e-4 steps, in hash-set
/// order). The first `special` entries (the special tokens) stay in place; the added characters
/// take those steps in text order; the other scores are rounded to [`SCORE_DECIMALS`] places; the
/// pieces are ordered by score (best first), then by text. Two trainings on the same texts give
/// the same ids and the same file.
fn order_stable(trained: &Unigram, special: usize) -> Result<Unigram> {
    let scale = 10f64.powi(SCORE_DECIMALS);
    let mut vocab: Vec<(String, f64)> = trained.iter().cloned().collect();
    let special = special.min(vocab.len());
    let rest = &mut vocab[special..];
    let lowest = rest.iter().map(|p| p.1).fold(f64::INFINITY, f64::min);
    let added: Vec<usize> = (0..rest.len())
        .filter(|&i| {
            let (piece, score) = &rest[i];
            let k = (score - lowest) / ADDED_CHAR_STEP;
            piece.chars().count() == 1 && (k - k.round()).abs() < 1e-6 && (0.0..10_000.0).contains(&k.round())
        })
        .collect();
    let mut steps: Vec<f64> = added.iter().map(|&i| rest[i].1).collect();
    steps.sort_by(f64::total_cmp);
    let mut chars: Vec<String> = added.iter().map(|&i| rest[i].0.clone()).collect();
    chars.sort();
    for ((&i, piece), score) in added.iter().zip(chars).zip(steps) {
        rest[i] = (piece, score);
    }
    for (_, score) in rest.iter_mut() {
        *score = (*score * scale).round() / scale;
    }
    vocab[special..].sort_by(|a, b| b.1.total_cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let unk = vocab.iter().position(|(p, _)| p == UNK);
    Unigram::from(vocab, unk, trained.byte_fallback()).map_err(tok_err)
}

/// Every token id `tokenizer` can give is below `vocab_size` (the embedding's rows): a tokenizer
/// file that names larger ids is refused when loaded, not when a text hits them.
pub fn check_token_ids(path: &Path, tokenizer: &Tokenizer, vocab_size: usize) -> Result<()> {
    let outside = |id: u32| id as usize >= vocab_size;
    if let Some((token, id)) = tokenizer.get_vocab(true).into_iter().find(|&(_, id)| outside(id)) {
        return Err(ModelError::BadFile { path: path.into(), message: format!("token `{token}` has id {id}, outside the model's vocabulary of {vocab_size}") });
    }
    // The special tokens the post-processor adds ([CLS], [SEP], ...) are not in the vocabulary map.
    let probe = tokenizer.encode("a", true).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
    if let Some(&id) = probe.get_ids().iter().find(|&&id| outside(id)) {
        return Err(ModelError::BadFile { path: path.into(), message: format!("the post-processor adds token id {id}, outside the model's vocabulary of {vocab_size}") });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trains_with_special_tokens_first_and_code_tokens_unsplit() {
        let texts = ["Retailer: Amazon UK Price: 3.42 Description: Hornby train set", "Lego city police station", "Hornby coach"];
        let codes = vec![code_token(0, 4), code_token(1, 4)];
        let tok = TextTokenizer::train(texts.iter().copied().cycle().take(300), 120, &codes).unwrap();
        assert_eq!((tok.token_id(PAD), tok.token_id(EOS), tok.token_id(UNK)), (Some(0), Some(1), Some(2)));
        assert_eq!(tok.token_id("<L0_4>"), Some(3));
        assert_eq!(tok.token_id("<L1_4>"), Some(4));
        let ids = tok.encode("Hornby train", 28).unwrap();
        assert_eq!(*ids.last().unwrap(), 1);
        assert!(ids.len() >= 3);
        assert_eq!(tok.encode(&"word ".repeat(100), 10).unwrap().len(), 10);
        let dir = tempfile::tempdir().unwrap();
        tok.save(&dir.path().join("t.json")).unwrap();
        let loaded = TextTokenizer::load(&dir.path().join("t.json")).unwrap();
        assert_eq!(loaded.encode("Hornby train", 28).unwrap(), ids);
    }

    /// The Unigram trainer sums in hash-map order, which differs between runs: scores move in
    /// the 11th digit and near-tied pieces swap ids. Training twice on the bundled sample gives
    /// the same tokenizer file.
    #[test]
    fn training_twice_gives_the_same_tokenizer() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../datasets/amazon-uk-sample/products.csv");
        let text = std::fs::read_to_string(path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let codes = vec![code_token(0, 1)];
        let json = |t: &TextTokenizer| t.to_json().unwrap();
        let first = json(&TextTokenizer::train(lines.iter().copied(), 1000, &codes).unwrap());
        let second = json(&TextTokenizer::train(lines.iter().copied(), 1000, &codes).unwrap());
        assert!(second == first, "the vocabulary changed between runs");
    }
}

/// The encoder-side tokenizer of a pretrained BERT encoder (its WordPiece `tokenizer.json`): ids
/// with `[CLS]` first and `[SEP]` last, truncated keeping `[SEP]`.
#[derive(Debug, Clone)]
pub struct InputTokenizer {
    inner: Tokenizer,
}

impl InputTokenizer {
    /// Every id this tokenizer gives is below `vocab_size` (see [`check_token_ids`]).
    pub fn check_ids(&self, path: &Path, vocab_size: usize) -> Result<()> {
        check_token_ids(path, &self.inner, vocab_size)
    }

    pub fn load(path: &Path) -> Result<Self> {
        let mut inner = Tokenizer::from_file(path).map_err(tok_err)?;
        inner.with_padding(None);
        inner.with_truncation(None).map_err(tok_err)?;
        Ok(InputTokenizer { inner })
    }

    pub fn save(&self, path: &Path) -> Result<()> {
        self.inner.save(path, false).map_err(tok_err)
    }

    pub fn encode(&self, text: &str, max_tokens: usize) -> Result<Vec<u32>> {
        let mut ids = self.inner.encode(text, true).map_err(tok_err)?.get_ids().to_vec();
        if ids.len() > max_tokens.max(2) {
            let last = *ids.last().expect("not empty");
            ids.truncate(max_tokens.max(2) - 1);
            ids.push(last);
        }
        Ok(ids)
    }
}
