//! Matrix-vector products over 16-bit weight matrices on the GPU, with the weights held
//! uncompressed or compressed.
//!
//! A [`GpuMatrix`] is a `[rows, cols]` BF16/F16 matrix (row-major, `torch.nn.Linear` layout) in
//! one GPU buffer: either its plain values or its coded entry (docs/FORMAT.md, section 4) packed
//! for the core's rANS lane ([`exprans::gpu::PackedEntry`]), which the fused kernel decodes on the
//! fly, block by block, in registers.
//! Coded matrices need the row-aligned layout (`--rows-per-block`, [`exprans::EncodeOptions::rows_per_block`]):
//! each block holds whole rows, and one workgroup decodes one block.
//!
//! [`MatrixKernels`] holds the compiled pipelines; a [`MatrixCall`] is one bound operation
//! (`y = W x + b`, optionally GELU, or a row gather for embeddings) to record into compute passes.
//! Plain and fused matrices run the same WGSL loops (shaders/matvec_common.wgsl), whose
//! summation order depends only on the shape (see [`GpuMatrix::block_rows`]), so they give
//! bit-identical results.
//!
//! ```no_run
//! # async fn run() -> exprans::Result<()> {
//! use exprans::gpu::{DecoderOptions, GpuDecoder};
//! use exprans_infer::matvec::{Dtype16, GpuMatrix, MatrixKernels};
//! let gpu = GpuDecoder::new_default(DecoderOptions::default()).await?;
//! let kernels = MatrixKernels::new(gpu.device()).await?;
//! let w: Vec<u8> = vec![0; 2 * 3 * 4]; // 3 x 4 BF16 zeros
//! let m = GpuMatrix::plain(gpu.device(), "w", Dtype16::Bf16, 3, 4, &w)?;
//! let y = kernels.matvec(gpu.device(), gpu.queue(), &m, &[1.0; 4], 1, None, false).await?;
//! assert_eq!(y, vec![0.0; 3]);
//! # Ok(()) }
//! ```

use wgpu::util::DeviceExt;

use super::shaders::{
    Bind, Module, DTYPE_BF16, DTYPE_F16, MATVEC_BINDINGS, OP_ACCUMULATE, OP_BIAS, OP_GELU,
};
use exprans::gpu::sync as wait;
use exprans::gpu::{check_flags, PackedEntry, PackedParams};
use exprans::{CodedEntry, Error, Result};

use crate::shaders::MATVEC_MAX_BATCH;

/// The 16-bit float types the kernels read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dtype16 {
    /// bfloat16.
    Bf16,
    /// IEEE half precision.
    F16,
}

impl Dtype16 {
    /// The type of a safetensors dtype string (`"BF16"`, `"F16"`), if it is one of these.
    pub fn from_safetensors(dtype: &str) -> Option<Dtype16> {
        match dtype {
            "BF16" => Some(Dtype16::Bf16),
            "F16" => Some(Dtype16::F16),
            _ => None,
        }
    }

    /// The value of little-endian bits `bits` as f32 (exact).
    pub fn to_f32(self, bits: u16) -> f32 {
        match self {
            Dtype16::Bf16 => half::bf16::from_bits(bits).to_f32(),
            Dtype16::F16 => half::f16::from_bits(bits).to_f32(),
        }
    }

    pub(crate) fn code(self) -> u32 {
        match self {
            Dtype16::Bf16 => DTYPE_BF16,
            Dtype16::F16 => DTYPE_F16,
        }
    }
}

/// Uniform parameters of one matrix call; mirrors `struct Matvec` in shaders/matvec_common.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct MatvecParams {
    pub(crate) rows: u32,
    pub(crate) cols: u32,
    pub(crate) block_rows: u32,
    pub(crate) tokens: u32,
    pub(crate) dtype: u32,
    pub(crate) op: u32,
    pub(crate) block_count: u32,
    pub(crate) flag_index: u32,
    /// Fused matrices: the packed entry (zero for plain ones).
    pub(crate) entry: PackedParams,
}

/// A `[rows, cols]` 16-bit weight matrix in a GPU buffer, plain or coded.
#[derive(Clone, Debug)]
pub struct GpuMatrix {
    name: String,
    rows: u32,
    cols: u32,
    block_rows: u32,
    dtype: Dtype16,
    buffer: wgpu::Buffer,
    coded: Option<PackedParams>,
}

