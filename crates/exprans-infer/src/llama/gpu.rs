//! The Llama-family model on wgpu, weights held plain, decoded once or fused
//! ([`WeightMode`]): the three run the same kernels in the same order, so their logits are
//! bit-identical.
//!
//! A forward step of `T` tokens is one submission per chunk of at most
//! [`GpuLlama::max_batch`] tokens: every kernel of every layer, then the logits of the last token
//! and the matrices' error flags are read back.

use exprans::gpu::sync as wait;
use exprans::{quote, Error, Result};

use super::{CausalLm, LlamaConfig, EMBEDDING, FINAL_NORM};
use crate::checkpoint::TensorSource;
use crate::context::GpuContext;
use crate::matvec::{buffer, upload, CallBuffers, Dtype16, MatrixCall, MatrixOp};
use crate::ops::{OpBuffers, OpCall};
use crate::shaders::{Module, MAX_HEAD_DIM, OP_ROPE, WORKGROUP_SIZE};
use crate::weights::{WeightMode, Weights};

/// Uniform parameters of one step of shaders/llama_ops.wgsl; mirrors `struct LlamaOp`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct LlamaOpParams {
    pub(crate) tokens: u32,
    pub(crate) width: u32,
    pub(crate) heads: u32,
    pub(crate) kv_heads: u32,
    pub(crate) head_dim: u32,
    pub(crate) pos0: u32,
    pub(crate) dst_row0: u32,
    pub(crate) src_row0: u32,
    pub(crate) dtype: u32,
    pub(crate) flags: u32,
    pub(crate) eps: f32,
    pub(crate) scale: f32,
}

/// The entry points of shaders/llama_ops.wgsl, in the module's order.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kernel {
    RmsNorm = 0,
    RopeRows = 1,
    Attention = 2,
    SiluMul = 3,
    Add = 4,
}

/// Where an op's rows go, relative to the step's tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Rows {
    /// Row `t` for token `t`.
    Step,
    /// Row `pos0 + t` (the KV caches).
    Cache,
    /// Only the step's last token, into row 0 (the final norm).
    Last,
}

/// One bound op of the forward pass.
#[derive(Clone, Debug)]
struct LlamaOp {
    kernel: Kernel,
    rows: Rows,
    call: OpCall<LlamaOpParams>,
}

impl LlamaOp {
    fn params(&self, tokens: u32, pos0: u32) -> LlamaOpParams {
        let mut p = self.call.params;
        p.pos0 = pos0;
        match self.rows {
            Rows::Step => p.tokens = tokens,
            Rows::Cache => {
                p.tokens = tokens;
                p.dst_row0 = pos0;
            }
            Rows::Last => {
                p.tokens = 1;
                p.src_row0 = tokens - 1;
            }
        }
        p
    }

    fn grid(&self, p: &LlamaOpParams, max_groups: u32) -> [u32; 3] {
        match self.kernel {
            Kernel::RmsNorm | Kernel::RopeRows => [p.tokens, 1, 1],
            Kernel::Attention => [p.tokens, p.heads, 1],
            Kernel::SiluMul | Kernel::Add => {
                let groups = (p.tokens * p.width).div_ceil(WORKGROUP_SIZE);
                let x = groups.min(max_groups);
                [x, groups.div_ceil(x.max(1)), 1]
            }
        }
    }
}

/// One step of the forward pass.
#[derive(Clone, Debug)]
enum Step {
    /// A matrix call, and whether it runs for the last token only (the logits).
    Matrix(MatrixCall, bool),
    Op(LlamaOp),
}

