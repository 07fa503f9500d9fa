//! GPU decoding with WGSL compute shaders through wgpu.
//!
//! The kernels (`shaders/*.wgsl`) decode the rANS lanes of coded entries and join the planes into
//! BF16/F16 or F32 values in the same pass, writing whole u32 words. [`GpuDecoder`] runs them on
//! a caller's device or on one of its own, into GPU buffers or host memory:
//!
//! ```no_run
//! # fn main() -> exprans::Result<()> {
//! # let bytes: Vec<u8> = Vec::new();
//! use exprans::{codec::CodedEntry, gpu, planes::PlaneLayout};
//! let decoder = gpu::GpuDecoder::new_default_blocking(gpu::DecoderOptions::default())?;
//! let entry = CodedEntry::parse(&bytes, PlaneLayout::Float16, 1024)?;
//! let values: Vec<u8> = decoder.decode_to_host_blocking(&[&entry])?.remove(0);
//! # Ok(()) }
//! ```
//!
//! BF16/F16 have two kernels producing identical bytes ([`KernelPath`]): a portable one (no
//! optional feature, WebGPU default limits; one invocation decodes the two lanes that fill an
//! output word) and, where the device has `wgpu::Features::SUBGROUP`, one lane per invocation with
//! pairs joined by a subgroup shuffle. F32 values fill whole words, so one kernel serves both.
//!
//! Errors: a damaged stream is [`crate::Error::Corrupt`] (the same message as
//! `cpu::decode_reference`); bad arguments are [`crate::Error::Invalid`]; everything the GPU
//! reports (no adapter, small limits, validation, out of memory, device lost) is
//! [`crate::Error::Gpu`].
//!
//! Kernels over compressed weights (these decoders, exprans-infer's fused matrix kernels) share one
//! WGSL rANS lane, [`RANS_LANE_WGSL`], which reads blocks packed by [`PackedEntry`] and reports
//! damage in error slots read by [`check_flags`].
//!
//! Modules: `adapter` (adapters, devices, [`AdapterSummary`]), `plan` (the packer, splitting
//! entries into jobs that fit a storage binding, the error slots), `batch` (grouping jobs into dispatches
//! of one submission, reading results), `shaders` (WGSL assembly), `decoder` ([`GpuDecoder`]),
//! `sync` (error scopes, mapping futures), [`mod@bench`] (throughput numbers).

mod adapter;
mod batch;
#[cfg(not(target_arch = "wasm32"))]
pub mod bench;
mod decoder;
mod plan;
mod shaders;
#[doc(hidden)]
pub mod sync;

#[cfg(not(target_arch = "wasm32"))]
pub use adapter::list_adapters_blocking;
pub use adapter::{all_adapters, list_adapters, AdapterSummary};
pub use decoder::{output_len, DecoderOptions, GpuDecoder, KernelPath, OutputTarget};
pub use plan::{check_flags, PackedEntry, PackedParams};
pub use shaders::{wgsl_modules, WgslModule, RANS_LANE_WGSL};
