//! naga checks of assembled WGSL modules, shared by the shader tests of every crate: parse,
//! validate with given capabilities, resolve pipeline constants, stay within WebGPU's default
//! limits, translate to SPIR-V, MSL, HLSL and GLSL, and read struct layouts and bindings (to
//! compare with the Rust mirrors). Every function takes plain names and sources and panics with
//! naga's diagnostic on failure.

use naga::back::{glsl, hlsl, msl, spv};
use naga::valid::{Capabilities, ModuleInfo, ValidationFlags, Validator};

/// WebGPU default limits a portable module must respect.
pub const MAX_INVOCATIONS: u32 = 256;
pub const MAX_WORKGROUP_STORAGE: u32 = 16 * 1024;
pub const MAX_STORAGE_BUFFERS: usize = 8;

/// Parses `source` (module `name`).
pub fn parse(name: &str, source: &str) -> naga::Module {
    naga::front::wgsl::parse_str(source)
        .unwrap_or_else(|e| panic!("{name}: {}", e.emit_to_string(source)))
}

/// The capabilities a module needs: subgroup operations or none.
pub fn capabilities(uses_subgroups: bool) -> Capabilities {
    if uses_subgroups {
        Capabilities::SUBGROUP
    } else {
        Capabilities::empty()
    }
}

/// Validates `module` (parsed from `source`) with `caps`.
pub fn validate(
    name: &str,
    source: &str,
    module: &naga::Module,
    caps: Capabilities,
) -> Result<ModuleInfo, String> {
    Validator::new(ValidationFlags::all(), caps)
        .validate(module)
        .map_err(|e| format!("{name}: {}", e.emit_to_string(source)))
}

/// The module's entry point names, in order.
pub fn entry_points(module: &naga::Module) -> Vec<&str> {
    module
        .entry_points
        .iter()
        .map(|e| e.name.as_str())
        .collect()
}

/// Asserts the module's workgroups, workgroup memory and storage buffers fit WebGPU's defaults.
pub fn assert_within_webgpu_default_limits(name: &str, module: &naga::Module) {
    for ep in &module.entry_points {
        let [x, y, z] = ep.workgroup_size;
        assert!(
            x * y * z <= MAX_INVOCATIONS && x <= 256 && y <= 256 && z <= 64,
            "{name} {}: workgroup size {x}x{y}x{z}",
            ep.name
        );
    }
    let mut layouter = naga::proc::Layouter::default();
    layouter.update(module.to_ctx()).unwrap();
    let mut workgroup_bytes = 0;
    let mut storage_buffers = 0;
    for (_, var) in module.global_variables.iter() {
        match var.space {
            naga::AddressSpace::WorkGroup => workgroup_bytes += layouter[var.ty].size,
            naga::AddressSpace::Storage { .. } => storage_buffers += 1,
            _ => {}
        }
    }
    assert!(
        workgroup_bytes <= MAX_WORKGROUP_STORAGE,
        "{name}: {workgroup_bytes} B of workgroup memory"
    );
    assert!(
        storage_buffers <= MAX_STORAGE_BUFFERS,
        "{name}: {storage_buffers} storage buffers"
    );
}

/// The module with its pipeline constant `CODED_MASK` resolved, once per value of `coded_masks`
/// (the module itself when empty, which must then have no override), validated.
pub fn specializations(
    name: &str,
    source: &str,
    uses_subgroups: bool,
    coded_masks: &[u8],
) -> Vec<(String, naga::Module, ModuleInfo)> {
    let module = parse(name, source);
    let info = validate(name, source, &module, capabilities(uses_subgroups))
        .unwrap_or_else(|e| panic!("{e}"));
    if coded_masks.is_empty() {
        assert!(module.overrides.is_empty(), "{name}: undeclared overrides");
        return vec![(name.to_string(), module, info)];
    }
    coded_masks
        .iter()
        .map(|&mask| {
            let mut constants = naga::back::PipelineConstants::default();
            constants.insert("CODED_MASK".to_string(), mask as f64);
            let (module, info) =
                naga::back::pipeline_constants::process_overrides(&module, &info, None, &constants)
                    .unwrap_or_else(|e| panic!("{name} mask {mask}: {e}"));
            let name = format!("{name} (CODED_MASK {mask:#b})");
            (name, module.into_owned(), info.into_owned())
        })
        .collect()
}

