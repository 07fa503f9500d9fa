//! The exprans container: a valid safetensors file whose entries are compressed tensors.
//!
//! Every original tensor becomes one `U8` entry of the same name holding its *stored bytes*: a
//! coded entry ([`crate::codec`]) or the original bytes verbatim, zero-padded to a multiple of
//! [`ALIGN`]. Entries keep the original data order. The header is padded with spaces so that data,
//! and so every entry, starts 16-byte aligned in the file. `__metadata__` holds:
//!
//! | key | value |
//! |---|---|
//! | `format` | `"exprans"`, so framework loaders refuse the file instead of loading blobs |
//! | `exprans.version` | the container version, [`FORMAT_VERSION`] |
//! | `exprans.index` | JSON array of [`TensorIndex`] records, in data order |
//! | `exprans.source` | the original header, as a [`SourceHeader`] (JSON) |
//! | `exprans.header_crc32c` | CRC-32C of `exprans.index` then `exprans.source` (decimal) |
//!
//! A reader needs only the header to locate, check and decode any one tensor.

use std::ops::Range;

use crate::codec::{self, CodedEntry};
use crate::params::{align_up, ALIGN};
use crate::planes::PlaneLayout;
use crate::safetensors::{element_count, Header, TensorEntry};
use crate::source_header::{SourceHeader, SourceTensor};
use crate::{Error, Result};

/// The container version written by this library. Readers refuse any other version.
pub const FORMAT_VERSION: &str = "1";
/// `__metadata__["format"]` of every exprans file.
pub const FORMAT_NAME: &str = "exprans";

const KEY_VERSION: &str = "exprans.version";
const KEY_INDEX: &str = "exprans.index";
const KEY_SOURCE: &str = "exprans.source";
const KEY_CRC: &str = "exprans.header_crc32c";

/// How a tensor's stored bytes encode it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    /// A coded entry (docs/FORMAT.md, "Coded entry").
    Rans,
    /// The original bytes, zero-padded to a multiple of 16.
    Raw,
}

/// What the index records of one tensor.
///
/// Serialized compactly, without the name (the name of the tensor's entry; records and entries
/// are both in data order), as the JSON array
/// `[dtype, shape, bytes, encoding, stored_crc32c, decoded_crc32c, entropy_millibits]`.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(from = "IndexRecord", into = "IndexRecord")]
pub struct TensorIndex {
    /// Tensor name (also the name of its `U8` entry).
    pub name: String,
    /// Original dtype string.
    pub dtype: String,
    /// Original shape.
    pub shape: Vec<u64>,
    /// Decoded (original) byte length.
    pub bytes: u64,
    /// How the stored bytes encode it.
    pub encoding: Encoding,
    /// CRC-32C of the stored bytes (the whole entry, padding included).
    pub stored_crc32c: u32,
    /// CRC-32C of the decoded bytes.
    pub decoded_crc32c: u32,
    /// Order-0 entropy of each byte plane, in thousandths of a bit per value (float dtypes only).
    pub entropy_millibits: Vec<u32>,
}

/// The serialized form of [`TensorIndex`].
#[derive(serde::Serialize, serde::Deserialize)]
struct IndexRecord(String, Vec<u64>, u64, Encoding, u32, u32, Vec<u32>);

impl From<IndexRecord> for TensorIndex {
    fn from(r: IndexRecord) -> Self {
        TensorIndex {
            name: String::new(),
            dtype: r.0,
            shape: r.1,
            bytes: r.2,
            encoding: r.3,
            stored_crc32c: r.4,
            decoded_crc32c: r.5,
            entropy_millibits: r.6,
        }
    }
}

impl From<TensorIndex> for IndexRecord {
    fn from(t: TensorIndex) -> Self {
        IndexRecord(
            t.dtype,
            t.shape,
            t.bytes,
            t.encoding,
            t.stored_crc32c,
            t.decoded_crc32c,
            t.entropy_millibits,
        )
    }
}

impl TensorIndex {
    /// The plane layout of a coded tensor's dtype.
    pub fn layout(&self) -> Option<PlaneLayout> {
        PlaneLayout::for_dtype(&self.dtype)
    }

