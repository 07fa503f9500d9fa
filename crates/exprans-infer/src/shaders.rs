//! The WGSL modules of the inference kernels, assembled with the format constants.
//!
//! Every module is [`exprans::gpu::wgsl_constants`], then the inference constants of [`constants`], then
//! its files. The two matrix modules share `shaders/matvec_common.wgsl` (bindings, loops and
//! reductions) and differ only in their weight source (`matvec_plain.wgsl`, `matvec_fused.wgsl`,
//! which decodes with the core's rANS lane, `shaders/rans_lane.wgsl`).

use exprans::gpu::{WgslModule, RANS_LANE_WGSL};

/// A file of `shaders/`: its name and text.
type File = (&'static str, &'static str);

const RANS_LANE: File = ("rans_lane.wgsl", RANS_LANE_WGSL);
use exprans::gpu::wgsl_constants;
use exprans::LANES;

/// Most activation vectors one workgroup of the matrix kernels (`shaders/matvec_*.wgsl`)
/// multiplies at once; more tokens are tiled over the dispatch's z axis.
pub const MATVEC_MAX_BATCH: u32 = 8;

/// Rows of a block whose per-lane partial sums the matrix kernels keep in workgroup memory
/// before reducing them: `MATVEC_CHUNK_ROWS * MATVEC_MAX_BATCH * LANES` f32 (8 KiB), within
/// WebGPU's default 16 KiB.
pub const MATVEC_CHUNK_ROWS: u32 = 8;

/// Most tokens the GPU attention kernel (`shaders/bert_ops.wgsl`) handles: its scores row lives
/// in workgroup memory (2 KiB).
pub const ATTENTION_MAX_TOKENS: u32 = 512;

/// Keys the causal attention kernel (`shaders/llama_ops.wgsl`) scores at a time: one chunk of
/// scores lives in workgroup memory (4 KiB); longer contexts take several chunks (online
/// softmax), so the context length is not bounded by workgroup memory.
pub const ATTENTION_CHUNK: u32 = 1024;

/// Largest head size the causal attention kernel handles: each invocation of its workgroup
/// (`GPU_WORKGROUP_SIZE` = 64) accumulates `MAX_HEAD_DIM / 64` output values in registers.
pub const MAX_HEAD_DIM: u32 = 256;

/// Invocations per workgroup of the ops kernels: the core's `WORKGROUP_SIZE`
/// ([`exprans::gpu::wgsl_constants`]), checked against it by a test.
pub(crate) const WORKGROUP_SIZE: u32 = 64;

/// Output values each invocation of the causal attention kernel accumulates.
const ATTENTION_DIMS_PER_INVOCATION: u32 = MAX_HEAD_DIM / WORKGROUP_SIZE;

/// `LlamaOp::flags` bit: `rope_rows` rotates (otherwise it copies).
pub const OP_ROPE: u32 = 1;

const _: () = assert!(MATVEC_CHUNK_ROWS * MATVEC_MAX_BATCH * LANES as u32 * 4 <= 16 * 1024);

const HALF: File = (
    "half.wgsl",
    include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shaders/half.wgsl"
    )),
);
const MATVEC_COMMON: File = (
    "matvec_common.wgsl",
    include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shaders/matvec_common.wgsl"
    )),
);
const MATVEC_PLAIN: File = (
    "matvec_plain.wgsl",
    include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shaders/matvec_plain.wgsl"
    )),
);
const MATVEC_FUSED: File = (
    "matvec_fused.wgsl",
    include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shaders/matvec_fused.wgsl"
    )),
);
const LLAMA_OPS: File = (
    "llama_ops.wgsl",
    include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shaders/llama_ops.wgsl"
    )),
);
const BERT_OPS: File = (
    "bert_ops.wgsl",
    include_str!(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shaders/bert_ops.wgsl"
    )),
);

/// `Matvec::dtype` / `Op::dtype` of BF16 values.
pub const DTYPE_BF16: u32 = 0;
/// `Matvec::dtype` / `Op::dtype` of F16 values.
pub const DTYPE_F16: u32 = 1;
/// `Matvec::op` bit: add the bias.
pub const OP_BIAS: u32 = 1;
/// `Matvec::op` bit: apply GELU (erf form) after the bias.
pub const OP_GELU: u32 = 2;
/// `Matvec::op` bit: `gather_rows` adds the row to the output instead of overwriting it.
pub const OP_ACCUMULATE: u32 = 4;
/// `Op::flags` bit: layer_norm adds `b` to `a`.
pub const OP_RESIDUAL: u32 = 1;
/// Stride of one lane's partial sums in the matrix kernels' workgroup memory.
const PARTIAL_STRIDE: u32 = MATVEC_CHUNK_ROWS * MATVEC_MAX_BATCH;

