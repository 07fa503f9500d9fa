//! The tensor codec: one float tensor <-> one compressed entry (docs/FORMAT.md, "Coded entry").
//!
//! A coded entry holds the planes of [`crate::planes`]. Coded planes share one set of rANS lanes:
//! the values are cut into blocks of `block_size` values, each block into [`LANES`] lanes (lane
//! `l` of a block holds values `l, l + LANES, l + 2*LANES, ...` of the block), and each lane is one
//! independent rANS stream that codes, value after value, one symbol of every coded plane in plane
//! order. Planes that do not pay for their table are stored raw.
//!
//! ```text
//! entry = header (32 B) | tables | directory | words | raw planes      (each section 16-aligned)
//! directory = per block, per lane: (state: u32, first word: u32)
//! ```

use crate::params::{align_up, ALIGN, LANES, MAX_BLOCK_SIZE, RANS_L};
use crate::planes::PlaneLayout;
use crate::rans::{self, FreqTable};
use crate::{Error, Result};

/// Magic bytes that open every coded entry.
pub const ENTRY_MAGIC: [u8; 4] = *b"XRNS";
/// Version of the coded-entry layout written by this library.
pub const ENTRY_VERSION: u8 = 1;
/// Size of the fixed entry header.
pub const ENTRY_HEADER_LEN: usize = 32;
/// Bytes of one directory record (state, first word).
pub const LANE_RECORD_LEN: usize = 8;

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

/// Encodes the little-endian `data` of a float tensor. Returns the entry bytes (a multiple of
/// [`crate::params::ALIGN`] long) and plane statistics, or `None` for the entry when no plane gains
/// from coding (the tensor is then best stored verbatim).
pub fn encode(
    layout: PlaneLayout,
    data: &[u8],
    opts: &EncodeOptions,
) -> Result<(Option<Vec<u8>>, Vec<PlaneStats>)> {
    opts.validate()?;
    if !data.len().is_multiple_of(layout.value_bytes()) {
        return Err(Error::invalid(
            "byte length is not a multiple of the value size",
        ));
    }
    let n = data.len() / layout.value_bytes();
    let planes = layout.split(data);
    let counts: Vec<[u64; 256]> = planes.iter().map(|p| histogram(p)).collect();
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

    // Choose the coded planes: each must save more than its serialized table.
    let block_count = n.div_ceil(opts.block_size as usize);
    let mut tables: Vec<Option<FreqTable>> = vec![None; planes.len()];
    let mut saved_bytes = 0.0;
    for (p, c) in counts.iter().enumerate() {
        if opts.fast && p > 0 {
            break;
        }
        let table = FreqTable::from_counts(c).expect("n > 0");
        let mut table_bytes = Vec::new();
        table.serialize(&mut table_bytes);
        let gain = n as f64 - table.coded_bits(c) / 8.0 - table_bytes.len() as f64;
        if gain > 0.0 {
            saved_bytes += gain;
            tables[p] = Some(table);
        }
    }
    // The lanes cost a directory record each and up to one partly used word at their end.
    let lane_cost = (block_count * LANES * (LANE_RECORD_LEN + 2)) as f64;
    if saved_bytes <= lane_cost {
        return Ok((None, stats));
    }
    for (s, t) in stats.iter_mut().zip(&tables) {
        s.coded = t.is_some();
    }
    let entry = write_entry(layout, &planes, &tables, opts.block_size)?;
    if entry.len() >= data.len() {
        return Ok((None, stats));
    }
    Ok((Some(entry), stats))
}

/// Encodes with exactly the planes of `coded_mask` coded (bit `p` = plane `p`), whether or not that
/// pays: for tests and tools that need a particular plane choice. `block_size` as in
/// [`EncodeOptions`]. Fails on an empty tensor or a mask that is zero or names a missing plane.
#[cfg(any(test, feature = "internals"))]
pub fn encode_with_mask(
    layout: PlaneLayout,
    data: &[u8],
    block_size: u32,
    coded_mask: u8,
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
    let tables: Vec<Option<FreqTable>> = planes
        .iter()
        .enumerate()
        .map(|(p, plane)| {
            (coded_mask & (1 << p) != 0)
                .then(|| FreqTable::from_counts(&histogram(plane)).expect("non-empty plane"))
        })
        .collect();
    write_entry(layout, &planes, &tables, block_size)
}

/// One coded plane as the encoder reads it.
struct CodedPlane<'a> {
    bytes: &'a [u8],
    table: [rans::RcpSymbol; 256],
}