    /// Number of values (elements).
    pub fn value_count(&self) -> u64 {
        element_count(&self.shape).unwrap_or(0)
    }

    fn source(&self) -> SourceTensor<'_> {
        SourceTensor {
            name: &self.name,
            dtype: &self.dtype,
            shape: &self.shape,
            bytes: self.bytes,
        }
    }
}

/// One tensor of an [`Archive`]: its index record and where its stored bytes are in the file.
#[derive(Clone, Debug)]
pub struct ArchiveTensor {
    /// The index record.
    pub index: TensorIndex,
    /// Byte range of the stored bytes, from the start of the file.
    pub stored: Range<u64>,
}

/// The parsed and checked header of an exprans file.
#[derive(Clone, Debug)]
pub struct Archive {
    /// Tensors in the original data order.
    pub tensors: Vec<ArchiveTensor>,
    source_header: String,
    file_len: u64,
}

impl Archive {
    /// How many bytes from the start of a file of `file_len` bytes [`Archive::parse`] needs,
    /// given its first 8 bytes.
    pub fn header_len(prefix: &[u8; 8], file_len: u64) -> Result<u64> {
        Ok(8 + Header::json_len_from_prefix(prefix, file_len)?)
    }

    /// Parses the header of an exprans file: `head` is the first [`Archive::header_len`] bytes
    /// of a file of `file_len` bytes. Checks everything the header states against itself, the
    /// original header it carries, and the file length; tensor bytes are checked when decoded.
    pub fn parse(head: &[u8], file_len: u64) -> Result<Archive> {
        let prefix: &[u8; 8] = head
            .get(..8)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| Error::invalid("file too short to be safetensors"))?;
        let json_len = Header::json_len_from_prefix(prefix, file_len)?;
        let json = head
            .get(8..8 + json_len as usize)
            .ok_or_else(|| Error::invalid("header truncated"))?;
        let header = Header::parse(json, file_len)?;
        let meta = header.metadata.clone().unwrap_or_default();
        if meta.get("format").map(String::as_str) != Some(FORMAT_NAME) {
            return Err(Error::invalid(
                "not an exprans file (__metadata__.format is not \"exprans\")",
            ));
        }
        let get = |k: &str| {
            meta.get(k)
                .ok_or_else(|| Error::corrupt(format!("__metadata__ lacks '{k}'")))
        };
        let version = get(KEY_VERSION)?;
        if version != FORMAT_VERSION {
            return Err(Error::invalid(format!(
                "exprans format version {version} is not supported (this build reads version {FORMAT_VERSION})"
            )));
        }
        let (index_json, source_json) = (get(KEY_INDEX)?, get(KEY_SOURCE)?);
        if get(KEY_CRC)?.parse::<u32>().ok() != Some(header_crc(index_json, source_json)) {
            return Err(Error::corrupt("header checksum mismatch"));
        }
        let mut index: Vec<TensorIndex> = serde_json::from_str(index_json)
            .map_err(|e| Error::corrupt(format!("bad tensor index: {e}")))?;
        let source: SourceHeader = serde_json::from_str(source_json)
            .map_err(|e| Error::corrupt(format!("bad original-header record: {e}")))?;
        if index.len() != header.tensors.len() {
            return Err(Error::corrupt("tensor index does not match the entries"));
        }
        for (t, (name, _)) in index.iter_mut().zip(&header.tensors) {
            t.name = name.clone();
        }

