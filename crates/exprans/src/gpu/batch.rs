//! One decode submission: jobs grouped into dispatches, their buffers, and reading the results.
//!
//! Every entry is split into jobs (see `plan`). Jobs that share a pipeline (plane layout and
//! coded planes) and an output binding run in one dispatch, each on its own range of workgroups,
//! so that the GPU overlaps them (dispatches that write the same buffer are serialized by
//! barriers). A dispatch's jobs have their inputs packed into one buffer and their parameters in
//! a `jobs` array; each job owns two u32 of a flag buffer read back at the end.

use std::num::NonZeroU64;

use super::decoder::{GpuDecoder, KernelPath, OutputTarget};
use super::plan::{self, JobParams, Piece};
use super::sync;
use crate::codec::CodedEntry;
use crate::params::{GPU_WORKGROUP_SIZE, LANES, PROB_SCALE};
use crate::planes::PlaneLayout;
use crate::{Error, Result};

/// Where a batch item goes.
#[derive(Clone, Copy)]
pub(crate) enum Dest<'a> {
    Buffer(OutputTarget<'a>),
    Host,
}

/// Jobs planned into one dispatch.
struct DispatchPlan {
    layout: PlaneLayout,
    coded_mask: u8,
    /// The caller's buffer, or `None` for an output buffer of the dispatch's own.
    target: Option<wgpu::Buffer>,
    jobs: Vec<PlannedJob>,
    input_len: u64,
    /// The tables packed in the dispatch's input ([`plan::table_key`]): jobs of entries with
    /// identical tables share one copy.
    table_keys: std::collections::HashSet<(u8, u8, Vec<u8>)>,
    /// Byte range the jobs write: in the caller's buffer, or in the dispatch's own output.
    out_start: u64,
    out_end: u64,
}

#[derive(Clone, Copy)]
struct PlannedJob {
    item: usize,
    piece: Piece,
    /// Byte offset of the job's output in the destination.
    out_at: u64,
}

impl DispatchPlan {
    /// Jobs of one dispatch share a pipeline and a destination.
    fn key(&self) -> (PlaneLayout, u8, Option<wgpu::Buffer>) {
        (self.layout, self.coded_mask, self.target.clone())
    }
}

/// A recorded dispatch.
struct Dispatch {
    pipeline: wgpu::ComputePipeline,
    bind_group: wgpu::BindGroup,
    grid: (u32, u32),
}

/// A dispatch's own output, to be copied back to host memory.
struct HostOutput {
    output: wgpu::Buffer,
    readback: wgpu::Buffer,
    /// Per job: item, byte offset in the item's values, byte offset in `output`.
    pieces: Vec<(usize, usize, usize)>,
}

/// Everything one submission needs until its results are read.
pub(crate) struct Batch {
    dispatches: Vec<Dispatch>,
    /// Per job (flag index): its item and first block, to name a failing lane.
    jobs: Vec<(usize, usize)>,
    flags: wgpu::Buffer,
    flags_readback: wgpu::Buffer,
    host: Vec<HostOutput>,
    /// Byte length of each item's values.
    item_lens: Vec<usize>,
    /// Per-call input and job buffers, destroyed with the batch.
    inputs: Vec<wgpu::Buffer>,
}

impl Batch {
    /// Bytes of the batch's input buffers (packed entries and job records).
    #[cfg(test)]
    pub(crate) fn input_bytes(&self) -> u64 {
        self.inputs.iter().map(|b| b.size()).sum()
    }
}

impl Drop for Batch {
    /// Frees the batch's own buffers at once: in a browser, dropping a buffer frees GPU memory
    /// only when JavaScript collects the garbage. (Work already submitted still completes.)
    fn drop(&mut self) {
        for buffer in self
            .inputs
            .iter()
            .chain([&self.flags, &self.flags_readback])
        {
            buffer.destroy();
        }
        for h in &self.host {
            h.output.destroy();
            h.readback.destroy();
        }
    }
}

const JOB_LEN: u64 = std::mem::size_of::<JobParams>() as u64;

/// Most bytes one submission of [`GpuDecoder::run_batch`] allocates for its items, counted by
/// [`submission_cost`].
pub(crate) const SUBMISSION_BYTES: u64 = 256 << 20;

