//! Every WGSL module, assembled with the format constants exactly as the decoder compiles it,
//! validates with naga, stays within WebGPU's default limits, and translates to SPIR-V, MSL, HLSL
//! and GLSL: a shader that Vulkan, Metal, DX12 or GL would reject fails here, without a GPU.

use exprans::gpu::{wgsl_modules, WgslModule};
use exprans::params::{MAX_BLOCK_SIZE, PROB_SCALE, RANS_L};
use naga::back::{glsl, hlsl, msl, spv};
use naga::valid::{Capabilities, ModuleInfo, ValidationFlags, Validator};

/// WebGPU default limits a portable module must respect.
const MAX_INVOCATIONS: u32 = 256;
const MAX_WORKGROUP_STORAGE: u32 = 16 * 1024;
const MAX_STORAGE_BUFFERS: usize = 8;

fn parse(m: &WgslModule) -> naga::Module {
    naga::front::wgsl::parse_str(&m.source)
        .unwrap_or_else(|e| panic!("{}: {}", m.name, e.emit_to_string(&m.source)))
}

fn capabilities(m: &WgslModule) -> Capabilities {
    if m.uses_subgroups {
        Capabilities::SUBGROUP
    } else {
        Capabilities::empty()
    }
}

fn validate(
    m: &WgslModule,
    module: &naga::Module,
    caps: Capabilities,
) -> Result<ModuleInfo, String> {
    Validator::new(ValidationFlags::all(), caps)
        .validate(module)
        .map_err(|e| format!("{}: {}", m.name, e.emit_to_string(&m.source)))
}

#[test]
fn modules_validate_with_only_the_capabilities_they_declare() {
    let modules = wgsl_modules();
    assert!(modules.iter().any(|m| m.uses_subgroups));
    assert!(modules.iter().any(|m| !m.uses_subgroups));
    for m in &modules {
        let module = parse(m);
        validate(m, &module, capabilities(m)).unwrap_or_else(|e| panic!("{e}"));
        if m.uses_subgroups {
            // It does need them: the flag that makes the host require SUBGROUP is accurate.
            assert!(
                validate(m, &module, Capabilities::empty()).is_err(),
                "{}",
                m.name
            );
        }
        let names: Vec<&str> = module
            .entry_points
            .iter()
            .map(|e| e.name.as_str())
            .collect();
        assert_eq!(names, m.entry_points, "{}: entry points", m.name);
    }
}

#[test]
fn modules_stay_within_webgpu_default_limits() {
    for m in wgsl_modules() {
        let module = parse(&m);
        for ep in &module.entry_points {
            let [x, y, z] = ep.workgroup_size;
            assert!(
                x * y * z <= MAX_INVOCATIONS && x <= 256 && y <= 256 && z <= 64,
                "{} {}: workgroup size {x}x{y}x{z}",
                m.name,
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
        assert!(workgroup_bytes <= MAX_WORKGROUP_STORAGE, "{}", m.name);
        assert!(storage_buffers <= MAX_STORAGE_BUFFERS, "{}", m.name);
    }
}

/// The module with its pipeline constants resolved, once per set the host compiles it with.
fn specializations(m: &WgslModule) -> Vec<(String, naga::Module, ModuleInfo)> {
    let module = parse(m);
    let info = validate(m, &module, capabilities(m)).unwrap_or_else(|e| panic!("{e}"));
    if m.coded_masks.is_empty() {
        assert!(
            module.overrides.is_empty(),
            "{}: undeclared overrides",
            m.name
        );
        return vec![(m.name.to_string(), module, info)];
    }
    m.coded_masks
        .iter()
        .map(|&mask| {
            let mut constants = naga::back::PipelineConstants::default();
            constants.insert("CODED_MASK".to_string(), mask as f64);
            let (module, info) =
                naga::back::pipeline_constants::process_overrides(&module, &info, None, &constants)
                    .unwrap_or_else(|e| panic!("{} mask {mask}: {e}", m.name));
            let name = format!("{} (CODED_MASK {mask:#b})", m.name);
            (name, module.into_owned(), info.into_owned())
        })
        .collect()
}

#[test]
fn modules_translate_to_every_backend_language() {
    for m in wgsl_modules() {
        for (name, module, info) in specializations(&m) {
            translate(&m, &name, &module, &info);
        }
    }
}

fn translate(m: &WgslModule, name: &str, module: &naga::Module, info: &ModuleInfo) {
    // Vulkan: SPIR-V 1.3 is the first with subgroup operations.
    let options = spv::Options {
        lang_version: if m.uses_subgroups { (1, 3) } else { (1, 0) },
        ..Default::default()
    };
    let words = spv::write_vec(module, info, &options, None)
        .unwrap_or_else(|e| panic!("{name} SPIR-V: {e}"));
    assert_eq!(words[0], 0x0723_0203, "{name}: SPIR-V magic");

    // Metal: SIMD-group shuffles and reductions need MSL 2.1.
    let options = msl::Options {
        lang_version: if m.uses_subgroups { (2, 1) } else { (2, 0) },
        ..Default::default()
    };
    let (source, _) = msl::write_string(module, info, &options, &Default::default())
        .unwrap_or_else(|e| panic!("{name} MSL: {e}"));
    assert!(source.contains("kernel void"), "{name}: MSL");

    // DX12: wave intrinsics need shader model 6.0.
    let options = hlsl::Options {
        shader_model: if m.uses_subgroups {
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

#[test]
fn shader_files_define_no_constants_of_their_own() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shaders");
    for m in wgsl_modules() {
        assert!(!m.files.is_empty(), "{}", m.name);
        for file in &m.files {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            assert!(m.source.contains(&text), "{file} is not in {}", m.name);
            for line in text.lines().map(str::trim_start) {
                // Pipeline constants are declared without a value: the host supplies it.
                let valued_override = line.starts_with("override ") && line.contains('=');
                assert!(
                    !line.starts_with("const ") && !valued_override,
                    "{file}: constants come from params::wgsl_constants(), not the .wgsl \
                     files: {line}"
                );
            }
            for value in [RANS_L, PROB_SCALE, PROB_SCALE - 1, MAX_BLOCK_SIZE] {
                assert!(
                    !text.contains(&value.to_string()),
                    "{file}: spells the format constant {value}"
                );
            }
        }
    }
}

#[test]
fn inference_modules_validate_and_translate_to_every_backend_language() {
    for m in exprans_infer::shaders::wgsl_modules() {
        let module = WgslModule {
            name: m.name,
            source: m.source,
            files: Vec::new(),
            entry_points: m.entry_points,
            uses_subgroups: false,
            coded_masks: Vec::new(),
        };
        for (name, naga_module, info) in specializations(&module) {
            translate(&module, &name, &naga_module, &info);
        }
    }
}
