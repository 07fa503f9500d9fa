//! AVX2 kernel of [`super::encode_block`]: a block's 32 lanes as vectors of 8 u32 lanes,
//! producing exactly the scalar encoder's states and words.
//!
//! One encoder step of a vector (docs/FORMAT.md section 4.5), each lane with its own symbol of
//! frequency `f` and start `c`:
//! - renormalization: where `x >= 2^20 f`, the lane emits `x & 0xffff` and `x >>= 16`;
//! - `x = (x / f) << 12 + x mod f + c`, computed as `x + c + (x / f) * (2^12 - f)` with the
//!   quotient from a 32-bit reciprocal multiply that is exact for every u32 state
//!   ([`Symbol`]).
//!
//! Symbols: per coded plane, a table of 64-bit [`Symbol`]s (256 per context class) built once
//! per entry. The 8 lanes' entries are loaded one by one (scalar byte and class loads) and put
//! together with shuffles: on the CPUs measured (AMD Zen 3) AVX2 gathers cost several times
//! more. Words: as in the scalar encoder, each lane writes its words backwards into its own
//! region of the scratch buffer, storing the candidate word and moving its slot down only when
//! the word is emitted (no branch on the data). The slots are a vector; two symbols' candidate
//! words go out as one u32 store per lane (see [`kernel`]). The block's last, partial step (the
//! lanes without their last value) runs first, on the scalar [`super::encode_step`].
//!
//! Memory safety: symbol tables of 256 entries per class are read at `class * 256 + byte` with
//! `class` below the class count (checked when the tables are built), the 256-entry class table
//! at a byte; plane bytes are read inside the block (checked once per block); each lane's word
//! slot stays inside its region (see [`Avx2Encoder::encode_block`]).

use core::arch::x86_64::*;

use super::{encode_step, CodedPlane};
use crate::params::{LANES, MAX_CLASSES, PROB_SCALE, RANS_L};

/// A symbol as the vector step reads it.
///
/// For `f >= 2`, with `l = ceil(log2 f)` (so `2^(l-1) < f <= 2^l`, `l >= 1`):
/// `magic = floor(2^32 * (2^l - f) / f) + 1` and `x / f = (t + ((x - t) >> 1)) >> (l - 1)`
/// with `t = (x * magic) >> 32`, for every u32 `x` (Granlund and Montgomery, "Division by
/// invariant integers using multiplication", 1994, figure 4.1). Proof: `m = 2^32 + magic =
/// floor(2^(32+l) / f) + 1`, so `m * f = 2^(32+l) + e` with `0 < e <= f`, and
/// `x * m / 2^(32+l) = x / f + x * e / (f * 2^(32+l))`. As `x < 2^32` and `e <= f <= 2^l`, the
/// error term is below `1 / f`, and `x / f` sits at least `1 / f` below the next integer: the
/// floor is `floor(x / f)`. Then `floor(x * m / 2^(32+l)) = floor((x + t) / 2^l)`, and
/// `floor((x + t) / 2) = t + floor((x - t) / 2)` (as `t <= x`): no intermediate overflows 32
/// bits. `magic` fits 32 bits: `2^l - f <= f - 2` (both even sides of `2^l < 2f`), so
/// `2^32 * (2^l - f) / f <= 2^32 - 2^33 / f`.
///
/// For `f = 1`: `magic = 2^32 - 1` and `l - 1` taken as 0 give `t = x - 1` (`x >= 1`) and a
/// quotient of `x - 1`; the bias adds the missing `2^12 - 1` (`(x - 1) * (2^12 - 1) + 2^12 - 1 =
/// x * (2^12 - 1)`).
///
/// `packed = cmpl | bias << 12 | shift << 25`: `cmpl = 2^12 - f` (below 2^12), `bias = start`
/// (plus `2^12 - 1` when `f = 1`; below 2^13), `shift = l - 1` (0 when `f = 1`; at most 11).
/// The renormalization test `x >= 2^20 f` is `(x >> 20) + cmpl >= 2^12` (`2^20 f` is a multiple
/// of `2^20`). Symbols that do not occur are all zero (never encoded).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Symbol {
    magic: u32,
    packed: u32,
}

