//! Whole-file conversions over bytes in memory (or memory-mapped) and any writer: the core of
//! `compress`, `decompress` and `verify`, shared by the command-line tool's file layer and by
//! callers that hold files in memory (tests, the browser).
//!
//! Errors of type [`Error::Io`] come only from the writer; every other error is about the input.

use std::io::{Cursor, Seek, Write};

use crate::archive::{Archive, TensorIndex};
use crate::codec::EncodeOptions;
use crate::safetensors::Header;
use crate::tensor::CpuDecoder;
use crate::writer::{encode_tensor, ArchiveWriter};
use crate::Result;

/// Decodes tensors from their stored bytes (on the CPU or a GPU), checking the stored checksum
/// before decoding and the decoded checksum after: what [`decompress_into`] and [`verify`] run.
pub trait TensorDecoder {
    /// Decodes several tensors, in order, into `outs` (resized to `items.len()`; existing
    /// buffers are reused). Implementations may work on them together: the CPU decoder in
    /// parallel, the GPU decoder in one submission.
    fn decode_batch(
        &mut self,
        items: &[(&TensorIndex, &[u8])],
        outs: &mut Vec<Vec<u8>>,
    ) -> Result<()>;

    /// Decodes one tensor, handing its decoded bytes to `each` in order, in one or more pieces,
    /// with both checksums checked (the decoded one after the last piece). The CPU decoder
    /// streams pieces of about [`BATCH_BYTES`], so a tensor larger than memory decodes in
    /// bounded memory; the default decodes the whole tensor with
    /// [`TensorDecoder::decode_batch`].
    fn decode_streamed(
        &mut self,
        t: &TensorIndex,
        stored: &[u8],
        each: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let mut outs = Vec::new();
        self.decode_batch(&[(t, stored)], &mut outs)?;
        each(&outs[0])
    }
}

impl TensorDecoder for CpuDecoder {
    fn decode_batch(
        &mut self,
        items: &[(&TensorIndex, &[u8])],
        outs: &mut Vec<Vec<u8>>,
    ) -> Result<()> {
        outs.resize_with(items.len(), Vec::new);
        let decoder = *self;
        #[cfg(all(feature = "parallel", not(target_arch = "wasm32")))]
        {
            use rayon::prelude::*;
            items
                .par_iter()
                .zip(outs.par_iter_mut())
                .try_for_each(|((t, stored), out)| decoder.decode_tensor_into(t, stored, out))
        }
        #[cfg(not(all(feature = "parallel", not(target_arch = "wasm32"))))]
        items
            .iter()
            .zip(outs.iter_mut())
            .try_for_each(|((t, stored), out)| decoder.decode_tensor_into(t, stored, out))
    }

    fn decode_streamed(
        &mut self,
        t: &TensorIndex,
        stored: &[u8],
        each: &mut dyn FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        self.decode_tensor_chunks(t, stored, BATCH_BYTES as usize, each)
    }
}

/// Work is done in batches of consecutive tensors of at most this many original bytes (or one
/// larger tensor): tensors of a batch are compressed or decoded together. Decoding holds at most
/// about this much decoded data (larger tensors are decoded in pieces of this size,
/// [`TensorDecoder::decode_streamed`]); compressing holds a batch or one larger tensor and its
/// coded form.
pub const BATCH_BYTES: u64 = 64 << 20;

/// Splits `sizes` into ranges of consecutive items of at most [`BATCH_BYTES`] in all (a larger
/// item alone).
fn batches(sizes: impl IntoIterator<Item = u64>) -> Vec<std::ops::Range<usize>> {
    groups(sizes, BATCH_BYTES)
}

