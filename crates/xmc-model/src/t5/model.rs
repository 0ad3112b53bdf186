//! The T5 encoder-decoder: pre-norm blocks with RMS norm and no biases, relative position
//! buckets (bidirectional in the encoder, causal in the decoder; computed once per stack and
//! shared by its layers), ReLU or gated-GELU feed-forward, tied or untied output projection.

use std::path::Path;

use burn::module::Module;
use burn::nn::{Embedding, EmbeddingConfig, Initializer, Linear, LinearConfig, RmsNorm, RmsNormConfig};
use burn::prelude::*;
use burn::tensor::activation::{gelu_approximate, relu, softmax};
use burn::tensor::module::attention;
use burn::tensor::ops::AttentionModuleOptions;

use super::config::T5Config;
use super::position::bucket_matrix;
use crate::dropout::FastDropout as Dropout;
use crate::error::Result;

/// Added to attention scores where a query must not look.
const MASKED: f32 = -1e9;

fn linear(d_in: usize, d_out: usize, std: f64, device: &Device) -> Linear {
    LinearConfig::new(d_in, d_out).with_bias(false).with_initializer(Initializer::Normal { mean: 0.0, std }).init(device)
}

#[derive(Module, Debug)]
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    dropout: Dropout,
    heads: usize,
    d_kv: usize,
}

impl Attention {
    fn new(cfg: &T5Config, device: &Device) -> Self {
        let (d, inner) = (cfg.d_model, cfg.num_heads * cfg.d_kv);
        // Hugging Face's T5 initialisation; there is no 1/sqrt(d_kv) in the scores.
        Attention {
            q: linear(d, inner, ((d * cfg.d_kv) as f64).powf(-0.5), device),
            k: linear(d, inner, (d as f64).powf(-0.5), device),
            v: linear(d, inner, (d as f64).powf(-0.5), device),
            o: linear(inner, d, (inner as f64).powf(-0.5), device),
            dropout: Dropout::new(cfg.dropout_rate),
            heads: cfg.num_heads,
            d_kv: cfg.d_kv,
        }
    }

    /// [b, l, d] -> [b, heads, l, d_kv]
    fn split(&self, lin: &Linear, x: Tensor<3>) -> Tensor<4> {
        let [b, l, _] = x.dims();
        lin.forward(x).reshape([b, l, self.heads, self.d_kv]).swap_dims(1, 2)
    }

    /// `q` [b, h, lq, dk], `k`/`v` [b, h, lk, dk], `bias` broadcastable to [b, h, lq, lk].
    ///
    /// Outside training (no dropout on the weights) this is burn's fused attention kernel: on
    /// the CPU backend it is 2-3 times faster than the matmul-softmax-matmul below for the
    /// decoder's one-query steps, which the batched matmul runs as one tiny gemm per row and head.
    fn attend(&self, q: Tensor<4>, k: Tensor<4>, v: Tensor<4>, bias: Tensor<4>) -> Tensor<3> {
        let [b, _, lq, _] = q.dims();
        let context = if q.device().is_autodiff() {
            let scores = q.matmul(k.swap_dims(2, 3)) + bias;
            let weights = self.dropout.forward(softmax(scores, 3));
            weights.matmul(v)
        } else {
            // T5 has no 1/sqrt(d_kv) in the scores.
            attention(q, k, v, None, Some(bias), AttentionModuleOptions { scale: Some(1.0), softcap: None, is_causal: false })
        };
        self.o.forward(context.swap_dims(1, 2).reshape([b, lq, self.heads * self.d_kv]))
    }
}

#[derive(Module, Debug)]
struct FeedForward {
    wi: Option<Linear>,
    wi_0: Option<Linear>,
    wi_1: Option<Linear>,
    wo: Linear,
    dropout: Dropout,
}

