//! Whole files and model directories: compress, decompress, verify (native targets only).
//!
//! Every input is identified first ([`check_input`]): a JSON, GGUF, PyTorch or other file that is
//! not the kind of safetensors file the command reads is refused with one line saying what it is
//! and what to run instead, before any output is created.
//!
//! Memory stays bounded by a small multiple of the largest tensor: inputs are memory-mapped and
//! processed tensor by tensor, and the output header is reserved up front (see
//! [`exprans::reserve_header_len`]) and written last. Outputs are written to a temporary file in
//! the target folder and renamed into place only when complete, so a failure never leaves a
//! partial output.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use exprans::safetensors::Header;
use exprans::Archive;
use exprans::EncodeOptions;
use exprans::{Error, Result};
pub use exprans::{ProgressFn, TensorDecoder};

/// Sizes of one compressed file or directory.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SizeReport {
    /// Bytes before compression.
    pub original: u64,
    /// Bytes after.
    pub compressed: u64,
}

impl SizeReport {
    fn add(&mut self, other: SizeReport) {
        self.original += other.original;
        self.compressed += other.compressed;
    }
}

fn io_err(path: &Path) -> impl Fn(std::io::Error) -> Error + '_ {
    move |e| Error::Io(e).in_file(path)
}

/// Memory-maps a file for reading.
pub fn map_file(path: &Path) -> Result<memmap2::Mmap> {
    let file = File::open(path).map_err(io_err(path))?;
    if file.metadata().map_err(io_err(path))?.is_dir() {
        return Err(Error::invalid("is a directory").in_file(path));
    }
    // SAFETY: the map is read-only; exprans never writes the inputs it maps. A concurrent
    // writer could change bytes under us; every tensor is checksummed before it is trusted.
    unsafe { memmap2::Mmap::map(&file) }.map_err(io_err(path))
}

/// A file being written for `target`, which only [`Output::commit`] makes appear there: on
/// Linux an unnamed file (`O_TMPFILE`) in the target's folder, linked in when complete, so that
/// a process killed at any point (SIGKILL runs no destructor) leaves nothing behind; elsewhere,
/// or where the file system cannot make unnamed files, a hidden temporary file beside `target`
/// (`.exprans-XXXXXX`), renamed onto it.
struct Output {
    tmp: Temp,
    target: PathBuf,
    force: bool,
}

enum Temp {
    /// An unnamed file in the target's folder (Linux).
    #[cfg(target_os = "linux")]
    Unnamed(File),
    /// A named temporary file beside the target.
    Named(tempfile::NamedTempFile),
}

/// An unnamed file in `dir` (`O_TMPFILE`, mode `0o666` less the umask), or `None` where the
/// kernel or the file system cannot make one or `/proc/self/fd` (needed to link it) is absent.
#[cfg(target_os = "linux")]
fn unnamed_file(dir: &Path) -> Option<File> {
    use rustix::fs::{Mode, OFlags};
    if !Path::new("/proc/self/fd").is_dir() {
        return None;
    }
    let flags = OFlags::TMPFILE | OFlags::WRONLY | OFlags::CLOEXEC;
    let fd = rustix::fs::openat(rustix::fs::CWD, dir, flags, Mode::from_raw_mode(0o666)).ok()?;
    Some(File::from(fd))
}

/// Gives the unnamed `file` the name `target` (failing if `target` exists).
#[cfg(target_os = "linux")]
fn link_unnamed(file: &File, target: &Path) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let proc_path = format!("/proc/self/fd/{}", file.as_raw_fd());
    rustix::fs::linkat(
        rustix::fs::CWD,
        proc_path.as_str(),
        rustix::fs::CWD,
        target,
        rustix::fs::AtFlags::SYMLINK_FOLLOW,
    )
    .map_err(std::io::Error::from)
}

fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn check_target(target: &Path, force: bool) -> Result<()> {
    if !force && target.symlink_metadata().is_ok() {
        return Err(Error::invalid("output exists (use --force to replace it)").in_file(target));
    }
    Ok(())
}

/// A builder of hidden temporary outputs (`.exprans-XXXXXX`) beside their target, created with
/// `mode` (file: `0o666`, directory: `0o777`) so that the user's umask applies as for `cp`
/// (temporary files are otherwise owner-only, and so would the renamed output be).
fn temp_builder(mode: u32) -> tempfile::Builder<'static, 'static> {
    let mut builder = tempfile::Builder::new();
    builder.prefix(".exprans-");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(mode));
    }
    #[cfg(not(unix))]
    let _ = mode;
    builder
}