/// Encodes block `b` into `scratch` (resized as needed): returns the final state of each lane
/// and the range of `scratch` holding each lane's words, in decoding order.
fn encode_block(
    coded: &[CodedPlane],
    n: usize,
    block: usize,
    b: usize,
    scratch: &mut Vec<u16>,
) -> ([u32; LANES], [std::ops::Range<usize>; LANES]) {
    let start = b * block;
    let values = block.min(n - start);
    let steps = values.div_ceil(LANES);
    // Lane l writes its words backwards (they are produced in reverse) into its own region
    // [l * region, (l + 1) * region): one word per symbol plus one spare slot (`encode_step`).
    let region = steps * coded.len() + 1;
    if scratch.len() < LANES * region {
        // Zeroed by the allocator: pages of the regions' unused bottoms are never touched.
        *scratch = vec![0; LANES * region];
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
            let sym = plane.table[plane.bytes[base + k] as usize];
            encode_step(&mut x[k], &mut pos[k], words, sym);
        }
    }
    for j in (0..last_step).rev() {
        let base = start + j * LANES + lane0;
        for plane in coded.iter().rev() {
            let bytes: &[u8; GROUP] = plane.bytes[base..][..GROUP].try_into().unwrap();
            for k in 0..GROUP {
                let sym = plane.table[bytes[k] as usize];
                encode_step(&mut x[k], &mut pos[k], words, sym);
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
    /// Blocks appended so far.
    blocks: usize,
    /// Words appended so far.
    words: usize,
}

impl EntryWriter {
    /// Appends the next block: its final lane states and each lane's words.
    fn append<'w>(
        &mut self,
        states: &[u32; LANES],
        lanes: impl Iterator<Item = &'w [u16]>,
    ) -> Result<()> {
        for (l, (state, words)) in states.iter().zip(lanes).enumerate() {
            let first = u32::try_from(self.words).map_err(|_| {
                Error::invalid("tensor too large: more than 2^32 words in one entry")
            })?;
            let at = self.directory_offset + (self.blocks * LANES + l) * LANE_RECORD_LEN;
            let record = &mut self.entry[at..][..LANE_RECORD_LEN];
            record[..4].copy_from_slice(&state.to_le_bytes());
            record[4..].copy_from_slice(&first.to_le_bytes());
            if cfg!(target_endian = "little") {
                self.entry.extend_from_slice(bytemuck::cast_slice(words));
            } else {
                self.entry
                    .extend(words.iter().flat_map(|w| w.to_le_bytes()));
            }
            self.words += words.len();
        }
        self.blocks += 1;
        Ok(())
    }
}

/// Encodes every block and appends it to `writer`, in block order; blocks are encoded on the
/// current rayon pool when it has more than one thread (same bytes).
fn encode_blocks(
    coded: &[CodedPlane],
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
                let (states, ranges) = encode_block(coded, n, block, b, scratch);
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
        let (states, ranges) = encode_block(coded, n, block, b, &mut scratch);
        writer.append(&states, ranges.into_iter().map(|r| &scratch[r]))?;
    }
    Ok(())
}

