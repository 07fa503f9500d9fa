//! Whole files and model directories: compress, decompress, verify (native targets only).
//!
//! Memory stays bounded by a small multiple of the largest tensor: inputs are memory-mapped and
//! processed tensor by tensor, and the output header is reserved up front (see
//! [`exprans::reserve_header_len`]) and written last. Outputs are written to a temporary file in
//! the target folder and renamed into place only when complete, so a failure never leaves a
//! partial output.

use std::fs::File;
use std::path::{Path, PathBuf};

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

/// A temporary file beside `target`, renamed onto it by [`Output::commit`].
struct Output {
    tmp: tempfile::NamedTempFile,
    target: PathBuf,
    force: bool,
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

impl Output {
    fn create(target: &Path, force: bool) -> Result<Output> {
        check_target(target, force)?;
        let tmp = tempfile::Builder::new()
            .prefix(".exprans-")
            .tempfile_in(parent_dir(target))
            .map_err(io_err(target))?;
        Ok(Output {
            tmp,
            target: target.to_path_buf(),
            force,
        })
    }

    fn file(&mut self) -> &mut File {
        self.tmp.as_file_mut()
    }

    fn commit(self) -> Result<()> {
        let target = self.target;
        self.tmp.as_file().sync_all().map_err(io_err(&target))?;
        let result = if self.force {
            self.tmp.persist(&target)
        } else {
            self.tmp.persist_noclobber(&target)
        };
        result.map_err(|e| Error::Io(e.error).in_file(&target))?;
        Ok(())
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
    let data = map_file(input)?;
    let mut out = Output::create(output, force)?;
    let written = exprans::compress_into(&data, out.file(), opts, progress)
        .map_err(|e| blame(e, input, output))?;
    out.commit()?;
    Ok(SizeReport {
        original: data.len() as u64,
        compressed: written,
    })
}

/// Opens an exprans file: its map and parsed header.
pub fn open_archive(path: &Path) -> Result<(memmap2::Mmap, Archive)> {
    let data = map_file(path)?;
    let archive = Archive::from_bytes(&data).map_err(|e| e.in_file(path))?;
    Ok((data, archive))
}

/// Decompresses an exprans file, giving back the original file byte for byte.
pub fn decompress_file(
    input: &Path,
    output: &Path,
    decoder: &mut dyn TensorDecoder,
    force: bool,
    progress: ProgressFn,
) -> Result<SizeReport> {
    let (data, archive) = open_archive(input)?;
    let mut out = Output::create(output, force)?;
    let mut writer = std::io::BufWriter::with_capacity(1 << 20, out.file());
    exprans::decompress_into(&data, &archive, decoder, &mut writer, progress)
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
    let mut out = text.to_string();
    for shard in shards {
        if let Some(new) = shard_name(&shard, compress) {
            out = out.replace(&format!("\"{shard}\""), &format!("\"{new}\""));
        }
    }
    Ok(out)
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
    check_target(output, force)?;
    let tmp = tempfile::Builder::new()
        .prefix(".exprans-")
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
