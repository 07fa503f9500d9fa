//! CPU decoders of coded entries.
//!
//! [`decode_reference`] is the oracle: short, lane after lane, every read checked. Every other
//! decoder ([`decode_fast`], the GPU kernels) must produce the same bytes and report the same
//! corruption. A lane decodes correctly only if it ends exactly at its last word with the state
//! back at `RANS_L` (the encoder's initial state): both are checked, so a damaged stream that
//! slips past the entry checksum is still caught here.
//!
//! [`decode_fast`] runs the best [`CpuKernel`] of this CPU ([`CpuKernel::best`]): AVX-512 or AVX2
//! on x86-64 (detected at run time), a portable scalar kernel elsewhere (wasm, ARM, old x86).
//! [`crate::CpuDecoder::Kernel`] runs a chosen kernel, which is how the tests compare every kernel with the
//! reference.

use crate::codec::{lane_value_count, CodedEntry, DecodeTables};
use crate::params::{LANES, PROB_SCALE, RANS_L};
use crate::planes::{join16, join32, PlaneLayout};
use crate::rans::{decode_step, PackedSlot};
use crate::{Error, Result};

#[cfg(target_arch = "x86_64")]
mod x86;

/// Most words an entry may hold for the SIMD kernels, which keep word indices in `i32` lanes.
/// Larger entries (over 2 GiB of words) are decoded by the scalar kernel.
const SIMD_MAX_WORDS: usize = 1 << 30;

fn lane_error(block: usize, lane: usize) -> Error {
    Error::corrupt(format!(
        "rANS lane {lane} of block {block} does not decode to its final state"
    ))
}

/// Words of the entry as `u16` (borrowed when aligned, else copied).
fn words_of<'a>(entry: &CodedEntry<'a>) -> std::borrow::Cow<'a, [u16]> {
    let bytes = entry.word_bytes();
    match bytemuck::try_cast_slice::<u8, u16>(bytes) {
        Ok(w) if cfg!(target_endian = "little") => std::borrow::Cow::Borrowed(w),
        _ => std::borrow::Cow::Owned(
            bytes
                .chunks_exact(2)
                .map(|c| u16::from_le_bytes([c[0], c[1]]))
                .collect(),
        ),
    }
}

/// Joins planes into little-endian values.
fn join_planes(layout: PlaneLayout, planes: &[Vec<u8>], out: &mut [u8]) {
    match layout {
        PlaneLayout::Float16 => {
            for (i, o) in out.chunks_exact_mut(2).enumerate() {
                o.copy_from_slice(&join16(planes[0][i], planes[1][i]).to_le_bytes());
            }
        }
        PlaneLayout::Float32 => {
            for (i, o) in out.chunks_exact_mut(4).enumerate() {
                let v = join32([planes[0][i], planes[1][i], planes[2][i], planes[3][i]]);
                o.copy_from_slice(&v.to_le_bytes());
            }
        }
        PlaneLayout::Byte => out.copy_from_slice(&planes[0]),
    }
}

/// Reference decoder: decodes `entry` into `out` (`value_count * value_bytes` bytes).
pub fn decode_reference(entry: &CodedEntry, out: &mut [u8]) -> Result<()> {
    let layout = entry.header.layout;
    let n = entry.value_count();
    assert_eq!(out.len(), n * layout.value_bytes(), "output size");
    let block = entry.header.block_size as usize;
    let tables = entry.decode_tables();
    let words = words_of(entry);
    let coded: Vec<usize> = (0..layout.plane_count())
        .filter(|&p| entry.raw_plane(p).is_none())
        .collect();
    let mut planes: Vec<Vec<u8>> = (0..layout.plane_count())
        .map(|p| {
            entry
                .raw_plane(p)
                .map_or_else(|| vec![0; n], |r| r.to_vec())
        })
        .collect();

    for b in 0..entry.geometry.block_count {
        let values = block.min(n - b * block);
        for l in 0..LANES {
            let lane = entry.lane(b, l);
            let mut state = lane.state;
            let mut next = lane.first_word;
            for j in 0..lane_value_count(values, l) {
                let i = b * block + l + j * LANES;
                for &p in &coded {
                    // Plane 1's table depends on the value's plane-0 byte (decoded or raw).
                    let table = if p == 1 {
                        tables.plane1(planes[0][i])
                    } else {
                        tables.plane(p)
                    };
                    let (sym, x) = decode_step(state, table[(state % PROB_SCALE) as usize]);
                    planes[p][i] = sym;
                    state = x;
                    if state < RANS_L {
                        if next == lane.end_word {
                            return Err(lane_error(b, l));
                        }
                        state = (state << 16) | words[next] as u32;
                        next += 1;
                    }
                }
            }
            if state != RANS_L || next != lane.end_word {
                return Err(lane_error(b, l));
            }
        }
    }
    join_planes(layout, &planes, out);
    Ok(())
}

