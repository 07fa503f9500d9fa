//! Context classes (version 2): plane 1 of a value is coded with one of `C` frequency tables,
//! chosen by the value's plane-0 byte through a per-entry [`ClassMap`].
//!
//! In a BF16 weight, plane 0 is the exponent and plane 1 the sign and mantissa; how the mantissa
//! is distributed depends on the binade (for a bell-shaped tensor the density falls across the
//! upper binades, and weights that were once F16 leave patterns per exponent), which one table for
//! all exponents cannot use. The encoder groups plane-0 values whose plane-1 statistics are alike
//! into classes ([`choose`]), trading coded bits against the cost of one more table.
//!
//! Invariants of a [`ClassMap`]: `1 <= classes <= MAX_CLASSES`; every class below `classes` is the
//! class of at least one plane-0 byte; a byte the map does not name is in class 0.

use crate::params::MAX_CLASSES;
use crate::{Error, Result};

/// Which plane-1 table each plane-0 byte selects.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClassMap {
    classes: u8,
    /// Boxed: entries and codings holding a map stay small.
    of: Box<[u8; 256]>,
}

impl ClassMap {
    /// One class: plane 1 coded with one table, as in version 1.
    pub fn single() -> ClassMap {
        ClassMap {
            classes: 1,
            of: Box::new([0; 256]),
        }
    }

    /// Number of classes (tables of plane 1).
    pub fn classes(&self) -> usize {
        self.classes as usize
    }

    /// The class of plane-0 byte `p0`.
    #[inline(always)]
    pub fn class_of(&self, p0: u8) -> usize {
        self.of[p0 as usize] as usize
    }

    /// Serializes a map of two or more classes (docs/FORMAT.md, "Context classes"): bytes `lo`
    /// and `hi`, the first and last plane-0 byte whose class is not 0, then the class of each byte
    /// in `lo..=hi` as a 4-bit number, two per byte, the first in the low half (a zero half pads
    /// an odd count). A single-class map serializes to nothing.
    pub fn serialize(&self, out: &mut Vec<u8>) {
        if self.classes == 1 {
            return;
        }
        let lo = self
            .of
            .iter()
            .position(|&c| c != 0)
            .expect("class 1 is used");
        let hi = self
            .of
            .iter()
            .rposition(|&c| c != 0)
            .expect("class 1 is used");
        out.extend_from_slice(&[lo as u8, hi as u8]);
        for pair in self.of[lo..=hi].chunks(2) {
            out.push(pair[0] | pair.get(1).map_or(0, |c| c << 4));
        }
    }

    /// Parses a map of `classes` classes written by [`ClassMap::serialize`] from the front of
    /// `bytes`; returns it and the bytes it used. Fails unless the map is tight (`lo` and `hi` in
    /// class 1 or above), uses every class, names no class at or above `classes`, and pads with 0.
    pub fn deserialize(bytes: &[u8], classes: usize) -> Result<(ClassMap, usize)> {
        if !(1..=MAX_CLASSES).contains(&classes) {
            return Err(Error::corrupt(format!(
                "{classes} context classes (1 to {MAX_CLASSES} allowed)"
            )));
        }
        if classes == 1 {
            return Ok((ClassMap::single(), 0));
        }
        let [lo, hi, ..] = *bytes else {
            return Err(Error::corrupt("context class map truncated"));
        };
        let (lo, hi) = (lo as usize, hi as usize);
        if lo > hi {
            return Err(Error::corrupt("context class map range is empty"));
        }
        let span = hi - lo + 1;
        let packed = bytes
            .get(2..2 + span.div_ceil(2))
            .ok_or_else(|| Error::corrupt("context class map truncated"))?;
        let mut of = Box::new([0u8; 256]);
        for (i, c) in of[lo..=hi].iter_mut().enumerate() {
            *c = (packed[i / 2] >> (4 * (i % 2))) & 15;
        }
        if span % 2 == 1 && packed[span / 2] >> 4 != 0 {
            return Err(Error::corrupt("context class map padding is not zero"));
        }
        let mut used = [false; 16];
        for &c in of.iter() {
            used[c as usize] = true;
        }
        if of[lo] == 0 || of[hi] == 0 {
            return Err(Error::corrupt("context class map range is not tight"));
        }
        if of.iter().any(|&c| c as usize >= classes) || !used[..classes].iter().all(|&u| u) {
            return Err(Error::corrupt(
                "context class map does not use exactly its classes",
            ));
        }
        Ok((
            ClassMap {
                classes: classes as u8,
                of,
            },
            2 + packed.len(),
        ))
    }
}

