//! A BERT encoder in burn, with mean pooling and L2 normalisation as sentence-transformers does,
//! loading a Hugging Face checkpoint folder (`model.safetensors`, `config.json`, `tokenizer.json`).
//! MPNet (`model_type = "mpnet"`, e.g. all-mpnet-base-v2) is the same body without token types,
//! with positions counted after the padding id and a relative position bias shared by all layers
//! ([`relative_bucket`]).

use std::path::{Path, PathBuf};

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, LayerNorm, LayerNormConfig, Linear, LinearConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu, softmax};
use serde::{Deserialize, Serialize};
use tokenizers::Tokenizer;

use std::sync::Arc;

use crate::dropout::FastDropout;
use crate::error::{ModelError, Result};
use crate::fast_encoder::{EncoderRuntime, FastEncoder, FastPathError};
use crate::onnx::Precision;

/// Which of the two encoder bodies a `config.json` describes (its `model_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Architecture {
    #[default]
    Bert,
    /// BERT's layers with a relative position bias (T5's buckets), no token types, and absolute
    /// positions starting after the padding id (as RoBERTa).
    Mpnet,
}

/// The fields of a Hugging Face `config.json` that a BERT (or MPNet) encoder needs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BertConfig {
    #[serde(default)]
    pub model_type: Architecture,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_hidden_layers: usize,
    pub num_attention_heads: usize,
    pub intermediate_size: usize,
    pub max_position_embeddings: usize,
    #[serde(default = "default_type_vocab")]
    pub type_vocab_size: usize,
    #[serde(default = "default_eps")]
    pub layer_norm_eps: f64,
    #[serde(default = "default_act")]
    pub hidden_act: String,
    /// MPNet: the padding id, after which positions are counted.
    #[serde(default = "default_pad")]
    pub pad_token_id: usize,
    /// MPNet: the relative position buckets of the attention bias.
    #[serde(default = "default_buckets")]
    pub relative_attention_num_buckets: usize,
}

fn default_pad() -> usize {
    1
}
fn default_buckets() -> usize {
    32
}

fn default_type_vocab() -> usize {
    2
}
fn default_eps() -> f64 {
    1e-12
}
fn default_act() -> String {
    "gelu".into()
}

