//! Regression tests for what the fuzz targets (fuzz/, fuzz/README.md) and the interrupted-write
//! test found: each input is built here by code and failed (panicked, or gave a wrong result)
//! before its fix.
//!
//! Overflow panics show in builds with overflow checks (the fuzz builds, `cargo test` without
//! `--release`); release builds wrapped silently instead, so the tests below also check the
//! result, which was wrong there.

use serde_json::Value;

use crate::codec::ENTRY_MAGIC;
use crate::source_header::{SourceHeader, SourceTensor};
use crate::{compress, decompress, Archive, CodedEntry, CpuDecoder, EncodeOptions, ErrorKind};
use exprans_testkit::{bf16s, safetensors_bytes, t, Rng};

/// A small compressed model.
fn packed_model() -> Vec<u8> {
    let mut rng = Rng::seeded(11);
    let w = bf16s((0..4096).map(|_| rng.weight()));
    let b = bf16s((0..64).map(|_| rng.weight()));
    let file = safetensors_bytes(
        &[t("w", "BF16", &[64, 64], w), t("b", "BF16", &[64], b)],
        None,
    );
    compress(&file, &EncodeOptions::default()).unwrap()
}

/// `packed` with its index edited by `edit` and the header checksums recomputed (what the fuzz
/// targets' `with_valid_checksums` does), so that only the semantic fault remains.
fn with_index(packed: &[u8], edit: impl FnOnce(&mut Value)) -> Vec<u8> {
    super::forge::forged(packed, |index, _| edit(index))
}

/// fuzz target `source_header`: the original-header renderer added the index's tensor sizes
/// unchecked, before anything compared them with the file ("attempt to add with overflow"; a
/// wrapped offset, rendered as the header, in release builds).
#[test]
fn rendering_tensor_sizes_that_overflow_is_an_error() {
    let tensor = |name| SourceTensor {
        name,
        dtype: "BF16",
        shape: &[4],
        bytes: 1 << 63,
    };
    let source = SourceHeader::Canonical {
        metadata: None,
        metadata_position: 0,
        padding: 0,
    };
    let err = source.render(&[tensor("a"), tensor("b")]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt);
    assert!(err.to_string().contains("overflow"), "{err}");
}

/// The same through a whole file: an index whose sizes sum past 2^64, with a valid header
/// checksum, is refused with one line by every command's first step.
#[test]
fn an_index_whose_sizes_overflow_is_refused() {
    let packed = packed_model();
    let bad = with_index(&packed, |index| {
        // Version-2 records: [name, dtype, shape, bytes, ...].
        index[0][3] = (1u64 << 63).into();
        index[1][3] = (1u64 << 63).into();
    });
    let err = Archive::from_bytes(&bad).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
    assert!(err.to_string().contains("overflow"), "{err}");
    let err = decompress(&bad, CpuDecoder::Reference).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Corrupt, "{err}");
}

/// fuzz target `container`: with `rows_per_block`, a valid zero-row tensor whose column count is
/// an odd `u64::MAX` overflowed doubling its block size ("attempt to multiply with overflow").
#[test]
fn rows_per_block_of_a_zero_row_tensor_with_odd_columns_does_not_overflow() {
    let opts = EncodeOptions {
        rows_per_block: Some(1),
        ..EncodeOptions::default()
    };
    let err = opts.for_shape(&[0, u64::MAX]).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(err.to_string().contains("largest block"), "{err}");
    assert!(opts.for_shape(&[3, u64::MAX]).is_err());
    // The whole file: refused with one line, not a panic.
    let file = safetensors_bytes(&[t("e", "BF16", &[0, u64::MAX], Vec::new())], None);
    let err = compress(&file, &opts).unwrap_err();
    assert!(err.to_string().contains("largest block"), "{err}");
}