impl Output {
    fn create(target: &Path, force: bool) -> Result<Output> {
        check_target(target, force)?;
        #[cfg(target_os = "linux")]
        if let Some(file) = unnamed_file(parent_dir(target)) {
            return Ok(Output {
                tmp: Temp::Unnamed(file),
                target: target.to_path_buf(),
                force,
            });
        }
        let tmp = temp_builder(0o666)
            .tempfile_in(parent_dir(target))
            .map_err(io_err(target))?;
        Ok(Output {
            tmp: Temp::Named(tmp),
            target: target.to_path_buf(),
            force,
        })
    }

    fn file(&mut self) -> &mut File {
        match &mut self.tmp {
            #[cfg(target_os = "linux")]
            Temp::Unnamed(file) => file,
            Temp::Named(tmp) => tmp.as_file_mut(),
        }
    }

    fn commit(self) -> Result<()> {
        let target = self.target;
        match self.tmp {
            #[cfg(target_os = "linux")]
            Temp::Unnamed(file) => {
                file.sync_all().map_err(io_err(&target))?;
                if !self.force {
                    return link_unnamed(&file, &target).map_err(io_err(&target));
                }
                // Replacing: link under a fresh hidden name, then rename that onto the target
                // (a rename replaces atomically; a link cannot).
                let dir = parent_dir(&target);
                let mut attempt = 0u32;
                let staged = loop {
                    let name = dir.join(format!(".exprans-{}-{attempt}", std::process::id()));
                    match link_unnamed(&file, &name) {
                        Ok(()) => break name,
                        Err(e)
                            if e.kind() == std::io::ErrorKind::AlreadyExists && attempt < 100 =>
                        {
                            attempt += 1
                        }
                        Err(e) => return Err(Error::Io(e).in_file(&target)),
                    }
                };
                std::fs::rename(&staged, &target).map_err(|e| {
                    let _ = std::fs::remove_file(&staged);
                    Error::Io(e).in_file(&target)
                })
            }
            Temp::Named(tmp) => {
                tmp.as_file().sync_all().map_err(io_err(&target))?;
                let result = if self.force {
                    tmp.persist(&target)
                } else {
                    tmp.persist_noclobber(&target)
                };
                result.map_err(|e| Error::Io(e.error).in_file(&target))?;
                Ok(())
            }
        }
    }
}

/// Attaches the right file to an error of the library's whole-file functions: I/O errors are the output's, the rest
/// the input's.
fn blame(e: Error, input: &Path, output: &Path) -> Error {
    match e {
        Error::Io(_) => e.in_file(output),
        other => other.in_file(input),
    }
}

/// Compresses one safetensors file into an exprans file.
pub fn compress_file(
    input: &Path,
    output: &Path,
    opts: &EncodeOptions,
    force: bool,
    progress: ProgressFn,
) -> Result<SizeReport> {
    check_file(input, Expected::Original)?;
    let data = map_file(input)?;
    let mut out = Output::create(output, force)?;
    // Tensors are encoded in data order: once one is done, the input up to its end is released,
    // so that resident memory stays bounded by what is being encoded, whatever the model's size.
    let header_len = exprans::Archive::header_len(
        data.get(..8)
            .and_then(|p| p.try_into().ok())
            .unwrap_or(&[0; 8]),
        data.len() as u64,
    )
    .unwrap_or(0) as usize;
    let done = std::sync::atomic::AtomicUsize::new(header_len);
    let release_progress = |bytes: u64| {
        use std::sync::atomic::Ordering::Relaxed;
        let start = done.fetch_add(bytes as usize, Relaxed);
        release(&data, start..start + bytes as usize);
        progress(bytes);
    };
    let written = exprans::compress_into(&data, out.file(), opts, &release_progress)
        .map_err(|e| blame(e, input, output))?;
    out.commit()?;
    Ok(SizeReport {
        original: data.len() as u64,
        compressed: written,
    })
}

/// Drops the pages of `range` of the read-only file map `map` from this process's memory (they
/// stay in the page cache, and come back from the file if touched again): input already
/// processed no longer counts towards resident memory. Only whole pages inside `range`.
fn release(map: &memmap2::Mmap, range: std::ops::Range<usize>) {
    #[cfg(unix)]
    {
        const PAGE: usize = 4096;
        let start = range.start.next_multiple_of(PAGE);
        let end = range.end.min(map.len()) / PAGE * PAGE;
        if start < end {
            // SAFETY: the map is read-only and backed by a file, so MADV_DONTNEED discards no
            // data: a later access reads the same bytes from the file again. No reference into
            // the range is invalidated (the mapping stays valid).
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, end - start)
            };
        }
    }
    #[cfg(not(unix))]
    let _ = (map, range);
}

