//! A byte-alphabet rANS coder: frequency tables, their compact serialization, and the encode and
//! decode steps.
//!
//! Invariants (see docs/FORMAT.md, "rANS"):
//! - states are `u32` in `[RANS_L, 2^32)` with `RANS_L = 2^16`;
//! - renormalization moves one 16-bit word, at most once per symbol;
//! - frequencies sum to `PROB_SCALE = 2^PROB_BITS`; every symbol that occurs has frequency >= 1,
//!   and a table whose only symbol has frequency `PROB_SCALE` is valid (it codes in zero bits).
//!
//! This module knows nothing about floats, lanes or blocks; see [`crate::codec`] for those.

use crate::params::{PROB_BITS, PROB_SCALE, RANS_L};
use crate::Error;

/// A normalized frequency table over the 256 byte values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FreqTable {
    freq: [u32; 256],
}

/// Cost in bits of coding `count` symbols at probability `freq / PROB_SCALE`.
fn cost_bits(count: u64, freq: u32) -> f64 {
    if count == 0 {
        return 0.0;
    }
    count as f64 * (PROB_BITS as f64 - (freq as f64).log2())
}

impl FreqTable {
    /// Quantizes symbol counts to frequencies summing to `PROB_SCALE`, minimizing the coded size
    /// `sum(count[s] * log2(PROB_SCALE / freq[s]))`. Every symbol with a non-zero count keeps a
    /// non-zero frequency. Returns `None` when no symbol occurs.
    pub fn from_counts(counts: &[u64; 256]) -> Option<FreqTable> {
        let total: u64 = counts.iter().sum();
        if total == 0 {
            return None;
        }
        let scale = PROB_SCALE as f64;
        let mut freq = [0u32; 256];
        for (f, &c) in freq.iter_mut().zip(counts) {
            if c > 0 {
                *f = ((c as f64 * scale / total as f64).round() as u32).clamp(1, PROB_SCALE);
            }
        }
        // Marginal gain of adding one slot to s, and marginal loss of removing one.
        let gain =
            |f: &[u32; 256], s: usize| cost_bits(counts[s], f[s]) - cost_bits(counts[s], f[s] + 1);
        let loss = |f: &[u32; 256], s: usize| {
            if f[s] <= 1 {
                f64::INFINITY
            } else {
                cost_bits(counts[s], f[s] - 1) - cost_bits(counts[s], f[s])
            }
        };
        let best = |f: &[u32; 256], score: &dyn Fn(&[u32; 256], usize) -> f64, max: bool| {
            (0..256)
                .filter(|&s| counts[s] > 0)
                .map(|s| (s, score(f, s)))
                .reduce(|a, b| {
                    if (b.1 > a.1) == max && b.1 != a.1 {
                        b
                    } else {
                        a
                    }
                })
                .map(|(s, _)| s)
                .expect("at least one symbol occurs")
        };
        // Fix the sum greedily, then swap slots while that lowers the cost. The cost is convex and
        // separable in each frequency, so no improving swap left means the optimum is reached.
        let mut sum: u32 = freq.iter().sum();
        while sum < PROB_SCALE {
            let s = best(&freq, &gain, true);
            freq[s] += 1;
            sum += 1;
        }
        while sum > PROB_SCALE {
            let s = best(&freq, &loss, false);
            freq[s] -= 1;
            sum -= 1;
        }
        loop {
            let up = best(&freq, &gain, true);
            let down = best(&freq, &loss, false);
            if up == down || gain(&freq, up) <= loss(&freq, down) + 1e-12 {
                break;
            }
            freq[up] += 1;
            freq[down] -= 1;
        }
        Some(FreqTable { freq })
    }

    /// Builds a table from explicit frequencies, checking that they sum to `PROB_SCALE`.
    pub fn from_freqs(freq: [u32; 256]) -> Result<FreqTable, Error> {
        let sum: u64 = freq.iter().map(|&f| f as u64).sum();
        if sum != PROB_SCALE as u64 {
            return Err(Error::corrupt(format!(
                "frequency table sums to {sum}, expected {PROB_SCALE}"
            )));
        }
        Ok(FreqTable { freq })
    }

    /// Frequency of each symbol.
    pub fn freqs(&self) -> &[u32; 256] {
        &self.freq
    }

    /// Exact size in bits of coding symbols with these `counts` under this table (rANS codes
    /// within a few bits per stream of this figure).
    pub fn coded_bits(&self, counts: &[u64; 256]) -> f64 {
        (0..256).map(|s| cost_bits(counts[s], self.freq[s])).sum()
    }

    /// Cumulative frequencies: `cum[s] = sum(freq[..s])`.
    pub fn cumulative(&self) -> [u32; 257] {
        let mut cum = [0u32; 257];
        for s in 0..256 {
            cum[s + 1] = cum[s] + self.freq[s];
        }
        cum
    }

