//! How a coded entry becomes GPU work: the one packer of coded blocks for the WGSL rANS lane
//! ([`PackedEntry`], the contract of every kernel over compressed weights), splitting an entry on
//! block boundaries so that each job's input and output fit one storage binding, and the one
//! reading of the kernels' error slots ([`check_flags`]).
//!
//! A packed entry (all offsets in u32 words, every section 4-byte aligned):
//!
//! ```text
//! decode tables   PROB_SCALE u32 per table, in entry order (plane 1: one per class)
//! class bases     plane 1 coded: 256 u32, the index of plane 1's table for each plane-0 byte
//! directory       per lane of the blocks the start of its region, then the end of the last
//! words           the blocks' lane regions (`CodedEntry::region`: each lane's initial state,
//!                 two words, then its words), 16-bit words two per u32, from an even word
//!                 (`word_origin`) on (at least one u32, zero when there are no words)
//! raw planes      the blocks' bytes of each raw plane, four per u32
//! ```

use std::ops::Range;

use crate::codec::{CodedEntry, DecodeTables};
use crate::params::{LANES, PROB_SCALE};
use crate::{Error, Result};

/// Where a kernel finds the parts of a [`PackedEntry`]; mirrors `struct PackedEntry` in
/// shaders/rans_lane.wgsl field for field (a test checks the offsets with naga).
///
/// Indices are u32 indices into the storage array the kernel binds as `packed`, counted from
/// the `base` the entry was packed at.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, bytemuck::Pod, bytemuck::Zeroable)]
pub struct PackedParams {
    /// Values of the packed blocks.
    pub value_count: u32,
    /// Blocks packed.
    pub block_count: u32,
    /// Values per block (the last block may be short).
    pub block_size: u32,
    /// Bit `p` set: plane `p` is rANS coded, else stored raw.
    pub coded_mask: u32,
    /// Index of the first lane's directory record (the start of its region).
    pub dir_base: u32,
    /// Index of the u32 holding word `word_origin`.
    pub word_base: u32,
    /// The first stored word (even); lanes' word indices are relative to it.
    pub word_origin: u32,
    /// Index of plane 1's 256 class bases (each the index of a decode table); 0 when plane 1
    /// is raw or has one table (then `plane_base[1]` is its table).
    pub class_base: u32,
    /// Per plane: index of its decode table (coded) or of its bytes (raw); 0 past the planes.
    pub plane_base: [u32; 4],
}

/// Parameters of one decode job; mirrors `struct Job` in shaders/decode_common.wgsl.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, bytemuck::Pod, bytemuck::Zeroable)]
pub(crate) struct JobParams {
    pub first_group: u32,
    pub out_base: u32,
    pub flag_index: u32,
    pub pad: u32,
    pub entry: PackedParams,
}

/// A run of whole blocks of one entry, decoded by one dispatch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Piece {
    pub first_block: usize,
    pub block_count: usize,
    pub first_value: usize,
    pub value_count: usize,
    /// First stored word: the job's first word rounded down to even.
    pub word_origin: usize,
    /// One past the job's last word.
    pub word_end: usize,
}

