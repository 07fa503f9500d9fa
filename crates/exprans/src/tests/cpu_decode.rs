//! Every CPU decode path (each SIMD kernel forced, and the scalar one) is bit-identical to
//! `cpu::decode_reference` and rejects exactly what it rejects; `codec::encode` produces exactly
//! the bytes of the straightforward encoder (`build_entry` below), serially and on a rayon pool.

use crate::codec::{
    encode, plane1_tables, CodedEntry, EncodeOptions, EntryHeader, ENTRY_HEADER_LEN, ENTRY_MAGIC,
};
use crate::cpu::{decode_fast, decode_fast_with, decode_reference, CpuKernel};
use crate::params::{LANES, RANS_L};
use crate::planes::PlaneLayout;
use crate::rans::{self, FreqTable};

use exprans_testkit::Rng;

#[derive(Clone, Copy, Debug)]
enum Dtype {
    Bf16,
    F16,
    F32,
}

impl Dtype {
    fn layout(self) -> PlaneLayout {
        match self {
            Dtype::Bf16 | Dtype::F16 => PlaneLayout::Float16,
            Dtype::F32 => PlaneLayout::Float32,
        }
    }
    fn bytes(self, values: impl IntoIterator<Item = f32>) -> Vec<u8> {
        let v = values.into_iter();
        match self {
            Dtype::Bf16 => v
                .flat_map(|x| half::bf16::from_f32(x).to_le_bytes())
                .collect(),
            Dtype::F16 => v
                .flat_map(|x| half::f16::from_f32(x).to_le_bytes())
                .collect(),
            Dtype::F32 => v.flat_map(|x| x.to_le_bytes()).collect(),
        }
    }
}

const DTYPES: [Dtype; 3] = [Dtype::Bf16, Dtype::F16, Dtype::F32];

/// Weight-like values.
fn weights(dtype: Dtype, n: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    dtype.bytes((0..n).map(|_| rng.normal(0.05)))
}

/// Weight-like values sprinkled with NaN, infinities, subnormals, zeros of both signs.
fn specials(dtype: Dtype, n: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let special = [
        f32::NAN,
        -f32::NAN,
        f32::INFINITY,
        f32::NEG_INFINITY,
        0.0,
        -0.0,
        1e-40,
        -1e-40,
        f32::MIN_POSITIVE,
        6e-8,
        -6e-8,
        f32::MAX,
        f32::MIN,
        1.0,
        -1.0,
    ];
    dtype.bytes((0..n).map(|i| {
        if i % 3 == 0 {
            special[(rng.next_u64() % special.len() as u64) as usize]
        } else {
            rng.normal(0.05)
        }
    }))
}

fn random_bits(dtype: Dtype, n: usize, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let len = n * dtype.layout().value_bytes();
    (0..len).map(|_| (rng.next_u64() >> 32) as u8).collect()
}

fn histogram(plane: &[u8]) -> [u64; 256] {
    let mut h = [0u64; 256];
    for &b in plane {
        h[b as usize] += 1;
    }
    h
}

