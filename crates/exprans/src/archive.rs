//! The exprans container: a valid safetensors file whose entries are compressed tensors.
//!
//! Every original tensor becomes one `U8` entry of the same name holding its *stored bytes*: a
//! coded entry ([`crate::codec`]) or the original bytes verbatim, zero-padded to a multiple of
//! [`ALIGN`]. Entries keep the original data order. The header is padded with spaces so that data,
//! and so every entry, starts 16-byte aligned in the file. `__metadata__` holds exactly:
//!
//! | key | value |
//! |---|---|
//! | `format` | `"exprans"`, so framework loaders refuse the file instead of loading blobs |
//! | `exprans.version` | the container version: [`FORMAT_VERSION`] is written, [`READ_VERSIONS`] are read |
//! | `exprans.index` | JSON array of [`TensorIndex`] records, in data order |
//! | `exprans.source` | the original header, as a [`SourceHeader`] (JSON) |
//! | `exprans.header_crc32c` | CRC-32C of `exprans.index` then `exprans.source` (decimal) |
//! | `exprans.source_crc32c` | version 2 only: CRC-32C of the original header as decompression writes it (length prefix and JSON; decimal) |
//!
//! Version 2 differs from version 1 in the index records, which name their tensor (so that names
//! are under the header checksum), and in `exprans.source_crc32c`. A reader needs only the header
//! to locate, check and decode any one tensor.

use std::ops::Range;

use crate::error::quote;
use crate::params::{align_up, ALIGN};
use crate::planes::PlaneLayout;
use crate::safetensors::{check_unique_keys, element_count, Header};
use crate::source_header::{SourceHeader, SourceTensor};
use crate::{Error, Result};

/// The container version written by this library (`__metadata__["exprans.version"]`).
pub const FORMAT_VERSION: &str = "2";
/// The container versions this library reads. Readers refuse any other version.
pub const READ_VERSIONS: [&str; 2] = ["1", "2"];
/// `__metadata__["format"]` of every exprans file.
pub const FORMAT_NAME: &str = "exprans";

pub(crate) const KEY_FORMAT: &str = "format";
pub(crate) const KEY_VERSION: &str = "exprans.version";
pub(crate) const KEY_INDEX: &str = "exprans.index";
pub(crate) const KEY_SOURCE: &str = "exprans.source";
pub(crate) const KEY_CRC: &str = "exprans.header_crc32c";
pub(crate) const KEY_SOURCE_CRC: &str = "exprans.source_crc32c";

/// The `__metadata__` keys of a version-1 container, all required, no other allowed.
const KEYS_V1: [&str; 5] = [KEY_FORMAT, KEY_VERSION, KEY_INDEX, KEY_SOURCE, KEY_CRC];
/// The `__metadata__` keys of a version-2 container, all required, no other allowed.
const KEYS_V2: [&str; 6] = [
    KEY_FORMAT,
    KEY_VERSION,
    KEY_INDEX,
    KEY_SOURCE,
    KEY_CRC,
    KEY_SOURCE_CRC,
];

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
/// Serialized compactly (container version 2, what [`FORMAT_VERSION`] writes) as the JSON array
/// `[name, dtype, shape, bytes, encoding, stored_crc32c, decoded_crc32c, entropy_millibits]`.
/// Version-1 records lack the name (it was taken from the tensor's entry; records and entries are
/// both in data order): `[dtype, shape, bytes, encoding, stored_crc32c, decoded_crc32c,
/// entropy_millibits]`, which [`Archive::parse`] reads in version-1 files.
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
    /// Order-0 entropy of each byte plane, in thousandths of a bit per value: one per plane of
    /// the dtype's plane layout, none for dtypes without one.
    pub entropy_millibits: Vec<u32>,
    /// Version of the container the record comes from (not serialized): a coded entry must
    /// have the same version.
    pub container_version: u8,
}

/// The serialized form of [`TensorIndex`] (container version 2).
#[derive(serde::Serialize, serde::Deserialize)]
struct IndexRecord(String, String, Vec<u64>, u64, Encoding, u32, u32, Vec<u32>);

