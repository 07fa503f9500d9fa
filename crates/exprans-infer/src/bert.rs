//! A BERT sentence encoder (all-MiniLM-L6-v2 and its kin: post-LayerNorm encoder, GELU, mean
//! pooling, L2 normalization, as sentence-transformers runs it), on the CPU and on the GPU.
//!
//! [`CpuBert`] is the reference: plain f32 arithmetic over the checkpoint's values.
//! [`GpuBert`] runs every step on wgpu, with the weights held in one of three ways
//! ([`WeightMode`]): uncompressed, decoded once on the GPU from the compressed file, or
//! compressed, decoded inside the matrix kernels at every use. The three run the same kernels in
//! the same order and give bit-identical embeddings.
//!
//! One forward pass of `T` tokens on the GPU, all in one submission:
//!
//! ```text
//! e  = word[ids] + position[0..T] + token_type[0]      (row gathers)
//! h  = LayerNorm(e)
//! per layer:  q, k, v = h Wq + bq, h Wk + bk, h Wv + bv
//!             c  = softmax(q k^T / sqrt(d)) v           (per head)
//!             h1 = LayerNorm(c Wo + bo + h)
//!             h  = LayerNorm(GELU(h1 Wi + bi) Wo2 + bo2 + h1)
//! embedding = normalize(mean over tokens of h)
//! ```

use std::collections::HashMap;

use super::checkpoint::{Checkpoint, TensorInfo};
use super::matvec::{self, buffer, CallBuffers, Dtype16, MatrixCall, MatrixOp};
use super::shaders::{Module, OP_RESIDUAL};
use crate::ops::{OpBuffers, OpCall, OpKernels};
use exprans::gpu::sync as wait;
use exprans::{Error, Result};

use crate::shaders::ATTENTION_MAX_TOKENS;

/// The architecture numbers of a BERT encoder (from its `config.json`).
#[derive(Clone, Debug, PartialEq)]
pub struct BertConfig {
    /// Hidden size.
    pub hidden: usize,
    /// Attention heads.
    pub heads: usize,
    /// Encoder layers.
    pub layers: usize,
    /// Feed-forward size.
    pub intermediate: usize,
    /// LayerNorm epsilon.
    pub layer_norm_eps: f32,
    /// Position embeddings, the most tokens a sequence may have.
    pub max_positions: usize,
}

#[derive(serde::Deserialize)]
struct ConfigJson {
    hidden_size: usize,
    num_attention_heads: usize,
    num_hidden_layers: usize,
    intermediate_size: usize,
    layer_norm_eps: f32,
    max_position_embeddings: usize,
    hidden_act: String,
    #[serde(default = "absolute")]
    position_embedding_type: String,
}

fn absolute() -> String {
    "absolute".into()
}

impl BertConfig {
    /// Reads a Hugging Face `config.json` of a BERT model with GELU and absolute positions.
    pub fn from_json(text: &str) -> Result<BertConfig> {
        let c: ConfigJson =
            serde_json::from_str(text).map_err(|e| Error::invalid(format!("config.json: {e}")))?;
        if c.hidden_act != "gelu" || c.position_embedding_type != "absolute" {
            return Err(Error::invalid(format!(
                "config.json: unsupported {} activation or {} positions",
                c.hidden_act, c.position_embedding_type
            )));
        }
        if c.num_attention_heads == 0 || !c.hidden_size.is_multiple_of(c.num_attention_heads) {
            return Err(Error::invalid(
                "config.json: heads do not divide the hidden size",
            ));
        }
        if c.hidden_size == 0 || c.intermediate_size == 0 || c.max_position_embeddings == 0 {
            return Err(Error::invalid(
                "config.json: zero hidden, intermediate or position size",
            ));
        }
        Ok(BertConfig {
            hidden: c.hidden_size,
            heads: c.num_attention_heads,
            layers: c.num_hidden_layers,
            intermediate: c.intermediate_size,
            layer_norm_eps: c.layer_norm_eps,
            max_positions: c.max_position_embeddings,
        })
    }

    /// Names of every tensor the encoder uses, matrices and vectors.
    pub fn tensor_names(&self) -> Vec<String> {
        self.tensor_shapes()
            .into_iter()
            .map(|(name, _)| name)
            .collect()
    }

