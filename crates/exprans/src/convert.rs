//! Whole-file conversions over bytes in memory (or memory-mapped) and any writer: the core of
//! `compress`, `decompress` and `verify`, shared by the CLI's file layer ([`crate::files`]) and
//! by callers that hold files in memory (tests, the browser).
//!
//! Errors of type [`Error::Io`] come only from the writer; every other error is about the input.

use std::io::{Cursor, Seek, SeekFrom, Write};

use crate::archive::{self, Archive, BlockLayout, CpuDecoder, TensorIndex};
use crate::codec::EncodeOptions;
use crate::safetensors::Header;
use crate::source_header::SourceHeader;
use crate::{Error, Result};

/// Decodes tensors from their stored bytes (on the CPU or a GPU). Implementations check the
/// stored checksum before decoding and the decoded checksum after.
pub trait TensorDecoder: Send {
    /// Decodes one tensor into `out`, replacing its contents (its allocation is reused).
    fn decode_into(&mut self, t: &TensorIndex, stored: &[u8], out: &mut Vec<u8>) -> Result<()>;

    /// Decodes one tensor.
    fn decode(&mut self, t: &TensorIndex, stored: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.decode_into(t, stored, &mut out)?;
        Ok(out)
    }

    /// Decodes several tensors, in order, into `outs` (resized to `items.len()`; existing
    /// buffers are reused). Implementations may work on them together: the CPU decoder in
    /// parallel, the GPU decoder in one submission.
    fn decode_batch(
        &mut self,
        items: &[(&TensorIndex, &[u8])],
        outs: &mut Vec<Vec<u8>>,
    ) -> Result<()> {
        outs.resize_with(items.len(), Vec::new);
        for ((t, stored), out) in items.iter().zip(outs.iter_mut()) {
            self.decode_into(t, stored, out)?;
        }
        Ok(())
    }
}

impl TensorDecoder for CpuDecoder {
    fn decode_into(&mut self, t: &TensorIndex, stored: &[u8], out: &mut Vec<u8>) -> Result<()> {
        archive::decode_tensor_into(t, stored, *self, out)
    }

    #[cfg(all(feature = "parallel", not(target_arch = "wasm32")))]
    fn decode_batch(
        &mut self,
        items: &[(&TensorIndex, &[u8])],
        outs: &mut Vec<Vec<u8>>,
    ) -> Result<()> {
        use rayon::prelude::*;
        let decoder = *self;
        outs.resize_with(items.len(), Vec::new);
        items
            .par_iter()
            .zip(outs.par_iter_mut())
            .try_for_each(|((t, stored), out)| archive::decode_tensor_into(t, stored, decoder, out))
    }
}

/// Work is done in batches of consecutive tensors of at most this many original bytes (or one
/// larger tensor): tensors of a batch are compressed or decoded together, so memory stays
/// bounded by this plus twice the largest tensor.
pub const BATCH_BYTES: u64 = 64 << 20;

/// Splits `sizes` into ranges of consecutive items of at most [`BATCH_BYTES`] in all (a larger
/// item alone).
fn batches(sizes: impl IntoIterator<Item = u64>) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes, mut n) = (0, 0u64, 0);
    for size in sizes {
        if n > start && bytes + size > BATCH_BYTES {
            out.push(start..n);
            (start, bytes) = (n, 0);
        }
        bytes += size;
        n += 1;
    }
    if n > start {
        out.push(start..n);
    }
    out
}

/// `f` over `items`, in parallel on native targets.
fn map_items<T: Sync, U: Send>(
    items: &[T],
    f: impl Fn(&T) -> Result<U> + Sync + Send,
) -> Result<Vec<U>> {
    #[cfg(all(feature = "parallel", not(target_arch = "wasm32")))]
    {
        use rayon::prelude::*;
        items.par_iter().map(f).collect()
    }
    #[cfg(not(all(feature = "parallel", not(target_arch = "wasm32"))))]
    items.iter().map(f).collect()
}

/// Called with the number of original bytes just processed.
pub type ProgressFn<'a> = &'a (dyn Fn(u64) + Sync);

/// Parses and checks the header of a safetensors file held in memory.
pub fn read_header(file: &[u8]) -> Result<Header> {
    let prefix: &[u8; 8] = file
        .get(..8)
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| Error::invalid("file too short to be safetensors"))?;
    let json_len = Header::json_len_from_prefix(prefix, file.len() as u64)?;
    Header::parse(&file[8..8 + json_len as usize], file.len() as u64)
}