    /// Serializes the table (docs/FORMAT.md, "Frequency table"): bytes `lo`, `hi`, then
    /// `k | delta << 4`, then for each symbol in `lo..=hi` an order-`k` exp-Golomb code (LSB-first
    /// bits, padded to a whole byte) of its frequency, or with `delta = 1` of the zigzag-coded
    /// difference from the previous symbol's frequency (the first symbol's difference is from 0).
    /// Mode and `k` are chosen to make the table smallest; smooth tables (sign and mantissa
    /// planes) shrink most with deltas, peaked ones (exponents) without.
    pub fn serialize(&self, out: &mut Vec<u8>) {
        let lo = self
            .freq
            .iter()
            .position(|&f| f > 0)
            .expect("sum is PROB_SCALE");
        let hi = self
            .freq
            .iter()
            .rposition(|&f| f > 0)
            .expect("sum is PROB_SCALE");
        let direct: Vec<u32> = self.freq[lo..=hi].to_vec();
        let deltas: Vec<u32> = direct
            .iter()
            .scan(0u32, |prev, &f| {
                let d = zigzag(f as i32 - *prev as i32);
                *prev = f;
                Some(d)
            })
            .collect();
        let (delta, k, codes) = [(0u8, &direct), (1u8, &deltas)]
            .into_iter()
            .flat_map(|(mode, codes)| (0..=PROB_BITS).map(move |k| (mode, k, codes)))
            .min_by_key(|&(_, k, codes)| codes.iter().map(|&v| exp_golomb_len(v, k)).sum::<u32>())
            .expect("non-empty search");
        out.extend_from_slice(&[lo as u8, hi as u8, k as u8 | delta << 4]);
        let mut bits = BitWriter::new(out);
        for &v in codes {
            bits.exp_golomb(v, k);
        }
        bits.finish();
    }

    /// Parses a table written by [`FreqTable::serialize`] from the front of `bytes`, returning it
    /// and the number of bytes it used. Any inconsistency is a [`Error::Corrupt`].
    pub fn deserialize(bytes: &[u8]) -> Result<(FreqTable, usize), Error> {
        let [lo, hi, mode, ..] = *bytes else {
            return Err(Error::corrupt("frequency table truncated"));
        };
        let (lo, hi, k, delta) = (lo as usize, hi as usize, (mode & 15) as u32, mode >> 4);
        if lo > hi || k > PROB_BITS || delta > 1 {
            return Err(Error::corrupt("frequency table header invalid"));
        }
        let mut reader = BitReader::new(&bytes[3..]);
        let mut freq = [0u32; 256];
        let mut prev = 0i64;
        for f in &mut freq[lo..=hi] {
            let code = reader.exp_golomb(k)?;
            let value = if delta == 1 {
                prev + unzigzag(code) as i64
            } else {
                code as i64
            };
            if !(0..=PROB_SCALE as i64).contains(&value) {
                return Err(Error::corrupt("frequency outside the probability scale"));
            }
            *f = value as u32;
            prev = value;
        }
        if freq[lo] == 0 || freq[hi] == 0 {
            return Err(Error::corrupt("frequency table range not tight"));
        }
        if !reader.rest_of_byte_is_zero() {
            return Err(Error::corrupt("frequency table padding bits are not zero"));
        }
        let used = 3 + reader.bytes_used();
        Ok((FreqTable::from_freqs(freq)?, used))
    }
}

fn zigzag(d: i32) -> u32 {
    ((d << 1) ^ (d >> 31)) as u32
}

fn unzigzag(z: u32) -> i32 {
    (z >> 1) as i32 ^ -((z & 1) as i32)
}

fn exp_golomb_len(v: u32, k: u32) -> u32 {
    let w = v as u64 + (1u64 << k);
    let n = 63 - w.leading_zeros();
    2 * n + 1 - k
}

struct BitWriter<'a> {
    out: &'a mut Vec<u8>,
    acc: u64,
    n: u32,
}

impl<'a> BitWriter<'a> {
    fn new(out: &'a mut Vec<u8>) -> Self {
        BitWriter { out, acc: 0, n: 0 }
    }
    fn put(&mut self, value: u64, bits: u32) {
        debug_assert!(bits <= 32);
        self.acc |= value << self.n;
        self.n += bits;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }
    /// Order-k exp-Golomb: with `w = v + 2^k` and `n = floor(log2 w)`, `n - k` zero bits, a one
    /// bit, then the low `n` bits of `w`.
    fn exp_golomb(&mut self, v: u32, k: u32) {
        let w = v as u64 + (1u64 << k);
        let n = 63 - w.leading_zeros();
        self.put(0, n - k);
        self.put(1, 1);
        self.put(w & ((1u64 << n) - 1), n);
    }
    fn finish(mut self) {
        if self.n > 0 {
            self.put(0, 8 - self.n);
        }
    }
}