/// The straightforward encoder (lane after lane, one division per symbol, words pushed and
/// reversed) writing an entry of `version` (1 or 2) that codes exactly the planes of
/// `coded_mask`; in version 2 plane 1 gets the context classes `codec::plane1_tables` chooses.
/// `codec::encode` must produce the same bytes for the planes it chooses to code.
pub(crate) fn build_entry(
    version: u8,
    layout: PlaneLayout,
    data: &[u8],
    coded_mask: u8,
    block_size: u32,
) -> Vec<u8> {
    let planes = layout.split(data);
    let n = planes[0].len();
    assert!(n > 0 && coded_mask != 0);
    let block = block_size as usize;
    // Per coded plane: its tables (plane 1: one per class) and the class of each plane-0 byte.
    let mut plane1_classes = 1u8;
    let tables: Vec<Option<(Vec<FreqTable>, [usize; 256])>> = planes
        .iter()
        .enumerate()
        .map(|(p, plane)| {
            if coded_mask >> p & 1 == 0 {
                return None;
            }
            if p == 1 && version == 2 && n >= crate::codec::MIN_VALUES_FOR_CLASSES {
                let joint = crate::codec::joint_histogram(&planes[0], plane);
                let table_bits = crate::codec::class_table_bits(&EncodeOptions::default());
                let (map, tables, _) =
                    plane1_tables(&joint, crate::codec::ENCODER_MAX_CLASSES, table_bits);
                plane1_classes = map.classes() as u8;
                return Some((tables, std::array::from_fn(|b| map.class_of(b as u8))));
            }
            Some((
                vec![FreqTable::from_counts(&histogram(plane)).unwrap()],
                [0; 256],
            ))
        })
        .collect();
    let mut table_bytes = Vec::new();
    for (p, t) in tables.iter().enumerate() {
        if let Some((t, class)) = t {
            if p == 1 && plane1_classes > 1 {
                // The class map: lo, hi, then 4-bit classes of lo..=hi.
                let lo = class.iter().position(|&c| c != 0).unwrap();
                let hi = class.iter().rposition(|&c| c != 0).unwrap();
                table_bytes.extend([lo as u8, hi as u8]);
                for pair in class[lo..=hi].chunks(2) {
                    table_bytes.push(pair[0] as u8 | (*pair.get(1).unwrap_or(&0) as u8) << 4);
                }
            }
            for t in t {
                t.serialize(&mut table_bytes);
            }
        }
    }
    // Per coded plane: its bytes, its encoder tables (one per class), each plane-0 byte's class.
    type Coded<'a> = (&'a [u8], Vec<[rans::EncSymbol; 256]>, [usize; 256]);
    let coded: Vec<Coded> = planes
        .iter()
        .zip(&tables)
        .filter_map(|(p, t)| {
            t.as_ref().map(|(t, class)| {
                (
                    p.as_slice(),
                    t.iter().map(rans::encode_table).collect(),
                    *class,
                )
            })
        })
        .collect();
    let mut directory = Vec::new();
    let mut words: Vec<u16> = Vec::new();
    for start in (0..n).step_by(block) {
        let values = block.min(n - start);
        for l in 0..LANES {
            let mut state = RANS_L;
            let mut lane_words = Vec::new();
            let count = crate::codec::lane_value_count(values, l);
            for j in (0..count).rev() {
                let i = start + l + j * LANES;
                for (plane, enc, class) in coded.iter().rev() {
                    let table = &enc[class[planes[0][i] as usize]];
                    rans::encode_symbol(&mut state, &mut lane_words, table[plane[i] as usize]);
                }
            }
            if version == 1 {
                directory.extend_from_slice(&state.to_le_bytes());
                directory.extend_from_slice(&(words.len() as u32).to_le_bytes());
            } else if count == 0 {
                directory.extend_from_slice(&0u16.to_le_bytes());
                continue;
            } else {
                directory.extend_from_slice(&(2 + lane_words.len() as u16).to_le_bytes());
                words.extend([state as u16, (state >> 16) as u16]);
            }
            words.extend(lane_words.iter().rev());
        }
    }
    let mut head = Vec::new();
    head.extend_from_slice(&ENTRY_MAGIC);
    let classes_byte = if version == 2 && coded_mask & 2 != 0 {
        plane1_classes
    } else {
        0
    };
    head.extend_from_slice(&[version, layout as u8, coded_mask, classes_byte]);
    head.extend_from_slice(&(n as u64).to_le_bytes());
    head.extend_from_slice(&block_size.to_le_bytes());
    head.extend_from_slice(&(table_bytes.len() as u32).to_le_bytes());
    head.extend_from_slice(&(words.len() as u64).to_le_bytes());
    assert_eq!(head.len(), ENTRY_HEADER_LEN);
    let geometry = EntryHeader::parse(&head).unwrap().geometry().unwrap();
    let mut entry = vec![0u8; geometry.entry_len];
    entry[..ENTRY_HEADER_LEN].copy_from_slice(&head);
    entry[geometry.tables_offset..][..table_bytes.len()].copy_from_slice(&table_bytes);
    entry[geometry.directory_offset..][..directory.len()].copy_from_slice(&directory);
    for (dst, w) in entry[geometry.words_offset..]
        .chunks_exact_mut(2)
        .zip(&words)
    {
        dst.copy_from_slice(&w.to_le_bytes());
    }
    for (p, off) in geometry.raw_offsets.iter().enumerate() {
        if let Some(off) = off {
            entry[*off..][..n].copy_from_slice(&planes[p]);
        }
    }
    entry
}