impl Symbol {
    fn new(freq: u32, start: u32) -> Symbol {
        debug_assert!(freq <= PROB_SCALE && start + freq <= PROB_SCALE);
        let cmpl = PROB_SCALE - freq;
        match freq {
            0 => Symbol::default(),
            1 => Symbol {
                magic: u32::MAX,
                packed: cmpl | (start + PROB_SCALE - 1) << 12,
            },
            _ => {
                let l = u32::BITS - (freq - 1).leading_zeros();
                let magic = ((1u64 << 32) * ((1u64 << l) - freq as u64) / freq as u64 + 1) as u32;
                Symbol {
                    magic,
                    packed: cmpl | start << 12 | (l - 1) << 25,
                }
            }
        }
    }
}

/// One coded plane's tables.
struct PlaneTables {
    /// The symbol of byte `b` in class `c` at `c * 256 + b`: `magic | packed << 32`, 256 per
    /// class of the plane.
    symbols: Vec<u64>,
    /// Plane 1 with context classes: `class * 256` of each plane-0 byte, each below
    /// `symbols.len() - 255`.
    class_base: Option<Box<[u16; 256]>>,
}

/// The AVX2 encoder of one entry's coded planes.
pub(super) struct Avx2Encoder {
    planes: Vec<PlaneTables>,
}

impl Avx2Encoder {
    /// The encoder of `coded` (1 to 4 planes), or `None` when the CPU lacks AVX2.
    pub(super) fn new(coded: &[CodedPlane]) -> Option<Avx2Encoder> {
        if !std::is_x86_feature_detected!("avx2") || !(1..=4).contains(&coded.len()) {
            return None;
        }
        let planes = coded
            .iter()
            .map(|plane| {
                let classes = plane.context.map_or(1, |(_, map)| map.classes());
                assert!((1..=MAX_CLASSES).contains(&classes));
                let symbols = plane.tables[..classes]
                    .iter()
                    .flatten()
                    .map(|s| {
                        let sym = Symbol::new(s.freq(), s.start());
                        sym.magic as u64 | (sym.packed as u64) << 32
                    })
                    .collect();
                let class_base = plane.context.map(|(_, map)| {
                    Box::new(std::array::from_fn(|b| {
                        let class = map.class_of(b as u8);
                        assert!(class < classes, "class map");
                        (class * 256) as u16
                    }))
                });
                PlaneTables {
                    symbols,
                    class_base,
                }
            })
            .collect();
        Some(Avx2Encoder { planes })
    }

    /// Encodes the block of `values` values at `start` of `coded` (the planes [`Avx2Encoder::new`]
    /// was given), lane `l`'s words going backwards below `(l + 1) * region` of `words`: returns
    /// the lanes' final states and the start of each lane's words, as the scalar encoder does.
    ///
    /// A lane's word slot starts at `(l + 1) * region - 1` and moves down by at most one after
    /// each of its symbols, of which it has at most `region - 1`; a pair of symbols writes at its
    /// slot and the one below. So before the lane's symbol `k` (from 1) the slot is at least
    /// `(l + 1) * region - k`, and every store lands in `l * region + 1..(l + 1) * region`,
    /// inside the lane's region.
    pub(super) fn encode_block(
        &self,
        coded: &[CodedPlane],
        start: usize,
        values: usize,
        region: usize,
        words: &mut [u16],
    ) -> ([u32; LANES], [usize; LANES]) {
        assert_eq!(coded.len(), self.planes.len(), "planes of the encoder");
        assert!(values > 0 && region > values.div_ceil(LANES) * coded.len());
        assert!(words.len() >= LANES * region && LANES * region <= u32::MAX as usize);
        for plane in coded {
            assert!(start + values <= plane.bytes.len());
            if let Some((ctx, _)) = plane.context {
                assert!(start + values <= ctx.len());
            }
        }
        // SAFETY: `new` checked AVX2; the asserts above are what `kernel` needs.
        unsafe {
            match coded {
                [a] => block_avx2([a], self, start, values, region, words),
                [a, b] => block_avx2([a, b], self, start, values, region, words),
                [a, b, c] => block_avx2([a, b, c], self, start, values, region, words),
                [a, b, c, d] => block_avx2([a, b, c, d], self, start, values, region, words),
                _ => unreachable!("1 to 4 coded planes"),
            }
        }
    }
}

/// SAFETY: the CPU must support AVX2; the arguments as [`kernel`] needs them.
#[target_feature(enable = "avx2")]
unsafe fn block_avx2<const C: usize>(
    coded: [&CodedPlane; C],
    enc: &Avx2Encoder,
    start: usize,
    values: usize,
    region: usize,
    words: &mut [u16],
) -> ([u32; LANES], [usize; LANES]) {
    kernel(coded, enc, start, values, region, words)
}

