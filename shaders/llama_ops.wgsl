// The non-matrix steps of a Llama-family decoder on the GPU (crates/exprans-infer/src/llama/gpu.rs):
// RMSNorm, rotary positions, causal grouped-query attention over a KV cache, SwiGLU and residual
// adds. The matrix steps are matvec_common.wgsl's.
// Every reduction runs in a fixed order (no atomics), so results depend only on the shapes and
// the inputs, never on timing, the subgroup size or how the weights are held.
// Activations are [tokens][width] f32, row-major; the caches are [position][kv_heads * head_dim].
// Loops are bounded by the uniforms; the longest (attention) runs about 2.1 iterations per key
// per invocation for head_dim 64, far below drivers' loop limits for any supported context.

// Mirrors `LlamaOpParams` in crates/exprans-infer/src/llama/gpu.rs.
struct LlamaOp {
    // Rows processed (tokens of this step).
    tokens: u32,
    // Values per row (rms_norm, rope_rows, silu_mul, add).
    width: u32,
    heads: u32,
    kv_heads: u32,
    head_dim: u32,
    // Position of the step's first token.
    pos0: u32,
    // rope_rows: output row of token 0; rms_norm: ditto.
    dst_row0: u32,
    // rms_norm: input row of token 0.
    src_row0: u32,
    // DTYPE_BF16 or DTYPE_F16: the type of `gamma`.
    dtype: u32,
    // OP_ROPE: rope_rows rotates (otherwise it copies).
    flags: u32,
    eps: f32,
    // Attention: 1 / sqrt(head_dim).
    scale: f32,
}

@group(0) @binding(0) var<uniform> op: LlamaOp;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
// rope_rows: [cos, sin] per (position, frequency); attention: the value cache.
@group(0) @binding(3) var<storage, read> c: array<f32>;
// RMSNorm weight: 16-bit values two per u32.
@group(0) @binding(4) var<storage, read> gamma: array<u32>;
// Unused (the shared ops layout's second vector).
@group(0) @binding(5) var<storage, read> beta: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

// (ATTENTION_DIMS_PER_INVOCATION: output values each invocation of `attention` accumulates;
// LOWEST_SCORE_SCORE: below every score and finite, as WGSL does not promise infinities.)

var<workgroup> red: array<f32, WORKGROUP_SIZE>;
var<workgroup> scores: array<f32, ATTENTION_CHUNK>;