/// Compresses the safetensors file `input` into `out` (written from its position 0 on; seeks
/// back to write the header last). Memory: about twice the largest tensor. Returns the number
/// of bytes written.
pub fn compress_into<W: Write + Seek>(
    input: &[u8],
    out: &mut W,
    opts: &EncodeOptions,
    blocks: BlockLayout,
    progress: ProgressFn,
) -> Result<u64> {
    opts.validate()?;
    let header = read_header(input)?;
    let format = header.metadata.as_ref().and_then(|m| m.get("format"));
    if format.map(String::as_str) == Some(archive::FORMAT_NAME) {
        return Err(Error::invalid("already an exprans file"));
    }
    let data_start = header.data_start() as usize;
    let source_json = std::str::from_utf8(&input[8..data_start]).expect("checked by Header::parse");
    let source = SourceHeader::new(source_json, &header);
    let reserved = archive::reserve_header_len(&source, &header.tensors);

    out.seek(SeekFrom::Start(8 + reserved as u64))?;
    let mut index = Vec::with_capacity(header.tensors.len());
    let mut lens = Vec::with_capacity(header.tensors.len());
    let tensors = &header.tensors;
    for batch in batches(
        tensors
            .iter()
            .map(|(_, e)| e.data_offsets.1 - e.data_offsets.0),
    ) {
        let stored = map_items(&tensors[batch], |(name, entry)| {
            let (begin, end) = entry.data_offsets;
            let bytes = &input[data_start + begin as usize..data_start + end as usize];
            archive::compress_tensor(name, entry, bytes, opts, blocks)
        })?;
        for s in stored {
            out.write_all(&s.stored)?;
            lens.push(s.stored.len() as u64);
            progress(s.index.bytes);
            index.push(s.index);
        }
    }
    let json = archive::pad_header(archive::render_header(&source, &index, &lens), reserved)?;
    out.seek(SeekFrom::Start(0))?;
    out.write_all(&(json.len() as u64).to_le_bytes())?;
    out.write_all(json.as_bytes())?;
    out.flush()?;
    Ok(8 + reserved as u64 + lens.iter().sum::<u64>())
}

/// [`compress_into`] a new `Vec`.
pub fn compress(input: &[u8], opts: &EncodeOptions) -> Result<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    compress_into(input, &mut out, opts, BlockLayout::Fixed, &|_| {})?;
    Ok(out.into_inner())
}

fn stored_bytes<'a>(file: &'a [u8], t: &archive::ArchiveTensor) -> &'a [u8] {
    &file[t.stored.start as usize..t.stored.end as usize]
}