/// The activation buffers (`[max_batch][width]` f32 each) and the caches.
#[derive(Debug)]
struct Buffers {
    ids: wgpu::Buffer,
    /// Residual stream.
    x: wgpu::Buffer,
    /// Normalized input of a block.
    n: wgpu::Buffer,
    q: wgpu::Buffer,
    q_rot: wgpu::Buffer,
    k: wgpu::Buffer,
    v: wgpu::Buffer,
    att: wgpu::Buffer,
    /// Output of o_proj and down_proj.
    proj: wgpu::Buffer,
    gate: wgpu::Buffer,
    up: wgpu::Buffer,
    act: wgpu::Buffer,
    /// Final norm of the last token, `[hidden]`.
    last: wgpu::Buffer,
    logits: wgpu::Buffer,
    rope: wgpu::Buffer,
    /// Per layer, `[context][kv_width]`.
    keys: Vec<wgpu::Buffer>,
    values: Vec<wgpu::Buffer>,
    /// Two u32 error slots per matrix call.
    flags: wgpu::Buffer,
    readback: wgpu::Buffer,
}

impl Buffers {
    /// GPU memory of activations and caches (not weights).
    fn bytes(&self) -> u64 {
        let mut all = vec![
            &self.ids,
            &self.x,
            &self.n,
            &self.q,
            &self.q_rot,
            &self.k,
            &self.v,
            &self.att,
            &self.proj,
            &self.gate,
            &self.up,
            &self.act,
            &self.last,
            &self.logits,
            &self.rope,
            &self.flags,
        ];
        all.extend(self.keys.iter().chain(&self.values));
        all.iter().map(|b| b.size()).sum()
    }
}

/// The model on the GPU, weights loaded, with a KV cache of [`GpuLlama::context`] positions.
#[derive(Debug)]
pub struct GpuLlama {
    device: wgpu::Device,
    queue: wgpu::Queue,
    config: LlamaConfig,
    mode: WeightMode,
    context: usize,
    max_batch: usize,
    max_groups: u32,
    weights: Weights,
    buffers: Buffers,
    steps: Vec<Step>,
    /// The matrix of each matrix call, in flag-slot order.
    matrix_names: Vec<String>,
}

/// Tokens one submission runs at most (prefill runs longer prompts in chunks).
pub const MAX_BATCH: usize = 128;

