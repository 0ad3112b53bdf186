//! The sequence-to-sequence task: the tokenizer, each label's target token sequence (its code as
//! `<L{level}_{index}>` tokens, or its path as text) ending with `</s>`, and the trie over them.

use std::path::Path;

use xmc_codes::PrefixTrie;
use xmc_data::{LabelSet, PreparedData, Split};
use xmc_model::tokenizer::code_token;
use xmc_model::{EncoderKind, InputTokenizer, ModelConfig, TargetMode, TextTokenizer};

use crate::error::{Result, TrainError};

#[derive(Debug, Clone)]
pub struct Seq2SeqTask {
    pub mode: TargetMode,
    pub tokenizer: TextTokenizer,
    /// `targets[label]`: the decoder's target ids for that label, ending with `</s>`.
    pub targets: Vec<Vec<u32>>,
    pub trie: PrefixTrie,
    /// The pretrained encoder's own tokenizer for the inputs (`model.encoder = "bert"`); the
    /// inputs otherwise go through `tokenizer`.
    pub input_tokenizer: Option<InputTokenizer>,
    /// The decoder's output columns when its softmax covers only the targets
    /// (`ModelConfig::softmax_over_targets`): every target token and `<pad>` (the start token),
    /// sorted. `None`: the whole vocabulary.
    pub output_tokens: Option<Vec<u32>>,
}

/// Every code token the codes use, in (level, index) order.
fn code_tokens(codes: &[Vec<u32>]) -> Vec<String> {
    let mut pairs: Vec<(usize, u32)> = codes.iter().flat_map(|c| c.iter().enumerate().map(|(l, &i)| (l, i))).collect();
    pairs.sort_unstable();
    pairs.dedup();
    pairs.into_iter().map(|(l, i)| code_token(l, i)).collect()
}

/// [`Seq2SeqTask::output_tokens`] for a model config.
pub(crate) fn output_tokens(trie: &PrefixTrie, tokenizer: &TextTokenizer, cfg: &ModelConfig) -> Option<Vec<u32>> {
    if cfg.softmax_over_targets { xmc_model::output_tokens(trie, tokenizer.pad_id) } else { None }
}

impl Seq2SeqTask {
    /// Builds the task: trains a tokenizer on the training inputs (and, in plain mode, the label
    /// paths) unless the config names one. `codes` is required in hierarchical mode.
    pub fn build(data: &PreparedData, codes: Option<&[Vec<u32>]>, cfg: &ModelConfig) -> Result<Self> {
        Self::build_with(data, codes, cfg, None)
    }

    /// [`Self::build`], with the tokenizer given when there is one (a resumed run's, kept with its
    /// checkpoint: [`crate::checkpoint_tokenizer`]) instead of loaded or trained.
    pub fn build_with(data: &PreparedData, codes: Option<&[Vec<u32>]>, cfg: &ModelConfig, tokenizer: Option<TextTokenizer>) -> Result<Self> {
        let code_list = match (cfg.mode, codes) {
            (TargetMode::Hierarchical, Some(codes)) => codes,
            (TargetMode::Hierarchical, None) => return Err(TrainError::Config("hierarchical mode needs the label codes".into())),
            (TargetMode::Plain, _) => &[][..],
        };
        let special = code_tokens(code_list);
        let tokenizer = match (tokenizer, &cfg.tokenizer) {
            (Some(given), _) => given,
            (None, Some(path)) => {
                let mut t = TextTokenizer::load(Path::new(path))?;
                t.add_special(&special)?;
                t
            }
            (None, None) => {
                let inputs = data.split(Split::Train).map(|r| r.input.as_str());
                let paths = data.labels.labels.iter().map(|l| l.path.as_str());
                TextTokenizer::train(inputs.chain(paths), cfg.vocab_size, &special)?
            }
        };
        let mut task = Self::with_tokenizer(&data.labels, code_list, cfg, tokenizer)?;
        if cfg.encoder == EncoderKind::Bert {
            task.input_tokenizer = Some(InputTokenizer::load(&Path::new(&cfg.encoder_dir).join("tokenizer.json"))?);
        }
        Ok(task)
    }

    /// The task for a given tokenizer (e.g. one loaded from a model folder).
    pub fn with_tokenizer(labels: &LabelSet, codes: &[Vec<u32>], cfg: &ModelConfig, tokenizer: TextTokenizer) -> Result<Self> {
        let targets: Vec<Vec<u32>> = match cfg.mode {
            TargetMode::Hierarchical => codes
                .iter()
                .map(|code| {
                    let mut ids: Vec<u32> = code
                        .iter()
                        .enumerate()
                        .map(|(l, &i)| tokenizer.token_id(&code_token(l, i)).expect("code tokens were added"))
                        .collect();
                    ids.push(tokenizer.eos_id);
                    ids
                })
                .collect(),
            TargetMode::Plain => {
                labels.labels.iter().map(|l| tokenizer.encode(&l.path, cfg.max_target_tokens)).collect::<xmc_model::Result<_>>()?
            }
        };
        if targets.len() != labels.len() {
            return Err(TrainError::Config(format!("{} codes for {} labels", targets.len(), labels.len())));
        }
        let trie = PrefixTrie::from_codes(&targets).map_err(|e| {
            TrainError::Config(format!(
                "two labels have the same target sequence ({e}); in plain mode raise `model.max_target_tokens` or the vocabulary"
            ))
        })?;
        let output_tokens = output_tokens(&trie, &tokenizer, cfg);
        Ok(Seq2SeqTask { mode: cfg.mode, tokenizer, targets, trie, input_tokenizer: None, output_tokens })
    }

    /// The decoder settings that match how the model was trained.
    pub fn decode_config(&self, beam_width: usize, top_k: usize) -> xmc_model::DecodeConfig {
        xmc_model::DecodeConfig {
            beam_width,
            top_k: top_k.min(beam_width),
            start_token: self.tokenizer.pad_id,
            normalise_over_alphabet: self.output_tokens.is_some(),
            ..xmc_model::DecodeConfig::default()
        }
    }

    /// `token`'s column in the decoder's output layer.
    pub fn output_column(&self, token: u32) -> u32 {
        match &self.output_tokens {
            Some(tokens) => tokens.binary_search(&token).expect("every target token and <pad> are output tokens") as u32,
            None => token,
        }
    }

    /// Encoder ids of a record's input.
    pub fn input_ids(&self, input: &str, max_tokens: usize) -> Result<Vec<u32>> {
        match &self.input_tokenizer {
            Some(t) => Ok(t.encode(input, max_tokens)?),
            None => Ok(self.tokenizer.encode(input, max_tokens)?),
        }
    }
}
