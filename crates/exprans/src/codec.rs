//! The tensor codec: one float tensor <-> one compressed entry (docs/FORMAT.md, "Coded entry").
//!
//! A coded entry holds the planes of [`crate::planes`]. Coded planes share one set of rANS lanes:
//! the values are cut into blocks of `block_size` values, each block into [`LANES`] lanes (lane
//! `l` of a block holds values `l, l + LANES, l + 2*LANES, ...` of the block), and each lane is one
//! independent rANS stream that codes, value after value, one symbol of every coded plane in plane
//! order. Planes that do not pay for their table are stored raw. In version 2, plane 1 is coded
//! with one of several tables chosen by the value's plane-0 byte ([`crate::classes`]).
//!
//! ```text
//! entry = header (32 B) | tables | directory | words | raw planes      (each section 16-aligned)
//! version 1: directory = per block, per lane: (state: u32, first word: u32)
//! version 2: directory = per block, per lane: word count: u16; a lane's words start with its
//!            initial state (low half first); lanes without values have no words
//! ```

use crate::classes::{self, ClassMap};
use crate::params::{
    align_up, ALIGN, LANES, MAX_BLOCK_SIZE, MAX_BLOCK_SIZE_V1, MAX_CLASSES, RANS_L,
};
use crate::planes::PlaneLayout;
use crate::rans::{self, FreqTable};
use crate::{Error, Result};

#[cfg(target_arch = "x86_64")]
mod encode_x86;
/// The vector encoder of an entry's coded planes: AVX2 on x86-64 CPUs that have it.
#[cfg(target_arch = "x86_64")]
use encode_x86::Avx2Encoder as VectorEncoder;

/// Magic bytes that open every coded entry.
pub const ENTRY_MAGIC: [u8; 4] = *b"XRNS";
/// Version of the coded-entry layout written by this library.
pub const ENTRY_VERSION: u8 = 2;
/// Size of the fixed entry header.
pub const ENTRY_HEADER_LEN: usize = 32;
/// Bytes of one version-1 directory record (state, first word).
pub const LANE_RECORD_LEN: usize = 8;
/// Bytes of one version-2 directory record (the lane's word count, state words included).
pub const LANE_COUNT_LEN: usize = 2;
/// Words of a version-2 lane's initial state, stored in front of its renormalization words.
pub const STATE_WORDS: usize = 2;
/// Most context classes the encoder gives plane 1 (the format allows
/// [`crate::params::MAX_CLASSES`]): more tables cost more than they save on the models measured.
pub(crate) const ENCODER_MAX_CLASSES: usize = 8;
/// Tensors with fewer values code plane 1 with one table (the encoder does not search classes).
pub(crate) const MIN_VALUES_FOR_CLASSES: usize = 1 << 14;

/// How to encode a tensor.
///
/// ```
/// use exprans::EncodeOptions;
/// // Blocks of 64 whole rows for 2-D weights (what the fused decode+matvec kernels read).
/// let opts = EncodeOptions { rows_per_block: Some(64), ..EncodeOptions::default() };
/// assert_eq!(opts.for_shape(&[384, 1536])?.block_size, 64 * 1536);
/// assert_eq!(opts.for_shape(&[384])?.block_size, exprans::DEFAULT_BLOCK_SIZE);
/// # Ok::<(), exprans::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EncodeOptions {
    /// Values per block: even, in `2..=MAX_BLOCK_SIZE`. Each block is [`LANES`] independent
    /// rANS lanes, so smaller blocks give a GPU more parallelism at a small cost in size.
    /// One-byte dtypes round it up to a multiple of 4 (so a block's output is whole u32 words).
    pub block_size: u32,
    /// Code only plane 0 (the exponent); keep the others raw. Faster to decode, a little larger.
    pub fast: bool,
    /// Blocks of this many whole rows for 2-D tensors (twice as many when a block of them would
    /// hold an odd number of values), instead of `block_size`: the layout the fused
    /// decode+matvec kernels need, one block per workgroup. Other tensors use `block_size`.
    pub rows_per_block: Option<u32>,
}

impl Default for EncodeOptions {
    fn default() -> Self {
        EncodeOptions {
            block_size: crate::params::DEFAULT_BLOCK_SIZE,
            fast: false,
            rows_per_block: None,
        }
    }
}

impl EncodeOptions {
    /// Checks the options.
    pub fn validate(&self) -> Result<()> {
        if self.block_size < 2
            || !self.block_size.is_multiple_of(2)
            || self.block_size > MAX_BLOCK_SIZE
        {
            return Err(Error::invalid(format!(
                "block size {} must be even and in 2..={MAX_BLOCK_SIZE}",
                self.block_size
            )));
        }
        if self.rows_per_block == Some(0) {
            return Err(Error::invalid("rows per block must be at least 1"));
        }
        Ok(())
    }

    /// The options for a tensor of this shape: with [`EncodeOptions::rows_per_block`], a 2-D
    /// tensor's block size becomes whole rows.
    pub fn for_shape(&self, shape: &[u64]) -> Result<EncodeOptions> {
        let (Some(rows), [_, cols]) = (self.rows_per_block, shape) else {
            return Ok(*self);
        };
        if rows == 0 {
            return Err(Error::invalid("rows per block must be at least 1"));
        }
        let mut values = cols.saturating_mul(rows as u64);
        if values % 2 == 1 {
            // Saturating too: an odd `u64::MAX` (a zero-row shape's columns) would overflow.
            values = values.saturating_mul(2);
        }
        if values > MAX_BLOCK_SIZE as u64 {
            return Err(Error::invalid(format!(
                "{rows} rows of {cols} values exceed the largest block ({MAX_BLOCK_SIZE} values)"
            )));
        }
        Ok(EncodeOptions {
            block_size: values.max(2) as u32,
            ..*self
        })
    }
}

/// Per-plane statistics of an encoded tensor, for reports.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PlaneStats {
    /// Whether the plane is entropy coded (else raw).
    pub coded: bool,
    /// Order-0 entropy of the plane in bits per value.
    pub entropy_bits: f64,
}

/// Number of values of lane `lane` in a block holding `block_values` values.
#[inline]
pub fn lane_value_count(block_values: usize, lane: usize) -> usize {
    if lane < block_values {
        (block_values - lane).div_ceil(LANES)
    } else {
        0
    }
}

