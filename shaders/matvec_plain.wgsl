// Weight source of the matrix kernels (matvec_common.wgsl) over an uncompressed 16-bit matrix:
// value i is the low (even i) or high (odd i) half of packed[i / 2]. Random access, no state.

struct Cursor {
    unused: u32,
}

fn open_cursor(block: u32, lane: u32) -> Cursor {
    return Cursor(0u);
}

fn next_weight(cursor: ptr<function, Cursor>, i: u32) -> u32 {
    return (packed[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu;
}

fn close_cursor(cursor: Cursor, block: u32, lane: u32) {}