/// `c * log2(c)` (0 for 0), in `f32`: the greedy merge compares sums of these, where an error
/// in the seventh digit does not change a choice that matters. `log2` by table lookup and linear
/// interpolation on the top 10 mantissa bits (error below 2e-7): the search evaluates it a few
/// hundred thousand times per tensor.
#[inline(always)]
fn c_log_c(c: u64) -> f32 {
    if c == 0 {
        return 0.0;
    }
    let x = c as f32;
    x * fast_log2(x)
}

fn fast_log2(x: f32) -> f32 {
    static TABLE: std::sync::OnceLock<[f32; 1025]> = std::sync::OnceLock::new();
    let table =
        TABLE.get_or_init(|| std::array::from_fn(|i| (1.0 + i as f64 / 1024.0).log2() as f32));
    let bits = x.to_bits();
    let exponent = ((bits >> 23) & 0xff) as i32 - 127;
    let index = ((bits >> 13) & 0x3ff) as usize;
    let frac = (bits & 0x1fff) as f32 / 8192.0;
    let (lo, hi) = (table[index], table[index + 1]);
    exponent as f32 + lo + (hi - lo) * frac
}

/// A group of plane-0 bytes and the plane-1 histogram they share.
#[derive(Clone)]
struct Cluster {
    counts: [u64; 256],
    total: u64,
    /// `sum(c log2 c)` over the counts.
    sum_c_log_c: f32,
}

impl Cluster {
    fn new(counts: [u64; 256]) -> Cluster {
        Cluster {
            total: counts.iter().sum(),
            sum_c_log_c: counts.iter().map(|&c| c_log_c(c)).sum(),
            counts,
        }
    }

    /// Order-0 coded size of the cluster's symbols in bits: `n log2 n - sum(c log2 c)`.
    fn bits(&self) -> f32 {
        c_log_c(self.total) - self.sum_c_log_c
    }

    /// Bits that merging `a` and `b` adds to their coded size (never negative, up to rounding).
    fn merge_cost(a: &Cluster, b: &Cluster) -> f32 {
        let merged: f32 = (0..256).map(|s| c_log_c(a.counts[s] + b.counts[s])).sum();
        (c_log_c(a.total + b.total) - merged) - a.bits() - b.bits()
    }

    fn absorb(&mut self, other: &Cluster) {
        for (c, o) in self.counts.iter_mut().zip(&other.counts) {
            *c += o;
        }
        *self = Cluster::new(self.counts);
    }
}

/// Most plane-0 bytes that start as clusters of their own; the rarer ones start together. Keeps
/// the search at a few hundred merge evaluations per tensor.
const SEED_CLUSTERS: usize = 16;

/// Chooses the class map of plane 1 from `joint[p0][p1]`, the counts of each (plane 0, plane 1)
/// pair: greedy agglomeration that merges the two classes whose merge costs least, while a merge
/// costs less than `table_bits` (what one more table is estimated to cost) or more than
/// `max_classes` remain. Returns the map and each class's plane-1 counts.
pub fn choose(
    joint: &[[u64; 256]],
    max_classes: usize,
    table_bits: f32,
) -> (ClassMap, Vec<[u64; 256]>) {
    assert_eq!(joint.len(), 256, "one row per plane-0 byte");
    let max_classes = max_classes.clamp(1, MAX_CLASSES);
    let mut by_count: Vec<(u64, usize)> = joint
        .iter()
        .enumerate()
        .map(|(p0, row)| (row.iter().sum::<u64>(), p0))
        .filter(|&(n, _)| n > 0)
        .collect();
    by_count.sort_by(|a, b| b.cmp(a));
    // members[k]: the plane-0 bytes of cluster k.
    let mut members: Vec<Vec<usize>> = by_count
        .iter()
        .take(SEED_CLUSTERS)
        .map(|&(_, p0)| vec![p0])
        .collect();
    if by_count.len() > SEED_CLUSTERS {
        members.push(
            by_count[SEED_CLUSTERS..]
                .iter()
                .map(|&(_, p0)| p0)
                .collect(),
        );
    }
    let mut clusters: Vec<Cluster> = members
        .iter()
        .map(|m| {
            let mut counts = [0u64; 256];
            for &p0 in m {
                for (c, j) in counts.iter_mut().zip(&joint[p0]) {
                    *c += j;
                }
            }
            Cluster::new(counts)
        })
        .collect();
    if clusters.is_empty() {
        return (ClassMap::single(), vec![[0; 256]]);
    }
    // cost[i][j] (i < j): bits merging clusters i and j adds; recomputed for a merged cluster.
    let k = clusters.len();
    let mut cost = vec![vec![f32::INFINITY; k]; k];
    for i in 0..k {
        for j in i + 1..k {
            cost[i][j] = Cluster::merge_cost(&clusters[i], &clusters[j]);
        }
    }
    let mut alive: Vec<bool> = vec![true; k];
    let mut live = k;
    while live > 1 {
        let (mut best, mut bi, mut bj) = (f32::INFINITY, 0, 0);
        for i in (0..k).filter(|&i| alive[i]) {
            for j in (i + 1..k).filter(|&j| alive[j]) {
                if cost[i][j] < best {
                    (best, bi, bj) = (cost[i][j], i, j);
                }
            }
        }
        if best >= table_bits && live <= max_classes {
            break;
        }
        let absorbed = clusters[bj].clone();
        clusters[bi].absorb(&absorbed);
        let moved = std::mem::take(&mut members[bj]);
        members[bi].extend(moved);
        alive[bj] = false;
        live -= 1;
        for o in (0..k).filter(|&o| alive[o] && o != bi) {
            let (i, j) = (o.min(bi), o.max(bi));
            cost[i][j] = Cluster::merge_cost(&clusters[i], &clusters[j]);
        }
    }
    // Class 0 is the cluster that holds the most values (so the rest of the map is mostly 0).
    let mut order: Vec<usize> = (0..k).filter(|&i| alive[i]).collect();
    order.sort_by_key(|&i| std::cmp::Reverse(clusters[i].total));
    let mut map = ClassMap {
        classes: order.len() as u8,
        of: Box::new([0; 256]),
    };
    for (class, &i) in order.iter().enumerate() {
        for &p0 in &members[i] {
            map.of[p0] = class as u8;
        }
    }
    let counts = order.iter().map(|&i| clusters[i].counts).collect();
    (map, counts)
}

