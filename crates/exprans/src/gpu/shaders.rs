//! The WGSL kernels of `shaders/`, assembled with the format constants.
//!
//! Every module is [`wgsl_constants`](crate::gpu::wgsl_constants) followed by its files, so the shaders never spell a
//! format constant themselves. The decode modules are the rANS lane (`rans_lane.wgsl`, shared with
//! the fused matrix kernels of exprans-infer), the decode bindings (`decode_common.wgsl`) and one
//! kernel.

use crate::params::wgsl_constants;
use crate::planes::PlaneLayout;

/// A file of `shaders/`: its name and text.
type File = (&'static str, &'static str);

macro_rules! shader_file {
    ($name:literal) => {
        (
            $name,
            include_str!(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../shaders/",
                $name
            )),
        )
    };
}

const RANS_LANE: File = shader_file!("rans_lane.wgsl");
const DECODE_COMMON: File = shader_file!("decode_common.wgsl");
const DECODE16_PORTABLE: File = shader_file!("decode16_portable.wgsl");
const DECODE16_SUBGROUP: File = shader_file!("decode16_subgroup.wgsl");
const DECODE32: File = shader_file!("decode32.wgsl");
const COPY: File = shader_file!("copy.wgsl");

/// `shaders/rans_lane.wgsl`, the rANS lane library every kernel over a [`super::PackedEntry`]
/// includes (exprans-infer's fused matrix kernels too).
pub const RANS_LANE_WGSL: &str = RANS_LANE.1;

/// Bindings of every decode kernel (group 0, shaders/decode_common.wgsl): (binding, variable,
/// read-only). The bind group layout is built from it, and a test checks it against the WGSL.
pub(crate) const DECODE_BINDINGS: [(u32, &str, bool); 4] = [
    (0, "jobs", true),
    (1, "packed", true),
    (2, "output", false),
    (3, "flags", false),
];

/// One assembled WGSL module.
#[derive(Clone, Debug)]
pub struct WgslModule {
    /// Short name, also the pipeline label.
    pub name: &'static str,
    /// Complete WGSL source: the constants, then the module's files.
    pub source: String,
    /// Names of its files in `shaders/`, in order.
    pub files: Vec<&'static str>,
    /// Its compute entry points.
    pub entry_points: &'static [&'static str],
    /// Whether it uses subgroup built-ins (needs `wgpu::Features::SUBGROUP`; SPIR-V 1.3).
    pub uses_subgroups: bool,
    /// Values of the `CODED_MASK` pipeline constant the host compiles it with, one pipeline
    /// each (empty: the module has no pipeline constant).
    pub coded_masks: Vec<u8>,
}

/// The modules of the GPU decoder.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Module {
    /// BF16/F16, two lanes per invocation, no optional feature.
    Decode16Portable,
    /// BF16/F16, one lane per invocation, pairs exchange values with a subgroup shuffle.
    Decode16Subgroup,
    /// F32, one lane per invocation, and one-byte values, four lanes per invocation (both
    /// paths).
    Decode32,
    /// The copy kernels `gpu::bench` compares against.
    Copy,
}

impl Module {
    /// Every module, for validation.
    pub(crate) const ALL: [Module; 4] = [
        Module::Decode16Portable,
        Module::Decode16Subgroup,
        Module::Decode32,
        Module::Copy,
    ];

    pub(crate) fn assemble(self) -> WgslModule {
        let (name, files, entry_points, uses_subgroups): (_, &[File], &'static [&'static str], _) =
            match self {
                Module::Decode16Portable => (
                    "exprans decode16 (portable)",
                    &[RANS_LANE, DECODE_COMMON, DECODE16_PORTABLE],
                    &["decode16"],
                    false,
                ),
                Module::Decode16Subgroup => (
                    "exprans decode16 (subgroup)",
                    &[RANS_LANE, DECODE_COMMON, DECODE16_SUBGROUP],
                    &["decode16"],
                    true,
                ),
                Module::Decode32 => (
                    "exprans decode32",
                    &[RANS_LANE, DECODE_COMMON, DECODE32],
                    &["decode32", "decode8"],
                    false,
                ),
                Module::Copy => ("exprans copy", &[COPY], &["copy_u32", "copy_vec4"], false),
            };
        let mut source = wgsl_constants();
        for (_, text) in files {
            source.push('\n');
            source.push_str(text);
        }
        let files = files.iter().map(|(name, _)| *name).collect();
        let planes = match self {
            Module::Decode16Portable | Module::Decode16Subgroup => PlaneLayout::Float16,
            Module::Decode32 => PlaneLayout::Float32,
            Module::Copy => {
                return WgslModule {
                    name,
                    source,
                    files,
                    entry_points,
                    uses_subgroups,
                    coded_masks: Vec::new(),
                }
            }
        }
        .plane_count();
        WgslModule {
            name,
            source,
            files,
            entry_points,
            uses_subgroups,
            coded_masks: (1..1u8 << planes).collect(),
        }
    }

    /// Compiles the module on `device` (errors surface through the caller's error scope).
    pub(crate) fn create(self, device: &wgpu::Device) -> wgpu::ShaderModule {
        let module = self.assemble();
        let mut source = module.source;
        if module.uses_subgroups && cfg!(target_arch = "wasm32") {
            // In a browser the source goes to the browser's compiler, not naga: it wants the
            // extension enabled (naga rejects the directive), and its uniformity analysis cannot
            // see that the kernel's loop is subgroup-uniform (its trip count is a subgroupMax).
            source.insert_str(
                0,
                "enable subgroups;\ndiagnostic(off, subgroup_uniformity);\n",
            );
        }
        device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(module.name),
            source: wgpu::ShaderSource::Wgsl(source.into()),
        })
    }
}

/// Every WGSL module the GPU code uses, assembled exactly as it is compiled (for validation and
/// translation tests, and for inspection).
pub fn wgsl_modules() -> Vec<WgslModule> {
    Module::ALL.iter().map(|m| m.assemble()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::plan::{JobParams, PackedParams};
    use exprans_testkit::rust_layout;
    use exprans_testkit::wgsl::{self, Access};

    /// Each struct the host writes has the WGSL layout of its mirror (names, offsets, size), and
    /// every bound variable of the decode kernels is where the bind group layout puts it.
    #[test]
    fn mirrored_structs_and_bindings_match_the_rust_side() {
        let packed = rust_layout!(
            PackedParams,
            value_count,
            block_count,
            block_size,
            coded_mask,
            dir_base,
            word_base,
            word_origin,
            class_base,
            plane_base
        );
        let job = rust_layout!(JobParams, first_group, out_base, flag_index, pad, entry);
        let mut expected: Vec<_> = DECODE_BINDINGS
            .iter()
            .map(|&(binding, name, read_only)| {
                let access = if read_only {
                    Access::Read
                } else {
                    Access::ReadWrite
                };
                (0, binding, name.to_string(), access)
            })
            .collect();
        expected.sort();
        for m in [
            Module::Decode16Portable,
            Module::Decode16Subgroup,
            Module::Decode32,
        ] {
            let m = m.assemble();
            let module = wgsl::parse(m.name, &m.source);
            assert_eq!(
                wgsl::struct_layout(&module, "PackedEntry"),
                Some(packed.clone())
            );
            assert_eq!(wgsl::struct_layout(&module, "Job"), Some(job.clone()));
            let mut bound = wgsl::bindings(&module);
            bound.sort();
            assert_eq!(bound, expected, "{}", m.name);
        }
    }
}
