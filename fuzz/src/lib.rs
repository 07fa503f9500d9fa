//! Shared parts of the exprans fuzz targets (fuzz/README.md).
//!
//! - [`with_valid_checksums`]: the same file with its header checksum and every stored checksum
//!   recomputed, so that a mutation of the index, the original-header record or a coded entry
//!   reaches the semantic checks instead of stopping at a checksum.
//! - [`entries`]: the coded entries of an input, either an exprans file (stored checksums
//!   recomputed) or one bare coded entry (input starting with `XRNS`).
//! - [`emulate_packed`]: the WGSL rANS lane (shaders/rans_lane.wgsl) run on the host over a
//!   [`PackedEntry`], every read of the packed buffer bounds-checked, so that the GPU host-side
//!   validation is tested without a GPU.

use exprans::gpu::PackedEntry;
use exprans::internals::{EntryHeader, PlaneLayout, PROB_BITS, PROB_SCALE, RANS_L};
use exprans::{Archive, CodedEntry, CpuDecoder, LANES};
use serde_json::Value;

/// Largest decoded size the targets decode. A valid file may declare far more (a plane with one
/// symbol costs no words at all), which decoders must handle by streaming, not by failing; the
/// harness skips those so that one input cannot exhaust the fuzzer's memory limit.
pub const MAX_DECODED: usize = 16 << 20;

const KEY_VERSION: &str = "exprans.version";
const KEY_INDEX: &str = "exprans.index";
const KEY_SOURCE: &str = "exprans.source";
const KEY_CRC: &str = "exprans.header_crc32c";
const KEY_SOURCE_CRC: &str = "exprans.source_crc32c";

/// `file` with its exprans header checksums (`exprans.header_crc32c`, and in version 2
/// `exprans.source_crc32c` when the records render an original header) and every tensor's
/// stored checksum recomputed, or
/// `None` when the file does not have the shape of an exprans header (the parser then rejects
/// it anyway) or nothing changes.
pub fn with_valid_checksums(file: &[u8]) -> Option<Vec<u8>> {
    forge(file, None)
}

/// Numbers at the edges of what the header's integers hold: random mutation of decimal text
/// rarely reaches them.
pub const EDGE_VALUES: [u64; 12] = [
    0,
    1,
    2,
    (1 << 31) - 1,
    (1 << 32) - 1,
    1 << 32,
    100_000_000,
    1 << 53,
    (1 << 63) - 1,
    1 << 63,
    u64::MAX - 1,
    u64::MAX,
];

/// [`with_valid_checksums`] after replacing some numbers of the index records (sizes, shape
/// dimensions) and of the original-header record (padding, metadata position) with
/// [`EDGE_VALUES`], as `choose` says: the hostile files whose checksums are all valid that
/// issue 10 is about.
pub fn with_edge_values(file: &[u8], choose: &mut Choices) -> Option<Vec<u8>> {
    forge(file, Some(choose))
}

fn edge(choose: &mut Choices, value: &mut Value, one_in: u64) {
    if value.is_u64() && choose.below(one_in) == 0 {
        *value = EDGE_VALUES[choose.below(EDGE_VALUES.len() as u64) as usize].into();
    }
}