impl BertConfig {
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io(xmc_data::IoError::new(path, source)))?;
        let cfg: BertConfig =
            serde_json::from_str(&text).map_err(|e| ModelError::BadFile { path: path.into(), message: e.to_string() })?;
        if cfg.hidden_act != "gelu" {
            return Err(ModelError::BadFile {
                path: path.into(),
                message: format!("hidden_act `{}` is not supported (only `gelu`)", cfg.hidden_act),
            });
        }
        cfg.check(path)?;
        Ok(cfg)
    }

    /// The first absolute position of a text: 0 in BERT, after the padding id in MPNet.
    pub fn position_offset(&self) -> usize {
        match self.model_type {
            Architecture::Bert => 0,
            Architecture::Mpnet => self.pad_token_id + 1,
        }
    }

    /// The most tokens a text can have: one position each.
    pub fn max_tokens(&self) -> usize {
        self.max_position_embeddings.saturating_sub(self.position_offset())
    }

    /// Checks the sizes against sane ranges before a model is allocated by them; errors name
    /// `path` and the field.
    pub fn check(&self, path: &Path) -> Result<()> {
        use crate::sizes::{MAX_DIM, MAX_LAYERS, check_epsilon, check_ranges};
        check_ranges(
            path,
            &[
                ("vocab_size", self.vocab_size, 1, MAX_DIM),
                ("hidden_size", self.hidden_size, 1, MAX_DIM),
                ("num_hidden_layers", self.num_hidden_layers, 1, MAX_LAYERS),
                ("num_attention_heads", self.num_attention_heads, 1, MAX_LAYERS),
                ("intermediate_size", self.intermediate_size, 1, MAX_DIM),
                ("max_position_embeddings", self.max_position_embeddings, 1, MAX_DIM),
                ("type_vocab_size", self.type_vocab_size, 1, 1024),
                ("pad_token_id", self.pad_token_id, 0, MAX_DIM),
                ("relative_attention_num_buckets", self.relative_attention_num_buckets, 4, 1024),
            ],
        )?;
        if self.max_tokens() == 0 {
            return Err(ModelError::BadFile { path: path.into(), message: "`max_position_embeddings` leaves no position after `pad_token_id`".into() });
        }
        if self.hidden_size % self.num_attention_heads != 0 {
            return Err(ModelError::BadFile { path: path.into(), message: "`hidden_size` must be a multiple of `num_attention_heads`".into() });
        }
        check_epsilon(path, "layer_norm_eps", self.layer_norm_eps)
    }

    /// The parameters these sizes give, without overflow.
    pub fn num_params(&self) -> u128 {
        let [v, d, layers, f, pos, types, heads, buckets] = [
            self.vocab_size,
            self.hidden_size,
            self.num_hidden_layers,
            self.intermediate_size,
            self.max_position_embeddings,
            self.type_vocab_size,
            self.num_attention_heads,
            self.relative_attention_num_buckets,
        ]
        .map(|x| x as u128);
        match self.model_type {
            Architecture::Bert => (v + pos + types) * d + layers * (4 * d * d + 2 * d * f),
            Architecture::Mpnet => (v + pos) * d + buckets * heads + layers * (4 * d * d + 2 * d * f),
        }
    }

    pub fn init(&self, device: &Device) -> Bert {
        let norm = || LayerNormConfig::new(self.hidden_size).with_epsilon(self.layer_norm_eps).init(device);
        let linear = |i, o| LinearConfig::new(i, o).init(device);
        let (d, f) = (self.hidden_size, self.intermediate_size);
        let mpnet = self.model_type == Architecture::Mpnet;
        Bert {
            embeddings: BertEmbeddings {
                word: EmbeddingConfig::new(self.vocab_size, d).init(device),
                position: EmbeddingConfig::new(self.max_position_embeddings, d).init(device),
                token_type: (!mpnet).then(|| EmbeddingConfig::new(self.type_vocab_size, d).init(device)),
                norm: norm(),
            },
            relative: mpnet.then(|| EmbeddingConfig::new(self.relative_attention_num_buckets, self.num_attention_heads).init(device)),
            position_offset: self.position_offset(),
            layers: (0..self.num_hidden_layers)
                .map(|_| BertLayer {
                    query: linear(d, d),
                    key: linear(d, d),
                    value: linear(d, d),
                    attn_out: linear(d, d),
                    attn_norm: norm(),
                    inter: linear(d, f),
                    out: linear(f, d),
                    out_norm: norm(),
                    heads: self.num_attention_heads,
                })
                .collect(),
        }
    }
}

#[derive(Module, Debug)]
struct BertEmbeddings {
    word: Embedding,
    position: Embedding,
    /// BERT's (type 0 everywhere); MPNet has none.
    token_type: Option<Embedding>,
    norm: LayerNorm,
}

#[derive(Module, Debug)]
struct BertLayer {
    query: Linear,
    key: Linear,
    value: Linear,
    attn_out: Linear,
    attn_norm: LayerNorm,
    inter: Linear,
    out: Linear,
    out_norm: LayerNorm,
    heads: usize,
}

impl BertLayer {
    /// `x`: [batch, len, d]; `bias`: additive attention bias, [batch, 1, 1, len] (the mask) or
    /// [batch, heads, len, len] (the mask and MPNet's relative positions); `drop`: on the attention
    /// weights and on each sublayer's output before its residual, as BERT's and MPNet's own.
    fn forward(&self, x: Tensor<3>, bias: Tensor<4>, drop: &FastDropout) -> Tensor<3> {
        let [b, l, d] = x.dims();
        let dh = d / self.heads;
        let split = |t: Tensor<3>| t.reshape([b, l, self.heads, dh]).swap_dims(1, 2);
        let q = split(self.query.forward(x.clone()));
        let k = split(self.key.forward(x.clone()));
        let v = split(self.value.forward(x.clone()));
        let scores = q.matmul(k.swap_dims(2, 3)).div_scalar((dh as f64).sqrt()) + bias;
        let context = drop.forward(softmax(scores, 3)).matmul(v).swap_dims(1, 2).reshape([b, l, d]);
        let x = self.attn_norm.forward(drop.forward(self.attn_out.forward(context)) + x);
        let h = gelu(self.inter.forward(x.clone()));
        self.out_norm.forward(drop.forward(self.out.forward(h)) + x)
    }
}