    /// Every tensor the encoder uses with the shape it must have (`None`: any non-zero size,
    /// the vocabulary sizes, which config.json does not give here).
    fn tensor_shapes(&self) -> Vec<(String, Vec<Option<u64>>)> {
        let (hs, inner) = (Some(self.hidden as u64), Some(self.intermediate as u64));
        let mut shapes = vec![
            (EMBEDDING_TABLES[0].to_string(), vec![None, hs]),
            (
                EMBEDDING_TABLES[1].to_string(),
                vec![Some(self.max_positions as u64), hs],
            ),
            (EMBEDDING_TABLES[2].to_string(), vec![None, hs]),
        ];
        let norm = |shapes: &mut Vec<_>, prefix: &str| {
            for name in norm_names(prefix) {
                shapes.push((name, vec![hs]));
            }
        };
        norm(&mut shapes, "embeddings.LayerNorm");
        for l in 0..self.layers {
            for (linear, gelu) in LINEARS {
                // [out, in]: the feed-forward pair widens to `intermediate` and back.
                let (rows, cols) = match (linear, gelu) {
                    (_, true) => (inner, hs),
                    ("output.dense", _) => (hs, inner),
                    _ => (hs, hs),
                };
                let name = format!("encoder.layer.{l}.{linear}");
                shapes.push((format!("{name}.weight"), vec![rows, cols]));
                shapes.push((format!("{name}.bias"), vec![rows]));
            }
            for n in LAYER_NORMS {
                norm(&mut shapes, &format!("encoder.layer.{l}.{n}"));
            }
        }
        shapes
    }

    /// Dtype and shape of every tensor the encoder uses, checked against this configuration.
    fn checked_tensors(&self, checkpoint: &Checkpoint) -> Result<Vec<(String, TensorInfo)>> {
        self.tensor_shapes()
            .into_iter()
            .map(|(name, want)| {
                let info = checkpoint.info(&name)?;
                let fits = info.shape.len() == want.len()
                    && info
                        .shape
                        .iter()
                        .zip(&want)
                        .all(|(&d, w)| d > 0 && w.is_none_or(|w| w == d));
                if !fits {
                    let want: Vec<String> = want
                        .iter()
                        .map(|w| w.map_or("N".into(), |w| w.to_string()))
                        .collect();
                    return Err(Error::invalid(format!(
                        "tensor '{name}': shape {:?}, the configuration needs [{}]",
                        info.shape,
                        want.join(", ")
                    )));
                }
                Ok((name, info))
            })
            .collect()
    }
}

/// Word, position and token-type embedding tables.
const EMBEDDING_TABLES: [&str; 3] = [
    "embeddings.word_embeddings.weight",
    "embeddings.position_embeddings.weight",
    "embeddings.token_type_embeddings.weight",
];

/// The linear layers of an encoder layer, in order, and whether GELU follows.
const LINEARS: [(&str, bool); 6] = [
    ("attention.self.query", false),
    ("attention.self.key", false),
    ("attention.self.value", false),
    ("attention.output.dense", false),
    ("intermediate.dense", true),
    ("output.dense", false),
];

/// The LayerNorms of an encoder layer, in order.
const LAYER_NORMS: [&str; 2] = ["attention.output.LayerNorm", "output.LayerNorm"];

fn norm_names(prefix: &str) -> [String; 2] {
    [format!("{prefix}.weight"), format!("{prefix}.bias")]
}

// ---------------------------------------------------------------------------------------------
// CPU reference

/// The encoder on the CPU in plain f32: the reference the GPU runs are compared with.
#[derive(Clone, Debug)]
pub struct CpuBert {
    config: BertConfig,
    tensors: HashMap<String, Vec<f32>>,
}

use crate::checkpoint::values_f32;

impl CpuBert {
    /// Reads the encoder's tensors from `checkpoint` (compressed ones are decoded on the CPU).
    pub fn load(config: &BertConfig, checkpoint: &Checkpoint) -> Result<CpuBert> {
        let mut tensors = HashMap::new();
        for (name, info) in config.checked_tensors(checkpoint)? {
            let values = values_f32(&name, &info.dtype, &checkpoint.bytes(&name)?)?;
            tensors.insert(name, values);
        }
        Ok(CpuBert {
            config: config.clone(),
            tensors,
        })
    }