/// A block decoding kernel of [`crate::CpuDecoder::Kernel`]. All kernels produce the same bytes and reject
/// the same entries as [`crate::CpuDecoder::Reference`]; they differ only in speed and in the CPUs they run
/// on ([`CpuKernel::is_available`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CpuKernel {
    /// Portable Rust: the 32 lanes of a block step together, branch-free. Runs everywhere.
    Scalar,
    /// x86-64 AVX2: the lanes as four 8-lane vectors, table slots and refill words gathered.
    Avx2,
    /// x86-64 AVX-512F: the lanes as two 16-lane vectors.
    Avx512,
}

impl CpuKernel {
    /// Every kernel, available here or not, in order of preference (the last available wins).
    pub const ALL: [CpuKernel; 3] = [CpuKernel::Scalar, CpuKernel::Avx2, CpuKernel::Avx512];

    /// Whether this CPU (checked at run time) can run the kernel.
    pub fn is_available(self) -> bool {
        match self {
            CpuKernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            CpuKernel::Avx2 => std::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            CpuKernel::Avx512 => std::is_x86_feature_detected!("avx512f"),
            #[cfg(not(target_arch = "x86_64"))]
            _ => false,
        }
    }

    /// The kernels this CPU can run, in order of preference.
    pub fn available() -> Vec<CpuKernel> {
        Self::ALL.into_iter().filter(|k| k.is_available()).collect()
    }

    /// The preferred kernel this CPU can run (AVX-512, else AVX2, else scalar): what
    /// [`crate::CpuDecoder::Fast`] uses.
    pub fn best() -> CpuKernel {
        Self::ALL
            .into_iter()
            .rev()
            .find(|k| k.is_available())
            .unwrap_or(CpuKernel::Scalar)
    }

    /// Short lower-case name ("scalar", "avx2", "avx512").
    pub fn name(self) -> &'static str {
        match self {
            CpuKernel::Scalar => "scalar",
            CpuKernel::Avx2 => "avx2",
            CpuKernel::Avx512 => "avx512",
        }
    }
}

/// What the fast decoder needs of one entry, shared by all blocks.
struct FastCtx<'e> {
    layout: PlaneLayout,
    n: usize,
    block: usize,
    /// Bit `p` set: plane `p` is coded.
    coded_mask: u8,
    /// The decode tables.
    tables: DecodeTables,
    /// Raw bytes of each raw plane, indexed by plane (empty for coded planes).
    raw: [&'e [u8]; 4],
    /// The words as `u16`, for the scalar kernel (empty when a SIMD kernel decodes).
    words: std::borrow::Cow<'e, [u16]>,
    /// The word section, for the SIMD kernels.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    word_src: &'e [u8],
    kernel: CpuKernel,
}

/// Fast decoder: [`crate::CpuDecoder::Kernel`] with the best kernel of this CPU ([`CpuKernel::best`]).
/// Bit-identical to [`decode_reference`], and rejects the same entries.
pub fn decode_fast(entry: &CodedEntry, out: &mut [u8], parallel: bool) -> Result<()> {
    decode_fast_with(CpuKernel::best(), entry, out, parallel)
}

/// Fast decoder with a chosen kernel: blocks in parallel on the current rayon pool (or serially
/// with `parallel = false`; always serially on wasm); within a block the 32 lanes advance
/// together, branch-free. Bit-identical to [`decode_reference`], and rejects the same entries.
///
/// Fails with [`Error::Invalid`] when the CPU cannot run `kernel` ([`CpuKernel::is_available`]).
/// Entries with more than 2^30 words are decoded by the scalar kernel whatever `kernel` says.
pub fn decode_fast_with(
    kernel: CpuKernel,
    entry: &CodedEntry,
    out: &mut [u8],
    parallel: bool,
) -> Result<()> {
    decode_fast_blocks(kernel, entry, 0..entry.geometry.block_count, out, parallel)
}