/// A named decoder.
type Path = (
    String,
    Box<dyn Fn(&CodedEntry, &mut [u8]) -> crate::Result<()>>,
);

/// Every fast path: each available kernel, serial and parallel, plus `decode_fast`.
fn fast_paths() -> Vec<Path> {
    let mut paths: Vec<Path> = vec![(
        "decode_fast".into(),
        Box::new(|e: &CodedEntry, o: &mut [u8]| decode_fast(e, o, false)),
    )];
    for kernel in CpuKernel::available() {
        for parallel in [false, true] {
            paths.push((
                format!("{} parallel={parallel}", kernel.name()),
                Box::new(move |e: &CodedEntry, o: &mut [u8]| {
                    decode_fast_with(kernel, e, o, parallel)
                }),
            ));
        }
    }
    paths
}

/// Decodes `entry` with the reference and every fast path: all must agree (same bytes, or all
/// fail). Returns the reference's result.
fn decode_all(entry: &[u8], layout: PlaneLayout, n: usize, what: &str) -> Option<Vec<u8>> {
    let Ok(parsed) = CodedEntry::parse(entry, layout, n as u64) else {
        return None;
    };
    let len = n * layout.value_bytes();
    let mut expected = vec![0u8; len];
    let reference = decode_reference(&parsed, &mut expected)
        .ok()
        .map(|_| expected);
    for (name, path) in fast_paths() {
        // Garbage in the output buffer must not leak into the result.
        let mut out = vec![0xa5u8; len];
        let got = path(&parsed, &mut out).ok().map(|_| out);
        assert!(
            got == reference,
            "{what}: {name} disagrees with the reference (reference ok: {}, {name} ok: {})",
            reference.is_some(),
            got.is_some()
        );
    }
    reference
}

/// Encodes `data`, checks the entry against `build_entry` and decodes it with every path.
fn check(layout: PlaneLayout, data: &[u8], opts: EncodeOptions, what: &str) {
    let n = data.len() / layout.value_bytes();
    let (entry, _) = encode(layout, data, &opts).unwrap();
    let Some(entry) = entry else {
        return;
    };
    let mask = EntryHeader::parse(&entry).unwrap().coded_mask;
    assert!(
        entry == build_entry(2, layout, data, mask, opts.block_size),
        "{what}: encode differs from the straightforward encoder"
    );
    let decoded = decode_all(&entry, layout, n, what).expect("decodes");
    assert!(decoded == data, "{what}: wrong values");
}

/// Codes every plane subset of `data` with `build_entry` and decodes with every path.
fn check_every_mask(layout: PlaneLayout, data: &[u8], block_size: u32, what: &str) {
    let n = data.len() / layout.value_bytes();
    for version in [1, 2].into_iter().filter(|&v| layout.in_version(v)) {
        for mask in 1..1u8 << layout.plane_count() {
            let entry = build_entry(version, layout, data, mask, block_size);
            let decoded = decode_all(&entry, layout, n, what).expect("decodes");
            assert!(
                decoded == data,
                "{what} v{version} mask {mask:#b}: wrong values"
            );
        }
    }
}