fn entropy_bits(counts: &[u64; 256], n: usize) -> f64 {
    let n = n as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

fn histogram(plane: &[u8]) -> [u64; 256] {
    // Four sub-histograms break the store-to-load dependency on runs of equal bytes.
    let mut h = [[0u64; 256]; 4];
    let mut chunks = plane.chunks_exact(4);
    for c in &mut chunks {
        h[0][c[0] as usize] += 1;
        h[1][c[1] as usize] += 1;
        h[2][c[2] as usize] += 1;
        h[3][c[3] as usize] += 1;
    }
    for &b in chunks.remainder() {
        h[0][b as usize] += 1;
    }
    std::array::from_fn(|s| h[0][s] + h[1][s] + h[2][s] + h[3][s])
}

/// How one plane of an entry is stored.
#[derive(Clone, Debug)]
enum PlaneCoding {
    /// Its bytes as they are.
    Raw,
    /// rANS coded with `tables` (one per class of `classes`; planes other than 1 have one).
    Coded {
        tables: Vec<FreqTable>,
        classes: ClassMap,
    },
}

/// What one more plane-1 table is charged, in bits, when the encoder chooses context classes.
///
/// In a file a mantissa table takes 150-200 bytes. But a file laid out for the fused
/// decode+matvec kernels (`rows_per_block`) keeps every table on the GPU as `PROB_SCALE` u32
/// decode slots (16 KiB) for as long as the model is loaded: there a class must pay for those.
pub(crate) fn class_table_bits(opts: &EncodeOptions) -> f32 {
    if opts.rows_per_block.is_some() {
        8.0 * 4.0 * crate::params::PROB_SCALE as f32
    } else {
        8.0 * 160.0
    }
}

/// Plane 1's context classes and their tables, from `joint[p0][p1]` (see [`joint_histogram`]),
/// each class charged `table_bits` ([`class_table_bits`]), and the bytes the symbols will take
/// under them.
pub(crate) fn plane1_tables(
    joint: &[[u64; 256]],
    max_classes: usize,
    table_bits: f32,
) -> (ClassMap, Vec<FreqTable>, f64) {
    let (classes, counts) = classes::choose(joint, max_classes, table_bits);
    let mut coded_bytes = 0.0;
    let tables = counts
        .iter()
        .map(|c| {
            let table = FreqTable::from_counts(c).expect("every class holds values");
            coded_bytes += table.coded_bits(c) / 8.0;
            table
        })
        .collect();
    (classes, tables, coded_bytes)
}

/// What coding plane 1 with context classes costs, in bytes (tables and map included), and how.
fn plane1_coding(joint: &[[u64; 256]], max_classes: usize, table_bits: f32) -> (f64, PlaneCoding) {
    let (classes, tables, coded_bytes) = plane1_tables(joint, max_classes, table_bits);
    let mut bytes = Vec::new();
    classes.serialize(&mut bytes);
    for t in &tables {
        t.serialize(&mut bytes);
    }
    (
        coded_bytes + bytes.len() as f64,
        PlaneCoding::Coded { tables, classes },
    )
}

/// [`joint_histogram`] of a 16-bit or F32 tensor's planes 0 and 1, from its little-endian
/// `data`: the histogram of the values' top 16 bits, whose planes 0 and 1 they are.
fn top16_joint_histogram(layout: PlaneLayout, data: &[u8]) -> Vec<[u64; 256]> {
    let mut top16 = vec![0u32; 1 << 16];
    let flush = |top16: &mut [u32], joint: &mut [[u64; 256]]| {
        for (v, c) in top16.iter_mut().enumerate() {
            let [p0, p1] = crate::planes::split16(v as u16);
            joint[p0 as usize][p1 as usize] += *c as u64;
            *c = 0;
        }
    };
    let mut joint = vec![[0u64; 256]; 256];
    let width = layout.value_bytes();
    // u32 counters, flushed before they can overflow.
    for chunk in data.chunks(width * (u32::MAX as usize)) {
        for v in chunk.chunks_exact(width) {
            top16[u16::from_le_bytes([v[width - 2], v[width - 1]]) as usize] += 1;
        }
        flush(&mut top16, &mut joint);
    }
    joint
}

/// `joint[p0][p1]`: how often each (plane 0, plane 1) byte pair occurs.
#[cfg(any(test, feature = "internals"))]
pub(crate) fn joint_histogram(p0: &[u8], p1: &[u8]) -> Vec<[u64; 256]> {
    let mut flat = vec![0u32; 1 << 16];
    let mut joint = vec![[0u64; 256]; 256];
    // u32 counters, flushed before they can overflow.
    for (chunk0, chunk1) in p0
        .chunks(u32::MAX as usize)
        .zip(p1.chunks(u32::MAX as usize))
    {
        for (&a, &b) in chunk0.iter().zip(chunk1) {
            flat[(a as usize) << 8 | b as usize] += 1;
        }
        for (i, c) in flat.iter_mut().enumerate() {
            joint[i >> 8][i & 255] += *c as u64;
            *c = 0;
        }
    }
    joint
}

/// Encodes the little-endian `data` of a tensor of `layout`. Returns the entry bytes (a multiple
/// of [`crate::params::ALIGN`] long) and plane statistics, or `None` for the entry when no plane
/// gains from coding (the tensor is then best stored verbatim).
pub fn encode(
    layout: PlaneLayout,
    data: &[u8],
    opts: &EncodeOptions,
) -> Result<(Option<Vec<u8>>, Vec<PlaneStats>)> {
    encode_with_kernel(layout, data, opts, true)
}

/// [`encode`] with the vector encoder where the CPU has one (`vector`), or with the scalar one:
/// the same bytes.
pub(crate) fn encode_with_kernel(
    layout: PlaneLayout,
    data: &[u8],
    opts: &EncodeOptions,
    vector: bool,
) -> Result<(Option<Vec<u8>>, Vec<PlaneStats>)> {
    opts.validate()?;
    if !data.len().is_multiple_of(layout.value_bytes()) {
        return Err(Error::invalid(
            "byte length is not a multiple of the value size",
        ));
    }
    let n = data.len() / layout.value_bytes();
    let planes = layout.split(data);
    // Plane 1's classes need the joint histogram of planes 0 and 1, which also gives their
    // own histograms: one pass over the values' top 16 bits.
    let joint = (layout.plane_count() >= 2 && n >= MIN_VALUES_FOR_CLASSES && !opts.fast)
        .then(|| top16_joint_histogram(layout, data));
    let counts: Vec<[u64; 256]> = planes
        .iter()
        .enumerate()
        .map(|(p, plane)| match (&joint, p) {
            (Some(joint), 0) => std::array::from_fn(|p0| joint[p0].iter().sum()),
            (Some(joint), 1) => std::array::from_fn(|p1| joint.iter().map(|row| row[p1]).sum()),
            _ => histogram(plane),
        })
        .collect();
    let mut stats: Vec<PlaneStats> = counts
        .iter()
        .map(|c| PlaneStats {
            coded: false,
            entropy_bits: entropy_bits(c, n),
        })
        .collect();
    if n == 0 {
        return Ok((None, stats));
    }
    let block_size = layout_block_size(layout, opts.block_size);

    // Choose the coded planes: each must save more than its tables.
    let block_count = n.div_ceil(block_size as usize);
    let mut codings = vec![PlaneCoding::Raw; planes.len()];
    let mut saved_bytes = 0.0;
    for (p, c) in counts.iter().enumerate() {
        if opts.fast && p > 0 {
            break;
        }
        // Context classes pay only on tensors with many values: a class table costs 150 bytes
        // or more, which a small tensor's plane 1 cannot save.
        let (cost, coding) = if let (1, Some(joint)) = (p, &joint) {
            plane1_coding(joint, ENCODER_MAX_CLASSES, class_table_bits(opts))
        } else {
            let table = FreqTable::from_counts(c).expect("n > 0");
            let mut table_bytes = Vec::new();
            table.serialize(&mut table_bytes);
            let cost = table.coded_bits(c) / 8.0 + table_bytes.len() as f64;
            let coding = PlaneCoding::Coded {
                tables: vec![table],
                classes: ClassMap::single(),
            };
            (cost, coding)
        };
        if n as f64 - cost > 0.0 {
            saved_bytes += n as f64 - cost;
            codings[p] = coding;
        }
    }
    // A lane costs its word count, its initial state and up to one partly used word at its end.
    let lane_cost = (block_count * LANES * (LANE_COUNT_LEN + 2 * STATE_WORDS + 2)) as f64;
    if saved_bytes <= lane_cost {
        return Ok((None, stats));
    }
    for (s, c) in stats.iter_mut().zip(&codings) {
        s.coded = matches!(c, PlaneCoding::Coded { .. });
    }
    let entry = write_entry(layout, &planes, &codings, block_size, vector)?;
    if entry.len() >= data.len() {
        return Ok((None, stats));
    }
    Ok((Some(entry), stats))
}

/// The block size entries of `layout` get for a requested (valid) `block_size`: one-byte values
/// round it up to a multiple of 4, so that every block's output starts on a u32 word.
fn layout_block_size(layout: PlaneLayout, block_size: u32) -> u32 {
    match layout {
        PlaneLayout::Byte => block_size.next_multiple_of(4).min(MAX_BLOCK_SIZE),
        _ => block_size,
    }
}

/// Encodes with exactly the planes of `coded_mask` coded (bit `p` = plane `p`), whether or not that
/// pays: for tests and tools that need a particular plane choice. `block_size` as in
/// [`EncodeOptions`]; plane 1 gets up to `max_classes` context classes. Fails on an empty tensor
/// or a mask that is zero or names a missing plane.
#[cfg(any(test, feature = "internals"))]
pub fn encode_with_mask(
    layout: PlaneLayout,
    data: &[u8],
    block_size: u32,
    coded_mask: u8,
) -> Result<Vec<u8>> {
    encode_with_classes(layout, data, block_size, coded_mask, ENCODER_MAX_CLASSES)
}

/// [`encode_with_mask`] with at most `max_classes` classes for plane 1 (1: version 1's coding).
#[cfg(any(test, feature = "internals"))]
pub fn encode_with_classes(
    layout: PlaneLayout,
    data: &[u8],
    block_size: u32,
    coded_mask: u8,
    max_classes: usize,
) -> Result<Vec<u8>> {
    encode_planes(layout, data, block_size, coded_mask, max_classes, true)
}

/// [`encode_with_classes`] with the vector encoder where the CPU has one (`vector`), or with the
/// scalar one: the same bytes.
#[cfg(any(test, feature = "internals"))]
pub(crate) fn encode_planes(
    layout: PlaneLayout,
    data: &[u8],
    block_size: u32,
    coded_mask: u8,
    max_classes: usize,
    vector: bool,
) -> Result<Vec<u8>> {
    EncodeOptions {
        block_size,
        ..EncodeOptions::default()
    }
    .validate()?;
    if data.is_empty() || !data.len().is_multiple_of(layout.value_bytes()) {
        return Err(Error::invalid("need a non-empty whole number of values"));
    }
    if coded_mask == 0 || coded_mask >> layout.plane_count() != 0 {
        return Err(Error::invalid(format!(
            "invalid plane mask {coded_mask:#b}"
        )));
    }
    let planes = layout.split(data);
    let codings: Vec<PlaneCoding> = planes
        .iter()
        .enumerate()
        .map(|(p, plane)| {
            if coded_mask & (1 << p) == 0 {
                PlaneCoding::Raw
            } else if p == 1 {
                let joint = joint_histogram(&planes[0], plane);
                let table_bits = class_table_bits(&EncodeOptions::default());
                plane1_coding(&joint, max_classes, table_bits).1
            } else {
                PlaneCoding::Coded {
                    tables: vec![FreqTable::from_counts(&histogram(plane)).expect("non-empty")],
                    classes: ClassMap::single(),
                }
            }
        })
        .collect();
    write_entry(
        layout,
        &planes,
        &codings,
        layout_block_size(layout, block_size),
        vector,
    )
}

/// One coded plane as the encoder reads it: the symbol of value `i` is
/// `tables[class[context[i]]][bytes[i]]`, or `tables[0][bytes[i]]` without context classes.
struct CodedPlane<'a> {
    bytes: &'a [u8],
    /// Plane 1 with context classes: plane 0's bytes, and the class of each plane-0 byte.
    context: Option<(&'a [u8], &'a ClassMap)>,
    /// Encoder symbols of each class (only the first `classes` are used; a whole
    /// `MAX_CLASSES` so that a class number masked to 4 bits needs no bounds check).
    tables: Box<[[rans::RcpSymbol; 256]; crate::params::MAX_CLASSES]>,
}