/// Checks a matrix shape against what the kernels index with u32.
fn check_shape(name: &str, rows: u32, cols: u32, block_rows: u32) -> Result<()> {
    if rows == 0 || cols == 0 || block_rows == 0 {
        return Err(Error::invalid(format!(
            "matrix '{name}': empty shape {rows} x {cols} or zero rows per block"
        )));
    }
    if (rows as u64) * (cols as u64) >= 1 << 31 {
        return Err(Error::invalid(format!(
            "matrix '{name}': {rows} x {cols} values are too many for one GPU matrix"
        )));
    }
    Ok(())
}

impl GpuMatrix {
    /// Uploads an uncompressed matrix: `values` holds `rows * cols` little-endian 16-bit values.
    pub fn plain(
        device: &wgpu::Device,
        name: &str,
        dtype: Dtype16,
        rows: u32,
        cols: u32,
        values: &[u8],
    ) -> Result<GpuMatrix> {
        check_shape(name, rows, cols, 1)?;
        if values.len() != 2 * rows as usize * cols as usize {
            return Err(Error::invalid(format!(
                "matrix '{name}': {} bytes for {rows} x {cols} 16-bit values",
                values.len()
            )));
        }
        let buffer = upload(device, name, values);
        Self::plain_in(buffer, name, dtype, rows, cols)
    }

    /// Wraps a buffer that already holds the plain values (e.g. decoded into it on the GPU by
    /// [`exprans::gpu::GpuDecoder`]). The buffer needs `STORAGE` usage.
    pub fn plain_in(
        buffer: wgpu::Buffer,
        name: &str,
        dtype: Dtype16,
        rows: u32,
        cols: u32,
    ) -> Result<GpuMatrix> {
        // Rows per workgroup: about PLAIN_GROUP_VALUES values each.
        let block_rows = (PLAIN_GROUP_VALUES / cols.max(1)).max(1);
        check_shape(name, rows, cols, block_rows)?;
        if buffer.size() < 2 * rows as u64 * cols as u64 {
            return Err(Error::invalid(format!(
                "matrix '{name}': buffer of {} bytes cannot hold {rows} x {cols} values",
                buffer.size()
            )));
        }
        Ok(GpuMatrix {
            name: name.to_string(),
            rows,
            cols,
            block_rows,
            dtype,
            buffer,
            coded: None,
        })
    }

    /// Uploads a coded BF16/F16 entry of shape `[rows, cols]`, to be decoded inside the kernels.
    /// Its blocks must hold whole rows (files compressed with `--rows-per-block`).
    pub fn fused(
        device: &wgpu::Device,
        name: &str,
        dtype: Dtype16,
        rows: u32,
        cols: u32,
        entry: &CodedEntry,
    ) -> Result<GpuMatrix> {
        if entry.plane_count() != 2 {
            return Err(Error::invalid(format!(
                "matrix '{name}': the fused kernel reads 16-bit values only"
            )));
        }
        if entry.value_count() != rows as usize * cols as usize {
            return Err(Error::invalid(format!(
                "matrix '{name}': entry holds {} values, not {rows} x {cols}",
                entry.value_count()
            )));
        }
        let block_rows = row_aligned_block_rows(entry.block_size(), cols).ok_or_else(|| {
            Error::invalid(format!(
                "matrix '{name}': blocks of {} values are not whole rows of {cols}; the \
                     fused kernels need files compressed with whole rows per block",
                entry.block_size()
            ))
        })?;
        check_shape(name, rows, cols, block_rows)?;
        // The whole matrix as one packed entry: the layout of shaders/rans_lane.wgsl.
        let packed =
            PackedEntry::new(entry, 0..entry.block_count()).map_err(|e| e.in_tensor(name))?;
        let coded = packed.params;
        let bytes = packed.bytes;
        Ok(GpuMatrix {
            name: name.to_string(),
            rows,
            cols,
            block_rows,
            dtype,
            buffer: upload(device, name, &bytes),
            coded: Some(coded),
        })
    }

    /// Name (for error messages).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Output size.
    pub fn rows(&self) -> u32 {
        self.rows
    }

    /// Input size.
    pub fn cols(&self) -> u32 {
        self.cols
    }

    /// Rows per block: one workgroup handles one block (a coded matrix's blocks; for a plain one
    /// about 8192 values). Results do not depend on it: output `r` is the fixed-tree sum of the
    /// [`exprans::LANES`] sums of the columns of each class `c mod LANES` of row `r`, each in column order
    /// (shaders/matvec_common.wgsl).
    pub fn block_rows(&self) -> u32 {
        self.block_rows
    }