impl GpuLlama {
    /// Loads the model from `source` onto the GPU, weights held as `mode` says (`Decoded` and
    /// `Fused` need a compressed model; `Fused` needs its matrices in whole-row blocks, made by
    /// `exprans compress --rows-per-block N`), with a cache of `context` positions (at most the
    /// model's).
    pub async fn load<'a>(
        gpu: &GpuContext,
        config: &LlamaConfig,
        source: &impl TensorSource<'a>,
        mode: WeightMode,
        context: usize,
    ) -> Result<GpuLlama> {
        if config.head_dim > MAX_HEAD_DIM as usize {
            return Err(Error::invalid(format!(
                "head_dim {} is larger than the GPU attention kernel's {MAX_HEAD_DIM}",
                config.head_dim
            )));
        }
        let context = context.min(config.max_positions);
        if context == 0 {
            return Err(Error::invalid("a context of 0 positions holds no token"));
        }
        let tensors = config.checked_tensors(source)?;
        let limit = gpu.device().limits().max_storage_buffer_binding_size;
        for (name, info) in &tensors {
            let bytes = info.shape.iter().product::<u64>() * 2;
            if bytes > limit {
                return Err(Error::invalid(format!(
                    "tensor {}: {bytes} bytes exceed the GPU's {limit}-byte storage binding limit",
                    quote(name)
                )));
            }
        }
        let weights = Weights::load(gpu, &tensors, source, mode).await?;
        let ops = gpu.op_kernels(Module::LlamaOps).await?;
        let lm_head = config.lm_head_name(source);
        let (model, errors) = wait::capture(gpu.device(), "building the forward pass", || {
            Self::build(gpu, &ops, config, mode, weights, context, lm_head)
        });
        errors.await?;
        model
    }

    #[allow(clippy::too_many_arguments)]
    fn build(
        gpu: &GpuContext,
        ops: &crate::ops::OpKernels,
        config: &LlamaConfig,
        mode: WeightMode,
        weights: Weights,
        context: usize,
        lm_head: &str,
    ) -> Result<GpuLlama> {
        let device = gpu.device();
        let c = config;
        let batch = MAX_BATCH.min(context);
        let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
        let act =
            |label: &str, width: usize| buffer(device, label, (4 * batch * width) as u64, storage);
        let matrix_calls = 2 + 7 * c.layers;
        let cache = |label: &str| {
            (0..c.layers)
                .map(|_| buffer(device, label, (4 * context * c.kv_width()) as u64, storage))
                .collect()
        };
        let b = Buffers {
            ids: buffer(
                device,
                "exprans token ids",
                4 * batch as u64,
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
            ),
            x: act("exprans residual", c.hidden),
            n: act("exprans normalized", c.hidden),
            q: act("exprans q", c.q_width()),
            q_rot: act("exprans q rotated", c.q_width()),
            k: act("exprans k", c.kv_width()),
            v: act("exprans v", c.kv_width()),
            att: act("exprans attention", c.q_width()),
            proj: act("exprans projection", c.hidden),
            gate: act("exprans gate", c.intermediate),
            up: act("exprans up", c.intermediate),
            act: act("exprans swiglu", c.intermediate),
            last: buffer(device, "exprans last", 4 * c.hidden as u64, storage),
            logits: buffer(device, "exprans logits", 4 * c.vocab as u64, storage),
            rope: upload(
                device,
                "exprans rope table",
                bytemuck::cast_slice(&c.rope_table(context)),
            ),
            keys: cache("exprans key cache"),
            values: cache("exprans value cache"),
            flags: buffer(
                device,
                "exprans matrix flags",
                8 * matrix_calls as u64,
                storage | wgpu::BufferUsages::COPY_DST,
            ),
            readback: buffer(
                device,
                "exprans readback",
                4 * c.vocab as u64 + 8 * matrix_calls as u64,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            ),
        };

        let mut steps = Vec::new();
        let mut matrix_names: Vec<String> = Vec::new();
        let matrix = |name: &str| {
            weights
                .matrices
                .get(name)
                .ok_or_else(|| Error::invalid(format!("model has no matrix {}", quote(name))))
        };
        let vector = |name: &str| weights.vectors.get(name).map(|(_, b)| b);
        let dtype = matrix(EMBEDDING)?.dtype();
        let mut matrix_step = |steps: &mut Vec<Step>,
                               name: &str,
                               op: MatrixOp,
                               input: &wgpu::Buffer,
                               output: &wgpu::Buffer,
                               last_only: bool|
         -> Result<()> {
            let call = gpu.matrix_kernels().call(
                device,
                matrix(name)?,
                op,
                CallBuffers {
                    input,
                    output,
                    flags: &b.flags,
                    flag_index: matrix_names.len() as u32,
                },
            );
            matrix_names.push(name.to_string());
            steps.push(Step::Matrix(call, last_only));
            Ok(())
        };
        let params = |width: usize, flags: u32| LlamaOpParams {
            width: width as u32,
            heads: c.heads as u32,
            kv_heads: c.kv_heads as u32,
            head_dim: c.head_dim as u32,
            dtype: match dtype {
                Dtype16::Bf16 => crate::shaders::DTYPE_BF16,
                Dtype16::F16 => crate::shaders::DTYPE_F16,
            },
            flags,
            eps: c.rms_norm_eps,
            scale: 1.0 / (c.head_dim as f32).sqrt(),
            ..Default::default()
        };
        let op = |kernel: Kernel, rows: Rows, p: LlamaOpParams, buffers: OpBuffers| {
            Step::Op(LlamaOp {
                kernel,
                rows,
                call: ops.call(device, kernel as usize, p, buffers),
            })
        };
        let norm = |gamma: &str, input, output, rows| -> Result<Step> {
            let gamma = vector(gamma)
                .ok_or_else(|| Error::invalid(format!("model has no vector {}", quote(gamma))))?;
            let buffers = OpBuffers {
                a: Some(input),
                gamma: Some(gamma),
                out: Some(output),
                ..Default::default()
            };
            Ok(op(Kernel::RmsNorm, rows, params(c.hidden, 0), buffers))
        };
        let elementwise = |kernel, width, a: &wgpu::Buffer, bb: Option<&wgpu::Buffer>, out| {
            let buffers = OpBuffers {
                a: Some(a),
                b: bb,
                out: Some(out),
                ..Default::default()
            };
            op(kernel, Rows::Step, params(width, 0), buffers)
        };

        matrix_step(
            &mut steps,
            EMBEDDING,
            MatrixOp::Gather { accumulate: false },
            &b.ids,
            &b.x,
            false,
        )?;
        for l in 0..c.layers {
            let name = |part: &str| format!("model.layers.{l}.{part}");
            let mut linear = |steps: &mut Vec<Step>, part: &str, input, output| {
                let op = MatrixOp::Matvec {
                    bias: vector(&name(&format!("{part}.bias"))),
                    gelu: false,
                };
                matrix_step(
                    steps,
                    &name(&format!("{part}.weight")),
                    op,
                    input,
                    output,
                    false,
                )
            };
            steps.push(norm(
                &name("input_layernorm.weight"),
                &b.x,
                &b.n,
                Rows::Step,
            )?);
            linear(&mut steps, "self_attn.q_proj", &b.n, &b.q)?;
            linear(&mut steps, "self_attn.k_proj", &b.n, &b.k)?;
            linear(&mut steps, "self_attn.v_proj", &b.n, &b.v)?;
            let rope = |input, output, rows, flags| {
                let buffers = OpBuffers {
                    a: Some(input),
                    c: Some(&b.rope),
                    out: Some(output),
                    ..Default::default()
                };
                let width = if rows == Rows::Step {
                    c.q_width()
                } else {
                    c.kv_width()
                };
                op(Kernel::RopeRows, rows, params(width, flags), buffers)
            };
            steps.push(rope(&b.q, &b.q_rot, Rows::Step, OP_ROPE));
            steps.push(rope(&b.k, &b.keys[l], Rows::Cache, OP_ROPE));
            steps.push(rope(&b.v, &b.values[l], Rows::Cache, 0));
            let attention = OpBuffers {
                a: Some(&b.q_rot),
                b: Some(&b.keys[l]),
                c: Some(&b.values[l]),
                out: Some(&b.att),
                ..Default::default()
            };
            steps.push(op(
                Kernel::Attention,
                Rows::Step,
                params(c.q_width(), 0),
                attention,
            ));
            linear(&mut steps, "self_attn.o_proj", &b.att, &b.proj)?;
            steps.push(elementwise(Kernel::Add, c.hidden, &b.proj, None, &b.x));
            steps.push(norm(
                &name("post_attention_layernorm.weight"),
                &b.x,
                &b.n,
                Rows::Step,
            )?);
            linear(&mut steps, "mlp.gate_proj", &b.n, &b.gate)?;
            linear(&mut steps, "mlp.up_proj", &b.n, &b.up)?;
            steps.push(elementwise(
                Kernel::SiluMul,
                c.intermediate,
                &b.gate,
                Some(&b.up),
                &b.act,
            ));
            linear(&mut steps, "mlp.down_proj", &b.act, &b.proj)?;
            steps.push(elementwise(Kernel::Add, c.hidden, &b.proj, None, &b.x));
        }
        steps.push(norm(FINAL_NORM, &b.x, &b.last, Rows::Last)?);
        let logits = MatrixOp::Matvec {
            bias: None,
            gelu: false,
        };
        matrix_step(&mut steps, lm_head, logits, &b.last, &b.logits, true)?;

        Ok(GpuLlama {
            device: device.clone(),
            queue: gpu.queue().clone(),
            config: config.clone(),
            mode,
            context,
            max_batch: batch,
            max_groups: device.limits().max_compute_workgroups_per_dimension,
            weights,
            buffers: b,
            steps,
            matrix_names,
        })
    }

    /// How the weights are held.
    pub fn mode(&self) -> WeightMode {
        self.mode
    }

    /// The configuration.
    pub fn config(&self) -> &LlamaConfig {
        &self.config
    }

    /// GPU memory held by the weights, in bytes.
    pub fn weight_bytes(&self) -> u64 {
        self.weights.bytes
    }

    /// GPU memory held by activations and the KV cache, in bytes.
    pub fn activation_bytes(&self) -> u64 {
        self.buffers.bytes()
    }

    /// Most tokens one submission runs.
    pub fn max_batch(&self) -> usize {
        self.max_batch
    }

    /// Records and submits every step for `tokens` tokens at `pos0`; `first` clears the error
    /// flags, `last` copies the logits and flags to the read-back buffer.
    fn submit_chunk(&self, ids: &[u32], pos0: usize, first: bool, last: bool) {
        let t = ids.len() as u32;
        let b = &self.buffers;
        self.queue
            .write_buffer(&b.ids, 0, bytemuck::cast_slice(ids));
        let mut encoder = self.device.create_command_encoder(&Default::default());
        if first {
            encoder.clear_buffer(&b.flags, 0, None);
        }
        {
            let mut pass = encoder.begin_compute_pass(&Default::default());
            for step in &self.steps {
                match step {
                    Step::Matrix(call, last_only) => {
                        let tokens = if *last_only { 1 } else { t };
                        call.set_tokens(&self.queue, tokens);
                        call.dispatch(&mut pass, tokens);
                    }
                    Step::Op(op) => {
                        let p = op.params(t, pos0 as u32);
                        op.call.set_params(&self.queue, &p);
                        op.call.dispatch(&mut pass, op.grid(&p, self.max_groups));
                    }
                }
            }
        }
        if last {
            let logits = 4 * self.config.vocab as u64;
            encoder.copy_buffer_to_buffer(&b.logits, 0, &b.readback, 0, logits);
            encoder.copy_buffer_to_buffer(&b.flags, 0, &b.readback, logits, b.flags.size());
        }
        self.queue.submit([encoder.finish()]);
    }
}