const _: () = assert!(crate::params::MAX_CLASSES == 16);

impl CodedPlane<'_> {
    /// The symbol of value `i`.
    #[inline(always)]
    fn symbol(&self, i: usize) -> rans::RcpSymbol {
        let class = self.context.map_or(0, |(ctx, map)| map.class_of(ctx[i]));
        self.tables[class & 15][self.bytes[i] as usize]
    }

    /// The symbols of values `base..base + GROUP`.
    #[inline(always)]
    fn symbols(&self, base: usize) -> [rans::RcpSymbol; GROUP] {
        let bytes: &[u8; GROUP] = self.bytes[base..][..GROUP].try_into().unwrap();
        match self.context {
            None => std::array::from_fn(|k| self.tables[0][bytes[k] as usize]),
            Some((ctx, map)) => {
                let ctx: &[u8; GROUP] = ctx[base..][..GROUP].try_into().unwrap();
                std::array::from_fn(|k| self.tables[map.class_of(ctx[k]) & 15][bytes[k] as usize])
            }
        }
    }
}

/// Encodes block `b` into `scratch` (resized as needed): returns the final state of each lane
/// and the range of `scratch` holding each lane's words, in decoding order.
fn encode_block(
    coded: &[CodedPlane],
    vector: Option<&VectorEncoder>,
    n: usize,
    block: usize,
    b: usize,
    scratch: &mut Vec<u16>,
) -> ([u32; LANES], [std::ops::Range<usize>; LANES]) {
    let start = b * block;
    let values = block.min(n - start);
    let steps = values.div_ceil(LANES);
    // Lane l writes its words backwards (they are produced in reverse) into its own region
    // [l * region, (l + 1) * region): one word per symbol plus one spare slot (`encode_step`),
    // padded to an odd number of 64-byte lines (32 words) so that the lanes' current lines fall
    // in different L1 sets (a stride near a multiple of 4 KiB crowded them into one).
    let region = (steps * coded.len() + 1).next_multiple_of(64) + 32;
    if scratch.len() < LANES * region {
        // Zeroed by the allocator: pages of the regions' unused bottoms are never touched.
        *scratch = vec![0; LANES * region];
    }
    if let Some(vector) = vector {
        let (states, pos) = vector.encode_block(coded, start, values, region, scratch);
        return (states, std::array::from_fn(|l| pos[l]..(l + 1) * region));
    }
    let mut states = [RANS_L; LANES];
    let mut ranges: [std::ops::Range<usize>; LANES] = Default::default();
    for g in 0..LANES / GROUP {
        let lane0 = g * GROUP;
        let (x, pos) = match coded {
            [a] => encode_group([a], start, values, lane0, region, scratch),
            [a, b] => encode_group([a, b], start, values, lane0, region, scratch),
            [a, b, c] => encode_group([a, b, c], start, values, lane0, region, scratch),
            [a, b, c, d] => encode_group([a, b, c, d], start, values, lane0, region, scratch),
            _ => unreachable!("1 to 4 coded planes"),
        };
        for k in 0..GROUP {
            let l = lane0 + k;
            states[l] = x[k];
            ranges[l] = pos[k]..(l + 1) * region;
        }
    }
    (states, ranges)
}

