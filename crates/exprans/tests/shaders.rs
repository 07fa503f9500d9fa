//! Every WGSL module of the decoder, assembled with the format constants exactly as the decoder
//! compiles it, validates with naga, stays within WebGPU's default limits, and translates to
//! SPIR-V, MSL, HLSL and GLSL: a shader that Vulkan, Metal, DX12 or GL would reject fails here,
//! without a GPU. (The inference modules and the check of every file of shaders/ are tested in
//! exprans-infer's tests/shaders.rs, which sees both sets of modules; the naga helpers are
//! exprans-testkit's `wgsl`.)

use exprans::gpu::wgsl_modules;
use exprans_testkit::wgsl;
use naga::valid::Capabilities;

#[test]
fn modules_validate_with_only_the_capabilities_they_declare() {
    let modules = wgsl_modules();
    assert!(modules.iter().any(|m| m.uses_subgroups));
    assert!(modules.iter().any(|m| !m.uses_subgroups));
    for m in &modules {
        let module = wgsl::parse(m.name, &m.source);
        wgsl::validate(
            m.name,
            &m.source,
            &module,
            wgsl::capabilities(m.uses_subgroups),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        if m.uses_subgroups {
            // It does need them: the flag that makes the host require SUBGROUP is accurate.
            assert!(
                wgsl::validate(m.name, &m.source, &module, Capabilities::empty()).is_err(),
                "{}",
                m.name
            );
        }
        assert_eq!(
            wgsl::entry_points(&module),
            m.entry_points,
            "{}: entry points",
            m.name
        );
    }
}

#[test]
fn modules_stay_within_webgpu_default_limits() {
    for m in wgsl_modules() {
        wgsl::assert_within_webgpu_default_limits(m.name, &wgsl::parse(m.name, &m.source));
    }
}

#[test]
fn modules_translate_to_every_backend_language() {
    for m in wgsl_modules() {
        for (name, module, info) in
            wgsl::specializations(m.name, &m.source, m.uses_subgroups, &m.coded_masks)
        {
            wgsl::translate(&name, m.uses_subgroups, &module, &info);
        }
    }
}