/// A decoder that releases each tensor's stored bytes from `map` ([`release`]) once decoded.
struct Releasing<'d, 'm> {
    inner: &'d mut dyn TensorDecoder,
    map: &'m memmap2::Mmap,
}

impl Releasing<'_, '_> {
    fn release(&self, stored: &[u8]) {
        let offset = (stored.as_ptr() as usize).wrapping_sub(self.map.as_ptr() as usize);
        if offset <= self.map.len() {
            release(self.map, offset..offset + stored.len());
        }
    }
}

impl TensorDecoder for Releasing<'_, '_> {
    fn decode_batch(
        &mut self,
        items: &[(&exprans::TensorIndex, &[u8])],
        outs: &mut Vec<Vec<u8>>,
    ) -> Result<()> {
        let result = self.inner.decode_batch(items, outs);
        for (_, stored) in items {
            self.release(stored);
        }
        result
    }

    fn decode_streamed(
        &mut self,
        t: &exprans::TensorIndex,
        stored: &[u8],
        each: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let result = self.inner.decode_streamed(t, stored, each);
        self.release(stored);
        result
    }
}

/// Opens an exprans file: its map and parsed header. Any other kind of file is refused with what
/// it is (see [`check_input`]).
pub fn open_archive(path: &Path) -> Result<(memmap2::Mmap, Archive)> {
    check_file(path, Expected::Compressed)?;
    let data = map_file(path)?;
    let archive = Archive::from_bytes(&data).map_err(|e| e.in_file(path))?;
    Ok((data, archive))
}

/// Fails when the file system of `target` has less than `needed` bytes free for an unprivileged
/// user (where the platform tells; elsewhere the write itself fails when the disk fills).
fn check_space(target: &Path, needed: u64) -> Result<()> {
    #[cfg(unix)]
    {
        let dir = parent_dir(target);
        if let Ok(st) = rustix::fs::statvfs(dir) {
            let free = st.f_bavail.saturating_mul(st.f_frsize);
            if free < needed {
                return Err(Error::invalid(format!(
                    "the output needs {needed} bytes, only {free} are free on its file system"
                ))
                .in_file(target));
            }
        }
    }
    let _ = (target, needed);
    Ok(())
}

/// Decompresses an exprans file, giving back the original file byte for byte, decoding in
/// bounded memory (large tensors in pieces) straight into a temporary file renamed at the end.
pub fn decompress_file(
    input: &Path,
    output: &Path,
    decoder: &mut dyn TensorDecoder,
    force: bool,
    progress: ProgressFn,
) -> Result<SizeReport> {
    let (data, archive) = open_archive(input)?;
    check_target(output, force)?;
    check_space(output, archive.original_len())?;
    let mut out = Output::create(output, force)?;
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, out.file());
    let mut releasing = Releasing {
        inner: decoder,
        map: &data,
    };
    exprans::decompress_into(&data, &archive, &mut releasing, &mut writer, progress)
        .map_err(|e| blame(e, input, output))?;
    writer
        .into_inner()
        .map_err(|e| Error::Io(e.into_error()).in_file(output))?;
    out.commit()?;
    Ok(SizeReport {
        original: archive.original_len(),
        compressed: data.len() as u64,
    })
}

/// Decodes every tensor of an exprans file, checking all checksums, and, when `original` is
/// given, compares the result with it byte for byte. `Ok` only if everything is identical.
pub fn verify_file(
    input: &Path,
    original: Option<&Path>,
    decoder: &mut dyn TensorDecoder,
    progress: ProgressFn,
) -> Result<SizeReport> {
    let (data, archive) = open_archive(input)?;
    let original_map = original.map(map_file).transpose()?;
    let mismatch = exprans::verify(&data, &archive, original_map.as_deref(), decoder, progress)
        .map_err(|e| e.in_file(input))?;
    if let (Some(m), Some(path)) = (mismatch, original) {
        return Err(Error::corrupt(m.to_string()).in_file(path));
    }
    Ok(SizeReport {
        original: archive.original_len(),
        compressed: data.len() as u64,
    })
}

// ---------------------------------------------------------------------------------------------
// Model directories.

const SAFETENSORS_EXT: &str = ".safetensors";
const EXPRANS_EXT: &str = ".exprans.safetensors";
const INDEX_SUFFIX: &str = ".safetensors.index.json";