/// Bytes an item costs a submission: its packed input (tables, directory, words, raw planes),
/// its host decode tables, and its output when read back to the host (twice: the GPU's staging
/// copy and the host's).
fn submission_cost(entry: &CodedEntry, dest: &Dest) -> u64 {
    let input = plan::PackedEntry::packed_len(entry, 0..entry.geometry.block_count);
    let tables = (entry.header.table_count() * PROB_SCALE as usize * 4) as u64;
    let output = match dest {
        Dest::Host => 2 * plan::output_len(entry),
        Dest::Buffer(_) => 0,
    };
    input + tables + output
}

const STORAGE_SRC: wgpu::BufferUsages =
    wgpu::BufferUsages::STORAGE.union(wgpu::BufferUsages::COPY_SRC);
const READBACK: wgpu::BufferUsages =
    wgpu::BufferUsages::MAP_READ.union(wgpu::BufferUsages::COPY_DST);

impl GpuDecoder {
    /// Prepares, records and submits one batch, then reads its flags (and host outputs).
    pub(crate) async fn run(&self, items: &[(&CodedEntry<'_>, Dest<'_>)]) -> Result<Vec<Vec<u8>>> {
        Ok(self.run_batch(items).await?)
    }

    /// [`GpuDecoder::run`], with the failing item of the batch. Items are submitted in groups
    /// of at most [`SUBMISSION_BYTES`] of GPU input, output and host tables (an item larger
    /// than that alone), so that many small tensors cannot make one batch allocate without
    /// bound: each coded plane brings a 16 KiB decode table whatever the tensor's size.
    pub(crate) async fn run_batch(
        &self,
        items: &[(&CodedEntry<'_>, Dest<'_>)],
    ) -> std::result::Result<Vec<Vec<u8>>, BatchError> {
        let costs = items
            .iter()
            .map(|(entry, dest)| submission_cost(entry, dest));
        let mut out = Vec::with_capacity(items.len());
        for group in crate::convert::groups(costs, SUBMISSION_BYTES) {
            let first = group.start;
            out.extend(self.submit_group(&items[group], first).await?);
        }
        Ok(out)
    }

    /// One submission of `items` (item `first` of the caller's batch onwards).
    async fn submit_group(
        &self,
        items: &[(&CodedEntry<'_>, Dest<'_>)],
        first: usize,
    ) -> std::result::Result<Vec<Vec<u8>>, BatchError> {
        let offset = |mut e: BatchError| {
            e.item = e.item.map(|i| i + first);
            e
        };
        let (batch, errors) = sync::capture(self.device(), "decoding on the GPU", || {
            let batch = self.prepare(items)?;
            let mut encoder = self.device().create_command_encoder(&Default::default());
            self.record(&batch, &mut encoder, None, true);
            self.queue().submit([encoder.finish()]);
            Ok::<_, Error>(batch)
        });
        errors.await?;
        batch?.finish(self.device()).await.map_err(offset)
    }

    /// Groups the jobs of every item into dispatches within the binding limit.
    fn plan_dispatches(&self, items: &[(&CodedEntry<'_>, Dest<'_>)]) -> Result<Vec<DispatchPlan>> {
        let mut done = Vec::new();
        let mut open: Vec<DispatchPlan> = Vec::new();
        for (item, (entry, dest)) in items.iter().enumerate() {
            if let Dest::Buffer(target) = dest {
                check_target(target, plan::output_len(entry), wgpu::BufferUsages::STORAGE)?;
            }
            let target = match dest {
                Dest::Buffer(t) => Some(t.buffer.clone()),
                Dest::Host => None,
            };
            let key = (entry.header.layout, entry.header.coded_mask, target);
            for piece in self.split(entry)? {
                let job = PlannedJob {
                    item,
                    piece,
                    out_at: match dest {
                        Dest::Buffer(t) => t.offset + piece.output_offset(entry),
                        Dest::Host => 0, // appended: set by `try_add`
                    },
                };
                let slot = open.iter().position(|d| d.key() == key);
                if slot.is_some_and(|i| self.try_add(&mut open[i], entry, job)) {
                    continue;
                }
                if let Some(i) = slot {
                    done.push(open.swap_remove(i));
                }
                let (layout, coded_mask, target) = key.clone();
                let mut d = DispatchPlan {
                    layout,
                    coded_mask,
                    target,
                    jobs: Vec::new(),
                    input_len: 0,
                    table_keys: Default::default(),
                    out_start: u64::MAX,
                    out_end: 0,
                };
                // `split` made every job fit a binding on its own.
                let added = self.try_add(&mut d, entry, job);
                debug_assert!(added);
                open.push(d);
            }
        }
        done.extend(open);
        Ok(done)
    }