    fn t(&self, name: &str) -> &[f32] {
        &self.tensors[name]
    }

    /// The sentence embedding of token ids `ids` (`[CLS] ... [SEP]`): 1 to `max_positions`
    /// ids, each inside the vocabulary.
    pub fn embed(&self, ids: &[u32]) -> Result<Vec<f32>> {
        let c = &self.config;
        let (n, hs) = (ids.len(), c.hidden);
        let [word, pos, kind] = EMBEDDING_TABLES.map(|name| self.t(name));
        if n == 0 || n > c.max_positions {
            return Err(Error::invalid(format!(
                "{n} tokens: a forward pass takes 1 to {}",
                c.max_positions
            )));
        }
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= word.len() / hs) {
            return Err(Error::invalid(format!(
                "token id {bad} is outside the vocabulary"
            )));
        }
        let mut h = vec![0f32; n * hs];
        for (t, &id) in ids.iter().enumerate() {
            for i in 0..hs {
                h[t * hs + i] = word[id as usize * hs + i] + pos[t * hs + i] + kind[i];
            }
        }
        let ln = |x: &[f32], prefix: &str| {
            let [w, b] = norm_names(prefix);
            layer_norm(x, self.t(&w), self.t(&b), hs, c.layer_norm_eps)
        };
        h = ln(&h, "embeddings.LayerNorm");
        for l in 0..c.layers {
            let linear = |x: &[f32], i: usize| {
                let name = format!("encoder.layer.{l}.{}", LINEARS[i].0);
                let y = linear(
                    x,
                    self.t(&format!("{name}.weight")),
                    self.t(&format!("{name}.bias")),
                );
                match LINEARS[i].1 {
                    true => y.into_iter().map(gelu).collect(),
                    false => y,
                }
            };
            let (q, k, v) = (linear(&h, 0), linear(&h, 1), linear(&h, 2));
            let ctx = attention(&q, &k, &v, n, hs, c.heads);
            let a = add(&linear(&ctx, 3), &h);
            let h1 = ln(&a, &format!("encoder.layer.{l}.{}", LAYER_NORMS[0]));
            let f = linear(&linear(&h1, 4), 5);
            h = ln(
                &add(&f, &h1),
                &format!("encoder.layer.{l}.{}", LAYER_NORMS[1]),
            );
        }
        let mut mean = vec![0f32; hs];
        for t in 0..n {
            for i in 0..hs {
                mean[i] += h[t * hs + i];
            }
        }
        mean.iter_mut().for_each(|m| *m /= n as f32);
        let norm = mean.iter().map(|m| m * m).sum::<f32>().sqrt().max(1e-12);
        Ok(mean.into_iter().map(|m| m / norm).collect())
    }
}

fn add(a: &[f32], b: &[f32]) -> Vec<f32> {
    a.iter().zip(b).map(|(x, y)| x + y).collect()
}

/// `x [n][cols] -> x W^T + b`, W `[rows][cols]`.
fn linear(x: &[f32], w: &[f32], b: &[f32]) -> Vec<f32> {
    let rows = b.len();
    let cols = w.len() / rows;
    let mut y = Vec::with_capacity(x.len() / cols * rows);
    for xt in x.chunks_exact(cols) {
        for (wr, br) in w.chunks_exact(cols).zip(b) {
            y.push(wr.iter().zip(xt).map(|(a, b)| a * b).sum::<f32>() + br);
        }
    }
    y
}

fn layer_norm(x: &[f32], gamma: &[f32], beta: &[f32], hs: usize, eps: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(x.len());
    for row in x.chunks_exact(hs) {
        let mean = row.iter().sum::<f32>() / hs as f32;
        let var = row.iter().map(|v| (v - mean) * (v - mean)).sum::<f32>() / hs as f32;
        let inv = 1.0 / (var + eps).sqrt();
        out.extend((0..hs).map(|i| (row[i] - mean) * inv * gamma[i] + beta[i]));
    }
    out
}