/// How a kernel binds a buffer (group 0).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bind {
    Uniform,
    Storage { read_only: bool },
}

const READ: Bind = Bind::Storage { read_only: true };
const WRITE: Bind = Bind::Storage { read_only: false };

/// Bindings of the matrix kernels (shaders/matvec_common.wgsl): (binding, variable, kind). The
/// bind group layout is built from it, and a test checks it against the WGSL.
pub(crate) const MATVEC_BINDINGS: [(u32, &str, Bind); 7] = [
    (0, "mv", Bind::Uniform),
    (1, "packed", READ),
    (2, "x", READ),
    (3, "bias", READ),
    (4, "y", WRITE),
    (5, "flags", WRITE),
    (6, "ids", READ),
];

/// Bindings of the non-matrix kernels (shaders/bert_ops.wgsl, shaders/llama_ops.wgsl), as
/// [`MATVEC_BINDINGS`].
pub(crate) const OPS_BINDINGS: [(u32, &str, Bind); 7] = [
    (0, "op", Bind::Uniform),
    (1, "a", READ),
    (2, "b", READ),
    (3, "c", READ),
    (4, "gamma", READ),
    (5, "beta", READ),
    (6, "out", WRITE),
];

/// The inference constants as WGSL `const` declarations.
pub fn constants() -> String {
    format!(
        "// Generated from crates/exprans-infer/src/shaders.rs; do not edit.\n\
         const MATVEC_MAX_BATCH: u32 = {MATVEC_MAX_BATCH}u;\n\
         const MATVEC_CHUNK_ROWS: u32 = {MATVEC_CHUNK_ROWS}u;\n\
         const ATTENTION_MAX_TOKENS: u32 = {ATTENTION_MAX_TOKENS}u;\n\
         const ATTENTION_CHUNK: u32 = {ATTENTION_CHUNK}u;\n\
         const MAX_HEAD_DIM: u32 = {MAX_HEAD_DIM}u;\n\
         const OP_ROPE: u32 = {OP_ROPE}u;\n\
         const ATTENTION_DIMS_PER_INVOCATION: u32 = {ATTENTION_DIMS_PER_INVOCATION}u;\n\
         const LOWEST_SCORE: f32 = -3.0e38;\n\
         const DTYPE_BF16: u32 = {DTYPE_BF16}u;\n\
         const DTYPE_F16: u32 = {DTYPE_F16}u;\n\
         const OP_BIAS: u32 = {OP_BIAS}u;\n\
         const OP_GELU: u32 = {OP_GELU}u;\n\
         const OP_ACCUMULATE: u32 = {OP_ACCUMULATE}u;\n\
         const OP_RESIDUAL: u32 = {OP_RESIDUAL}u;\n\
         const PARTIAL_STRIDE: u32 = {PARTIAL_STRIDE}u;\n"
    )
}

/// One assembled WGSL module of the inference kernels (the core's module type; no subgroups, no
/// pipeline constants).
pub type InferModule = WgslModule;

/// The inference modules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Module {
    /// Matrix kernels over uncompressed weights.
    MatvecPlain,
    /// Matrix kernels decoding a coded entry on the fly.
    MatvecFused,
    /// LayerNorm, attention, pooling.
    BertOps,
    /// RMSNorm, RoPE, causal attention over a KV cache, SwiGLU, residual adds.
    LlamaOps,
}

impl Module {
    const ALL: [Module; 4] = [
        Module::MatvecPlain,
        Module::MatvecFused,
        Module::BertOps,
        Module::LlamaOps,
    ];