/// Lanes encoded together by one [`encode_group`]: their states and positions stay in
/// registers, and their independent steps overlap their multiply latencies.
const GROUP: usize = 4;

/// Encodes lanes `lane0..lane0 + GROUP` of the block of `values` values at `start`, with the `C`
/// coded planes: returns their final states and word positions (see [`encode_block`]).
#[inline(always)]
fn encode_group<const C: usize>(
    coded: [&CodedPlane; C],
    start: usize,
    values: usize,
    lane0: usize,
    region: usize,
    words: &mut [u16],
) -> ([u32; GROUP], [usize; GROUP]) {
    let mut x = [RANS_L; GROUP];
    // Lane l's words go below (l + 1) * region.
    let mut pos: [usize; GROUP] = std::array::from_fn(|k| (lane0 + k + 1) * region);
    // Value j of every lane, last value first; within a value, planes last first. The last
    // value may be missing from some lanes.
    let last_step = values.div_ceil(LANES) - 1;
    let base = start + last_step * LANES + lane0;
    let here = (start + values).saturating_sub(base).min(GROUP);
    for plane in coded.iter().rev() {
        for k in 0..here {
            encode_step(&mut x[k], &mut pos[k], words, plane.symbol(base + k));
        }
    }
    for j in (0..last_step).rev() {
        let base = start + j * LANES + lane0;
        for plane in coded.iter().rev() {
            let symbols = plane.symbols(base);
            for k in 0..GROUP {
                encode_step(&mut x[k], &mut pos[k], words, symbols[k]);
            }
        }
    }
    (x, pos)
}

/// One encoder step of a lane whose words go backwards into `words` below `pos`: stores the
/// candidate word below `pos` unconditionally and moves `pos` down only when it is emitted, so
/// no branch depends on the data. Each lane's region keeps one spare slot below its words.
#[inline(always)]
fn encode_step(x: &mut u32, pos: &mut usize, words: &mut [u16], sym: rans::RcpSymbol) {
    let (next, word, emit) = rans::rcp_encode(*x, sym);
    words[*pos - 1] = word;
    *pos -= emit as usize;
    *x = next;
}

/// No vector encoder on this target: the scalar one codes every block.
#[cfg(not(target_arch = "x86_64"))]
enum VectorEncoder {}

#[cfg(not(target_arch = "x86_64"))]
impl VectorEncoder {
    fn new(_: &[CodedPlane]) -> Option<VectorEncoder> {
        None
    }

    fn encode_block(
        &self,
        _: &[CodedPlane],
        _: usize,
        _: usize,
        _: usize,
        _: &mut [u16],
    ) -> ([u32; LANES], [usize; LANES]) {
        match *self {}
    }
}

/// One encoded block: final lane states, lane lengths in words, the lanes' words concatenated.
#[cfg(all(feature = "parallel", not(target_arch = "wasm32")))]
struct EncodedBlock {
    states: [u32; LANES],
    lens: [usize; LANES],
    words: Vec<u16>,
}

/// Appends the directory records and words of one block after another to a coded entry whose
/// header, tables and (zeroed) directory are in place.
struct EntryWriter {
    entry: Vec<u8>,
    directory_offset: usize,
    /// Values of the entry and per block, to tell lanes without values.
    n: usize,
    block: usize,
    /// Blocks appended so far.
    blocks: usize,
    /// Words appended so far.
    words: usize,
}

impl EntryWriter {
    /// Appends the next block: its final lane states and each lane's words. A lane with values
    /// gets its state (low word first) and then its words; a lane without gets nothing.
    fn append<'w>(
        &mut self,
        states: &[u32; LANES],
        lanes: impl Iterator<Item = &'w [u16]>,
    ) -> Result<()> {
        let values = self.block.min(self.n - self.blocks * self.block);
        for (l, (&state, words)) in states.iter().zip(lanes).enumerate() {
            let count = if lane_value_count(values, l) == 0 {
                debug_assert!(state == RANS_L && words.is_empty());
                0
            } else {
                STATE_WORDS + words.len()
            };
            let count = u16::try_from(count).expect("a lane's words fit u16 (params.rs)");
            let at = self.directory_offset + (self.blocks * LANES + l) * LANE_COUNT_LEN;
            self.entry[at..][..LANE_COUNT_LEN].copy_from_slice(&count.to_le_bytes());
            if count == 0 {
                continue;
            }
            self.entry.extend_from_slice(&(state as u16).to_le_bytes());
            self.entry
                .extend_from_slice(&((state >> 16) as u16).to_le_bytes());
            if cfg!(target_endian = "little") {
                self.entry.extend_from_slice(bytemuck::cast_slice(words));
            } else {
                self.entry
                    .extend(words.iter().flat_map(|w| w.to_le_bytes()));
            }
            self.words += count as usize;
        }
        if u32::try_from(self.words).is_err() {
            return Err(Error::invalid(
                "tensor too large: more than 2^32 words in one entry",
            ));
        }
        self.blocks += 1;
        Ok(())
    }
}