/// The BERT (or MPNet) encoder body (no pooler).
#[derive(Module, Debug)]
pub struct Bert {
    embeddings: BertEmbeddings,
    layers: Vec<BertLayer>,
    /// MPNet's attention bias per relative position bucket and head: [buckets, heads].
    relative: Option<Embedding>,
    /// The absolute position of a text's first token (see [`BertConfig::position_offset`]).
    position_offset: usize,
}

/// The largest distance MPNet's buckets tell apart (transformers' `max_distance`).
const MAX_DISTANCE: usize = 128;

/// MPNet's (and T5's bidirectional) bucket of a key at `relative` = key position - query
/// position: half the buckets for keys before the query, half for keys after; within each half,
/// exact distances below a quarter of the buckets, logarithmic ones up to [`MAX_DISTANCE`]. As
/// transformers' `MPNetEncoder.relative_position_bucket`, in f32 as it computes.
pub fn relative_bucket(relative: i64, buckets: usize) -> usize {
    let half = (buckets / 2) as i64;
    let n = -relative;
    let side = if n < 0 { half } else { 0 };
    let n = n.abs();
    let max_exact = half / 2;
    if n < max_exact {
        return (side + n) as usize;
    }
    let scaled = (n as f32 / max_exact as f32).ln() / (MAX_DISTANCE as f32 / max_exact as f32).ln() * (half - max_exact) as f32;
    (side + (max_exact + scaled as i64).min(half - 1)) as usize
}

impl Bert {
    /// Token states [batch, len, d] for `ids` [batch, len] and `mask` [batch, len] (1 = token).
    pub fn forward(&self, ids: Tensor<2, Int>, mask: Tensor<2>) -> Tensor<3> {
        self.forward_with_dropout(ids, mask, 0.0)
    }

    /// [`Self::forward`] with dropout at `prob` where BERT and MPNet have theirs (after the
    /// embeddings, on the attention weights, on each sublayer's output) when the tensors sit on an
    /// autodiff (training) device; the masks come from [`crate::dropout`]'s seeded sequence.
    /// Elsewhere, or at 0, it is [`Self::forward`].
    pub fn forward_with_dropout(&self, ids: Tensor<2, Int>, mask: Tensor<2>, prob: f64) -> Tensor<3> {
        let drop = FastDropout::new(prob);
        let [b, l] = ids.dims();
        let device = ids.device();
        let start = self.position_offset as i64;
        let positions = Tensor::<1, Int>::arange(start..start + l as i64, &device).unsqueeze_dim::<2>(0).repeat_dim(0, b);
        let e = &self.embeddings;
        let mut x = e.word.forward(ids) + e.position.forward(positions);
        if let Some(token_type) = &e.token_type {
            x = x + token_type.forward(Tensor::<2, Int>::zeros([b, l], &device));
        }
        let mut x = drop.forward(e.norm.forward(x));
        let mut bias = (mask.ones_like() - mask).mul_scalar(-1e9).reshape([b, 1, 1, l]);
        if let Some(relative) = &self.relative {
            let [count, _] = relative.weight.dims();
            let buckets: Vec<i64> =
                (0..l as i64).flat_map(|query| (0..l as i64).map(move |key| relative_bucket(key - query, count) as i64)).collect();
            let buckets = Tensor::<2, Int>::from_data(TensorData::new(buckets, [l, l]), &device);
            let per_head: Tensor<4> = relative.forward(buckets).permute([2, 0, 1]).unsqueeze_dim::<4>(0).repeat_dim(0, b);
            bias = per_head + bias;
        }
        for layer in &self.layers {
            x = layer.forward(x, bias.clone(), &drop);
        }
        x
    }

    /// A shallower copy that keeps the layers at positions `which` (in that order) on top of the
    /// same embeddings: a distilled student's starting point.
    pub fn keep_layers(&self, which: &[usize]) -> Option<Bert> {
        let layers = which.iter().map(|&i| self.layers.get(i).cloned()).collect::<Option<Vec<_>>>()?;
        Some(Bert {
            embeddings: self.embeddings.clone(),
            layers,
            relative: self.relative.clone(),
            position_offset: self.position_offset,
        })
    }