/// Whole blocks of a coded entry packed for the WGSL rANS lane (shaders/rans_lane.wgsl): the
/// layout every kernel over compressed weights reads, the decoders of [`crate::gpu`] per job and
/// the fused matrix kernels of `exprans-infer` for a whole matrix.
///
/// A kernel binds the bytes as `var<storage, read> packed: array<u32>` (several packed entries
/// may share one buffer: pack each at its own u32 `base`), passes the [`PackedParams`] to the
/// lane library as `entry`, and gives each packed entry two u32 error slots, read with
/// [`check_flags`]. Value, block and lane indices in the kernel are relative to the first packed
/// block. The entry's directory must have been checked (as every [`CodedEntry`] is): the
/// kernels trust that each lane's word range lies inside the words.
///
/// ```
/// # fn main() -> exprans::Result<()> {
/// use exprans::gpu::PackedEntry;
/// use exprans::{Archive, CodedEntry, EncodeOptions};
/// let values: Vec<u8> = (0..4096u32)
///     .flat_map(|i| (0x3f80 + (i * 7919 % 97) as u16).to_le_bytes())
///     .collect();
/// let header = r#"{"w":{"dtype":"BF16","shape":[4096],"data_offsets":[0,8192]}}"#;
/// let mut file = (header.len() as u64).to_le_bytes().to_vec();
/// file.extend_from_slice(header.as_bytes());
/// file.extend_from_slice(&values);
/// let opts = EncodeOptions { block_size: 1024, ..EncodeOptions::default() };
/// let packed_file = exprans::compress(&file, &opts)?;
/// let archive = Archive::from_bytes(&packed_file)?;
/// let t = &archive.tensors[0];
/// let entry = CodedEntry::of_tensor(&t.index, t.stored_in(&packed_file)?)?.expect("coded");
/// // Blocks 1 and 2: values 1024..3072 of the entry, value 0 of the packed entry being 1024.
/// let packed = PackedEntry::new(&entry, 1..3)?;
/// assert_eq!(packed.params.block_count, 2);
/// assert_eq!(packed.params.value_count, 2048);
/// assert_eq!(packed.bytes.len() as u64, PackedEntry::packed_len(&entry, 1..3));
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PackedEntry {
    /// Where the sections are, as u32 indices from the start of `bytes`.
    pub params: PackedParams,
    /// The packed bytes (a whole number of u32).
    pub bytes: Vec<u8>,
}

impl PackedEntry {
    /// Packs blocks `blocks` of `entry` into a buffer of their own (indices from 0).
    pub fn new(entry: &CodedEntry, blocks: Range<usize>) -> Result<PackedEntry> {
        let piece = Piece::checked(entry, blocks)?;
        let mut bytes = vec![0u8; piece.input_len(entry) as usize];
        let tables = entry.decode_tables();
        let (params, _) = pack_piece(entry, &tables, &piece, 0, None, |at, b| {
            bytes[at as usize..][..b.len()].copy_from_slice(b)
        });
        if (bytes.len() / 4) as u64 > u32::MAX as u64 {
            return Err(Error::invalid(
                "packed entry larger than the kernels address (2^32 u32)",
            ));
        }
        Ok(PackedEntry { params, bytes })
    }

    /// Bytes [`PackedEntry::new`] gives for blocks `blocks` of `entry` (which must be a
    /// non-empty range of its blocks).
    pub fn packed_len(entry: &CodedEntry, blocks: Range<usize>) -> u64 {
        Piece::of(entry, blocks.start, blocks.end).input_len(entry)
    }
}

/// The error a kernel's two error slots of one packed entry report (shaders/rans_lane.wgsl): the
/// first slot the complement of its smallest failing lane number `block * LANES + lane` (0: none;
/// blocks counted from the packed entry's first, `first_block` in the coded entry), the second a
/// kernel's invocation-layout flag. A failing lane is [`Error::Corrupt`] with the message of
/// `cpu::decode_reference`; a layout flag is [`Error::Gpu`].
pub fn check_flags(slots: [u32; 2], first_block: usize) -> Result<()> {
    if slots[1] != 0 {
        return Err(Error::Gpu(
            "the subgroup kernel found subgroups whose active invocations are not the first ones; \
             this adapter needs the portable path (DecoderOptions::force_portable)"
                .into(),
        ));
    }
    if slots[0] != 0 {
        let lane = (!slots[0]) as usize;
        return Err(Error::corrupt(format!(
            "rANS lane {} of block {} does not decode to its final state",
            lane % LANES,
            first_block + lane / LANES
        )));
    }
    Ok(())
}

/// Bytes of `n` rounded up to whole u32 words.
fn align4(n: u64) -> u64 {
    n.div_ceil(4) * 4
}

/// Bytes the decoded values of an entry take in a GPU buffer: the value bytes rounded up to a
/// whole u32 (a 16-bit tensor with an odd value count ends with a half-zero word).
pub fn output_len(entry: &CodedEntry) -> u64 {
    align4(entry.value_count() as u64 * entry.header.layout.value_bytes() as u64)
}