impl CausalLm for GpuLlama {
    fn context(&self) -> usize {
        self.context
    }

    fn vocab(&self) -> usize {
        self.config.vocab
    }

    /// Runs `ids` at positions `pos0 ..` in chunks of [`GpuLlama::max_batch`] tokens. A damaged
    /// coded stream (fused weights) gives [`Error::Corrupt`] naming the tensor.
    async fn forward(&mut self, ids: &[u32], pos0: usize) -> Result<Vec<f32>> {
        if ids.is_empty() || pos0 + ids.len() > self.context {
            return Err(Error::invalid(format!(
                "{} tokens at position {pos0} do not fit the context of {}",
                ids.len(),
                self.context
            )));
        }
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= self.config.vocab) {
            return Err(Error::invalid(format!(
                "token id {bad} is outside the vocabulary"
            )));
        }
        let chunks: Vec<&[u32]> = ids.chunks(self.max_batch).collect();
        let ((), errors) = wait::capture(&self.device, "running the model", || {
            let mut pos = pos0;
            for (i, chunk) in chunks.iter().enumerate() {
                self.submit_chunk(chunk, pos, i == 0, i + 1 == chunks.len());
                pos += chunk.len();
            }
        });
        errors.await?;
        let bytes = wait::read(&self.device, &self.buffers.readback).await?;
        let (logits, flags) = bytes.split_at(4 * self.config.vocab);
        let flags: Vec<u32> = bytemuck::pod_collect_to_vec(flags);
        for (name, slots) in self.matrix_names.iter().zip(flags.chunks_exact(2)) {
            exprans::gpu::check_flags([slots[0], slots[1]], 0).map_err(|e| e.in_tensor(name))?;
        }
        Ok(bytemuck::pod_collect_to_vec(logits))
    }
}