        // The original header must describe exactly the indexed tensors, in the same order.
        let sources: Vec<SourceTensor> = index.iter().map(TensorIndex::source).collect();
        let source_header = source.render(&sources);
        let source_file_len = index
            .iter()
            .try_fold(8 + source_header.len() as u64, |acc, t| {
                acc.checked_add(t.bytes)
            })
            .ok_or_else(|| Error::corrupt("tensor sizes overflow"))?;
        let original = Header::parse(source_header.as_bytes(), source_file_len)
            .map_err(|e| Error::corrupt(format!("stored original header: {e}")))?;
        let data_start = header.data_start();
        let mut tensors = Vec::with_capacity(index.len());
        for ((t, (_, entry)), (src_name, src)) in index
            .into_iter()
            .zip(&header.tensors)
            .zip(&original.tensors)
        {
            let fail = |what: &str| Error::corrupt(format!("tensor '{}': {what}", t.name));
            if &t.name != src_name
                || t.dtype != src.dtype
                || t.shape != src.shape
                || t.bytes != src.data_offsets.1 - src.data_offsets.0
            {
                return Err(fail("index disagrees with the original header"));
            }
            if t.layout().is_none() && t.encoding == Encoding::Rans {
                return Err(fail("coded encoding on a dtype that is stored verbatim"));
            }
            let (begin, end) = entry.data_offsets;
            if entry.dtype != "U8"
                || entry.shape != [end - begin]
                || (end - begin) % ALIGN as u64 != 0
            {
                return Err(fail("stored entry is not a padded U8 array"));
            }
            if t.encoding == Encoding::Raw && end - begin != align_up(t.bytes as usize) as u64 {
                return Err(fail("verbatim entry size does not match the tensor size"));
            }
            tensors.push(ArchiveTensor {
                index: t,
                stored: data_start + begin..data_start + end,
            });
        }
        Ok(Archive {
            tensors,
            source_header,
            file_len,
        })
    }

    /// Parses the header of a whole file held in memory.
    pub fn from_bytes(file: &[u8]) -> Result<Archive> {
        let prefix: &[u8; 8] = file
            .get(..8)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| Error::invalid("file too short to be safetensors"))?;
        let head_len = Archive::header_len(prefix, file.len() as u64)? as usize;
        Archive::parse(&file[..head_len], file.len() as u64)
    }

    /// The tensor with this name.
    pub fn tensor(&self, name: &str) -> Option<&ArchiveTensor> {
        self.tensors.iter().find(|t| t.index.name == name)
    }

    /// The original file's header, length prefix included: the first bytes of the decompressed
    /// file.
    pub fn source_header_bytes(&self) -> Vec<u8> {
        let mut out = (self.source_header.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(self.source_header.as_bytes());
        out
    }

    /// Size of the decompressed file.
    pub fn original_len(&self) -> u64 {
        8 + self.source_header.len() as u64
            + self.tensors.iter().map(|t| t.index.bytes).sum::<u64>()
    }

    /// Size of this (compressed) file.
    pub fn file_len(&self) -> u64 {
        self.file_len
    }
}

fn header_crc(index_json: &str, source_json: &str) -> u32 {
    let crc = crc32c::crc32c(index_json.as_bytes());
    crc32c::crc32c_append(crc, source_json.as_bytes())
}

/// Checks a tensor's stored bytes against its checksum. Every decoder calls this first.
pub fn check_stored(t: &TensorIndex, stored: &[u8]) -> Result<()> {
    if crc32c::crc32c(stored) != t.stored_crc32c {
        return Err(Error::corrupt(format!(
            "tensor '{}': stored bytes fail their checksum",
            t.name
        )));
    }
    Ok(())
}

/// Checks decoded bytes against their checksum.
pub fn check_decoded(t: &TensorIndex, decoded: &[u8]) -> Result<()> {
    if crc32c::crc32c(decoded) != t.decoded_crc32c {
        return Err(Error::corrupt(format!(
            "tensor '{}': decoded bytes fail their checksum",
            t.name
        )));
    }
    Ok(())
}

/// The original bytes of a tensor stored with [`Encoding::Raw`] (its stored bytes less padding).
pub fn raw_tensor<'a>(t: &TensorIndex, stored: &'a [u8]) -> Result<&'a [u8]> {
    stored.get(..t.bytes as usize).ok_or_else(|| {
        Error::corrupt(format!(
            "tensor '{}': verbatim entry shorter than the tensor",
            t.name
        ))
    })
}