impl FeedForward {
    fn new(cfg: &T5Config, device: &Device) -> Self {
        let (d, f) = (cfg.d_model, cfg.d_ff);
        let wi = || linear(d, f, (d as f64).powf(-0.5), device);
        let (wi_plain, wi_0, wi_1) = if cfg.gated_gelu { (None, Some(wi()), Some(wi())) } else { (Some(wi()), None, None) };
        FeedForward { wi: wi_plain, wi_0, wi_1, wo: linear(f, d, (f as f64).powf(-0.5), device), dropout: Dropout::new(cfg.dropout_rate) }
    }

    fn forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = match (&self.wi, &self.wi_0, &self.wi_1) {
            (Some(wi), _, _) => relu(wi.forward(x)),
            (None, Some(w0), Some(w1)) => gelu_approximate(w0.forward(x.clone())) * w1.forward(x),
            _ => unreachable!("built with either wi or wi_0 and wi_1"),
        };
        self.wo.forward(self.dropout.forward(h))
    }
}

#[derive(Module, Debug)]
struct Block {
    self_attn: Attention,
    self_norm: RmsNorm,
    cross_attn: Option<Attention>,
    cross_norm: Option<RmsNorm>,
    ff: FeedForward,
    ff_norm: RmsNorm,
    dropout: Dropout,
}

impl Block {
    fn new(cfg: &T5Config, decoder: bool, device: &Device) -> Self {
        let norm = || RmsNormConfig::new(cfg.d_model).with_epsilon(cfg.layer_norm_epsilon).init(device);
        Block {
            self_attn: Attention::new(cfg, device),
            self_norm: norm(),
            cross_attn: decoder.then(|| Attention::new(cfg, device)),
            cross_norm: decoder.then(norm),
            ff: FeedForward::new(cfg, device),
            ff_norm: norm(),
            dropout: Dropout::new(cfg.dropout_rate),
        }
    }

    fn feed_forward(&self, x: Tensor<3>) -> Tensor<3> {
        let h = self.ff.forward(self.ff_norm.forward(x.clone()));
        x + self.dropout.forward(h)
    }
}

#[derive(Module, Debug)]
struct Stack {
    blocks: Vec<Block>,
    relative_attention_bias: Embedding,
    final_layer_norm: RmsNorm,
    dropout: Dropout,
    bidirectional: bool,
    num_buckets: usize,
    max_distance: usize,
}

impl Stack {
    fn new(cfg: &T5Config, decoder: bool, device: &Device) -> Self {
        let layers = match (decoder, &cfg.bert_encoder) {
            (true, _) => cfg.num_decoder_layers,
            (false, Some(_)) => 0,
            (false, None) => cfg.num_layers,
        };
        Stack {
            blocks: (0..layers).map(|_| Block::new(cfg, decoder, device)).collect(),
            relative_attention_bias: EmbeddingConfig::new(cfg.relative_attention_num_buckets, cfg.num_heads)
                .with_initializer(Initializer::Normal { mean: 0.0, std: (cfg.d_model as f64).powf(-0.5) })
                .init(device),
            final_layer_norm: RmsNormConfig::new(cfg.d_model).with_epsilon(cfg.layer_norm_epsilon).init(device),
            dropout: Dropout::new(cfg.dropout_rate),
            bidirectional: !decoder,
            num_buckets: cfg.relative_attention_num_buckets,
            max_distance: cfg.relative_attention_max_distance,
        }
    }

    /// Position bias [1, heads, queries, keys] for queries at `queries` against keys `0..keys`.
    fn position_bias(&self, queries: std::ops::Range<usize>, keys: usize, device: &Device) -> Tensor<4> {
        let lq = queries.len();
        let buckets = bucket_matrix(queries, keys, self.bidirectional, self.num_buckets, self.max_distance);
        let buckets = Tensor::<2, Int>::from_data(TensorData::new(buckets, [lq, keys]), device);
        // [lq, lk, heads] -> [heads, lq, lk]
        self.relative_attention_bias.forward(buckets).permute([2, 0, 1]).unsqueeze_dim(0)
    }
}