    /// Adds `job` to dispatch `d` if every binding of `d` stays within the limit; returns whether
    /// it did. A host job's output is appended to the dispatch's own output buffer.
    fn try_add(&self, d: &mut DispatchPlan, entry: &CodedEntry, mut job: PlannedJob) -> bool {
        let max = self.max_binding;
        if d.target.is_none() {
            job.out_at = d.out_end;
        }
        let key = plan::table_key(entry);
        let shared = d.table_keys.contains(&key);
        let tables_len = if shared { Piece::tables_len(entry) } else { 0 };
        let input_len = d.input_len + job.piece.input_len(entry) - tables_len;
        let out_start = d.out_start.min(job.out_at);
        let out_end = d.out_end.max(job.out_at + job.piece.output_len(entry));
        let window = out_end - out_start / self.binding_align * self.binding_align;
        let jobs_len = (d.jobs.len() as u64 + 1) * JOB_LEN;
        if input_len > max || window > max || jobs_len > max {
            return false;
        }
        d.input_len = input_len;
        if !shared {
            d.table_keys.insert(key);
        }
        d.out_start = out_start;
        d.out_end = out_end;
        d.jobs.push(job);
        true
    }

    /// Creates and fills the buffers and bind groups of a batch.
    pub(crate) fn prepare(&self, items: &[(&CodedEntry<'_>, Dest<'_>)]) -> Result<Batch> {
        let plans = self.plan_dispatches(items)?;
        let tables: Vec<_> = items.iter().map(|(e, _)| e.decode_tables()).collect();
        let job_count: usize = plans.iter().map(|d| d.jobs.len()).sum();
        // Two u32 per job: its smallest failing lane (complemented), its subgroup-layout flag.
        let flags_len = (8 * job_count as u64).max(8);
        let flags = self.buffer("exprans flags", flags_len, STORAGE_SRC, false);
        let flags_readback = self.buffer("exprans flags readback", flags_len, READBACK, false);

        let mut batch = Batch {
            dispatches: Vec::with_capacity(plans.len()),
            jobs: Vec::with_capacity(job_count),
            flags,
            flags_readback,
            host: Vec::new(),
            inputs: Vec::new(),
            item_lens: items
                .iter()
                .map(|(e, _)| e.value_count() * e.header.layout.value_bytes())
                .collect(),
        };
        for plan in &plans {
            let dispatch = self.create_dispatch(items, &tables, plan, &mut batch)?;
            batch.dispatches.push(dispatch);
        }
        Ok(batch)
    }