impl Piece {
    /// Blocks `first_block..end_block` of `entry` (a non-empty range of its blocks).
    fn of(entry: &CodedEntry, first_block: usize, end_block: usize) -> Piece {
        let first_value = first_block * entry.header.block_size as usize;
        Piece {
            first_block,
            block_count: end_block - first_block,
            first_value,
            value_count: (end_block * entry.header.block_size as usize).min(entry.value_count())
                - first_value,
            word_origin: entry.region(first_block, 0) & !1,
            word_end: entry.region(end_block, 0),
        }
    }

    /// [`Piece::of`], checking the range and that its words are u32-addressable.
    fn checked(entry: &CodedEntry, blocks: Range<usize>) -> Result<Piece> {
        check_lane_steps(entry)?;
        if blocks.is_empty() || blocks.end > entry.geometry.block_count {
            return Err(Error::invalid(format!(
                "blocks {blocks:?} are not a non-empty range of the entry's {} blocks",
                entry.geometry.block_count
            )));
        }
        let piece = Piece::of(entry, blocks.start, blocks.end);
        if u32::try_from(piece.word_end).is_err() {
            return Err(Error::invalid(
                "coded entry has more than 2^32 words, beyond what the GPU kernels address",
            ));
        }
        // `PackedParams::value_count` is a u32: more values would be silently truncated (a
        // plane with a single symbol costs no words, so a 1 MiB entry can hold 2^32 values).
        if u32::try_from(piece.value_count).is_err() {
            return Err(Error::invalid(format!(
                "blocks {blocks:?} hold {} values, more than the GPU kernels address (2^32 - 1)",
                piece.value_count
            )));
        }
        Ok(piece)
    }

    /// Byte offset of the piece's output within the entry's output.
    pub fn output_offset(&self, entry: &CodedEntry) -> u64 {
        (self.first_value * entry.header.layout.value_bytes()) as u64
    }

    /// Bytes of the piece's output (u32-aligned).
    pub fn output_len(&self, entry: &CodedEntry) -> u64 {
        align4((self.value_count * entry.header.layout.value_bytes()) as u64)
    }

    /// The decode tables and, when plane 1 has several classes, its class bases.
    pub(crate) fn tables_len(entry: &CodedEntry) -> u64 {
        let classes = entry.plane_is_coded(1) && entry.plane1_classes() > 1;
        let class_bases = if classes { 256 * 4 } else { 0 };
        (entry.header.table_count() * PROB_SCALE as usize * 4 + class_bases) as u64
    }

    fn directory_len(&self) -> u64 {
        ((self.block_count * LANES + 1) * GPU_LANE_RECORD_LEN) as u64
    }

    /// At least one u32, so that a kernel's clamped word read stays inside the section even
    /// when the job has no words.
    fn words_len(&self) -> u64 {
        align4(2 * (self.word_end - self.word_origin) as u64).max(4)
    }

    fn raw_planes(entry: &CodedEntry) -> usize {
        entry.header.layout.plane_count() - entry.header.coded_count()
    }

    /// Bytes of the packed input.
    pub fn input_len(&self, entry: &CodedEntry) -> u64 {
        Self::tables_len(entry)
            + self.directory_len()
            + self.words_len()
            + Self::raw_planes(entry) as u64 * align4(self.value_count as u64)
    }
}

/// Bytes of one lane's record in a packed entry: the start of its region (a u32).
const GPU_LANE_RECORD_LEN: usize = 4;

/// The pieces of `entry`: consecutive, covering every block, each with an input of at most
/// `max_input` bytes and an output of at most `max_output` bytes.
/// Most values one lane of a GPU kernel decodes: one loop iteration each. Mesa's lavapipe and
/// llvmpipe stop a shader after 65,535 loop iterations of an invocation (splitting the loop into
/// several loops, nested or one after the other, does not help), and real drivers have
/// watchdogs; blocks of up to 2^20 values (32,768 per lane) stay well inside.
pub(crate) const MAX_LANE_STEPS: usize = 1 << 15;

