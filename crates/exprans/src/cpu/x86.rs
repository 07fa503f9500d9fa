//! AVX2 and AVX-512 block kernels of [`super::decode_fast_with`].
//!
//! The 32 lanes of a block are `32 / W` vectors of `W` u32 lanes (W = 8 for AVX2, 16 for
//! AVX-512). One decode step of a vector: gather the table slots at `state & 0xfff`, compute the
//! next states (`freq * (state >> 12) + bias`), and where a state fell below `RANS_L` shift in
//! that lane's next word and advance its word position. Gathers cost about one cycle per
//! element on current x86 cores, so words are gathered two at a time: each lane holds its next
//! two words in `buf`, reloaded every two coded symbols (a lane uses at most one word per
//! symbol), so a refill never waits for memory. The kernel is written once, generic over the
//! vector type, and instantiated inside `#[target_feature]` functions so the intrinsics inline.
//!
//! Memory safety on hostile input (word contents are arbitrary; the directory was validated by
//! `CodedEntry::parse`):
//! - table gathers use `state & 0xfff`, always inside the 4096-slot tables; plane 1's class
//!   tables are chosen by a gather from the 256-entry `class_base` at the plane-0 byte (`& 0xff`),
//!   whose entries are the first slots of whole tables;
//! - word-pair gathers read at the lane's word position clamped to the last pair of the word
//!   section (entries with fewer than two words use a zero-padded local copy), so every read
//!   is inside the section; a lane that runs past its end reads garbage and fails the
//!   end-of-lane check, exactly as the reference fails it;
//! - full steps load raw planes and store values inside the block; the last, partial step goes
//!   through stack buffers.

use core::arch::x86_64::*;

use super::{BlockLanes, CpuKernel, FastCtx};
use crate::params::{LANES, PROB_BITS, PROB_SCALE, RANS_L};
use crate::planes::PlaneLayout;
use crate::Result;

/// A vector of u32 lanes with the operations the decoder needs. Every method is `unsafe`: the
/// CPU must support the vector's instruction set, and pointers must be valid as documented.
/// They are `#[inline(always)]` so that they inline into the `#[target_feature]` functions that
/// instantiate the kernel.
trait Lanes: Copy {
    /// Lanes per vector.
    const W: usize;
    /// A per-lane condition.
    type Mask: Copy;
    unsafe fn splat(x: u32) -> Self;
    /// Loads `W` u32 from `p` (unaligned).
    unsafe fn load(p: *const u32) -> Self;
    /// Stores `W` u32 at `p` (unaligned).
    unsafe fn store(self, p: *mut u32);
    /// Loads `W` bytes at `p`, zero-extended.
    unsafe fn load_u8(p: *const u8) -> Self;
    /// Stores the low 16 bits of each lane, `2 * W` bytes at `p`.
    unsafe fn store_u16(self, p: *mut u8);
    unsafe fn and(self, o: Self) -> Self;
    unsafe fn or(self, o: Self) -> Self;
    unsafe fn add(self, o: Self) -> Self;
    unsafe fn mullo(self, o: Self) -> Self;
    unsafe fn sub(self, o: Self) -> Self;
    unsafe fn min_u32(self, o: Self) -> Self;
    /// Per-lane shift right by `count` (below 32).
    unsafe fn shr_var(self, count: Self) -> Self;
    unsafe fn shr<const N: u32>(self) -> Self;
    unsafe fn shl<const N: u32>(self) -> Self;
    /// `table[idx[i]]` for every lane; `idx[i] < 2^31` and in bounds of `table`.
    unsafe fn gather(table: *const u32, idx: Self) -> Self;
    /// The u32 at byte `base + 2 * idx[i]` (words `idx[i]` and `idx[i] + 1`) for every lane
    /// (`idx[i] < 2^30`, all in bounds).
    unsafe fn gather_u16_pairs(base: *const u8, idx: Self) -> Self;
    /// Lanes below `RANS_L`.
    unsafe fn below_rans_l(self) -> Self::Mask;
    /// Lanes `first..first + W` that are below `count`.
    unsafe fn lanes_below(first: usize, count: usize) -> Self::Mask;
    unsafe fn mask_and(a: Self::Mask, b: Self::Mask) -> Self::Mask;
    /// `m ? a : b` per lane.
    unsafe fn select(m: Self::Mask, a: Self, b: Self) -> Self;
    /// In the lanes of `m`: shifts the low word of `buf` into `x` (`(x << 16) | word`), drops
    /// it from `buf` and advances `next`. Returns the new states (`x` elsewhere).
    unsafe fn refill(x: Self, m: Self::Mask, buf: &mut Self, next: &mut Self) -> Self;
}

