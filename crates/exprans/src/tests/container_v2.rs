//! Container version 2 (docs/FORMAT.md) and the container rules both versions share: each test
//! builds a real compressed file (or takes a frozen version-1 one), breaks one rule with every
//! checksum that the rule does not cover recomputed, and expects a one-line error.

use serde_json::Value;

use super::forge::{
    edit_meta, edit_text, forged, forged_meta, join, join_exact, rejected, resign, split,
};
use crate::archive::{
    parse_crc, KEY_CRC, KEY_FORMAT, KEY_INDEX, KEY_SOURCE, KEY_SOURCE_CRC, KEY_VERSION,
};
use crate::planes::PlaneLayout;
use crate::safetensors::{check_unique_keys, Header};
use crate::{
    compress, decompress, Archive, CpuDecoder, EncodeOptions, Encoding, ErrorKind, FORMAT_VERSION,
    READ_VERSIONS,
};
use exprans_testkit::{bf16s, f32s, frozen_dir, safetensors_bytes, t, Rng};

const METADATA: &str = r#"{"format":"pt","note":"x"}"#;

/// A small model with metadata, coded and raw tensors (`ids`: 24 bytes, so 8 bytes of padding)
/// and an empty one, and its compressed file. Its header is canonical (one-dimensional shapes:
/// the testkit writes `[a, b]` with a space, which only a verbatim record keeps).
fn model() -> (Vec<u8>, Vec<u8>) {
    let mut rng = Rng::seeded(20);
    let w = bf16s((0..4096).map(|_| rng.weight()));
    let b = bf16s((0..64).map(|_| rng.weight()));
    let f = f32s((0..2048).map(|_| rng.weight()));
    let ids: Vec<u8> = [7i64, -1, 1 << 40]
        .iter()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let file = safetensors_bytes(
        &[
            t("w", "BF16", &[4096], w),
            t("b", "BF16", &[64], b),
            t("ids", "I64", &[3], ids),
            t("e", "BF16", &[0], Vec::new()),
            t("f", "F32", &[2048], f),
        ],
        Some(METADATA),
    );
    let packed = compress(&file, &EncodeOptions::default()).unwrap();
    (file, packed)
}

fn frozen_v1() -> (Vec<u8>, Vec<u8>) {
    let read = |name: &str| std::fs::read(frozen_dir().join(name)).unwrap();
    (
        read("v1-input.safetensors"),
        read("v1-default.exprans.safetensors"),
    )
}

fn meta_of(file: &[u8]) -> serde_json::Map<String, Value> {
    let header: Value = serde_json::from_str(split(file).0).unwrap();
    header["__metadata__"].as_object().unwrap().clone()
}

#[test]
fn version_2_is_written_and_both_versions_are_read() {
    assert_eq!(FORMAT_VERSION, "2");
    assert_eq!(READ_VERSIONS, ["1", "2"]);
    let (file, packed) = model();
    let archive = Archive::from_bytes(&packed).unwrap();
    assert_eq!(archive.version(), 2);
    assert_eq!(decompress(&packed, CpuDecoder::Reference).unwrap(), file);
    let meta = meta_of(&packed);
    let mut keys: Vec<&str> = meta.keys().map(String::as_str).collect();
    keys.sort_unstable();
    let mut expected = [
        KEY_FORMAT,
        KEY_VERSION,
        KEY_INDEX,
        KEY_SOURCE,
        KEY_CRC,
        KEY_SOURCE_CRC,
    ];
    expected.sort_unstable();
    assert_eq!(keys, expected);
    assert_eq!(meta[KEY_VERSION], "2");
    // The source checksum is the CRC of the original header bytes, length prefix included.
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    assert_eq!(
        meta[KEY_SOURCE_CRC],
        crc32c::crc32c(&file[..8 + n]).to_string()
    );
    assert_eq!(archive.source_header_bytes(), &file[..8 + n]);
    // Version-2 records name their tensor.
    let index: Value = serde_json::from_str(meta[KEY_INDEX].as_str().unwrap()).unwrap();
    let names: Vec<&str> = index
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[0].as_str().unwrap())
        .collect();
    assert_eq!(names, ["w", "b", "ids", "e", "f"]);

    let (input, v1) = frozen_v1();
    let archive = Archive::from_bytes(&v1).unwrap();
    assert_eq!(archive.version(), 1);
    assert_eq!(decompress(&v1, CpuDecoder::Reference).unwrap(), input);
}

