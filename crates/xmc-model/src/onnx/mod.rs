//! The sentence encoder as an ONNX graph, for the fast inference path ([`crate::fast_encoder`]):
//! the same computation as [`crate::bert::Bert::forward`] followed by
//! [`crate::bert::mean_pool_normalised`], written from the weights in memory. Inputs
//! `input_ids` (int64, [batch, length]) and `attention_mask` (float, [batch, length], 1 for a
//! token); output `embedding` (float, [batch, hidden]), unit length.
//!
//! With [`Precision::Int8`] every weight matrix is quantized per output channel (symmetric, a
//! scale per column) and multiplied by ONNX Runtime's `DynamicQuantizeMatMul`, which quantizes
//! the activations per call (uint8, asymmetric) and accumulates in int32: VNNI dot products
//! where the CPU has them. Embedding tables, layer norms and the attention's own products stay
//! in float.

mod proto;

use prost::Message;
use proto::{attribute_type, data_type};
pub use proto::ModelProto;

/// The number type of the exported graph's weight matrices.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Precision {
    Fp32,
    /// Per-channel int8 weights; `reduced` keeps them within 7 bits (-63..=63), which CPUs
    /// without VNNI need: their 8-bit multiply-add (`vpmaddubsw`) saturates 16-bit pair sums.
    Int8 { reduced: bool },
    /// Int8 weights in blocks of `block` along the input (a scale per block and output), and
    /// the activations quantized per row and block too (ONNX Runtime's `MatMulNBits` at
    /// accuracy level 4): finer than one activation scale per call.
    Int8Blocks { block: usize },
}

impl Precision {
    /// The fast path's int8: blocks of 32 ([`Precision::Int8Blocks`]; ONNX Runtime picks the
    /// kernels for the CPU it runs on).
    pub const INT8: Precision = Precision::Int8Blocks { block: 32 };

    /// Per-channel int8 for this CPU: full 8-bit weights where VNNI accumulates in 32 bits,
    /// 7-bit elsewhere.
    pub fn int8_per_channel() -> Self {
        Precision::Int8 { reduced: !has_vnni() }
    }

    /// A short name for files and tables: `fp32`, `int8-channel`, `int8-channel-7bit`, `int8-blocks-32`.
    pub fn slug(self) -> String {
        match self {
            Precision::Fp32 => "fp32".into(),
            Precision::Int8 { reduced: false } => "int8-channel".into(),
            Precision::Int8 { reduced: true } => "int8-channel-7bit".into(),
            Precision::Int8Blocks { block } => format!("int8-blocks-{block}"),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Int8 { reduced: false } => "int8 per channel",
            Precision::Int8 { reduced: true } => "int8 per channel (7-bit weights)",
            Precision::Int8Blocks { .. } => "int8 in blocks",
        }
    }
}

/// Whether the CPU has 8-bit dot products that accumulate in 32 bits (AVX-512 VNNI or AVX-VNNI).
pub fn has_vnni() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512vnni") || std::arch::is_x86_feature_detected!("avxvnni")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// A weight matrix `[d_in, d_out]` (row-major, as burn's `Linear` stores it) and its bias.
#[derive(Debug, Clone)]
pub struct LinearWeights {
    pub d_in: usize,
    pub d_out: usize,
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
}

/// A layer norm's scale and shift.
#[derive(Debug, Clone)]
pub struct NormWeights {
    pub gamma: Vec<f32>,
    pub beta: Vec<f32>,
}

#[derive(Debug, Clone)]
pub struct LayerWeights {
    pub query: LinearWeights,
    pub key: LinearWeights,
    pub value: LinearWeights,
    pub attn_out: LinearWeights,
    pub attn_norm: NormWeights,
    pub inter: LinearWeights,
    pub out: LinearWeights,
    pub out_norm: NormWeights,
}