/// [`decode_fast_with`] for blocks `blocks` of `entry` only, into `out`: exactly those blocks'
/// decoded bytes (the last block may be short). Lets a host decode a tensor larger than its
/// memory in pieces.
pub fn decode_fast_blocks(
    kernel: CpuKernel,
    entry: &CodedEntry,
    blocks: std::ops::Range<usize>,
    out: &mut [u8],
    parallel: bool,
) -> Result<()> {
    if !kernel.is_available() {
        return Err(Error::invalid(format!(
            "CPU kernel {} is not available on this CPU",
            kernel.name()
        )));
    }
    let layout = entry.header.layout;
    let n = entry.value_count();
    let block = entry.header.block_size as usize;
    assert!(
        blocks.end <= entry.geometry.block_count,
        "blocks of the entry"
    );
    let first_value = blocks.start * block;
    let end_value = (blocks.end * block).min(n).max(first_value);
    assert_eq!(
        out.len(),
        (end_value - first_value) * layout.value_bytes(),
        "output size"
    );
    let word_count = entry.header.words_count as usize;
    let kernel = if word_count > SIMD_MAX_WORDS {
        CpuKernel::Scalar
    } else {
        kernel
    };
    let tables = entry.decode_tables();
    let mut raw: [&[u8]; 4] = [&[]; 4];
    for (p, r) in raw.iter_mut().enumerate().take(layout.plane_count()) {
        if let Some(plane) = entry.raw_plane(p) {
            *r = plane;
        }
    }
    let ctx = FastCtx {
        layout,
        n,
        block: entry.header.block_size as usize,
        coded_mask: entry.header.coded_mask,
        tables,
        raw,
        words: if kernel == CpuKernel::Scalar || layout == PlaneLayout::Byte {
            words_of(entry)
        } else {
            std::borrow::Cow::Borrowed(&[])
        },
        word_src: entry.word_bytes(),
        kernel,
    };
    let block_bytes = ctx.block * layout.value_bytes();
    let run = |(b, chunk): (usize, &mut [u8])| ctx.decode_block(entry, blocks.start + b, chunk);
    #[cfg(all(feature = "parallel", not(target_arch = "wasm32")))]
    if parallel {
        use rayon::prelude::*;
        return out
            .par_chunks_mut(block_bytes)
            .enumerate()
            .try_for_each(run);
    }
    let _ = parallel;
    out.chunks_mut(block_bytes).enumerate().try_for_each(run)
}

/// One block's lane directory: initial state, first word and end word of each lane.
struct BlockLanes {
    state: [u32; LANES],
    next: [usize; LANES],
    end: [usize; LANES],
}

impl BlockLanes {
    fn read(entry: &CodedEntry, b: usize) -> BlockLanes {
        let mut lanes = BlockLanes {
            state: [0; LANES],
            next: [0; LANES],
            end: [0; LANES],
        };
        for l in 0..LANES {
            let r = entry.lane(b, l);
            (lanes.state[l], lanes.next[l], lanes.end[l]) = (r.state, r.first_word, r.end_word);
        }
        lanes
    }

    /// The end-of-lane check of [`decode_reference`] on the final states and word positions.
    fn check(&self, b: usize, state: &[u32; LANES], next: &[usize; LANES]) -> Result<()> {
        for l in 0..LANES {
            if state[l] != RANS_L || next[l] != self.end[l] {
                return Err(lane_error(b, l));
            }
        }
        Ok(())
    }
}