/// Rule 1: a file whose entries' names were swapped, or one of them changed, decoded to tensors
/// under the wrong names: names are now in the index, under the header checksum.
#[test]
fn names_are_under_the_header_checksum() {
    let (_, packed) = model();
    let entry = |name: &str| format!(r#""{name}":{{"#);
    assert!(split(&packed).0.contains(&entry("w")) && split(&packed).0.contains(&entry("b")));
    let swapped = edit_text(&packed, |json| {
        *json = json
            .replace(&entry("w"), "\u{0}")
            .replace(&entry("b"), &entry("w"))
            .replace('\u{0}', &entry("b"));
    });
    rejected(&swapped, ErrorKind::Corrupt, "tensor name mismatch");
    let flipped = edit_text(&packed, |json| {
        *json = json.replace(&entry("w"), &entry("v"))
    });
    rejected(&flipped, ErrorKind::Corrupt, "tensor name mismatch");
    // A bit flipped in the index's copy of the name: the header checksum.
    let flipped = edit_text(&packed, |json| {
        assert!(json.contains(r#"[\"w\","#));
        *json = json.replace(r#"[\"w\","#, r#"[\"v\","#);
    });
    rejected(&flipped, ErrorKind::Corrupt, "header checksum mismatch");
    // Both copies changed the same way, checksum recomputed: a consistent file.
    let renamed = forged_meta(&packed, |meta| {
        let index = meta[KEY_INDEX]
            .as_str()
            .unwrap()
            .replace(r#"["w","#, r#"["v","#);
        meta.insert(KEY_INDEX.into(), index.into());
    });
    let renamed = edit_text(&renamed, |json| {
        *json = json.replace(&entry("w"), &entry("v"))
    });
    let archive = Archive::from_bytes(&renamed).unwrap();
    assert!(archive.tensor("v").is_some());
}

/// Rule 2: an original-header record changed behind a recomputed header checksum rebuilt
/// another header than the original file's.
#[test]
fn the_rebuilt_original_header_is_checked_against_its_checksum() {
    let (file, packed) = model();
    let keep_source_crc = |edit: &dyn Fn(&mut Value)| {
        edit_meta(&packed, |meta| {
            let old = meta[KEY_SOURCE_CRC].clone();
            let mut source: Value =
                serde_json::from_str(meta[KEY_SOURCE].as_str().unwrap()).unwrap();
            edit(&mut source);
            meta.insert(KEY_SOURCE.into(), source.to_string().into());
            resign(meta);
            meta.insert(KEY_SOURCE_CRC.into(), old);
        })
    };
    let source: Value =
        serde_json::from_str(meta_of(&packed)[KEY_SOURCE].as_str().unwrap()).unwrap();
    assert!(source["canonical"].is_object(), "{source}");
    let more_padding = keep_source_crc(&|s| {
        let p = s["canonical"]["padding"].as_u64().unwrap();
        s["canonical"]["padding"] = (p + 16).into();
    });
    rejected(
        &more_padding,
        ErrorKind::Corrupt,
        "original header checksum mismatch",
    );
    let other_metadata = keep_source_crc(&|s| s["canonical"]["metadata"]["note"] = "y".into());
    rejected(
        &other_metadata,
        ErrorKind::Corrupt,
        "original header checksum mismatch",
    );
    // Rule 10: a verbatim record is the original JSON exactly; one more space is another file.
    let n = u64::from_le_bytes(file[..8].try_into().unwrap()) as usize;
    let original = std::str::from_utf8(&file[8..8 + n]).unwrap().to_string();
    let verbatim = |text: String| move |s: &mut Value| *s = serde_json::json!({ "verbatim": text });
    let spaced = keep_source_crc(&verbatim(original.clone() + " "));
    rejected(
        &spaced,
        ErrorKind::Corrupt,
        "original header checksum mismatch",
    );
    let exact = keep_source_crc(&verbatim(original));
    assert_eq!(decompress(&exact, CpuDecoder::Reference).unwrap(), file);
}

/// Rule 3: `__metadata__` holds exactly the keys of its version.
#[test]
fn metadata_holds_exactly_the_keys_of_its_version() {
    let (_, packed) = model();
    let (_, v1) = frozen_v1();
    for file in [&packed, &v1] {
        let extra = forged_meta(file, |meta| {
            meta.insert("exprans.note".into(), "hello".into());
        });
        rejected(&extra, ErrorKind::Corrupt, "a key 'exprans.note'");
    }
    let v1_with_source_crc = forged_meta(&v1, |meta| {
        meta.insert(KEY_SOURCE_CRC.into(), "0".into());
    });
    rejected(
        &v1_with_source_crc,
        ErrorKind::Corrupt,
        "a key 'exprans.source_crc32c' that a version-1 file does not have",
    );
    for key in [KEY_SOURCE_CRC, KEY_CRC, KEY_INDEX] {
        let missing = edit_meta(&packed, |meta| {
            meta.remove(key);
        });
        rejected(&missing, ErrorKind::Corrupt, &format!("lacks '{key}'"));
    }
}

/// Rule 4: serde_json keeps one of two equal keys; a header that says two things is refused
/// wherever the repeated key is.
#[test]
fn duplicate_json_keys_are_refused() {
    let (_, packed) = model();
    let (_, v1) = frozen_v1();
    for file in [&packed, &v1] {
        let (json, _) = split(file);
        let header: Value = serde_json::from_str(json).unwrap();
        let name = header
            .as_object()
            .unwrap()
            .keys()
            .find(|k| *k != "__metadata__")
            .unwrap()
            .clone();
        let entry = header[&name].to_string();
        let key = serde_json::to_string(&name).unwrap();
        // The same tensor entry twice.
        let twice = edit_text(file, |json| {
            *json = format!("{{{key}:{entry},{}", &json[1..]);
        });
        rejected(&twice, ErrorKind::Corrupt, "duplicate key");
        // A repeated __metadata__ key, with the value it already has.
        let twice = edit_text(file, |json| {
            *json = json.replace(
                r#""__metadata__":{"#,
                r#""__metadata__":{"format":"exprans","#,
            );
        });
        rejected(&twice, ErrorKind::Corrupt, "duplicate key 'format'");
        // A repeated key inside a tensor entry.
        let twice = edit_text(file, |json| {
            assert!(json.contains(&format!("{key}:{{")));
            *json = json.replace(&format!("{key}:{{"), &format!("{key}:{{\"dtype\":\"U8\","));
        });
        assert!(Archive::from_bytes(&twice).is_err());
    }
    // In the original-header record: a repeated metadata key, valid checksums.
    let twice = forged_meta(&packed, |meta| {
        let source = meta[KEY_SOURCE].as_str().unwrap();
        assert!(source.contains(r#""metadata":{"#), "{source}");
        let source = source.replace(r#""metadata":{"#, r#""metadata":{"note":"y","#);
        meta.insert(KEY_SOURCE.into(), source.into());
    });
    rejected(&twice, ErrorKind::Corrupt, "duplicate key 'note'");
    assert!(check_unique_keys(r#"{"a":[{"b":1,"c":{"b":2}}],"b":null}"#).is_ok());
    assert!(check_unique_keys(r#"{"a":[{"b":1,"b":2}]}"#)
        .unwrap_err()
        .contains("duplicate key 'b'"));
}

/// Rule 5: the checksums are canonical decimal numbers.
#[test]
fn checksums_are_canonical_decimal() {
    let (_, packed) = model();
    let (_, v1) = frozen_v1();
    for (file, key) in [
        (&packed, KEY_CRC),
        (&packed, KEY_SOURCE_CRC),
        (&v1, KEY_CRC),
    ] {
        let crc: u64 = meta_of(file)[key].as_str().unwrap().parse().unwrap();
        for bad in [
            format!("+{crc}"),
            format!("0{crc}"),
            format!(" {crc}"),
            format!("{crc} "),
            format!("{}", crc + (1 << 32)),
            format!("{crc}.0"),
            String::new(),
        ] {
            let file = edit_meta(file, |meta| {
                meta.insert(key.into(), bad.into());
            });
            rejected(&file, ErrorKind::Corrupt, "is not a CRC-32C in decimal");
        }
    }
    assert_eq!(parse_crc("k", "0").unwrap(), 0);
    assert_eq!(parse_crc("k", "4294967295").unwrap(), u32::MAX);
    for bad in ["00", "4294967296", "-1", "1e3", "٣"] {
        assert!(parse_crc("k", bad).is_err(), "{bad}");
    }
}

/// Rule 6: the container header is padded with spaces to a 16-byte boundary, and raw entries
/// with zero bytes.
#[test]
fn padding_is_checked() {
    let (_, packed) = model();
    let (_, v1) = frozen_v1();
    for file in [&packed, &v1] {
        let (json, data) = split(file);
        let trimmed = json.trim_end_matches(' ');
        // Another whitespace byte, where JSON allows it.
        let mut other = trimmed.to_string() + "\n";
        while !(8 + other.len()).is_multiple_of(16) {
            other.push(' ');
        }
        rejected(
            &join_exact(&other, data),
            ErrorKind::Corrupt,
            "padded with bytes other than spaces",
        );
        // Data starting 8 bytes off the 16-byte grid.
        let mut short = trimmed.to_string();
        while (8 + short.len()) % 16 != 8 {
            short.push(' ');
        }
        rejected(
            &join_exact(&short, data),
            ErrorKind::Corrupt,
            "not at a multiple of 16",
        );
        // The same header re-padded the right way is fine.
        Archive::from_bytes(&join(trimmed, data)).unwrap();
    }

    // A raw entry whose padding is not zero, its stored checksum recomputed.
    let archive = Archive::from_bytes(&packed).unwrap();
    let (i, ids) = archive
        .tensors
        .iter()
        .enumerate()
        .find(|(_, t)| t.index.name == "ids")
        .unwrap();
    assert_eq!(ids.index.encoding, Encoding::Raw);
    assert_eq!(ids.stored.end - ids.stored.start, 32);
    let mut bad = packed.clone();
    bad[ids.stored.start as usize + 24] = 1;
    let stored_crc = crc32c::crc32c(&bad[ids.stored.start as usize..ids.stored.end as usize]);
    let bad = forged(&bad, |index, _| index[i][5] = stored_crc.into());
    let archive = Archive::from_bytes(&bad).unwrap();
    let t = archive.tensor("ids").unwrap();
    for decoder in [CpuDecoder::Reference, CpuDecoder::Fast { parallel: true }] {
        let err = decoder
            .decode_tensor(&t.index, t.stored_in(&bad).unwrap())
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Corrupt);
        assert_eq!(
            err.to_string(),
            "corrupt data: tensor 'ids': verbatim entry padding is not zero"
        );
    }
    let err = decompress(&bad, CpuDecoder::Reference).unwrap_err();
    assert!(err.to_string().contains("padding is not zero"), "{err}");
    // The stored checksum is checked first.
    let mut bad = packed.clone();
    bad[ids.stored.start as usize + 24] = 1;
    let err = decompress(&bad, CpuDecoder::Reference).unwrap_err();
    assert!(err.to_string().contains("fail their checksum"), "{err}");
}

/// Rule 7: the rebuilt original header is at most 100,000,000 bytes of JSON, refused before it
/// is allocated.
#[test]
fn the_rebuilt_original_header_is_limited() {
    let (_, packed) = model();
    assert!(packed.len() < 20_000, "{}", packed.len());
    let with_padding = |padding: u64| {
        forged(&packed, |_, source| {
            source["canonical"]["padding"] = padding.into()
        })
    };
    rejected(
        &with_padding(150_000_000),
        ErrorKind::Corrupt,
        "header limit",
    );
    // One byte past the limit, counting the keys.
    let archive = Archive::from_bytes(&packed).unwrap();
    let source: Value =
        serde_json::from_str(meta_of(&packed)[KEY_SOURCE].as_str().unwrap()).unwrap();
    let padding = source["canonical"]["padding"].as_u64().unwrap();
    let unpadded = archive.source_header_bytes().len() as u64 - 8 - padding;
    rejected(
        &with_padding(100_000_000 - unpadded + 1),
        ErrorKind::Corrupt,
        "renders a header past the 100000000-byte header limit",
    );
}

/// Rule 8: `metadata_position` is a position among the tensors, not clamped to one.
#[test]
fn metadata_position_is_in_range() {
    let (file, packed) = model();
    let count = Header::read(&file).unwrap().tensors.len() as u64;
    let at = |p: u64| {
        forged(&packed, |_, s| {
            s["canonical"]["metadata_position"] = p.into()
        })
    };
    for p in [count + 1, 1 << 40, u64::MAX] {
        rejected(&at(p), ErrorKind::Corrupt, "__metadata__ at position");
    }
    // The last position is valid: the header is another one (metadata last), consistently.
    let last = at(count);
    let archive = Archive::from_bytes(&last).unwrap();
    let head = archive.source_header_bytes();
    let json = std::str::from_utf8(&head[8..]).unwrap().trim_end();
    assert!(
        json.ends_with(&format!(r#""__metadata__":{METADATA}}}"#)),
        "{json}"
    );
    // Without metadata, only position 0 (each header has one encoding).
    let no_meta = forged(&packed, |_, s| {
        s["canonical"]["metadata"] = Value::Null;
        s["canonical"]["metadata_position"] = 1.into()
    });
    rejected(
        &no_meta,
        ErrorKind::Corrupt,
        "absent metadata at position 1",
    );
}

/// Rule 9: one entropy per plane of the dtype's layout (version 2).
#[test]
fn entropy_counts_follow_the_plane_layout() {
    let (_, packed) = model();
    let archive = Archive::from_bytes(&packed).unwrap();
    // What the writer writes, empty tensors included.
    for t in &archive.tensors {
        let planes = PlaneLayout::for_dtype(&t.index.dtype).map_or(0, |l| l.plane_count());
        assert_eq!(t.index.entropy_millibits.len(), planes, "{}", t.index.name);
    }
    let position = |name: &str| {
        archive
            .tensors
            .iter()
            .position(|t| t.index.name == name)
            .unwrap()
    };
    for (name, entropies) in [
        ("w", serde_json::json!([])),
        ("w", serde_json::json!([1, 2, 3])),
        ("e", serde_json::json!([1])),
        ("f", serde_json::json!([1, 2])),
        ("ids", serde_json::json!([0])),
    ] {
        let i = position(name);
        let bad = forged(&packed, |index, _| index[i][7] = entropies.clone());
        rejected(&bad, ErrorKind::Corrupt, "plane entropies for a dtype of");
    }
}

/// Rule 10: the original metadata maps strings to strings.
#[test]
fn original_metadata_values_are_strings() {
    let (_, packed) = model();
    for value in [
        serde_json::json!(1),
        serde_json::json!(null),
        serde_json::json!(["x"]),
    ] {
        let bad = forged(&packed, |_, s| {
            s["canonical"]["metadata"]["note"] = value.clone()
        });
        rejected(&bad, ErrorKind::Corrupt, "bad original-header record");
    }
}

/// Rule 11: data order is (begin, end), then name byte-wise, in the reader and the writer.
#[test]
fn data_order_is_offsets_then_name_bytes() {
    let mut rng = Rng::seeded(21);
    let names = ["é", "z", "Z", "a"];
    let mut tensors: Vec<_> = names
        .iter()
        .map(|n| t(n, "BF16", &[0], Vec::new()))
        .collect();
    tensors.push(t(
        "w",
        "BF16",
        &[512],
        bf16s((0..512).map(|_| rng.weight())),
    ));
    tensors.extend(
        names
            .iter()
            .map(|n| t(&format!("{n}2"), "U8", &[0], Vec::new())),
    );
    let file = safetensors_bytes(&tensors, None);
    let header = Header::read(&file).unwrap();
    let order: Vec<&str> = header.tensors.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(order, ["Z", "a", "z", "é", "w", "Z2", "a2", "z2", "é2"]);
    let packed = compress(&file, &EncodeOptions::default()).unwrap();
    let archive = Archive::from_bytes(&packed).unwrap();
    let read: Vec<&str> = archive
        .tensors
        .iter()
        .map(|t| t.index.name.as_str())
        .collect();
    assert_eq!(read, order);
    assert_eq!(decompress(&packed, CpuDecoder::Reference).unwrap(), file);
}

/// A coded entry must have its container's version: a version-2 entry read as if from a
/// version-1 file (and the other way round) is refused, on the CPU and by the fused path's
/// `CodedEntry::of_tensor`.
#[test]
fn coded_entries_have_their_container_version() {
    let (_, packed) = model();
    let archive = Archive::from_bytes(&packed).unwrap();
    let w = archive.tensor("w").unwrap();
    assert_eq!(w.index.encoding, Encoding::Rans);
    let stored = w.stored_in(&packed).unwrap();
    let mut as_v1 = w.index.clone();
    as_v1.container_version = 1;
    let err = CpuDecoder::Reference
        .decode_tensor(&as_v1, stored)
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(
        err.to_string()
            .contains("a version-2 coded entry in a version-1 file"),
        "{err}"
    );
    assert!(crate::CodedEntry::of_tensor(&as_v1, stored).is_err());

    let (_, v1) = frozen_v1();
    let archive = Archive::from_bytes(&v1).unwrap();
    let t = archive
        .tensors
        .iter()
        .find(|t| t.index.encoding == Encoding::Rans)
        .unwrap();
    let mut as_v2 = t.index.clone();
    as_v2.container_version = 2;
    let err = CpuDecoder::Reference
        .decode_tensor(&as_v2, t.stored_in(&v1).unwrap())
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("a version-1 coded entry in a version-2 file"),
        "{err}"
    );
}