    /// The weights as plain arrays, for the ONNX export of the fast inference path.
    pub fn weights(&self, config: &BertConfig) -> Result<crate::onnx::BertWeights> {
        use crate::onnx::{LayerWeights, LinearWeights, NormWeights};
        fn floats<const D: usize>(t: Tensor<D>) -> Result<Vec<f32>> {
            t.into_data().convert::<f32>().try_into_vec::<f32>().map_err(|e| ModelError::Runtime(format!("reading the weights: {e:?}")))
        }
        let linear = |l: &Linear| -> Result<LinearWeights> {
            let [d_in, d_out] = l.weight.val().dims();
            let bias = match &l.bias {
                Some(b) => floats(b.val())?,
                None => vec![0.0; d_out],
            };
            Ok(LinearWeights { d_in, d_out, weight: floats(l.weight.val())?, bias })
        };
        let norm = |n: &LayerNorm| -> Result<NormWeights> {
            let gamma = floats(n.gamma.val())?;
            let beta = match &n.beta {
                Some(b) => floats(b.val())?,
                None => vec![0.0; gamma.len()],
            };
            Ok(NormWeights { gamma, beta })
        };
        let e = &self.embeddings;
        let Some(token_type) = &e.token_type else {
            return Err(ModelError::Runtime("the fast path's graph is BERT's: MPNet (relative position bias) runs in burn".into()));
        };
        let layers = self
            .layers
            .iter()
            .map(|l| {
                Ok(LayerWeights {
                    query: linear(&l.query)?,
                    key: linear(&l.key)?,
                    value: linear(&l.value)?,
                    attn_out: linear(&l.attn_out)?,
                    attn_norm: norm(&l.attn_norm)?,
                    inter: linear(&l.inter)?,
                    out: linear(&l.out)?,
                    out_norm: norm(&l.out_norm)?,
                })
            })
            .collect::<Result<_>>()?;
        Ok(crate::onnx::BertWeights {
            hidden: config.hidden_size,
            heads: config.num_attention_heads,
            epsilon: config.layer_norm_eps as f32,
            word: floats(e.word.weight.val())?,
            position: floats(e.position.weight.val())?,
            token_type: floats(token_type.weight.val())?,
            embedding_norm: norm(&e.norm)?,
            layers,
        })
    }

    /// Loads Hugging Face BERT or MPNet weights (`bert.` / `mpnet.` prefix optional; the pooler
    /// is ignored).
    pub fn load_safetensors(self, path: &Path) -> Result<Self> {
        crate::weights::load_safetensors(
            self,
            path,
            &[
                (r"^(bert|mpnet)\.", ""),
                (r"^encoder\.layer\.(\d+)\.attention\.attn\.q\.", "layers.$1.query."),
                (r"^encoder\.layer\.(\d+)\.attention\.attn\.k\.", "layers.$1.key."),
                (r"^encoder\.layer\.(\d+)\.attention\.attn\.v\.", "layers.$1.value."),
                (r"^encoder\.layer\.(\d+)\.attention\.attn\.o\.", "layers.$1.attn_out."),
                (r"^encoder\.layer\.(\d+)\.attention\.LayerNorm\.", "layers.$1.attn_norm."),
                (r"^encoder\.relative_attention_bias\.", "relative."),
                (r"^embeddings\.word_embeddings\.", "embeddings.word."),
                (r"^embeddings\.position_embeddings\.", "embeddings.position."),
                (r"^embeddings\.token_type_embeddings\.", "embeddings.token_type."),
                (r"^embeddings\.LayerNorm\.", "embeddings.norm."),
                (r"^encoder\.layer\.(\d+)\.attention\.self\.(query|key|value)\.", "layers.$1.$2."),
                (r"^encoder\.layer\.(\d+)\.attention\.output\.dense\.", "layers.$1.attn_out."),
                (r"^encoder\.layer\.(\d+)\.attention\.output\.LayerNorm\.", "layers.$1.attn_norm."),
                (r"^encoder\.layer\.(\d+)\.intermediate\.dense\.", "layers.$1.inter."),
                (r"^encoder\.layer\.(\d+)\.output\.dense\.", "layers.$1.out."),
                (r"^encoder\.layer\.(\d+)\.output\.LayerNorm\.", "layers.$1.out_norm."),
            ],
        )
    }
}