const LENGTHS: [usize; 14] = [1, 2, 3, 31, 32, 33, 63, 64, 65, 66, 127, 129, 1000, 4097];
const BLOCK_SIZES: [u32; 4] = [64, 66, 4096, 1 << 19];

#[test]
fn kernels_are_reported_consistently() {
    let available = CpuKernel::available();
    assert!(available.contains(&CpuKernel::Scalar));
    assert_eq!(*available.last().unwrap(), CpuKernel::best());
    for k in CpuKernel::ALL {
        assert_eq!(k.is_available(), available.contains(&k), "{}", k.name());
    }
    if cfg!(target_arch = "x86_64") && std::is_x86_feature_detected!("avx2") {
        assert!(CpuKernel::Avx2.is_available());
    }
    let (entry, _) = encode(
        PlaneLayout::Float16,
        &weights(Dtype::Bf16, 5000, 1),
        &EncodeOptions::default(),
    )
    .unwrap();
    let entry = entry.unwrap();
    let parsed = CodedEntry::parse(&entry, PlaneLayout::Float16, 5000).unwrap();
    let mut out = vec![0u8; 10000];
    for k in CpuKernel::ALL {
        let r = decode_fast_with(k, &parsed, &mut out, false);
        assert_eq!(r.is_ok(), k.is_available(), "{}", k.name());
    }
}

#[test]
fn empty_tensors_have_no_entry() {
    for dtype in DTYPES {
        for fast in [false, true] {
            let opts = EncodeOptions {
                fast,
                ..EncodeOptions::default()
            };
            let (entry, stats) = encode(dtype.layout(), &[], &opts).unwrap();
            assert!(entry.is_none());
            assert_eq!(stats.len(), dtype.layout().plane_count());
        }
    }
}

#[test]
fn weights_of_every_length_and_block_size() {
    for dtype in DTYPES {
        for n in LENGTHS {
            for block_size in BLOCK_SIZES {
                for fast in [false, true] {
                    let data = weights(dtype, n, n as u64 * 7 + block_size as u64);
                    let opts = EncodeOptions {
                        block_size,
                        fast,
                        ..EncodeOptions::default()
                    };
                    let what = format!("{dtype:?} n={n} block={block_size} fast={fast}");
                    check(dtype.layout(), &data, opts, &what);
                }
            }
        }
    }
}

#[test]
fn every_plane_subset_decodes_with_every_path() {
    for dtype in DTYPES {
        for n in [1, 33, 100, 1000] {
            for block_size in [64, 66, 4096] {
                for (kind, data) in [
                    ("weights", weights(dtype, n, 11)),
                    ("specials", specials(dtype, n, 12)),
                    ("random", random_bits(dtype, n, 13)),
                ] {
                    let what = format!("{dtype:?} {kind} n={n} block={block_size}");
                    check_every_mask(dtype.layout(), &data, block_size, &what);
                }
            }
        }
    }
}

#[test]
fn single_symbol_planes_code_in_zero_words() {
    for dtype in DTYPES {
        for n in [1, 2, 31, 32, 33, 1000, 5000] {
            let data = dtype.bytes(std::iter::repeat_n(0.5f32, n));
            for block_size in [64, 66, 4096] {
                let what = format!("{dtype:?} constant n={n} block={block_size}");
                check_every_mask(dtype.layout(), &data, block_size, &what);
                let entry = build_entry(1, dtype.layout(), &data, 1, block_size);
                let header = EntryHeader::parse(&entry).unwrap();
                assert_eq!(header.words_count, 0, "{what}");
                // Version 2: only the initial states of the lanes that hold values.
                let entry = build_entry(2, dtype.layout(), &data, 1, block_size);
                let header = EntryHeader::parse(&entry).unwrap();
                let lanes: usize = (0..n)
                    .step_by(block_size as usize)
                    .map(|start| LANES.min(n - start))
                    .sum();
                assert_eq!(header.words_count as usize, 2 * lanes, "{what}");
                for fast in [false, true] {
                    let opts = EncodeOptions {
                        block_size,
                        fast,
                        ..EncodeOptions::default()
                    };
                    check(dtype.layout(), &data, opts, &what);
                }
            }
        }
    }
}

