//! Throughput of the GPU decoder, beside plain copy kernels on the same adapter.
//!
//! Kernel times come from timestamp queries when the device has `TIMESTAMP_QUERY`, else from
//! the wall clock around a submission. Whole-path times (upload, decode, read back) are always
//! wall clock. Every rate is in decoded (uncompressed) bytes per second. Native only: it needs a
//! clock.

use std::time::Instant;

use super::batch::{grid, Dest};
use super::decoder::{GpuDecoder, KernelPath};
use super::shaders::Module;
use super::{output_len, sync, OutputTarget};
use crate::codec::CodedEntry;
use crate::params::GPU_WORKGROUP_SIZE;
use crate::{Error, Result};

/// Measured rates, in decoded bytes per second: the best of the iterations (the least disturbed
/// by other work on the machine).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct BenchReport {
    /// The BF16/F16 kernel measured.
    pub path: KernelPath,
    /// Whether kernel times come from GPU timestamps (else the wall clock).
    pub gpu_timed: bool,
    /// Entries in the batch.
    pub entries: usize,
    /// Bytes of the decoded values.
    pub decoded_bytes: u64,
    /// Bytes of the coded entries.
    pub compressed_bytes: u64,
    /// The decode kernels, from GPU-resident input to GPU-resident output.
    pub decode: f64,
    /// A copy kernel writing the same bytes, one u32 per invocation.
    pub copy_u32: f64,
    /// A copy kernel writing the same bytes, one `vec4<u32>` per invocation.
    pub copy_vec4: f64,
    /// Upload the coded entries, decode into GPU buffers.
    pub upload_and_decode: f64,
    /// Upload the coded entries, decode, read the values back to host memory.
    pub upload_decode_read_back: f64,
    /// Upload the uncompressed values into GPU buffers (what decoding on the GPU replaces).
    pub upload_uncompressed: f64,
    /// CRC-32C of each entry's decoded values as the read-back path returned them (callers
    /// compare them with the tensors' decoded checksums: a fast decode of wrong bytes is no
    /// result).
    pub decoded_crc32c: Vec<u32>,
}

impl BenchReport {
    /// Decode kernel rate over the u32 copy kernel rate.
    pub fn decode_vs_copy_u32(&self) -> f64 {
        self.decode / self.copy_u32
    }

    /// Decode kernel rate over the vec4 copy kernel rate.
    pub fn decode_vs_copy_vec4(&self) -> f64 {
        self.decode / self.copy_vec4
    }
}

