//! [`GpuDecoder`]: decodes coded entries on a wgpu device, into GPU buffers or host memory.
//!
//! One decode is one submission (see `batch`): every entry of a batch is split into jobs that fit
//! a storage binding (see `plan`), jobs are grouped into dispatches of one compute pass, and a
//! small flag buffer read back afterwards tells whether every lane ended where the encoder
//! started.

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex};

use super::adapter::{self, AdapterSummary};
use super::batch::Dest;
use super::plan::{self, JobParams, Piece};
use super::shaders::{Module, DECODE_BINDINGS};
use super::sync;
use crate::codec::CodedEntry;
use crate::params::GPU_WORKGROUP_SIZE;
use crate::planes::PlaneLayout;
use crate::{Error, Result};

/// Which BF16/F16 kernel a decoder runs (F32 has one kernel, which needs no exchange).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize)]
pub enum KernelPath {
    /// No optional feature: one invocation decodes two lanes.
    Portable,
    /// `wgpu::Features::SUBGROUP`: one invocation per lane, pairs joined by a subgroup shuffle.
    Subgroup,
}

impl std::fmt::Display for KernelPath {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            KernelPath::Portable => "portable",
            KernelPath::Subgroup => "subgroup",
        })
    }
}

/// How to build a [`GpuDecoder`].
#[derive(Clone, Copy, Debug, Default)]
pub struct DecoderOptions {
    /// Use the portable kernel even where subgroups are available.
    pub force_portable: bool,
    /// Lower the storage-binding size the decoder plans with (bytes; the device limit still
    /// applies). Tensors whose input or output exceeds it are decoded in pieces.
    pub max_binding_size: Option<u64>,
}

/// Where to write one entry's values: `buffer[offset .. offset + output_len(entry)]`.
///
/// The buffer needs `STORAGE` usage and `offset` must be a multiple of 4. The range is whole u32
/// words: a 16-bit tensor with an odd value count gets a zero high half in its last word.
#[derive(Clone, Copy, Debug)]
pub struct OutputTarget<'a> {
    /// The destination buffer.
    pub buffer: &'a wgpu::Buffer,
    /// Byte offset of the first value.
    pub offset: u64,
}

/// Bytes an entry's decoded values take in a GPU buffer: its value bytes rounded up to a whole
/// u32 word.
pub fn output_len(entry: &CodedEntry) -> u64 {
    plan::output_len(entry)
}

/// A GPU decoder of coded entries, bound to one device. The shader modules are compiled at
/// construction, one pipeline per plane layout and coded-plane combination on first use; all are
/// reused, and decoding only creates per-call buffers. Cloning is cheap: clones share the device
/// and the compiled pipelines.
#[derive(Clone, Debug)]
pub struct GpuDecoder {
    device: wgpu::Device,
    queue: wgpu::Queue,
    adapter: Option<AdapterSummary>,
    path: KernelPath,
    pub(super) bind_group_layout: wgpu::BindGroupLayout,
    pipeline_layout: wgpu::PipelineLayout,
    decode16: wgpu::ShaderModule,
    decode32: wgpu::ShaderModule,
    /// One pipeline per plane layout and coded-plane mask, compiled on first use.
    pipelines: Arc<Mutex<HashMap<(PlaneLayout, u8), wgpu::ComputePipeline>>>,
    /// Largest binding (and buffer) a batch uses, u32-aligned.
    pub(super) max_binding: u64,
    /// Alignment of a binding offset into a caller's buffer (storage and uniform: the buffer may
    /// have both usages).
    pub(super) binding_align: u64,
    /// Largest dispatch along one dimension.
    pub(super) max_groups: u32,
}

impl GpuDecoder {
    /// Opens the system's default adapter (high-performance preference; the `WGPU_BACKEND`
    /// environment variable selects backends) and a device of its own.
    pub async fn new_default(options: DecoderOptions) -> Result<GpuDecoder> {
        Self::open(None, options).await
    }

    /// Opens the default adapter among `backends` (e.g. `wgpu::Backends::GL`).
    pub async fn with_backends(
        backends: wgpu::Backends,
        options: DecoderOptions,
    ) -> Result<GpuDecoder> {
        Self::open(Some(backends), options).await
    }

