//! Forging exprans headers: edit a compressed file's header and recompute its checksums, so that
//! only the edit's semantic fault remains (what the fuzz harness's `with_valid_checksums` does).

use serde_json::{Map, Value};

use crate::archive::{
    header_crc, rendered_source_crc, KEY_CRC, KEY_INDEX, KEY_SOURCE, KEY_SOURCE_CRC,
};
use crate::{decompress, Archive, CpuDecoder, ErrorKind};

/// The header JSON of `file` (padding included) and its data section.
pub(crate) fn split(file: &[u8]) -> (&str, &[u8]) {
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    (
        std::str::from_utf8(&file[8..8 + n]).unwrap(),
        &file[8 + n..],
    )
}

/// A file whose header JSON is exactly `json`, then `data`.
pub(crate) fn join_exact(json: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(data);
    out
}

/// A file whose header is `json` padded with spaces so that data starts 16-byte aligned.
pub(crate) fn join(json: &str, data: &[u8]) -> Vec<u8> {
    let mut json = json.to_string();
    while !(8 + json.len()).is_multiple_of(16) {
        json.push(' ');
    }
    join_exact(&json, data)
}

/// `file` with its header JSON text (without its padding) edited by `edit`, then padded again;
/// checksums left as they were.
pub(crate) fn edit_text(file: &[u8], edit: impl FnOnce(&mut String)) -> Vec<u8> {
    let (json, data) = split(file);
    let mut json = json.trim_end_matches(' ').to_string();
    edit(&mut json);
    join(&json, data)
}

/// Recomputes `exprans.header_crc32c` over the records in `meta`, and `exprans.source_crc32c`
/// (when `meta` has one: version 2) over the original header they render. A source checksum
/// whose records do not render is left as it was: the reader then fails rendering first.
pub(crate) fn resign(meta: &mut Map<String, Value>) {
    let index = meta[KEY_INDEX].as_str().unwrap().to_string();
    let source = meta[KEY_SOURCE].as_str().unwrap().to_string();
    meta.insert(
        KEY_CRC.into(),
        header_crc(&index, &source).to_string().into(),
    );
    if meta.contains_key(KEY_SOURCE_CRC) {
        if let Ok(crc) = rendered_source_crc(&index, &source) {
            meta.insert(KEY_SOURCE_CRC.into(), crc.to_string().into());
        }
    }
}

/// `file` with its `__metadata__` edited by `edit` (which may call [`resign`]); the header is
/// re-serialized compactly and padded.
pub(crate) fn edit_meta(file: &[u8], edit: impl FnOnce(&mut Map<String, Value>)) -> Vec<u8> {
    let (json, data) = split(file);
    let mut header: Value = serde_json::from_str(json).unwrap();
    edit(header["__metadata__"].as_object_mut().unwrap());
    join(&header.to_string(), data)
}

/// `file` with `__metadata__` edited by `edit`, then [`resign`]ed.
pub(crate) fn forged_meta(file: &[u8], edit: impl FnOnce(&mut Map<String, Value>)) -> Vec<u8> {
    edit_meta(file, |meta| {
        edit(meta);
        resign(meta);
    })
}

/// `file` with its index and original-header records edited as JSON values by
/// `edit(index, source)`, then [`resign`]ed.
pub(crate) fn forged(file: &[u8], edit: impl FnOnce(&mut Value, &mut Value)) -> Vec<u8> {
    forged_meta(file, |meta| {
        let mut index: Value = serde_json::from_str(meta[KEY_INDEX].as_str().unwrap()).unwrap();
        let mut source: Value = serde_json::from_str(meta[KEY_SOURCE].as_str().unwrap()).unwrap();
        edit(&mut index, &mut source);
        meta.insert(KEY_INDEX.into(), index.to_string().into());
        meta.insert(KEY_SOURCE.into(), source.to_string().into());
    })
}

/// Opening and decompressing `file` both fail with one line of `kind` containing `what`.
pub(crate) fn rejected(file: &[u8], kind: ErrorKind, what: &str) {
    let err = Archive::from_bytes(file).unwrap_err();
    let text = err.to_string();
    assert_eq!(err.kind(), kind, "{text}");
    assert!(text.contains(what), "expected {what:?} in: {text}");
    assert!(!text.contains(['\n', '\r', '\u{1b}']), "{text:?}");
    let err = decompress(file, CpuDecoder::Reference).unwrap_err();
    assert_eq!(err.to_string(), text);
}
