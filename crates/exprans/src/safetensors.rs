//! Reading and checking safetensors headers (the input format, and the outer layer of ours).
//!
//! A safetensors file is `u64 header_len (LE) | header JSON | data`. The header maps tensor names
//! to `{dtype, shape, data_offsets}` (offsets relative to the start of data) plus an optional
//! `__metadata__` object of string to string. Everything here treats the header as untrusted.

use std::collections::BTreeMap;

use crate::error::quote;
use crate::{Error, Result};

/// Largest header accepted, as in the `safetensors` crate.
pub const MAX_HEADER_LEN: u64 = 100_000_000;

/// One tensor of a safetensors header.
#[derive(Clone, Debug, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct TensorEntry {
    /// Dtype string as written (`"BF16"`, `"I64"`, or one this crate does not know).
    pub dtype: String,
    /// Shape.
    pub shape: Vec<u64>,
    /// `[begin, end)` relative to the start of the data section.
    pub data_offsets: (u64, u64),
}

/// A parsed and checked safetensors header.
#[derive(Clone, Debug)]
pub struct Header {
    /// Length of the header JSON in bytes (the data section starts at `8 + json_len`).
    pub json_len: u64,
    /// `__metadata__`, if present.
    pub metadata: Option<BTreeMap<String, String>>,
    /// Tensors in data order: sorted by `data_offsets` (begin, then end), ties by name byte-wise.
    pub tensors: Vec<(String, TensorEntry)>,
}

/// Size in bytes of one element of a dtype, or `None` for dtypes stored as opaque bytes
/// (unknown to this crate, or narrower than a byte).
pub fn dtype_size(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 1,
        "I16" | "U16" | "F16" | "BF16" => 2,
        "I32" | "U32" | "F32" => 4,
        "I64" | "U64" | "F64" => 8,
        _ => return None,
    })
}

impl Header {
    /// Parses and checks the header of a whole safetensors file held in memory.
    pub fn read(file: &[u8]) -> Result<Header> {
        let prefix: &[u8; 8] = file
            .get(..8)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| Error::invalid("file too short to be safetensors"))?;
        let json_len = Header::json_len_from_prefix(prefix, file.len() as u64)?;
        Header::parse(&file[8..8 + json_len as usize], file.len() as u64)
    }

    /// Offset of the data section from the start of the file.
    pub fn data_start(&self) -> u64 {
        8 + self.json_len
    }

    /// Total byte length of the data section.
    pub fn data_len(&self) -> u64 {
        self.tensors.last().map_or(0, |(_, t)| t.data_offsets.1)
    }

    /// Reads the header length from the first 8 bytes of a file of `file_len` bytes.
    pub fn json_len_from_prefix(prefix: &[u8; 8], file_len: u64) -> Result<u64> {
        let n = u64::from_le_bytes(*prefix);
        if n > MAX_HEADER_LEN {
            return Err(Error::invalid(format!(
                "header length {n} exceeds the {MAX_HEADER_LEN}-byte limit"
            )));
        }
        if n > file_len.saturating_sub(8) {
            return Err(Error::invalid(format!(
                "header length {n} runs past the end of the {file_len}-byte file"
            )));
        }
        Ok(n)
    }

    /// Parses the header JSON of a file of `file_len` bytes and checks it: known dtypes have
    /// `bytes = elements * size` (no overflow), entries are contiguous from 0 without overlap, and
    /// the last one ends exactly at the end of the file.
    pub fn parse(json: &[u8], file_len: u64) -> Result<Header> {
        let json_len = json.len() as u64;
        let text =
            std::str::from_utf8(json).map_err(|_| Error::invalid("header is not valid UTF-8"))?;
        if !text.starts_with('{') {
            return Err(Error::invalid("header is not a JSON object"));
        }
        let raw: BTreeMap<String, serde_json::Value> = serde_json::from_str(text)
            .map_err(|e| Error::invalid(format!("header is not valid JSON: {e}")))?;
        let mut metadata = None;
        let mut tensors = Vec::with_capacity(raw.len());
        for (name, value) in raw {
            if name == "__metadata__" {
                let m: BTreeMap<String, String> = serde_json::from_value(value)
                    .map_err(|_| Error::invalid("__metadata__ must map strings to strings"))?;
                metadata = Some(m);
                continue;
            }
            let entry: TensorEntry = serde_json::from_value(value)
                .map_err(|e| Error::invalid(format!("tensor {}: bad entry: {e}", quote(&name))))?;
            tensors.push((name, entry));
        }
        // Data order: by (begin, end), ties (zero-length tensors) by name, byte-wise.
        tensors.sort_by(|(a, x), (b, y)| {
            (x.data_offsets, a.as_bytes()).cmp(&(y.data_offsets, b.as_bytes()))
        });
        let data_len = file_len
            .checked_sub(8 + json_len)
            .ok_or_else(|| Error::invalid("header runs past the end of the file"))?;
        let mut expected = 0u64;
        for (name, t) in &tensors {
            let (begin, end) = t.data_offsets;
            if begin != expected || end < begin {
                return Err(Error::invalid(format!(
                    "tensor {}: data offsets [{begin}, {end}) are not contiguous (expected start {expected})", quote(name)
                )));
            }
            if end > data_len {
                return Err(Error::invalid(format!(
                    "tensor {}: data offsets [{begin}, {end}) run past the end of the file",
                    quote(name)
                )));
            }
            if let Some(size) = dtype_size(&t.dtype) {
                // Elements first, as the safetensors crate counts: [2^63, 0] holds no bytes.
                let bytes = element_count(&t.shape)
                    .and_then(|n| n.checked_mul(size))
                    .ok_or_else(|| {
                        Error::invalid(format!(
                            "tensor {}: shape {:?} overflows",
                            quote(name),
                            t.shape
                        ))
                    })?;
                if bytes != end - begin {
                    return Err(Error::invalid(format!(
                        "tensor {}: {} {:?} needs {bytes} bytes, offsets give {}",
                        quote(name),
                        quote(&t.dtype),
                        t.shape,
                        end - begin
                    )));
                }
            }
            expected = end;
        }
        if expected != data_len {
            return Err(Error::invalid(format!(
                "data section is {data_len} bytes but tensors cover {expected}"
            )));
        }
        Ok(Header {
            json_len,
            metadata,
            tensors,
        })
    }
}