#[cfg(test)]
#[allow(clippy::needless_range_loop)] // histograms indexed by symbol
mod tests {
    use super::*;

    #[test]
    fn maps_round_trip_and_hostile_maps_are_refused() {
        let mut joint = vec![[0u64; 256]; 256];
        // Exponents 120..=127 with two very different mantissa shapes.
        for p0 in 120..128 {
            for p1 in 0..256 {
                joint[p0][p1] = if p0 % 2 == 0 {
                    1000 + p1 as u64 * 50
                } else {
                    14000 - p1 as u64 * 50
                };
            }
        }
        let (map, counts) = choose(&joint, 8, 800.0);
        assert_eq!(map.classes(), 2, "two shapes, two classes");
        assert_eq!(counts.len(), 2);
        assert_ne!(map.class_of(120), map.class_of(121));
        assert_eq!(map.class_of(120), map.class_of(126));
        let mut bytes = Vec::new();
        map.serialize(&mut bytes);
        assert_eq!(
            ClassMap::deserialize(&bytes, 2).unwrap(),
            (map.clone(), bytes.len())
        );
        // A class the map never uses, a class number too large, loose range, bad padding.
        assert!(ClassMap::deserialize(&bytes, 3).is_err());
        let mut big = bytes.clone();
        big[2] |= 0x0f;
        assert!(ClassMap::deserialize(&big, 2).is_err());
        assert!(ClassMap::deserialize(&[5, 4], 2).is_err());
        assert!(
            ClassMap::deserialize(&[7, 9, 0x01, 0x11], 2).is_err(),
            "padding"
        );
        assert!(
            ClassMap::deserialize(&[7, 8, 0x10], 2).is_err(),
            "lo in class 0"
        );
        assert!(ClassMap::deserialize(&bytes, 0).is_err());
        assert!(ClassMap::deserialize(&bytes, MAX_CLASSES + 1).is_err());
        assert!(ClassMap::deserialize(&bytes[..2], 2).is_err());
    }

    #[test]
    fn one_shape_stays_one_class() {
        let mut joint = vec![[0u64; 256]; 256];
        for p0 in 100..130 {
            for p1 in 0..256 {
                joint[p0][p1] = 1000 + (p1 as u64 * 7919) % 13;
            }
        }
        assert_eq!(choose(&joint, 8, 800.0).0.classes(), 1);
        assert_eq!(choose(&vec![[0; 256]; 256], 8, 800.0).0.classes(), 1);
    }

    #[test]
    fn c_log_c_is_close() {
        for c in [1u64, 2, 3, 10, 1000, 65_537, 1 << 30, 123_456_789] {
            let exact = c as f64 * (c as f64).log2();
            assert!(
                (c_log_c(c) as f64 - exact).abs() <= 1e-6 * exact.max(1.0),
                "{c}"
            );
        }
    }
}
