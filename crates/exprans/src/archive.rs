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

use crate::params::{align_up, ALIGN};
use crate::planes::PlaneLayout;
use crate::safetensors::{element_count, Header};
use crate::source_header::{SourceHeader, SourceTensor};
use crate::{Error, Result};

/// The container version written by this library. Readers refuse any other version.
pub const FORMAT_VERSION: &str = "1";
/// `__metadata__["format"]` of every exprans file.
pub const FORMAT_NAME: &str = "exprans";

pub(crate) const KEY_VERSION: &str = "exprans.version";
pub(crate) const KEY_INDEX: &str = "exprans.index";
pub(crate) const KEY_SOURCE: &str = "exprans.source";
pub(crate) const KEY_CRC: &str = "exprans.header_crc32c";

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

    pub(crate) fn source(&self) -> SourceTensor<'_> {
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

impl ArchiveTensor {
    /// The tensor's stored bytes in `file`, the whole file this archive was parsed from.
    pub fn stored_in<'a>(&self, file: &'a [u8]) -> Result<&'a [u8]> {
        file.get(self.stored.start as usize..self.stored.end as usize)
            .ok_or_else(|| {
                Error::invalid("file shorter than its header says").in_tensor(&self.index.name)
            })
    }
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
                "exprans format version {} is not supported (this build reads version \
                 {FORMAT_VERSION})",
                crate::error::quote(version)
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
        let source_header = source.render(&sources)?;
        let source_file_len = index
            .iter()
            .try_fold(8 + source_header.len() as u64, |acc, t| {
                acc.checked_add(t.bytes)
            })
            .ok_or_else(|| Error::corrupt("tensor sizes overflow"))?;
        let original = Header::parse(source_header.as_bytes(), source_file_len)
            .map_err(|e| Error::corrupt(format!("stored original header: {e}")))?;
        if original.tensors.len() != index.len() {
            return Err(Error::corrupt(format!(
                "the stored original header lists {} tensors, the index {}",
                original.tensors.len(),
                index.len()
            )));
        }
        let data_start = header.data_start();
        let mut tensors = Vec::with_capacity(index.len());
        for ((t, (_, entry)), (src_name, src)) in index
            .into_iter()
            .zip(&header.tensors)
            .zip(&original.tensors)
        {
            let fail = |what: &str| Error::corrupt(what).in_tensor(&t.name);
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

pub(crate) fn header_crc(index_json: &str, source_json: &str) -> u32 {
    let crc = crc32c::crc32c(index_json.as_bytes());
    crc32c::crc32c_append(crc, source_json.as_bytes())
}