    /// The module's name.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Module::MatvecPlain => "exprans matvec (plain)",
            Module::MatvecFused => "exprans matvec (fused)",
            Module::BertOps => "exprans bert ops",
            Module::LlamaOps => "exprans llama ops",
        }
    }

    /// The module's entry points; an [`crate::ops::OpCall`]'s kernel index is a position here.
    pub(crate) fn entry_points(self) -> &'static [&'static str] {
        match self {
            Module::MatvecPlain | Module::MatvecFused => &["matvec", "gather_rows"],
            Module::BertOps => &["layer_norm", "attention", "mean_pool"],
            Module::LlamaOps => &["rms_norm", "rope_rows", "attention", "silu_mul", "add"],
        }
    }

    fn assemble(self) -> InferModule {
        let files: &[File] = match self {
            Module::MatvecPlain => &[HALF, RANS_LANE, MATVEC_COMMON, MATVEC_PLAIN],
            Module::MatvecFused => &[HALF, RANS_LANE, MATVEC_COMMON, MATVEC_FUSED],
            Module::BertOps => &[HALF, BERT_OPS],
            Module::LlamaOps => &[HALF, LLAMA_OPS],
        };
        let (name, entry_points) = (self.label(), self.entry_points());
        let mut source = wgsl_constants();
        source.push_str(&constants());
        // Whether the weight source must be read in lane order (matvec_common.wgsl).
        match self {
            Module::MatvecPlain => source.push_str("const SEQUENTIAL_CURSOR: bool = false;\n"),
            Module::MatvecFused => source.push_str("const SEQUENTIAL_CURSOR: bool = true;\n"),
            Module::BertOps | Module::LlamaOps => {}
        }
        for (_, text) in files {
            source.push('\n');
            source.push_str(text);
        }
        InferModule {
            name,
            source,
            files: files.iter().map(|(name, _)| *name).collect(),
            entry_points,
            uses_subgroups: false,
            coded_masks: Vec::new(),
        }
    }

    /// Compiles the module on `device` (errors surface through the caller's error scope).
    pub(crate) fn create(self, device: &wgpu::Device) -> wgpu::ShaderModule {
        let module = self.assemble();
        device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(module.name),
            source: wgpu::ShaderSource::Wgsl(module.source.into()),
        })
    }
}

/// Every inference module, assembled exactly as it is compiled (for validation tests).
pub fn wgsl_modules() -> Vec<InferModule> {
    Module::ALL.iter().map(|m| m.assemble()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bert::OpParams;
    use crate::llama::gpu::LlamaOpParams;
    use crate::matvec::MatvecParams;
    use exprans_testkit::rust_layout;
    use exprans_testkit::wgsl::{self, Access};

    fn expected(table: &[(u32, &str, Bind)]) -> Vec<(u32, u32, String, Access)> {
        let mut v: Vec<_> = table
            .iter()
            .map(|&(binding, name, bind)| {
                let access = match bind {
                    Bind::Uniform => Access::Uniform,
                    Bind::Storage { read_only: true } => Access::Read,
                    Bind::Storage { read_only: false } => Access::ReadWrite,
                };
                (0, binding, name.to_string(), access)
            })
            .collect();
        v.sort();
        v
    }

    #[test]
    fn workgroup_size_is_the_cores() {
        let line = format!("const WORKGROUP_SIZE: u32 = {WORKGROUP_SIZE}u;");
        assert!(wgsl_constants().contains(&line));
    }

    /// Each uniform struct the host writes has the WGSL layout of its mirror (names, offsets,
    /// size), and every bound variable is where the bind group layout puts it.
    #[test]
    fn mirrored_structs_and_bindings_match_the_rust_side() {
        let matvec = rust_layout!(
            MatvecParams,
            rows,
            cols,
            block_rows,
            tokens,
            dtype,
            op,
            block_count,
            flag_index,
            entry
        );
        let op = rust_layout!(OpParams, tokens, hidden, heads, dtype, flags, eps, scale, pad);
        let llama_op = rust_layout!(
            LlamaOpParams,
            tokens,
            width,
            heads,
            kv_heads,
            head_dim,
            pos0,
            dst_row0,
            src_row0,
            dtype,
            flags,
            eps,
            scale
        );
        for module in Module::ALL {
            let m = module.assemble();
            let naga_module = wgsl::parse(m.name, &m.source);
            let mut bound = wgsl::bindings(&naga_module);
            bound.sort();
            match module {
                Module::MatvecPlain | Module::MatvecFused => {
                    let layout = |name| wgsl::struct_layout(&naga_module, name);
                    // `PackedEntry` is rans_lane.wgsl's, checked against the packer in exprans.
                    assert_eq!(layout("Matvec"), Some(matvec.clone()), "{}", m.name);
                    assert_eq!(bound, expected(&MATVEC_BINDINGS), "{}", m.name);
                }
                Module::BertOps => {
                    assert_eq!(wgsl::struct_layout(&naga_module, "Op"), Some(op.clone()));
                    assert_eq!(bound, expected(&OPS_BINDINGS), "{}", m.name);
                }
                Module::LlamaOps => {
                    let layout = wgsl::struct_layout(&naga_module, "LlamaOp");
                    assert_eq!(layout, Some(llama_op.clone()));
                    assert_eq!(bound, expected(&OPS_BINDINGS), "{}", m.name);
                }
            }
        }
    }
}