#[test]
fn special_values_round_trip() {
    for dtype in DTYPES {
        for n in [1, 7, 64, 1001, 20_000] {
            for block_size in BLOCK_SIZES {
                for fast in [false, true] {
                    let data = specials(dtype, n, 99 + n as u64);
                    let opts = EncodeOptions {
                        block_size,
                        fast,
                        ..EncodeOptions::default()
                    };
                    let what = format!("{dtype:?} specials n={n} block={block_size} fast={fast}");
                    check(dtype.layout(), &data, opts, &what);
                }
            }
        }
    }
}

#[test]
fn random_bits_round_trip_when_coded() {
    // encode keeps incompressible data verbatim (no entry); build_entry codes it anyway.
    for dtype in DTYPES {
        for n in [1, 65, 3000] {
            let data = random_bits(dtype, n, 5 + n as u64);
            let opts = EncodeOptions {
                block_size: 66,
                fast: false,
                ..EncodeOptions::default()
            };
            check(
                dtype.layout(),
                &data,
                opts,
                &format!("{dtype:?} random n={n}"),
            );
            check_every_mask(
                dtype.layout(),
                &data,
                4096,
                &format!("{dtype:?} random n={n}"),
            );
        }
    }
}

#[test]
fn many_blocks_with_a_partial_last_block() {
    for dtype in DTYPES {
        let n = 100 * 64 + 17;
        let data = weights(dtype, n, 3);
        for block_size in [64, 66, 4096] {
            for fast in [false, true] {
                let opts = EncodeOptions {
                    block_size,
                    fast,
                    ..EncodeOptions::default()
                };
                check(
                    dtype.layout(),
                    &data,
                    opts,
                    &format!("{dtype:?} block={block_size}"),
                );
            }
        }
    }
}

#[test]
fn encode_on_a_pool_gives_the_serial_bytes() {
    let pool = |threads| {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
    };
    let (one, four) = (pool(1), pool(4));
    for dtype in DTYPES {
        let data = weights(dtype, 50_000, 77);
        for (block_size, fast) in [(1024, false), (4096, false), (4096, true), (1000, true)] {
            let opts = EncodeOptions {
                block_size,
                fast,
                ..EncodeOptions::default()
            };
            let run = || encode(dtype.layout(), &data, &opts).unwrap().0;
            let serial = one.install(run);
            assert!(serial.is_some(), "{dtype:?} block={block_size}");
            let parallel = four.install(run);
            assert!(serial == parallel, "{dtype:?} block={block_size}");
        }
    }
}

/// Flips bytes of an entry's word section (and of its directory) and checks that every path
/// agrees with the reference on each damaged entry: the same error, or the same bytes.
fn check_flips(layout: PlaneLayout, data: &[u8], mask: u8, block_size: u32, seed: u64) {
    for version in [1, 2].into_iter().filter(|&v| layout.in_version(v)) {
        check_flips_in(version, layout, data, mask, block_size, seed);
    }
}

fn check_flips_in(
    version: u8,
    layout: PlaneLayout,
    data: &[u8],
    mask: u8,
    block_size: u32,
    seed: u64,
) {
    let n = data.len() / layout.value_bytes();
    let entry = build_entry(version, layout, data, mask, block_size);
    let parsed = CodedEntry::parse(&entry, layout, n as u64).unwrap();
    let g = parsed.geometry.clone();
    let words = g.words_offset..g.words_offset + 2 * parsed.header.words_count as usize;
    let directory = g.directory_offset..g.directory_end;
    let mut rng = Rng(seed | 1);
    let mut targets: Vec<usize> = if words.len() <= 400 {
        words.clone().collect()
    } else {
        (0..400)
            .map(|_| words.start + (rng.next_u64() % words.len() as u64) as usize)
            .collect()
    };
    targets.extend([words.start, words.end.saturating_sub(1)]);
    targets.extend(
        (0..40).map(|_| directory.start + (rng.next_u64() % directory.len() as u64) as usize),
    );
    let mut failures = 0;
    for &at in &targets {
        if at >= entry.len() {
            continue;
        }
        let mut bad = entry.clone();
        bad[at] ^= 1 << (rng.next_u64() % 8);
        let what = format!("v{version} {layout:?} mask={mask:#b} flip at {at}");
        if decode_all(&bad, layout, n, &what).is_none() {
            failures += 1;
        }
    }
    // Most flips in the words must be caught.
    assert!(failures > 0 || targets.is_empty());
}

