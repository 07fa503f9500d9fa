//! The tensor-level decode every host uses: check the stored checksum, parse, decode, check the
//! decoded checksum. [`CpuDecoder`] is the CPU's; the GPU's is `gpu::GpuDecoder::decode_tensors`,
//! built on the same [`open_stored`] and [`check_decoded`], so that every decoder checks the
//! same things and says the same words.

use crate::archive::{Encoding, TensorIndex};
use crate::codec::CodedEntry;
use crate::cpu::{self, CpuKernel};
use crate::{Error, Result};

/// A tensor's stored bytes, checked against their checksum and parsed.
#[derive(Clone, Debug)]
pub(crate) enum Stored<'a> {
    /// The original bytes ([`Encoding::Raw`]), without padding.
    Raw(&'a [u8]),
    /// A validated coded entry ([`Encoding::Rans`]).
    Coded(CodedEntry<'a>),
}

/// Checks a tensor's stored bytes against their checksum and parses them. Every decoder calls
/// this first: nothing unchecked reaches a decoder.
pub(crate) fn open_stored<'a>(t: &TensorIndex, stored: &'a [u8]) -> Result<Stored<'a>> {
    if crc32c::crc32c(stored) != t.stored_crc32c {
        return Err(Error::corrupt("stored bytes fail their checksum").in_tensor(&t.name));
    }
    match t.encoding {
        Encoding::Raw => {
            let fail = |what: &str| Error::corrupt(what).in_tensor(&t.name);
            let at = usize::try_from(t.bytes)
                .ok()
                .filter(|&n| n <= stored.len())
                .ok_or_else(|| fail("verbatim entry shorter than the tensor"))?;
            let (bytes, padding) = stored.split_at(at);
            if padding.iter().any(|&b| b != 0) {
                return Err(fail("verbatim entry padding is not zero"));
            }
            Ok(Stored::Raw(bytes))
        }
        Encoding::Rans => {
            let layout = t
                .layout()
                .ok_or_else(|| Error::corrupt("dtype cannot be coded").in_tensor(&t.name))?;
            let entry = CodedEntry::parse(stored, layout, t.value_count())
                .map_err(|e| e.in_tensor(&t.name))?;
            if entry.version() != t.container_version {
                return Err(Error::corrupt(format!(
                    "a version-{} coded entry in a version-{} file",
                    entry.version(),
                    t.container_version
                ))
                .in_tensor(&t.name));
            }
            Ok(Stored::Coded(entry))
        }
    }
}

impl<'a> CodedEntry<'a> {
    /// The coded entry of a tensor of an exprans file, its stored checksum checked, or `None`
    /// when the tensor is stored verbatim. For kernels that decode entries themselves (the fused
    /// decode+matvec kernels of exprans-infer).
    pub fn of_tensor(t: &TensorIndex, stored: &'a [u8]) -> Result<Option<CodedEntry<'a>>> {
        Ok(match open_stored(t, stored)? {
            Stored::Raw(_) => None,
            Stored::Coded(entry) => Some(entry),
        })
    }
}

/// Checks decoded bytes against their checksum: the last step of every decoder.
pub(crate) fn check_decoded(t: &TensorIndex, decoded: &[u8]) -> Result<()> {
    if crc32c::crc32c(decoded) != t.decoded_crc32c {
        return Err(Error::corrupt("decoded bytes fail their checksum").in_tensor(&t.name));
    }
    Ok(())
}

/// The CPU decoder of tensors: [`CpuDecoder::decode_tensor`] checks the stored checksum, decodes
/// and checks the decoded checksum.
///
/// ```
/// use exprans::{Archive, CpuDecoder, EncodeOptions};
/// # let values: Vec<u8> = (0..4096u32)
/// #     .flat_map(|i| half::bf16::from_f32((i % 251) as f32 * 1e-3 - 0.1).to_le_bytes())
/// #     .collect();
/// # let header = format!(r#"{{"w":{{"dtype":"BF16","shape":[64,64],"data_offsets":[0,{}]}}}}"#, values.len());
/// # let mut file = (header.len() as u64).to_le_bytes().to_vec();
/// # file.extend_from_slice(header.as_bytes());
/// # file.extend_from_slice(&values);
/// let packed = exprans::compress(&file, &EncodeOptions::default())?;
/// let archive = Archive::from_bytes(&packed)?;
/// let w = archive.tensor("w").expect("tensor w");
/// let decoded = CpuDecoder::default().decode_tensor(&w.index, w.stored_in(&packed)?)?;
/// assert_eq!(decoded, values);
/// # Ok::<(), exprans::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuDecoder {
    /// The reference decoder: short, lane after lane, every read checked. The oracle every
    /// other decoder is tested against; not a fast path.
    Reference,
    /// The fast decoder: the 32 lanes of a block as SIMD vectors ([`CpuKernel::best`]).
    Fast {
        /// Decode blocks in parallel on the current rayon pool (with the `parallel` feature).
        parallel: bool,
    },
    /// The fast decoder with a chosen kernel (which must be [`CpuKernel::is_available`]).
    Kernel {
        /// The block kernel.
        kernel: CpuKernel,
        /// Decode blocks in parallel on the current rayon pool (with the `parallel` feature).
        parallel: bool,
    },
}

