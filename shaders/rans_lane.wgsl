// The rANS lane: the one WGSL library every kernel over compressed weights decodes with (the
// decode kernels of exprans::gpu and the fused matrix kernels of exprans-infer). It reads one
// *packed entry*: a run of whole blocks of one coded entry as `exprans::gpu::PackedEntry` lays
// them out (crates/exprans/src/gpu/plan.rs), all offsets in u32:
//
//   decode tables   PROB_SCALE u32 per table, in entry order (plane 1: one per context class)
//   class bases     plane 1 coded: 256 u32, the index of plane 1's table for each plane-0 byte
//   directory       per lane of the blocks, the word where its region starts, then the end of
//                   the last region
//   words           the lanes' regions: a lane's initial state (two words, low first), then its
//                   words; a lane without values has an empty region
//                   (16-bit words two per u32, from an even word, `word_origin`, on; at least
//                   one u32 even when there are no words)
//   raw planes      the bytes of each raw plane, four per u32
//
// Value, block and lane indices are relative to the packed entry. The including module provides
//   var<storage, read> packed: array<u32>                the packed entry's bytes
//   var<storage, read_write> flags: array<atomic<u32>>   error slots, two u32 per packed entry
//   fn coded_mask() -> u32                               bit p set: plane p is coded
// and sets `entry` (below) to the packed entry's parameters before opening a lane.
//
// Error slots (`exprans::gpu::check_flags` turns them into the error): flags[2 * f] holds the
// complement of the smallest failing lane number block * LANES + lane (atomicMax keeps the
// smallest; 0 means no failure); flags[2 * f + 1] is set to 1 when a kernel finds its invocations
// laid out in a way it cannot work with.
//
// Safety against hostile streams: word reads are clamped below the lane's end (the directory was
// checked against the entry on the host, so every lane's range lies inside the words); every
// other index comes from value and lane positions only; callers bound their loops by value counts
// derived from the header, never by stream contents. A lane that does not end exactly at its last
// word with state RANS_L raises the error slot.

// Mirrors `PackedParams` in crates/exprans/src/gpu/plan.rs field for field.
struct PackedEntry {
    // Values, blocks and block size (the last block may be short, even odd).
    value_count: u32,
    block_count: u32,
    block_size: u32,
    // Bit p set: plane p is rANS coded, else stored raw (the decode kernels use their pipeline
    // constant instead, which equals it).
    coded_mask: u32,
    // Index in `packed` of the first directory record.
    dir_base: u32,
    // Index in `packed` of the u32 holding word `word_origin`, the first stored word (even).
    word_base: u32,
    word_origin: u32,
    // Index in `packed` of plane 1's 256 class bases (plane 1 coded with several tables; else 0).
    class_base: u32,
    // Per plane: index in `packed` of its decode table (coded planes; plane 1: of class 0's) or
    // of its bytes (raw).
    plane_base: vec4<u32>,
}

// The packed entry being decoded (loop-invariant values in registers rather than loads the
// compiler cannot hoist past the kernel's stores).
var<private> entry: PackedEntry;

// One rANS lane being decoded. `next` and `end` are word indices relative to `word_origin`.
struct Lane {
    state: u32,
    next: u32,
    end: u32,
}

// Number of values in block `block` (the last block may be short, even odd).
fn block_values(block: u32) -> u32 {
    return min(entry.block_size, entry.value_count - block * entry.block_size);
}

// Number of values lane `l` holds in a block of `values` values: l, l + LANES, ...
fn lane_values(values: u32, l: u32) -> u32 {
    if (l >= values) {
        return 0u;
    }
    return (values - l + LANES - 1u) / LANES;
}

// Opens lane `l` of block `block`: its region from the directory (the next record, the next
// lane's or the final one, ends it), its initial state from the region's first two words. An
// empty region is a lane without values: state RANS_L, no words. (The host checked that every
// other region holds at least the two state words.)
fn open_lane(block: u32, l: u32) -> Lane {
    let record = entry.dir_base + block * LANES + l;
    let begin = packed[record] - entry.word_origin;
    let end = packed[record + 1u] - entry.word_origin;
    let has_state = end > begin;
    // Reads clamped below the region's end (word 0, which always exists, when it is empty), as
    // in decode_symbol: an empty region's lane reads no word of another lane.
    let last = max(end, 1u) - 1u;
    let state = read_word(min(begin, last)) | (read_word(min(begin + 1u, last)) << WORD_BITS);
    return Lane(select(RANS_L, state, has_state), select(begin, begin + 2u, has_state), end);
}

// Word `w` (relative to word_origin).
fn read_word(w: u32) -> u32 {
    let shift = (w & 1u) * WORD_BITS;
    return (packed[entry.word_base + (w >> 1u)] >> shift) & ((1u << WORD_BITS) - 1u);
}

