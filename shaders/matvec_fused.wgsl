// Weight source of the matrix kernels (matvec_common.wgsl) that decodes a coded BF16/F16 entry
// (docs/FORMAT.md, section 4) on the fly with the rANS lane (rans_lane.wgsl): invocation `lane`
// of the workgroup of block `block` is rANS lane `lane` of that block, and every next_weight call
// decodes the lane's next value (one symbol of each coded plane, in plane order; raw planes are
// read directly). Decoded values live only in registers: no decompressed copy of the matrix
// exists in any buffer.
//
// `packed` holds the whole matrix as one packed entry (`exprans::gpu::PackedEntry`), described by
// `mv.entry`. A lane that does not end exactly at its last word with state RANS_L raises the
// matrix's error slot flags[2 * mv.flag_index].

alias Cursor = Lane;

fn open_cursor(block: u32, lane: u32) -> Cursor {
    entry = mv.entry;
    return open_lane(block, lane);
}

// Value i of the matrix, which must be the lane's next value.
fn next_weight(cursor: ptr<function, Cursor>, i: u32) -> u32 {
    return value16(cursor, i);
}

fn close_cursor(cursor: Cursor, block: u32, lane: u32) {
    close_lane(cursor, block, lane, mv.flag_index);
}