/// Mean of the token states over the mask, L2-normalised: [batch, d].
pub fn mean_pool_normalised(states: Tensor<3>, mask: Tensor<2>) -> Tensor<2> {
    let [b, l, d] = states.dims();
    let m = mask.reshape([b, l, 1]);
    let summed: Tensor<2> = (states * m.clone()).sum_dim(1).reshape([b, d]);
    let counts: Tensor<2> = m.sum_dim(1).reshape([b, 1]).clamp_min(1e-9);
    let mean = summed / counts;
    let norm = mean.clone().powi_scalar(2).sum_dim(1).sqrt().clamp_min(1e-12);
    mean / norm
}

/// A sentence encoder: tokenizer + BERT + mean pooling + normalisation.
#[derive(Debug)]
pub struct SentenceEncoder {
    model: Bert,
    tokenizer: Tokenizer,
    config: BertConfig,
    device: Device,
    max_tokens: usize,
    /// The folder it was loaded from (its config and tokenizer files are copied by [`SentenceEncoder::save`]).
    source: PathBuf,
    /// The fast inference path [`Self::encode`] takes when set ([`Self::with_fast_path`]).
    fast: Option<Arc<FastEncoder>>,
}

impl SentenceEncoder {
    pub const WEIGHTS: &'static str = "model.safetensors";
    /// Fine-tuned weights in burn's format; preferred over [`Self::WEIGHTS`] when both exist.
    pub const FINE_TUNED_WEIGHTS: &'static str = "model.bpk";
    pub const CONFIG: &'static str = "config.json";
    pub const TOKENIZER: &'static str = "tokenizer.json";
    const SENTENCE_CONFIG: &'static str = "sentence_bert_config.json";

    /// Loads a sentence-transformers / Hugging Face folder, or one written by [`Self::save`].
    pub fn load(dir: &Path, device: &Device) -> Result<Self> {
        let fine_tuned = dir.join(Self::FINE_TUNED_WEIGHTS);
        let weights = if fine_tuned.is_file() { fine_tuned } else { dir.join(Self::WEIGHTS) };
        for path in [weights.clone(), dir.join(Self::CONFIG), dir.join(Self::TOKENIZER)] {
            if !path.is_file() {
                return Err(ModelError::BadFile {
                    path,
                    message: "missing: a sentence encoder folder needs model.safetensors (or model.bpk), config.json and tokenizer.json".into(),
                });
            }
        }
        let config = BertConfig::load(&dir.join(Self::CONFIG))?;
        let mut tokenizer = Tokenizer::from_file(dir.join(Self::TOKENIZER)).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        crate::tokenizer::check_token_ids(&dir.join(Self::TOKENIZER), &tokenizer, config.vocab_size)?;
        tokenizer.with_padding(None);
        crate::sizes::check_fits(&dir.join(Self::CONFIG), config.num_params(), &weights)?;
        let max_tokens = read_max_seq_length(dir).unwrap_or(256).min(config.max_tokens());
        tokenizer
            .with_truncation(Some(tokenizers::TruncationParams { max_length: max_tokens, ..Default::default() }))
            .map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        let model = if weights.extension().is_some_and(|e| e == "bpk") {
            crate::load_weights(config.init(device), &weights)?
        } else {
            config.init(device).load_safetensors(&weights)?
        };
        Ok(SentenceEncoder { model, tokenizer, config, device: device.clone(), max_tokens, source: dir.to_path_buf(), fast: None })
    }