/// A BERT encoder's weights as plain arrays (from [`crate::bert::Bert::weights`]).
#[derive(Debug, Clone)]
pub struct BertWeights {
    pub hidden: usize,
    pub heads: usize,
    pub epsilon: f32,
    /// `[vocab, hidden]`, `[positions, hidden]`, `[types, hidden]`.
    pub word: Vec<f32>,
    pub position: Vec<f32>,
    pub token_type: Vec<f32>,
    pub embedding_norm: NormWeights,
    pub layers: Vec<LayerWeights>,
}

/// The ONNX operator sets the graphs use: the standard one (Gelu needs 20) and ONNX Runtime's
/// own (`DynamicQuantizeMatMul`).
const OPSET: i64 = 20;
const IR_VERSION: i64 = 9;
const MS_DOMAIN: &str = "com.microsoft";

/// The encoder's graph, serialised.
pub fn export(weights: &BertWeights, precision: Precision) -> Vec<u8> {
    graph_model(weights, precision).encode_to_vec()
}

fn graph_model(w: &BertWeights, precision: Precision) -> ModelProto {
    let mut g = GraphBuilder::new(precision);
    let d = w.hidden as i64;
    let positions = w.position.len() / w.hidden;
    // Token type 0 everywhere (as `Bert::forward`): its row joins the position table.
    let position_and_type: Vec<f32> = w.position.iter().enumerate().map(|(i, p)| p + w.token_type[i % w.hidden]).collect();
    let word = g.init_f32("word_embeddings", &[(w.word.len() / w.hidden) as i64, d], &w.word);
    let pos = g.init_f32("position_embeddings", &[positions as i64, d], &position_and_type);
    let words = g.node("Gather", &[&word, "input_ids"], &[]);
    // Positions 0..length: the first `length` rows of the table.
    let length = g.node("Shape", &["input_ids"], &[int_attr("start", 1), int_attr("end", 2)]);
    let zero = g.init_i64("zero", &[1], &[0]);
    let pos_rows = g.node("Slice", &[&pos, &zero, &length, &zero], &[]);
    let summed = g.node("Add", &[&words, &pos_rows], &[]);
    let mut x = g.layer_norm(&summed, &w.embedding_norm, w.epsilon);
    // The additive attention bias [batch, 1, 1, length]: 0 on tokens, -1e9 on padding.
    let one = g.init_f32("one", &[], &[1.0]);
    let padding = g.node("Sub", &[&one, "attention_mask"], &[]);
    let big = g.init_f32("minus_big", &[], &[-1e9]);
    let bias_flat = g.node("Mul", &[&padding, &big], &[]);
    let axes_12 = g.init_i64("axes_1_2", &[2], &[1, 2]);
    let bias = g.node("Unsqueeze", &[&bias_flat, &axes_12], &[]);
    let dh = w.hidden / w.heads;
    let split_shape = g.init_i64("split_shape", &[4], &[0, 0, w.heads as i64, dh as i64]);
    let merge_shape = g.init_i64("merge_shape", &[3], &[0, 0, d]);
    let scale = g.init_f32("attention_scale", &[], &[1.0 / (dh as f32).sqrt()]);
    for (i, layer) in w.layers.iter().enumerate() {
        let heads = |g: &mut GraphBuilder, t: &str, perm: &[i64]| {
            let r = g.node("Reshape", &[t, &split_shape], &[]);
            g.node("Transpose", &[&r], &[ints_attr("perm", perm)])
        };
        let q = g.linear(&format!("l{i}.query"), &x, &layer.query);
        let k = g.linear(&format!("l{i}.key"), &x, &layer.key);
        let v = g.linear(&format!("l{i}.value"), &x, &layer.value);
        let q = heads(&mut g, &q, &[0, 2, 1, 3]);
        let k = heads(&mut g, &k, &[0, 2, 3, 1]);
        let v = heads(&mut g, &v, &[0, 2, 1, 3]);
        let scores = g.node("MatMul", &[&q, &k], &[]);
        let scores = g.node("Mul", &[&scores, &scale], &[]);
        let scores = g.node("Add", &[&scores, &bias], &[]);
        let probs = g.node("Softmax", &[&scores], &[int_attr("axis", -1)]);
        let context = g.node("MatMul", &[&probs, &v], &[]);
        let context = g.node("Transpose", &[&context], &[ints_attr("perm", &[0, 2, 1, 3])]);
        let context = g.node("Reshape", &[&context, &merge_shape], &[]);
        let attended = g.linear(&format!("l{i}.attn_out"), &context, &layer.attn_out);
        let residual = g.node("Add", &[&attended, &x], &[]);
        let a = g.layer_norm(&residual, &layer.attn_norm, w.epsilon);
        let h = g.linear(&format!("l{i}.inter"), &a, &layer.inter);
        let h = g.node("Gelu", &[&h], &[]);
        let o = g.linear(&format!("l{i}.out"), &h, &layer.out);
        let residual = g.node("Add", &[&o, &a], &[]);
        x = g.layer_norm(&residual, &layer.out_norm, w.epsilon);
    }
    // Mean over the tokens, then unit length (as `mean_pool_normalised`).
    let axis_2 = g.init_i64("axis_2", &[1], &[2]);
    let axis_1 = g.init_i64("axis_1", &[1], &[1]);
    let mask = g.node("Unsqueeze", &["attention_mask", &axis_2], &[]);
    let masked = g.node("Mul", &[&x, &mask], &[]);
    let summed = g.node("ReduceSum", &[&masked, &axis_1], &[int_attr("keepdims", 0)]);
    let counts = g.node("ReduceSum", &[&mask, &axis_1], &[int_attr("keepdims", 0)]);
    let tiny_count = g.init_f32("tiny_count", &[], &[1e-9]);
    let counts = g.node("Max", &[&counts, &tiny_count], &[]);
    let mean = g.node("Div", &[&summed, &counts], &[]);
    let norm = g.node("ReduceL2", &[&mean, &axis_1], &[int_attr("keepdims", 1)]);
    let tiny_norm = g.init_f32("tiny_norm", &[], &[1e-12]);
    let norm = g.node("Max", &[&norm, &tiny_norm], &[]);
    g.node_named("Div", &[&mean, &norm], "embedding", &[]);
    g.finish()
}