/// Encodes every block and appends it to `writer`, in block order; blocks are encoded on the
/// current rayon pool when it has more than one thread (same bytes).
fn encode_blocks(
    coded: &[CodedPlane],
    vector: Option<&VectorEncoder>,
    n: usize,
    block: usize,
    writer: &mut EntryWriter,
) -> Result<()> {
    let block_count = n.div_ceil(block);
    #[cfg(all(feature = "parallel", not(target_arch = "wasm32")))]
    if block_count > 1 && rayon::current_num_threads() > 1 {
        use rayon::prelude::*;
        let blocks: Vec<EncodedBlock> = (0..block_count)
            .into_par_iter()
            .map_init(Vec::new, |scratch, b| {
                let (states, ranges) = encode_block(coded, vector, n, block, b, scratch);
                let lens = ranges.clone().map(|r| r.len());
                let mut words = Vec::with_capacity(lens.iter().sum());
                for r in ranges {
                    words.extend_from_slice(&scratch[r]);
                }
                EncodedBlock {
                    states,
                    lens,
                    words,
                }
            })
            .collect();
        for b in &blocks {
            let mut rest = &b.words[..];
            let lanes = b.lens.iter().map(|&len| {
                let (lane, tail) = rest.split_at(len);
                rest = tail;
                lane
            });
            writer.append(&b.states, lanes)?;
        }
        return Ok(());
    }
    let mut scratch = Vec::new();
    for b in 0..block_count {
        let (states, ranges) = encode_block(coded, vector, n, block, b, &mut scratch);
        writer.append(&states, ranges.into_iter().map(|r| &scratch[r]))?;
    }
    Ok(())
}

fn write_entry(
    layout: PlaneLayout,
    planes: &[Vec<u8>],
    codings: &[PlaneCoding],
    block_size: u32,
    vector: bool,
) -> Result<Vec<u8>> {
    let n = planes[0].len();
    let block = block_size as usize;
    let coded: Vec<CodedPlane> = planes
        .iter()
        .zip(codings)
        .filter_map(|(p, c)| match c {
            PlaneCoding::Raw => None,
            PlaneCoding::Coded { tables, classes } => {
                let mut all = Box::new([[rans::RcpSymbol::default(); 256]; MAX_CLASSES]);
                for (slot, t) in all.iter_mut().zip(tables) {
                    *slot = rans::rcp_table(t);
                }
                Some(CodedPlane {
                    bytes: p,
                    context: (classes.classes() > 1).then_some((&planes[0][..], classes)),
                    tables: all,
                })
            }
        })
        .collect();
    let vector = vector.then(|| VectorEncoder::new(&coded)).flatten();
    let coded_mask = codings
        .iter()
        .enumerate()
        .filter(|(_, c)| matches!(c, PlaneCoding::Coded { .. }))
        .fold(0u8, |m, (p, _)| m | 1 << p);
    let mut table_bytes = Vec::new();
    let mut plane1_classes = 0;
    for (p, c) in codings.iter().enumerate() {
        if let PlaneCoding::Coded { tables, classes } = c {
            if p == 1 {
                plane1_classes = classes.classes() as u8;
                classes.serialize(&mut table_bytes);
            }
            for t in tables {
                t.serialize(&mut table_bytes);
            }
        }
    }
    let header = EntryHeader {
        version: ENTRY_VERSION,
        layout,
        coded_mask,
        classes: plane1_classes,
        value_count: n as u64,
        block_size,
        tables_len: table_bytes.len() as u32,
        words_count: 0,
    };

    // Everything before the words depends only on the tables and the block count: lay it out,
    // then append the words block after block, then the raw planes. The capacity bounds the
    // words by one per symbol; pages never written are never touched.
    let directory_offset = align_up(ENTRY_HEADER_LEN + table_bytes.len());
    let words_offset = align_up(directory_offset + n.div_ceil(block) * LANES * LANE_COUNT_LEN);
    let raw_count = planes.len() - coded.len();
    let capacity = align_up(words_offset + 2 * n * coded.len() + 2 * STATE_WORDS * LANES)
        + raw_count * align_up(n);
    let mut entry = Vec::with_capacity(capacity);
    entry.resize(words_offset, 0);
    entry[ENTRY_HEADER_LEN..][..table_bytes.len()].copy_from_slice(&table_bytes);
    let mut writer = EntryWriter {
        entry,
        directory_offset,
        n,
        block,
        blocks: 0,
        words: 0,
    };
    encode_blocks(&coded, vector.as_ref(), n, block, &mut writer)?;
    let EntryWriter {
        mut entry, words, ..
    } = writer;
    entry.resize(align_up(entry.len()), 0);
    for (plane, coding) in planes.iter().zip(codings) {
        if matches!(coding, PlaneCoding::Raw) {
            entry.extend_from_slice(plane);
            entry.resize(align_up(entry.len()), 0);
        }
    }
    let header = EntryHeader {
        words_count: words as u64,
        ..header
    };
    header.write(&mut entry[..ENTRY_HEADER_LEN]);
    let geometry = header.geometry()?;
    assert_eq!(geometry.words_offset, words_offset, "entry layout");
    assert_eq!(geometry.entry_len, entry.len(), "entry layout");
    entry.shrink_to_fit();
    Ok(entry)
}

fn checked_align_up(n: usize) -> Option<usize> {
    Some(n.checked_add(ALIGN - 1)? / ALIGN * ALIGN)
}

/// The fixed header of a coded entry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EntryHeader {
    /// Entry version (1 or 2).
    pub version: u8,
    /// Plane layout.
    pub layout: PlaneLayout,
    /// Bit `p` set: plane `p` is rANS coded.
    pub coded_mask: u8,
    /// Version 2: number of context classes of plane 1 (`1..=MAX_CLASSES` when plane 1 is coded,
    /// else 0). Version 1: 0 (reserved byte).
    pub classes: u8,
    /// Number of values.
    pub value_count: u64,
    /// Values per block.
    pub block_size: u32,
    /// Bytes of the serialized frequency tables (and, in version 2, plane 1's class map).
    pub tables_len: u32,
    /// Number of 16-bit words in the word section.
    pub words_count: u64,
}

/// Byte offsets of an entry's sections, all derived from its header.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Geometry {
    /// Number of blocks.
    pub block_count: usize,
    /// Start of the frequency tables.
    pub tables_offset: usize,
    /// Start of the lane directory.
    pub directory_offset: usize,
    /// One past the lane directory's last byte.
    pub directory_end: usize,
    /// Start of the 16-bit word section.
    pub words_offset: usize,
    /// Start of each raw plane (`None` for coded planes).
    pub raw_offsets: Vec<Option<usize>>,
    /// Total entry length, padding included.
    pub entry_len: usize,
}