/// The default output path for compressing `input` (a file or a directory).
pub fn default_compressed_path(input: &Path) -> PathBuf {
    let name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let new = if input.is_dir() {
        format!("{name}.exprans")
    } else {
        match name.strip_suffix(SAFETENSORS_EXT) {
            Some(stem) => format!("{stem}{EXPRANS_EXT}"),
            None => format!("{name}{EXPRANS_EXT}"),
        }
    };
    input.with_file_name(new)
}

/// The default output path for decompressing `input` (a file or a directory).
pub fn default_decompressed_path(input: &Path) -> PathBuf {
    let name = input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let new = if input.is_dir() {
        match name.strip_suffix(".exprans") {
            Some(stem) if !stem.is_empty() => stem.to_string(),
            _ => format!("{name}.decompressed"),
        }
    } else {
        match name.strip_suffix(EXPRANS_EXT) {
            Some(stem) => format!("{stem}{SAFETENSORS_EXT}"),
            None => format!("{name}.decompressed{SAFETENSORS_EXT}"),
        }
    };
    input.with_file_name(new)
}

/// What happens to one file of a model directory.
enum DirItem {
    /// A shard to compress or decompress, with its new file name.
    Shard(String),
    /// A `*.safetensors.index.json` whose shard names are rewritten.
    Index,
    /// Copied unchanged.
    Copy,
}

/// Renames shard file names inside an index JSON (`"a.safetensors"` -> `"a.exprans.safetensors"`
/// when compressing, the reverse when not). Only quoted names in `weight_map` values change, so
/// the rest of the file stays byte for byte.
fn rewrite_index(text: &str, compress: bool, path: &Path) -> Result<String> {
    let mut out = text.to_string();
    for shard in index_shards(text, path)? {
        if let Some(new) = shard_name(&shard, compress) {
            out = out.replace(&format!("\"{shard}\""), &format!("\"{new}\""));
        }
    }
    Ok(out)
}

/// The shard file names an index JSON (`path`, for errors) maps tensors to: sorted, each once.
fn index_shards(text: &str, path: &Path) -> Result<Vec<String>> {
    let parsed: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| Error::invalid(format!("bad index JSON: {e}")).in_file(path))?;
    let map = parsed
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| Error::invalid("index has no weight_map object").in_file(path))?;
    let mut shards: Vec<String> = map
        .values()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect();
    shards.sort();
    shards.dedup();
    Ok(shards)
}

fn shard_name(name: &str, compress: bool) -> Option<String> {
    if compress {
        if name.ends_with(EXPRANS_EXT) {
            return None;
        }
        name.strip_suffix(SAFETENSORS_EXT)
            .map(|stem| format!("{stem}{EXPRANS_EXT}"))
    } else {
        name.strip_suffix(EXPRANS_EXT)
            .map(|stem| format!("{stem}{SAFETENSORS_EXT}"))
    }
}

fn classify(name: &str, compress: bool) -> DirItem {
    if name.ends_with(INDEX_SUFFIX) {
        DirItem::Index
    } else if let Some(new) = shard_name(name, compress) {
        DirItem::Shard(new)
    } else {
        DirItem::Copy
    }
}

/// Files of a directory tree, relative paths sorted.
fn walk(root: &Path) -> Result<Vec<PathBuf>> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel) = stack.pop() {
        let dir = root.join(&rel);
        for entry in std::fs::read_dir(&dir).map_err(io_err(&dir))? {
            let entry = entry.map_err(io_err(&dir))?;
            let rel_child = rel.join(entry.file_name());
            let kind = entry.file_type().map_err(io_err(&dir))?;
            if kind.is_dir() {
                stack.push(rel_child);
            } else {
                out.push(rel_child);
            }
        }
    }
    out.sort();
    Ok(out)
}