struct BitReader<'a> {
    bytes: &'a [u8],
    pos: usize, // in bits
}

impl<'a> BitReader<'a> {
    fn new(bytes: &'a [u8]) -> Self {
        BitReader { bytes, pos: 0 }
    }
    fn bit(&mut self) -> Result<u32, Error> {
        let byte = self
            .bytes
            .get(self.pos / 8)
            .ok_or_else(|| Error::corrupt("frequency table truncated"))?;
        let b = (byte >> (self.pos % 8)) & 1;
        self.pos += 1;
        Ok(b as u32)
    }
    fn exp_golomb(&mut self, k: u32) -> Result<u32, Error> {
        let mut zeros = 0;
        while self.bit()? == 0 {
            zeros += 1;
            if zeros > PROB_BITS + 1 {
                return Err(Error::corrupt("frequency code too long"));
            }
        }
        let n = zeros + k;
        let mut w = 0u64;
        for i in 0..n {
            w |= (self.bit()? as u64) << i;
        }
        w |= 1u64 << n;
        Ok((w - (1u64 << k)) as u32)
    }
    /// Whether the bits left in the current byte (the padding after the last code) are 0.
    fn rest_of_byte_is_zero(&self) -> bool {
        self.pos.is_multiple_of(8) || self.bytes[self.pos / 8] >> (self.pos % 8) == 0
    }
    fn bytes_used(&self) -> usize {
        self.pos.div_ceil(8)
    }
}

/// One slot of a decode table, packed into a `u32` exactly as the GPU reads it:
/// bits 0-7 the symbol, bits 8-19 `freq - 1`, bits 20-31 `slot - cum[symbol]`.
/// `freq - 1` (not `freq`) keeps a single-symbol table (`freq = PROB_SCALE`) inside 12 bits.
pub type PackedSlot = u32;

/// The `PROB_SCALE`-entry decode table of a [`FreqTable`].
pub fn decode_table(table: &FreqTable) -> Vec<PackedSlot> {
    let mut slots = Vec::with_capacity(PROB_SCALE as usize);
    for (s, &f) in table.freqs().iter().enumerate() {
        for bias in 0..f {
            slots.push(s as u32 | (f - 1) << 8 | bias << (8 + PROB_BITS));
        }
    }
    debug_assert_eq!(slots.len(), PROB_SCALE as usize);
    slots
}

/// Encoder-side symbol info: start and frequency (the reference encoder's, which the tests
/// compare the fast encoder with).
#[cfg(test)]
#[derive(Clone, Copy, Debug)]
pub struct EncSymbol {
    /// `cum[s]`.
    pub start: u32,
    /// `freq[s]`, in `1..=PROB_SCALE` for symbols that occur.
    pub freq: u32,
}

/// Encoder tables of a [`FreqTable`].
#[cfg(test)]
pub fn encode_table(table: &FreqTable) -> [EncSymbol; 256] {
    let cum = table.cumulative();
    std::array::from_fn(|s| EncSymbol {
        start: cum[s],
        freq: table.freqs()[s],
    })
}

/// Encodes one symbol into `state`, pushing at most one 16-bit word onto `words` first.
/// Symbols are encoded in reverse order; the words come out reversed too (see [`crate::codec`]).
#[cfg(test)]
pub fn encode_symbol(state: &mut u32, words: &mut Vec<u16>, sym: EncSymbol) {
    debug_assert!(sym.freq > 0, "symbol with zero frequency");
    // x_max = ((RANS_L >> PROB_BITS) << 16) * freq, computed in u64: for freq = PROB_SCALE it is 2^32.
    let x_max = (((RANS_L >> PROB_BITS) as u64) << 16) * sym.freq as u64;
    if *state as u64 >= x_max {
        words.push(*state as u16);
        *state >>= 16;
    }
    *state = ((*state / sym.freq) << PROB_BITS) + (*state % sym.freq) + sym.start;
}

/// Encoder-side symbol of the fast encoder: division by `freq` replaced by a multiplication.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RcpSymbol {
    /// `ceil(2^44 / freq)` (0 for symbols that do not occur).
    rcp: u64,
    /// `cum[s]`.
    start: u32,
    /// `freq[s]`.
    freq: u16,
    /// `PROB_SCALE - freq[s]` (below 2^12 for symbols that occur).
    cmpl_freq: u16,
}

// Read by the vector encoder (x86-64 only).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
impl RcpSymbol {
    /// `freq[s]` (0 for a symbol that does not occur).
    pub(crate) fn freq(&self) -> u32 {
        self.freq as u32
    }

    /// `cum[s]`.
    pub(crate) fn start(&self) -> u32 {
        self.start
    }
}