fn write_entry(
    layout: PlaneLayout,
    planes: &[Vec<u8>],
    tables: &[Option<FreqTable>],
    block_size: u32,
) -> Result<Vec<u8>> {
    let n = planes[0].len();
    let block = block_size as usize;
    let coded: Vec<CodedPlane> = planes
        .iter()
        .zip(tables)
        .filter_map(|(p, t)| {
            t.as_ref().map(|t| CodedPlane {
                bytes: p,
                table: rans::rcp_table(t),
            })
        })
        .collect();
    let coded_mask = tables
        .iter()
        .enumerate()
        .filter(|(_, t)| t.is_some())
        .fold(0u8, |m, (p, _)| m | 1 << p);

    let mut table_bytes = Vec::new();
    for t in tables.iter().flatten() {
        t.serialize(&mut table_bytes);
    }

    // Everything before the words depends only on the tables and the block count: lay it out,
    // then append the words block after block, then the raw planes. The capacity bounds the
    // words by one per symbol; pages never written are never touched.
    let directory_offset = align_up(ENTRY_HEADER_LEN + table_bytes.len());
    let words_offset = directory_offset + n.div_ceil(block) * LANES * LANE_RECORD_LEN;
    let raw_count = planes.len() - coded.len();
    let capacity = align_up(words_offset + 2 * n * coded.len()) + raw_count * align_up(n);
    let mut entry = Vec::with_capacity(capacity);
    entry.resize(words_offset, 0);
    entry[ENTRY_HEADER_LEN..][..table_bytes.len()].copy_from_slice(&table_bytes);
    let mut writer = EntryWriter {
        entry,
        directory_offset,
        blocks: 0,
        words: 0,
    };
    encode_blocks(&coded, n, block, &mut writer)?;
    let EntryWriter {
        mut entry, words, ..
    } = writer;
    entry.resize(align_up(entry.len()), 0);
    for (plane, table) in planes.iter().zip(tables) {
        if table.is_none() {
            entry.extend_from_slice(plane);
            entry.resize(align_up(entry.len()), 0);
        }
    }
    let header = EntryHeader {
        layout,
        coded_mask,
        value_count: n as u64,
        block_size,
        tables_len: table_bytes.len() as u32,
        words_count: words as u64,
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
    /// Plane layout.
    pub layout: PlaneLayout,
    /// Bit `p` set: plane `p` is rANS coded.
    pub coded_mask: u8,
    /// Number of values.
    pub value_count: u64,
    /// Values per block.
    pub block_size: u32,
    /// Bytes of the serialized frequency tables.
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
        out[4] = ENTRY_VERSION;
        out[5] = self.layout as u8;
        out[6] = self.coded_mask;
        out[7] = 0;
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
        if entry[4] != ENTRY_VERSION {
            return Err(Error::corrupt(format!(
                "coded entry version {} is not supported (this build reads version {ENTRY_VERSION})",
                entry[4]
            )));
        }
        let layout = PlaneLayout::from_code(entry[5])
            .ok_or_else(|| Error::corrupt(format!("unknown plane layout {}", entry[5])))?;
        let le32 = |o: usize| u32::from_le_bytes(entry[o..o + 4].try_into().unwrap());
        let le64 = |o: usize| u64::from_le_bytes(entry[o..o + 8].try_into().unwrap());
        let header = EntryHeader {
            layout,
            coded_mask: entry[6],
            value_count: le64(8),
            block_size: le32(16),
            tables_len: le32(20),
            words_count: le64(24),
        };
        if header.coded_mask == 0 || header.coded_mask >> layout.plane_count() != 0 || entry[7] != 0
        {
            return Err(Error::corrupt("coded entry has an invalid plane mask"));
        }
        EncodeOptions {
            block_size: header.block_size,
            ..EncodeOptions::default()
        }
        .validate()
        .map_err(|_| Error::corrupt(format!("invalid block size {}", header.block_size)))?;
        Ok(header)
    }

    /// Number of coded planes.
    pub fn coded_count(&self) -> usize {
        self.coded_mask.count_ones() as usize
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
        let words_offset = block_count
            .checked_mul(LANES * LANE_RECORD_LEN)
            .and_then(|d| d.checked_add(directory_offset))
            .ok_or_else(too_big)?;
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
/// no longer than one word per coded symbol; initial states are in `[RANS_L, 2^32)`.
#[derive(Clone, Debug)]
pub struct CodedEntry<'a> {
    /// The parsed header.
    pub(crate) header: EntryHeader,
    /// Section offsets.
    pub(crate) geometry: Geometry,
    /// Frequency table of each coded plane, in plane order.
    pub(crate) tables: Vec<FreqTable>,
    /// The whole entry.
    pub(crate) bytes: &'a [u8],
}

/// Where the sections of a coded entry lie, as byte ranges of its stored bytes
/// (docs/FORMAT.md section 4).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EntrySections {
    /// The serialized frequency tables of the coded planes.
    pub tables: std::ops::Range<usize>,
    /// The lane directory: initial state and first word of every lane of every block.
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
    /// First word of the lane in the word section.
    pub first_word: usize,
    /// One past its last word.
    pub end_word: usize,
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
        let mut tables = Vec::with_capacity(header.coded_count());
        let table_bytes = &bytes[geometry.tables_offset..][..header.tables_len as usize];
        let mut pos = 0;
        for _ in 0..header.coded_count() {
            let (t, used) = FreqTable::deserialize(&table_bytes[pos..])?;
            tables.push(t);
            pos += used;
        }
        if pos != table_bytes.len() {
            return Err(Error::corrupt("frequency tables do not fill their section"));
        }
        let entry = CodedEntry {
            header,
            geometry,
            tables,
            bytes,
        };
        entry.check_directory()?;
        Ok(entry)
    }

    fn check_directory(&self) -> Result<()> {
        let n = self.header.value_count as usize;
        let block = self.header.block_size as usize;
        let coded = self.header.coded_count();
        let mut expected_first = 0usize;
        for b in 0..self.geometry.block_count {
            let values = block.min(n - b * block);
            for l in 0..LANES {
                let r = self.lane(b, l);
                if r.first_word != expected_first || r.end_word < r.first_word {
                    return Err(Error::corrupt(format!(
                        "lane directory out of order at block {b} lane {l}"
                    )));
                }
                if r.state < RANS_L {
                    return Err(Error::corrupt(format!(
                        "lane state below the rANS bound at block {b} lane {l}"
                    )));
                }
                if r.end_word - r.first_word > lane_value_count(values, l) * coded {
                    return Err(Error::corrupt(format!(
                        "lane longer than its symbols allow at block {b} lane {l}"
                    )));
                }
                expected_first = r.end_word;
            }
        }
        if expected_first != self.header.words_count as usize {
            return Err(Error::corrupt(
                "lane directory does not cover the word section",
            ));
        }
        Ok(())
    }

    /// Number of values.
    pub fn value_count(&self) -> usize {
        self.header.value_count as usize
    }

    /// Byte planes of a value: 2 for BF16/F16, 4 for F32.
    pub fn plane_count(&self) -> usize {
        self.header.layout.plane_count()
    }

    /// Whether plane `plane` (0: the high byte, the exponent's) is rANS coded; `false` for a
    /// plane stored raw or past [`CodedEntry::plane_count`].
    pub fn plane_is_coded(&self, plane: usize) -> bool {
        plane < self.plane_count() && self.header.coded_mask & (1 << plane) != 0
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
            directory: g.directory_offset..g.words_offset,
            words: g.words_offset..g.words_offset + 2 * self.header.words_count as usize,
            raw_planes: g.raw_offsets.iter().map(|o| o.map(|o| o..o + n)).collect(),
        }
    }

    /// Bytes of the decoded values (`value_count` times the value size).
    pub fn decoded_len(&self) -> usize {
        self.value_count() * self.header.layout.value_bytes()
    }

    /// The raw lane directory bytes (`block_count * LANES` records of state, first word).
    pub(crate) fn directory_bytes(&self) -> &'a [u8] {
        &self.bytes[self.geometry.directory_offset..self.geometry.words_offset]
    }

    /// The word section as little-endian bytes.
    pub(crate) fn word_bytes(&self) -> &'a [u8] {
        &self.bytes[self.geometry.words_offset..][..2 * self.header.words_count as usize]
    }

    /// Raw bytes of plane `p`, or `None` when it is coded.
    pub(crate) fn raw_plane(&self, p: usize) -> Option<&'a [u8]> {
        self.geometry.raw_offsets[p].map(|o| &self.bytes[o..][..self.value_count()])
    }

    /// Directory record of lane `lane` of block `block`.
    pub(crate) fn lane(&self, block: usize, lane: usize) -> LaneRecord {
        let dir = self.directory_bytes();
        let i = block * LANES + lane;
        let rec = &dir[i * LANE_RECORD_LEN..][..LANE_RECORD_LEN];
        let first_word = u32::from_le_bytes(rec[4..8].try_into().unwrap()) as usize;
        let end_word = if i + 1 < self.geometry.block_count * LANES {
            u32::from_le_bytes(
                dir[(i + 1) * LANE_RECORD_LEN + 4..][..4]
                    .try_into()
                    .unwrap(),
            ) as usize
        } else {
            self.header.words_count as usize
        };
        LaneRecord {
            state: u32::from_le_bytes(rec[0..4].try_into().unwrap()),
            first_word,
            end_word,
        }
    }

    /// Decode tables (see `rans::decode_table`) of the coded planes, in plane order.
    pub(crate) fn decode_tables(&self) -> Vec<Vec<rans::PackedSlot>> {
        self.tables.iter().map(rans::decode_table).collect()
    }

    /// Bytes spent on each part of the entry: (header + tables + padding, directory, words, raw).
    pub fn size_breakdown(&self) -> SizeBreakdown {
        let g = &self.geometry;
        let raw: usize = (0..self.header.layout.plane_count())
            .filter_map(|p| self.raw_plane(p).map(|r| r.len()))
            .sum();
        SizeBreakdown {
            tables: self.header.tables_len as usize,
            directory: g.words_offset - g.directory_offset,
            words: 2 * self.header.words_count as usize,
            raw,
            header_and_padding: 0,
        }
        .with_padding(self.bytes.len())
    }
}

/// Where the bytes of a coded entry go.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct SizeBreakdown {
    /// Serialized frequency tables.
    pub tables: usize,
    /// Lane directory (state and first word of every lane).
    pub directory: usize,
    /// rANS words.
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
