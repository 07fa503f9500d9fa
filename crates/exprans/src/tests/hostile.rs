//! Hostile files whose checksums are all valid, so that only the semantic fault remains
//! (issue 10): each is rejected with one line, never a panic or an abort.

use super::forge::{forged, forged_meta, rejected};
use crate::archive::KEY_VERSION;
use crate::{compress, decompress, Archive, CpuDecoder, EncodeOptions, ErrorKind};
use exprans_testkit::{bf16s, safetensors_bytes, t, Rng};

/// A small model and its compressed file.
fn model() -> (Vec<u8>, Vec<u8>) {
    let mut rng = Rng::seeded(10);
    let w = bf16s((0..4096).map(|_| rng.weight()));
    let b = bf16s((0..64).map(|_| rng.weight()));
    let file = safetensors_bytes(
        &[t("w", "BF16", &[64, 64], w), t("b", "BF16", &[64], b)],
        None,
    );
    let packed = compress(&file, &EncodeOptions::default()).unwrap();
    (file, packed)
}

#[test]
fn the_forged_files_are_valid_until_edited() {
    let (file, packed) = model();
    let same = forged(&packed, |_, _| {});
    assert_eq!(decompress(&same, CpuDecoder::Reference).unwrap(), file);
}

/// Defect 1: a huge `padding` in the original-header record panicked (>= 2^63) or aborted on
/// allocation (2^32, 2^40) before any size check.
#[test]
fn huge_header_padding_is_refused_before_allocating() {
    let (_, packed) = model();
    for padding in [100_000_000u64, 1 << 32, 1 << 40, 1 << 63, u64::MAX] {
        let bad = forged(&packed, |_, source| {
            *source = serde_json::json!({
                "canonical": { "metadata": null, "metadata_position": 0, "padding": padding }
            });
        });
        rejected(&bad, ErrorKind::Corrupt, "header limit");
    }
}

/// Defect 5: a verbatim original header listing extra zero-length tensors decoded with success,
/// declaring tensors the index does not have.
#[test]
fn phantom_tensors_in_the_original_header_are_refused() {
    let (file, packed) = model();
    let json_len = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let original = std::str::from_utf8(&file[8..8 + json_len]).unwrap();
    let end = file.len() - 8 - json_len;
    let ghost =
        format!(r#","ghost":{{"dtype":"BF16","shape":[0],"data_offsets":[{end},{end}]}}}}"#);
    let with_ghost = original.trim_end().strip_suffix('}').unwrap().to_string() + &ghost;
    let bad = forged(&packed, |_, source| {
        *source = serde_json::json!({ "verbatim": with_ghost });
    });
    rejected(&bad, ErrorKind::Corrupt, "lists 3 tensors, the index 2");
}

/// Defect 6: the version string was printed raw, so a file could print forged lines and
/// terminal escapes.
#[test]
fn version_strings_are_escaped() {
    let (_, packed) = model();
    let bad = forged_meta(&packed, |meta| {
        meta.insert(KEY_VERSION.into(), "1\nexprans: ok\u{1b}[2J".into());
    });
    rejected(
        &bad,
        ErrorKind::Invalid,
        "version '1\\nexprans: ok\\u{1b}[2J' is not supported",
    );
}

/// Defect 8: shapes with a zero dimension hold no bytes whatever the other dimensions (elements
/// are counted from 1, as the safetensors crate does), so they are valid and round-trip.
#[test]
fn zero_element_shapes_with_huge_dimensions_round_trip() {
    let file = safetensors_bytes(
        &[
            t("a", "BF16", &[1 << 63, 0], Vec::new()),
            t("b", "F32", &[u64::MAX, 0], Vec::new()),
            t("c", "BF16", &[0, u64::MAX], Vec::new()),
            t("w", "BF16", &[2, 2], bf16s([1.0, 2.0, 3.0, 4.0])),
        ],
        None,
    );
    let packed = compress(&file, &EncodeOptions::default()).unwrap();
    assert_eq!(decompress(&packed, CpuDecoder::Reference).unwrap(), file);
    let archive = Archive::from_bytes(&packed).unwrap();
    assert_eq!(archive.tensors.len(), 4);
    // One dimension past zero overflows before the zero: refused, as safetensors refuses it.
    let bad = safetensors_bytes(&[t("x", "BF16", &[1 << 63, 4, 0], Vec::new())], None);
    let err = compress(&bad, &EncodeOptions::default()).unwrap_err();
    assert!(err.to_string().contains("overflows"), "{err}");
}
