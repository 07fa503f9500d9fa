//! Model weights from a safetensors file held in memory, plain or compressed by exprans.

use exprans::safetensors::Header;
use exprans::{Archive, CodedEntry, CpuDecoder, EncodeOptions, Error, Result, TensorIndex};

/// A checkpoint: a plain safetensors file or an exprans file, in memory.
#[derive(Debug)]
pub enum Checkpoint<'a> {
    /// An ordinary safetensors file.
    Plain {
        /// The whole file.
        file: &'a [u8],
        /// Its parsed header.
        header: Header,
    },
    /// An exprans file.
    Compressed {
        /// The whole file.
        file: &'a [u8],
        /// Its parsed header.
        archive: Archive,
    },
}

/// What a checkpoint says about one tensor.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// Original dtype string.
    pub dtype: String,
    /// Original shape.
    pub shape: Vec<u64>,
}

impl<'a> Checkpoint<'a> {
    /// Parses `file`, an exprans file (`__metadata__.format == "exprans"`) or a plain one.
    pub fn parse(file: &'a [u8]) -> Result<Checkpoint<'a>> {
        let header = Header::read(file)?;
        let format = header.metadata.as_ref().and_then(|m| m.get("format"));
        if format.map(String::as_str) == Some(exprans::FORMAT_NAME) {
            Ok(Checkpoint::Compressed {
                file,
                archive: Archive::from_bytes(file)?,
            })
        } else {
            Ok(Checkpoint::Plain { file, header })
        }
    }

    /// Whether this is an exprans file.
    pub fn is_compressed(&self) -> bool {
        matches!(self, Checkpoint::Compressed { .. })
    }

    /// Dtype and shape of tensor `name`.
    pub fn info(&self, name: &str) -> Result<TensorInfo> {
        let missing = || Error::invalid(format!("checkpoint has no tensor '{name}'"));
        match self {
            Checkpoint::Plain { header, .. } => {
                let (_, e) = header
                    .tensors
                    .iter()
                    .find(|(n, _)| n == name)
                    .ok_or_else(missing)?;
                Ok(TensorInfo {
                    dtype: e.dtype.clone(),
                    shape: e.shape.clone(),
                })
            }
            Checkpoint::Compressed { archive, .. } => {
                let t = archive.tensor(name).ok_or_else(missing)?;
                Ok(TensorInfo {
                    dtype: t.index.dtype.clone(),
                    shape: t.index.shape.clone(),
                })
            }
        }
    }

    /// The tensor's original little-endian bytes: borrowed from a plain file, decoded on the CPU
    /// (checksums checked) from a compressed one.
    pub fn bytes(&self, name: &str) -> Result<std::borrow::Cow<'a, [u8]>> {
        match self {
            Checkpoint::Plain { file, header } => {
                let (_, e) = header
                    .tensors
                    .iter()
                    .find(|(n, _)| n == name)
                    .ok_or_else(|| Error::invalid(format!("checkpoint has no tensor '{name}'")))?;
                let start = header.data_start() as usize;
                let (b, end) = e.data_offsets;
                Ok(std::borrow::Cow::Borrowed(
                    &file[start + b as usize..start + end as usize],
                ))
            }
            Checkpoint::Compressed { .. } => {
                let (index, stored) = self.stored(name)?;
                Ok(CpuDecoder::default().decode_tensor(index, stored)?.into())
            }
        }
    }

    /// The stored entry of tensor `name` of a compressed checkpoint: its index record and stored
    /// bytes. Fails on a plain checkpoint.
    pub fn stored(&self, name: &str) -> Result<(&TensorIndex, &'a [u8])> {
        let Checkpoint::Compressed { file, archive } = self else {
            return Err(Error::invalid("not a compressed checkpoint"));
        };
        let t = archive
            .tensor(name)
            .ok_or_else(|| Error::invalid(format!("checkpoint has no tensor '{name}'")))?;
        Ok((&t.index, t.stored_in(file)?))
    }

    /// The coded entry of tensor `name` (stored checksum checked), or `None` when the tensor is
    /// stored verbatim or the checkpoint is plain.
    pub fn coded_entry(&self, name: &str) -> Result<Option<CodedEntry<'a>>> {
        if !self.is_compressed() {
            return Ok(None);
        }
        let (index, stored) = self.stored(name)?;
        CodedEntry::of_tensor(index, stored)
    }
}