    /// Value type.
    pub fn dtype(&self) -> Dtype16 {
        self.dtype
    }

    /// Whether the matrix is held coded (and decoded inside the kernels).
    pub fn is_fused(&self) -> bool {
        self.coded.is_some()
    }

    /// GPU memory the matrix holds, in bytes.
    pub fn gpu_bytes(&self) -> u64 {
        self.buffer.size()
    }

    fn block_count(&self) -> u32 {
        self.rows.div_ceil(self.block_rows)
    }

    fn params(&self, op: u32, flag_index: u32) -> MatvecParams {
        MatvecParams {
            rows: self.rows,
            cols: self.cols,
            block_rows: self.block_rows,
            tokens: 0,
            dtype: self.dtype.code(),
            op,
            block_count: self.block_count(),
            flag_index,
            entry: self.coded.unwrap_or_default(),
        }
    }
}

/// Values one workgroup of the plain kernel multiplies (whole rows, at least one).
const PLAIN_GROUP_VALUES: u32 = 8192;

/// Rows per block of a row-aligned coded matrix with `cols` columns, or `None` when its blocks
/// are not whole rows.
pub fn row_aligned_block_rows(block_size: u32, cols: u32) -> Option<u32> {
    (cols > 0 && block_size.is_multiple_of(cols)).then(|| block_size / cols)
}

/// A `STORAGE` buffer holding `bytes` (zero-padded to a whole u32; at least one).
pub(crate) fn upload(device: &wgpu::Device, label: &str, bytes: &[u8]) -> wgpu::Buffer {
    device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
        label: Some(label),
        contents: if bytes.is_empty() { &[0; 4] } else { bytes },
        usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST,
    })
}

/// What a [`MatrixCall`] computes.
#[derive(Clone, Copy, Debug)]
pub enum MatrixOp<'a> {
    /// `y[t] = W x[t] (+ bias) (then GELU)`: input `[tokens][cols]` f32, output `[tokens][rows]`
    /// f32. The bias holds `rows` 16-bit values of the matrix's dtype.
    Matvec {
        /// Bias buffer, if any.
        bias: Option<&'a wgpu::Buffer>,
        /// Apply GELU (erf form) after the bias.
        gelu: bool,
    },
    /// `y[t] = W[ids[t]]` (or `y[t] += W[ids[t]]` with `accumulate`): input `[tokens]` u32 row
    /// indices (clamped to the matrix), output `[tokens][cols]` f32.
    Gather {
        /// Add to the output instead of overwriting it.
        accumulate: bool,
    },
}

/// The buffers of a [`MatrixCall`].
#[derive(Clone, Copy, Debug)]
pub struct CallBuffers<'a> {
    /// Activations (matvec) or row indices (gather).
    pub input: &'a wgpu::Buffer,
    /// Results.
    pub output: &'a wgpu::Buffer,
    /// Error slots (u32 each, `STORAGE`, zeroed before the pass), two per call: a fused matrix
    /// whose stream is damaged writes the complement of its first failing lane number into
    /// `flags[2 * flag_index]` ([`exprans::gpu::check_flags`] reads them).
    pub flags: &'a wgpu::Buffer,
    /// This call's pair of slots in `flags`.
    pub flag_index: u32,
}

/// The compiled matrix kernels of one device.
#[derive(Clone, Debug)]
pub struct MatrixKernels {
    layout: wgpu::BindGroupLayout,
    plain: [wgpu::ComputePipeline; 2],
    fused: [wgpu::ComputePipeline; 2],
    /// Bound where an operation has no buffer.
    dummy: wgpu::Buffer,
    max_groups: u32,
}

impl MatrixKernels {
    /// Compiles the kernels on `device`.
    pub async fn new(device: &wgpu::Device) -> Result<MatrixKernels> {
        let (kernels, errors) = wait::capture(device, "compiling the matrix kernels", || {
            let layout = storage_layout(device, "exprans matrix", &MATVEC_BINDINGS);
            let pipelines = |module: Module| {
                let shader = module.create(device);
                ["matvec", "gather_rows"].map(|entry| pipeline(device, &layout, &shader, entry))
            };
            MatrixKernels {
                plain: pipelines(Module::MatvecPlain),
                fused: pipelines(Module::MatvecFused),
                dummy: device.create_buffer(&wgpu::BufferDescriptor {
                    label: Some("exprans unused binding"),
                    size: 16,
                    usage: wgpu::BufferUsages::STORAGE,
                    mapped_at_creation: false,
                }),
                max_groups: device.limits().max_compute_workgroups_per_dimension,
                layout,
            }
        });
        errors.await?;
        Ok(kernels)
    }