/// [`RcpSymbol`]s of a [`FreqTable`].
pub(crate) fn rcp_table(table: &FreqTable) -> [RcpSymbol; 256] {
    let cum = table.cumulative();
    std::array::from_fn(|s| {
        let freq = table.freqs()[s];
        RcpSymbol {
            rcp: if freq == 0 {
                0
            } else {
                (1u64 << 44).div_ceil(freq as u64)
            },
            start: cum[s],
            freq: freq as u16,
            cmpl_freq: (PROB_SCALE - freq) as u16,
        }
    })
}

/// [`encode_symbol`] without division or push: returns the new state, the word to emit (the low
/// half of `state`) and whether to emit it. Same states and words as [`encode_symbol`].
///
/// Exactness: after renormalization `x < 2^20 * freq` (and `x < 2^32`). With
/// `rcp = ceil(2^44 / freq) = (2^44 + e) / freq`, `0 <= e < freq`:
/// `x * rcp / 2^44 = x / freq + x * e / (freq * 2^44)`, and `x * e < 2^20 * freq^2 <= 2^44`, so the
/// error term stays below `1 / freq` and the floor is `x / freq`. The product is below
/// `2^44 * (x / freq) + 2^32 <= 2^64`: it fits a `u64`.
#[inline(always)]
pub(crate) fn rcp_encode(state: u32, sym: RcpSymbol) -> (u32, u16, bool) {
    debug_assert!(sym.freq > 0, "symbol with zero frequency");
    // state >= x_max = 2^20 * freq (compare the top 12 bits: x_max is a multiple of 2^20).
    const _: () = assert!((RANS_L >> PROB_BITS) << 16 == 1 << 20);
    let emit = state >> 20 >= sym.freq as u32;
    let x = if emit { state >> 16 } else { state };
    let q = ((x as u64 * sym.rcp) >> 44) as u32;
    // (q << PROB_BITS) + (x - q * freq) + start, rearranged.
    let x = x + sym.start + q * sym.cmpl_freq as u32;
    (x, state as u16, emit)
}

/// Decodes one symbol from `state` with its decode-table slot (`table[state % PROB_SCALE]`);
/// returns the symbol and the next state before renormalization (a refill word is due when it
/// is below `RANS_L`).
#[inline(always)]
pub fn decode_step(state: u32, slot: PackedSlot) -> (u8, u32) {
    let freq = ((slot >> 8) & (PROB_SCALE - 1)) + 1;
    let bias = slot >> (8 + PROB_BITS);
    (slot as u8, freq * (state >> PROB_BITS) + bias)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(20_000))]

        /// The division-free step of the encoder matches `encode_symbol` exactly.
        #[test]
        fn rcp_encode_matches_encode_symbol(
            state in RANS_L..=u32::MAX,
            freq in 1u32..=PROB_SCALE,
            start_frac in 0.0f64..1.0,
        ) {
            let start = ((PROB_SCALE - freq) as f64 * start_frac) as u32;
            let mut freqs = [0u32; 256];
            freqs[0] = start;
            freqs[1] = freq;
            freqs[2] = PROB_SCALE - freq - start;
            let table = FreqTable::from_freqs(freqs).unwrap();
            let (mut expected, mut words) = (state, Vec::new());
            encode_symbol(&mut expected, &mut words, encode_table(&table)[1]);
            let (got, word, emit) = rcp_encode(state, rcp_table(&table)[1]);
            prop_assert_eq!(got, expected);
            prop_assert_eq!(emit, !words.is_empty());
            if emit {
                prop_assert_eq!(word, words[0]);
            }
        }
    }

    /// Edge states of every frequency: the largest state below the renormalization bound (the
    /// largest quotient) and the smallest states.
    #[test]
    fn rcp_encode_matches_encode_symbol_at_the_edges() {
        for freq in 1..=PROB_SCALE {
            let mut freqs = [0u32; 256];
            freqs[0] = PROB_SCALE - freq;
            freqs[1] = freq;
            let table = FreqTable::from_freqs(freqs).unwrap();
            let (enc, rcp) = (encode_table(&table)[1], rcp_table(&table)[1]);
            let x_max = ((1u64 << 20) * freq as u64).min(1 << 32);
            let mut edges = vec![
                RANS_L,
                RANS_L + 1,
                (x_max - 1) as u32,
                u32::MAX - 1,
                u32::MAX,
            ];
            if x_max < 1 << 32 {
                edges.push(x_max as u32);
            }
            for state in edges {
                let (mut expected, mut words) = (state, Vec::new());
                encode_symbol(&mut expected, &mut words, enc);
                let (got, word, emit) = rcp_encode(state, rcp);
                assert_eq!(
                    (got, emit),
                    (expected, !words.is_empty()),
                    "freq {freq} state {state}"
                );
                if emit {
                    assert_eq!(word, words[0]);
                }
            }
        }
    }
}
