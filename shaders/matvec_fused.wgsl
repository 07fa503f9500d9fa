// Weight source of the matrix kernels (matvec_common.wgsl) that decodes a coded BF16/F16 entry
// (docs/FORMAT.md, section 4) on the fly: invocation `lane` of the workgroup of block `block` is
// rANS lane `lane` of that block, and every next_weight call decodes the lane's next value (one
// symbol of each coded plane, in plane order; raw planes are read directly). Decoded values live
// only in registers: no decompressed copy of the matrix exists in any buffer.
//
// `weights` holds the entry's bytes as stored in the file, followed by the decode tables
// (PROB_SCALE u32 per coded plane, `codec::CodedEntry::decode_tables`). Offsets come from the
// host (`mv.dir_base`, `mv.word_base`, `mv.plane_base`), all in u32.
//
// Safety against damaged streams: word reads stay inside the lane's range (and the word section),
// table reads inside the table; a lane that does not end exactly at its last word with state
// RANS_L raises flags[mv.flag_index] (the complement of the smallest failing lane number).

const SEQUENTIAL_CURSOR: bool = true;

struct Cursor {
    state: u32,
    // Next word and one past the lane's last word, as word indices of the entry.
    next: u32,
    end: u32,
}

fn open_cursor(block: u32, lane: u32) -> Cursor {
    let record = block * LANES + lane;
    let at = mv.dir_base + 2u * record;
    // The lane ends where the next lane starts; the last lane at the end of the word section.
    var end = mv.word_count;
    if (record + 1u < mv.block_count * LANES) {
        end = min(weights[at + 3u], mv.word_count);
    }
    return Cursor(weights[at], weights[at + 1u], end);
}

fn read_word(w: u32) -> u32 {
    return (weights[mv.word_base + (w >> 1u)] >> ((w & 1u) * WORD_BITS)) & ((1u << WORD_BITS) - 1u);
}

// One rANS step with the packed table at `table` (bits 0-7 symbol, 8-19 freq - 1, 20-31
// slot - cum), refilling at most one word. A refill past the lane's end reads nothing and still
// advances `next`, so close_cursor reports it.
fn decode_symbol(cursor: ptr<function, Cursor>, table: u32) -> u32 {
    let state = (*cursor).state;
    let slot = weights[table + (state & PROB_MASK)];
    let freq = ((slot >> SYMBOL_BITS) & PROB_MASK) + 1u;
    var s = freq * (state >> PROB_BITS) + (slot >> (SYMBOL_BITS + PROB_BITS));
    if (s < RANS_L) {
        let w = (*cursor).next;
        var word = 0u;
        if (w < (*cursor).end) {
            word = read_word(w);
        }
        s = (s << WORD_BITS) | word;
        (*cursor).next = w + 1u;
    }
    (*cursor).state = s;
    return slot & ((1u << SYMBOL_BITS) - 1u);
}

// Byte of plane `plane` of value i: decoded when the plane is coded, else read from the raw plane.
fn plane_byte(cursor: ptr<function, Cursor>, plane: u32, i: u32) -> u32 {
    if (((mv.coded_mask >> plane) & 1u) != 0u) {
        return decode_symbol(cursor, mv.plane_base[plane]);
    }
    return (weights[mv.plane_base[plane] + (i >> 2u)] >> ((i & 3u) * SYMBOL_BITS)) & ((1u << SYMBOL_BITS) - 1u);
}

// Value i of the matrix, which must be the lane's next value (src/planes.rs, join16).
fn next_weight(cursor: ptr<function, Cursor>, i: u32) -> u32 {
    let p0 = plane_byte(cursor, 0u, i);
    let p1 = plane_byte(cursor, 1u, i);
    return ((p1 & 0x80u) << 8u) | (p0 << 7u) | (p1 & 0x7fu);
}

fn close_cursor(cursor: Cursor, block: u32, lane: u32) {
    if (cursor.state != RANS_L || cursor.next != cursor.end) {
        atomicMax(&flags[mv.flag_index], ~(block * LANES + lane));
    }
}
