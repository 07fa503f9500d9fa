//! The README's first command, `cargo run --release --example quickstart`, runs to its end and
//! prints no `error` line, also without `XDG_RUNTIME_DIR` (where libwayland complains when wgpu
//! probes the GL backend, unless the program gives itself a private one with
//! `exprans::gpu::private_runtime_dir`).

use std::path::PathBuf;
use std::process::Command;

/// The quickstart example binary beside this test's (cargo builds examples for `cargo test`).
fn quickstart() -> Option<PathBuf> {
    let deps = std::env::current_exe().ok()?.parent()?.to_path_buf();
    let exe = deps
        .parent()?
        .join("examples")
        .join(format!("quickstart{}", std::env::consts::EXE_SUFFIX));
    exe.is_file().then_some(exe)
}

#[test]
fn quickstart_runs_and_prints_no_error_line_without_xdg_runtime_dir() {
    if !exprans_testkit::gpu_tests_enabled() {
        return;
    }
    let Some(exe) = quickstart() else {
        panic!("the quickstart example was not built beside the tests");
    };
    let out = Command::new(&exe)
        .env_remove("XDG_RUNTIME_DIR")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(
        stdout.contains("identical to the CPU reference decoder"),
        "{stdout}"
    );
    for line in stdout.lines().chain(stderr.lines()) {
        assert!(
            !line.to_lowercase().contains("error"),
            "the quickstart printed an error line: {line}"
        );
    }
}
