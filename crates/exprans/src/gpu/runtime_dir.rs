//! A private `XDG_RUNTIME_DIR` for programs that probe wgpu's GL backend.

use std::path::PathBuf;

/// A private `XDG_RUNTIME_DIR` of this process, removed when dropped: see
/// [`private_runtime_dir`].
#[derive(Debug)]
pub struct RuntimeDir(PathBuf);

impl Drop for RuntimeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// For programs, not libraries: call it first in `main`, before any thread starts, and keep the
/// guard. When `XDG_RUNTIME_DIR` is not set, gives the process a private, empty one (mode 0700),
/// so that probing wgpu's GL backend does not make libwayland print "error: XDG_RUNTIME_DIR is
/// invalid or not set in the environment" (harmless: no window is opened, but it reads as a
/// failure). `None` when the variable is set already or no folder could be made.
///
/// ```no_run
/// let _runtime_dir = exprans::gpu::private_runtime_dir();
/// // ... open a GpuDecoder ...
/// ```
pub fn private_runtime_dir() -> Option<RuntimeDir> {
    if std::env::var_os("XDG_RUNTIME_DIR").is_some() {
        return None;
    }
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("exprans-xdg-{}-{nanos}", std::process::id()));
    let mut builder = std::fs::DirBuilder::new();
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(&dir).ok()?;
    std::env::set_var("XDG_RUNTIME_DIR", &dir);
    Some(RuntimeDir(dir))
}