    /// Opens a device of its own on `adapter` (one of [`super::all_adapters`]).
    pub async fn for_adapter(
        adapter: &wgpu::Adapter,
        options: DecoderOptions,
    ) -> Result<GpuDecoder> {
        let (device, queue) = adapter::open_device(adapter).await?;
        let mut decoder = Self::from_device(&device, &queue, options).await?;
        decoder.adapter = Some(AdapterSummary::of(adapter));
        Ok(decoder)
    }

    async fn open(backends: Option<wgpu::Backends>, options: DecoderOptions) -> Result<GpuDecoder> {
        let (adapter, device, queue) = adapter::open(backends).await?;
        let mut decoder = Self::from_device(&device, &queue, options).await?;
        decoder.adapter = Some(AdapterSummary::of(&adapter));
        Ok(decoder)
    }

    /// A decoder on a caller's device (shared, e.g., with an inference engine). The subgroup path
    /// is used when the device was created with `wgpu::Features::SUBGROUP`.
    pub async fn from_device(
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        options: DecoderOptions,
    ) -> Result<GpuDecoder> {
        let limits = device.limits();
        if limits.max_storage_buffers_per_shader_stage < 4 || limits.max_bind_groups < 1 {
            return Err(Error::Gpu(format!(
                "device limits too small: the decoder binds 4 storage buffers, the device allows {}",
                limits.max_storage_buffers_per_shader_stage
            )));
        }
        if limits.max_compute_invocations_per_workgroup < GPU_WORKGROUP_SIZE
            || limits.max_compute_workgroup_size_x < GPU_WORKGROUP_SIZE
        {
            return Err(Error::Gpu(format!(
                "device limits too small: the decoder needs {GPU_WORKGROUP_SIZE} invocations per \
                 workgroup, the device allows {}",
                limits.max_compute_invocations_per_workgroup
            )));
        }
        let path =
            if device.features().contains(wgpu::Features::SUBGROUP) && !options.force_portable {
                KernelPath::Subgroup
            } else {
                KernelPath::Portable
            };

        let ((bind_group_layout, pipeline_layout, decode16, decode32), errors) =
            sync::capture(device, "compiling the decode kernels", || {
                let layout = bind_group_layout(device);
                let pipeline_layout =
                    device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                        label: Some("exprans decode"),
                        bind_group_layouts: &[Some(&layout)],
                        immediate_size: 0,
                    });
                let decode16 = match path {
                    KernelPath::Portable => Module::Decode16Portable,
                    KernelPath::Subgroup => Module::Decode16Subgroup,
                };
                (
                    layout,
                    pipeline_layout,
                    decode16.create(device),
                    Module::Decode32.create(device),
                )
            });
        errors.await?;

        let binding_limit = binding_limit(&limits, options.max_binding_size);
        Ok(GpuDecoder {
            device: device.clone(),
            queue: queue.clone(),
            adapter: None,
            path,
            bind_group_layout,
            pipeline_layout,
            decode16,
            decode32,
            pipelines: Arc::default(),
            max_binding: binding_limit,
            binding_align: limits
                .min_storage_buffer_offset_alignment
                .max(limits.min_uniform_buffer_offset_alignment) as u64,
            max_groups: limits.max_compute_workgroups_per_dimension,
        })
    }

    /// The BF16/F16 kernel this decoder runs.
    pub fn path(&self) -> KernelPath {
        self.path
    }

    /// The adapter, when the decoder opened it itself.
    pub fn adapter(&self) -> Option<&AdapterSummary> {
        self.adapter.as_ref()
    }

    /// The device.
    pub fn device(&self) -> &wgpu::Device {
        &self.device
    }

    /// The queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.queue
    }

    /// Number of jobs (runs of whole blocks, each fitting one storage binding) `entry` is decoded
    /// in.
    pub fn piece_count(&self, entry: &CodedEntry) -> Result<usize> {
        Ok(self.split(entry)?.len())
    }

    /// Decodes parsed coded entries (no checksums: see [`GpuDecoder::decode_tensors_into`] for
    /// tensors of a file) into their targets, in one submission, and waits until the GPU is
    /// done. A damaged stream gives [`Error::Corrupt`] naming the first failing lane (as the CPU
    /// reference decoder does); the target then holds unspecified bytes.
    pub async fn decode_entries_into(
        &self,
        items: &[(&CodedEntry<'_>, OutputTarget<'_>)],
    ) -> Result<()> {
        let items: Vec<_> = items.iter().map(|(e, t)| (*e, Dest::Buffer(*t))).collect();
        self.run(&items).await.map(drop)
    }

    /// Decodes parsed coded entries (no checksums: see [`GpuDecoder::decode_tensors`] for
    /// tensors of a file), in one submission, into host memory: one `Vec` of
    /// `value_count * value_bytes` little-endian bytes per entry.
    pub async fn decode_entries(&self, entries: &[&CodedEntry<'_>]) -> Result<Vec<Vec<u8>>> {
        let items: Vec<_> = entries.iter().map(|e| (*e, Dest::Host)).collect();
        self.run(&items).await
    }

    pub(super) fn split(&self, entry: &CodedEntry) -> Result<Vec<Piece>> {
        // A caller's output window starts up to `binding_align` bytes before the piece.
        plan::split(
            entry,
            self.max_binding,
            self.max_binding.saturating_sub(self.binding_align),
        )
    }

    /// The pipeline decoding entries of `layout` whose coded planes are `coded_mask`.
    pub(super) fn pipeline(&self, layout: PlaneLayout, coded_mask: u8) -> wgpu::ComputePipeline {
        let mut pipelines = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        let pipeline = pipelines.entry((layout, coded_mask)).or_insert_with(|| {
            let (module, entry_point) = match layout {
                PlaneLayout::Float16 => (&self.decode16, "decode16"),
                PlaneLayout::Float32 => (&self.decode32, "decode32"),
                PlaneLayout::Byte => (&self.decode32, "decode8"),
            };
            self.device
                .create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry_point),
                    layout: Some(&self.pipeline_layout),
                    module,
                    entry_point: Some(entry_point),
                    compilation_options: wgpu::PipelineCompilationOptions {
                        constants: &[("CODED_MASK", coded_mask as f64)],
                        ..Default::default()
                    },
                    cache: None,
                })
        });
        pipeline.clone()
    }
}