/// Refuses entries whose lanes are longer than the kernels may loop ([`MAX_LANE_STEPS`]), with
/// the reason, instead of letting a driver cut the loop short and report corrupt data.
fn check_lane_steps(entry: &CodedEntry) -> Result<()> {
    let block = (entry.header.block_size as usize).min(entry.value_count());
    if block.div_ceil(LANES) > MAX_LANE_STEPS {
        return Err(Error::Unsupported(format!(
            "blocks of {block} values are too long for the GPU kernels (at most {} values per \
             block, {MAX_LANE_STEPS} per lane: drivers stop longer shader loops); decode this \
             file on the CPU, or recompress it with smaller blocks",
            MAX_LANE_STEPS * LANES
        )));
    }
    Ok(())
}

pub(crate) fn split(entry: &CodedEntry, max_input: u64, max_output: u64) -> Result<Vec<Piece>> {
    check_lane_steps(entry)?;
    let block = entry.header.block_size as usize;
    let blocks = entry.geometry.block_count;
    let piece = |first_block: usize, end_block: usize| Piece::of(entry, first_block, end_block);
    let fits = |p: &Piece| p.input_len(entry) <= max_input && p.output_len(entry) <= max_output;
    let mut pieces = Vec::new();
    let mut start = 0;
    while start < blocks {
        // Grow the piece block by block; the sizes only grow with it.
        let mut end = start + 1;
        if !fits(&piece(start, end)) {
            return Err(Error::Gpu(format!(
                "one block of {block} values needs {} input bytes and {} output bytes, more than \
                 the storage binding limit allows ({max_input} / {max_output} bytes); encode with \
                 a smaller block size",
                piece(start, end).input_len(entry),
                piece(start, end).output_len(entry)
            )));
        }
        while end < blocks && fits(&piece(start, end + 1)) {
            end += 1;
        }
        pieces.push(piece(start, end));
        start = end;
    }
    if let Some(last) = pieces.last() {
        if u32::try_from(last.word_end).is_err() {
            return Err(Error::invalid(
                "coded entry has more than 2^32 words, beyond what the GPU decoder addresses",
            ));
        }
    }
    Ok(pieces)
}

/// Packs the input of job `piece` (see [`PackedEntry::new`]) and returns the job's parameters;
/// `first_group`, `out_base` and `flag_index` are left 0 for the caller.
///
/// With `shared`, the tables are not packed again: the job uses those another job of the same
/// input buffer packed (entries whose serialized tables are identical, see [`table_key`]), and
/// its input is [`Piece::tables_len`] shorter. Returns the job's parameters and where its tables
/// are, for the next job to share.
pub(crate) fn pack(
    entry: &CodedEntry,
    tables: &DecodeTables,
    piece: &Piece,
    base: u32,
    shared: Option<PackedTables>,
    write: impl FnMut(u64, &[u8]),
) -> (JobParams, PackedTables) {
    let (entry, placed) = pack_piece(entry, tables, piece, base, shared, write);
    let params = JobParams {
        entry,
        ..JobParams::default()
    };
    (params, placed)
}

/// Where a packed entry's tables are: each plane's table index and plane 1's class bases.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct PackedTables {
    plane_base: [u32; 4],
    class_base: u32,
}

/// What makes two entries' decode tables identical: their coded planes, plane 1's class count,
/// and their serialized tables (and class map), byte for byte.
pub(crate) fn table_key(entry: &CodedEntry) -> (u8, u8, Vec<u8>) {
    let tables = entry.sections().tables;
    (
        entry.header.coded_mask,
        entry.header.classes,
        entry.bytes[tables].to_vec(),
    )
}