#[test]
fn flipped_bytes_are_rejected_alike_by_every_path() {
    for dtype in DTYPES {
        let layout = dtype.layout();
        for (n, block_size) in [(200, 64), (1000, 66), (5000, 4096)] {
            let data = weights(dtype, n, 21);
            for mask in [0b1, 0b11, (1 << layout.plane_count()) - 1] {
                check_flips(layout, &data, mask, block_size, n as u64 + mask as u64);
            }
        }
        // Few words: the clamped reads of the SIMD kernels near the section's ends.
        for n in [1, 3, 40] {
            let data = random_bits(dtype, n, 8);
            check_flips(layout, &data, 1, 64, 1 + n as u64);
        }
    }
}

#[test]
fn truncated_and_swapped_lanes_are_rejected_alike() {
    // Lanes whose words are moved between neighbours (directory first-word shifted) decode to
    // garbage or fail; all paths agree.
    let dtype = Dtype::Bf16;
    let data = weights(dtype, 3000, 4);
    let entry = build_entry(1, PlaneLayout::Float16, &data, 0b11, 66);
    let parsed = CodedEntry::parse(&entry, PlaneLayout::Float16, 3000).unwrap();
    let dir = parsed.geometry.directory_offset;
    let records = (parsed.geometry.words_offset - dir) / 8;
    for r in 1..records {
        for delta in [-1i64, 1] {
            let mut bad = entry.clone();
            let at = dir + 8 * r + 4;
            let first = u32::from_le_bytes(bad[at..at + 4].try_into().unwrap()) as i64 + delta;
            if first < 0 {
                continue;
            }
            bad[at..at + 4].copy_from_slice(&(first as u32).to_le_bytes());
            let what = format!("record {r} first word {delta:+}");
            assert!(
                decode_all(&bad, PlaneLayout::Float16, 3000, &what).is_none(),
                "{what}"
            );
        }
    }
    // Version 2: one word moved from a lane to its neighbour (the counts still cover the words).
    let entry = build_entry(2, PlaneLayout::Float16, &data, 0b11, 66);
    let parsed = CodedEntry::parse(&entry, PlaneLayout::Float16, 3000).unwrap();
    let dir = parsed.geometry.directory_offset;
    let count = |e: &[u8], r: usize| u16::from_le_bytes([e[dir + 2 * r], e[dir + 2 * r + 1]]);
    let records = (parsed.geometry.directory_end - dir) / 2;
    let mut tried = 0;
    for r in 0..records - 1 {
        for (from, to) in [(r, r + 1), (r + 1, r)] {
            let (a, b) = (count(&entry, from), count(&entry, to));
            if a <= 2 || b == 0 {
                continue;
            }
            let mut bad = entry.clone();
            bad[dir + 2 * from..][..2].copy_from_slice(&(a - 1).to_le_bytes());
            bad[dir + 2 * to..][..2].copy_from_slice(&(b + 1).to_le_bytes());
            let what = format!("v2 word moved from lane record {from} to {to}");
            assert!(
                decode_all(&bad, PlaneLayout::Float16, 3000, &what).is_none(),
                "{what}"
            );
            tried += 1;
        }
    }
    assert!(tried > 100);
}

mod props {
    use super::*;
    use proptest::prelude::*;

