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

/// Default number of values per block (see docs/FORMAT.md, "Block size"): large blocks keep the
/// per-lane directory (8 bytes per lane) small; smaller blocks give a GPU more parallel lanes.
pub const DEFAULT_BLOCK_SIZE: u32 = 1 << 20;

/// Largest block size the format allows. It bounds the symbols one lane decodes (and so the
/// work a hostile directory entry can ask for) to `MAX_BLOCK_SIZE / LANES` values.
pub const MAX_BLOCK_SIZE: u32 = 1 << 22;

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
const _: () = assert!(DEFAULT_BLOCK_SIZE.is_multiple_of(2) && DEFAULT_BLOCK_SIZE <= MAX_BLOCK_SIZE);
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