/// Compresses a safetensors file in memory with whole-row blocks of `rows_per_block` rows
/// (`exprans compress --rows-per-block N`, with `--fast` when `fast`): the layout
/// [`crate::matvec::GpuMatrix::fused`] needs.
pub fn compress_row_aligned(file: &[u8], rows_per_block: u32, fast: bool) -> Result<Vec<u8>> {
    let opts = EncodeOptions {
        fast,
        rows_per_block: Some(rows_per_block),
        ..EncodeOptions::default()
    };
    exprans::compress(file, &opts)
}

/// Where a model's tensors are: one checkpoint, or the shards of a model directory.
pub trait TensorSource<'a> {
    /// The checkpoint holding tensor `name`.
    fn checkpoint_of(&self, name: &str) -> Result<&Checkpoint<'a>>;

    /// Whether every checkpoint is an exprans file.
    fn is_compressed(&self) -> bool;

    /// Whether tensor `name` is present.
    fn contains(&self, name: &str) -> bool {
        self.checkpoint_of(name).is_ok()
    }
}

impl<'a> TensorSource<'a> for Checkpoint<'a> {
    fn checkpoint_of(&self, name: &str) -> Result<&Checkpoint<'a>> {
        let present = match self {
            Checkpoint::Plain { header, .. } => header.tensors.iter().any(|(n, _)| n == name),
            Checkpoint::Compressed { archive, .. } => archive.tensor(name).is_some(),
        };
        if present {
            Ok(self)
        } else {
            Err(Error::invalid(format!("checkpoint has no tensor '{name}'")))
        }
    }

    fn is_compressed(&self) -> bool {
        Checkpoint::is_compressed(self)
    }
}

/// The shards of a model: every tensor name maps to the one shard that holds it.
#[derive(Debug)]
pub struct Shards<'a> {
    shards: Vec<Checkpoint<'a>>,
    /// Tensor name -> index into `shards`; a name is in exactly one shard.
    by_name: std::collections::HashMap<String, usize>,
}

impl<'a> Shards<'a> {
    /// Parses every shard file, given with its name (for messages). Fails when a tensor name
    /// is in two shards, or when plain and compressed shards are mixed.
    pub fn parse(files: &[(&str, &'a [u8])]) -> Result<Shards<'a>> {
        let mut shards = Vec::with_capacity(files.len());
        let mut by_name = std::collections::HashMap::new();
        for (i, (shard, file)) in files.iter().enumerate() {
            let checkpoint = Checkpoint::parse(file)
                .map_err(|e| Error::invalid(format!("shard {}: {e}", exprans::quote(shard))))?;
            let names: Vec<String> = match &checkpoint {
                Checkpoint::Plain { header, .. } => {
                    header.tensors.iter().map(|(n, _)| n.clone()).collect()
                }
                Checkpoint::Compressed { archive, .. } => archive
                    .tensors
                    .iter()
                    .map(|t| t.index.name.clone())
                    .collect(),
            };
            for name in names {
                if by_name.insert(name.clone(), i).is_some() {
                    return Err(Error::invalid(format!(
                        "tensor {} is in two shards",
                        exprans::quote(&name)
                    )));
                }
            }
            shards.push(checkpoint);
        }
        if shards.is_empty() {
            return Err(Error::invalid("a model needs at least one shard"));
        }
        if shards
            .iter()
            .any(|s| s.is_compressed() != shards[0].is_compressed())
        {
            return Err(Error::invalid(
                "the model mixes plain and compressed shards; compress the whole directory",
            ));
        }
        Ok(Shards { shards, by_name })
    }

    /// The parsed shards, in the order given.
    pub fn shards(&self) -> &[Checkpoint<'a>] {
        &self.shards
    }
}

impl<'a> TensorSource<'a> for Shards<'a> {
    fn checkpoint_of(&self, name: &str) -> Result<&Checkpoint<'a>> {
        self.by_name
            .get(name)
            .map(|&i| &self.shards[i])
            .ok_or_else(|| Error::invalid(format!("model has no tensor {}", exprans::quote(name))))
    }

    fn is_compressed(&self) -> bool {
        self.shards[0].is_compressed()
    }
}

/// A tensor's values as f32 (BF16, F16 or F32 little-endian `bytes`).
pub(crate) fn values_f32(name: &str, dtype: &str, bytes: &[u8]) -> Result<Vec<f32>> {
    if dtype == "F32" {
        return Ok(bytemuck::pod_collect_to_vec(bytes));
    }
    let t = crate::matvec::Dtype16::from_safetensors(dtype).ok_or_else(|| {
        Error::invalid(format!(
            "tensor {}: dtype {} is not a float",
            exprans::quote(name),
            exprans::quote(dtype)
        ))
    })?;
    Ok(bytes
        .chunks_exact(2)
        .map(|v| t.to_f32(u16::from_le_bytes([v[0], v[1]])))
        .collect())
}