    /// Creates one dispatch's input, job and output buffers and its bind group.
    fn create_dispatch(
        &self,
        items: &[(&CodedEntry<'_>, Dest<'_>)],
        tables: &[crate::codec::DecodeTables],
        plan: &DispatchPlan,
        batch: &mut Batch,
    ) -> Result<Dispatch> {
        let input = self.buffer(
            "exprans input",
            plan.input_len,
            wgpu::BufferUsages::STORAGE,
            true,
        );
        let jobs_len = JOB_LEN * plan.jobs.len() as u64;
        let jobs = self.buffer("exprans jobs", jobs_len, wgpu::BufferUsages::STORAGE, true);
        // Bind the output from the aligned offset at or below its first job.
        let window = plan.out_start / self.binding_align * self.binding_align;
        let output = match &plan.target {
            Some(buffer) => buffer.clone(),
            None => self.buffer("exprans output", plan.out_end.max(4), STORAGE_SRC, false),
        };
        let lanes_per_group = match (plan.layout, self.path()) {
            (PlaneLayout::Float16, KernelPath::Portable) => 2 * GPU_WORKGROUP_SIZE,
            // decode8: four lanes per invocation on both paths.
            (PlaneLayout::Byte, _) => 4 * GPU_WORKGROUP_SIZE,
            _ => GPU_WORKGROUP_SIZE,
        } as u64;

        let map_error = |e| Error::Gpu(format!("mapping a buffer for upload failed: {e}"));
        let mut input_view = input.get_mapped_range_mut(..).map_err(map_error)?;
        let mut jobs_view = jobs.get_mapped_range_mut(..).map_err(map_error)?;
        let mut input_at = 0u64;
        // Where each distinct set of tables was packed in this input (see `table_keys`).
        let mut packed_tables = std::collections::HashMap::new();
        let mut first_group = 0u64;
        let mut host_pieces = Vec::new();
        for (k, job) in plan.jobs.iter().enumerate() {
            let (entry, _) = items[job.item];
            let piece = &job.piece;
            let at = input_at as usize;
            let base = (input_at / 4) as u32;
            let key = plan::table_key(entry);
            let shared = packed_tables.get(&key).copied();
            let (mut params, placed) =
                plan::pack(entry, &tables[job.item], piece, base, shared, |o, bytes| {
                    let o = at + o as usize;
                    input_view.slice(o..o + bytes.len()).copy_from_slice(bytes)
                });
            input_at += piece.input_len(entry);
            if shared.is_some() {
                input_at -= Piece::tables_len(entry);
            } else {
                packed_tables.insert(key, placed);
            }
            params.first_group = first_group as u32;
            params.out_base = ((job.out_at - window) / 4) as u32;
            params.flag_index = batch.jobs.len() as u32;
            let k = k * JOB_LEN as usize;
            jobs_view
                .slice(k..k + JOB_LEN as usize)
                .copy_from_slice(bytemuck::bytes_of(&params));
            let lanes = (piece.block_count * LANES) as u64;
            first_group += lanes.div_ceil(lanes_per_group);
            batch.jobs.push((job.item, piece.first_block));
            let entry_offset = piece.output_offset(entry) as usize;
            host_pieces.push((job.item, entry_offset, job.out_at as usize));
        }
        drop((input_view, jobs_view));
        input.unmap();
        jobs.unmap();
        batch.inputs.extend([input.clone(), jobs.clone()]);
        if plan.target.is_none() {
            let readback = self.buffer("exprans readback", output.size(), READBACK, false);
            batch.host.push(HostOutput {
                output: output.clone(),
                readback,
                pieces: host_pieces,
            });
        }

        let bind_group = self.device().create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("exprans decode"),
            layout: &self.bind_group_layout,
            entries: &[
                binding(0, &jobs, 0, None),
                binding(1, &input, 0, None),
                binding(2, &output, window, NonZeroU64::new(plan.out_end - window)),
                binding(3, &batch.flags, 0, None),
            ],
        });
        Ok(Dispatch {
            pipeline: self.pipeline(plan.layout, plan.coded_mask),
            bind_group,
            grid: grid(first_group, self.max_groups)?,
        })
    }

    /// Records the batch's compute pass (with optional timestamps), the copy of its flags and,
    /// with `read_back`, the copies of its host outputs.
    pub(crate) fn record(
        &self,
        batch: &Batch,
        encoder: &mut wgpu::CommandEncoder,
        timestamps: Option<wgpu::ComputePassTimestampWrites>,
        read_back: bool,
    ) {
        {
            let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
                label: Some("exprans decode"),
                timestamp_writes: timestamps,
            });
            for dispatch in &batch.dispatches {
                pass.set_pipeline(&dispatch.pipeline);
                pass.set_bind_group(0, &dispatch.bind_group, &[]);
                pass.dispatch_workgroups(dispatch.grid.0, dispatch.grid.1, 1);
            }
        }
        encoder.copy_buffer_to_buffer(&batch.flags, 0, &batch.flags_readback, 0, None);
        if read_back {
            for host in &batch.host {
                encoder.copy_buffer_to_buffer(&host.output, 0, &host.readback, 0, None);
            }
        }
    }
}

/// A failure of one batch, with the item it concerns when it concerns one.
#[derive(Debug)]
pub(crate) struct BatchError {
    /// Index of the failing item in the batch.
    pub item: Option<usize>,
    /// What went wrong.
    pub error: Error,
}

impl From<Error> for BatchError {
    fn from(error: Error) -> Self {
        BatchError { item: None, error }
    }
}

