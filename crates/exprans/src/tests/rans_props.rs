//! Properties of the rANS coder on its own: frequency quantization, table serialization, and
//! encode/decode round trips of random symbol sequences under random tables.

use crate::params::{PROB_SCALE, RANS_L};
use crate::rans::{self, FreqTable};
use proptest::prelude::*;

/// Symbol counts: a random subset of the alphabet (at least one symbol) with random counts,
/// from tiny to huge, so quantization meets both rare symbols and dominant ones.
fn counts() -> impl Strategy<Value = [u64; 256]> {
    (
        proptest::collection::vec((any::<u8>(), 1u64..1_000_000), 1..64),
        prop_oneof![Just(1u64), Just(1000), Just(1 << 40)],
        any::<bool>(),
    )
        .prop_map(|(entries, scale, all_symbols)| {
            let mut c = [0u64; 256];
            if all_symbols {
                c.iter_mut().for_each(|x| *x = 1);
            }
            for (s, n) in entries {
                c[s as usize] += n * scale;
            }
            c
        })
}

fn table() -> impl Strategy<Value = FreqTable> {
    counts().prop_map(|c| FreqTable::from_counts(&c).unwrap())
}

/// A table and a sequence of symbols it can code.
fn table_and_symbols() -> impl Strategy<Value = (FreqTable, Vec<u8>)> {
    table().prop_flat_map(|t| {
        let symbols: Vec<u8> = (0..=255u8).filter(|&s| t.freqs()[s as usize] > 0).collect();
        let seq = proptest::collection::vec(proptest::sample::select(symbols), 0..3000);
        (Just(t), seq)
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn from_counts_sums_to_the_scale_and_keeps_symbols(c in counts()) {
        let t = FreqTable::from_counts(&c).unwrap();
        prop_assert_eq!(t.freqs().iter().map(|&f| f as u64).sum::<u64>(), PROB_SCALE as u64);
        for (s, (&f, &count)) in t.freqs().iter().zip(&c).enumerate() {
            prop_assert_eq!(f > 0, count > 0, "symbol {}", s);
        }
        let cum = t.cumulative();
        prop_assert_eq!(cum[256], PROB_SCALE);
    }

    #[test]
    fn serialization_round_trips(t in table(), tail in proptest::collection::vec(any::<u8>(), 0..8)) {
        let mut bytes = Vec::new();
        t.serialize(&mut bytes);
        let len = bytes.len();
        bytes.extend(&tail);
        let (back, used) = FreqTable::deserialize(&bytes).unwrap();
        prop_assert_eq!(used, len);
        prop_assert_eq!(back, t);
    }

    #[test]
    fn encode_decode_round_trips((t, symbols) in table_and_symbols()) {
        let enc = rans::encode_table(&t);
        let mut state = RANS_L;
        let mut words = Vec::new();
        for &s in symbols.iter().rev() {
            rans::encode_symbol(&mut state, &mut words, enc[s as usize]);
        }
        prop_assert!(words.len() <= symbols.len(), "at most one word per symbol");
        words.reverse();
        let dec = rans::decode_table(&t);
        prop_assert_eq!(dec.len(), PROB_SCALE as usize);
        let mut next = words.iter();
        for &s in &symbols {
            let (sym, x) = rans::decode_step(state, dec[(state % PROB_SCALE) as usize]);
            prop_assert_eq!(sym, s);
            state = if x < RANS_L {
                (x << 16) | *next.next().expect("enough words") as u32
            } else {
                x
            };
            prop_assert!(state >= RANS_L);
        }
        prop_assert_eq!(state, RANS_L);
        prop_assert!(next.next().is_none());
    }

    #[test]
    fn decode_table_slots_describe_the_table(t in table()) {
        let dec = rans::decode_table(&t);
        let cum = t.cumulative();
        for (slot, &packed) in dec.iter().enumerate() {
            let s = (packed & 0xff) as usize;
            let freq = ((packed >> 8) & 0xfff) + 1;
            let bias = packed >> 20;
            prop_assert_eq!(freq, t.freqs()[s]);
            prop_assert_eq!(bias as usize, slot - cum[s] as usize);
        }
    }
}