/// Largest binding (and buffer) the GPU code uses on a device with `limits`, at most
/// `requested` bytes, a multiple of 4 and below 2^32: the kernels index bindings, and the job
/// parameters count values and u32 words, in `u32` (Metal reports `maxBufferLength`, which can
/// exceed 4 GiB).
pub(super) fn binding_limit(limits: &wgpu::Limits, requested: Option<u64>) -> u64 {
    limits
        .max_storage_buffer_binding_size
        .min(limits.max_buffer_size)
        .min(requested.unwrap_or(u64::MAX))
        .min(u32::MAX as u64)
        / 4
        * 4
}

/// Bindings of every decode kernel (shaders/decode_common.wgsl).
fn bind_group_layout(device: &wgpu::Device) -> wgpu::BindGroupLayout {
    let entry = |binding, ty, min_size| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: false,
            min_binding_size: min_size,
        },
        count: None,
    };
    let storage = |read_only| wgpu::BufferBindingType::Storage { read_only };
    let job_len = NonZeroU64::new(std::mem::size_of::<JobParams>() as u64);
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some("exprans decode"),
        entries: &DECODE_BINDINGS.map(|(binding, _, read_only)| {
            entry(
                binding,
                storage(read_only),
                job_len.filter(|_| binding == 0),
            )
        }),
    })
}

#[cfg(test)]
mod tests {
    use super::binding_limit;

    #[test]
    fn binding_limit_stays_u32_addressable() {
        let huge = wgpu::Limits {
            max_storage_buffer_binding_size: 48 << 30,
            max_buffer_size: 48 << 30,
            ..wgpu::Limits::default()
        };
        assert_eq!(binding_limit(&huge, None), (u32::MAX as u64) / 4 * 4);
        assert_eq!(binding_limit(&huge, Some(1001)), 1000);
        let small = wgpu::Limits::downlevel_defaults();
        assert_eq!(
            binding_limit(&small, None),
            small
                .max_storage_buffer_binding_size
                .min(small.max_buffer_size)
                / 4
                * 4
        );
    }
}