/// Splits `sizes` into ranges of consecutive items of at most `budget` in all (a larger item
/// alone); none for no items.
pub(crate) fn groups(
    sizes: impl IntoIterator<Item = u64>,
    budget: u64,
) -> Vec<std::ops::Range<usize>> {
    let mut out = Vec::new();
    let (mut start, mut bytes, mut n) = (0, 0u64, 0);
    for size in sizes {
        if n > start && bytes + size > budget {
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

/// Compresses the safetensors file `input` into `out` (written from its position 0 on; seeks
/// back to write the header last). Tensors are compressed in batches, in parallel with the
/// `parallel` feature; memory: about twice the largest batch. Returns the number of bytes
/// written.
pub fn compress_into<W: Write + Seek>(
    input: &[u8],
    out: &mut W,
    opts: &EncodeOptions,
    progress: ProgressFn,
) -> Result<u64> {
    opts.validate()?;
    let header = Header::read(input)?;
    let data_start = header.data_start() as usize;
    let mut writer = ArchiveWriter::new(out, input, input.len() as u64)?;
    let tensors = &header.tensors;
    for batch in batches(
        tensors
            .iter()
            .map(|(_, e)| e.data_offsets.1 - e.data_offsets.0),
    ) {
        let stored = map_items(&tensors[batch], |(name, entry)| {
            let (begin, end) = entry.data_offsets;
            let bytes = &input[data_start + begin as usize..data_start + end as usize];
            encode_tensor(name, entry, bytes, opts)
        })?;
        for s in stored {
            progress(s.index.bytes);
            writer.push(s)?;
        }
    }
    Ok(writer.finish()?.1)
}

/// [`compress_into`] a new `Vec`.
pub fn compress(input: &[u8], opts: &EncodeOptions) -> Result<Vec<u8>> {
    let mut out = Cursor::new(Vec::new());
    compress_into(input, &mut out, opts, &|_| {})?;
    Ok(out.into_inner())
}

/// Decodes every tensor of `file` in data order, in batches, handing each to `each` until it
/// returns `false`; a tensor larger than [`BATCH_BYTES`] is handed on in consecutive pieces.
fn for_each_decoded(
    file: &[u8],
    archive: &Archive,
    decoder: &mut dyn TensorDecoder,
    mut each: impl FnMut(&TensorIndex, &[u8]) -> Result<bool>,
) -> Result<()> {
    let tensors = &archive.tensors;
    // Decoded buffers, reused from batch to batch.
    let mut outs = Vec::new();
    for batch in batches(tensors.iter().map(|t| t.index.bytes)) {
        if let [one] = &tensors[batch.clone()] {
            if one.index.bytes > BATCH_BYTES {
                // One large tensor, decoded and handed on in pieces.
                let mut go_on = true;
                decoder.decode_streamed(&one.index, one.stored_in(file)?, &mut |piece| {
                    if go_on {
                        go_on = each(&one.index, piece)?;
                    }
                    Ok(())
                })?;
                if !go_on {
                    return Ok(());
                }
                continue;
            }
        }
        let items: Vec<(&TensorIndex, &[u8])> = tensors[batch]
            .iter()
            .map(|t| Ok((&t.index, t.stored_in(file)?)))
            .collect::<Result<_>>()?;
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
    for_each_decoded(file, archive, decoder, |_, decoded| {
        out.write_all(decoded)?;
        progress(decoded.len() as u64);
        Ok(true)
    })?;
    out.flush()?;
    Ok(())
}

/// The original file of an exprans file held in memory, decoded on the CPU.
///
/// ```
/// # let values: Vec<u8> = (0..4096u32)
/// #     .flat_map(|i| half::bf16::from_f32((i % 251) as f32 * 1e-3 - 0.1).to_le_bytes())
/// #     .collect();
/// # let header = format!(r#"{{"w":{{"dtype":"BF16","shape":[64,64],"data_offsets":[0,{}]}}}}"#, values.len());
/// # let mut file = (header.len() as u64).to_le_bytes().to_vec();
/// # file.extend_from_slice(header.as_bytes());
/// # file.extend_from_slice(&values);
/// use exprans::{CpuDecoder, EncodeOptions};
/// let packed = exprans::compress(&file, &EncodeOptions::default())?;
/// assert!(packed.len() < file.len());
/// assert_eq!(exprans::decompress(&packed, CpuDecoder::Reference)?, file);
/// # Ok::<(), exprans::Error>(())
/// ```
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
            Mismatch::Tensor(name) => write!(
                f,
                "tensor {} differs from the decoded tensor",
                crate::error::quote(name)
            ),
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
        progress(decoded.len() as u64);
        Ok(true)
    })?;
    Ok(mismatch)
}