fn attention(q: &[f32], k: &[f32], v: &[f32], n: usize, hs: usize, heads: usize) -> Vec<f32> {
    let d = hs / heads;
    let scale = 1.0 / (d as f32).sqrt();
    let mut out = vec![0f32; n * hs];
    for h in 0..heads {
        for i in 0..n {
            let qi = &q[i * hs + h * d..][..d];
            let scores: Vec<f32> = (0..n)
                .map(|j| {
                    let kj = &k[j * hs + h * d..][..d];
                    qi.iter().zip(kj).map(|(a, b)| a * b).sum::<f32>() * scale
                })
                .collect();
            let top = scores.iter().fold(f32::NEG_INFINITY, |m, &s| m.max(s));
            let e: Vec<f32> = scores.iter().map(|s| (s - top).exp()).collect();
            let z: f32 = e.iter().sum();
            for (j, p) in e.iter().enumerate() {
                for x in 0..d {
                    out[i * hs + h * d + x] += p / z * v[j * hs + h * d + x];
                }
            }
        }
    }
    out
}

/// GELU, erf form.
pub fn gelu(x: f32) -> f32 {
    (0.5 * x as f64 * (1.0 + erf(x as f64 / std::f64::consts::SQRT_2))) as f32
}

/// The error function (about 1e-15 accurate): a Maclaurin series below 2.5, the continued
/// fraction of erfc above.
pub fn erf(x: f64) -> f64 {
    let a = x.abs();
    let r = if a < 2.5 {
        let (x2, mut term, mut sum) = (a * a, a, a);
        for n in 1..100 {
            term *= -x2 / n as f64;
            let t = term / (2 * n + 1) as f64;
            sum += t;
            if t.abs() < 1e-17 {
                break;
            }
        }
        sum * std::f64::consts::FRAC_2_SQRT_PI
    } else {
        let mut f = a;
        for k in (1..=120).rev() {
            f = a + (k as f64 / 2.0) / f;
        }
        1.0 - (-a * a).exp() / (std::f64::consts::PI.sqrt() * f)
    };
    if x < 0.0 {
        -r
    } else {
        r
    }
}

// ---------------------------------------------------------------------------------------------
// GPU

pub use crate::weights::WeightMode;
use crate::weights::Weights;

/// Uniform parameters of one non-matrix step; mirrors `struct Op` in shaders/bert_ops.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct OpParams {
    pub(crate) tokens: u32,
    pub(crate) hidden: u32,
    pub(crate) heads: u32,
    pub(crate) dtype: u32,
    pub(crate) flags: u32,
    pub(crate) eps: f32,
    pub(crate) scale: f32,
    pub(crate) pad: u32,
}

/// The BERT steps of shaders/bert_ops.wgsl, in the order of its entry points.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum OpKind {
    LayerNorm = 0,
    Attention = 1,
    MeanPool = 2,
}

/// One bound BERT step and its kind (which sets its grid).
#[derive(Clone, Debug)]
struct BertOp {
    kind: OpKind,
    call: OpCall<OpParams>,
}

impl BertOp {
    fn new(
        ops: &OpKernels,
        device: &wgpu::Device,
        kind: OpKind,
        params: OpParams,
        buffers: OpBuffers,
    ) -> BertOp {
        BertOp {
            kind,
            call: ops.call(device, kind as usize, params, buffers),
        }
    }

    fn set_tokens(&self, queue: &wgpu::Queue, tokens: u32) {
        let params = OpParams {
            tokens,
            ..self.call.params
        };
        self.call.set_params(queue, &params);
    }

    fn dispatch(&self, pass: &mut wgpu::ComputePass, tokens: u32) {
        let groups = match self.kind {
            OpKind::LayerNorm => [tokens, 1, 1],
            OpKind::Attention => [tokens, self.call.params.heads, 1],
            OpKind::MeanPool => [1, 1, 1],
        };
        self.call.dispatch(pass, groups);
    }
}

pub use crate::context::GpuContext;

/// One step of the forward pass.
#[derive(Clone, Debug)]
enum Step {
    Matrix(MatrixCall),
    Op(BertOp),
}

