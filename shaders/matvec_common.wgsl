// Shared part of the matrix kernels of exprans-infer: y = W x (+ bias, GELU) and row gathers,
// over a 16-bit (BF16/F16) weight matrix W [rows, cols], row-major, as torch.nn.Linear stores it.
//
// The host prepends the format constants (crates/exprans/src/params.rs, `wgsl_constants`), the inference
// constants (src/shaders.rs) and the rANS lane (rans_lane.wgsl), then this file, then ONE weight
// source that defines (SEQUENTIAL_CURSOR, whether values must be read in lane order, is a
// constant the host prepends per source)
//   struct Cursor                       per-invocation read state
//   fn open_cursor(block, lane) -> Cursor
//   fn next_weight(&cursor, i) -> u32   the 16-bit bits of value i of W (lane order when sequential)
//   fn close_cursor(cursor, block, lane)
// matvec_fused.wgsl decodes the rANS lanes of a coded entry on the fly; matvec_plain.wgsl reads
// uncompressed values. Both run the loops below, so they add the same products in the same order
// and give bit-identical results.
//
// Work split (both sources): the matrix is cut into blocks of `block_rows` whole rows (for a
// fused source, the blocks of the row-aligned coded layout). One workgroup of LANES invocations
// handles one block for up to MATVEC_MAX_BATCH activation vectors; invocation `lane` handles the
// block's values lane, lane + LANES, ... (the values of rANS lane `lane`).
//
// Summation order of y[t][r], the same whatever `block_rows` is: the columns of row r fall into
// LANES classes c mod LANES; each class is summed in increasing column order with fma (f32, from
// 0), and the class sums are added by a fixed tree (level 1 pairs classes k and k + 16, level 2
// k and k + 8, ...), then the bias is added and GELU applied. An invocation holds one class of
// each row (block-relative value index = row * cols + column), and which invocation holds which
// class only rotates the tree's leaves, which leaves every pair, and so every sum, unchanged.
//
// Safety: every loop is bounded by the shape in the uniforms, never by stream contents.

// Mirrors `MatvecParams` in src/matvec.rs field for field.
struct Matvec {
    rows: u32,
    cols: u32,
    // Rows per block (the last block may hold fewer).
    block_rows: u32,
    // Activation vectors (matvec) or gathered rows (gather_rows).
    tokens: u32,
    // DTYPE_BF16 or DTYPE_F16.
    dtype: u32,
    // OP_BIAS | OP_GELU | OP_ACCUMULATE.
    op: u32,
    // Blocks of `block_rows` rows.
    block_count: u32,
    // Fused source only: the matrix's error slots, flags[2 * flag_index] and the next one.
    flag_index: u32,
    // Fused source only: the matrix's packed entry (rans_lane.wgsl), indices into `packed`.
    entry: PackedEntry,
}

@group(0) @binding(0) var<uniform> mv: Matvec;
// The weight matrix: uncompressed 16-bit values two per u32 (plain), or its packed entry
// (fused; rans_lane.wgsl, `exprans::gpu::PackedEntry`).
@group(0) @binding(1) var<storage, read> packed: array<u32>;
// Activations, [tokens][cols] f32 (matvec).
@group(0) @binding(2) var<storage, read> x: array<f32>;
// Bias, [rows] 16-bit values two per u32, of dtype `mv.dtype` (with OP_BIAS).
@group(0) @binding(3) var<storage, read> bias: array<u32>;
// Output: [tokens][rows] f32 (matvec) or [tokens][cols] f32 (gather_rows).
@group(0) @binding(4) var<storage, read_write> y: array<f32>;
// Error slots of fused sources, two u32 per matrix (rans_lane.wgsl): the complement of the first
// failing lane, 0 when none; the second slot stays 0.
@group(0) @binding(5) var<storage, read_write> flags: array<atomic<u32>>;
// Row indices (gather_rows).
@group(0) @binding(6) var<storage, read> ids: array<u32>;

// The coded planes of a fused source, for rans_lane.wgsl.
fn coded_mask() -> u32 {
    return entry.coded_mask;
}

// Per-lane partial sums of MATVEC_CHUNK_ROWS rows for MATVEC_MAX_BATCH vectors: slot q =
// row * MATVEC_MAX_BATCH + vector of lane l is partial[l * PARTIAL_STRIDE + q] (PARTIAL_STRIDE =
// MATVEC_CHUNK_ROWS * MATVEC_MAX_BATCH, from src/shaders.rs).
var<workgroup> partial: array<f32, PARTIAL_STRIDE * LANES>;

fn weight_f32(bits: u32) -> f32 {
    return half_to_f32(bits, mv.dtype);
}

fn bias_f32(row: u32) -> f32 {
    return weight_f32((bias[row >> 1u] >> ((row & 1u) * 16u)) & 0xffffu);
}

// erf, Abramowitz and Stegun 7.1.26 (absolute error below 1.5e-7).
fn erf_approx(v: f32) -> f32 {
    let z = abs(v);
    let t = 1.0 / (1.0 + 0.3275911 * z);
    let poly = t * (0.254829592 + t * (-0.284496736 + t * (1.421413741 + t * (-1.453152027 + t * 1.061405429))));
    return sign(v) * (1.0 - poly * exp(-z * z));
}

// GELU as BERT defines it: x/2 (1 + erf(x / sqrt 2)).
fn gelu(v: f32) -> f32 {
    return 0.5 * v * (1.0 + erf_approx(v * 0.70710678118654752));
}

