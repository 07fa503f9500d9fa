//! exprans: lossless compression of neural-network weights with interleaved rANS, decoded on the
//! CPU or on any GPU through WGSL compute shaders.
//!
//! A BF16 weight is a sign bit, 8 exponent bits and 7 mantissa bits; real models use few exponent
//! values. exprans splits floats into byte planes ([`planes`]), entropy-codes the planes that pay
//! for it with 32 interleaved rANS lanes per block ([`rans`], [`codec`]), and stores the result in
//! a valid safetensors file ([`archive`], format in `docs/FORMAT.md`). Decoding is bit for bit:
//! [`cpu::decode_reference`] is the oracle, [`cpu::decode_fast`] and the GPU kernels ([`gpu`])
//! must agree with it.
//!
//! Whole files in memory ([`convert`]); the CLI's file and directory layer is the `exprans-cli` crate:
//!
//! ```
//! use exprans::archive::CpuDecoder;
//! use exprans::{codec::EncodeOptions, convert};
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
//! let packed = convert::compress(&file, &EncodeOptions::default())?;
//! assert!(packed.len() < file.len());
//! assert_eq!(convert::decompress(&packed, CpuDecoder::Reference)?, file);
//! # Ok::<(), exprans::Error>(())
//! ```
//!
//! One tensor, without the container:
//!
//! ```
//! use exprans::codec::{encode, CodedEntry, EncodeOptions};
//! use exprans::planes::PlaneLayout;
//!
//! let values: Vec<u8> = (0..10_000u32)
//!     .flat_map(|i| half::bf16::from_f32(((i * 7919) % 1000) as f32 * 1e-4).to_le_bytes())
//!     .collect();
//! let (entry, _stats) = encode(PlaneLayout::Float16, &values, &EncodeOptions::default())?;
//! let entry = entry.expect("these values compress");
//! let parsed = CodedEntry::parse(&entry, PlaneLayout::Float16, 10_000)?;
//! let mut out = vec![0u8; values.len()];
//! exprans::cpu::decode_reference(&parsed, &mut out)?;
//! assert_eq!(out, values);
//! # Ok::<(), exprans::Error>(())
//! ```

#![warn(missing_docs)]

pub mod archive;
pub mod codec;
pub mod conformance;
pub mod convert;
pub mod cpu;
mod error;
#[cfg(feature = "gpu")]
pub mod gpu;
pub mod params;
pub mod planes;
pub mod rans;
pub mod safetensors;
pub mod source_header;

pub use error::{Error, Result};