/// The activation buffers, `[max_tokens][width]` f32 each, and the token position and type ids.
#[derive(Debug)]
struct Activations {
    /// Embedding sum, hidden state, attention q/k/v/context, dense outputs, post-attention
    /// hidden state, feed-forward inner activations.
    e: wgpu::Buffer,
    h: wgpu::Buffer,
    q: wgpu::Buffer,
    k: wgpu::Buffer,
    v: wgpu::Buffer,
    ctx: wgpu::Buffer,
    dense: wgpu::Buffer,
    h1: wgpu::Buffer,
    inner: wgpu::Buffer,
    positions: wgpu::Buffer,
    types: wgpu::Buffer,
}

/// The encoder on the GPU, weights loaded, ready for forward passes.
#[derive(Debug)]
pub struct GpuBert {
    device: wgpu::Device,
    queue: wgpu::Queue,
    config: BertConfig,
    mode: WeightMode,
    max_tokens: usize,
    vocab: u32,
    /// Token ids, `[max_tokens]` u32.
    ids: wgpu::Buffer,
    /// The sentence embedding, `[hidden]` f32.
    embedding: wgpu::Buffer,
    /// One error flag per matrix ([`MatrixCall`] flag slots), named by `matrix_names`.
    flags: wgpu::Buffer,
    matrix_names: Vec<String>,
    readback: wgpu::Buffer,
    steps: Vec<Step>,
    /// What the steps' bind groups use, held here.
    weights: Weights,
    activations: Activations,
}

impl GpuBert {
    /// Loads the encoder described by `config` from `checkpoint` onto the GPU, its weights held
    /// as `mode` says (`Decoded` and `Fused` need a compressed checkpoint; `Fused` needs its
    /// matrices in whole-row blocks).
    pub async fn load(
        gpu: &GpuContext,
        config: &BertConfig,
        checkpoint: &Checkpoint<'_>,
        mode: WeightMode,
    ) -> Result<GpuBert> {
        if mode.needs_compressed() && !checkpoint.is_compressed() {
            return Err(Error::invalid(format!(
                "weights held {} need a compressed checkpoint",
                mode.name()
            )));
        }
        let tensors = config.checked_tensors(checkpoint)?;
        let weights = Weights::load(gpu, &tensors, checkpoint, mode).await?;
        let ops = gpu.op_kernels(Module::BertOps).await?;
        let (model, errors) = wait::capture(gpu.device(), "building the forward pass", || {
            Self::build(gpu, &ops, config, mode, weights)
        });
        errors.await?;
        model
    }