/// The encoder's states and the additive mask bias [b, 1, 1, s] the decoder attends with.
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    pub hidden: Tensor<3>,
    pub mask_bias: Tensor<4>,
}

/// Keys and values of the decoder's past steps, and of the encoder output, per layer.
///
/// The decoder runs `rows_per_input` rows per encoded input (a beam search's beams): row `i`
/// decodes input `i / rows_per_input`. The encoder's keys and values stay at one row per input
/// and each input's rows attend to them as one block of queries, so widening the search copies
/// nothing but the decoder's own past.
#[derive(Debug, Clone)]
pub struct DecoderCache {
    self_kv: Vec<Option<(Tensor<4>, Tensor<4>)>>,
    cross_kv: Vec<(Tensor<4>, Tensor<4>)>,
    cross_bias: Tensor<4>,
    len: usize,
    rows_per_input: usize,
}

impl DecoderCache {
    /// Number of tokens decoded so far.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Decoder rows per encoded input.
    pub fn rows_per_input(&self) -> usize {
        self.rows_per_input
    }

    /// The cache for `rows_per_input` rows per input, new row `i` continuing old row `rows[i]`
    /// (rows may repeat or vanish): how a beam search follows its surviving beams.
    ///
    /// # Panics
    /// If `rows` does not hold `rows_per_input` rows per input, or a row moves to another input.
    pub fn select(&self, rows: &[usize], rows_per_input: usize) -> DecoderCache {
        let inputs = self.cross_bias.dims()[0];
        assert_eq!(rows.len(), inputs * rows_per_input, "select: {rows_per_input} rows for each of {inputs} inputs");
        for (i, &row) in rows.iter().enumerate() {
            assert_eq!(row / self.rows_per_input, i / rows_per_input, "select: row {i} would continue row {row} of another input");
        }
        let device = self.cross_bias.device();
        let rows = Tensor::<1, Int>::from_data(TensorData::new(rows.iter().map(|&r| r as i64).collect::<Vec<_>>(), [rows.len()]), &device);
        let pick = |t: &Tensor<4>| t.clone().select(0, rows.clone());
        DecoderCache {
            self_kv: self.self_kv.iter().map(|kv| kv.as_ref().map(|(k, v)| (pick(k), pick(v)))).collect(),
            cross_kv: self.cross_kv.clone(),
            cross_bias: self.cross_bias.clone(),
            len: self.len,
            rows_per_input,
        }
    }
}

/// The same values laid out row-major. [`Attention::split`] returns a transposed view, which the
/// attention kernel would copy on every decoding step; the cache copies it once.
fn contiguous(x: Tensor<4>) -> Tensor<4> {
    let dims = x.dims();
    x.reshape([dims.iter().product::<usize>()]).reshape(dims)
}

/// A BERT encoder whose states are projected to the decoder's width.
#[derive(Module, Debug)]
struct BertBridge {
    bert: crate::bert::Bert,
    proj: Linear,
}

#[derive(Module, Debug)]
pub struct T5 {
    shared: Embedding,
    encoder: Stack,
    /// Replaces the encoder stack's blocks when set (`T5Config::bert_encoder`).
    bert: Option<BertBridge>,
    decoder: Stack,
    lm_head: Option<Linear>,
    d_model: usize,
    scale_decoder_outputs: bool,
    dropout: Dropout,
}

fn mask_bias(mask: Tensor<2>) -> Tensor<4> {
    let [b, s] = mask.dims();
    (mask.ones_like() - mask).mul_scalar(MASKED).reshape([b, 1, 1, s])
}

/// burn creates parameters lazily, on first use, from one global RNG: a model used by another
/// thread at the same time could draw from it in between. [`T5Config::init_seeded`] holds this
/// lock while it seeds the device and materialises every parameter, so a seed gives one model.
static SEEDED_INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());

struct Materialise;

impl burn::module::ModuleVisitor for Materialise {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        let _ = param.val();
    }
}