/// Processes a model directory into a new one: shards through `shard`, index files rewritten,
/// other files copied. The new directory appears only when complete.
fn map_dir(
    input: &Path,
    output: &Path,
    compress: bool,
    force: bool,
    shard: &mut dyn FnMut(&Path, &Path) -> Result<SizeReport>,
) -> Result<SizeReport> {
    let expected = if compress {
        Expected::Original
    } else {
        Expected::Compressed
    };
    check_dir(input, expected)?;
    check_target(output, force)?;
    let tmp = temp_builder(0o777)
        .tempdir_in(parent_dir(output))
        .map_err(io_err(output))?;
    let mut report = SizeReport::default();
    for rel in walk(input)? {
        let src = input.join(&rel);
        let name = rel
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let dst_dir = tmp.path().join(rel.parent().unwrap_or(Path::new("")));
        std::fs::create_dir_all(&dst_dir).map_err(io_err(&dst_dir))?;
        match classify(&name, compress) {
            DirItem::Shard(new) => report.add(shard(&src, &dst_dir.join(new))?),
            DirItem::Index => {
                let text = std::fs::read_to_string(&src).map_err(io_err(&src))?;
                let new = rewrite_index(&text, compress, &src)?;
                let dst = dst_dir.join(&name);
                std::fs::write(&dst, &new).map_err(io_err(&dst))?;
                report.add(SizeReport {
                    original: text.len() as u64,
                    compressed: new.len() as u64,
                });
            }
            DirItem::Copy => {
                let dst = dst_dir.join(&name);
                let n = std::fs::copy(&src, &dst).map_err(io_err(&src))?;
                report.add(SizeReport {
                    original: n,
                    compressed: n,
                });
            }
        }
    }
    if force && output.exists() {
        if output.is_dir() {
            std::fs::remove_dir_all(output).map_err(io_err(output))?;
        } else {
            std::fs::remove_file(output).map_err(io_err(output))?;
        }
    }
    let kept = tmp.keep();
    std::fs::rename(&kept, output).map_err(|e| {
        let _ = std::fs::remove_dir_all(&kept);
        Error::Io(e).in_file(output)
    })?;
    Ok(report)
}

/// Compresses a Hugging Face model directory: every `*.safetensors` shard becomes
/// `*.exprans.safetensors`, `*.safetensors.index.json` is rewritten to the new shard names, every
/// other file is copied unchanged.
pub fn compress_dir(
    input: &Path,
    output: &Path,
    opts: &EncodeOptions,
    force: bool,
    progress: ProgressFn,
) -> Result<SizeReport> {
    opts.validate()?;
    map_dir(input, output, true, force, &mut |src, dst| {
        compress_file(src, dst, opts, false, progress)
    })
}

/// Decompresses a directory made by [`compress_dir`] back to the original.
pub fn decompress_dir(
    input: &Path,
    output: &Path,
    decoder: &mut dyn TensorDecoder,
    force: bool,
    progress: ProgressFn,
) -> Result<SizeReport> {
    map_dir(input, output, false, force, &mut |src, dst| {
        decompress_file(src, dst, decoder, false, progress)
    })
}

/// Verifies a compressed directory: every shard decodes with good checksums, and, with
/// `original`, every file of the original directory is reproduced byte for byte.
pub fn verify_dir(
    input: &Path,
    original: Option<&Path>,
    decoder: &mut dyn TensorDecoder,
    progress: ProgressFn,
) -> Result<SizeReport> {
    check_dir(input, Expected::Compressed)?;
    let mut report = SizeReport::default();
    let files = walk(input)?;
    for rel in &files {
        let src = input.join(rel);
        let name = rel
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        let orig_path = |new_name: &str| original.map(|o| o.join(rel).with_file_name(new_name));
        match classify(&name, false) {
            DirItem::Shard(orig_name) => {
                let orig = orig_path(&orig_name);
                report.add(verify_file(&src, orig.as_deref(), decoder, progress)?);
            }
            DirItem::Index | DirItem::Copy => {
                if let Some(orig) = orig_path(&name) {
                    let ours = std::fs::read(&src).map_err(io_err(&src))?;
                    let expected = match classify(&name, false) {
                        DirItem::Index => {
                            rewrite_index(&String::from_utf8_lossy(&ours), false, &src)?
                                .into_bytes()
                        }
                        _ => ours,
                    };
                    let theirs = std::fs::read(&orig).map_err(io_err(&orig))?;
                    if theirs != expected {
                        return Err(
                            Error::corrupt("differs from the decompressed file").in_file(orig)
                        );
                    }
                }
            }
        }
    }
    if let Some(orig) = original {
        // Every original file must have a counterpart.
        for rel in walk(orig)? {
            let name = rel
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let counterpart = match classify(&name, true) {
                DirItem::Shard(new) => rel.with_file_name(new),
                _ => rel.clone(),
            };
            if !files.contains(&counterpart) {
                return Err(
                    Error::corrupt("has no counterpart in the compressed directory")
                        .in_file(orig.join(rel)),
                );
            }
        }
    }
    Ok(report)
}

// ---------------------------------------------------------------------------------------------
// What an input is, and what to run instead when it is the wrong thing.