    /// Allocates the activations and binds every step of the forward pass.
    fn build(
        gpu: &GpuContext,
        ops: &OpKernels,
        config: &BertConfig,
        mode: WeightMode,
        weights: Weights,
    ) -> Result<GpuBert> {
        let device = gpu.device();
        let (hs, max_tokens) = (
            config.hidden,
            config.max_positions.min(ATTENTION_MAX_TOKENS as usize),
        );
        let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
        let positions: Vec<u32> = (0..max_tokens as u32).collect();
        let act = |label: &str, width: usize| {
            buffer(device, label, (4 * max_tokens * width) as u64, storage)
        };
        let a = Activations {
            e: act("exprans embeddings", hs),
            h: act("exprans hidden", hs),
            q: act("exprans q", hs),
            k: act("exprans k", hs),
            v: act("exprans v", hs),
            ctx: act("exprans context", hs),
            dense: act("exprans dense", hs),
            h1: act("exprans hidden 1", hs),
            inner: act("exprans inner", config.intermediate),
            positions: matvec::upload(
                device,
                "exprans positions",
                bytemuck::cast_slice(&positions),
            ),
            // Token type 0 for every token (single sentences).
            types: matvec::upload(device, "exprans token types", &vec![0; 4 * max_tokens]),
        };
        let id_usage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST;
        let ids = buffer(device, "exprans token ids", 4 * max_tokens as u64, id_usage);
        let embedding = buffer(device, "exprans embedding", 4 * hs as u64, storage);
        let matrix_count = 3 + LINEARS.len() * config.layers;
        let flags = buffer(
            device,
            "exprans matrix flags",
            8 * matrix_count as u64,
            storage | wgpu::BufferUsages::COPY_DST,
        );
        let readback = buffer(
            device,
            "exprans readback",
            4 * (hs + 2 * matrix_count) as u64,
            wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
        );

        let mut steps = Vec::new();
        let mut matrix_names = Vec::new();
        let matrix = |name: &str| &weights.matrices[name];
        let vector = |name: &str| &weights.vectors[name];
        let mut matrix_step = |steps: &mut Vec<Step>, name: &str, op: MatrixOp, input, output| {
            let call = gpu.matrix_kernels().call(
                device,
                matrix(name),
                op,
                CallBuffers {
                    input,
                    output,
                    flags: &flags,
                    flag_index: matrix_names.len() as u32,
                },
            );
            matrix_names.push(name.to_string());
            steps.push(Step::Matrix(call));
        };
        let op_params = |dtype: Dtype16, flags| OpParams {
            hidden: hs as u32,
            heads: config.heads as u32,
            dtype: dtype.code(),
            flags,
            eps: config.layer_norm_eps,
            scale: 1.0 / ((hs / config.heads) as f32).sqrt(),
            ..Default::default()
        };
        let layer_norm = |prefix: &str, input, residual: Option<&wgpu::Buffer>, out| {
            let [w, b] = norm_names(prefix);
            let ((dtype, gamma), (_, beta)) = (vector(&w), vector(&b));
            let flags = if residual.is_some() { OP_RESIDUAL } else { 0 };
            let buffers = OpBuffers {
                a: Some(input),
                b: residual,
                gamma: Some(gamma),
                beta: Some(beta),
                out: Some(out),
                ..Default::default()
            };
            Step::Op(BertOp::new(
                ops,
                device,
                OpKind::LayerNorm,
                op_params(*dtype, flags),
                buffers,
            ))
        };

        // Embeddings: e = word[ids] + position[t] + token_type[0], then LayerNorm.
        for (i, (table, input)) in EMBEDDING_TABLES
            .iter()
            .zip([&ids, &a.positions, &a.types])
            .enumerate()
        {
            let op = MatrixOp::Gather { accumulate: i > 0 };
            matrix_step(&mut steps, table, op, input, &a.e);
        }
        steps.push(layer_norm("embeddings.LayerNorm", &a.e, None, &a.h));

        for l in 0..config.layers {
            let name = |part: &str| format!("encoder.layer.{l}.{part}");
            let mut linear = |steps: &mut Vec<Step>, i: usize, input, output| {
                let (part, gelu) = LINEARS[i];
                let bias = &vector(&name(&format!("{part}.bias"))).1;
                let op = MatrixOp::Matvec {
                    bias: Some(bias),
                    gelu,
                };
                matrix_step(steps, &name(&format!("{part}.weight")), op, input, output);
            };
            linear(&mut steps, 0, &a.h, &a.q);
            linear(&mut steps, 1, &a.h, &a.k);
            linear(&mut steps, 2, &a.h, &a.v);
            let attention = OpBuffers {
                a: Some(&a.q),
                b: Some(&a.k),
                c: Some(&a.v),
                out: Some(&a.ctx),
                ..Default::default()
            };
            // (Attention and pooling read no 16-bit values: the dtype is unused.)
            let params = op_params(Dtype16::Bf16, 0);
            steps.push(Step::Op(BertOp::new(
                ops,
                device,
                OpKind::Attention,
                params,
                attention,
            )));
            linear(&mut steps, 3, &a.ctx, &a.dense);
            steps.push(layer_norm(
                &name(LAYER_NORMS[0]),
                &a.dense,
                Some(&a.h),
                &a.h1,
            ));
            linear(&mut steps, 4, &a.h1, &a.inner);
            linear(&mut steps, 5, &a.inner, &a.dense);
            steps.push(layer_norm(
                &name(LAYER_NORMS[1]),
                &a.dense,
                Some(&a.h1),
                &a.h,
            ));
        }

        let pool = OpBuffers {
            a: Some(&a.h),
            out: Some(&embedding),
            ..Default::default()
        };
        let params = op_params(Dtype16::Bf16, 0);
        steps.push(Step::Op(BertOp::new(
            ops,
            device,
            OpKind::MeanPool,
            params,
            pool,
        )));

        Ok(GpuBert {
            device: device.clone(),
            queue: gpu.queue().clone(),
            config: config.clone(),
            mode,
            max_tokens,
            vocab: matrix(EMBEDDING_TABLES[0]).rows(),
            ids,
            embedding,
            flags,
            matrix_names,
            readback,
            steps,
            weights,
            activations: a,
        })
    }