/// Feeds every float parameter's bytes, in the module's visiting order, to a SHA-256.
struct WeightsDigest(sha2::Sha256);

impl burn::module::ModuleVisitor for WeightsDigest {
    fn visit_float<const D: usize>(&mut self, param: &burn::module::Param<Tensor<D>>) {
        use sha2::Digest;
        let data = param.val().into_data();
        self.0.update(data.shape().iter().flat_map(|d| (*d as u64).to_le_bytes()).collect::<Vec<u8>>());
        self.0.update(data.as_bytes());
    }
}

impl T5Config {
    /// A freshly initialised model that depends only on `seed`.
    pub fn init_seeded(&self, device: &Device, seed: u64) -> T5 {
        let _guard = SEEDED_INIT.lock().unwrap_or_else(|e| e.into_inner());
        device.seed(seed);
        crate::dropout::reseed(seed);
        let model = self.init(device);
        model.visit(&mut Materialise);
        model
    }

    pub fn init(&self, device: &Device) -> T5 {
        T5 {
            shared: EmbeddingConfig::new(self.vocab_size, self.d_model)
                .with_initializer(Initializer::Normal { mean: 0.0, std: 1.0 })
                .init(device),
            encoder: Stack::new(self, false, device),
            bert: self.bert_encoder.as_ref().map(|b| BertBridge {
                bert: b.init(device),
                proj: linear(b.hidden_size, self.d_model, (b.hidden_size as f64).powf(-0.5), device),
            }),
            decoder: Stack::new(self, true, device),
            lm_head: (!self.tie_word_embeddings).then(|| linear(self.d_model, self.vocab_size, 1.0, device)),
            d_model: self.d_model,
            scale_decoder_outputs: self.scale_decoder_outputs,
            dropout: Dropout::new(self.dropout_rate),
        }
    }
}