/// The packer: writes the sections of `piece` through `write(byte offset, bytes)` (offsets from
/// the start of its `input_len` zeroed bytes), indices counted from u32 `base`.
fn pack_piece(
    entry: &CodedEntry,
    tables: &DecodeTables,
    piece: &Piece,
    base: u32,
    shared: Option<PackedTables>,
    mut write: impl FnMut(u64, &[u8]),
) -> (PackedParams, PackedTables) {
    let mut params = PackedParams {
        value_count: piece.value_count as u32,
        block_count: piece.block_count as u32,
        block_size: entry.header.block_size,
        coded_mask: entry.header.coded_mask as u32,
        word_origin: piece.word_origin as u32,
        ..PackedParams::default()
    };
    let mut at = 0u64;
    let mut section = |bytes: &[u8], at: &mut u64| -> u32 {
        let start = *at;
        write(start, bytes);
        *at += align4(bytes.len() as u64);
        base + (start / 4) as u32
    };

    let placed = match shared {
        Some(placed) => placed,
        None => {
            let mut placed = PackedTables {
                plane_base: [0; 4],
                class_base: 0,
            };
            let slots_base = section(bytemuck::cast_slice(&tables.slots), &mut at);
            for p in 0..entry.header.layout.plane_count() {
                if entry.plane_is_coded(p) {
                    placed.plane_base[p] = slots_base + tables.plane_base[p] as u32;
                }
            }
            // Plane 1 with several classes: its table per plane-0 byte. With one class the
            // kernels use `plane_base[1]` and skip the lookup (`class_base` stays 0: no section
            // starts there).
            if entry.plane_is_coded(1) && entry.plane1_classes() > 1 {
                let bases = tables.class_base.map(|slot| slots_base + slot);
                placed.class_base = section(bytemuck::cast_slice(&bases), &mut at);
            }
            placed
        }
    };
    params.plane_base = placed.plane_base;
    params.class_base = placed.class_base;

    let blocks = piece.first_block..piece.first_block + piece.block_count;
    let mut records = Vec::with_capacity(piece.block_count * LANES + 1);
    for b in blocks.clone() {
        records.extend((0..LANES).map(|l| entry.region(b, l) as u32));
    }
    records.push(piece.word_end as u32);
    params.dir_base = section(bytemuck::cast_slice(&records), &mut at);

    let words: std::borrow::Cow<[u8]> = if entry.version() >= 2 {
        entry.word_bytes()[2 * piece.word_origin..2 * piece.word_end].into()
    } else {
        version1_regions(entry, blocks, piece).into()
    };
    params.word_base = section(&words, &mut at);
    if words.is_empty() {
        at += 4;
    }

    for p in 0..entry.header.layout.plane_count() {
        if let Some(raw) = entry.raw_plane(p) {
            let bytes = &raw[piece.first_value..][..piece.value_count];
            params.plane_base[p] = section(bytes, &mut at);
        }
    }
    let tables_len = if shared.is_some() {
        Piece::tables_len(entry)
    } else {
        0
    };
    debug_assert_eq!(at, piece.input_len(entry) - tables_len);
    (params, placed)
}

