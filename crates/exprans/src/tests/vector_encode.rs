//! The vector encoder (AVX2 on x86-64 CPUs that have it) writes exactly the scalar encoder's
//! bytes: every layout, every plane subset, tiny to largest blocks, lengths that are not
//! multiples of the lanes, and plane 1 with context classes. Where the CPU has no vector encoder
//! both runs take the scalar path and the test checks nothing more than the others do.

use super::cpu_decode::build_entry;
use crate::codec::{encode_planes, encode_with_kernel, EncodeOptions, EntryHeader};
use crate::params::MAX_BLOCK_SIZE;
use crate::planes::{join16, join32, PlaneLayout};

use exprans_testkit::Rng;

const LAYOUTS: [PlaneLayout; 3] = [
    PlaneLayout::Float16,
    PlaneLayout::Float32,
    PlaneLayout::Byte,
];

/// Values whose planes are skewed (plane 0 most, like exponents), with plane 1's distribution
/// depending on plane 0 when `context` (so that plane 1 gets several context classes on tensors
/// of 2^14 values or more).
fn values(layout: PlaneLayout, n: usize, context: bool, seed: u64) -> Vec<u8> {
    let mut rng = Rng(seed | 1);
    let mut out = Vec::with_capacity(n * layout.value_bytes());
    for _ in 0..n {
        let r = rng.next_u64();
        // A geometric-ish exponent around 120, a skewed mantissa, uniform low bytes.
        let p0 = 120 + (r % 256).trailing_zeros().min(9) as u8 + (r >> 8) as u8 % 2;
        let m = (r >> 16) as u8;
        let p1 = if context && p0 % 2 == 1 {
            // A narrow mantissa for odd exponents, a wide one for even.
            m % 8
        } else {
            m & (m >> 1) | 0x40
        };
        let low = [(r >> 32) as u8, (r >> 40) as u8 % 32];
        match layout {
            PlaneLayout::Float16 => out.extend_from_slice(&join16(p0, p1).to_le_bytes()),
            PlaneLayout::Float32 => {
                out.extend_from_slice(&join32([p0, p1, low[0], low[1]]).to_le_bytes())
            }
            PlaneLayout::Byte => out.push(p0 ^ (m & 0x81)),
        }
    }
    out
}

/// Codes `data` with the planes of every mask, scalar and vector, and compares the bytes (and
/// with `build_entry` when `reference`). Returns the most context classes plane 1 got.
fn check(layout: PlaneLayout, data: &[u8], block_size: u32, reference: bool, what: &str) -> u8 {
    let mut classes = 0;
    for mask in 1..1u8 << layout.plane_count() {
        let max_classes = crate::codec::ENCODER_MAX_CLASSES;
        let scalar = encode_planes(layout, data, block_size, mask, max_classes, false).unwrap();
        let vector = encode_planes(layout, data, block_size, mask, max_classes, true).unwrap();
        assert!(
            scalar == vector,
            "{what} mask {mask:#b}: vector bytes differ"
        );
        if reference {
            let block = EntryHeader::parse(&scalar).unwrap().block_size;
            assert!(
                scalar == build_entry(2, layout, data, mask, block),
                "{what} mask {mask:#b}: differs from the straightforward encoder"
            );
        }
        classes = classes.max(EntryHeader::parse(&scalar).unwrap().classes);
    }
    // And with the planes `encode` chooses.
    for fast in [false, true] {
        let opts = EncodeOptions {
            block_size,
            fast,
            ..EncodeOptions::default()
        };
        let scalar = encode_with_kernel(layout, data, &opts, false).unwrap();
        let vector = encode_with_kernel(layout, data, &opts, true).unwrap();
        assert!(
            scalar == vector,
            "{what} fast={fast}: vector encode differs"
        );
    }
    classes
}

#[test]
fn vector_encoder_gives_the_scalar_bytes() {
    for layout in LAYOUTS {
        for n in [1, 2, 5, 31, 32, 33, 63, 64, 65, 100, 1000, 4097] {
            let data = values(layout, n, false, n as u64);
            for block_size in [2, 4, 66, 1000, 4096, 1 << 17, MAX_BLOCK_SIZE] {
                let what = format!("{layout:?} n={n} block={block_size}");
                check(layout, &data, block_size, n <= 100, &what);
            }
        }
    }
}

#[test]
fn vector_encoder_gives_the_scalar_bytes_with_context_classes() {
    for layout in [PlaneLayout::Float16, PlaneLayout::Float32] {
        let n = 40_000 + 13;
        let data = values(layout, n, true, 7);
        for block_size in [66, 4096, 1 << 17] {
            let what = format!("{layout:?} context n={n} block={block_size}");
            let classes = check(layout, &data, block_size, true, &what);
            assert!(classes > 1, "{what}: plane 1 got one class");
        }
    }
}

#[test]
fn vector_encoder_gives_the_scalar_bytes_in_the_largest_blocks() {
    for layout in LAYOUTS {
        // Two largest blocks and a partial one (not a multiple of the lanes).
        let n = 2 * MAX_BLOCK_SIZE as usize + 1001;
        let data = values(layout, n, true, 11);
        let mask = (1u8 << layout.plane_count()) - 1;
        let max_classes = crate::codec::ENCODER_MAX_CLASSES;
        let what = format!("{layout:?} n={n}");
        let scalar = encode_planes(layout, &data, MAX_BLOCK_SIZE, mask, max_classes, false);
        let vector = encode_planes(layout, &data, MAX_BLOCK_SIZE, mask, max_classes, true);
        assert!(
            scalar.unwrap() == vector.unwrap(),
            "{what}: vector bytes differ"
        );
    }
}