fn forge(file: &[u8], choose: Option<&mut Choices>) -> Option<Vec<u8>> {
    let json_len = u64::from_le_bytes(file.get(..8)?.try_into().ok()?);
    let json_len = usize::try_from(json_len).ok()?;
    let json = file.get(8..8usize.checked_add(json_len)?)?;
    let data = &file[8 + json_len..];
    let mut header: serde_json::Map<String, Value> = serde_json::from_slice(json).ok()?;
    // The stored entries in data order: what the index records are zipped with.
    let mut entries: Vec<(u64, u64)> = header
        .iter()
        .filter(|(k, _)| *k != "__metadata__")
        .filter_map(|(_, v)| {
            let o = v.get("data_offsets")?.as_array()?;
            Some((o.first()?.as_u64()?, o.get(1)?.as_u64()?))
        })
        .collect();
    entries.sort_unstable();
    let meta = header.get_mut("__metadata__")?.as_object_mut()?;
    // Version-2 records start with the tensor's name; version-1 records have none.
    let name_fields = usize::from(meta.get(KEY_VERSION).and_then(Value::as_str) != Some("1"));
    let mut index: Value = serde_json::from_str(meta.get(KEY_INDEX)?.as_str()?).ok()?;
    let mut source = meta.get(KEY_SOURCE)?.as_str()?.to_string();
    if let Some(choose) = choose {
        // Index records: [name (version 2), dtype, shape, bytes, encoding, stored crc,
        // decoded crc, entropies].
        for fields in index
            .as_array_mut()?
            .iter_mut()
            .filter_map(Value::as_array_mut)
        {
            if let Some(bytes) = fields.get_mut(name_fields + 2) {
                edge(choose, bytes, 4);
            }
            if let Some(dims) = fields
                .get_mut(name_fields + 1)
                .and_then(Value::as_array_mut)
            {
                for d in dims {
                    edge(choose, d, 8);
                }
            }
        }
        let mut record: Value = serde_json::from_str(&source).ok()?;
        if let Some(canonical) = record.get_mut("canonical").and_then(Value::as_object_mut) {
            for key in ["padding", "metadata_position"] {
                if let Some(v) = canonical.get_mut(key) {
                    edge(choose, v, 3);
                }
            }
        }
        source = record.to_string();
    }
    if let Some(records) = index.as_array_mut() {
        for (record, &(begin, end)) in records.iter_mut().zip(&entries) {
            let stored = usize::try_from(begin)
                .ok()
                .zip(usize::try_from(end).ok())
                .and_then(|(b, e)| data.get(b..e));
            if let (Some(fields), Some(stored)) = (record.as_array_mut(), stored) {
                if fields.len() > name_fields + 4 {
                    fields[name_fields + 4] = crc32c::crc32c(stored).into();
                }
            }
        }
    }
    let index = index.to_string();
    let crc = crc32c::crc32c_append(crc32c::crc32c(index.as_bytes()), source.as_bytes());
    if meta.contains_key(KEY_SOURCE_CRC) {
        // Records that do not render keep their checksum: the reader fails rendering first.
        if let Ok(crc) = exprans::internals::source_crc(&index, &source) {
            meta.insert(KEY_SOURCE_CRC.into(), crc.to_string().into());
        }
    }
    meta.insert(KEY_INDEX.into(), index.into());
    meta.insert(KEY_SOURCE.into(), source.into());
    meta.insert(KEY_CRC.into(), crc.to_string().into());
    let mut json = Value::Object(header).to_string();
    while !(8 + json.len()).is_multiple_of(16) {
        json.push(' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(data);
    (out != file).then_some(out)
}

/// The coded entries of `data`: a bare coded entry when it starts with the entry magic (its
/// layout and value count taken from its own header), else those of an exprans file (after
/// [`with_valid_checksums`] when that parses, each tensor's stored checksum then matching).
/// Calls `each` with every entry that parses; parse errors are expected and dropped.
pub fn for_each_entry(data: &[u8], mut each: impl FnMut(&CodedEntry)) {
    if data.starts_with(b"XRNS") {
        if let Ok(header) = EntryHeader::parse(data) {
            if let Ok(entry) =
                exprans::internals::parse_entry(data, header.layout, header.value_count)
            {
                each(&entry);
            }
        }
        return;
    }
    let fixed = with_valid_checksums(data);
    let file = fixed.as_deref().unwrap_or(data);
    let Ok(archive) = Archive::from_bytes(file) else {
        return;
    };
    for t in &archive.tensors {
        let Ok(stored) = t.stored_in(file) else {
            continue;
        };
        let mut index = t.index.clone();
        index.stored_crc32c = crc32c::crc32c(stored);
        if let Ok(Some(entry)) = CodedEntry::of_tensor(&index, stored) {
            each(&entry);
        }
    }
}

/// The reference decoder's result on `entry`, or `None` when it is larger than
/// [`MAX_DECODED`].
pub fn reference_decode(entry: &CodedEntry) -> Option<Result<Vec<u8>, String>> {
    let len = entry.decoded_len();
    if len > MAX_DECODED {
        return None;
    }
    let mut out = vec![0u8; len];
    Some(
        CpuDecoder::Reference
            .decode_entry(entry, &mut out)
            .map(|()| out)
            .map_err(|e| e.to_string()),
    )
}

/// What the host emulation of the GPU kernels gives for one packed entry: the decoded values'
/// bytes, and the smallest failing lane (`block * LANES + lane`, blocks of the packed entry).
pub struct Emulated {
    /// Little-endian values, `value_count * value_bytes` bytes.
    pub bytes: Vec<u8>,
    /// The smallest lane that did not end at its last word with state `RANS_L`.
    pub failing_lane: Option<u32>,
}

/// Most values one lane of a GPU kernel may decode (`gpu::plan::MAX_LANE_STEPS`).
pub const MAX_LANE_STEPS: u32 = 1 << 15;

/// Runs the WGSL rANS lane (shaders/rans_lane.wgsl, with the loop of shaders/decode32.wgsl) on
/// the host over `packed`, with WGSL's wrapping u32 arithmetic. Panics when a kernel would read
/// outside the packed buffer or loop longer than [`MAX_LANE_STEPS`]: the kernels trust the host
/// to have validated every entry it packs, so either is a host-side validation bug.
pub fn emulate_packed(packed: &PackedEntry, layout: PlaneLayout) -> Emulated {
    let words: Vec<u32> = packed
        .bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect();
    assert_eq!(
        words.len() * 4,
        packed.bytes.len(),
        "packed entry is whole u32"
    );
    let p = packed.params;
    let at = |i: u32| -> u32 {
        *words.get(i as usize).unwrap_or_else(|| {
            panic!(
                "a GPU kernel would read u32 {i} of a {}-u32 packed entry",
                words.len()
            )
        })
    };
    let lanes = LANES as u32;
    let planes = layout.plane_count() as u32;
    let value_bytes = layout.value_bytes();
    let mut bytes = vec![0u8; p.value_count as usize * value_bytes];
    let mut failing_lane: Option<u32> = None;
    let prob_mask = PROB_SCALE - 1;
    for block in 0..p.block_count {
        let start = block.wrapping_mul(p.block_size);
        let values = p.block_size.min(p.value_count.wrapping_sub(start));
        for l in 0..lanes {
            let count = if l >= values {
                0
            } else {
                (values - l).div_ceil(lanes)
            };
            assert!(
                count <= MAX_LANE_STEPS,
                "a GPU lane would loop {count} times (at most {MAX_LANE_STEPS})"
            );
            // The lane's region: its state (two words) then its words (open_lane).
            let record = p.dir_base.wrapping_add(block * lanes + l);
            let begin = at(record).wrapping_sub(p.word_origin);
            let end = at(record.wrapping_add(1)).wrapping_sub(p.word_origin);
            let read_word =
                |w: u32| (at(p.word_base.wrapping_add(w >> 1)) >> ((w & 1) * 16)) & 0xffff;
            let has_state = end > begin;
            let last = end.max(1) - 1;
            let first_state =
                read_word(begin.min(last)) | read_word(begin.wrapping_add(1).min(last)) << 16;
            let mut state = if has_state { first_state } else { RANS_L };
            let mut next = if has_state {
                begin.wrapping_add(2)
            } else {
                begin
            };
            for j in 0..count {
                let i = start.wrapping_add(l).wrapping_add(j.wrapping_mul(lanes));
                let mut plane_bytes = [0u32; 4];
                for plane in 0..planes as usize {
                    // plane_table: plane 1's class table when it has several.
                    let base = if plane == 1 && p.class_base != 0 {
                        at(p.class_base.wrapping_add(plane_bytes[0]))
                    } else {
                        p.plane_base[plane]
                    };
                    let byte = &mut plane_bytes[plane];
                    *byte = if p.coded_mask >> plane & 1 != 0 {
                        let slot = at(base.wrapping_add(state & prob_mask));
                        let freq = ((slot >> 8) & prob_mask) + 1;
                        let x = freq
                            .wrapping_mul(state >> PROB_BITS)
                            .wrapping_add(slot >> (8 + PROB_BITS));
                        let refill = x < RANS_L;
                        let word = if refill && next < end {
                            let w = next.min(end.max(1) - 1);
                            let shift = (w & 1) * 16;
                            (at(p.word_base.wrapping_add(w >> 1)) >> shift) & 0xffff
                        } else {
                            0
                        };
                        state = if refill { (x << 16) | word } else { x };
                        next = next.wrapping_add(refill as u32);
                        slot & 0xff
                    } else {
                        (at(base.wrapping_add(i >> 2)) >> ((i & 3) * 8)) & 0xff
                    };
                }
                let [p0, p1, p2, p3] = plane_bytes;
                let join16 = ((p1 & 0x80) << 8) | (p0 << 7) | (p1 & 0x7f);
                let o = i as usize * value_bytes;
                let out = bytes.get_mut(o..o + value_bytes).unwrap_or_else(|| {
                    panic!("a GPU kernel would write value {i} of {}", p.value_count)
                });
                if value_bytes == 1 {
                    out[0] = p0 as u8;
                } else if value_bytes == 2 {
                    out.copy_from_slice(&(join16 as u16).to_le_bytes());
                } else {
                    let v = (join16 << 16) | (p2 << 8) | p3;
                    out.copy_from_slice(&v.to_le_bytes());
                }
            }
            if state != RANS_L || next != end {
                let lane = block * lanes + l;
                failing_lane = Some(failing_lane.map_or(lane, |f| f.min(lane)));
            }
        }
    }
    Emulated {
        bytes,
        failing_lane,
    }
}

/// A small deterministic generator of choices from the fuzz input's own bytes (so that a
/// target's decisions are reproducible from the input alone).
pub struct Choices {
    state: u64,
}

impl Choices {
    /// Choices seeded by a hash of `data`.
    pub fn of(data: &[u8]) -> Choices {
        Choices {
            state: crc32c::crc32c(data) as u64 | 1 << 40,
        }
    }

    /// A value in `0..n` (`n > 0`).
    pub fn below(&mut self, n: u64) -> u64 {
        self.state = self
            .state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.state >> 33) % n
    }
}