    /// How the weights are held.
    pub fn mode(&self) -> WeightMode {
        self.mode
    }

    /// GPU memory held by the weights, in bytes (activations not included).
    pub fn weight_bytes(&self) -> u64 {
        self.weights.bytes
    }

    /// GPU memory held by the activation buffers, in bytes.
    pub fn activation_bytes(&self) -> u64 {
        let a = &self.activations;
        [
            &a.e,
            &a.h,
            &a.q,
            &a.k,
            &a.v,
            &a.ctx,
            &a.dense,
            &a.h1,
            &a.inner,
            &a.positions,
            &a.types,
        ]
        .iter()
        .map(|b| b.size())
        .sum()
    }

    /// Most tokens one forward pass takes.
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// The sentence embedding of token ids `ids` (`[CLS] ... [SEP]`): one forward pass in one
    /// submission, then the embedding is read back. A damaged coded stream gives
    /// [`Error::Corrupt`] naming the tensor. (`&mut`: passes share their buffers, so one runs at
    /// a time.)
    pub async fn embed(&mut self, ids: &[u32]) -> Result<Vec<f32>> {
        let tokens = ids.len();
        if tokens == 0 || tokens > self.max_tokens {
            return Err(Error::invalid(format!(
                "{tokens} tokens: a forward pass takes 1 to {}",
                self.max_tokens
            )));
        }
        if let Some(bad) = ids.iter().find(|&&i| i >= self.vocab) {
            return Err(Error::invalid(format!(
                "token id {bad} is outside the vocabulary"
            )));
        }
        let hs = self.config.hidden as u64;
        let t = tokens as u32;
        let ((), errors) = wait::capture(&self.device, "running the encoder", || {
            self.queue
                .write_buffer(&self.ids, 0, bytemuck::cast_slice(ids));
            let mut encoder = self.device.create_command_encoder(&Default::default());
            encoder.clear_buffer(&self.flags, 0, None);
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                for step in &self.steps {
                    match step {
                        Step::Matrix(call) => {
                            call.set_tokens(&self.queue, t);
                            call.dispatch(&mut pass, t);
                        }
                        Step::Op(call) => {
                            call.set_tokens(&self.queue, t);
                            call.dispatch(&mut pass, t);
                        }
                    }
                }
            }
            encoder.copy_buffer_to_buffer(&self.embedding, 0, &self.readback, 0, 4 * hs);
            encoder.copy_buffer_to_buffer(
                &self.flags,
                0,
                &self.readback,
                4 * hs,
                self.flags.size(),
            );
            self.queue.submit([encoder.finish()]);
        });
        errors.await?;
        let bytes = wait::read(&self.device, &self.readback).await?;
        let (embedding, flags) = bytes.split_at(4 * hs as usize);
        let flags: Vec<u32> = bytemuck::pod_collect_to_vec(flags);
        for (name, slots) in self.matrix_names.iter().zip(flags.chunks_exact(2)) {
            exprans::gpu::check_flags([slots[0], slots[1]], 0).map_err(|e| e.in_tensor(name))?;
        }
        Ok(bytemuck::pod_collect_to_vec(embedding))
    }
}

/// Cosine similarity of two vectors (f64 accumulation).
pub fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let dot: f64 = a.iter().zip(b).map(|(x, y)| *x as f64 * *y as f64).sum();
    let na: f64 = a.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    let nb: f64 = b.iter().map(|x| (*x as f64).powi(2)).sum::<f64>().sqrt();
    dot / (na * nb)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn erf_matches_known_values() {
        for (x, want) in [
            (0.0, 0.0),
            (0.5, 0.5204998778130465),
            (1.0, 0.8427007929497149),
            (2.0, 0.9953222650189527),
            (2.5, 0.999593047982555),
            (3.0, 0.9999779095030014),
            (-1.0, -0.8427007929497149),
        ] {
            assert!((erf(x) - want).abs() < 1e-14, "erf({x}) = {}", erf(x));
        }
    }
}