/// Which lane of its 8 each element of a vector holds: the order in which [`symbols`] builds
/// its vectors.
const ORDER: [usize; 8] = [0, 1, 4, 5, 2, 3, 6, 7];

/// The block kernel (see [`Avx2Encoder::encode_block`]): the lanes 8 at a time, each 8 through
/// the whole block (one vector's steps overlap with the next symbols' loads and stores; more
/// vectors at once measured slower).
///
/// SAFETY: the CPU must support AVX2; `enc` was built from `coded`; every plane's bytes (and
/// context bytes) hold `start + values` values; `values > 0`; each lane has more word slots
/// than symbols (`region > steps * C`), and `words` holds `LANES * region < 2^32` of them.
#[inline(always)]
unsafe fn kernel<const C: usize>(
    coded: [&CodedPlane; C],
    enc: &Avx2Encoder,
    start: usize,
    values: usize,
    region: usize,
    words: &mut [u16],
) -> ([u32; LANES], [usize; LANES]) {
    let mut x = [RANS_L; LANES];
    let mut pos: [usize; LANES] = std::array::from_fn(|l| (l + 1) * region);
    // The partial last step first (values are encoded last first), on the scalar path.
    let full = values / LANES;
    let rest = values % LANES;
    if rest > 0 {
        let base = start + full * LANES;
        for plane in coded.iter().rev() {
            for l in 0..rest {
                encode_step(&mut x[l], &mut pos[l], words, plane.symbol(base + l));
            }
        }
    }
    let out = words.as_mut_ptr();
    let mut planes: [(&CodedPlane, &PlaneTables); C] = [(coded[0], &enc.planes[0]); C];
    for (c, plane) in planes.iter_mut().enumerate() {
        *plane = (coded[c], &enc.planes[c]);
    }
    // Symbol `s` of a lane's full steps, in coding order (value `full - 1` first, planes last
    // first), is of plane `C - 1 - s % C` of the step whose values start at `step_base(s)`.
    let symbols_count = full * C;
    let step_base = |s: usize| start + (full - 1 - s / C) * LANES;
    for lane0 in (0..LANES).step_by(8) {
        // Element i of the vectors is lane `lane0 + ORDER[i]`; each lane's next word slot is
        // the scalar encoder's `pos - 1`, below `LANES * region`.
        let mut xs = [0u32; 8];
        let mut slots = [0u32; 8];
        for i in 0..8 {
            xs[i] = x[lane0 + ORDER[i]];
            slots[i] = (pos[lane0 + ORDER[i]] - 1) as u32;
        }
        let mut xv = load(xs.as_ptr());
        let mut slot = load(slots.as_ptr());
        let mut s = 0;
        // Symbols two at a time: one u32 store per lane writes both candidate words.
        while s + 1 < symbols_count {
            let (m1, p1) = symbols(planes[C - 1 - s % C], step_base(s) + lane0);
            let (m2, p2) = symbols(planes[C - 1 - (s + 1) % C], step_base(s + 1) + lane0);
            let old = xv;
            let (x1, e1) = step(old, m1, p1);
            let e2;
            (xv, e2) = step(x1, m2, p2);
            // The first word goes to the slot when emitted (else the second goes there), the
            // second below it: a u32 at the word below the slot.
            let top = _mm256_blendv_epi8(x1, old, e1);
            let pair = _mm256_or_si256(
                _mm256_slli_epi32::<16>(top),
                _mm256_and_si256(x1, _mm256_set1_epi32(0xffff)),
            );
            scatter::<u32>(out, _mm256_add_epi32(slot, _mm256_set1_epi32(-1)), pair);
            // Emitting lanes (all ones, -1) move their slot down.
            slot = _mm256_add_epi32(_mm256_add_epi32(slot, e1), e2);
            s += 2;
        }
        if s < symbols_count {
            let (m, p) = symbols(planes[C - 1 - s % C], step_base(s) + lane0);
            let old = xv;
            let e;
            (xv, e) = step(old, m, p);
            scatter::<u16>(out, slot, old);
            slot = _mm256_add_epi32(slot, e);
        }
        store(xs.as_mut_ptr(), xv);
        store(slots.as_mut_ptr(), slot);
        for i in 0..8 {
            x[lane0 + ORDER[i]] = xs[i];
            pos[lane0 + ORDER[i]] = slots[i] as usize + 1;
        }
    }
    (x, pos)
}