/// What a command reads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Expected {
    /// Original safetensors weights (`compress`, `bench`).
    Original,
    /// What `exprans compress` wrote (`decompress`, `verify`, `info`).
    Compressed,
}

impl Expected {
    /// The advice that ends every message about a wrong input.
    fn what_to_give(self) -> &'static str {
        match self {
            Expected::Original => "give the model's .safetensors file or its directory",
            Expected::Compressed => {
                "give an .exprans.safetensors file or a directory made by `exprans compress`"
            }
        }
    }
}

/// What a file is, judged from its first bytes (see [`sniff`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A safetensors file whose header parses and checks; `exprans` when its metadata marks it
    /// as an exprans file.
    Safetensors {
        /// `__metadata__.format` is `exprans`.
        exprans: bool,
    },
    /// Text whose first non-blank character opens a JSON object or array (`config.json`, an
    /// index).
    Json,
    /// llama.cpp's format (magic `GGUF`).
    Gguf,
    /// A zip archive (magic `PK\x03\x04`), as `torch.save` writes since PyTorch 1.6.
    PyTorchZip,
    /// A pickle (0x80 and protocol 2 to 5), as `torch.save` wrote before PyTorch 1.6.
    Pickle,
    /// The text pointer Git LFS leaves in place of a file it has not fetched.
    GitLfsPointer,
    /// An HTML page (a web page saved instead of the file it links to).
    Html,
    /// 0 bytes.
    Empty,
    /// 1 to 7 bytes: shorter than the length prefix that starts every safetensors file.
    TooShort,
    /// None of the above, such as a damaged safetensors file: the parsers say what is wrong.
    Unknown,
}

/// A file's kind and its first bytes (at most [`SNIFF_LEN`]), for messages.
#[derive(Clone, Debug)]
pub struct Sniffed {
    /// What the file is.
    pub kind: FileKind,
    /// Its first bytes.
    pub head: Vec<u8>,
}

/// Bytes read to recognise a format by its first bytes.
const SNIFF_LEN: usize = 64;
/// Bytes of a file quoted in a message: the 8 that a safetensors reader takes for the header
/// length.
const EXCERPT_LEN: usize = 8;
const GGUF_MAGIC: &[u8] = b"GGUF";
const ZIP_MAGIC: &[u8] = b"PK\x03\x04";
const PICKLE_PROTO: u8 = 0x80;
const GIT_LFS_POINTER: &[u8] = b"version https://git-lfs.github.com/spec/";
const UTF8_BOM: &[u8] = b"\xef\xbb\xbf";

/// Identifies a file from its first bytes and, when they start a safetensors header, from that
/// header. Reads at most the header; never fails on content, only on I/O.
pub fn sniff(path: &Path) -> Result<Sniffed> {
    let mut file = File::open(path).map_err(io_err(path))?;
    let file_len = file.metadata().map_err(io_err(path))?.len();
    let mut head = Vec::with_capacity(SNIFF_LEN);
    (&mut file)
        .take(SNIFF_LEN as u64)
        .read_to_end(&mut head)
        .map_err(io_err(path))?;
    let kind = match safetensors_marking(&mut file, &head, file_len).map_err(io_err(path))? {
        Some(exprans) => FileKind::Safetensors { exprans },
        None => foreign_kind(&head),
    };
    Ok(Sniffed { kind, head })
}

/// `Some(exprans)` when `file` (of `file_len` bytes, starting with `head`) has a safetensors
/// header that parses and checks; `exprans` when it marks an exprans file. `None` otherwise.
fn safetensors_marking(
    file: &mut File,
    head: &[u8],
    file_len: u64,
) -> std::io::Result<Option<bool>> {
    let Some(prefix) = head.get(..8).and_then(|p| <&[u8; 8]>::try_from(p).ok()) else {
        return Ok(None);
    };
    let Ok(json_len) = Header::json_len_from_prefix(prefix, file_len) else {
        return Ok(None);
    };
    let mut json = vec![0u8; json_len as usize];
    file.seek(SeekFrom::Start(8))?;
    file.read_exact(&mut json)?;
    Ok(Header::parse(&json, file_len).ok().map(|header| {
        header
            .metadata
            .as_ref()
            .and_then(|m| m.get("format"))
            .is_some_and(|f| f == exprans::FORMAT_NAME)
    }))
}