impl GpuDecoder {
    /// Measures the decode kernels on `entries` beside copy shaders that write the same bytes on
    /// the same device, `iterations` times each (at least 1, after one warm-up; the kernels take
    /// turns and the best round counts), then the whole paths by wall clock. Checks that the
    /// entries decode without error. What `exprans bench --device gpu` reports.
    pub async fn bench(&self, entries: &[&CodedEntry<'_>], iterations: u32) -> Result<BenchReport> {
        bench(self, entries, iterations).await
    }
}

async fn bench(
    decoder: &GpuDecoder,
    entries: &[&CodedEntry<'_>],
    iterations: u32,
) -> Result<BenchReport> {
    let iterations = iterations.max(1);
    let device = decoder.device();
    let decoded_bytes: u64 = entries
        .iter()
        .map(|e| (e.value_count() * e.header.layout.value_bytes()) as u64)
        .sum();
    if decoded_bytes == 0 {
        return Err(Error::invalid(
            "nothing to benchmark: the entries hold no values",
        ));
    }
    let timer = Timer::new(decoder);

    // Decode kernels only: inputs uploaded once, the same pass submitted again and again.
    let items: Vec<_> = entries.iter().map(|e| (*e, Dest::Host)).collect();
    let (batch, errors) = sync::capture(device, "preparing the benchmark", || {
        decoder.prepare(&items)
    });
    errors.await?;
    let batch = batch?;
    let copy = CopyKernels::new(decoder, decoded_bytes).await?;
    // Round robin, so that the three kernels see the same background load; best of the rounds.
    let mut best = [f64::INFINITY; 3];
    for round in 0..=iterations {
        let times = [
            timer
                .time(|encoder, ts| decoder.record(&batch, encoder, ts, false))
                .await?,
            timer
                .time(|encoder, ts| copy.record(encoder, ts, false))
                .await?,
            timer
                .time(|encoder, ts| copy.record(encoder, ts, true))
                .await?,
        ];
        if round > 0 {
            for (b, t) in best.iter_mut().zip(times) {
                *b = b.min(t.max(1e-9));
            }
        }
    }
    let [decode, copy_u32, copy_vec4] = best;
    drop(copy);
    // The decode passes ran without error.
    let (_, errors) = sync::capture(device, "benchmark decode", || {
        let mut encoder = device.create_command_encoder(&Default::default());
        decoder.record(&batch, &mut encoder, None, false);
        decoder.queue().submit([encoder.finish()]);
    });
    errors.await?;
    batch.finish(device).await?;

    // Whole paths, wall clock.
    let targets: Vec<wgpu::Buffer> = entries
        .iter()
        .map(|e| scratch(device, output_len(e).max(4)))
        .collect();
    let items: Vec<_> = entries
        .iter()
        .zip(&targets)
        .map(|(e, buffer)| (*e, OutputTarget { buffer, offset: 0 }))
        .collect();
    let mut values = Vec::new();
    let mut to_host = Vec::new();
    let mut to_gpu = Vec::new();
    let mut upload = Vec::new();
    for _ in 0..=iterations {
        let start = Instant::now();
        decoder.decode_entries_into(&items).await?;
        to_gpu.push(start.elapsed().as_secs_f64());

        let start = Instant::now();
        values = decoder.decode_entries(entries).await?;
        to_host.push(start.elapsed().as_secs_f64());

        let start = Instant::now();
        for (bytes, buffer) in values.iter().zip(&targets) {
            let mut padded = bytes.clone();
            padded.resize(bytes.len().next_multiple_of(4), 0);
            decoder.queue().write_buffer(buffer, 0, &padded);
        }
        decoder.queue().submit([]);
        sync::wait(device)?;
        upload.push(start.elapsed().as_secs_f64());
    }
    let decoded_crc32c = values.iter().map(|v| crc32c::crc32c(v)).collect();
    drop(values);

    let rate = |mut secs: Vec<f64>| {
        secs.remove(0); // warm-up
        decoded_bytes as f64 / secs.into_iter().fold(f64::INFINITY, f64::min)
    };
    Ok(BenchReport {
        path: decoder.path(),
        gpu_timed: timer.query.is_some(),
        entries: entries.len(),
        decoded_bytes,
        compressed_bytes: entries.iter().map(|e| e.bytes.len() as u64).sum(),
        decode: decoded_bytes as f64 / decode,
        copy_u32: decoded_bytes as f64 / copy_u32,
        copy_vec4: decoded_bytes as f64 / copy_vec4,
        upload_and_decode: rate(to_gpu),
        upload_decode_read_back: rate(to_host),
        upload_uncompressed: rate(upload),
        decoded_crc32c,
    })
}

fn scratch(device: &wgpu::Device, size: u64) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("exprans bench"),
        size,
        usage: wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    })
}

/// Times one compute pass: with timestamp queries where the device has them, else wall clock.
struct Timer<'a> {
    decoder: &'a GpuDecoder,
    /// Query set of two timestamps, the buffer they resolve into, and its read-back copy.
    query: Option<(wgpu::QuerySet, wgpu::Buffer, wgpu::Buffer)>,
}