impl EntryHeader {
    fn write(&self, out: &mut [u8]) {
        out[0..4].copy_from_slice(&ENTRY_MAGIC);
        out[4] = self.version;
        out[5] = self.layout as u8;
        out[6] = self.coded_mask;
        out[7] = self.classes;
        out[8..16].copy_from_slice(&self.value_count.to_le_bytes());
        out[16..20].copy_from_slice(&self.block_size.to_le_bytes());
        out[20..24].copy_from_slice(&self.tables_len.to_le_bytes());
        out[24..32].copy_from_slice(&self.words_count.to_le_bytes());
    }

    /// Parses and checks the header fields on their own (not yet against the entry length).
    pub fn parse(entry: &[u8]) -> Result<EntryHeader> {
        if entry.len() < ENTRY_HEADER_LEN {
            return Err(Error::corrupt("coded entry shorter than its header"));
        }
        if entry[0..4] != ENTRY_MAGIC {
            return Err(Error::corrupt("coded entry has a bad magic number"));
        }
        let version = entry[4];
        if !(1..=ENTRY_VERSION).contains(&version) {
            return Err(Error::corrupt(format!(
                "coded entry version {version} is not supported (this build reads versions 1 to \
                 {ENTRY_VERSION})"
            )));
        }
        let layout = PlaneLayout::from_code(entry[5])
            .filter(|l| l.in_version(version))
            .ok_or_else(|| {
                Error::corrupt(format!(
                    "unknown plane layout {} in a version-{version} entry",
                    entry[5]
                ))
            })?;
        let le32 = |o: usize| u32::from_le_bytes(entry[o..o + 4].try_into().unwrap());
        let le64 = |o: usize| u64::from_le_bytes(entry[o..o + 8].try_into().unwrap());
        let header = EntryHeader {
            version,
            layout,
            coded_mask: entry[6],
            classes: entry[7],
            value_count: le64(8),
            block_size: le32(16),
            tables_len: le32(20),
            words_count: le64(24),
        };
        if header.coded_mask == 0 || header.coded_mask >> layout.plane_count() != 0 {
            return Err(Error::corrupt("coded entry has an invalid plane mask"));
        }
        let plane1_coded = header.coded_mask & 0b10 != 0;
        let classes_ok = match (version, plane1_coded) {
            (1, _) | (_, false) => header.classes == 0,
            _ => (1..=crate::params::MAX_CLASSES).contains(&(header.classes as usize)),
        };
        if !classes_ok {
            return Err(Error::corrupt(format!(
                "coded entry has an invalid context class count {}",
                header.classes
            )));
        }
        let max_block = if version == 1 {
            MAX_BLOCK_SIZE_V1
        } else {
            MAX_BLOCK_SIZE
        };
        let multiple = if layout == PlaneLayout::Byte { 4 } else { 2 };
        if header.block_size < 2
            || !header.block_size.is_multiple_of(multiple)
            || header.block_size > max_block
        {
            return Err(Error::corrupt(format!(
                "invalid block size {} (a multiple of {multiple} in 2..={max_block})",
                header.block_size
            )));
        }
        Ok(header)
    }

    /// Number of coded planes.
    pub fn coded_count(&self) -> usize {
        self.coded_mask.count_ones() as usize
    }

    /// Number of frequency tables: one per coded plane, plane 1 one per class.
    pub fn table_count(&self) -> usize {
        self.coded_count() + (self.classes as usize).saturating_sub(1)
    }

    /// Bytes of one lane's directory record.
    fn lane_record_len(&self) -> usize {
        if self.version == 1 {
            LANE_RECORD_LEN
        } else {
            LANE_COUNT_LEN
        }
    }

    /// The section offsets this header implies. Fails when they overflow the address space.
    pub fn geometry(&self) -> Result<Geometry> {
        let too_big = || Error::corrupt("coded entry sizes overflow");
        let n = usize::try_from(self.value_count).map_err(|_| too_big())?;
        let block_count = n.div_ceil(self.block_size as usize);
        let tables_offset = ENTRY_HEADER_LEN;
        // Checked: `tables_len` is a hostile u32, as large as `usize` on 32-bit targets.
        let directory_offset = usize::try_from(self.tables_len)
            .ok()
            .and_then(|t| checked_align_up(t.checked_add(tables_offset)?))
            .ok_or_else(too_big)?;
        let directory_end = block_count
            .checked_mul(LANES * self.lane_record_len())
            .and_then(|d| d.checked_add(directory_offset))
            .ok_or_else(too_big)?;
        let words_offset = checked_align_up(directory_end).ok_or_else(too_big)?;
        let mut end = usize::try_from(self.words_count)
            .ok()
            .and_then(|w| w.checked_mul(2))
            .and_then(|w| checked_align_up(w.checked_add(words_offset)?))
            .ok_or_else(too_big)?;
        let mut raw_offsets = Vec::with_capacity(self.layout.plane_count());
        for p in 0..self.layout.plane_count() {
            if self.coded_mask & (1 << p) != 0 {
                raw_offsets.push(None);
            } else {
                raw_offsets.push(Some(end));
                end = end
                    .checked_add(n)
                    .and_then(checked_align_up)
                    .ok_or_else(too_big)?;
            }
        }
        Ok(Geometry {
            block_count,
            tables_offset,
            directory_offset,
            directory_end,
            words_offset,
            raw_offsets,
            entry_len: end,
        })
    }
}

/// A validated, borrowed view of a coded entry: everything a decoder (CPU or GPU) needs.
///
/// Construction checks every field against the entry length and the expected value count, so
/// decoders can rely on: tables sum to `PROB_SCALE`; lane word ranges are in bounds, ordered, and
/// no longer than one word per coded symbol; initial states are in `[RANS_L, 2^32)`; padding
/// between sections is zero.
#[derive(Clone, Debug)]
pub struct CodedEntry<'a> {
    /// The parsed header.
    pub(crate) header: EntryHeader,
    /// Section offsets.
    pub(crate) geometry: Geometry,
    /// The frequency tables: each coded plane's, in plane order; plane 1's one per class.
    pub(crate) tables: Vec<FreqTable>,
    /// Plane 1's context classes (a single class when it has one table or is not coded).
    pub(crate) classes: ClassMap,
    /// Per lane of every block: initial state, first word after the state, end word, and the
    /// start of its *region* ([`CodedEntry::region`]).
    lanes: Vec<[u32; 4]>,
    /// One past the last region.
    regions_end: u32,
    /// The whole entry.
    pub(crate) bytes: &'a [u8],
}