impl T5 {
    /// SHA-256 of the weights alone (shapes and values, in module order): equal for two models
    /// with the same weights, whatever burn's random parameter ids in `model.bpk` are.
    pub fn weights_sha256(&self) -> String {
        use sha2::Digest;
        let mut digest = WeightsDigest(sha2::Sha256::new());
        self.visit(&mut digest);
        digest.0.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Encodes `ids` [b, s] with `mask` [b, s] (1 = token, 0 = padding).
    pub fn encode(&self, ids: Tensor<2, Int>, mask: Tensor<2>) -> EncoderOutput {
        if let Some(bridge) = &self.bert {
            let mask_bias = mask_bias(mask.clone());
            let states = bridge.proj.forward(bridge.bert.forward(ids, mask));
            let hidden = self.encoder.dropout.forward(self.encoder.final_layer_norm.forward(states));
            return EncoderOutput { hidden, mask_bias };
        }
        let [_, s] = ids.dims();
        let device = ids.device();
        let mask_bias = mask_bias(mask);
        let bias = self.encoder.position_bias(0..s, s, &device) + mask_bias.clone();
        let mut x = self.dropout.forward(self.shared.forward(ids));
        for block in &self.encoder.blocks {
            let h = block.self_norm.forward(x.clone());
            let a = &block.self_attn;
            let out = a.attend(a.split(&a.q, h.clone()), a.split(&a.k, h.clone()), a.split(&a.v, h), bias.clone());
            x = block.feed_forward(x + block.dropout.forward(out));
        }
        let hidden = self.encoder.dropout.forward(self.encoder.final_layer_norm.forward(x));
        EncoderOutput { hidden, mask_bias }
    }

    fn logits(&self, y: Tensor<3>) -> Tensor<3> {
        let [b, t, d] = y.dims();
        let y = if self.scale_decoder_outputs { y.mul_scalar((self.d_model as f64).powf(-0.5)) } else { y };
        match &self.lm_head {
            Some(head) => head.forward(y),
            None => {
                let w = self.shared.weight.val(); // [vocab, d]
                let [vocab, _] = w.dims();
                y.reshape([b * t, d]).matmul(w.transpose()).reshape([b, t, vocab])
            }
        }
    }

    /// Teacher-forced decoder pass: logits [b, t, vocab] for `decoder_ids` [b, t].
    pub fn decode(&self, enc: &EncoderOutput, decoder_ids: Tensor<2, Int>) -> Tensor<3> {
        self.logits(self.decode_hidden(enc, decoder_ids, 1))
    }

    /// [`T5::decode`] with the output layer over `tokens` only (all when `None`): logits
    /// [b, t, n] where column `i` scores `tokens[i]` (see [`T5::output_projection`]).
    pub fn decode_over(&self, enc: &EncoderOutput, decoder_ids: Tensor<2, Int>, tokens: Option<&[u32]>) -> Tensor<3> {
        self.decode_rows_over(enc, decoder_ids, 1, tokens)
    }

    /// [`T5::decode_over`] for `rows_per_input` decoder rows per encoded input: row `i` of
    /// `decoder_ids` [inputs * rows_per_input, t] decodes input `i / rows_per_input` (the
    /// candidates of one record, say). Each input's rows attend to its encoder states as one
    /// block of queries, so the encoder's keys and values are projected once per input rather
    /// than once per row; the logits equal [`T5::decode_over`] on `enc` repeated row by row.
    ///
    /// # Panics
    /// If the decoder rows are not `rows_per_input` for each of `enc`'s inputs.
    pub fn decode_rows_over(&self, enc: &EncoderOutput, decoder_ids: Tensor<2, Int>, rows_per_input: usize, tokens: Option<&[u32]>) -> Tensor<3> {
        let device = decoder_ids.device();
        let y = self.decode_hidden(enc, decoder_ids, rows_per_input);
        let [b, t, d] = y.dims();
        let projection = self.output_projection(tokens, &device);
        let [_, n] = projection.dims();
        y.reshape([b * t, d]).matmul(projection).reshape([b, t, n])
    }

    /// The teacher-forced decoder's final states [b, t, d_model], `rows_per_input` rows per
    /// encoded input (see [`T5::decode_rows_over`]).
    fn decode_hidden(&self, enc: &EncoderOutput, decoder_ids: Tensor<2, Int>, rows_per_input: usize) -> Tensor<3> {
        let [rows, t] = decoder_ids.dims();
        let inputs = enc.hidden.dims()[0];
        assert_eq!(rows, inputs * rows_per_input, "decode: {rows_per_input} decoder rows for each of {inputs} inputs");
        let device = decoder_ids.device();
        let causal: Vec<f32> = (0..t).flat_map(|q| (0..t).map(move |k| if k > q { MASKED } else { 0.0 })).collect();
        let causal = Tensor::<2>::from_data(TensorData::new(causal, [t, t]), &device).reshape([1, 1, t, t]);
        let self_bias = self.decoder.position_bias(0..t, t, &device) + causal;
        let mut y = self.dropout.forward(self.shared.forward(decoder_ids));
        for block in &self.decoder.blocks {
            let h = block.self_norm.forward(y.clone());
            let a = &block.self_attn;
            let out = a.attend(a.split(&a.q, h.clone()), a.split(&a.k, h.clone()), a.split(&a.v, h), self_bias.clone());
            y = y + block.dropout.forward(out);
            let (c, norm) = (block.cross_attn.as_ref().expect("decoder block"), block.cross_norm.as_ref().expect("decoder block"));
            let h = norm.forward(y.clone());
            let (k, v) = (c.split(&c.k, enc.hidden.clone()), c.split(&c.v, enc.hidden.clone()));
            let out = if rows_per_input == 1 {
                c.attend(c.split(&c.q, h), k, v, enc.mask_bias.clone())
            } else {
                // [rows, h, t, dk] -> [inputs, h, rows_per_input * t, dk]: an input's rows are one block of queries.
                let q = c.split(&c.q, h);
                let [_, heads, _, d_kv] = q.dims();
                let q = q.swap_dims(1, 2).reshape([inputs, rows_per_input * t, heads, d_kv]).swap_dims(1, 2);
                let out = c.attend(q, k, v, enc.mask_bias.clone());
                let [_, _, d] = out.dims();
                out.reshape([rows, t, d])
            };
            y = block.feed_forward(y + block.dropout.forward(out));
        }
        self.decoder.dropout.forward(self.decoder.final_layer_norm.forward(y))
    }

    /// Full forward pass for training: logits [b, t, vocab].
    pub fn forward(&self, ids: Tensor<2, Int>, mask: Tensor<2>, decoder_ids: Tensor<2, Int>) -> Tensor<3> {
        let enc = self.encode(ids, mask);
        self.decode(&enc, decoder_ids)
    }

    /// [`T5::forward`] with the output layer over `tokens` only (see [`T5::decode_over`]).
    pub fn forward_over(&self, ids: Tensor<2, Int>, mask: Tensor<2>, decoder_ids: Tensor<2, Int>, tokens: Option<&[u32]>) -> Tensor<3> {
        let enc = self.encode(ids, mask);
        self.decode_over(&enc, decoder_ids, tokens)
    }

    /// An empty cache for incremental decoding against `enc`.
    pub fn start_cache(&self, enc: &EncoderOutput) -> DecoderCache {
        let cross_kv = self
            .decoder
            .blocks
            .iter()
            .map(|block| {
                let c = block.cross_attn.as_ref().expect("decoder block");
                (contiguous(c.split(&c.k, enc.hidden.clone())), contiguous(c.split(&c.v, enc.hidden.clone())))
            })
            .collect();
        DecoderCache { self_kv: vec![None; self.decoder.blocks.len()], cross_kv, cross_bias: enc.mask_bias.clone(), len: 0, rows_per_input: 1 }
    }

    /// One decoding step: feeds `tokens` [b] (the previous outputs, or the start token) and
    /// returns the next-token logits [b, vocab]. Equals the last row of [`T5::decode`].
    pub fn decode_step(&self, tokens: Tensor<1, Int>, cache: &mut DecoderCache) -> Tensor<2> {
        let [b] = tokens.dims();
        let device = tokens.device();
        let hidden = self.decode_step_hidden(tokens, cache);
        let logits = hidden.matmul(self.output_projection(None, &device));
        let [_, vocab] = logits.dims();
        logits.reshape([b, vocab])
    }

    /// The output layer as a matrix [d_model, n] (the d_model^-0.5 rescale folded in): over the
    /// whole vocabulary, or over `tokens` only (column `i` scores `tokens[i]`), so that a decoder
    /// that can only emit a few tokens does not pay for the rest.
    pub fn output_projection(&self, tokens: Option<&[u32]>, device: &Device) -> Tensor<2> {
        let ids = tokens.map(|t| Tensor::<1, Int>::from_data(TensorData::new(t.iter().map(|&x| x as i64).collect::<Vec<_>>(), [t.len()]), device));
        let w = match &self.lm_head {
            Some(head) => {
                let w = head.weight.val(); // [d, vocab]
                ids.map_or(w.clone(), |ids| w.select(1, ids))
            }
            None => {
                let w = self.shared.weight.val(); // [vocab, d]
                ids.map_or(w.clone(), |ids| w.select(0, ids)).transpose()
            }
        };
        if self.scale_decoder_outputs { w.mul_scalar((self.d_model as f64).powf(-0.5)) } else { w }
    }

    /// [`T5::decode_step`] up to the output layer: the final decoder states [b, d_model].
    pub fn decode_step_hidden(&self, tokens: Tensor<1, Int>, cache: &mut DecoderCache) -> Tensor<2> {
        let [b] = tokens.dims();
        let device = tokens.device();
        let position = cache.len;
        let bias = self.decoder.position_bias(position..position + 1, position + 1, &device);
        let mut y = self.shared.forward(tokens.reshape([b, 1]));
        for (i, block) in self.decoder.blocks.iter().enumerate() {
            let h = block.self_norm.forward(y.clone());
            let a = &block.self_attn;
            let (k, v) = (a.split(&a.k, h.clone()), a.split(&a.v, h.clone()));
            let (k, v) = match cache.self_kv[i].take() {
                Some((pk, pv)) => (Tensor::cat(vec![pk, k], 2), Tensor::cat(vec![pv, v], 2)),
                None => (k, v),
            };
            cache.self_kv[i] = Some((k.clone(), v.clone()));
            let out = a.attend(a.split(&a.q, h), k, v, bias.clone());
            y = y + out;
            let (c, norm) = (block.cross_attn.as_ref().expect("decoder block"), block.cross_norm.as_ref().expect("decoder block"));
            // Each input's rows are one block of queries: [rows, h, 1, dk] -> [inputs, h, rows_per_input, dk].
            let (ck, cv) = &cache.cross_kv[i];
            let q = c.split(&c.q, norm.forward(y.clone()));
            let [rows, heads, _, d_kv] = q.dims();
            let group = cache.rows_per_input;
            let q = q.reshape([rows / group, group, heads, d_kv]).swap_dims(1, 2);
            let out = c.attend(q, ck.clone(), cv.clone(), cache.cross_bias.clone());
            y = y + out.reshape([rows, 1, heads * d_kv]);
            y = block.feed_forward(y);
        }
        cache.len += 1;
        let [_, _, d] = y.dims();
        self.decoder.final_layer_norm.forward(y).reshape([b, d])
    }

    /// Loads Hugging Face T5 weights (`model.safetensors`) into this model.
    pub fn load_hf_weights(self, path: &Path) -> Result<Self> {
        crate::weights::load_safetensors(
            self,
            path,
            &[
                (r"^(encoder|decoder)\.block\.0\.layer\.0\.SelfAttention\.relative_attention_bias\.", "$1.relative_attention_bias."),
                (r"^(encoder|decoder)\.block\.(\d+)\.layer\.0\.SelfAttention\.", "$1.blocks.$2.self_attn."),
                (r"^(encoder|decoder)\.block\.(\d+)\.layer\.0\.layer_norm\.", "$1.blocks.$2.self_norm."),
                (r"^decoder\.block\.(\d+)\.layer\.1\.EncDecAttention\.", "decoder.blocks.$1.cross_attn."),
                (r"^decoder\.block\.(\d+)\.layer\.1\.layer_norm\.", "decoder.blocks.$1.cross_norm."),
                (r"^encoder\.block\.(\d+)\.layer\.1\.DenseReluDense\.", "encoder.blocks.$1.ff."),
                (r"^encoder\.block\.(\d+)\.layer\.1\.layer_norm\.", "encoder.blocks.$1.ff_norm."),
                (r"^decoder\.block\.(\d+)\.layer\.2\.DenseReluDense\.", "decoder.blocks.$1.ff."),
                (r"^decoder\.block\.(\d+)\.layer\.2\.layer_norm\.", "decoder.blocks.$1.ff_norm."),
            ],
        )
    }

    /// Loads pretrained BERT weights (a Hugging Face `model.safetensors`) into the BERT encoder.
    pub fn load_bert_encoder(mut self, path: &Path) -> Result<Self> {
        let Some(bridge) = self.bert.take() else {
            return Err(crate::ModelError::BadFile { path: path.into(), message: "this T5 has no BERT encoder to load".into() });
        };
        self.bert = Some(BertBridge { bert: bridge.bert.load_safetensors(path)?, proj: bridge.proj });
        Ok(self)
    }

    /// Loads a Hugging Face T5 folder (`config.json` + `model.safetensors`).
    pub fn load_hf(dir: &Path, device: &Device) -> Result<(T5Config, T5)> {
        let cfg = T5Config::from_hf(&dir.join("config.json"))?;
        let model = cfg.init(device).load_hf_weights(&dir.join("model.safetensors"))?;
        Ok((cfg, model))
    }
}