impl<'a> Timer<'a> {
    fn new(decoder: &'a GpuDecoder) -> Timer<'a> {
        let device = decoder.device();
        let query = device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
            .then(|| {
                let set = device.create_query_set(&wgpu::QuerySetDescriptor {
                    label: Some("exprans bench"),
                    ty: wgpu::QueryType::Timestamp,
                    count: 2,
                });
                let buffer = |usage| {
                    device.create_buffer(&wgpu::BufferDescriptor {
                        label: Some("exprans timestamps"),
                        size: 2 * wgpu::QUERY_SIZE as u64,
                        usage,
                        mapped_at_creation: false,
                    })
                };
                let resolve =
                    buffer(wgpu::BufferUsages::QUERY_RESOLVE | wgpu::BufferUsages::COPY_SRC);
                let readback = buffer(wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST);
                (set, resolve, readback)
            });
        Timer { decoder, query }
    }

    /// Seconds one submission of the compute pass that `record` writes takes, given the pass's
    /// timestamp writes.
    async fn time(
        &self,
        record: impl FnOnce(&mut wgpu::CommandEncoder, Option<wgpu::ComputePassTimestampWrites>),
    ) -> Result<f64> {
        let device = self.decoder.device();
        let (start, errors) = sync::capture(device, "benchmark pass", || {
            let mut encoder = device.create_command_encoder(&Default::default());
            let writes = self
                .query
                .as_ref()
                .map(|(set, _, _)| wgpu::ComputePassTimestampWrites {
                    query_set: set,
                    beginning_of_pass_write_index: Some(0),
                    end_of_pass_write_index: Some(1),
                });
            record(&mut encoder, writes);
            if let Some((set, resolve, readback)) = &self.query {
                encoder.resolve_query_set(set, 0..2, resolve, 0);
                encoder.copy_buffer_to_buffer(resolve, 0, readback, 0, None);
            }
            let start = Instant::now();
            self.decoder.queue().submit([encoder.finish()]);
            start
        });
        errors.await?;
        let secs = match &self.query {
            Some((_, _, readback)) => {
                sync::map_read(device, &[readback]).await?;
                let ticks: Vec<u64> = bytemuck::pod_collect_to_vec(
                    &readback
                        .get_mapped_range(..)
                        .map_err(|e| Error::Gpu(format!("reading timestamps failed: {e}")))?,
                );
                readback.unmap();
                let period = self.decoder.queue().get_timestamp_period() as f64;
                ticks[1].saturating_sub(ticks[0]) as f64 * period * 1e-9
            }
            None => {
                sync::wait(device)?;
                start.elapsed().as_secs_f64()
            }
        };
        Ok(secs)
    }
}

/// The copy kernels over buffers of at least `bytes` bytes, bound in chunks that fit a binding.
struct CopyKernels {
    copy_u32: wgpu::ComputePipeline,
    copy_vec4: wgpu::ComputePipeline,
    /// Per chunk of the buffers: the dispatch of each kernel.
    chunks: Vec<[CopyDispatch; 2]>,
}

/// A copy kernel's bind group over one chunk and its workgroup grid.
struct CopyDispatch {
    bind_group: wgpu::BindGroup,
    grid: (u32, u32),
}

impl CopyKernels {
    async fn new(decoder: &GpuDecoder, bytes: u64) -> Result<CopyKernels> {
        let device = decoder.device();
        let limits = device.limits();
        let total = bytes.next_multiple_of(16);
        let chunk_max = super::decoder::binding_limit(&limits, None) / 256 * 256;
        let (copy, errors) = sync::capture(device, "preparing the copy kernels", || {
            let shader = Module::Copy.create(device);
            let pipeline = |entry_point| {
                device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                    label: Some(entry_point),
                    layout: None,
                    module: &shader,
                    entry_point: Some(entry_point),
                    compilation_options: Default::default(),
                    cache: None,
                })
            };
            let copy_u32 = pipeline("copy_u32");
            let copy_vec4 = pipeline("copy_vec4");
            let src = scratch(device, total);
            let dst = scratch(device, total);
            let mut chunks = Vec::new();
            let mut at = 0;
            while at < total {
                let len = chunk_max.min(total - at);
                let group = |pipeline: &wgpu::ComputePipeline, first_binding| {
                    let range = |buffer| {
                        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                            buffer,
                            offset: at,
                            size: wgpu::BufferSize::new(len),
                        })
                    };
                    device.create_bind_group(&wgpu::BindGroupDescriptor {
                        label: Some("exprans copy"),
                        layout: &pipeline.get_bind_group_layout(0),
                        entries: &[
                            wgpu::BindGroupEntry {
                                binding: first_binding,
                                resource: range(&src),
                            },
                            wgpu::BindGroupEntry {
                                binding: first_binding + 1,
                                resource: range(&dst),
                            },
                        ],
                    })
                };
                let grid = |items: u64| {
                    grid(
                        items.div_ceil(GPU_WORKGROUP_SIZE as u64),
                        limits.max_compute_workgroups_per_dimension,
                    )
                };
                chunks.push([
                    CopyDispatch {
                        bind_group: group(&copy_u32, 0),
                        grid: grid(len / 4)?,
                    },
                    CopyDispatch {
                        bind_group: group(&copy_vec4, 2),
                        grid: grid(len / 16)?,
                    },
                ]);
                at += len;
            }
            Ok(CopyKernels {
                copy_u32,
                copy_vec4,
                chunks,
            })
        });
        errors.await?;
        copy
    }

    fn record(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        timestamps: Option<wgpu::ComputePassTimestampWrites>,
        vec4: bool,
    ) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("exprans copy"),
            timestamp_writes: timestamps,
        });
        pass.set_pipeline(if vec4 {
            &self.copy_vec4
        } else {
            &self.copy_u32
        });
        for chunk in &self.chunks {
            let dispatch = &chunk[vec4 as usize];
            pass.set_bind_group(0, &dispatch.bind_group, &[]);
            pass.dispatch_workgroups(dispatch.grid.0, dispatch.grid.1, 1);
        }
    }
}
