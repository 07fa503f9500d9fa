//! Float split and join: how a float dtype's values become byte planes and back.
//!
//! Plane 0 always holds the 8 bits that start just below the sign bit (the exponent of BF16 and
//! F32; the 5 exponent bits and the 3 top mantissa bits of F16), the plane worth entropy coding.
//! The sign bit goes to the top of plane 1, next to the top mantissa bits. 16-bit values:
//!
//! ```text
//! value  = s eeeeeee e mmmmmmm          (bit 15 .. bit 0)
//! plane0 = eeeeeeee                     (value >> 7) & 0xff
//! plane1 = s mmmmmmm                    ((value >> 8) & 0x80) | (value & 0x7f)
//! ```
//!
//! 32-bit values: plane 0 = bits 30..23, plane 1 = sign | bits 22..16, plane 2 = bits 15..8,
//! plane 3 = bits 7..0. The top half of an F32 splits exactly like the BF16 it truncates to.
//!
//! One-byte values (FP8, I8, U8; version 2): one plane, the byte itself.

/// The plane layouts of the format (docs/FORMAT.md, "Plane layouts").
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PlaneLayout {
    /// BF16 and F16: two planes of one byte per value.
    Float16 = 1,
    /// F32: four planes of one byte per value.
    Float32 = 2,
    /// F8_E4M3, F8_E5M2, I8 and U8 (version 2 only): one plane, the value's byte.
    Byte = 3,
}

impl PlaneLayout {
    /// The layout for a safetensors dtype string, or `None` when the dtype is stored verbatim.
    pub fn for_dtype(dtype: &str) -> Option<PlaneLayout> {
        match dtype {
            "BF16" | "F16" => Some(PlaneLayout::Float16),
            "F32" => Some(PlaneLayout::Float32),
            "F8_E4M3" | "F8_E5M2" | "I8" | "U8" => Some(PlaneLayout::Byte),
            _ => None,
        }
    }

    /// Whether entries of this version may use the layout (version 1 knows only the float ones).
    pub fn in_version(self, version: u8) -> bool {
        version >= 2 || self != PlaneLayout::Byte
    }

    /// The layout with this format code.
    pub fn from_code(code: u8) -> Option<PlaneLayout> {
        match code {
            1 => Some(PlaneLayout::Float16),
            2 => Some(PlaneLayout::Float32),
            3 => Some(PlaneLayout::Byte),
            _ => None,
        }
    }

    /// Bytes per value, which is also the number of planes.
    pub const fn value_bytes(self) -> usize {
        match self {
            PlaneLayout::Float16 => 2,
            PlaneLayout::Float32 => 4,
            PlaneLayout::Byte => 1,
        }
    }

    /// Number of planes.
    pub const fn plane_count(self) -> usize {
        self.value_bytes()
    }

    /// Splits little-endian values into planes: `planes[p][i]` is plane `p` of value `i`.
    /// `data.len()` must be a multiple of [`PlaneLayout::value_bytes`]. Written to vectorize.
    pub fn split(self, data: &[u8]) -> Vec<Vec<u8>> {
        let n = data.len() / self.value_bytes();
        let mut planes = vec![vec![0u8; n]; self.plane_count()];
        match self {
            PlaneLayout::Float16 => {
                let [p0, p1] = &mut planes[..] else {
                    unreachable!("two planes")
                };
                for ((v, a), b) in data.chunks_exact(2).zip(p0).zip(p1) {
                    [*a, *b] = split16(u16::from_le_bytes([v[0], v[1]]));
                }
            }
            PlaneLayout::Float32 => {
                let [p0, p1, p2, p3] = &mut planes[..] else {
                    unreachable!("four planes")
                };
                for ((((v, a), b), c), d) in data.chunks_exact(4).zip(p0).zip(p1).zip(p2).zip(p3) {
                    [*a, *b, *c, *d] = split32(u32::from_le_bytes([v[0], v[1], v[2], v[3]]));
                }
            }
            PlaneLayout::Byte => planes[0].copy_from_slice(data),
        }
        planes
    }
}

/// Plane bytes of one 16-bit value.
#[inline(always)]
pub fn split16(v: u16) -> [u8; 2] {
    [(v >> 7) as u8, ((v >> 8) as u8 & 0x80) | (v as u8 & 0x7f)]
}

/// The 16-bit value with these plane bytes.
#[inline(always)]
pub fn join16(p0: u8, p1: u8) -> u16 {
    ((p1 as u16 & 0x80) << 8) | ((p0 as u16) << 7) | (p1 as u16 & 0x7f)
}

/// Plane bytes of one 32-bit value.
#[inline(always)]
pub fn split32(v: u32) -> [u8; 4] {
    let [hi0, hi1] = split16((v >> 16) as u16);
    [hi0, hi1, (v >> 8) as u8, v as u8]
}

/// The 32-bit value with these plane bytes.
#[inline(always)]
pub fn join32(p: [u8; 4]) -> u32 {
    (join16(p[0], p[1]) as u32) << 16 | (p[2] as u32) << 8 | p[3] as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn split_join_are_inverse_on_every_16_bit_value() {
        for v in 0..=u16::MAX {
            let [a, b] = split16(v);
            assert_eq!(join16(a, b), v);
        }
    }

    #[test]
    fn bf16_exponent_lands_in_plane_0() {
        // 1.0 in BF16 is 0x3f80: exponent 127.
        assert_eq!(split16(0x3f80), [127, 0]);
        // -0.0 keeps its sign in plane 1.
        assert_eq!(split16(0x8000), [0, 0x80]);
        assert_eq!(split32(0x3f80_1234), [127, 0, 0x12, 0x34]);
        assert_eq!(join32(split32(0xdead_beef)), 0xdead_beef);
    }
}