/// Parses the coded entry of a tensor stored with [`Encoding::Rans`] (after [`check_stored`]).
pub fn coded_entry<'a>(t: &TensorIndex, stored: &'a [u8]) -> Result<CodedEntry<'a>> {
    let layout = t
        .layout()
        .ok_or_else(|| Error::corrupt(format!("tensor '{}': dtype cannot be coded", t.name)))?;
    CodedEntry::parse(stored, layout, t.value_count()).map_err(|e| e.in_tensor(&t.name))
}

/// Which CPU decoder to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CpuDecoder {
    /// [`crate::cpu::decode_reference`].
    Reference,
    /// [`crate::cpu::decode_fast`], blocks in parallel on the current rayon pool when `parallel`.
    Fast {
        /// Decode blocks in parallel.
        parallel: bool,
    },
}

/// Decodes one tensor from its stored bytes on the CPU, checking both checksums.
pub fn decode_tensor(t: &TensorIndex, stored: &[u8], decoder: CpuDecoder) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    decode_tensor_into(t, stored, decoder, &mut out)?;
    Ok(out)
}

/// [`decode_tensor`] into `out` (replacing its contents). Reusing one buffer for many tensors
/// spares the page faults of fresh memory, a fifth of the decode time on large tensors.
pub fn decode_tensor_into(
    t: &TensorIndex,
    stored: &[u8],
    decoder: CpuDecoder,
    out: &mut Vec<u8>,
) -> Result<()> {
    check_stored(t, stored)?;
    out.clear();
    match t.encoding {
        Encoding::Raw => out.extend_from_slice(raw_tensor(t, stored)?),
        Encoding::Rans => {
            let entry = coded_entry(t, stored)?;
            out.resize(t.bytes as usize, 0);
            match decoder {
                CpuDecoder::Reference => crate::cpu::decode_reference(&entry, out),
                CpuDecoder::Fast { parallel } => crate::cpu::decode_fast(&entry, out, parallel),
            }
            .map_err(|e| e.in_tensor(&t.name))?;
        }
    }
    check_decoded(t, out)
}

/// The result of compressing one tensor: its index record and stored bytes.
#[derive(Clone, Debug)]
pub struct StoredTensor {
    /// Index record.
    pub index: TensorIndex,
    /// Stored bytes (a multiple of [`ALIGN`] long).
    pub stored: Vec<u8>,
}

/// How blocks are sized.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BlockLayout {
    /// Every tensor uses `EncodeOptions::block_size`.
    Fixed,
    /// 2-D tensors use blocks of whole rows: this many rows per block (twice as many when a
    /// block of them would hold an odd number of values), so that a fused decode+matvec kernel
    /// decodes whole rows in one workgroup. Other tensors use `EncodeOptions::block_size`.
    Rows(u32),
}

impl BlockLayout {
    /// The encode options for a tensor of this shape.
    pub fn options_for(
        self,
        shape: &[u64],
        opts: &codec::EncodeOptions,
    ) -> Result<codec::EncodeOptions> {
        let (BlockLayout::Rows(rows), [_, cols]) = (self, shape) else {
            return Ok(*opts);
        };
        if rows == 0 {
            return Err(Error::invalid("--rows-per-block must be at least 1"));
        }
        let mut values = cols.saturating_mul(rows as u64);
        if values % 2 == 1 {
            values *= 2;
        }
        if values > crate::params::MAX_BLOCK_SIZE as u64 {
            return Err(Error::invalid(format!(
                "{rows} rows of {cols} values exceed the largest block ({} values)",
                crate::params::MAX_BLOCK_SIZE
            )));
        }
        Ok(codec::EncodeOptions {
            block_size: values.max(2) as u32,
            ..*opts
        })
    }
}