    /// Writes a folder [`Self::load`] reads: the weights as `model.bpk`, the source's config (with
    /// this encoder's number of layers, which a student has fewer of) and tokenizer, and the token
    /// limit.
    pub fn save(&self, dir: &Path) -> Result<()> {
        let io = |path: &Path, source| ModelError::Io(xmc_data::IoError::new(path, source));
        std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
        std::fs::copy(self.source.join(Self::TOKENIZER), dir.join(Self::TOKENIZER)).map_err(|e| io(&self.source.join(Self::TOKENIZER), e))?;
        let source_config = self.source.join(Self::CONFIG);
        let text = std::fs::read_to_string(&source_config).map_err(|e| io(&source_config, e))?;
        let mut config: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| ModelError::BadFile { path: source_config.clone(), message: e.to_string() })?;
        config["num_hidden_layers"] = self.config.num_hidden_layers.into();
        let path = dir.join(Self::CONFIG);
        std::fs::write(&path, serde_json::to_string_pretty(&config).expect("serialises") + "\n").map_err(|e| io(&path, e))?;
        let limits = serde_json::json!({ "max_seq_length": self.max_tokens });
        let path = dir.join(Self::SENTENCE_CONFIG);
        std::fs::write(&path, limits.to_string() + "\n").map_err(|e| io(&path, e))?;
        let weights = dir.join(Self::FINE_TUNED_WEIGHTS);
        self.model.clone().save_file(&weights).map_err(|e| ModelError::BadFile { path: weights, message: e.to_string() })
    }

    pub fn model(&self) -> &Bert {
        &self.model
    }

    /// A student of this encoder: the same tokenizer and embeddings with only the layers at
    /// positions `which` (see [`student_layers`]); `None` when a position is out of range.
    pub fn student(&self, which: &[usize]) -> Option<Self> {
        let model = self.model.keep_layers(which)?;
        let mut student = self.with_weights(model);
        student.config.num_hidden_layers = which.len();
        Some(student)
    }

    /// How many layers the encoder has.
    pub fn layers(&self) -> usize {
        self.config.num_hidden_layers
    }

    /// A copy without autodiff, for evaluation during training.
    pub fn valid(&self) -> Self {
        self.with_weights(self.model.valid())
    }

    /// A copy with other weights of the same shape (e.g. a training loop's current ones).
    pub fn with_weights(&self, model: Bert) -> Self {
        let device = model.devices().into_iter().next().unwrap_or_else(crate::inference_device);
        SentenceEncoder {
            model,
            tokenizer: self.tokenizer.clone(),
            config: self.config.clone(),
            device,
            max_tokens: self.max_tokens,
            source: self.source.clone(),
            fast: None,
        }
    }

    /// This encoder for inference on the path `XMC_ENCODER` asks for ([`EncoderRuntime`]): by
    /// default int8 through ONNX Runtime when its library is found. Where the fast path cannot
    /// be had, the encoder stays in burn and one log line per process says why.
    pub fn with_fast_path(self) -> Result<Self> {
        let runtime = EncoderRuntime::from_env().map_err(|e| ModelError::Runtime(e.0))?;
        let wanted = match runtime {
            EncoderRuntime::Burn => return Ok(self),
            EncoderRuntime::Auto => Precision::INT8,
            EncoderRuntime::Ort(p) => p,
        };
        match self.with_runtime(wanted) {
            Ok(fast) => Ok(fast),
            Err((encoder, why)) => {
                static SAID: std::sync::Once = std::sync::Once::new();
                SAID.call_once(|| tracing::warn!("the sentence encoder runs in burn (fp32), not on the fast path: {why}"));
                Ok(encoder)
            }
        }
    }

    /// This encoder on ONNX Runtime at `precision`, with as many threads as the current rayon
    /// pool; on failure, the encoder back (unchanged) with the reason.
    pub fn with_runtime(mut self, precision: Precision) -> std::result::Result<Self, (Self, FastPathError)> {
        let weights = match self.model.weights(&self.config) {
            Ok(w) => w,
            Err(e) => return Err((self, FastPathError(e.to_string()))),
        };
        match FastEncoder::new(&weights, precision, rayon::current_num_threads()) {
            Ok(fast) => {
                self.fast = Some(Arc::new(fast));
                Ok(self)
            }
            Err(e) => Err((self, e)),
        }
    }

    /// The encoder's ONNX graph at `precision` (what the fast path runs), serialised.
    pub fn export_onnx(&self, precision: Precision) -> Result<Vec<u8>> {
        Ok(crate::onnx::export(&self.model.weights(&self.config)?, precision))
    }

    /// The path [`Self::encode`] takes: `burn` or `onnxruntime <precision>`.
    pub fn runtime_name(&self) -> String {
        match &self.fast {
            Some(f) => format!("onnxruntime {}", f.precision().name()),
            None => "burn fp32".into(),
        }
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    pub fn dim(&self) -> usize {
        self.config.hidden_size
    }

    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Token ids of one text, with the special tokens, truncated.
    pub fn tokenize(&self, text: &str) -> Result<Vec<u32>> {
        let encoding = self.tokenizer.encode(text, true).map_err(|e| ModelError::Tokenizer(e.to_string()))?;
        Ok(encoding.get_ids().to_vec())
    }

    /// Unit vectors [batch, d] of tokenised texts, padded to the longest; differentiable when the
    /// encoder sits on an autodiff device.
    pub fn embed_tokens(&self, tokens: &[&[u32]]) -> Tensor<2> {
        self.embed_tokens_with(&self.model, tokens, 0.0)
    }

    /// [`Self::embed_tokens`] through other weights of the same shape (a training loop's), with
    /// the encoder's dropout at `dropout` on an autodiff device ([`Bert::forward_with_dropout`]).
    pub fn embed_tokens_with(&self, model: &Bert, tokens: &[&[u32]], dropout: f64) -> Tensor<2> {
        let device = model.devices().into_iter().next().unwrap_or_else(|| self.device.clone());
        let (ids, mask, shape) = crate::batch::pad_batch(tokens);
        let ids = Tensor::<2, Int>::from_data(TensorData::new(ids, shape), &device);
        let mask = Tensor::<2>::from_data(TensorData::new(mask, shape), &device);
        mean_pool_normalised(model.forward_with_dropout(ids, mask.clone(), dropout), mask)
    }

    /// Unit vectors for `texts`, in order. Texts are batched by length to keep padding small;
    /// `on_batch` is told how many texts each finished batch held.
    pub fn encode(&self, texts: &[&str], batch_size: usize, mut on_batch: impl FnMut(usize)) -> Result<Vec<Vec<f32>>> {
        let tokens: Vec<Vec<u32>> = texts.iter().map(|t| self.tokenize(t)).collect::<Result<_>>()?;
        let mut order: Vec<usize> = (0..texts.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(tokens[i].len()));
        let mut out = vec![Vec::new(); texts.len()];
        for chunk in order.chunks(batch_size.max(1)) {
            let batch: Vec<&[u32]> = chunk.iter().map(|&i| tokens[i].as_slice()).collect();
            if let Some(fast) = &self.fast {
                for (v, &i) in fast.embed(&batch).map_err(|e| ModelError::Runtime(e.0))?.into_iter().zip(chunk) {
                    out[i] = v;
                }
            } else {
                let pooled = self.embed_tokens(&batch);
                let values = pooled.into_data().try_to_vec::<f32>().map_err(|e| ModelError::Tokenizer(format!("{e:?}")))?;
                let d = self.dim();
                for (row, &i) in chunk.iter().enumerate() {
                    out[i] = values[row * d..(row + 1) * d].to_vec();
                }
            }
            on_batch(chunk.len());
        }
        Ok(out)
    }
}