/// The serialized form of [`TensorIndex`] in container version 1: no name.
#[derive(serde::Deserialize)]
struct IndexRecordV1(String, Vec<u64>, u64, Encoding, u32, u32, Vec<u32>);

impl From<IndexRecord> for TensorIndex {
    fn from(r: IndexRecord) -> Self {
        TensorIndex {
            name: r.0,
            dtype: r.1,
            shape: r.2,
            bytes: r.3,
            encoding: r.4,
            stored_crc32c: r.5,
            decoded_crc32c: r.6,
            entropy_millibits: r.7,
            container_version: 2,
        }
    }
}

impl From<IndexRecordV1> for TensorIndex {
    fn from(r: IndexRecordV1) -> Self {
        TensorIndex {
            name: String::new(),
            dtype: r.0,
            shape: r.1,
            bytes: r.2,
            encoding: r.3,
            stored_crc32c: r.4,
            decoded_crc32c: r.5,
            entropy_millibits: r.6,
            container_version: 1,
        }
    }
}

impl From<TensorIndex> for IndexRecord {
    fn from(t: TensorIndex) -> Self {
        IndexRecord(
            t.name,
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
    version: u8,
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
    /// Reads every container version of [`READ_VERSIONS`].
    pub fn parse(head: &[u8], file_len: u64) -> Result<Archive> {
        let prefix: &[u8; 8] = head
            .get(..8)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| Error::invalid("file too short to be safetensors"))?;
        let json_len = Header::json_len_from_prefix(prefix, file_len)?;
        let json = head
            .get(8..8 + json_len as usize)
            .ok_or_else(|| Error::invalid("header truncated"))?;
        let mut header = Header::parse(json, file_len)?;
        let meta = header.metadata.take().unwrap_or_default();
        if meta.get(KEY_FORMAT).map(String::as_str) != Some(FORMAT_NAME) {
            return Err(Error::invalid(
                "not an exprans file (__metadata__.format is not \"exprans\")",
            ));
        }
        // serde_json keeps one of two equal keys silently: a file must not say two things.
        let text = std::str::from_utf8(json).map_err(|_| Error::invalid("header is not UTF-8"))?;
        check_unique_keys(text).map_err(|e| Error::corrupt(format!("container header: {e}")))?;
        let get = |k: &str| {
            meta.get(k)
                .ok_or_else(|| Error::corrupt(format!("__metadata__ lacks '{k}'")))
        };
        let version_text = get(KEY_VERSION)?;
        let version: u8 = match version_text.as_str() {
            "1" => 1,
            "2" => 2,
            other => {
                return Err(Error::invalid(format!(
                    "exprans format version {} is not supported (this build reads versions {})",
                    quote(other),
                    READ_VERSIONS.join(" and ")
                )))
            }
        };
        let keys: &[&str] = if version == 1 { &KEYS_V1 } else { &KEYS_V2 };
        if let Some(extra) = meta.keys().find(|k| !keys.contains(&k.as_str())) {
            return Err(Error::corrupt(format!(
                "__metadata__ has a key {} that a version-{version} file does not have",
                quote(extra)
            )));
        }
        // Data starts aligned, after a header padded with spaces only.
        if !(8 + json_len).is_multiple_of(ALIGN as u64) {
            return Err(Error::corrupt(format!(
                "the container header ends at byte {}, not at a multiple of {ALIGN}",
                8 + json_len
            )));
        }
        if !text.trim_end_matches(' ').ends_with('}') {
            return Err(Error::corrupt(
                "the container header is padded with bytes other than spaces",
            ));
        }
        let (index_json, source_json) = (get(KEY_INDEX)?, get(KEY_SOURCE)?);
        if parse_crc(KEY_CRC, get(KEY_CRC)?)? != header_crc(index_json, source_json) {
            return Err(Error::corrupt("header checksum mismatch"));
        }
        let source_crc = match version {
            1 => None,
            _ => Some(parse_crc(KEY_SOURCE_CRC, get(KEY_SOURCE_CRC)?)?),
        };
        let bad_index = |e: String| Error::corrupt(format!("bad tensor index: {e}"));
        let mut index: Vec<TensorIndex> = match version {
            1 => serde_json::from_str::<Vec<IndexRecordV1>>(index_json)
                .map(|records| records.into_iter().map(TensorIndex::from).collect()),
            _ => serde_json::from_str(index_json),
        }
        .map_err(|e| bad_index(e.to_string()))?;
        check_unique_keys(index_json).map_err(bad_index)?;
        let bad_source = |e: String| Error::corrupt(format!("bad original-header record: {e}"));
        let source: SourceHeader =
            serde_json::from_str(source_json).map_err(|e| bad_source(e.to_string()))?;
        check_unique_keys(source_json).map_err(bad_source)?;
        if index.len() != header.tensors.len() {
            return Err(Error::corrupt("tensor index does not match the entries"));
        }
        for (i, (t, (name, _))) in index.iter_mut().zip(&header.tensors).enumerate() {
            if version == 1 {
                t.name = name.clone();
            } else if &t.name != name {
                return Err(Error::corrupt(format!(
                    "tensor name mismatch: index record {i} is for {}, entry {i} is {}",
                    quote(&t.name),
                    quote(name)
                )));
            }
        }

        // The original header must describe exactly the indexed tensors, in the same order.
        let sources: Vec<SourceTensor> = index.iter().map(TensorIndex::source).collect();
        let source_header = source.render(&sources)?;
        if let Some(expected) = source_crc {
            if source_header_crc(&source_header) != expected {
                return Err(Error::corrupt("original header checksum mismatch"));
            }
        }
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
            // One entropy per plane of the dtype's layout. Not checked in version 1: its files
            // follow the layouts of version 1 (BF16 and F16 2 planes, F32 4, every other dtype
            // none), and later versions add layouts (one plane for 8-bit dtypes), so checking
            // them through today's layouts would refuse valid version-1 files.
            let planes = t.layout().map_or(0, |l| l.plane_count());
            if version >= 2 && t.entropy_millibits.len() != planes {
                return Err(Error::corrupt(format!(
                    "{} plane entropies for a dtype of {planes} planes",
                    t.entropy_millibits.len()
                ))
                .in_tensor(&t.name));
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
            version,
        })
    }