/// Translates a resolved module to SPIR-V, MSL, HLSL and GLSL (ES 3.10 and 4.30), with the
/// language versions subgroup operations need when `uses_subgroups`.
pub fn translate(name: &str, uses_subgroups: bool, module: &naga::Module, info: &ModuleInfo) {
    // Vulkan: SPIR-V 1.3 is the first with subgroup operations.
    let options = spv::Options {
        lang_version: if uses_subgroups { (1, 3) } else { (1, 0) },
        ..Default::default()
    };
    let words = spv::write_vec(module, info, &options, None)
        .unwrap_or_else(|e| panic!("{name} SPIR-V: {e}"));
    assert_eq!(words[0], 0x0723_0203, "{name}: SPIR-V magic");

    // Metal: SIMD-group shuffles and reductions need MSL 2.1.
    let options = msl::Options {
        lang_version: if uses_subgroups { (2, 1) } else { (2, 0) },
        ..Default::default()
    };
    let (source, _) = msl::write_string(module, info, &options, &Default::default())
        .unwrap_or_else(|e| panic!("{name} MSL: {e}"));
    assert!(source.contains("kernel void"), "{name}: MSL");

    // DX12: wave intrinsics need shader model 6.0.
    let options = hlsl::Options {
        shader_model: if uses_subgroups {
            hlsl::ShaderModel::V6_0
        } else {
            hlsl::ShaderModel::V5_1
        },
        ..Default::default()
    };
    let pipeline = hlsl::PipelineOptions::default();
    let mut source = String::new();
    hlsl::Writer::new(&mut source, &options, &pipeline)
        .write(module, info, None)
        .unwrap_or_else(|e| panic!("{name} HLSL: {e}"));
    assert!(source.contains("[numthreads("), "{name}: HLSL");

    // GL: compute shaders need GLSL ES 3.10 (what wgpu's GL backend emits) or 4.30.
    for version in [glsl::Version::new_gles(310), glsl::Version::Desktop(430)] {
        for ep in &module.entry_points {
            let options = glsl::Options {
                version,
                ..Default::default()
            };
            let pipeline = glsl::PipelineOptions {
                shader_stage: naga::ShaderStage::Compute,
                entry_point: ep.name.clone(),
                multiview: None,
            };
            let mut source = String::new();
            glsl::Writer::new(
                &mut source,
                module,
                info,
                &options,
                &pipeline,
                Default::default(),
            )
            .and_then(|mut w| w.write().map(drop))
            .unwrap_or_else(|e| panic!("{name} {} GLSL {version}: {e}", ep.name));
            assert!(source.contains("layout(local_size_x"), "{name}: GLSL");
        }
    }
}

/// The layout of a struct: its size and its members' (name, byte offset), in order.
pub type StructLayout = (u32, Vec<(String, u32)>);

/// The layout of WGSL struct `struct_name` in `module`, as naga lays it out for host-shareable
/// address spaces (`None` if the module has no such struct).
pub fn struct_layout(module: &naga::Module, struct_name: &str) -> Option<StructLayout> {
    let mut layouter = naga::proc::Layouter::default();
    layouter.update(module.to_ctx()).unwrap();
    module
        .types
        .iter()
        .find_map(|(handle, ty)| match &ty.inner {
            naga::TypeInner::Struct { members, span }
                if ty.name.as_deref() == Some(struct_name) =>
            {
                let _ = &layouter[handle];
                Some((
                    *span,
                    members
                        .iter()
                        .map(|m| (m.name.clone().unwrap_or_default(), m.offset))
                        .collect(),
                ))
            }
            _ => None,
        })
}

/// The layout of a Rust struct: `rust_layout!(Type, field, field, ...)` lists the fields in
/// order (every field; the size check catches one left out at the end).
#[macro_export]
macro_rules! rust_layout {
    ($t:ty, $($field:ident),+ $(,)?) => {
        (
            std::mem::size_of::<$t>() as u32,
            vec![$((stringify!($field).to_string(), std::mem::offset_of!($t, $field) as u32)),+],
        )
    };
}

/// How a global variable is bound.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Access {
    Uniform,
    Read,
    ReadWrite,
}

/// Every resource-bound global variable of `module`: (group, binding, name, access).
pub fn bindings(module: &naga::Module) -> Vec<(u32, u32, String, Access)> {
    module
        .global_variables
        .iter()
        .filter_map(|(_, var)| {
            let b = var.binding.as_ref()?;
            let access = match var.space {
                naga::AddressSpace::Uniform => Access::Uniform,
                naga::AddressSpace::Storage { access } => {
                    if access.contains(naga::StorageAccess::STORE) {
                        Access::ReadWrite
                    } else {
                        Access::Read
                    }
                }
                other => panic!("unexpected bound address space {other:?}"),
            };
            Some((
                b.group,
                b.binding,
                var.name.clone().unwrap_or_default(),
                access,
            ))
        })
        .collect()
}