/// The kind of a file that is not a valid safetensors file, from its first bytes `head`.
fn foreign_kind(head: &[u8]) -> FileKind {
    let text = head.strip_prefix(UTF8_BOM).unwrap_or(head);
    let first_char = text.iter().find(|b| !b.is_ascii_whitespace());
    if head.is_empty() {
        FileKind::Empty
    } else if head.starts_with(GGUF_MAGIC) {
        FileKind::Gguf
    } else if head.starts_with(ZIP_MAGIC) {
        FileKind::PyTorchZip
    } else if head[0] == PICKLE_PROTO && head.get(1).is_some_and(|p| (2..=5).contains(p)) {
        FileKind::Pickle
    } else if head.starts_with(GIT_LFS_POINTER) {
        FileKind::GitLfsPointer
    } else if matches!(first_char, Some(b'{' | b'[')) {
        FileKind::Json
    } else if first_char == Some(&b'<') && is_html(text) {
        FileKind::Html
    } else if head.len() < 8 {
        FileKind::TooShort
    } else {
        FileKind::Unknown
    }
}

/// Whether text starting (after blanks) with `<` opens an HTML page.
fn is_html(text: &[u8]) -> bool {
    let lower = String::from_utf8_lossy(text)
        .trim_start()
        .to_ascii_lowercase();
    lower.starts_with("<!doctype html") || lower.starts_with("<html")
}

/// `bytes` as they may appear in a message: in single quotes, printable ASCII as is, everything
/// else escaped (`\n`, `\xNN`), so that no file can print a line break or a terminal escape.
fn quote_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('\'');
    for &b in bytes {
        match b {
            b'\'' => out.push_str("\\'"),
            b'\\' => out.push_str("\\\\"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            b' '..=b'~' => out.push(b as char),
            _ => out.push_str(&format!("\\x{b:02x}")),
        }
    }
    out.push('\'');
    out
}

/// What is wrong with a file of this kind as input to a command expecting `expected`, and what
/// to do instead; `None` when the commands may go on (the right kind, or [`FileKind::Unknown`],
/// whose parsers report the problem). `name` is the file's name.
fn kind_problem(sniffed: &Sniffed, expected: Expected, name: &str) -> Option<String> {
    let give = expected.what_to_give();
    let foreign = |what: &str| {
        let excerpt = quote_bytes(&sniffed.head[..sniffed.head.len().min(EXCERPT_LEN)]);
        Some(format!(
            "not a safetensors file (it starts with {excerpt}): {what}"
        ))
    };
    let convert = "exprans reads safetensors, so convert it first \
                   (e.g. safetensors.torch.save_file(torch.load(PATH), \"model.safetensors\"))";
    match (sniffed.kind, expected) {
        (FileKind::Safetensors { exprans: true }, Expected::Original) => Some(format!(
            "already an exprans file (compressed by exprans); {RUN_DECOMPRESS}"
        )),
        (FileKind::Safetensors { exprans: false }, Expected::Compressed) => Some(format!(
            "not an exprans file: a plain safetensors file, not compressed by exprans; \
             {RUN_COMPRESS}"
        )),
        (FileKind::Safetensors { .. } | FileKind::Unknown, _) => None,
        (FileKind::Json, _) if name.ends_with(INDEX_SUFFIX) => {
            foreign("a JSON file (a shard index); give the directory it is in")
        }
        (FileKind::Json, _) => foreign(&format!("a JSON file; {give}")),
        (FileKind::Gguf, _) => foreign(
            "a GGUF file (llama.cpp's format); exprans reads safetensors, so convert the model \
             to .safetensors first (e.g. transformers: from_pretrained(..., gguf_file=...), then \
             save_pretrained)",
        ),
        (FileKind::PyTorchZip, _) => foreign(&format!(
            "a PyTorch checkpoint (a zip archive, as torch.save writes); {convert}"
        )),
        (FileKind::Pickle, _) => foreign(&format!(
            "a PyTorch checkpoint (a legacy pickle, as torch.save wrote before PyTorch 1.6); \
             {convert}"
        )),
        (FileKind::GitLfsPointer, _) => foreign(
            "a Git LFS pointer, not the weights; fetch the file itself (`git lfs pull` in the \
             clone, or download it from the model page)",
        ),
        (FileKind::Html, _) => foreign(
            "an HTML page, not the weights (a web page saved instead of the file?); download \
             the file itself (on Hugging Face, the /resolve/ link, not /blob/)",
        ),
        (FileKind::Empty, _) => Some(format!("empty file (0 bytes); {give}")),
        (FileKind::TooShort, _) => Some(format!(
            "file too short to be safetensors ({} bytes, under the 8-byte header length every \
             safetensors file starts with); {give}",
            sniffed.head.len()
        )),
    }
}