/// Where the sections of a coded entry lie, as byte ranges of its stored bytes
/// (docs/FORMAT.md section 4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntrySections {
    /// The serialized frequency tables of the coded planes (and plane 1's class map).
    pub tables: std::ops::Range<usize>,
    /// The lane directory: per lane, version 1: initial state and first word; version 2: the
    /// lane's word count.
    pub directory: std::ops::Range<usize>,
    /// The 16-bit rANS words.
    pub words: std::ops::Range<usize>,
    /// Each plane stored raw, in plane order (`None` for a coded plane).
    pub raw_planes: Vec<Option<std::ops::Range<usize>>>,
}

/// One lane's directory record, with its word range resolved.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LaneRecord {
    /// Initial decoder state.
    pub state: u32,
    /// First word the lane decodes (version 2: after its state words).
    pub first_word: usize,
    /// One past its last word.
    pub end_word: usize,
}

/// The decode tables of an entry as every decoder reads them: plane `p`'s table of value `i`
/// starts at slot `plane_base[p]`, except plane 1's, which starts at `class_base[plane 0 byte]`.
#[derive(Clone, Debug)]
pub(crate) struct DecodeTables {
    /// `PROB_SCALE` packed slots per table (`rans::decode_table`), tables in entry order.
    pub slots: Vec<rans::PackedSlot>,
    /// Slot of each coded plane's (first) table; 0 for raw planes.
    pub plane_base: [usize; 4],
    /// Slot of plane 1's table for each plane-0 byte (all `plane_base[1]` with one class).
    pub class_base: [u32; 256],
}

impl DecodeTables {
    /// The table of coded plane `p` (not 1).
    pub fn plane(&self, p: usize) -> &[rans::PackedSlot; crate::params::PROB_SCALE as usize] {
        self.slots[self.plane_base[p]..][..crate::params::PROB_SCALE as usize]
            .try_into()
            .expect("table size")
    }

    /// Plane 1's table for a value whose plane-0 byte is `p0`.
    #[inline(always)]
    pub fn plane1(&self, p0: u8) -> &[rans::PackedSlot] {
        &self.slots[self.class_base[p0 as usize] as usize..][..crate::params::PROB_SCALE as usize]
    }
}

fn all_zero(bytes: &[u8]) -> bool {
    bytes.iter().all(|&b| b == 0)
}