/// The symbols (`magic`, `packed`) of values `base..base + 8` of a plane, in [`ORDER`].
///
/// SAFETY: AVX2; the values are inside the plane (and its context).
#[inline(always)]
unsafe fn symbols((plane, tables): (&CodedPlane, &PlaneTables), base: usize) -> (__m256i, __m256i) {
    let bytes = plane.bytes.as_ptr().add(base);
    let table = tables.symbols.as_ptr();
    let ctx = match (plane.context, tables.class_base.as_deref()) {
        (Some((ctx, _)), Some(class_base)) => Some((ctx.as_ptr().add(base), class_base)),
        _ => None,
    };
    let mut e = [_mm_setzero_si128(); 8];
    for (l, e) in e.iter_mut().enumerate() {
        let b = *bytes.add(l) as usize;
        // class * 256 + byte < classes * 256 = symbols.len().
        let i = match ctx {
            Some((ctx, class_base)) => class_base[*ctx.add(l) as usize] as usize + b,
            None => b,
        };
        *e = _mm_loadl_epi64(table.add(i).cast());
    }
    // [e0 e1 | e2 e3] and [e4 e5 | e6 e7]; the shuffles take the low (high) halves of both in
    // each 128-bit half: lanes 0 1 4 5 | 2 3 6 7.
    let lo = _mm256_inserti128_si256::<1>(
        _mm256_castsi128_si256(_mm_unpacklo_epi64(e[0], e[1])),
        _mm_unpacklo_epi64(e[2], e[3]),
    );
    let hi = _mm256_inserti128_si256::<1>(
        _mm256_castsi128_si256(_mm_unpacklo_epi64(e[4], e[5])),
        _mm_unpacklo_epi64(e[6], e[7]),
    );
    let (lo, hi) = (_mm256_castsi256_ps(lo), _mm256_castsi256_ps(hi));
    (
        _mm256_castps_si256(_mm256_shuffle_ps::<0b10_00_10_00>(lo, hi)),
        _mm256_castps_si256(_mm256_shuffle_ps::<0b11_01_11_01>(lo, hi)),
    )
}

/// Stores the low `T` (u16 or u32) of each element of `value` at word `at` of `out`.
///
/// SAFETY: AVX2; each store inside `out`.
#[inline(always)]
unsafe fn scatter<T: Copy>(out: *mut u16, at: __m256i, value: __m256i) {
    let mut ats = [0u32; 8];
    let mut values = [0u32; 8];
    store(ats.as_mut_ptr(), at);
    store(values.as_mut_ptr(), value);
    for i in 0..8 {
        let v = values[i];
        out.add(ats[i] as usize)
            .cast::<T>()
            .write_unaligned(*(&v as *const u32).cast::<T>());
    }
}

/// Loads 8 u32 from `p`.
///
/// SAFETY: AVX2; `p` valid for 32 bytes of reads.
#[inline(always)]
unsafe fn load(p: *const u32) -> __m256i {
    _mm256_loadu_si256(p.cast())
}

/// Stores 8 u32 at `p`.
///
/// SAFETY: AVX2; `p` valid for 32 bytes of writes.
#[inline(always)]
unsafe fn store(p: *mut u32, v: __m256i) {
    _mm256_storeu_si256(p.cast(), v)
}