/// Number of elements of a shape (`None` on overflow).
pub fn element_count(shape: &[u64]) -> Option<u64> {
    shape.iter().try_fold(1u64, |acc, &d| acc.checked_mul(d))
}

/// Checks that no JSON object in `json` (at any depth) has the same key twice: serde_json keeps
/// one of them silently. Fails with serde_json's error (one line, with its position) when `json`
/// is not JSON at all.
pub(crate) fn check_unique_keys(json: &str) -> std::result::Result<(), String> {
    serde_json::from_str::<UniqueKeys>(json)
        .map(|_| ())
        .map_err(|e| e.to_string())
}

/// Any JSON value, deserialized only to check that its objects have unique keys.
struct UniqueKeys;

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        d.deserialize_any(UniqueKeys)
    }
}

impl<'de> serde::de::Visitor<'de> for UniqueKeys {
    type Value = UniqueKeys;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, _: bool) -> std::result::Result<Self, E> {
        Ok(UniqueKeys)
    }

    fn visit_i64<E>(self, _: i64) -> std::result::Result<Self, E> {
        Ok(UniqueKeys)
    }

    fn visit_u64<E>(self, _: u64) -> std::result::Result<Self, E> {
        Ok(UniqueKeys)
    }

    fn visit_f64<E>(self, _: f64) -> std::result::Result<Self, E> {
        Ok(UniqueKeys)
    }

    fn visit_str<E>(self, _: &str) -> std::result::Result<Self, E> {
        Ok(UniqueKeys)
    }

    fn visit_unit<E>(self) -> std::result::Result<Self, E> {
        Ok(UniqueKeys)
    }

    fn visit_seq<A: serde::de::SeqAccess<'de>>(
        self,
        mut seq: A,
    ) -> std::result::Result<Self, A::Error> {
        while seq.next_element::<UniqueKeys>()?.is_some() {}
        Ok(UniqueKeys)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(
        self,
        mut map: A,
    ) -> std::result::Result<Self, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<UniqueKeys>()?;
            if let Some(key) = seen.replace(key) {
                return Err(serde::de::Error::custom(format!(
                    "duplicate key {}",
                    quote(&key)
                )));
            }
        }
        Ok(UniqueKeys)
    }
}
