//! A model's tensors on the GPU, held as [`WeightMode`] says: 2-D tensors as [`GpuMatrix`]es,
//! the others (biases, norm weights) as plain 16-bit buffers.

use std::collections::HashMap;

use exprans::gpu::sync as wait;
use exprans::gpu::{tensor_output_len, OutputTarget};
use exprans::TensorIndex;
use exprans::{quote, Error, Result};

use crate::checkpoint::{TensorInfo, TensorSource};
use crate::context::GpuContext;
use crate::matvec::{self, buffer, Dtype16, GpuMatrix};

/// How a model holds its weights on the GPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WeightMode {
    /// Uncompressed values, uploaded as they are (decoded on the CPU from a compressed file).
    Plain,
    /// The compressed entries decoded once on the GPU ([`exprans::gpu::GpuDecoder`]) into plain
    /// buffers.
    Decoded,
    /// Compressed matrices decoded inside the matrix kernels at every use; vectors (biases,
    /// norm weights) decoded once as in `Decoded`.
    Fused,
}

impl WeightMode {
    /// Every mode.
    pub const ALL: [WeightMode; 3] = [WeightMode::Plain, WeightMode::Decoded, WeightMode::Fused];

    /// `plain`, `decoded` or `fused`.
    pub fn name(self) -> &'static str {
        match self {
            WeightMode::Plain => "plain",
            WeightMode::Decoded => "decoded",
            WeightMode::Fused => "fused",
        }
    }

    /// The mode named `name`.
    pub fn from_name(name: &str) -> Option<WeightMode> {
        Self::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Whether the mode needs a compressed checkpoint.
    pub fn needs_compressed(self) -> bool {
        self != WeightMode::Plain
    }
}

/// The first coded 2-D tensor of `tensors` whose blocks are not whole rows (the fused kernels
/// decode one block of whole rows per workgroup), as an error saying how to make a file that
/// fuses; `Ok` when there is none.
pub(crate) fn check_fusable<'a>(
    tensors: &[(String, TensorInfo)],
    source: &impl TensorSource<'a>,
) -> Result<()> {
    for (name, info) in tensors {
        if let [_, cols] = info.shape[..] {
            if let Some(entry) = source.checkpoint_of(name)?.coded_entry(name)? {
                if cols == 0 || !(entry.block_size() as u64).is_multiple_of(cols) {
                    return Err(Error::invalid(format!(
                        "tensor {}: blocks of {} values are not whole rows of {cols}; fused \
                         weights need a model compressed with `exprans compress \
                         --rows-per-block 16` (or use --weights decoded)",
                        quote(name),
                        entry.block_size()
                    )));
                }
            }
        }
    }
    Ok(())
}

/// The mode a model is best held in: `Fused` when `source` is compressed and every coded 2-D
/// tensor of `tensors` is in whole-row blocks, `Decoded` when it is compressed otherwise,
/// `Plain` when it is not compressed.
pub fn best_mode<'a>(
    tensors: &[(String, TensorInfo)],
    source: &impl TensorSource<'a>,
) -> Result<WeightMode> {
    if !source.is_compressed() {
        return Ok(WeightMode::Plain);
    }
    match check_fusable(tensors, source) {
        Ok(()) => Ok(WeightMode::Fused),
        Err(Error::Invalid(_)) => Ok(WeightMode::Decoded),
        Err(e) => Err(e),
    }
}

/// The weights as they are held on the GPU.
#[derive(Debug)]
pub(crate) struct Weights {
    /// Every 2-D tensor, by name.
    pub(crate) matrices: HashMap<String, GpuMatrix>,
    /// Every other tensor, by name: its 16-bit values, two per u32.
    pub(crate) vectors: HashMap<String, (Dtype16, wgpu::Buffer)>,
    /// GPU memory held by all of them.
    pub(crate) bytes: u64,
}

/// The 16-bit type of a tensor the GPU runs.
pub(crate) fn dtype16(name: &str, dtype: &str) -> Result<Dtype16> {
    Dtype16::from_safetensors(dtype).ok_or_else(|| {
        Error::invalid(format!(
            "tensor {}: the GPU runs BF16/F16 weights, not {}",
            quote(name),
            quote(dtype)
        ))
    })
}

/// A coded tensor still to decode on the GPU: its index, stored bytes and allocated plain buffer.
type PendingTensor<'a> = (TensorIndex, &'a [u8], wgpu::Buffer);

