//! Built-in conformance vectors: every dtype and edge case of the codec, generated
//! deterministically, so any decoder (a user's GPU, driver and backend; the browser) can be
//! checked against the CPU reference decoder (`exprans selftest`).

use crate::codec::{self, CodedEntry, EncodeOptions};
use crate::planes::PlaneLayout;
use crate::Result;

/// One case: a float tensor and how to encode it.
#[derive(Clone, Debug)]
pub struct Vector {
    /// Case name, e.g. `"bf16/specials/block=66"`.
    pub name: String,
    /// Safetensors dtype.
    pub dtype: &'static str,
    /// Plane layout of the dtype.
    pub layout: PlaneLayout,
    /// Little-endian values.
    pub values: Vec<u8>,
    /// Encode options.
    pub options: EncodeOptions,
}

impl Vector {
    /// Number of values.
    pub fn value_count(&self) -> u64 {
        (self.values.len() / self.layout.value_bytes()) as u64
    }

    /// The coded entry of this case (every case is built to be coded).
    pub fn encode(&self) -> Result<Vec<u8>> {
        let (entry, _) = codec::encode(self.layout, &self.values, &self.options)?;
        entry.ok_or_else(|| crate::Error::invalid(format!("case {} did not code", self.name)))
    }

    /// Parses the coded entry.
    pub fn parse<'a>(&self, entry: &'a [u8]) -> Result<CodedEntry<'a>> {
        CodedEntry::parse(entry, self.layout, self.value_count())
    }
}

/// A deterministic xorshift64 generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Roughly normal with standard deviation about `scale`.
    fn normal(&mut self, scale: f32) -> f32 {
        let s: f32 = (0..4)
            .map(|_| (self.next() >> 40) as f32 / (1u64 << 24) as f32)
            .sum();
        (s - 2.0) * scale * 1.7
    }
}

fn encode_values(dtype: &str, values: &[f32]) -> Vec<u8> {
    match dtype {
        "BF16" => values
            .iter()
            .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
            .collect(),
        "F16" => values
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
        _ => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
    }
}

/// All conformance vectors. Every one produces a coded entry; together they cover every plane
/// layout, coded-plane combinations (both, exponent only, F32 with 1 to 4 coded planes), odd
/// counts, a last block of one value, single-symbol planes, NaN/Inf/subnormals/negative zero, and
/// many blocks with block sizes that are and are not multiples of the lane count.
pub fn vectors() -> Vec<Vector> {
    let mut rng = Rng(0x2545_f491_4f6c_dd1d);
    let weights: Vec<f32> = (0..20_001).map(|_| rng.normal(0.02)).collect();
    let specials: Vec<f32> = (0..9_000)
        .map(|i| match i % 9 {
            0 => f32::NAN,
            1 => f32::INFINITY,
            2 => f32::NEG_INFINITY,
            3 => -0.0,
            4 => 0.0,
            5 => 1e-40,
            6 => -3e-6,
            _ => weights[i],
        })
        .collect();
    let one_exponent: Vec<f32> = (0..8_192).map(|i| 1.0 + (i % 113) as f32 / 113.0).collect();
    let largest: Vec<f32> = (0..crate::params::MAX_BLOCK_SIZE as usize + 7)
        .map(|_| rng.normal(0.02))
        .collect();
    let mut out = Vec::new();
    for (dtype, layout) in [
        ("BF16", PlaneLayout::Float16),
        ("F16", PlaneLayout::Float16),
        ("F32", PlaneLayout::Float32),
    ] {
        let lower = dtype.to_lowercase();
        let mut add = |case: &str, values: &[f32], block_size: u32, fast: bool| {
            let mode = if fast { ",fast" } else { "" };
            out.push(Vector {
                name: format!("{lower}/{case}/block={block_size}{mode}"),
                dtype,
                layout,
                values: encode_values(dtype, values),
                options: EncodeOptions {
                    block_size,
                    fast,
                    rows_per_block: None,
                },
            });
        };
        let big = crate::params::DEFAULT_BLOCK_SIZE;
        add("weights", &weights, big, false);
        add("weights", &weights, big, true);
        add("weights", &weights, 4096, false);
        add("weights", &weights, 4_002, false);
        add("odd", &weights[..12_345], 2_222, false);
        add("specials", &specials, big, false);
        add("specials", &specials, 2048, true);
        add("equal", &[0.5; 5_000], big, false);
        add("equal", &[-0.0; 20_000], 2_000, false);
        add("one_exponent", &one_exponent, 512, false);
        add("last_block_one_value", &weights, 2_000, false);
        // The largest block the format allows: 16,384 values per lane, the longest loop any
        // kernel runs (drivers stop loops that are too long). Plane 1 by context classes.
        add(
            "largest_block",
            &largest,
            crate::params::MAX_BLOCK_SIZE,
            false,
        );
        if layout == PlaneLayout::Float32 {
            // Two and three coded planes: a zero low byte; BF16-representable values.
            let masked = |mask: u32| -> Vec<f32> {
                weights
                    .iter()
                    .map(|v| f32::from_bits(v.to_bits() & mask))
                    .collect()
            };
            add("low_byte_zero", &masked(0xffff_ff00), big, false);
            add("bf16_valued", &masked(0xffff_0000), 3_000, false);
        }
    }
    // One-byte values (FP8-like bytes: a skewed high nibble, uniform sign and low bits), one
    // plane.
    let bytes: Vec<u8> = (0..(crate::params::MAX_BLOCK_SIZE as usize + 5))
        .map(|_| {
            let r = rng.next();
            ((r % 64).trailing_zeros().min(7) as u8) << 4 | (r >> 40) as u8 & 0x83
        })
        .collect();
    for (case, n, block_size) in [
        ("weights", 20_001, crate::params::DEFAULT_BLOCK_SIZE),
        ("odd", 12_345, 2_224),
        ("many_blocks", 5_003, 1_024),
        ("largest_block", bytes.len(), crate::params::MAX_BLOCK_SIZE),
    ] {
        out.push(Vector {
            name: format!("u8/{case}/block={block_size}"),
            dtype: "U8",
            layout: PlaneLayout::Byte,
            values: bytes[..n].to_vec(),
            options: EncodeOptions {
                block_size,
                ..EncodeOptions::default()
            },
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_vector_codes_and_round_trips_on_the_cpu() {
        let vectors = vectors();
        assert!(vectors.len() >= 30);
        let mut f32_coded_planes = std::collections::BTreeSet::new();
        for v in vectors {
            let entry = v.encode().unwrap();
            let parsed = v.parse(&entry).unwrap();
            if v.layout == PlaneLayout::Float32 {
                f32_coded_planes.insert(parsed.header.coded_count());
            }
            let mut out = vec![0u8; v.values.len()];
            crate::cpu::decode_reference(&parsed, &mut out).unwrap();
            assert!(out == v.values, "{}", v.name);
        }
        assert_eq!(
            f32_coded_planes.into_iter().collect::<Vec<_>>(),
            [1, 2, 3, 4]
        );
    }
}