    /// The container version of the file: 1 or 2 (one of [`READ_VERSIONS`]). Coded entries
    /// carry their own version byte.
    pub fn version(&self) -> u8 {
        self.version
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

/// `exprans.source_crc32c` (version 2): the CRC-32C of an original header whose JSON is
/// `json`, as decompression writes it: the 8-byte little-endian length, then the JSON.
pub(crate) fn source_header_crc(json: &str) -> u32 {
    let crc = crc32c::crc32c(&(json.len() as u64).to_le_bytes());
    crc32c::crc32c_append(crc, json.as_bytes())
}

/// The `exprans.source_crc32c` a version-2 container with these index and original-header
/// records needs (for tests and the fuzz harness, which forge headers).
#[cfg(any(test, feature = "internals"))]
pub(crate) fn rendered_source_crc(index_json: &str, source_json: &str) -> Result<u32> {
    let index: Vec<TensorIndex> = serde_json::from_str(index_json)
        .map_err(|e| Error::corrupt(format!("bad tensor index: {e}")))?;
    let source: SourceHeader = serde_json::from_str(source_json)
        .map_err(|e| Error::corrupt(format!("bad original-header record: {e}")))?;
    let sources: Vec<SourceTensor> = index.iter().map(TensorIndex::source).collect();
    Ok(source_header_crc(&source.render(&sources)?))
}

/// A CRC-32C in canonical decimal: ASCII digits only, no sign, no leading zero (but `"0"`),
/// at most `u32::MAX`.
pub(crate) fn parse_crc(key: &str, text: &str) -> Result<u32> {
    let canonical = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    text.parse::<u32>()
        .ok()
        .filter(|_| canonical)
        .ok_or_else(|| {
            Error::corrupt(format!(
                "'{key}' is not a CRC-32C in decimal: {}",
                quote(text)
            ))
        })
}