/// The error alone, naming the item when the batch had several.
impl From<BatchError> for Error {
    fn from(e: BatchError) -> Self {
        match (e.item, e.error) {
            (Some(item), Error::Corrupt(m)) => Error::Corrupt(format!("{m} (batch item {item})")),
            (_, error) => error,
        }
    }
}

impl Batch {
    /// Waits for a submitted batch, checks its flags and gathers host outputs.
    pub(crate) async fn finish(
        self,
        device: &wgpu::Device,
    ) -> std::result::Result<Vec<Vec<u8>>, BatchError> {
        let batch = self;
        let mut buffers = vec![&batch.flags_readback];
        buffers.extend(batch.host.iter().map(|h| &h.readback));
        sync::map_read(device, &buffers).await?;
        let read_error = |e| Error::Gpu(format!("reading results back failed: {e}"));
        let flags: Vec<u32> = bytemuck::pod_collect_to_vec(
            &batch
                .flags_readback
                .get_mapped_range(..)
                .map_err(read_error)?,
        );
        for (&(item, first_block), pair) in batch.jobs.iter().zip(flags.chunks_exact(2)) {
            // Same message as `cpu::decode_reference`; the item when the batch has several.
            plan::check_flags([pair[0], pair[1]], first_block).map_err(|error| BatchError {
                item: (batch.item_lens.len() > 1 && matches!(error, Error::Corrupt(_)))
                    .then_some(item),
                error,
            })?;
        }
        let mut out: Vec<Vec<u8>> = batch
            .item_lens
            .iter()
            .map(|&len| {
                if batch.host.is_empty() {
                    Vec::new()
                } else {
                    vec![0; len]
                }
            })
            .collect();
        for host in &batch.host {
            let view = host.readback.get_mapped_range(..).map_err(read_error)?;
            for &(item, entry_offset, out_at) in &host.pieces {
                let dst = &mut out[item][entry_offset..];
                let n = dst.len().min(view.len() - out_at);
                dst[..n].copy_from_slice(&view[out_at..out_at + n]);
            }
        }
        Ok(out)
    }
}

impl GpuDecoder {
    /// A buffer, zero-initialized by wgpu (also when mapped at creation).
    fn buffer(
        &self,
        label: &str,
        size: u64,
        usage: wgpu::BufferUsages,
        mapped: bool,
    ) -> wgpu::Buffer {
        self.device().create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size,
            usage,
            mapped_at_creation: mapped,
        })
    }
}

/// Lays `groups` workgroups out in two dimensions of at most `max` each (the kernels compute
/// `workgroup_id.y * num_workgroups.x + workgroup_id.x` and skip indices past their work).
pub(crate) fn grid(groups: u64, max: u32) -> Result<(u32, u32)> {
    let max = max as u64;
    let x = groups.clamp(1, max);
    let y = groups.div_ceil(x);
    if y > max {
        return Err(Error::Gpu(format!(
            "{groups} workgroups exceed the device's dispatch limit"
        )));
    }
    Ok((x as u32, y as u32))
}

/// Checks that `target` has the `usage` flags, a u32-aligned offset and room for `len` bytes.
pub(crate) fn check_target(
    target: &OutputTarget,
    len: u64,
    usage: wgpu::BufferUsages,
) -> Result<()> {
    let missing = usage - target.buffer.usage();
    if !missing.is_empty() {
        let names: Vec<&str> = missing.iter_names().map(|(name, _)| name).collect();
        return Err(Error::invalid(format!(
            "GPU output buffer lacks {} usage",
            names.join(" | ")
        )));
    }
    if target.offset & 3 != 0 {
        return Err(Error::invalid(format!(
            "GPU output offset {} is not a multiple of 4",
            target.offset
        )));
    }
    if target
        .offset
        .checked_add(len)
        .is_none_or(|end| end > target.buffer.size())
    {
        return Err(Error::invalid(format!(
            "GPU output buffer of {} bytes cannot hold {len} bytes at offset {}",
            target.buffer.size(),
            target.offset
        )));
    }
    Ok(())
}

fn binding(
    index: u32,
    buffer: &wgpu::Buffer,
    offset: u64,
    size: Option<NonZeroU64>,
) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding: index,
        resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer,
            offset,
            size,
        }),
    }
}