// Decodes one symbol from `lane` with the decode table at index `table` of `packed`, refilling
// at most one word. The table entry packs bits 0-7 symbol, 8-19 freq - 1, 20-31 slot - cum.
// Branch-free on purpose (a branch here halves throughput on some drivers): the word is read at
// `next` clamped below the lane's end (word 0, which always exists, when the lane has no words)
// and used only when a refill is due and the lane still has a word; a refill past the lane's end
// uses 0 and still advances `next`, so `close_lane` reports it.
fn decode_symbol(lane: ptr<function, Lane>, table: u32) -> u32 {
    let state = (*lane).state;
    let slot = packed[table + (state & PROB_MASK)];
    let freq = ((slot >> SYMBOL_BITS) & PROB_MASK) + 1u;
    let x = freq * (state >> PROB_BITS) + (slot >> (SYMBOL_BITS + PROB_BITS));
    let next = (*lane).next;
    let end = (*lane).end;
    let refill = x < RANS_L;
    let word = select(0u, read_word(min(next, max(end, 1u) - 1u)), refill && next < end);
    (*lane).state = select(x, (x << WORD_BITS) | word, refill);
    (*lane).next = next + u32(refill);
    return slot & ((1u << SYMBOL_BITS) - 1u);
}

// Whether plane `plane` is coded (else raw).
fn is_coded(plane: u32) -> bool {
    return ((coded_mask() >> plane) & 1u) != 0u;
}

// Bytes of raw plane `plane` from value `i` on, the byte of value `i` lowest.
fn raw_bytes(plane: u32, i: u32) -> u32 {
    return packed[entry.plane_base[plane] + (i >> 2u)] >> ((i & 3u) * SYMBOL_BITS);
}

// The decode table of plane `plane` for a value whose plane-0 byte is `p0`: plane 1's context
// class table when it has several (one small lookup), the plane's one table otherwise.
// `class_base` is 0 when plane 1 has one table (no section of a packed entry starts at 0 but its
// first table).
fn plane_table(plane: u32, p0: u32) -> u32 {
    if (plane == 1u && entry.class_base != 0u) {
        return packed[entry.class_base + p0];
    }
    return entry.plane_base[plane];
}

// Byte of plane `plane` for value `i` whose plane-0 byte is `p0` (any value for plane 0):
// decoded from `lane` when the plane is coded (planes must be visited in plane order, values in
// lane order), else read from the raw plane.
fn plane_byte(lane: ptr<function, Lane>, plane: u32, p0: u32, i: u32) -> u32 {
    if (is_coded(plane)) {
        return decode_symbol(lane, plane_table(plane, p0));
    }
    return raw_bytes(plane, i) & ((1u << SYMBOL_BITS) - 1u);
}

// Joins the planes of a 16-bit value (src/planes.rs, `join16`): plane 0 holds bits 14..7, plane 1
// holds the sign (its top bit) and bits 6..0.
fn join16(p0: u32, p1: u32) -> u32 {
    return ((p1 & 0x80u) << 8u) | (p0 << 7u) | (p1 & 0x7fu);
}

// Joins the planes of an F32 value (src/planes.rs, `join32`).
fn join32(p0: u32, p1: u32, p2: u32, p3: u32) -> u32 {
    return (join16(p0, p1) << 16u) | (p2 << 8u) | p3;
}

// Decodes value `i` (BF16/F16), the lane's next value, from `lane`.
fn value16(lane: ptr<function, Lane>, i: u32) -> u32 {
    let p0 = plane_byte(lane, 0u, 0u, i);
    let p1 = plane_byte(lane, 1u, p0, i);
    return join16(p0, p1);
}

// Decodes value `i` (one-byte dtypes), the lane's next value, from `lane`.
fn value8(lane: ptr<function, Lane>, i: u32) -> u32 {
    return plane_byte(lane, 0u, 0u, i);
}

// Decodes value `i` (F32), the lane's next value, from `lane`.
fn value32(lane: ptr<function, Lane>, i: u32) -> u32 {
    let p0 = plane_byte(lane, 0u, 0u, i);
    let p1 = plane_byte(lane, 1u, p0, i);
    let p2 = plane_byte(lane, 2u, p0, i);
    let p3 = plane_byte(lane, 3u, p0, i);
    return join32(p0, p1, p2, p3);
}

// Checks that lane `l` of block `block` ended where the encoder started: exactly at its last word
// with state RANS_L. On failure records the smallest failing lane in error slot `flag_index`.
fn close_lane(lane: Lane, block: u32, l: u32, flag_index: u32) {
    if (lane.state != RANS_L || lane.next != lane.end) {
        atomicMax(&flags[2u * flag_index], ~(block * LANES + l));
    }
}
