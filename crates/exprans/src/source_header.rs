//! Keeping the original safetensors header, byte for byte, in few bytes.
//!
//! Most writers emit a compact header with the tensors in data order and `__metadata__` first or
//! last, padded with spaces. Such a header is fully determined by the tensor names, dtypes, shapes
//! and sizes the container records anyway, so only the metadata, its position and the padding
//! are stored ([`SourceHeader::Canonical`]). Any other header is stored verbatim. The encoder
//! only chooses `Canonical` after checking that rendering it gives back the original exactly.

use std::collections::BTreeMap;

use crate::safetensors::{Header, MAX_HEADER_LEN};
use crate::{Error, Result};

/// One tensor as the original header lists it (data order).
#[derive(Clone, Copy, Debug)]
pub struct SourceTensor<'a> {
    /// Name.
    pub name: &'a str,
    /// Dtype string.
    pub dtype: &'a str,
    /// Shape.
    pub shape: &'a [u64],
    /// Byte length.
    pub bytes: u64,
}

/// How the original header is kept (`__metadata__["exprans.source"]`, as JSON).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum SourceHeader {
    /// `{` + the keys in data order as compact JSON (`"name":{"dtype":..,"shape":[..],
    /// "data_offsets":[b,e]}`), with `"__metadata__":{..}` (keys sorted) inserted as key number
    /// `metadata_position` when `metadata` is present, + `}` + `padding` spaces.
    Canonical {
        /// The original `__metadata__`.
        metadata: Option<BTreeMap<String, String>>,
        /// Where `__metadata__` stands among the keys: `0..=` the number of tensors.
        metadata_position: usize,
        /// Trailing spaces.
        padding: usize,
    },
    /// The original header JSON as it was.
    Verbatim(String),
}

fn json_string(s: &str) -> String {
    serde_json::to_string(s).expect("strings serialize")
}

impl SourceHeader {
    /// The most compact form that renders back to `original` (the header JSON of a file whose
    /// parsed header is `header`).
    pub fn new(original: &str, header: &Header) -> SourceHeader {
        let tensors: Vec<SourceTensor> = header
            .tensors
            .iter()
            .map(|(name, t)| SourceTensor {
                name,
                dtype: &t.dtype,
                shape: &t.shape,
                bytes: t.data_offsets.1 - t.data_offsets.0,
            })
            .collect();
        let padding = original.len() - original.trim_end_matches(' ').len();
        let positions = match header.metadata {
            Some(_) => vec![0, tensors.len()],
            None => vec![0],
        };
        for metadata_position in positions {
            let candidate = SourceHeader::Canonical {
                metadata: header.metadata.clone(),
                metadata_position,
                padding,
            };
            if candidate.render(&tensors).is_ok_and(|r| r == original) {
                return candidate;
            }
        }
        SourceHeader::Verbatim(original.to_string())
    }

    /// The original header JSON. Fails, before allocating it, when it would exceed the
    /// safetensors header limit ([`MAX_HEADER_LEN`] bytes of JSON): `padding` and the
    /// tensors come from the file. Fails when `metadata_position` is past the last tensor.
    pub fn render(&self, tensors: &[SourceTensor]) -> Result<String> {
        let too_long = || {
            Error::corrupt(format!(
                "the original-header record renders a header past the {MAX_HEADER_LEN}-byte \
                 header limit"
            ))
        };
        let (metadata, metadata_position, padding) = match self {
            SourceHeader::Verbatim(text) => {
                if text.len() as u64 > MAX_HEADER_LEN {
                    return Err(too_long());
                }
                return Ok(text.clone());
            }
            SourceHeader::Canonical {
                metadata,
                metadata_position,
                padding,
            } => (metadata, *metadata_position, *padding),
        };
        if metadata_position > tensors.len() {
            return Err(Error::corrupt(format!(
                "the original-header record puts __metadata__ at position {metadata_position} \
                 of {} tensors",
                tensors.len()
            )));
        }
        // Without metadata there is nothing to place: one encoding per header (position 0).
        if metadata.is_none() && metadata_position != 0 {
            return Err(Error::corrupt(format!(
                "the original-header record places absent metadata at position {metadata_position}"
            )));
        }
        // The rendered length, counted before anything of that size is allocated: "{", the keys
        // with a comma between each two, "}", the padding. Every key is at most a few times the
        // bytes of the file that describe it.
        let metadata = metadata.as_ref().map(|m| {
            let m = serde_json::to_string(m).expect("metadata serializes");
            format!("\"__metadata__\":{m}")
        });
        let key_count = tensors.len() + usize::from(metadata.is_some());
        let fixed = [
            2,
            key_count.saturating_sub(1) as u64,
            padding as u64,
            metadata.as_ref().map_or(0, |m| m.len() as u64),
        ];
        let mut len = match fixed.iter().try_fold(0u64, |a, &b| a.checked_add(b)) {
            Some(len) if len <= MAX_HEADER_LEN => len,
            _ => return Err(too_long()),
        };
        let mut keys: Vec<String> = Vec::with_capacity(tensors.len());
        let mut offset = 0u64;
        for t in tensors {
            // Checked: the sizes come from the file's index, not yet checked against anything.
            let end = offset
                .checked_add(t.bytes)
                .ok_or_else(|| Error::corrupt("tensor sizes overflow"))?;
            let key = format!(
                "{}:{{\"dtype\":{},\"shape\":{},\"data_offsets\":[{},{}]}}",
                json_string(t.name),
                json_string(t.dtype),
                serde_json::to_string(t.shape).expect("shape serializes"),
                offset,
                end
            );
            len += key.len() as u64;
            if len > MAX_HEADER_LEN {
                return Err(too_long());
            }
            keys.push(key);
            offset = end;
        }
        if let Some(m) = metadata {
            keys.insert(metadata_position, m);
        }
        let mut out = String::with_capacity(len as usize);
        out.push('{');
        for (i, key) in keys.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(key);
        }
        out.push('}');
        out.extend(std::iter::repeat_n(' ', padding));
        debug_assert_eq!(out.len() as u64, len);
        Ok(out)
    }
}