/// The interrupted-write test (crates/exprans-cli/tests/interrupted.rs): `ArchiveWriter::finish`
/// padded the header with `format!("{json:<width$}")`, whose width is limited to `u16::MAX`, so
/// compressing any model whose header needs more than 64 KiB (a few hundred tensors) panicked
/// with "Formatting argument out of range".
#[test]
fn headers_larger_than_64_kib_are_written() {
    let mut rng = Rng::seeded(12);
    let tensors: Vec<_> = (0..400)
        .map(|i| {
            let name = format!("model.layers.{i}.{}", "long_projection_name.".repeat(6));
            t(&name, "BF16", &[8], bf16s((0..8).map(|_| rng.weight())))
        })
        .collect();
    let file = safetensors_bytes(&tensors, None);
    let packed = compress(&file, &EncodeOptions::default()).unwrap();
    let header_len = u64::from_le_bytes(packed[..8].try_into().unwrap());
    assert!(header_len > u16::MAX as u64, "{header_len}-byte header");
    assert_eq!(decompress(&packed, CpuDecoder::Reference).unwrap(), file);
}

/// A coded entry of `value_count` BF16 values in blocks of `block_size`, both planes coded with
/// a one-symbol table: such planes cost no words at all, so the entry is only its header, two
/// 5-byte tables and the lane directory.
fn one_symbol_entry(value_count: u64, block_size: u32) -> Vec<u8> {
    // Frequency 4096 (all of PROB_SCALE) for symbol 0: lo = hi = 0, k = 12, no delta, then the
    // order-12 exp-Golomb code of 4096 (bits 0, 1, then 13 zeros).
    let table = [0u8, 0, 12, 0b10, 0];
    let mut e = ENTRY_MAGIC.to_vec();
    e.extend_from_slice(&[1, 1, 0b11, 0]); // version, Float16, both planes coded
    e.extend_from_slice(&value_count.to_le_bytes());
    e.extend_from_slice(&block_size.to_le_bytes());
    e.extend_from_slice(&(2 * table.len() as u32).to_le_bytes());
    e.extend_from_slice(&0u64.to_le_bytes()); // words
    e.extend_from_slice(&table);
    e.extend_from_slice(&table);
    e.resize(e.len().next_multiple_of(16), 0);
    let lanes = value_count.div_ceil(block_size as u64) as usize * crate::LANES;
    for _ in 0..lanes {
        e.extend_from_slice(&crate::params::RANS_L.to_le_bytes()); // state
        e.extend_from_slice(&0u32.to_le_bytes()); // first word
    }
    e
}

/// fuzz target `gpu_plan` (its check that a packed entry's parameters describe its blocks):
/// `PackedEntry::new` truncated the value count to its u32 parameter, so a valid 1 MiB entry of
/// 2^32 values packed as an entry of 0 values, which the kernels would "decode" without a word
/// of output or an error.
#[cfg(feature = "gpu")]
#[test]
fn packed_entries_of_more_than_u32_max_values_are_refused() {
    use crate::gpu::PackedEntry;
    use crate::planes::PlaneLayout;

    let block = 1u32 << 20;
    let values = 1u64 << 32;
    let bytes = one_symbol_entry(values, block);
    assert_eq!(bytes.len(), 48 + 4096 * crate::LANES * 8);
    let entry = CodedEntry::parse(&bytes, PlaneLayout::Float16, values).unwrap();
    assert_eq!(entry.block_count(), 4096);
    let err = PackedEntry::new(&entry, 0..4096).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Invalid);
    assert!(err.to_string().contains("4294967296 values"), "{err}");
    // Half of it fits.
    let half = PackedEntry::new(&entry, 0..2048).unwrap();
    assert_eq!(half.params.value_count, 1 << 31);
    assert_eq!(half.params.block_count, 2048);
    // And a small one-symbol entry decodes (to zeros) on the CPU, as it would on a GPU.
    let small = one_symbol_entry(1000, 64);
    let entry = CodedEntry::parse(&small, PlaneLayout::Float16, 1000).unwrap();
    let mut out = vec![1u8; 2000];
    CpuDecoder::Reference
        .decode_entry(&entry, &mut out)
        .unwrap();
    assert!(out.iter().all(|&b| b == 0));
    let packed = PackedEntry::new(&entry, 0..entry.block_count()).unwrap();
    assert_eq!(packed.params.value_count, 1000);
}
