//! Constants of the exprans format, the single source of truth for Rust and WGSL.
//!
//! The shaders in `shaders/` never define these numbers themselves: [`wgsl_constants`] renders them
//! as WGSL `const` declarations that are prepended to every shader at pipeline creation time, so a
//! change here changes the encoder, both CPU decoders and every GPU kernel at once.

/// Number of interleaved rANS lanes in one block. Fixed by the format: it never depends on a GPU's
/// subgroup size, on whether subgroups exist, or on the number of CPU threads.
pub const LANES: usize = 32;

/// Probability precision: every coded frequency table sums to `1 << PROB_BITS`.
///
/// The packed decode-table entry (`sym | (freq-1) << 8 | (slot-cum) << 20`) needs
/// `8 + 2 * PROB_BITS <= 32`, so 12 is also the largest precision this format can hold.
pub const PROB_BITS: u32 = 12;

/// `1 << PROB_BITS`: the number of slots in a decode table.
pub const PROB_SCALE: u32 = 1 << PROB_BITS;

/// Lower bound of the rANS state: states live in `[RANS_L, 2^32)`. Renormalization moves 16-bit
/// words, so one refill per decoded symbol always restores the bound (needs `PROB_BITS <= 16`).
pub const RANS_L: u32 = 1 << 16;

/// Default number of values per block (see docs/FORMAT.md, "Block size"): 4096 values per lane.
/// A version-2 lane costs a 2-byte word count and its 4-byte initial state, so even small models
/// get thousands of lanes (GPU parallelism) for a few hundredths of a percent of their size.
pub const DEFAULT_BLOCK_SIZE: u32 = 1 << 17;

/// Largest block size of version 2, what this library writes. It bounds the symbols one lane
/// decodes to `MAX_BLOCK_SIZE / LANES` = 16,384 values: every GPU shader loop stays far below
/// driver loop limits (Mesa stops a loop after 65,535 iterations), and a lane's word count
/// (at most 12 bits per symbol, 4 symbols per value, plus the 2 state words) fits a `u16`.
pub const MAX_BLOCK_SIZE: u32 = 1 << 19;

/// Largest block size of version-1 entries (read only).
pub const MAX_BLOCK_SIZE_V1: u32 = 1 << 22;

/// Most context classes of plane 1 in a version-2 entry (a class number is a 4-bit field).
pub const MAX_CLASSES: usize = 16;

/// Invocations per workgroup of every GPU kernel. Not part of the format: a host/shader contract
/// kept here so the shaders and the dispatch arithmetic cannot disagree. WebGPU's default limit is
/// 256 invocations per workgroup.
pub const GPU_WORKGROUP_SIZE: u32 = 64;

/// Every section of a compressed entry, and every entry in the file, starts at a multiple of this
/// many bytes from the start of the file.
pub const ALIGN: usize = 16;

// Compile-time invariants the codec relies on.
const _: () = assert!(8 + 2 * PROB_BITS <= 32);
const _: () = assert!(LANES.is_multiple_of(2) && LANES <= 64);
const _: () = assert!(DEFAULT_BLOCK_SIZE.is_multiple_of(4) && DEFAULT_BLOCK_SIZE <= MAX_BLOCK_SIZE);
// A version-2 lane's word count fits a u16: 2 state words, plus the renormalization words of
// 4 symbols per value, each adding less than PROB_BITS + 0.1 bits to the state (so below 13).
const _: () =
    assert!(3 + (MAX_BLOCK_SIZE as usize / LANES * 4 * 13).div_ceil(16) <= u16::MAX as usize);
const _: () = assert!(RANS_L.is_multiple_of(PROB_SCALE));
const _: () = assert!(RANS_L == 1 << u16::BITS);
const _: () = assert!(GPU_WORKGROUP_SIZE.is_power_of_two() && GPU_WORKGROUP_SIZE <= 256);
const _: () = assert!(GPU_WORKGROUP_SIZE as usize / LANES * LANES == GPU_WORKGROUP_SIZE as usize);

/// The format constants as WGSL `const` declarations, prepended to every shader.
#[cfg(feature = "gpu")]
pub fn wgsl_constants() -> String {
    format!(
        "// Generated from crates/exprans/src/params.rs; do not edit.\n\
         const LANES: u32 = {LANES}u;\n\
         const PROB_BITS: u32 = {PROB_BITS}u;\n\
         const PROB_MASK: u32 = {mask}u;\n\
         const RANS_L: u32 = {RANS_L}u;\n\
         const MAX_BLOCK_SIZE: u32 = {MAX_BLOCK_SIZE}u;\n\
         const WORD_BITS: u32 = {word_bits}u;\n\
         const SYMBOL_BITS: u32 = {symbol_bits}u;\n\
         const WORKGROUP_SIZE: u32 = {GPU_WORKGROUP_SIZE}u;\n",
        mask = PROB_SCALE - 1,
        word_bits = u16::BITS,
        symbol_bits = u8::BITS,
    )
}

/// Rounds `n` up to a multiple of [`ALIGN`].
pub const fn align_up(n: usize) -> usize {
    n.div_ceil(ALIGN) * ALIGN
}