/// Builds a graph node by node, naming intermediate values.
struct GraphBuilder {
    precision: Precision,
    nodes: Vec<proto::NodeProto>,
    initializers: Vec<proto::TensorProto>,
    next: usize,
}

impl GraphBuilder {
    fn new(precision: Precision) -> Self {
        GraphBuilder { precision, nodes: Vec::new(), initializers: Vec::new(), next: 0 }
    }

    fn init(&mut self, name: &str, dims: &[i64], data_type: i32, raw_data: Vec<u8>) -> String {
        self.initializers.push(proto::TensorProto { dims: dims.to_vec(), data_type, name: name.into(), raw_data });
        name.into()
    }

    fn init_f32(&mut self, name: &str, dims: &[i64], values: &[f32]) -> String {
        self.init(name, dims, data_type::FLOAT, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    fn init_i64(&mut self, name: &str, dims: &[i64], values: &[i64]) -> String {
        self.init(name, dims, data_type::INT64, values.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    fn init_i8(&mut self, name: &str, dims: &[i64], values: &[i8]) -> String {
        self.init(name, dims, data_type::INT8, values.iter().map(|&v| v as u8).collect())
    }

    fn node(&mut self, op: &str, inputs: &[&str], attributes: &[proto::AttributeProto]) -> String {
        self.next += 1;
        let output = format!("{}_{}", op.to_lowercase(), self.next);
        self.node_named(op, inputs, &output, attributes)
    }

    fn node_named(&mut self, op: &str, inputs: &[&str], output: &str, attributes: &[proto::AttributeProto]) -> String {
        let domain = if matches!(op, "DynamicQuantizeMatMul" | "MatMulNBits") { MS_DOMAIN } else { "" };
        self.nodes.push(proto::NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            name: format!("n{}", self.nodes.len()),
            op_type: op.into(),
            attribute: attributes.to_vec(),
            domain: domain.into(),
        });
        output.into()
    }

    fn layer_norm(&mut self, x: &str, w: &NormWeights, epsilon: f32) -> String {
        self.next += 1;
        let n = self.next;
        let d = w.gamma.len() as i64;
        let gamma = self.init_f32(&format!("norm{n}.gamma"), &[d], &w.gamma);
        let beta = self.init_f32(&format!("norm{n}.beta"), &[d], &w.beta);
        let attrs = [int_attr("axis", -1), float_attr("epsilon", epsilon)];
        self.node("LayerNormalization", &[x, &gamma, &beta], &attrs)
    }

    /// `x W + b`, in float or with int8 weights per output channel.
    fn linear(&mut self, name: &str, x: &str, w: &LinearWeights) -> String {
        let dims = [w.d_in as i64, w.d_out as i64];
        let bias = self.init_f32(&format!("{name}.bias"), &[w.d_out as i64], &w.bias);
        match self.precision {
            Precision::Fp32 => {
                let weight = self.init_f32(&format!("{name}.weight"), &dims, &w.weight);
                let product = self.node("MatMul", &[x, &weight], &[]);
                self.node("Add", &[&product, &bias], &[])
            }
            Precision::Int8 { reduced } => {
                let (q, scales) = quantize_per_column(&w.weight, w.d_in, w.d_out, if reduced { 63 } else { 127 });
                let weight = self.init_i8(&format!("{name}.weight_int8"), &dims, &q);
                let scales = self.init_f32(&format!("{name}.weight_scale"), &[w.d_out as i64], &scales);
                let zeros = self.init_i8(&format!("{name}.weight_zero"), &[w.d_out as i64], &vec![0; w.d_out]);
                self.node("DynamicQuantizeMatMul", &[x, &weight, &scales, &zeros, &bias], &[])
            }
            Precision::Int8Blocks { block } => {
                let (q, scales) = quantize_blocks(&w.weight, w.d_in, w.d_out, block);
                let k_blocks = w.d_in.div_ceil(block);
                let weight = self.init(&format!("{name}.weight_blocks"), &[w.d_out as i64, k_blocks as i64, block as i64], data_type::UINT8, q);
                let scales = self.init_f32(&format!("{name}.weight_scales"), &[(w.d_out * k_blocks) as i64], &scales);
                let attrs = [
                    int_attr("K", w.d_in as i64),
                    int_attr("N", w.d_out as i64),
                    int_attr("bits", 8),
                    int_attr("block_size", block as i64),
                    int_attr("accuracy_level", 4),
                ];
                self.node("MatMulNBits", &[x, &weight, &scales, "", "", &bias], &attrs)
            }
        }
    }

    fn finish(self) -> ModelProto {
        let tensor = |name: &str, elem_type: i32, dims: &[&str]| proto::ValueInfoProto {
            name: name.into(),
            r#type: Some(proto::TypeProto {
                tensor_type: Some(proto::TensorTypeProto {
                    elem_type,
                    shape: Some(proto::TensorShapeProto {
                        dim: dims.iter().map(|d| proto::Dimension { dim_param: d.to_string() }).collect(),
                    }),
                }),
            }),
        };
        let mut opset_import = vec![proto::OperatorSetIdProto { domain: String::new(), version: OPSET }];
        if self.precision != Precision::Fp32 {
            opset_import.push(proto::OperatorSetIdProto { domain: MS_DOMAIN.into(), version: 1 });
        }
        ModelProto {
            ir_version: IR_VERSION,
            producer_name: "xmc".into(),
            producer_version: env!("CARGO_PKG_VERSION").into(),
            graph: Some(proto::GraphProto {
                node: self.nodes,
                name: "sentence_encoder".into(),
                initializer: self.initializers,
                input: vec![
                    tensor("input_ids", data_type::INT64, &["batch", "length"]),
                    tensor("attention_mask", data_type::FLOAT, &["batch", "length"]),
                ],
                output: vec![tensor("embedding", data_type::FLOAT, &["batch", "hidden"])],
            }),
            opset_import,
        }
    }
}

/// Symmetric int8 per output column of a row-major `[rows, cols]` matrix: the values and each
/// column's scale (`w ≈ q * scale`), `limit` the largest magnitude used.
pub fn quantize_per_column(weight: &[f32], rows: usize, cols: usize, limit: i32) -> (Vec<i8>, Vec<f32>) {
    let mut max = vec![0f32; cols];
    for row in weight.chunks_exact(cols).take(rows) {
        for (m, &v) in max.iter_mut().zip(row) {
            *m = m.max(v.abs());
        }
    }
    let scales: Vec<f32> = max.iter().map(|&m| if m > 0.0 { m / limit as f32 } else { 1.0 }).collect();
    let q = weight
        .chunks_exact(cols)
        .flat_map(|row| row.iter().zip(&scales).map(|(&v, &s)| (v / s).round().clamp(-(limit as f32), limit as f32) as i8))
        .collect();
    (q, scales)
}

/// 8-bit blocks of `block` along the input for each output column of a row-major `[rows, cols]`
/// matrix, as `MatMulNBits` stores them: `[cols][blocks][block]` bytes, each value offset by 128
/// (the default zero point), and a scale per (column, block); the last block zero-padded.
pub fn quantize_blocks(weight: &[f32], rows: usize, cols: usize, block: usize) -> (Vec<u8>, Vec<f32>) {
    let blocks = rows.div_ceil(block);
    let mut q = vec![128u8; cols * blocks * block];
    let mut scales = vec![1f32; cols * blocks];
    for c in 0..cols {
        for b in 0..blocks {
            let ks = b * block..((b + 1) * block).min(rows);
            let max = ks.clone().map(|k| weight[k * cols + c].abs()).fold(0f32, f32::max);
            let scale = if max > 0.0 { max / 127.0 } else { 1.0 };
            scales[c * blocks + b] = scale;
            for k in ks {
                let v = (weight[k * cols + c] / scale).round().clamp(-127.0, 127.0) as i32;
                q[(c * blocks + b) * block + (k - b * block)] = (v + 128) as u8;
            }
        }
    }
    (q, scales)
}

fn int_attr(name: &str, i: i64) -> proto::AttributeProto {
    proto::AttributeProto { name: name.into(), i, r#type: attribute_type::INT, ..Default::default() }
}

fn float_attr(name: &str, f: f32) -> proto::AttributeProto {
    proto::AttributeProto { name: name.into(), f, r#type: attribute_type::FLOAT, ..Default::default() }
}

fn ints_attr(name: &str, ints: &[i64]) -> proto::AttributeProto {
    proto::AttributeProto { name: name.into(), ints: ints.to_vec(), r#type: attribute_type::INTS, ..Default::default() }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_column_quantization_keeps_each_column_within_half_a_step() {
        // Two columns of very different ranges: a per-tensor scale would flatten the second.
        let w = [1.0, 0.01, -0.5, -0.02, 0.25, 0.005];
        let (q, scales) = quantize_per_column(&w, 3, 2, 127);
        assert_eq!(scales.len(), 2);
        assert!((scales[0] - 1.0 / 127.0).abs() < 1e-7 && (scales[1] - 0.02 / 127.0).abs() < 1e-9, "{scales:?}");
        for (i, (&v, &qv)) in w.iter().zip(&q).enumerate() {
            let back = qv as f32 * scales[i % 2];
            assert!((back - v).abs() <= scales[i % 2] / 2.0 + 1e-9, "{v} came back as {back}");
        }
        assert_eq!(q[0], 127);
        assert_eq!(q[3], -127);
        let (q7, _) = quantize_per_column(&w, 3, 2, 63);
        assert!(q7.iter().all(|&v| (-63..=63).contains(&v)));
    }

    #[test]
    fn a_zero_column_gets_a_unit_scale_not_a_division_by_zero() {
        let (q, scales) = quantize_per_column(&[0.0, 1.0, 0.0, -1.0], 2, 2, 127);
        assert_eq!(scales[0], 1.0);
        assert_eq!((q[0], q[2]), (0, 0));
    }
}