/// Compresses one tensor of the original file.
pub fn compress_tensor(
    name: &str,
    entry: &TensorEntry,
    data: &[u8],
    opts: &codec::EncodeOptions,
    blocks: BlockLayout,
) -> Result<StoredTensor> {
    let (coded, entropy) = match PlaneLayout::for_dtype(&entry.dtype) {
        Some(layout) => {
            let opts = blocks
                .options_for(&entry.shape, opts)
                .map_err(|e| e.in_tensor(name))?;
            let (coded, stats) =
                codec::encode(layout, data, &opts).map_err(|e| e.in_tensor(name))?;
            let millibits = stats
                .iter()
                .map(|s| (s.entropy_bits * 1000.0).round() as u32)
                .collect();
            (coded, millibits)
        }
        None => (None, Vec::new()),
    };
    let (encoding, stored) = match coded {
        Some(bytes) => (Encoding::Rans, bytes),
        None => {
            let mut bytes = Vec::with_capacity(align_up(data.len()));
            bytes.extend_from_slice(data);
            bytes.resize(align_up(data.len()), 0);
            (Encoding::Raw, bytes)
        }
    };
    Ok(StoredTensor {
        index: TensorIndex {
            name: name.to_string(),
            dtype: entry.dtype.clone(),
            shape: entry.shape.clone(),
            encoding,
            bytes: data.len() as u64,
            stored_crc32c: crc32c::crc32c(&stored),
            decoded_crc32c: crc32c::crc32c(data),
            entropy_millibits: entropy,
        },
        stored,
    })
}

/// Renders the exprans header JSON (unpadded) for tensors stored with these lengths.
pub fn render_header(source: &SourceHeader, index: &[TensorIndex], stored_lens: &[u64]) -> String {
    let index_json = serde_json::to_string(index).expect("index serializes");
    let source_json = serde_json::to_string(source).expect("source header serializes");
    let mut meta = serde_json::Map::new();
    meta.insert("format".into(), FORMAT_NAME.into());
    meta.insert(KEY_VERSION.into(), FORMAT_VERSION.into());
    meta.insert(
        KEY_CRC.into(),
        header_crc(&index_json, &source_json).to_string().into(),
    );
    meta.insert(KEY_INDEX.into(), index_json.into());
    meta.insert(KEY_SOURCE.into(), source_json.into());
    let mut root = serde_json::Map::new();
    root.insert("__metadata__".into(), meta.into());
    let mut offset = 0u64;
    for (t, &len) in index.iter().zip(stored_lens) {
        root.insert(
            t.name.clone(),
            serde_json::json!({"dtype": "U8", "shape": [len], "data_offsets": [offset, offset + len]}),
        );
        offset += len;
    }
    serde_json::to_string(&root).expect("header serializes")
}

/// Pads a header with spaces to `len` bytes (JSON allows trailing whitespace).
pub fn pad_header(mut json: String, len: usize) -> Result<String> {
    if json.len() > len {
        return Err(Error::invalid("header grew past its reserved size"));
    }
    json.extend(std::iter::repeat_n(' ', len - json.len()));
    Ok(json)
}

/// A header length that fits the archive of these tensors whatever their compressed sizes and
/// checksums turn out to be, with `8 + len` a multiple of [`ALIGN`] so that data starts aligned.
///
/// It renders the header with every value not known before compression at its largest: stored
/// lengths at the verbatim size (a coded entry is kept only when smaller), CRCs at `u32::MAX`,
/// entropies at 8000 millibits, the longer encoding name, plus 9 digits of slack for the header
/// checksum. Numbers only shrink from there, so the real header always fits.
pub fn reserve_header_len(source: &SourceHeader, tensors: &[(String, TensorEntry)]) -> usize {
    let index: Vec<TensorIndex> = tensors
        .iter()
        .map(|(name, e)| TensorIndex {
            name: name.clone(),
            dtype: e.dtype.clone(),
            shape: e.shape.clone(),
            bytes: e.data_offsets.1 - e.data_offsets.0,
            encoding: Encoding::Rans,
            stored_crc32c: u32::MAX,
            decoded_crc32c: u32::MAX,
            entropy_millibits: match PlaneLayout::for_dtype(&e.dtype) {
                Some(layout) => vec![8000; layout.plane_count()],
                None => Vec::new(),
            },
        })
        .collect();
    let lens: Vec<u64> = index
        .iter()
        .map(|t| align_up(t.bytes as usize) as u64)
        .collect();
    let probe = render_header(source, &index, &lens);
    align_up(8 + probe.len() + 9) - 8
}