impl<'a> CodedEntry<'a> {
    /// Parses and validates a coded entry that must hold `value_count` values of `layout`.
    pub(crate) fn parse(
        bytes: &'a [u8],
        layout: PlaneLayout,
        value_count: u64,
    ) -> Result<CodedEntry<'a>> {
        let header = EntryHeader::parse(bytes)?;
        if header.layout != layout {
            return Err(Error::corrupt(
                "coded entry plane layout does not match the dtype",
            ));
        }
        if header.value_count != value_count {
            return Err(Error::corrupt(format!(
                "coded entry holds {} values, the shape says {value_count}",
                header.value_count
            )));
        }
        let geometry = header.geometry()?;
        if geometry.entry_len != bytes.len() {
            return Err(Error::corrupt(format!(
                "coded entry is {} bytes, its header implies {}",
                bytes.len(),
                geometry.entry_len
            )));
        }
        let table_bytes = &bytes[geometry.tables_offset..][..header.tables_len as usize];
        let mut tables = Vec::with_capacity(header.table_count());
        let mut classes = ClassMap::single();
        let mut pos = 0;
        for p in 0..layout.plane_count() {
            if header.coded_mask & (1 << p) == 0 {
                continue;
            }
            let mut count = 1;
            if p == 1 && header.version >= 2 {
                let (map, used) =
                    ClassMap::deserialize(&table_bytes[pos..], header.classes as usize)?;
                (classes, count) = (map, header.classes as usize);
                pos += used;
            }
            for _ in 0..count {
                let (t, used) = FreqTable::deserialize(&table_bytes[pos..])?;
                tables.push(t);
                pos += used;
            }
        }
        if pos != table_bytes.len() {
            return Err(Error::corrupt("frequency tables do not fill their section"));
        }
        let n = header.value_count as usize;
        let words_end = geometry.words_offset + 2 * header.words_count as usize;
        let mut gaps = vec![
            geometry.tables_offset + table_bytes.len()..geometry.directory_offset,
            geometry.directory_end..geometry.words_offset,
            words_end..align_up(words_end),
        ];
        gaps.extend(
            geometry
                .raw_offsets
                .iter()
                .flatten()
                .map(|&o| o + n..align_up(o + n)),
        );
        if !gaps.into_iter().all(|g| all_zero(&bytes[g])) {
            return Err(Error::corrupt("coded entry padding is not zero"));
        }
        let mut entry = CodedEntry {
            header,
            geometry,
            tables,
            classes,
            lanes: Vec::new(),
            regions_end: 0,
            bytes,
        };
        (entry.lanes, entry.regions_end) = entry.read_directory()?;
        Ok(entry)
    }

    /// Reads and checks the lane directory; returns each lane's record and the end of the last
    /// region.
    fn read_directory(&self) -> Result<(Vec<[u32; 4]>, u32)> {
        let n = self.header.value_count as usize;
        let block = self.header.block_size as usize;
        let coded = self.header.coded_count();
        let dir = &self.bytes[self.geometry.directory_offset..self.geometry.directory_end];
        let words = self.word_bytes();
        let word = |i: usize| u16::from_le_bytes([words[2 * i], words[2 * i + 1]]) as u32;
        let total = self.header.words_count as usize;
        let lane_count = self.geometry.block_count * LANES;
        let mut lanes = Vec::with_capacity(lane_count);
        let mut begin = 0usize;
        // Version 1: where the next lane's region would start if its state were stored in front
        // of its words.
        let mut region_v1 = 0usize;
        for i in 0..lane_count {
            let (b, l) = (i / LANES, i % LANES);
            let values = lane_value_count(block.min(n - b * block), l);
            let fail = |what: &str| Error::corrupt(format!("{what} at block {b} lane {l}"));
            let (state, first, end) = if self.header.version == 1 {
                let rec = |i: usize, o: usize| {
                    u32::from_le_bytes(dir[i * LANE_RECORD_LEN + o..][..4].try_into().unwrap())
                        as usize
                };
                let first = rec(i, 4);
                let end = if i + 1 < lane_count {
                    rec(i + 1, 4)
                } else {
                    total
                };
                if first != begin || end < first {
                    return Err(fail("lane directory out of order"));
                }
                (rec(i, 0) as u32, first, end)
            } else {
                let count = u16::from_le_bytes([dir[2 * i], dir[2 * i + 1]]) as usize;
                let end = begin + count;
                if end > total {
                    return Err(fail("lane directory runs past the word section"));
                }
                match (values, count) {
                    (0, 0) => (RANS_L, begin, begin),
                    (0, _) => return Err(fail("words in a lane without values")),
                    (_, c) if c < STATE_WORDS => return Err(fail("lane without its state")),
                    _ => (
                        word(begin) | word(begin + 1) << 16,
                        begin + STATE_WORDS,
                        end,
                    ),
                }
            };
            if state < RANS_L {
                return Err(fail("lane state below the rANS bound"));
            }
            if end - first > values * coded {
                return Err(fail("lane longer than its symbols allow"));
            }
            let region = if self.header.version == 1 {
                let at = region_v1;
                if values > 0 || state != RANS_L {
                    region_v1 += STATE_WORDS + end - first;
                }
                at
            } else {
                begin
            };
            lanes.push([state, first as u32, end as u32, region as u32]);
            begin = end;
        }
        if begin != total {
            return Err(Error::corrupt(
                "lane directory does not cover the word section",
            ));
        }
        let regions_end = if self.header.version == 1 {
            region_v1
        } else {
            total
        };
        let regions_end = u32::try_from(regions_end)
            .map_err(|_| Error::corrupt("coded entry has more than 2^32 words"))?;
        Ok((lanes, regions_end))
    }

    /// Number of values.
    pub fn value_count(&self) -> usize {
        self.header.value_count as usize
    }

    /// Entry version (1 or 2).
    pub fn version(&self) -> u8 {
        self.header.version
    }

    /// Byte planes of a value: 1 for one-byte dtypes, 2 for BF16/F16, 4 for F32.
    pub fn plane_count(&self) -> usize {
        self.header.layout.plane_count()
    }

    /// Whether plane `plane` (0: the high byte, the exponent's) is rANS coded; `false` for a
    /// plane stored raw or past [`CodedEntry::plane_count`].
    pub fn plane_is_coded(&self, plane: usize) -> bool {
        plane < self.plane_count() && self.header.coded_mask & (1 << plane) != 0
    }

    /// Context classes of plane 1 (1 when it has one table or is raw).
    pub fn plane1_classes(&self) -> usize {
        self.classes.classes()
    }

    /// Values per block (the last block may hold fewer).
    pub fn block_size(&self) -> u32 {
        self.header.block_size
    }

    /// Number of blocks.
    pub fn block_count(&self) -> usize {
        self.geometry.block_count
    }

    /// The byte ranges of the entry's sections.
    pub fn sections(&self) -> EntrySections {
        let g = &self.geometry;
        let n = self.value_count();
        EntrySections {
            tables: g.tables_offset..g.tables_offset + self.header.tables_len as usize,
            directory: g.directory_offset..g.directory_end,
            words: g.words_offset..g.words_offset + 2 * self.header.words_count as usize,
            raw_planes: g.raw_offsets.iter().map(|o| o.map(|o| o..o + n)).collect(),
        }
    }

    /// Bytes of the decoded values (`value_count` times the value size).
    pub fn decoded_len(&self) -> usize {
        self.value_count() * self.header.layout.value_bytes()
    }

    /// The word section as little-endian bytes.
    pub(crate) fn word_bytes(&self) -> &'a [u8] {
        &self.bytes[self.geometry.words_offset..][..2 * self.header.words_count as usize]
    }

    /// Raw bytes of plane `p`, or `None` when it is coded.
    pub(crate) fn raw_plane(&self, p: usize) -> Option<&'a [u8]> {
        self.geometry.raw_offsets[p].map(|o| &self.bytes[o..][..self.value_count()])
    }

    /// Where lane `lane` of block `block` starts in the entry's *regions*: the lane's initial
    /// state (two words, low first) followed by its words, lanes one after another, a lane without
    /// values and with state `RANS_L` taking no words. In version 2 that is the word section
    /// itself; for version 1 the GPU packer builds it (so that every kernel reads one layout).
    /// `lane` may be `LANES` (lane 0 of the next block); past the last lane, the end of the
    /// regions.
    #[cfg_attr(not(feature = "gpu"), allow(dead_code))] // the GPU packer's
    pub(crate) fn region(&self, block: usize, lane: usize) -> usize {
        self.lanes
            .get(block * LANES + lane)
            .map_or(self.regions_end as usize, |r| r[3] as usize)
    }

    /// Directory record of lane `lane` of block `block`.
    #[inline]
    pub(crate) fn lane(&self, block: usize, lane: usize) -> LaneRecord {
        let [state, first, end, _] = self.lanes[block * LANES + lane];
        LaneRecord {
            state,
            first_word: first as usize,
            end_word: end as usize,
        }
    }

    /// The decode tables of the coded planes.
    pub(crate) fn decode_tables(&self) -> DecodeTables {
        let scale = crate::params::PROB_SCALE as usize;
        let slots: Vec<rans::PackedSlot> =
            self.tables.iter().flat_map(rans::decode_table).collect();
        let mut plane_base = [0usize; 4];
        let mut next = 0;
        for (p, base) in plane_base.iter_mut().enumerate() {
            if self.plane_is_coded(p) {
                *base = next;
                next += if p == 1 { self.classes.classes() } else { 1 } * scale;
            }
        }
        let class_base = std::array::from_fn(|b| {
            (plane_base[1] + self.classes.class_of(b as u8) * scale) as u32
        });
        DecodeTables {
            slots,
            plane_base,
            class_base,
        }
    }

    /// Bytes spent on each part of the entry: (header + tables + padding, directory, words, raw).
    pub fn size_breakdown(&self) -> SizeBreakdown {
        let g = &self.geometry;
        let raw: usize = (0..self.header.layout.plane_count())
            .filter_map(|p| self.raw_plane(p).map(|r| r.len()))
            .sum();
        // Version 2: every lane with values starts with its state.
        let (n, block) = (self.value_count(), self.header.block_size as usize);
        let states = if self.header.version == 1 {
            0
        } else {
            (0..g.block_count)
                .map(|b| LANES.min(block.min(n - b * block)) * 2 * STATE_WORDS)
                .sum()
        };
        SizeBreakdown {
            tables: self.header.tables_len as usize,
            directory: g.directory_end - g.directory_offset + states,
            words: 2 * self.header.words_count as usize - states,
            raw,
            header_and_padding: 0,
        }
        .with_padding(self.bytes.len())
    }
}

/// Where the bytes of a coded entry go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SizeBreakdown {
    /// Serialized frequency tables (and plane 1's class map).
    pub tables: usize,
    /// Lane directory and the lanes' initial states (version 2 stores them in front of each
    /// lane's words; counted here, not under `words`).
    pub directory: usize,
    /// rANS renormalization words.
    pub words: usize,
    /// Raw planes.
    pub raw: usize,
    /// Fixed header and alignment padding.
    pub header_and_padding: usize,
}

impl SizeBreakdown {
    fn with_padding(mut self, total: usize) -> Self {
        self.header_and_padding = total - self.tables - self.directory - self.words - self.raw;
        self
    }
}