fn epilogue(sum: f32, row: u32) -> f32 {
    var v = sum;
    if ((mv.op & OP_BIAS) != 0u) {
        v = v + bias_f32(row);
    }
    if ((mv.op & OP_GELU) != 0u) {
        v = gelu(v);
    }
    return v;
}

// Adds the LANES partial sums of each used slot by a fixed tree, in place, leaving the totals in
// lane 0's slots: level `stride` adds lane k + stride into lane k (k < stride), every level
// finished before the next. The used slots are q = row * MATVEC_MAX_BATCH + b for row < rows and
// b < batch; all invocations share the work of a level. Called in uniform control flow.
fn reduce_lanes(lane: u32, rows: u32, batch: u32) {
    let used = rows * batch;
    for (var stride = LANES / 2u; stride > 0u; stride >>= 1u) {
        for (var i = lane; i < stride * used; i += LANES) {
            let k = i / used;
            let q = (i % used) / batch * MATVEC_MAX_BATCH + i % batch;
            partial[k * PARTIAL_STRIDE + q] = partial[k * PARTIAL_STRIDE + q] + partial[(k + stride) * PARTIAL_STRIDE + q];
        }
        workgroupBarrier();
    }
}

// y[t][r] = sum_c W[r][c] x[t][c] (+ bias[r], GELU) for the block (x, y of the dispatch) and the
// vectors t0 .. t0 + MATVEC_MAX_BATCH (t0 = z * MATVEC_MAX_BATCH).
@compute @workgroup_size(LANES)
fn matvec(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let block = wg.y * groups.x + wg.x;
    let t0 = wg.z * MATVEC_MAX_BATCH;
    if (block >= mv.block_count || t0 >= mv.tokens) {
        return;
    }
    let first_row = block * mv.block_rows;
    let rows_here = min(mv.block_rows, mv.rows - first_row);
    let batch = min(MATVEC_MAX_BATCH, mv.tokens - t0);
    let block_start = first_row * mv.cols;
    var cursor = open_cursor(block, lane);
    // The invocation's next value, relative to the block: its values come row after row.
    var v = lane;
    for (var r0 = 0u; r0 < rows_here; r0 += MATVEC_CHUNK_ROWS) {
        let chunk = min(MATVEC_CHUNK_ROWS, rows_here - r0);
        for (var rr = 0u; rr < chunk; rr++) {
            let row_start = (r0 + rr) * mv.cols;
            var acc = array<f32, MATVEC_MAX_BATCH>();
            if (batch == 1u) {
                // One vector (a decode step): the same fma sequence as acc[0] below.
                for (; v < row_start + mv.cols; v += LANES) {
                    let w = weight_f32(next_weight(&cursor, block_start + v));
                    acc[0] = fma(w, x[t0 * mv.cols + v - row_start], acc[0]);
                }
            } else {
                for (; v < row_start + mv.cols; v += LANES) {
                    let w = weight_f32(next_weight(&cursor, block_start + v));
                    let c = v - row_start;
                    for (var b = 0u; b < MATVEC_MAX_BATCH; b++) {
                        if (b < batch) {
                            acc[b] = fma(w, x[(t0 + b) * mv.cols + c], acc[b]);
                        }
                    }
                }
            }
            for (var b = 0u; b < MATVEC_MAX_BATCH; b++) {
                partial[lane * PARTIAL_STRIDE + rr * MATVEC_MAX_BATCH + b] = acc[b];
            }
        }
        workgroupBarrier();
        reduce_lanes(lane, chunk, batch);
        for (var q = lane; q < chunk * MATVEC_MAX_BATCH; q += LANES) {
            let b = q % MATVEC_MAX_BATCH;
            if (b < batch) {
                let row = first_row + r0 + q / MATVEC_MAX_BATCH;
                y[(t0 + b) * mv.rows + row] = epilogue(partial[q], row);
            }
        }
        workgroupBarrier();
    }
    close_cursor(cursor, block, lane);
}

// y[t] = W[ids[t]] as f32 (or y[t] += W[ids[t]] with OP_ACCUMULATE): an embedding lookup. One
// workgroup per row; a sequential source decodes the row's whole block (and checks it).
@compute @workgroup_size(LANES)
fn gather_rows(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) lane: u32,
) {
    let t = wg.y * groups.x + wg.x;
    if (t >= mv.tokens) {
        return;
    }
    let row = min(ids[t], mv.rows - 1u);
    let block = row / mv.block_rows;
    let first_row = block * mv.block_rows;
    let block_start = first_row * mv.cols;
    let row_start = (row - first_row) * mv.cols;
    let row_end = row_start + mv.cols;
    var cursor = open_cursor(block, lane);
    var v = lane;
    var end = min(mv.block_rows, mv.rows - first_row) * mv.cols;
    if (!SEQUENTIAL_CURSOR) {
        // Random access: only the row's values of this lane.
        v = row_start + (lane + LANES - row_start % LANES) % LANES;
        end = row_end;
    }
    for (; v < end; v += LANES) {
        let bits = next_weight(&cursor, block_start + v);
        if (v >= row_start && v < row_end) {
            let o = t * mv.cols + (v - row_start);
            var value = weight_f32(bits);
            if ((mv.op & OP_ACCUMULATE) != 0u) {
                value = y[o] + value;
            }
            y[o] = value;
        }
    }
    close_cursor(cursor, block, lane);
}