impl FastCtx<'_> {
    fn decode_block(&self, entry: &CodedEntry, b: usize, out: &mut [u8]) -> Result<()> {
        let lanes = BlockLanes::read(entry, b);
        match (self.kernel, self.layout) {
            // One-byte values have no SIMD kernel (yet): the scalar one decodes them.
            (_, PlaneLayout::Byte) => self.decode_block_scalar(&lanes, b, out),
            #[cfg(target_arch = "x86_64")]
            (CpuKernel::Avx2 | CpuKernel::Avx512, _) => x86::decode_block(self, &lanes, b, out),
            _ => self.decode_block_scalar(&lanes, b, out),
        }
    }

    fn decode_block_scalar(&self, lanes: &BlockLanes, b: usize, out: &mut [u8]) -> Result<()> {
        match self.layout {
            PlaneLayout::Float16 => self.scalar_block::<2>(lanes, b, out),
            PlaneLayout::Float32 => self.scalar_block::<4>(lanes, b, out),
            PlaneLayout::Byte => self.scalar_block::<1>(lanes, b, out),
        }
    }

    /// The scalar kernel for `P` planes: lanes in groups of [`SCALAR_GROUP`], each group's
    /// states and word positions in registers while it decodes all its values, so the group's
    /// independent lanes overlap their latencies.
    fn scalar_block<const P: usize>(
        &self,
        lanes: &BlockLanes,
        b: usize,
        out: &mut [u8],
    ) -> Result<()> {
        let start = b * self.block;
        let values = self.block.min(self.n - start);
        // A lane that runs past its end reads a clamped word (0 when there are none); the
        // end-of-lane check catches it, as the reference would have.
        let words: &[u16] = if self.words.is_empty() {
            &[0]
        } else {
            &self.words
        };
        let tables: [Option<&[PackedSlot; PROB_SCALE as usize]>; P] = std::array::from_fn(|p| {
            (self.coded_mask & (1 << p) != 0).then(|| self.tables.plane(p))
        });
        let tables1 = &self.tables;
        let raw: [&[u8]; P] = std::array::from_fn(|p| self.raw[p]);
        let (mut state, mut next) = (lanes.state, lanes.next);
        // Value `l + LANES * j` of the block: plane bytes of lane l's value j. Plane 1's table
        // is chosen by the value's plane-0 byte.
        let value = |x: &mut u32, pos: &mut usize, i: usize| -> [u8; P] {
            let mut planes = [0u8; P];
            for p in 0..P {
                planes[p] = match tables[p] {
                    Some(_) if p == 1 => {
                        let table = tables1.plane1(planes[0]).try_into().expect("table size");
                        scalar_step(x, pos, table, words)
                    }
                    Some(table) => scalar_step(x, pos, table, words),
                    None => raw[p][start + i],
                };
            }
            planes
        };
        let store = |out: &mut [u8], i: usize, planes: [u8; P]| {
            let o = &mut out[P * i..][..P];
            if P == 1 {
                o[0] = planes[0];
            } else if P == 2 {
                o.copy_from_slice(&join16(planes[0], planes[1]).to_le_bytes());
            } else {
                let v = join32([planes[0], planes[1], planes[2], planes[3]]);
                o.copy_from_slice(&v.to_le_bytes());
            }
        };
        for l0 in (0..LANES).step_by(SCALAR_GROUP) {
            let mut x: [u32; SCALAR_GROUP] = std::array::from_fn(|k| state[l0 + k]);
            let mut pos: [usize; SCALAR_GROUP] = std::array::from_fn(|k| next[l0 + k]);
            // Lanes hold non-increasing numbers of values: all lanes of the group hold the
            // first `common` ones, the first lanes of the group may hold one more.
            let common = lane_value_count(values, l0 + SCALAR_GROUP - 1);
            for j in 0..common {
                let base = l0 + j * LANES;
                for k in 0..SCALAR_GROUP {
                    let planes = value(&mut x[k], &mut pos[k], base + k);
                    store(out, base + k, planes);
                }
            }
            for k in 0..SCALAR_GROUP {
                if lane_value_count(values, l0 + k) > common {
                    let i = l0 + k + common * LANES;
                    let planes = value(&mut x[k], &mut pos[k], i);
                    store(out, i, planes);
                }
                (state[l0 + k], next[l0 + k]) = (x[k], pos[k]);
            }
        }
        lanes.check(b, &state, &next)
    }
}

/// Lanes the scalar kernel decodes together.
const SCALAR_GROUP: usize = 4;
const _: () = assert!(LANES.is_multiple_of(SCALAR_GROUP));

/// One branch-free decode step of one lane: the symbol, with `state` and `next` advanced (a
/// lane past its end reads the next lanes' words, or the section's last word past its end; the
/// end-of-lane check catches it).
#[inline(always)]
fn scalar_step(
    state: &mut u32,
    next: &mut usize,
    table: &[PackedSlot; PROB_SCALE as usize],
    words: &[u16],
) -> u8 {
    let (sym, x) = decode_step(*state, table[(*state % PROB_SCALE) as usize]);
    let refill = x < RANS_L;
    let word = words[(*next).min(words.len() - 1)] as u32;
    *state = if refill { (x << 16) | word } else { x };
    *next += refill as usize;
    sym
}