fn gamma_f32(i: u32) -> f32 {
    return half_to_f32((gamma[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu, op.dtype);
}

// Sum over the workgroup by a fixed tree; every invocation gets it.
fn workgroup_sum(tid: u32, value: f32) -> f32 {
    red[tid] = value;
    workgroupBarrier();
    for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride >>= 1u) {
        if (tid < stride) {
            red[tid] = red[tid] + red[tid + stride];
        }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}

fn workgroup_max(tid: u32, value: f32) -> f32 {
    red[tid] = value;
    workgroupBarrier();
    for (var stride = WORKGROUP_SIZE / 2u; stride > 0u; stride >>= 1u) {
        if (tid < stride) {
            red[tid] = max(red[tid], red[tid + stride]);
        }
        workgroupBarrier();
    }
    let total = red[0];
    workgroupBarrier();
    return total;
}

// out[dst_row0 + t] = a[src_row0 + t] / rms(a[src_row0 + t]) * gamma; one workgroup per token.
@compute @workgroup_size(WORKGROUP_SIZE)
fn rms_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let t = wg.x;
    if (t >= op.tokens) {
        return;
    }
    let src = (op.src_row0 + t) * op.width;
    let dst = (op.dst_row0 + t) * op.width;
    var s = 0.0;
    for (var i = tid; i < op.width; i += WORKGROUP_SIZE) {
        s = fma(a[src + i], a[src + i], s);
    }
    let inv = 1.0 / sqrt(workgroup_sum(tid, s) / f32(op.width) + op.eps);
    for (var i = tid; i < op.width; i += WORKGROUP_SIZE) {
        out[dst + i] = a[src + i] * inv * gamma_f32(i);
    }
}

// out[dst_row0 + t] = a[t], each head rotated by the angles of position pos0 + t when OP_ROPE is
// set (dimensions i and i + head_dim/2 paired, as `rotate_half` does); one workgroup per token.
@compute @workgroup_size(WORKGROUP_SIZE)
fn rope_rows(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let t = wg.x;
    if (t >= op.tokens) {
        return;
    }
    let half = op.head_dim / 2u;
    let src = t * op.width;
    let dst = (op.dst_row0 + t) * op.width;
    let angles = (op.pos0 + t) * half;
    for (var p = tid; p < op.width / 2u; p += WORKGROUP_SIZE) {
        let i = p % half;
        let j = (p / half) * op.head_dim + i;
        let x1 = a[src + j];
        let x2 = a[src + j + half];
        if ((op.flags & OP_ROPE) != 0u) {
            let cs = c[2u * (angles + i)];
            let sn = c[2u * (angles + i) + 1u];
            out[dst + j] = x1 * cs - x2 * sn;
            out[dst + j + half] = x2 * cs + x1 * sn;
        } else {
            out[dst + j] = x1;
            out[dst + j + half] = x2;
        }
    }
}

// Causal attention: token t (at position pos0 + t) of head h attends to cached positions
// 0 ..= pos0 + t of its key/value head h / (heads / kv_heads): a = queries [tokens][heads *
// head_dim], b = key cache, c = value cache, out [tokens][heads * head_dim]. One workgroup per
// (token, head): x = token, y = head. Keys are scored ATTENTION_CHUNK at a time with a running
// maximum and sum (online softmax), in a fixed order.
@compute @workgroup_size(WORKGROUP_SIZE)
fn attention(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let t = wg.x;
    let h = wg.y;
    if (t >= op.tokens || h >= op.heads) {
        return;
    }
    let hd = op.head_dim;
    let kv_width = op.kv_heads * hd;
    let q = t * op.heads * hd + h * hd;
    let kv = (h / (op.heads / op.kv_heads)) * hd;
    let keys = op.pos0 + t + 1u;
    var m = LOWEST_SCORE;
    var z = 0.0;
    var acc = array<f32, ATTENTION_DIMS_PER_INVOCATION>();
    for (var j0 = 0u; j0 < keys; j0 += ATTENTION_CHUNK) {
        let n = min(ATTENTION_CHUNK, keys - j0);
        var local_max = LOWEST_SCORE;
        for (var j = tid; j < n; j += WORKGROUP_SIZE) {
            let k = (j0 + j) * kv_width + kv;
            var s = 0.0;
            for (var d = 0u; d < hd; d++) {
                s = fma(a[q + d], b[k + d], s);
            }
            scores[j] = s * op.scale;
            local_max = max(local_max, scores[j]);
        }
        let new_m = max(m, workgroup_max(tid, local_max));
        let alpha = exp(m - new_m);
        var local_sum = 0.0;
        for (var j = tid; j < n; j += WORKGROUP_SIZE) {
            let e = exp(scores[j] - new_m);
            scores[j] = e;
            local_sum += e;
        }
        // (workgroup_sum's barriers also publish the exponentials in `scores`.)
        z = z * alpha + workgroup_sum(tid, local_sum);
        for (var r = 0u; r < ATTENTION_DIMS_PER_INVOCATION; r++) {
            let d = tid + r * WORKGROUP_SIZE;
            if (d < hd) {
                var s = 0.0;
                for (var j = 0u; j < n; j++) {
                    s = fma(scores[j], c[(j0 + j) * kv_width + kv + d], s);
                }
                acc[r] = acc[r] * alpha + s;
            }
        }
        m = new_m;
        workgroupBarrier();
    }
    for (var r = 0u; r < ATTENTION_DIMS_PER_INVOCATION; r++) {
        let d = tid + r * WORKGROUP_SIZE;
        if (d < hd) {
            out[q + d] = acc[r] / z;
        }
    }
}

// Index of this invocation's element in a flat 2-D grid of workgroups.
fn flat_index(wg: vec3<u32>, groups: vec3<u32>, tid: u32) -> u32 {
    return (wg.y * groups.x + wg.x) * WORKGROUP_SIZE + tid;
}

// out = silu(a) * b over tokens * width values (SwiGLU: a = gate, b = up).
@compute @workgroup_size(WORKGROUP_SIZE)
fn silu_mul(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let i = flat_index(wg, groups, tid);
    if (i < op.tokens * op.width) {
        let g = a[i];
        // exp's argument is capped where it would overflow f32 (silu is then 0 to f32 precision).
        out[i] = g / (1.0 + exp(min(-g, 80.0))) * b[i];
    }
}

// out += a over tokens * width values (the residual stream).
@compute @workgroup_size(WORKGROUP_SIZE)
fn add(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) tid: u32,
) {
    let i = flat_index(wg, groups, tid);
    if (i < op.tokens * op.width) {
        out[i] = out[i] + a[i];
    }
}
