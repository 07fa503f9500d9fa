//! `exprans shaders --out DIR`: every WGSL module exactly as the program compiles it (constants
//! injected, files concatenated), one file per pipeline variant, for outside validators.
//!
//! A module with the `CODED_MASK` pipeline constant is written once per value the program compiles
//! it with, as `NAME.maskN.wgsl`, with `override CODED_MASK: u32;` replaced by
//! `const CODED_MASK: u32 = Nu;` so that any validator accepts the file as it is. Subgroup modules
//! are written as naga (wgpu's native compiler) takes them, without `enable subgroups;` (naga 30
//! rejects the directive; a browser's compiler wants it first), as each file's header says.

use std::path::{Path, PathBuf};

use exprans::gpu::WgslModule;
use exprans::{Error, Result};

const OVERRIDE: &str = "override CODED_MASK: u32;";

/// File stem of a module: its label without "exprans ", e.g. `decode16_portable`.
fn stem(name: &str) -> String {
    name.trim_start_matches("exprans ")
        .replace(" (", "_")
        .replace([' ', '-'], "_")
        .replace(')', "")
}

/// The files of one module: (file name, text).
pub fn variants(m: &WgslModule) -> Result<Vec<(String, String)>> {
    let stem = stem(m.name);
    let subgroups = if m.uses_subgroups {
        "// Uses subgroup built-ins: written as naga (wgpu) takes it; a browser's WGSL compiler\n\
         // wants `enable subgroups;` and `diagnostic(off, subgroup_uniformity);` first.\n"
    } else {
        ""
    };
    let header = |what: &str| {
        format!(
            "// Written by `exprans shaders`: module '{}' ({}), exactly as exprans compiles \
             it{what}.\n{subgroups}",
            m.name,
            m.entry_points.join(", ")
        )
    };
    if m.coded_masks.is_empty() {
        return Ok(vec![(
            format!("{stem}.wgsl"),
            format!("{}{}", header(""), m.source),
        )]);
    }
    if m.source.matches(OVERRIDE).count() != 1 {
        return Err(Error::invalid(format!(
            "module '{}' does not declare `{OVERRIDE}` once",
            m.name
        )));
    }
    Ok(m.coded_masks
        .iter()
        .map(|&mask| {
            let what = format!(", pipeline constant CODED_MASK = {mask} written as a const");
            let source = m
                .source
                .replace(OVERRIDE, &format!("const CODED_MASK: u32 = {mask}u;"));
            (
                format!("{stem}.mask{mask}.wgsl"),
                format!("{}{source}", header(&what)),
            )
        })
        .collect())
}

/// Every module of the decoder and of the inference kernels.
pub fn modules() -> Vec<WgslModule> {
    exprans::gpu::wgsl_modules()
        .into_iter()
        .chain(exprans_infer::shaders::wgsl_modules())
        .collect()
}

/// Writes every variant of every module into `out` (created if missing); prints one line per file.
pub fn run(out: &Path) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(out).map_err(|e| Error::from(e).in_file(out))?;
    let mut written = Vec::new();
    for m in modules() {
        for (name, text) in variants(&m)? {
            let path = out.join(name);
            std::fs::write(&path, text).map_err(|e| Error::from(e).in_file(&path))?;
            println!("{}", path.display());
            written.push(path);
        }
    }
    Ok(written)
}