/// The `n` of `of` layers a student starts from: evenly spaced, the first and the last among them
/// (the last layer is the one whose output the teacher's label vectors were fitted to).
pub fn student_layers(n: usize, of: usize) -> Vec<usize> {
    match (n, of) {
        (0, _) | (_, 0) => Vec::new(),
        (1, _) => vec![of - 1],
        _ if n >= of => (0..of).collect(),
        _ => (0..n).map(|i| (i * (of - 1) + (n - 1) / 2) / (n - 1)).collect(),
    }
}

fn read_max_seq_length(dir: &Path) -> Option<usize> {
    let path: PathBuf = dir.join("sentence_bert_config.json");
    let value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()?;
    value.get("max_seq_length")?.as_u64().map(|v| v as usize)
}

#[cfg(test)]
mod tests {
    use super::student_layers;

    #[test]
    fn a_student_keeps_evenly_spaced_layers_with_the_first_and_the_last() {
        assert_eq!(student_layers(2, 6), vec![0, 5]);
        assert_eq!(student_layers(3, 6), vec![0, 3, 5]);
        assert_eq!(student_layers(1, 6), vec![5]);
        assert_eq!(student_layers(4, 12), vec![0, 4, 7, 11]);
        assert_eq!(student_layers(6, 6), (0..6).collect::<Vec<_>>());
        assert!(student_layers(0, 6).is_empty());
    }
}