/// What to do with something compressed by exprans, for a command that reads originals.
const RUN_DECOMPRESS: &str =
    "run `exprans decompress` to get the original back, or `exprans info` to see what is inside";
/// What to do with plain safetensors weights, for a command that reads compressed ones.
const RUN_COMPRESS: &str =
    "run `exprans compress` to compress it (`exprans bench` measures what it would give)";

/// Checks that `path` (a file or a model directory) is what a command expecting `expected`
/// reads, or says what it is and what to run instead.
pub fn check_input(path: &Path, expected: Expected) -> Result<()> {
    if path.is_dir() {
        check_dir(path, expected)
    } else {
        check_file(path, expected)
    }
}

/// [`check_input`] for a file.
fn check_file(path: &Path, expected: Expected) -> Result<()> {
    let sniffed = sniff(path)?;
    match kind_problem(&sniffed, expected, &file_name(path)) {
        Some(problem) => Err(Error::invalid(problem).in_file(path)),
        None => Ok(()),
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// [`check_input`] for a directory: it has shards ([`model_shards`]), none of them is a foreign
/// file, a directory to compress holds no exprans shard, and a compressed one is not made of
/// plain shards only (plain shards beside exprans ones are copied by `decompress`).
fn check_dir(dir: &Path, expected: Expected) -> Result<()> {
    let shards = model_shards(dir)?;
    if shards.is_empty() {
        return Err(Error::invalid(format!(
            "no .safetensors files in this directory; {}",
            expected.what_to_give()
        ))
        .in_file(dir));
    }
    let mut exprans_shards = Vec::new();
    let mut plain_shards = 0;
    for rel in &shards {
        let path = dir.join(rel);
        let sniffed = sniff(&path)?;
        match sniffed.kind {
            FileKind::Safetensors { exprans: true } => exprans_shards.push(path),
            FileKind::Safetensors { exprans: false } => plain_shards += 1,
            _ => {
                if let Some(problem) = kind_problem(&sniffed, expected, &file_name(&path)) {
                    return Err(Error::invalid(problem).in_file(path));
                }
            }
        }
    }
    match expected {
        Expected::Original if exprans_shards.len() == shards.len() => Err(Error::invalid(format!(
            "already compressed by exprans (every shard is an exprans file); {RUN_DECOMPRESS}"
        ))
        .in_file(dir)),
        Expected::Original if !exprans_shards.is_empty() => Err(Error::invalid(
            "already an exprans file (compressed by exprans), beside original shards; compress a \
             directory that holds the original shards only",
        )
        .in_file(&exprans_shards[0])),
        Expected::Compressed if exprans_shards.is_empty() && plain_shards > 0 => {
            Err(Error::invalid(format!(
                "not compressed by exprans (its shards are plain safetensors files); {RUN_COMPRESS}"
            ))
            .in_file(dir))
        }
        _ => Ok(()),
    }
}

/// The weight files of a model directory, relative to it: the shards its top-level
/// `*.safetensors.index.json` files map tensors to when it has any (each must exist and lie
/// inside the directory), else every `*.safetensors` file of the tree. Sorted, each once; empty
/// when there are none.
pub fn model_shards(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut indexes = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        if entry.file_name().to_string_lossy().ends_with(INDEX_SUFFIX) {
            indexes.push(entry.path());
        }
    }
    if indexes.is_empty() {
        let mut shards = walk(dir)?;
        shards.retain(|rel| file_name(rel).ends_with(SAFETENSORS_EXT));
        return Ok(shards);
    }
    let mut shards = Vec::new();
    for index in &indexes {
        let text = std::fs::read_to_string(index).map_err(io_err(index))?;
        for name in index_shards(&text, index)? {
            shards.push(indexed_shard(dir, index, &name)?);
        }
    }
    shards.sort();
    shards.dedup();
    Ok(shards)
}

/// A shard `name` listed by `index` (in `dir`), checked to be a file inside `dir`.
fn indexed_shard(dir: &Path, index: &Path, name: &str) -> Result<PathBuf> {
    let rel = PathBuf::from(name);
    if !rel.components().all(|c| matches!(c, Component::Normal(_))) {
        return Err(Error::invalid(format!(
            "lists shard {}, which is not a file name inside the directory",
            quote_bytes(name.as_bytes())
        ))
        .in_file(index));
    }
    let path = dir.join(&rel);
    if !path.is_file() {
        return Err(Error::invalid(format!(
            "listed in {} but missing (an incomplete download?)",
            file_name(index)
        ))
        .in_file(path));
    }
    Ok(rel)
}
