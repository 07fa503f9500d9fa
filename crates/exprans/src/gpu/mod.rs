//! GPU decoding with WGSL compute shaders through wgpu (cargo feature `gpu`).
//!
//! The kernels (`shaders/*.wgsl`) decode the rANS lanes of coded entries and join the planes into
//! BF16/F16 or F32 values in the same pass, writing whole u32 words. [`GpuDecoder`] runs them on
//! a caller's device (shared with an inference engine, say) or on one of its own, into the
//! caller's GPU buffers or into host memory. Like wgpu, the API is async only: block at your
//! program's edge (e.g. with `pollster::block_on`), or await it in a browser.
//!
//! ```no_run
//! # async fn run(file: &[u8]) -> exprans::Result<()> {
//! use exprans::gpu::{DecoderOptions, GpuDecoder};
//! use exprans::Archive;
//! let decoder = GpuDecoder::new_default(DecoderOptions::default()).await?;
//! let archive = Archive::from_bytes(file)?;
//! let items: Vec<_> = archive
//!     .tensors
//!     .iter()
//!     .map(|t| Ok((&t.index, t.stored_in(file)?)))
//!     .collect::<exprans::Result<_>>()?;
//! // Every tensor in one submission, both checksums checked.
//! let tensors: Vec<Vec<u8>> = decoder.decode_tensors(&items).await?;
//! # Ok(()) }
//! ```
//!
//! To decode into buffers as part of your own work, record into your command encoder and check
//! after your submit: [`GpuDecoder::record_tensors`], then [`PendingDecode::finish`].
//!
//! BF16/F16 have two kernels producing identical bytes ([`KernelPath`]): a portable one (no
//! optional feature, WebGPU default limits; one invocation decodes the two lanes that fill an
//! output word) and, where the device has `wgpu::Features::SUBGROUP`, one lane per invocation with
//! pairs joined by a subgroup shuffle. F32 values fill whole words, so one kernel serves both.
//!
//! Errors: a damaged stream is [`crate::ErrorKind::Corrupt`] (the same message as the CPU
//! reference decoder); bad arguments are [`crate::ErrorKind::Invalid`]; everything the GPU
//! reports (no adapter, small limits, validation, out of memory, device lost) is
//! [`crate::ErrorKind::Gpu`].
//!
//! Kernels over compressed weights (these decoders, exprans-infer's fused matrix kernels) share one
//! WGSL rANS lane, [`RANS_LANE_WGSL`], which reads blocks packed by [`PackedEntry`] and reports
//! damage in error slots read by [`check_flags`].
//!
//! Modules: `adapter` (adapters, devices, [`AdapterSummary`]), `plan` (the packer, splitting
//! entries into jobs that fit a storage binding, the error slots), `batch` (grouping jobs into dispatches
//! of one submission, reading results), `shaders` (WGSL assembly), `decoder` ([`GpuDecoder`]),
//! `sync` (error scopes, mapping futures), `bench` (throughput numbers), `tensors` (the tensor-level decode).

mod adapter;
pub(crate) mod batch;
#[cfg(not(target_arch = "wasm32"))]
mod bench;
mod decoder;
mod plan;
#[cfg(not(target_arch = "wasm32"))]
mod runtime_dir;
mod shaders;
pub mod sync;
mod tensors;

pub use crate::params::wgsl_constants;
pub use adapter::{all_adapters, list_adapters, AdapterSummary};
#[cfg(test)]
pub(crate) use batch::SUBMISSION_BYTES;
#[cfg(not(target_arch = "wasm32"))]
pub use bench::BenchReport;
pub use decoder::{output_len, DecoderOptions, GpuDecoder, KernelPath, OutputTarget};
pub use plan::{check_flags, PackedEntry, PackedParams};
#[cfg(not(target_arch = "wasm32"))]
pub use runtime_dir::{private_runtime_dir, RuntimeDir};
pub use shaders::{wgsl_modules, WgslModule, RANS_LANE_WGSL};
pub use tensors::{tensor_output_len, PendingDecode};
