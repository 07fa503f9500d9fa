//! The WGSL modules of the inference kernels, assembled with the format constants.
//!
//! Every module is `params::wgsl_constants()`, then the inference constants of [`constants`], then
//! its files. The two matrix modules share `shaders/matvec_common.wgsl` (bindings, loops and
//! reductions) and differ only in their weight source (`matvec_plain.wgsl`, `matvec_fused.wgsl`,
//! which decodes with the core's rANS lane, `shaders/rans_lane.wgsl`).

use exprans::gpu::RANS_LANE_WGSL;
use exprans::params::{wgsl_constants, ATTENTION_MAX_TOKENS, MATVEC_CHUNK_ROWS, MATVEC_MAX_BATCH};

const HALF: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shaders/half.wgsl"
));
const MATVEC_COMMON: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shaders/matvec_common.wgsl"
));
const MATVEC_PLAIN: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shaders/matvec_plain.wgsl"
));
const MATVEC_FUSED: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shaders/matvec_fused.wgsl"
));
const BERT_OPS: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../shaders/bert_ops.wgsl"
));

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

/// The inference constants as WGSL `const` declarations.
pub fn constants() -> String {
    format!(
        "// Generated from src/params.rs and src/infer/shaders.rs; do not edit.\n\
         const MATVEC_MAX_BATCH: u32 = {MATVEC_MAX_BATCH}u;\n\
         const MATVEC_CHUNK_ROWS: u32 = {MATVEC_CHUNK_ROWS}u;\n\
         const ATTENTION_MAX_TOKENS: u32 = {ATTENTION_MAX_TOKENS}u;\n\
         const DTYPE_BF16: u32 = {DTYPE_BF16}u;\n\
         const DTYPE_F16: u32 = {DTYPE_F16}u;\n\
         const OP_BIAS: u32 = {OP_BIAS}u;\n\
         const OP_GELU: u32 = {OP_GELU}u;\n\
         const OP_ACCUMULATE: u32 = {OP_ACCUMULATE}u;\n\
         const OP_RESIDUAL: u32 = {OP_RESIDUAL}u;\n\
         const PARTIAL_STRIDE: u32 = {PARTIAL_STRIDE}u;\n"
    )
}

/// One assembled WGSL module of the inference kernels.
#[derive(Clone, Debug)]
pub struct InferModule {
    /// Short name, also the shader label.
    pub name: &'static str,
    /// Complete WGSL source: the constants, then the module's files.
    pub source: String,
    /// Its compute entry points.
    pub entry_points: &'static [&'static str],
}

/// The inference modules.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Module {
    /// Matrix kernels over uncompressed weights.
    MatvecPlain,
    /// Matrix kernels decoding a coded entry on the fly.
    MatvecFused,
    /// LayerNorm, attention, pooling.
    BertOps,
}

impl Module {
    const ALL: [Module; 3] = [Module::MatvecPlain, Module::MatvecFused, Module::BertOps];

    fn assemble(self) -> InferModule {
        let (name, files, entry_points): (_, &[&str], &'static [&'static str]) = match self {
            Module::MatvecPlain => (
                "exprans matvec (plain)",
                &[HALF, RANS_LANE_WGSL, MATVEC_COMMON, MATVEC_PLAIN],
                &["matvec", "gather_rows"],
            ),
            Module::MatvecFused => (
                "exprans matvec (fused)",
                &[HALF, RANS_LANE_WGSL, MATVEC_COMMON, MATVEC_FUSED],
                &["matvec", "gather_rows"],
            ),
            Module::BertOps => (
                "exprans bert ops",
                &[HALF, BERT_OPS],
                &["layer_norm", "attention", "mean_pool"],
            ),
        };
        let mut source = wgsl_constants();
        source.push_str(&constants());
        // Whether the weight source must be read in lane order (matvec_common.wgsl).
        match self {
            Module::MatvecPlain => source.push_str("const SEQUENTIAL_CURSOR: bool = false;\n"),
            Module::MatvecFused => source.push_str("const SEQUENTIAL_CURSOR: bool = true;\n"),
            Module::BertOps => {}
        }
        for file in files {
            source.push('\n');
            source.push_str(file);
        }
        InferModule {
            name,
            source,
            entry_points,
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
