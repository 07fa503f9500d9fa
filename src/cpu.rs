//! CPU decoders of coded entries.
//!
//! [`decode_reference`] is the oracle: short, lane after lane, every read checked. Every other
//! decoder ([`decode_fast`], the GPU kernels) must produce the same bytes and report the same
//! corruption. A lane decodes correctly only if it ends exactly at its last word with the state
//! back at `RANS_L` (the encoder's initial state): both are checked, so a damaged stream that
//! slips past the entry checksum is still caught here.

use crate::codec::{lane_value_count, CodedEntry};
use crate::params::{LANES, PROB_SCALE, RANS_L};
use crate::planes::{join16, join32, PlaneLayout};
use crate::rans::{decode_step, PackedSlot};
use crate::{Error, Result};

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
                for (&p, table) in coded.iter().zip(&tables) {
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

/// What the fast decoder needs of one entry, shared by all blocks.
struct FastCtx<'e> {
    layout: PlaneLayout,
    n: usize,
    block: usize,
    tables: Vec<Vec<PackedSlot>>,
    /// Coded planes, in plane order.
    coded: Vec<usize>,
    /// Raw planes: (plane, bytes).
    raw: Vec<(usize, &'e [u8])>,
    words: std::borrow::Cow<'e, [u16]>,
}

/// Fast decoder: blocks in parallel on the current rayon pool (or serially with
/// `parallel = false`); within a block the lanes advance together so their independent state
/// updates overlap, with branch-free renormalization. Bit-identical to [`decode_reference`].
pub fn decode_fast(entry: &CodedEntry, out: &mut [u8], parallel: bool) -> Result<()> {
    let layout = entry.header.layout;
    let n = entry.value_count();
    assert_eq!(out.len(), n * layout.value_bytes(), "output size");
    let ctx = FastCtx {
        layout,
        n,
        block: entry.header.block_size as usize,
        tables: entry.decode_tables(),
        coded: (0..layout.plane_count())
            .filter(|&p| entry.raw_plane(p).is_none())
            .collect(),
        raw: (0..layout.plane_count())
            .filter_map(|p| entry.raw_plane(p).map(|r| (p, r)))
            .collect(),
        words: words_of(entry),
    };
    let block_bytes = ctx.block * layout.value_bytes();
    let run = |(b, chunk): (usize, &mut [u8])| decode_block(&ctx, entry, b, chunk);
    #[cfg(not(target_arch = "wasm32"))]
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

fn decode_block(ctx: &FastCtx, entry: &CodedEntry, b: usize, out: &mut [u8]) -> Result<()> {
    let start = b * ctx.block;
    let values = ctx.block.min(ctx.n - start);
    // A lane that runs past its end reads a clamped word (0 when there are none); the end-of-lane
    // check catches it.
    let words: &[u16] = if ctx.words.is_empty() {
        &[0]
    } else {
        &ctx.words
    };
    let last_word = words.len() - 1;
    let mut state = [0u32; LANES];
    let mut next = [0usize; LANES];
    let mut end = [0usize; LANES];
    for l in 0..LANES {
        let r = entry.lane(b, l);
        (state[l], next[l], end[l]) = (r.state, r.first_word, r.end_word);
    }
    // syms[p][l]: plane p of lane l's current value.
    let mut syms = [[0u8; LANES]; 4];
    for base in (0..values).step_by(LANES) {
        let lanes = LANES.min(values - base);
        for (&p, table) in ctx.coded.iter().zip(&ctx.tables) {
            let table: &[PackedSlot; PROB_SCALE as usize] =
                table.as_slice().try_into().expect("table size");
            for l in 0..lanes {
                let (sym, x) = decode_step(state[l], table[(state[l] % PROB_SCALE) as usize]);
                syms[p][l] = sym;
                let refill = x < RANS_L;
                let word = words[next[l].min(last_word)] as u32;
                state[l] = if refill { (x << 16) | word } else { x };
                next[l] += refill as usize;
            }
        }
        for &(p, raw) in &ctx.raw {
            syms[p][..lanes].copy_from_slice(&raw[start + base..][..lanes]);
        }
        match ctx.layout {
            PlaneLayout::Float16 => {
                let dst = &mut out[2 * base..][..2 * lanes];
                for (l, o) in dst.chunks_exact_mut(2).enumerate() {
                    o.copy_from_slice(&join16(syms[0][l], syms[1][l]).to_le_bytes());
                }
            }
            PlaneLayout::Float32 => {
                let dst = &mut out[4 * base..][..4 * lanes];
                for (l, o) in dst.chunks_exact_mut(4).enumerate() {
                    let v = join32([syms[0][l], syms[1][l], syms[2][l], syms[3][l]]);
                    o.copy_from_slice(&v.to_le_bytes());
                }
            }
        }
    }
    for l in 0..LANES {
        if state[l] != RANS_L || next[l] != end[l] {
            return Err(lane_error(b, l));
        }
    }
    Ok(())
}
