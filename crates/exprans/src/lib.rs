//! exprans: lossless compression of neural-network weights with interleaved rANS, decoded on the
//! CPU or on any GPU through WGSL compute shaders.
//!
//! A BF16 weight is a sign bit, 8 exponent bits and 7 mantissa bits; real models use few exponent
//! values. exprans splits floats into byte planes, entropy-codes the planes that pay for it with
//! 32 interleaved rANS lanes per block, and stores the result in a valid safetensors file (the
//! format is `docs/FORMAT.md`). Decoding is bit for bit: [`CpuDecoder::Reference`] is the
//! oracle, the fast CPU decoder and the GPU kernels ([`gpu`], cargo feature `gpu`) must agree
//! with it.
//!
//! - Whole files: [`compress`], [`decompress`], [`verify`] (and the `_into` forms over any
//!   writer).
//! - Reading: [`Archive`] parses an exprans file's header (all that is needed to find, check and
//!   decode any one tensor); [`CpuDecoder::decode_tensor`] and `gpu::GpuDecoder::decode_tensors`
//!   decode tensors, checking both checksums.
//! - Writing: [`ArchiveWriter`], one tensor at a time, each with its own [`EncodeOptions`].
//! - Errors: [`Error`], with an [`ErrorKind`] to match on.
//!
//! ```
//! use exprans::{CpuDecoder, EncodeOptions};
//!
//! // A safetensors file with one BF16 tensor of 4096 small values.
//! let values: Vec<u8> = (0..4096u32)
//!     .flat_map(|i| half::bf16::from_f32((i % 251) as f32 * 1e-3 - 0.1).to_le_bytes())
//!     .collect();
//! let header = format!(
//!     r#"{{"w":{{"dtype":"BF16","shape":[64,64],"data_offsets":[0,{}]}}}}"#,
//!     values.len()
//! );
//! let mut file = (header.len() as u64).to_le_bytes().to_vec();
//! file.extend_from_slice(header.as_bytes());
//! file.extend_from_slice(&values);
//!
//! let packed = exprans::compress(&file, &EncodeOptions::default())?;
//! assert!(packed.len() < file.len());
//! assert_eq!(exprans::decompress(&packed, CpuDecoder::Reference)?, file);
//! # Ok::<(), exprans::Error>(())
//! ```
//!
//! Cargo features: `gpu` (the [`gpu`] module, wgpu) and `parallel` (rayon), both on by default.
//! Without them the crate needs no GPU stack and no thread pool. `internals` (off by default)
//! exposes codec internals to the workspace's own tests and is not part of the API.

#![warn(missing_docs)]

mod archive;
mod classes;
mod codec;
pub mod conformance;
mod convert;
mod cpu;
mod error;
#[cfg(feature = "gpu")]
pub mod gpu;
mod params;
mod planes;
mod rans;
pub mod safetensors;
mod source_header;
mod tensor;
#[cfg(test)]
mod tests;
mod writer;

pub use archive::{
    Archive, ArchiveTensor, Encoding, TensorIndex, FORMAT_NAME, FORMAT_VERSION, READ_VERSIONS,
};
pub use codec::{CodedEntry, EncodeOptions, EntrySections, SizeBreakdown};
pub use convert::{
    compress, compress_into, decompress, decompress_into, verify, Mismatch, ProgressFn,
    TensorDecoder, BATCH_BYTES,
};
pub use cpu::CpuKernel;
pub use error::{quote, Error, ErrorKind, Result};
pub use params::{DEFAULT_BLOCK_SIZE, LANES, MAX_BLOCK_SIZE};
pub use tensor::CpuDecoder;
pub use writer::ArchiveWriter;

/// Codec internals for the workspace's tests and benchmarks (cargo feature `internals`): the
/// entry encoder with a forced plane mask, entry parsing by layout, section offsets and the
/// format constants. Not part of the API: it changes with the format.
#[cfg(feature = "internals")]
#[doc(hidden)]
pub mod internals {
    pub use crate::codec::{encode, encode_with_classes, encode_with_mask, EntryHeader, Geometry};
    pub use crate::params::{PROB_BITS, PROB_SCALE, RANS_L};
    pub use crate::planes::PlaneLayout;
    use crate::{CodedEntry, Result};

    /// Parses and validates a coded entry of `value_count` values of `layout`.
    pub fn parse_entry(
        bytes: &[u8],
        layout: PlaneLayout,
        value_count: u64,
    ) -> Result<CodedEntry<'_>> {
        CodedEntry::parse(bytes, layout, value_count)
    }

    /// The section offsets of a parsed entry.
    pub fn entry_geometry<'e>(entry: &'e CodedEntry<'_>) -> &'e Geometry {
        &entry.geometry
    }

    /// The fixed header of a parsed entry.
    pub fn entry_header(entry: &CodedEntry<'_>) -> EntryHeader {
        entry.header
    }

    /// The `exprans.source_crc32c` that a version-2 container with these `exprans.index` and
    /// `exprans.source` texts needs: the CRC of the original header they render (for harnesses
    /// that forge headers).
    pub fn source_crc(index_json: &str, source_json: &str) -> Result<u32> {
        crate::archive::rendered_source_crc(index_json, source_json)
    }
}