impl Weights {
    /// Loads `tensors` (checked names and shapes, all of one 16-bit dtype) from `source` onto
    /// the GPU as `mode` asks; tensors held decoded are decoded in one GPU submission, both
    /// checksums checked.
    pub(crate) async fn load<'a>(
        gpu: &GpuContext,
        tensors: &[(String, TensorInfo)],
        source: &impl TensorSource<'a>,
        mode: WeightMode,
    ) -> Result<Weights> {
        if mode.needs_compressed() && !source.is_compressed() {
            return Err(Error::invalid(format!(
                "weights held {} need a compressed model (exprans compress)",
                mode.name()
            )));
        }
        if mode == WeightMode::Fused {
            check_fusable(tensors, source)?;
        }
        let (loaded, errors) = wait::capture(gpu.device(), "uploading the weights", || {
            Self::upload(gpu, tensors, source, mode)
        });
        errors.await?;
        let (weights, to_decode) = loaded?;
        let items: Vec<_> = to_decode
            .iter()
            .map(|(t, stored, buffer)| (t, *stored, OutputTarget { buffer, offset: 0 }))
            .collect();
        if !items.is_empty() {
            gpu.decoder().decode_tensors_into(&items).await?;
        }
        Ok(weights)
    }

    /// Uploads what is held plain or fused; returns the weights and the coded tensors still to
    /// decode on the GPU (into the buffers the weights already hold).
    fn upload<'a>(
        gpu: &GpuContext,
        tensors: &[(String, TensorInfo)],
        source: &impl TensorSource<'a>,
        mode: WeightMode,
    ) -> Result<(Weights, Vec<PendingTensor<'a>>)> {
        let device = gpu.device();
        let mut weights = Weights {
            matrices: HashMap::new(),
            vectors: HashMap::new(),
            bytes: 0,
        };
        let Some((first, first_info)) = tensors.first() else {
            return Ok((weights, Vec::new()));
        };
        // Biases and norm weights are read as the matrices' dtype: one for all.
        let dtype = dtype16(first, &first_info.dtype)?;
        if let Some((name, info)) = tensors.iter().find(|(_, i)| i.dtype != first_info.dtype) {
            return Err(Error::invalid(format!(
                "tensor {}: {}, the others {}; the GPU runs models of one dtype",
                quote(name),
                quote(&info.dtype),
                quote(&first_info.dtype)
            )));
        }
        // Tensors decoded once on the GPU (every tensor but the fused matrices when the model
        // is compressed), each into a plain buffer of its own.
        let mut to_decode = Vec::new();
        let mut decode_later = |name: &str| -> Result<wgpu::Buffer> {
            let (t, stored) = source.checkpoint_of(name)?.stored(name)?;
            let usage = wgpu::BufferUsages::STORAGE
                | wgpu::BufferUsages::COPY_SRC
                | wgpu::BufferUsages::COPY_DST;
            let b = buffer(device, name, tensor_output_len(t).max(4), usage);
            to_decode.push((t.clone(), stored, b.clone()));
            Ok(b)
        };
        for (name, info) in tensors {
            let checkpoint = source.checkpoint_of(name)?;
            let fused = match mode {
                WeightMode::Fused => checkpoint.coded_entry(name)?,
                WeightMode::Plain | WeightMode::Decoded => None,
            };
            let gpu_decoded = mode != WeightMode::Plain;
            if let [rows, cols] = info.shape[..] {
                let (Ok(rows), Ok(cols)) = (u32::try_from(rows), u32::try_from(cols)) else {
                    return Err(Error::invalid(format!(
                        "tensor {}: shape {:?} is too large for the GPU",
                        quote(name),
                        info.shape
                    )));
                };
                let m = match fused {
                    Some(e) => GpuMatrix::fused(device, name, dtype, rows, cols, &e)?,
                    None if gpu_decoded => {
                        GpuMatrix::plain_in(decode_later(name)?, name, dtype, rows, cols)?
                    }
                    None => {
                        let values = checkpoint.bytes(name)?;
                        GpuMatrix::plain(device, name, dtype, rows, cols, &values)?
                    }
                };
                weights.bytes += m.gpu_bytes();
                weights.matrices.insert(name.clone(), m);
            } else {
                let b = if gpu_decoded {
                    decode_later(name)?
                } else {
                    matvec::upload(device, name, &checkpoint.bytes(name)?)
                };
                weights.bytes += b.size();
                weights.vectors.insert(name.clone(), (dtype, b));
            }
        }
        Ok((weights, to_decode))
    }
}