    /// 16-bit values: an exponent-like top byte drawn from a few values, the rest random, so
    /// that plane 0 is skewed and plane 1 near uniform (like real weights); or all random.
    fn values16() -> impl Strategy<Value = Vec<u8>> {
        (any::<bool>(), 0usize..3000, any::<u64>()).prop_map(|(skewed, n, seed)| {
            let mut rng = Rng(seed | 1);
            (0..n)
                .flat_map(|_| {
                    let r = rng.next_u64();
                    let v = if skewed {
                        let exp = 0x3c00 + ((r >> 60) as u16 % 5) * 0x80;
                        exp | (r as u16 & 0x807f)
                    } else {
                        r as u16
                    };
                    v.to_le_bytes()
                })
                .collect()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        #[test]
        fn codec_round_trips_on_every_path(
            data in values16(),
            half_block in 1u32..200,
            fast: bool,
            f32_layout: bool,
        ) {
            let (layout, data) = if f32_layout && data.len() % 4 == 0 {
                (PlaneLayout::Float32, data)
            } else {
                (PlaneLayout::Float16, data)
            };
            let opts = EncodeOptions { block_size: 2 * half_block, fast, ..EncodeOptions::default() };
            check(layout, &data, opts, "proptest");
            let n = data.len() / layout.value_bytes();
            if n > 0 {
                let mask = if fast { 1 } else { (1 << layout.plane_count()) - 1 };
                let entry = build_entry(2, layout, &data, mask, opts.block_size);
                let decoded = decode_all(&entry, layout, n, "proptest every plane");
                prop_assert!(decoded.as_deref() == Some(&data[..]));
            }
        }

        #[test]
        fn damaged_words_are_rejected_alike(
            data in values16(),
            half_block in 1u32..100,
            flips in proptest::collection::vec((any::<u64>(), 0u8..8), 1..4),
        ) {
            let n = data.len() / 2;
            prop_assume!(n > 0);
            let entry = build_entry(2, PlaneLayout::Float16, &data, 0b11, 2 * half_block);
            let parsed = CodedEntry::parse(&entry, PlaneLayout::Float16, n as u64).unwrap();
            let words = 2 * parsed.header.words_count as usize;
            prop_assume!(words > 0);
            let start = parsed.geometry.words_offset;
            let mut bad = entry.clone();
            for (at, bit) in flips {
                bad[start + (at % words as u64) as usize] ^= 1 << bit;
            }
            decode_all(&bad, PlaneLayout::Float16, n, "proptest flips");
        }
    }
}

/// One-byte values (FP8-like: a skewed "exponent" in the high bits, uniform low bits), every
/// length and block size, every path; and the block size rounds up to a multiple of 4.
#[test]
fn one_byte_values_round_trip() {
    let layout = PlaneLayout::Byte;
    for n in LENGTHS.into_iter().chain([20_000]) {
        let mut rng = Rng(n as u64 | 1);
        let data: Vec<u8> = (0..n)
            .map(|_| {
                let r = rng.next_u64();
                ((r % 64).trailing_zeros().min(7) as u8) << 4 | (r >> 32) as u8 & 0x8f
            })
            .collect();
        for block_size in [64u32, 66, 4096, 1 << 19] {
            let what = format!("bytes n={n} block={block_size}");
            check_every_mask(layout, &data, block_size.next_multiple_of(4), &what);
            let opts = EncodeOptions {
                block_size,
                ..EncodeOptions::default()
            };
            let (entry, _) = encode(layout, &data, &opts).unwrap();
            if let Some(entry) = entry {
                let header = EntryHeader::parse(&entry).unwrap();
                assert_eq!(header.block_size, block_size.next_multiple_of(4));
                let decoded = decode_all(&entry, layout, n, &what).expect("decodes");
                assert!(decoded == data, "{what}");
            }
        }
        if n >= 64 {
            check_flips(layout, &data, 1, 64, n as u64);
        }
    }
}