impl Default for CpuDecoder {
    /// The fast decoder, in parallel.
    fn default() -> Self {
        CpuDecoder::Fast { parallel: true }
    }
}

impl CpuDecoder {
    /// Decodes one tensor from its stored bytes, checking both checksums.
    pub fn decode_tensor(&self, t: &TensorIndex, stored: &[u8]) -> Result<Vec<u8>> {
        let mut out = Vec::new();
        self.decode_tensor_into(t, stored, &mut out)?;
        Ok(out)
    }

    /// [`CpuDecoder::decode_tensor`] into `out` (replacing its contents). Reusing one buffer for
    /// many tensors spares the page faults of fresh memory, a fifth of the decode time on large
    /// tensors.
    pub fn decode_tensor_into(
        &self,
        t: &TensorIndex,
        stored: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<()> {
        out.clear();
        match open_stored(t, stored)? {
            Stored::Raw(bytes) => out.extend_from_slice(bytes),
            Stored::Coded(entry) => {
                out.resize(t.bytes as usize, 0);
                self.decode_entry(&entry, out)
                    .map_err(|e| e.in_tensor(&t.name))?;
            }
        }
        check_decoded(t, out)
    }

    /// Decodes one tensor in pieces of at most about `chunk_bytes` bytes (whole blocks; at least
    /// one block), calling `each` with every piece in order, so that a tensor larger than memory
    /// can be written out as it is decoded. Both checksums are checked: the stored one before
    /// anything is decoded, the decoded one over all pieces after the last (so `each` may have
    /// seen bytes of a tensor that then fails; callers writing files discard the output). The
    /// reference decoder decodes the whole tensor as one piece.
    pub fn decode_tensor_chunks(
        &self,
        t: &TensorIndex,
        stored: &[u8],
        chunk_bytes: usize,
        mut each: impl FnMut(&[u8]) -> Result<()>,
    ) -> Result<()> {
        let (kernel, parallel) = match *self {
            CpuDecoder::Reference => {
                let decoded = self.decode_tensor(t, stored)?;
                return each(&decoded);
            }
            CpuDecoder::Fast { parallel } => (CpuKernel::best(), parallel),
            CpuDecoder::Kernel { kernel, parallel } => (kernel, parallel),
        };
        let mut crc = 0;
        match open_stored(t, stored)? {
            Stored::Raw(bytes) => {
                for piece in bytes.chunks(chunk_bytes.max(1)) {
                    crc = crc32c::crc32c_append(crc, piece);
                    each(piece)?;
                }
            }
            Stored::Coded(entry) => {
                let value_bytes = entry.header.layout.value_bytes();
                let block_bytes = entry.header.block_size as usize * value_bytes;
                let per_piece = (chunk_bytes / block_bytes.max(1)).max(1);
                let (n, blocks) = (entry.value_count(), entry.geometry.block_count);
                let mut piece = Vec::new();
                for first in (0..blocks).step_by(per_piece) {
                    let end = (first + per_piece).min(blocks);
                    let values = (end * block_bytes / value_bytes).min(n)
                        - first * block_bytes / value_bytes;
                    piece.clear();
                    piece.resize(values * value_bytes, 0);
                    cpu::decode_fast_blocks(kernel, &entry, first..end, &mut piece, parallel)
                        .map_err(|e| e.in_tensor(&t.name))?;
                    crc = crc32c::crc32c_append(crc, &piece);
                    each(&piece)?;
                }
            }
        }
        if crc != t.decoded_crc32c {
            return Err(Error::corrupt("decoded bytes fail their checksum").in_tensor(&t.name));
        }
        Ok(())
    }

    /// Decodes a parsed coded entry into `out` (`value_count * value_bytes` bytes). No checksum
    /// is involved: the entry's own checks (every lane must end exactly at its last word with
    /// the encoder's initial state) are all there is.
    pub fn decode_entry(&self, entry: &CodedEntry, out: &mut [u8]) -> Result<()> {
        let expected = entry.value_count() * entry.header.layout.value_bytes();
        if out.len() != expected {
            return Err(Error::invalid(format!(
                "output of {} bytes for {expected} decoded bytes",
                out.len()
            )));
        }
        match *self {
            CpuDecoder::Reference => cpu::decode_reference(entry, out),
            CpuDecoder::Fast { parallel } => cpu::decode_fast(entry, out, parallel),
            CpuDecoder::Kernel { kernel, parallel } => {
                cpu::decode_fast_with(kernel, entry, out, parallel)
            }
        }
    }
}
