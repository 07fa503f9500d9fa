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
        /// Where `__metadata__` stands among the keys.
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
    /// safetensors header limit ([`MAX_HEADER_LEN`]): `padding` comes from the file.
    pub fn render(&self, tensors: &[SourceTensor]) -> Result<String> {
        let (metadata, metadata_position, padding) = match self {
            SourceHeader::Verbatim(text) => return Ok(text.clone()),
            SourceHeader::Canonical {
                metadata,
                metadata_position,
                padding,
            } => (metadata, *metadata_position, *padding),
        };
        let mut keys: Vec<String> = Vec::with_capacity(tensors.len() + 1);
        let mut offset = 0u64;
        for t in tensors {
            // Checked: the sizes come from the file's index, not yet checked against anything.
            let end = offset
                .checked_add(t.bytes)
                .ok_or_else(|| Error::corrupt("tensor sizes overflow"))?;
            keys.push(format!(
                "{}:{{\"dtype\":{},\"shape\":{},\"data_offsets\":[{},{}]}}",
                json_string(t.name),
                json_string(t.dtype),
                serde_json::to_string(t.shape).expect("shape serializes"),
                offset,
                end
            ));
            offset = end;
        }
        if let Some(m) = metadata {
            let m = serde_json::to_string(m).expect("metadata serializes");
            keys.insert(
                metadata_position.min(keys.len()),
                format!("\"__metadata__\":{m}"),
            );
        }
        let mut out = format!("{{{}}}", keys.join(","));
        let room = (MAX_HEADER_LEN as usize).saturating_sub(out.len());
        if padding > room {
            return Err(Error::corrupt(format!(
                "the original-header record pads the header with {padding} spaces, past the \
                 {MAX_HEADER_LEN}-byte header limit"
            )));
        }
        out.extend(std::iter::repeat_n(' ', padding));
        Ok(out)
    }
}
