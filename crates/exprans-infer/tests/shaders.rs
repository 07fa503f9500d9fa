//! Every WGSL module, the decoder's (exprans::gpu) and the inference kernels', assembled exactly
//! as it is compiled: the inference modules validate, stay within WebGPU's default limits and
//! translate to every backend language; and every file of shaders/ is part of some module and
//! defines no constant of its own (they come from Rust: `exprans::gpu::wgsl_constants()`,
//! `exprans_infer::shaders::constants()`).

use exprans::internals::{PROB_SCALE, RANS_L};
use exprans::MAX_BLOCK_SIZE;
use exprans_testkit::wgsl;

#[test]
fn inference_modules_validate_and_translate_to_every_backend_language() {
    for m in exprans_infer::shaders::wgsl_modules() {
        let module = wgsl::parse(m.name, &m.source);
        assert_eq!(wgsl::entry_points(&module), m.entry_points, "{}", m.name);
        wgsl::assert_within_webgpu_default_limits(m.name, &module);
        for (name, module, info) in
            wgsl::specializations(m.name, &m.source, m.uses_subgroups, &m.coded_masks)
        {
            wgsl::translate(&name, m.uses_subgroups, &module, &info);
        }
    }
}

#[test]
fn every_shader_file_is_used_and_defines_no_constants_of_its_own() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shaders");
    let modules: Vec<_> = exprans::gpu::wgsl_modules()
        .into_iter()
        .chain(exprans_infer::shaders::wgsl_modules())
        .collect();
    for m in &modules {
        assert!(!m.files.is_empty(), "{}", m.name);
        for file in &m.files {
            let text = std::fs::read_to_string(dir.join(file)).unwrap();
            assert!(m.source.contains(&text), "{file} is not in {}", m.name);
        }
    }
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|n| n.ends_with(".wgsl"))
        .collect();
    files.sort();
    assert!(files.len() >= 11, "{files:?}");
    for file in &files {
        assert!(
            modules.iter().any(|m| m.files.contains(&file.as_str())),
            "shaders/{file} is part of no module"
        );
        let text = std::fs::read_to_string(dir.join(file)).unwrap();
        for line in text.lines().map(str::trim_start) {
            // Pipeline constants are declared without a value: the host supplies it.
            let valued_override = line.starts_with("override ") && line.contains('=');
            assert!(
                !line.starts_with("const ") && !valued_override,
                "{file}: constants come from Rust (exprans::gpu::wgsl_constants(), \
                 exprans_infer::shaders::constants()), not the .wgsl files: {line}"
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