    /// Binds `op` on `matrix` to `buffers`.
    pub fn call(
        &self,
        device: &wgpu::Device,
        matrix: &GpuMatrix,
        op: MatrixOp,
        buffers: CallBuffers,
    ) -> MatrixCall {
        let (code, bias, gather) = match op {
            MatrixOp::Matvec { bias, gelu } => (
                if bias.is_some() { OP_BIAS } else { 0 } | if gelu { OP_GELU } else { 0 },
                bias,
                false,
            ),
            MatrixOp::Gather { accumulate } => {
                (if accumulate { OP_ACCUMULATE } else { 0 }, None, true)
            }
        };
        let params = matrix.params(code, buffers.flag_index);
        let uniform = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
            label: Some("exprans matrix params"),
            contents: bytemuck::bytes_of(&params),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
        });
        let (x, ids) = if gather {
            (&self.dummy, buffers.input)
        } else {
            (buffers.input, &self.dummy)
        };
        let bind_group = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("exprans matrix call"),
            layout: &self.layout,
            entries: &[
                entry(0, &uniform),
                entry(1, &matrix.buffer),
                entry(2, x),
                entry(3, bias.unwrap_or(&self.dummy)),
                entry(4, buffers.output),
                entry(5, buffers.flags),
                entry(6, ids),
            ],
        });
        let pipelines = if matrix.is_fused() {
            &self.fused
        } else {
            &self.plain
        };
        MatrixCall {
            params,
            uniform,
            bind_group,
            pipeline: pipelines[gather as usize].clone(),
            gather,
            max_groups: self.max_groups,
        }
    }

    /// Computes `y = W x (+ bias) (then GELU)` for `tokens` vectors `x` (`[tokens][cols]`) in one
    /// submission and reads `y` (`[tokens][rows]`) back. A damaged coded stream gives
    /// [`Error::Corrupt`].
    #[allow(clippy::too_many_arguments)]
    pub async fn matvec(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        matrix: &GpuMatrix,
        x: &[f32],
        tokens: u32,
        bias: Option<&[u8]>,
        gelu: bool,
    ) -> Result<Vec<f32>> {
        if x.len() != tokens as usize * matrix.cols as usize {
            return Err(Error::invalid("activations are not [tokens][cols]"));
        }
        if bias.is_some_and(|b| b.len() != 2 * matrix.rows as usize) {
            return Err(Error::invalid(format!(
                "bias is not {} 16-bit values",
                matrix.rows
            )));
        }
        let input = upload(device, "exprans x", bytemuck::cast_slice(x));
        let bias = bias.map(|b| upload(device, "exprans bias", b));
        let op = MatrixOp::Matvec {
            bias: bias.as_ref(),
            gelu,
        };
        let len = tokens as u64 * matrix.rows as u64;
        self.run_once(device, queue, matrix, op, &input, tokens, len)
            .await
    }

    /// Gathers rows `ids` of the matrix as f32 (`[ids.len()][cols]`) in one submission.
    pub async fn gather(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        matrix: &GpuMatrix,
        ids: &[u32],
    ) -> Result<Vec<f32>> {
        if let Some(bad) = ids.iter().find(|&&i| i >= matrix.rows) {
            return Err(Error::invalid(format!(
                "row {bad} is outside matrix '{}'",
                matrix.name
            )));
        }
        let input = upload(device, "exprans ids", bytemuck::cast_slice(ids));
        let op = MatrixOp::Gather { accumulate: false };
        let tokens = ids.len() as u32;
        let len = tokens as u64 * matrix.cols as u64;
        self.run_once(device, queue, matrix, op, &input, tokens, len)
            .await
    }

    #[allow(clippy::too_many_arguments)]
    async fn run_once(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        matrix: &GpuMatrix,
        op: MatrixOp<'_>,
        input: &wgpu::Buffer,
        tokens: u32,
        outputs: u64,
    ) -> Result<Vec<f32>> {
        let (readback, errors) = wait::capture(device, "running a matrix kernel", || {
            let storage = wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC;
            let output = buffer(device, "exprans y", 4 * outputs.max(1), storage);
            let flags = buffer(device, "exprans flags", 8, storage);
            let readback = buffer(
                device,
                "exprans readback",
                4 * outputs.max(1) + 8,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            );
            let buffers = CallBuffers {
                input,
                output: &output,
                flags: &flags,
                flag_index: 0,
            };
            let call = self.call(device, matrix, op, buffers);
            call.set_tokens(queue, tokens);
            let mut encoder = device.create_command_encoder(&Default::default());
            {
                let mut pass = encoder.begin_compute_pass(&Default::default());
                call.dispatch(&mut pass, tokens);
            }
            encoder.copy_buffer_to_buffer(&output, 0, &readback, 0, 4 * outputs.max(1));
            encoder.copy_buffer_to_buffer(&flags, 0, &readback, 4 * outputs.max(1), 8);
            queue.submit([encoder.finish()]);
            readback
        });
        errors.await?;
        let bytes = wait::read(device, &readback).await?;
        let (y, flag) = bytes.split_at(bytes.len() - 8);
        let slots: [u32; 2] = bytemuck::pod_read_unaligned(flag);
        check_flags(slots, 0).map_err(|e| e.in_tensor(&matrix.name))?;
        Ok(bytemuck::pod_collect_to_vec(&y[..4 * outputs as usize]))
    }
}