/// One encoder step of 8 lanes with their symbols' `magic` and `packed` ([`Symbol`]): returns
/// the new states and the lanes that emit (all ones) their old state's low half. The new state
/// `q * 2^12 + x mod f + start` is below 2^32, so the wrapping 32-bit sums give it exactly.
///
/// SAFETY: AVX2.
#[inline(always)]
unsafe fn step(x: __m256i, magic: __m256i, packed: __m256i) -> (__m256i, __m256i) {
    let cmpl = _mm256_and_si256(packed, _mm256_set1_epi32(PROB_SCALE as i32 - 1));
    // (x >> 20) + cmpl < 2^13: a signed compare is exact.
    let emit = _mm256_cmpgt_epi32(
        _mm256_add_epi32(_mm256_srli_epi32::<20>(x), cmpl),
        _mm256_set1_epi32(PROB_SCALE as i32 - 1),
    );
    let x = _mm256_blendv_epi8(x, _mm256_srli_epi32::<16>(x), emit);
    // t = (x * magic) >> 32 per lane: even lanes, then odd lanes moved to even positions.
    let even = _mm256_srli_epi64::<32>(_mm256_mul_epu32(x, magic));
    let odd = _mm256_mul_epu32(_mm256_srli_epi64::<32>(x), _mm256_srli_epi64::<32>(magic));
    let t = _mm256_blend_epi32::<0b1010_1010>(even, odd);
    let q = _mm256_srlv_epi32(
        _mm256_add_epi32(t, _mm256_srli_epi32::<1>(_mm256_sub_epi32(x, t))),
        _mm256_srli_epi32::<25>(packed),
    );
    let bias = _mm256_and_si256(_mm256_srli_epi32::<12>(packed), _mm256_set1_epi32(0x1fff));
    let x = _mm256_add_epi32(_mm256_add_epi32(x, bias), _mm256_mullo_epi32(q, cmpl));
    (x, emit)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::PROB_BITS;
    use crate::rans::{encode_symbol, encode_table, FreqTable};
    use proptest::prelude::*;

    /// The vector step on 8 states with one symbol, or `None` without AVX2.
    fn vector_step(states: [u32; 8], sym: Symbol) -> Option<([u32; 8], [bool; 8])> {
        if !std::is_x86_feature_detected!("avx2") {
            return None;
        }
        #[target_feature(enable = "avx2")]
        unsafe fn run(states: [u32; 8], sym: Symbol) -> ([u32; 8], [bool; 8]) {
            let (x, emit) = step(
                load(states.as_ptr()),
                _mm256_set1_epi32(sym.magic as i32),
                _mm256_set1_epi32(sym.packed as i32),
            );
            let (mut xs, mut es) = ([0u32; 8], [0u32; 8]);
            store(xs.as_mut_ptr(), x);
            store(es.as_mut_ptr(), emit);
            (xs, es.map(|e| e != 0))
        }
        // SAFETY: AVX2 is available.
        Some(unsafe { run(states, sym) })
    }

    /// Checks the vector step on `states` against `encode_symbol` with a symbol of `freq` at
    /// `start`.
    fn check(states: &[u32], freq: u32, start: u32) {
        let mut freqs = [0u32; 256];
        freqs[0] = start;
        freqs[1] = freq;
        freqs[2] = PROB_SCALE - freq - start;
        let table = FreqTable::from_freqs(freqs).unwrap();
        let enc = encode_table(&table)[1];
        let sym = Symbol::new(freq, start);
        for chunk in states.chunks(8) {
            let mut lanes = [RANS_L; 8];
            lanes[..chunk.len()].copy_from_slice(chunk);
            let Some((got, emit)) = vector_step(lanes, sym) else {
                return;
            };
            for k in 0..chunk.len() {
                let (mut expected, mut words) = (lanes[k], Vec::new());
                encode_symbol(&mut expected, &mut words, enc);
                assert_eq!(
                    (got[k], emit[k]),
                    (expected, !words.is_empty()),
                    "freq {freq} start {start} state {}",
                    lanes[k]
                );
                if emit[k] {
                    assert_eq!(lanes[k] as u16, words[0]);
                }
            }
        }
    }

    /// Every frequency, at the edge states: the bounds of the state range and of the
    /// renormalization, and the largest states kept (not renormalized) of the extreme residues
    /// (`x mod f` of 0, 1 and `f - 1`), where a quotient off by one would show first.
    #[test]
    fn vector_step_matches_encode_symbol_at_the_edges() {
        for freq in 1..=PROB_SCALE {
            let f = freq as u64;
            let x_max = (1u64 << 20) * f;
            let mut edges = vec![RANS_L as u64, RANS_L as u64 + 1, u32::MAX as u64 - 1];
            edges.push(u32::MAX as u64);
            for top in [x_max, x_max.min(1 << 32) - 1] {
                // `top` itself, and states whose renormalized form is just below it.
                edges.push(top);
                for back in [1, 2, f, f + 1, 2 * f - 1, 2 * f] {
                    edges.extend(top.checked_sub(back));
                }
            }
            let states: Vec<u32> = edges
                .into_iter()
                .filter(|&s| (RANS_L as u64..1 << 32).contains(&s))
                .map(|s| s as u32)
                .collect();
            for start in [0, (PROB_SCALE - freq) / 2, PROB_SCALE - freq] {
                check(&states, freq, start);
            }
        }
    }

    /// Every state whose quotient is large, for the frequencies with the largest reciprocal
    /// errors: exhaustive over the top 2^16 states below each renormalization bound.
    #[test]
    fn vector_step_matches_encode_symbol_below_the_bound() {
        for freq in [1, 2, 3, 5, 7, 2047, 2049, 2731, 3001, 4095, 4096] {
            let x_max = ((1u64 << 20) * freq as u64).min(1 << 32);
            let states: Vec<u32> = (x_max - (1 << 16)..x_max).map(|s| s as u32).collect();
            check(&states, freq, PROB_SCALE - freq);
        }
    }

    /// The symbol fields fit their bits.
    #[test]
    fn symbols_pack() {
        for freq in 1..=PROB_SCALE {
            let s = Symbol::new(freq, PROB_SCALE - freq);
            assert_eq!(s.packed & (PROB_SCALE - 1), PROB_SCALE - freq);
            assert!(s.packed >> 25 < PROB_BITS);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// The vector step matches `encode_symbol` on random states of random symbols.
        #[test]
        fn vector_step_matches_encode_symbol(
            states in proptest::array::uniform8(RANS_L..=u32::MAX),
            freq in 1u32..=PROB_SCALE,
            start_frac in 0.0f64..1.0,
        ) {
            let start = ((PROB_SCALE - freq) as f64 * start_frac) as u32;
            check(&states, freq, start);
        }
    }
}

/// `cargo test --release -p exprans --lib bench_vector_encoder -- --ignored --nocapture`: the
/// BF16 tensors of the shared MiniLM model coded (all blocks, one thread) by the scalar and the
/// vector encoder, best of 15 alternating runs.
#[cfg(test)]
mod bench {
    use super::super::*;

    #[test]
    #[ignore]
    fn bench_vector_encoder() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/models/all-MiniLM-L6-v2.bf16.safetensors"
        );
        let Ok(file) = std::fs::read(path) else {
            eprintln!("skipped: no {path}");
            return;
        };
        let header = crate::safetensors::Header::read(&file).unwrap();
        let start = header.data_start() as usize;
        let layout = PlaneLayout::Float16;
        let single = |plane: &[u8]| PlaneCoding::Coded {
            tables: vec![FreqTable::from_counts(&histogram(plane)).unwrap()],
            classes: ClassMap::single(),
        };
        // Both planes coded, plane 1 with classes where `encode` gives them.
        let inputs: Vec<(Vec<Vec<u8>>, Vec<PlaneCoding>)> = header
            .tensors
            .iter()
            .filter(|(_, t)| t.dtype == "BF16")
            .map(|(_, t)| {
                let (a, b) = t.data_offsets;
                let data = &file[start + a as usize..start + b as usize];
                let planes = layout.split(data);
                let p1 = if planes[0].len() >= MIN_VALUES_FOR_CLASSES {
                    let joint = top16_joint_histogram(layout, data);
                    let table_bits = class_table_bits(&EncodeOptions::default());
                    plane1_coding(&joint, ENCODER_MAX_CLASSES, table_bits).1
                } else {
                    single(&planes[1])
                };
                let codings = vec![single(&planes[0]), p1];
                (planes, codings)
            })
            .collect();
        let block = crate::params::DEFAULT_BLOCK_SIZE;
        let code = |vector: bool| {
            let t = std::time::Instant::now();
            for (planes, codings) in &inputs {
                std::hint::black_box(write_entry(layout, planes, codings, block, vector).unwrap());
            }
            t.elapsed().as_secs_f64()
        };
        for (planes, codings) in &inputs {
            let entry = |v| write_entry(layout, planes, codings, block, v).unwrap();
            assert!(entry(false) == entry(true));
        }
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        let (mut scalar, mut vector) = (f64::INFINITY, f64::INFINITY);
        for _ in 0..15 {
            scalar = scalar.min(pool.install(|| code(false)));
            vector = vector.min(pool.install(|| code(true)));
        }
        let symbols = 2.0 * inputs.iter().map(|(p, _)| p[0].len()).sum::<usize>() as f64;
        println!(
            "write_entry: scalar {:.1} ms ({:.2} ns/symbol), vector {:.1} ms ({:.2} ns/symbol): \
             {:.2}x",
            scalar * 1e3,
            scalar * 1e9 / symbols,
            vector * 1e3,
            vector * 1e9 / symbols,
            scalar / vector
        );
    }
}
