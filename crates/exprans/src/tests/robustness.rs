//! Hostile coded entries: whatever the bytes, decoders return an error or the right values,
//! never panic, hang or read out of bounds. The stored checksum is recomputed after each
//! mutation so the decoders' own checks are what is tested.

use exprans_testkit as common;

use crate::archive::{Encoding, TensorIndex};
use crate::CpuDecoder;
use common::Rng;

fn decode_tensor(t: &TensorIndex, stored: &[u8], decoder: CpuDecoder) -> crate::Result<Vec<u8>> {
    decoder.decode_tensor(t, stored)
}
use crate::codec::{encode, EncodeOptions};
use crate::planes::PlaneLayout;

fn tensor(
    dtype: &str,
    values: &[u8],
    layout: PlaneLayout,
    opts: &EncodeOptions,
) -> (TensorIndex, Vec<u8>) {
    let (entry, _) = encode(layout, values, opts).unwrap();
    let entry = entry.expect("codes");
    let n = (values.len() / layout.value_bytes()) as u64;
    let index = TensorIndex {
        name: "t".into(),
        dtype: dtype.into(),
        shape: vec![n],
        bytes: values.len() as u64,
        encoding: Encoding::Rans,
        stored_crc32c: crc32c::crc32c(&entry),
        decoded_crc32c: crc32c::crc32c(values),
        entropy_millibits: vec![],
        container_version: 2,
    };
    (index, entry)
}

fn check_mutations(
    dtype: &str,
    layout: PlaneLayout,
    values: &[u8],
    opts: EncodeOptions,
    seed: u64,
) {
    let (index, entry) = tensor(dtype, values, layout, &opts);
    let mut rng = Rng(seed);
    let mut rejected = 0;
    for round in 0..1500 {
        let mut bad = entry.clone();
        // Bias mutations towards the header, tables and directory, where structure lives.
        let span = if round % 2 == 0 {
            bad.len().min(600)
        } else {
            bad.len()
        };
        for _ in 0..1 + round % 3 {
            let at = (rng.next_u64() % span as u64) as usize;
            bad[at] ^= (1 + rng.next_u64() % 255) as u8;
        }
        let mut ix = index.clone();
        ix.stored_crc32c = crc32c::crc32c(&bad);
        for decoder in [CpuDecoder::Reference, CpuDecoder::Fast { parallel: false }] {
            match decode_tensor(&ix, &bad, decoder) {
                Ok(out) => assert!(out == values, "round {round}: wrong bytes accepted"),
                Err(_) => rejected += 1,
            }
        }
    }
    assert!(
        rejected > 2000,
        "only {rejected} of 3000 mutated decodes were rejected"
    );
}

fn bf16_values(n: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed);
    (0..n)
        .flat_map(|_| half::bf16::from_f32(rng.normal(0.05)).to_le_bytes())
        .collect()
}

#[test]
fn mutated_16_bit_entries_never_panic() {
    let values = bf16_values(20_001, 3);
    check_mutations(
        "BF16",
        PlaneLayout::Float16,
        &values,
        EncodeOptions {
            block_size: 4_000,
            fast: false,
            ..EncodeOptions::default()
        },
        11,
    );
    check_mutations(
        "BF16",
        PlaneLayout::Float16,
        &values,
        EncodeOptions {
            block_size: 2_000,
            fast: true,
            ..EncodeOptions::default()
        },
        12,
    );
}

#[test]
fn mutated_32_bit_entries_never_panic() {
    let mut rng = Rng(5);
    let values: Vec<u8> = (0..12_000)
        .flat_map(|_| rng.normal(0.05).to_le_bytes())
        .collect();
    check_mutations(
        "F32",
        PlaneLayout::Float32,
        &values,
        EncodeOptions {
            block_size: 3_000,
            fast: false,
            ..EncodeOptions::default()
        },
        13,
    );
}

#[test]
fn truncated_and_extended_entries_are_rejected() {
    let values = bf16_values(5_000, 9);
    let (index, entry) = tensor(
        "BF16",
        &values,
        PlaneLayout::Float16,
        &EncodeOptions {
            block_size: 1_000,
            fast: false,
            ..EncodeOptions::default()
        },
    );
    for len in [
        0,
        1,
        31,
        32,
        33,
        entry.len() / 2,
        entry.len() - 16,
        entry.len() - 1,
    ] {
        let bad = &entry[..len];
        let mut ix = index.clone();
        ix.stored_crc32c = crc32c::crc32c(bad);
        assert!(
            decode_tensor(&ix, bad, CpuDecoder::Reference).is_err(),
            "len {len}"
        );
        assert!(
            decode_tensor(&ix, bad, CpuDecoder::Fast { parallel: true }).is_err(),
            "len {len}"
        );
    }
    let mut longer = entry.clone();
    longer.extend_from_slice(&[0; 16]);
    let mut ix = index.clone();
    ix.stored_crc32c = crc32c::crc32c(&longer);
    assert!(decode_tensor(&ix, &longer, CpuDecoder::Reference).is_err());
}