#[derive(Clone, Copy)]
struct V8(__m256i);

impl Lanes for V8 {
    const W: usize = 8;
    type Mask = __m256i;
    #[inline(always)]
    unsafe fn splat(x: u32) -> Self {
        V8(_mm256_set1_epi32(x as i32))
    }
    #[inline(always)]
    unsafe fn load(p: *const u32) -> Self {
        V8(_mm256_loadu_si256(p.cast()))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut u32) {
        _mm256_storeu_si256(p.cast(), self.0)
    }
    #[inline(always)]
    unsafe fn load_u8(p: *const u8) -> Self {
        V8(_mm256_cvtepu8_epi32(_mm_loadl_epi64(p.cast())))
    }
    #[inline(always)]
    unsafe fn store_u16(self, p: *mut u8) {
        // Lanes hold values below 2^16, so the saturating pack is exact. packus works within
        // 128-bit halves: [v0..3, v0..3 | v4..7, v4..7]; the permute gathers v0..7 in the low half.
        let packed = _mm256_packus_epi32(self.0, self.0);
        let ordered = _mm256_permute4x64_epi64::<0b1000>(packed);
        _mm_storeu_si128(p.cast(), _mm256_castsi256_si128(ordered))
    }
    #[inline(always)]
    unsafe fn and(self, o: Self) -> Self {
        V8(_mm256_and_si256(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn or(self, o: Self) -> Self {
        V8(_mm256_or_si256(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        V8(_mm256_add_epi32(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn mullo(self, o: Self) -> Self {
        V8(_mm256_mullo_epi32(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        V8(_mm256_sub_epi32(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn min_u32(self, o: Self) -> Self {
        V8(_mm256_min_epu32(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn shr_var(self, count: Self) -> Self {
        V8(_mm256_srlv_epi32(self.0, count.0))
    }
    #[inline(always)]
    unsafe fn shr<const N: u32>(self) -> Self {
        // A constant shift count: compiles to an immediate shift.
        V8(_mm256_srlv_epi32(self.0, _mm256_set1_epi32(N as i32)))
    }
    #[inline(always)]
    unsafe fn shl<const N: u32>(self) -> Self {
        V8(_mm256_sllv_epi32(self.0, _mm256_set1_epi32(N as i32)))
    }
    #[inline(always)]
    unsafe fn gather(table: *const u32, idx: Self) -> Self {
        V8(_mm256_i32gather_epi32::<4>(table.cast(), idx.0))
    }
    #[inline(always)]
    unsafe fn gather_u16_pairs(base: *const u8, idx: Self) -> Self {
        V8(_mm256_i32gather_epi32::<2>(base.cast(), idx.0))
    }
    #[inline(always)]
    unsafe fn below_rans_l(self) -> __m256i {
        _mm256_cmpeq_epi32(_mm256_srli_epi32::<16>(self.0), _mm256_setzero_si256())
    }
    #[inline(always)]
    unsafe fn lanes_below(first: usize, count: usize) -> __m256i {
        let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        let limit = _mm256_set1_epi32(count.saturating_sub(first).min(8) as i32);
        _mm256_cmpgt_epi32(limit, idx)
    }
    #[inline(always)]
    unsafe fn mask_and(a: __m256i, b: __m256i) -> __m256i {
        _mm256_and_si256(a, b)
    }
    #[inline(always)]
    unsafe fn select(m: __m256i, a: Self, b: Self) -> Self {
        V8(_mm256_blendv_epi8(b.0, a.0, m))
    }
    #[inline(always)]
    unsafe fn refill(x: Self, m: __m256i, buf: &mut Self, next: &mut Self) -> Self {
        let refilled = x.shl::<16>().or(buf.and(V8::splat(0xffff)));
        // Lanes of `m` are all ones, i.e. -1.
        *next = V8(_mm256_sub_epi32(next.0, m));
        *buf = V8::select(m, buf.shr::<16>(), *buf);
        V8::select(m, refilled, x)
    }
}

#[derive(Clone, Copy)]
struct V16(__m512i);

impl Lanes for V16 {
    const W: usize = 16;
    type Mask = __mmask16;
    #[inline(always)]
    unsafe fn splat(x: u32) -> Self {
        V16(_mm512_set1_epi32(x as i32))
    }
    #[inline(always)]
    unsafe fn load(p: *const u32) -> Self {
        V16(_mm512_loadu_si512(p.cast()))
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut u32) {
        _mm512_storeu_si512(p.cast(), self.0)
    }
    #[inline(always)]
    unsafe fn load_u8(p: *const u8) -> Self {
        V16(_mm512_cvtepu8_epi32(_mm_loadu_si128(p.cast())))
    }
    #[inline(always)]
    unsafe fn store_u16(self, p: *mut u8) {
        _mm256_storeu_si256(p.cast(), _mm512_cvtepi32_epi16(self.0))
    }
    #[inline(always)]
    unsafe fn and(self, o: Self) -> Self {
        V16(_mm512_and_si512(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn or(self, o: Self) -> Self {
        V16(_mm512_or_si512(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn add(self, o: Self) -> Self {
        V16(_mm512_add_epi32(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn mullo(self, o: Self) -> Self {
        V16(_mm512_mullo_epi32(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn sub(self, o: Self) -> Self {
        V16(_mm512_sub_epi32(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn min_u32(self, o: Self) -> Self {
        V16(_mm512_min_epu32(self.0, o.0))
    }
    #[inline(always)]
    unsafe fn shr_var(self, count: Self) -> Self {
        V16(_mm512_srlv_epi32(self.0, count.0))
    }
    #[inline(always)]
    unsafe fn shr<const N: u32>(self) -> Self {
        V16(_mm512_srli_epi32::<N>(self.0))
    }
    #[inline(always)]
    unsafe fn shl<const N: u32>(self) -> Self {
        V16(_mm512_slli_epi32::<N>(self.0))
    }
    #[inline(always)]
    unsafe fn gather(table: *const u32, idx: Self) -> Self {
        V16(_mm512_i32gather_epi32::<4>(idx.0, table.cast()))
    }
    #[inline(always)]
    unsafe fn gather_u16_pairs(base: *const u8, idx: Self) -> Self {
        V16(_mm512_i32gather_epi32::<2>(idx.0, base.cast()))
    }
    #[inline(always)]
    unsafe fn below_rans_l(self) -> __mmask16 {
        _mm512_cmplt_epu32_mask(self.0, _mm512_set1_epi32(RANS_L as i32))
    }
    #[inline(always)]
    unsafe fn lanes_below(first: usize, count: usize) -> __mmask16 {
        let n = count.saturating_sub(first).min(16);
        ((1u32 << n) - 1) as u16
    }
    #[inline(always)]
    unsafe fn mask_and(a: __mmask16, b: __mmask16) -> __mmask16 {
        a & b
    }
    #[inline(always)]
    unsafe fn select(m: __mmask16, a: Self, b: Self) -> Self {
        V16(_mm512_mask_blend_epi32(m, b.0, a.0))
    }
    #[inline(always)]
    unsafe fn refill(x: Self, m: __mmask16, buf: &mut Self, next: &mut Self) -> Self {
        let word = _mm512_and_si512(buf.0, _mm512_set1_epi32(0xffff));
        *next = V16(_mm512_mask_add_epi32(
            next.0,
            m,
            next.0,
            _mm512_set1_epi32(1),
        ));
        *buf = V16(_mm512_mask_srli_epi32(buf.0, m, buf.0, 16));
        V16(_mm512_mask_or_epi32(
            x.0,
            m,
            _mm512_slli_epi32::<16>(x.0),
            word,
        ))
    }
}

/// Decodes block `b` into `out` with the kernel `ctx.kernel` (AVX2 or AVX-512).
pub(super) fn decode_block(
    ctx: &FastCtx,
    lanes: &BlockLanes,
    b: usize,
    out: &mut [u8],
) -> Result<()> {
    use PlaneLayout::{Float16, Float32};
    let mask = ctx.coded_mask;
    // SAFETY: `decode_fast_with` checked `ctx.kernel.is_available()`, i.e. the CPU features the
    // `#[target_feature]` functions enable; `block_*` check the rest (see their comments).
    unsafe {
        match (ctx.kernel, ctx.layout, mask) {
            (CpuKernel::Avx512, Float16, 0b01) => block_avx512::<false, 0b01>(ctx, lanes, b, out),
            (CpuKernel::Avx512, Float16, 0b11) => block_avx512::<false, 0b11>(ctx, lanes, b, out),
            (CpuKernel::Avx512, Float16, _) => block_avx512::<false, 0>(ctx, lanes, b, out),
            (CpuKernel::Avx512, Float32, 0b01) => block_avx512::<true, 0b01>(ctx, lanes, b, out),
            (CpuKernel::Avx512, Float32, _) => block_avx512::<true, 0>(ctx, lanes, b, out),
            (_, Float16, 0b01) => block_avx2::<false, 0b01>(ctx, lanes, b, out),
            (_, Float16, 0b11) => block_avx2::<false, 0b11>(ctx, lanes, b, out),
            (_, Float16, _) => block_avx2::<false, 0>(ctx, lanes, b, out),
            (_, Float32, 0b01) => block_avx2::<true, 0b01>(ctx, lanes, b, out),
            (_, Float32, _) => block_avx2::<true, 0>(ctx, lanes, b, out),
            (_, PlaneLayout::Byte, _) => unreachable!("one-byte values use the scalar kernel"),
        }
    }
}

/// SAFETY: the CPU must support AVX-512F.
#[target_feature(enable = "avx512f")]
unsafe fn block_avx512<const F32: bool, const MASK: u8>(
    ctx: &FastCtx,
    lanes: &BlockLanes,
    b: usize,
    out: &mut [u8],
) -> Result<()> {
    kernel::<V16, 2, F32, MASK>(ctx, lanes, b, out)
}

/// SAFETY: the CPU must support AVX2.
#[target_feature(enable = "avx2")]
unsafe fn block_avx2<const F32: bool, const MASK: u8>(
    ctx: &FastCtx,
    lanes: &BlockLanes,
    b: usize,
    out: &mut [u8],
) -> Result<()> {
    kernel::<V8, 4, F32, MASK>(ctx, lanes, b, out)
}

/// Per-vector decoder state: `NV` vectors of `V::W` lanes cover the block's 32 lanes.
struct State<V: Lanes, const NV: usize> {
    state: [V; NV],
    /// Word position of each lane (may run past the lane's end on corrupt input).
    next: [V; NV],
    /// The lane's next two words (low half first), loaded by [`Words::load`] every two coded
    /// symbols and shifted down by one word at each refill.
    buf: [V; NV],
}

/// Where the word pairs are read.
struct Words<V: Lanes> {
    /// Start of the words (at least 2 of them).
    base: *const u8,
    /// Index of the last pair: word count - 2.
    last_pair: V,
}

impl<V: Lanes> Words<V> {
    /// Loads the two words at each lane's `next` into `buf`: the pair at `min(next, last_pair)`,
    /// shifted down one word when clamping moved it one back (the lane is at its last word).
    /// Past that, `buf` holds garbage, and the lane fails its end check anyway.
    ///
    /// SAFETY: the pair at `min(next, last_pair)` is in bounds: reads stay in the word section.
    #[inline(always)]
    unsafe fn load<const NV: usize>(&self, st: &mut State<V, NV>) {
        for k in 0..NV {
            let at = st.next[k].min_u32(self.last_pair);
            let pair = V::gather_u16_pairs(self.base, at);
            let back = st.next[k].sub(at).min_u32(V::splat(1));
            st.buf[k] = pair.shr_var(back.shl::<4>());
        }
    }
}

/// The kernel. `F32`: layout Float32 (else Float16). `MASK`: the coded planes, or 0 to read
/// them from `ctx` (a constant mask lets the compiler drop the per-plane branches).
///
/// SAFETY: the CPU must support `V`'s instruction set; `lanes` is block `b`'s directory and
/// `out` its output (`values * value_bytes` bytes); `ctx` as built by `decode_fast_with`.
#[inline(always)]
unsafe fn kernel<V: Lanes, const NV: usize, const F32: bool, const MASK: u8>(
    ctx: &FastCtx,
    lanes: &BlockLanes,
    b: usize,
    out: &mut [u8],
) -> Result<()> {
    debug_assert_eq!(NV * V::W, LANES);
    debug_assert_eq!(F32, ctx.layout == PlaneLayout::Float32);
    let mask = if MASK != 0 { MASK } else { ctx.coded_mask };
    debug_assert_eq!(mask, ctx.coded_mask);
    let planes = if F32 { 4 } else { 2 };
    let value_bytes = planes;
    let start = b * ctx.block;
    let values = ctx.block.min(ctx.n - start);
    assert_eq!(out.len(), values * value_bytes, "block output size");

    // Word source: at least two words; with fewer, a zero-padded copy (the padding is never
    // used by a lane that passes its end check).
    let mut short = [0u8; 4];
    let word_src: &[u8] = if ctx.word_src.len() >= 4 {
        ctx.word_src
    } else {
        short[..ctx.word_src.len()].copy_from_slice(ctx.word_src);
        &short
    };
    let pairs = word_src.len() / 2 - 1;
    // Every read is `word_src[2 * i..2 * i + 4]` with `i <= pairs - 1`: in bounds.
    assert!(word_src.len().is_multiple_of(2) && pairs <= super::SIMD_MAX_WORDS);
    let words = Words::<V> {
        base: word_src.as_ptr(),
        last_pair: V::splat(pairs as u32 - 1),
    };

    // Directory: first words below 2^30 and lanes shorter than 2^20 words keep `next` in u32.
    let next32: [u32; LANES] = std::array::from_fn(|l| lanes.next[l] as u32);
    let mut st = State::<V, NV> {
        state: std::array::from_fn(|k| V::load(lanes.state.as_ptr().add(k * V::W))),
        next: std::array::from_fn(|k| V::load(next32.as_ptr().add(k * V::W))),
        buf: [V::splat(0); NV],
    };
    // Coded symbols left before `buf` must be reloaded (each uses at most one word).
    let mut buffered = 0;
    // Tables of coded planes (every table has PROB_SCALE slots), raw planes' bytes.
    let mut tables = [core::ptr::null::<u32>(); 4];
    for (p, table) in tables.iter_mut().enumerate().take(planes) {
        if mask & (1 << p) != 0 {
            *table = ctx.tables.plane(p).as_ptr();
        } else {
            assert_eq!(ctx.raw[p].len(), ctx.n);
        }
    }
    // Plane 1 with several classes: its table base comes from `class_base` per value. Every
    // entry is the first slot of a whole table of `slots`.
    let class_tables = (mask & 0b10 != 0
        && ctx
            .tables
            .class_base
            .iter()
            .any(|&c| c != ctx.tables.class_base[0]))
    .then(|| {
        assert!(ctx
            .tables
            .class_base
            .iter()
            .all(|&c| c as usize + PROB_SCALE as usize <= ctx.tables.slots.len()));
        (ctx.tables.slots.as_ptr(), ctx.tables.class_base.as_ptr())
    });

    let full_steps = values / LANES;
    let out_ptr = out.as_mut_ptr();
    for step in 0..full_steps {
        let base = step * LANES;
        let mut sym = [[V::splat(0); NV]; 4];
        for p in 0..planes {
            if mask & (1 << p) != 0 {
                if buffered == 0 {
                    words.load(&mut st);
                    buffered = 2;
                }
                buffered -= 1;
                let class = class_tables
                    .filter(|_| p == 1)
                    .map(|(slots, base)| (slots, base, sym[0]));
                decode_plane::<V, NV>(&mut st, &mut sym[p], tables[p], class, None);
            } else {
                // Values start + base .. start + base + 32 are in the block: in bounds.
                let raw = ctx.raw[p].as_ptr().add(start + base);
                sym[p] = std::array::from_fn(|k| V::load_u8(raw.add(k * V::W)));
            }
        }
        // Bytes (base .. base + 32) * value_bytes of `out`: in bounds (base + 32 <= values).
        store_values::<V, NV, F32>(&sym, out_ptr.add(base * value_bytes));
    }

    let base = full_steps * LANES;
    let rest = values - base;
    if rest > 0 {
        let active: [V::Mask; NV] = std::array::from_fn(|k| V::lanes_below(k * V::W, rest));
        let mut sym = [[V::splat(0); NV]; 4];
        for p in 0..planes {
            if mask & (1 << p) != 0 {
                if buffered == 0 {
                    words.load(&mut st);
                    buffered = 2;
                }
                buffered -= 1;
                let class = class_tables
                    .filter(|_| p == 1)
                    .map(|(slots, base)| (slots, base, sym[0]));
                decode_plane::<V, NV>(&mut st, &mut sym[p], tables[p], class, Some(&active));
            } else {
                let mut raw = [0u8; LANES];
                raw[..rest].copy_from_slice(&ctx.raw[p][start + base..][..rest]);
                sym[p] = std::array::from_fn(|k| V::load_u8(raw.as_ptr().add(k * V::W)));
            }
        }
        let mut buf = [0u8; 4 * LANES];
        store_values::<V, NV, F32>(&sym, buf.as_mut_ptr());
        out[base * value_bytes..].copy_from_slice(&buf[..rest * value_bytes]);
    }

    let mut state = [0u32; LANES];
    let mut next32 = [0u32; LANES];
    for k in 0..NV {
        st.state[k].store(state.as_mut_ptr().add(k * V::W));
        st.next[k].store(next32.as_mut_ptr().add(k * V::W));
    }
    lanes.check(b, &state, &next32.map(|x| x as usize))
}

/// Decodes one symbol of one plane in every lane (only the lanes of `active` when given),
/// refilling from `buf`; the lanes' packed table slots go to `sym` (symbol in the low byte).
///
/// With `class = (slots, class_base, plane0)`, each lane's table starts at slot
/// `class_base[plane0 & 0xff]` of `slots` instead of at `table` (plane 1's context classes).
///
/// SAFETY: `table` has `PROB_SCALE` slots; with `class`, `class_base` has 256 entries and each
/// is the start of `PROB_SCALE` slots of `slots`.
#[inline(always)]
unsafe fn decode_plane<V: Lanes, const NV: usize>(
    st: &mut State<V, NV>,
    sym: &mut [V; NV],
    table: *const u32,
    class: Option<(*const u32, *const u32, [V; NV])>,
    active: Option<&[V::Mask; NV]>,
) {
    let slot_mask = V::splat(PROB_SCALE - 1);
    for k in 0..NV {
        let s = st.state[k];
        // `s & 0xfff < PROB_SCALE`: in bounds (of the class's table, which starts at `base`).
        let slot = match class {
            Some((slots, class_base, plane0)) => {
                let base = V::gather(class_base, plane0[k].and(V::splat(0xff)));
                V::gather(slots, base.add(s.and(slot_mask)))
            }
            None => V::gather(table, s.and(slot_mask)),
        };
        sym[k] = slot;
        let freq_m1 = slot.shr::<8>().and(slot_mask);
        let bias = slot.shr::<{ 8 + PROB_BITS }>();
        // freq * (s >> 12) + bias = (freq - 1) * (s >> 12) + ((s >> 12) + bias); below 2^32.
        let hi = s.shr::<PROB_BITS>();
        let x = freq_m1.mullo(hi).add(hi.add(bias));
        let mut refill = x.below_rans_l();
        let x = match active {
            Some(active) => {
                refill = V::mask_and(refill, active[k]);
                // Inactive lanes keep their state.
                V::select(active[k], x, s)
            }
            None => x,
        };
        st.state[k] = V::refill(x, refill, &mut st.buf[k], &mut st.next[k]);
    }
}

/// Joins the planes of 32 values and stores them little-endian at `dst`
/// (`32 * value_bytes` bytes). Plane vectors may carry garbage above their low byte.
///
/// SAFETY: `dst` valid for `32 * value_bytes` bytes of writes.
#[inline(always)]
#[allow(clippy::needless_range_loop)] // vector k of several planes
unsafe fn store_values<V: Lanes, const NV: usize, const F32: bool>(
    sym: &[[V; NV]; 4],
    dst: *mut u8,
) {
    for k in 0..NV {
        // join16: sign from bit 7 of plane 1, plane 0 below it, low 7 bits of plane 1.
        let hi16 = sym[0][k]
            .shl::<7>()
            .and(V::splat(0x7f80))
            .or(sym[1][k].shl::<8>().and(V::splat(0x8000)))
            .or(sym[1][k].and(V::splat(0x7f)));
        if F32 {
            let v = hi16
                .shl::<16>()
                .or(sym[2][k].and(V::splat(0xff)).shl::<8>())
                .or(sym[3][k].and(V::splat(0xff)));
            v.store(dst.add(4 * k * V::W).cast());
        } else {
            hi16.store_u16(dst.add(2 * k * V::W));
        }
    }
}