/// Decodes every tensor of `file` in data order, in batches, handing each to `each` until it
/// returns `false`.
fn for_each_decoded(
    file: &[u8],
    archive: &Archive,
    decoder: &mut dyn TensorDecoder,
    mut each: impl FnMut(&TensorIndex, &[u8]) -> Result<bool>,
) -> Result<()> {
    let tensors = &archive.tensors;
    // Output buffers live across batches: their memory is reused rather than faulted in anew.
    let mut outs = Vec::new();
    for batch in batches(tensors.iter().map(|t| t.index.bytes)) {
        let items: Vec<(&TensorIndex, &[u8])> = tensors[batch]
            .iter()
            .map(|t| (&t.index, stored_bytes(file, t)))
            .collect();
        decoder.decode_batch(&items, &mut outs)?;
        for (decoded, (t, _)) in outs.iter().zip(&items) {
            if !each(t, decoded)? {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Writes the original file of the exprans file `file` (whose parsed header is `archive`) to
/// `out`, tensor by tensor.
pub fn decompress_into<W: Write>(
    file: &[u8],
    archive: &Archive,
    decoder: &mut dyn TensorDecoder,
    out: &mut W,
    progress: ProgressFn,
) -> Result<()> {
    out.write_all(&archive.source_header_bytes())?;
    for_each_decoded(file, archive, decoder, |t, decoded| {
        out.write_all(decoded)?;
        progress(t.bytes);
        Ok(true)
    })?;
    out.flush()?;
    Ok(())
}

/// The original file of an exprans file held in memory, decoded on the CPU.
pub fn decompress(file: &[u8], decoder: CpuDecoder) -> Result<Vec<u8>> {
    let archive = Archive::from_bytes(file)?;
    let mut out = Vec::with_capacity(archive.original_len() as usize);
    decompress_into(file, &archive, &mut { decoder }, &mut out, &|_| {})?;
    Ok(out)
}

/// How a verification failed against the original.
#[derive(Debug)]
pub enum Mismatch {
    /// The original has another length.
    Length {
        /// Its length.
        original: u64,
        /// The length the compressed file decodes to.
        decoded: u64,
    },
    /// The headers differ.
    Header,
    /// A tensor differs.
    Tensor(String),
}

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        match self {
            Mismatch::Length { original, decoded } => {
                write!(
                    f,
                    "is {original} bytes, the compressed file decodes to {decoded}"
                )
            }
            Mismatch::Header => write!(f, "header differs from the decoded header"),
            Mismatch::Tensor(name) => write!(f, "tensor '{name}' differs from the decoded tensor"),
        }
    }
}

/// Decodes every tensor of `file` (checking every checksum) and compares the result with
/// `original` when given. `Ok(None)`: all good and identical; `Ok(Some(_))`: decodes cleanly but
/// differs from `original`; `Err`: the compressed file is bad.
pub fn verify(
    file: &[u8],
    archive: &Archive,
    original: Option<&[u8]>,
    decoder: &mut dyn TensorDecoder,
    progress: ProgressFn,
) -> Result<Option<Mismatch>> {
    let mut pos = 0usize;
    if let Some(orig) = original {
        if orig.len() as u64 != archive.original_len() {
            return Ok(Some(Mismatch::Length {
                original: orig.len() as u64,
                decoded: archive.original_len(),
            }));
        }
        let head = archive.source_header_bytes();
        if orig[..head.len()] != head[..] {
            return Ok(Some(Mismatch::Header));
        }
        pos = head.len();
    }
    let mut mismatch = None;
    for_each_decoded(file, archive, decoder, |t, decoded| {
        if let Some(orig) = original {
            if orig[pos..][..decoded.len()] != *decoded {
                mismatch = Some(Mismatch::Tensor(t.name.clone()));
                return Ok(false);
            }
            pos += decoded.len();
        }
        progress(t.bytes);
        Ok(true)
    })?;
    Ok(mismatch)
}

/// The GPU decoder as a [`TensorDecoder`]: checksums are checked on the host, before upload and
/// after read-back; raw tensors need no GPU.
#[cfg(all(feature = "gpu", not(target_arch = "wasm32")))]
impl TensorDecoder for crate::gpu::GpuDecoder {
    fn decode_into(&mut self, t: &TensorIndex, stored: &[u8], out: &mut Vec<u8>) -> Result<()> {
        let mut outs = vec![std::mem::take(out)];
        self.decode_batch(&[(t, stored)], &mut outs)?;
        *out = outs.pop().expect("one output");
        Ok(())
    }

    /// Every coded tensor of the batch in one GPU submission.
    fn decode_batch(
        &mut self,
        items: &[(&TensorIndex, &[u8])],
        outs: &mut Vec<Vec<u8>>,
    ) -> Result<()> {
        let mut coded = Vec::new();
        for (t, stored) in items {
            archive::check_stored(t, stored)?;
            if t.encoding == archive::Encoding::Rans {
                coded.push((*t, archive::coded_entry(t, stored)?));
            }
        }
        let entries: Vec<&crate::codec::CodedEntry> = coded.iter().map(|(_, e)| e).collect();
        let decoded = match self.decode_to_host_blocking(&entries) {
            Ok(decoded) => decoded,
            Err(batch_error) => {
                // Name the tensor that failed: decode them one by one.
                for (t, entry) in &coded {
                    self.decode_to_host_blocking(&[entry])
                        .map_err(|e| e.in_tensor(&t.name))?;
                }
                return Err(batch_error);
            }
        };
        let mut decoded = decoded.into_iter();
        outs.resize_with(items.len(), Vec::new);
        for ((t, stored), out) in items.iter().zip(outs.iter_mut()) {
            match t.encoding {
                archive::Encoding::Raw => {
                    out.clear();
                    out.extend_from_slice(archive::raw_tensor(t, stored)?);
                }
                archive::Encoding::Rans => {
                    *out = decoded.next().expect("one output per coded entry")
                }
            }
            archive::check_decoded(t, out)?;
        }
        Ok(())
    }
}