/// The regions of `piece`'s lanes of a version-1 entry (whose states are in its directory), as
/// little-endian bytes from `piece.word_origin` on.
fn version1_regions(entry: &CodedEntry, blocks: Range<usize>, piece: &Piece) -> Vec<u8> {
    let words = entry.word_bytes();
    let mut out = Vec::with_capacity(2 * (piece.word_end - piece.word_origin));
    if entry.region(piece.first_block, 0) != piece.word_origin {
        out.extend([0, 0]); // before the first region: never read
    }
    for b in blocks {
        for l in 0..LANES {
            let lane = entry.lane(b, l);
            // Lane l + 1 of block b is lane 0 of block b + 1 when l is the last lane.
            if entry.region(b, l + 1) == entry.region(b, l) {
                continue;
            }
            out.extend_from_slice(&(lane.state as u16).to_le_bytes());
            out.extend_from_slice(&((lane.state >> 16) as u16).to_le_bytes());
            out.extend_from_slice(&words[2 * lane.first_word..2 * lane.end_word]);
        }
    }
    debug_assert_eq!(out.len(), 2 * (piece.word_end - piece.word_origin));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{encode, EncodeOptions};
    use crate::planes::PlaneLayout;

    /// BF16 values with a skewed exponent and mantissa: both planes coded.
    fn sample_entry(values: usize, block_size: u32) -> Vec<u8> {
        let data: Vec<u8> = (0..values)
            .flat_map(|i| {
                let v = 0x3f80u16 + ((i * 2654435761) % 97) as u16;
                v.to_le_bytes()
            })
            .collect();
        let opts = EncodeOptions {
            block_size,
            fast: false,
            ..EncodeOptions::default()
        };
        let entry = encode(PlaneLayout::Float16, &data, &opts).unwrap().0;
        entry.expect("sample compresses")
    }

    fn tables_len(entry: &CodedEntry) -> u64 {
        Piece::tables_len(entry)
    }

    #[test]
    fn pieces_cover_every_block_within_limits() {
        let bytes = sample_entry(100_001, 1024);
        let entry = CodedEntry::parse(&bytes, PlaneLayout::Float16, 100_001).unwrap();
        let whole = split(&entry, u64::MAX, u64::MAX).unwrap();
        assert_eq!(whole.len(), 1);
        let limit = tables_len(&entry) + (whole[0].input_len(&entry) - tables_len(&entry)) / 5;
        let pieces = split(&entry, limit, limit).unwrap();
        assert!(pieces.len() >= 5, "{} pieces", pieces.len());
        let mut next_block = 0;
        for p in &pieces {
            assert_eq!(p.first_block, next_block);
            assert!(p.input_len(&entry) <= limit && p.output_len(&entry) <= limit);
            next_block += p.block_count;
        }
        assert_eq!(next_block, entry.geometry.block_count);
        let values: usize = pieces.iter().map(|p| p.value_count).sum();
        assert_eq!(values, 100_001);
    }

    #[test]
    fn a_block_larger_than_the_limit_is_an_error() {
        let bytes = sample_entry(40_000, 4096);
        let entry = CodedEntry::parse(&bytes, PlaneLayout::Float16, 40_000).unwrap();
        let limit = tables_len(&entry) + 1024;
        assert!(matches!(split(&entry, limit, limit), Err(Error::Gpu(_))));
    }

    #[test]
    fn packed_sections_land_where_the_params_say() {
        let bytes = sample_entry(10_000, 1024);
        let entry = CodedEntry::parse(&bytes, PlaneLayout::Float16, 10_000).unwrap();
        let tables = entry.decode_tables();
        let limit = tables_len(&entry) + 8 * 1024;
        let pieces = split(&entry, limit, limit).unwrap();
        let p = pieces[1];
        let mut buf = vec![0u8; p.input_len(&entry) as usize];
        let params = pack(&entry, &tables, &p, 0, None, |at, b| {
            buf[at as usize..][..b.len()].copy_from_slice(b)
        })
        .0
        .entry;
        let word = |i: usize| u32::from_le_bytes(buf[4 * i..][..4].try_into().unwrap());
        assert_eq!(word(params.plane_base[0] as usize + 7), tables.plane(0)[7]);
        // Plane 1's table of each plane-0 byte: through the class bases when it has several.
        assert_eq!(params.class_base != 0, entry.plane1_classes() > 1);
        for p0 in [0u8, 127, 130, 255] {
            let base = if params.class_base != 0 {
                word(params.class_base as usize + p0 as usize) as usize
            } else {
                params.plane_base[1] as usize
            };
            assert_eq!(word(base + 9), tables.plane1(p0)[9]);
        }
        let lane = entry.lane(p.first_block, 3);
        let rec = params.dir_base as usize + 3;
        assert_eq!(
            word(rec) as usize,
            lane.first_word - 2,
            "the region starts with the state"
        );
        let sentinel = params.dir_base as usize + p.block_count * LANES;
        assert_eq!(word(sentinel) as usize, p.word_end);
        let rel = lane.first_word - p.word_origin;
        let w = (word(params.word_base as usize + rel / 2) >> (16 * (rel % 2))) & 0xffff;
        let expected = &entry.word_bytes()[2 * lane.first_word..][..2];
        assert_eq!(w, u16::from_le_bytes([expected[0], expected[1]]) as u32);
    }
}