/// One bound matrix operation, recorded into compute passes any number of times.
#[derive(Clone, Debug)]
pub struct MatrixCall {
    params: MatvecParams,
    uniform: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    pipeline: wgpu::ComputePipeline,
    gather: bool,
    max_groups: u32,
}

impl MatrixCall {
    /// Sets the number of vectors (matvec) or rows (gather) of the next dispatches (a queue write,
    /// applied at the next submission).
    pub fn set_tokens(&self, queue: &wgpu::Queue, tokens: u32) {
        let params = MatvecParams {
            tokens,
            ..self.params
        };
        queue.write_buffer(&self.uniform, 0, bytemuck::bytes_of(&params));
    }

    /// Records the dispatch for `tokens` (as given to [`MatrixCall::set_tokens`]).
    pub fn dispatch(&self, pass: &mut wgpu::ComputePass, tokens: u32) {
        if tokens == 0 {
            return;
        }
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind_group, &[]);
        let (groups, z) = if self.gather {
            (tokens, 1)
        } else {
            (self.params.block_count, tokens.div_ceil(MATVEC_MAX_BATCH))
        };
        let x = groups.min(self.max_groups);
        pass.dispatch_workgroups(x, groups.div_ceil(x), z);
    }
}

/// The bind group layout of a table of bindings (`shaders::MATVEC_BINDINGS`, ...).
pub(crate) fn storage_layout(
    device: &wgpu::Device,
    label: &str,
    bindings: &[(u32, &str, Bind)],
) -> wgpu::BindGroupLayout {
    let entry = |binding, ty| wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty,
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    };
    let entries: Vec<_> = bindings
        .iter()
        .map(|&(binding, _, bind)| {
            entry(
                binding,
                match bind {
                    Bind::Uniform => wgpu::BufferBindingType::Uniform,
                    Bind::Storage { read_only } => wgpu::BufferBindingType::Storage { read_only },
                },
            )
        })
        .collect();
    device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
        label: Some(label),
        entries: &entries,
    })
}

/// A compute pipeline of `entry_point` in `shader` with one bind group of `layout`.
pub(crate) fn pipeline(
    device: &wgpu::Device,
    layout: &wgpu::BindGroupLayout,
    shader: &wgpu::ShaderModule,
    entry_point: &str,
) -> wgpu::ComputePipeline {
    let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
        label: Some(entry_point),
        bind_group_layouts: &[Some(layout)],
        immediate_size: 0,
    });
    device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
        label: Some(entry_point),
        layout: Some(&pipeline_layout),
        module: shader,
        entry_point: Some(entry_point),
        compilation_options: Default::default(),
        cache: None,
    })
}

/// A whole-buffer binding.
pub(crate) fn entry(binding: u32, buffer: &wgpu::Buffer) -> wgpu::BindGroupEntry<'_> {
    wgpu::BindGroupEntry {
        binding,
        resource: buffer.as_entire_binding(),
    }
}

/// A zero-initialized buffer.
pub(crate) fn buffer(
    device: &wgpu::Device,
    label: &str,
    size: u64,
    usage: wgpu::BufferUsages,
) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size,
        usage,
        mapped_at_creation: false,
    })
}
