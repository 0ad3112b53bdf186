//! The seq2seq tokenizer: a `tokenizer.json` given by the config, or a Unigram model trained on the
//! training inputs. Special tokens come first: `<pad>` (0, also the decoder's start token), `</s>`
//! (1), `<unk>` (2), then the hierarchical code tokens `<L{level}_{index}>`, which text never
//! produces: the same index at different depths is a different token.

use std::path::Path;

use tokenizers::models::unigram::{Unigram, UnigramTrainer};
use tokenizers::models::TrainerWrapper;
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
        tokenizer.add_special_tokens(special).map_err(tok_err)?;
        Self::from_tokenizer(tokenizer)
    }

    fn from_tokenizer(mut inner: Tokenizer) -> Result<Self> {
        inner.with_padding(None);
        inner.with_truncation(None).map_err(tok_err)?;
        let id = |t: &str| inner.token_to_id(t).ok_or_else(|| ModelError::Tokenizer(format!("the tokenizer has no `{t}` token")));
        let (pad_id, eos_id) = (id(PAD)?, id(EOS)?);
        Ok(TextTokenizer { inner, pad_id, eos_id })
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
}

/// The encoder-side tokenizer of a pretrained BERT encoder (its WordPiece `tokenizer.json`): ids
/// with `[CLS]` first and `[SEP]` last, truncated keeping `[SEP]`.
#[derive(Debug, Clone)]
pub struct InputTokenizer {
    inner: Tokenizer,
}

impl InputTokenizer {
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
