// The non-matrix steps of a BERT encoder on the GPU (crates/exprans-infer/src/bert.rs): LayerNorm of a sum,
// self-attention, mean pooling with L2 normalization. The matrix steps are matvec_common.wgsl's.
// Every reduction runs in a fixed order (no atomics), so results do not depend on timing.
// Activations are [tokens][hidden] f32, row-major.

// Mirrors `OpParams` in crates/exprans-infer/src/bert.rs.
struct Op {
    tokens: u32,
    hidden: u32,
    heads: u32,
    // DTYPE_BF16 or DTYPE_F16: the type of `gamma` and `beta`.
    dtype: u32,
    // OP_RESIDUAL: layer_norm adds `b` to `a`.
    flags: u32,
    eps: f32,
    // Attention: 1 / sqrt(head size).
    scale: f32,
    pad: u32,
}

@group(0) @binding(0) var<uniform> op: Op;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read> c: array<f32>;
// LayerNorm weight and bias: 16-bit values two per u32.
@group(0) @binding(4) var<storage, read> gamma: array<u32>;
@group(0) @binding(5) var<storage, read> beta: array<u32>;
@group(0) @binding(6) var<storage, read_write> out: array<f32>;

var<workgroup> red: array<f32, WORKGROUP_SIZE>;
var<workgroup> scores: array<f32, ATTENTION_MAX_TOKENS>;

fn half_f32(bits: u32) -> f32 {
    return half_to_f32(bits, op.dtype);
}

fn gamma_f32(i: u32) -> f32 {
    return half_f32((gamma[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu);
}

fn beta_f32(i: u32) -> f32 {
    return half_f32((beta[i >> 1u] >> ((i & 1u) * 16u)) & 0xffffu);
}

// Sum of `red` over the workgroup by a fixed tree; every invocation gets it.
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

fn ln_input(i: u32) -> f32 {
    if ((op.flags & OP_RESIDUAL) != 0u) {
        return a[i] + b[i];
    }
    return a[i];
}

// out[t] = LayerNorm(a[t] (+ b[t])) * gamma + beta; one workgroup per token t.
@compute @workgroup_size(WORKGROUP_SIZE)
fn layer_norm(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let t = wg.x;
    if (t >= op.tokens) {
        return;
    }
    let base = t * op.hidden;
    var s = 0.0;
    for (var i = tid; i < op.hidden; i += WORKGROUP_SIZE) {
        s += ln_input(base + i);
    }
    let mean = workgroup_sum(tid, s) / f32(op.hidden);
    var s2 = 0.0;
    for (var i = tid; i < op.hidden; i += WORKGROUP_SIZE) {
        let d = ln_input(base + i) - mean;
        s2 = fma(d, d, s2);
    }
    let variance = workgroup_sum(tid, s2) / f32(op.hidden);
    let inv = 1.0 / sqrt(variance + op.eps);
    for (var i = tid; i < op.hidden; i += WORKGROUP_SIZE) {
        out[base + i] = (ln_input(base + i) - mean) * inv * gamma_f32(i) + beta_f32(i);
    }
}

// Self-attention without mask (every token attends to every token): out = softmax(q k^T * scale) v
// per head, with a = q, b = k, c = v. One workgroup per (token, head): x = token, y = head.
@compute @workgroup_size(WORKGROUP_SIZE)
fn attention(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) tid: u32) {
    let i = wg.x;
    let h = wg.y;
    if (i >= op.tokens || h >= op.heads) {
        return;
    }
    let tokens = min(op.tokens, ATTENTION_MAX_TOKENS);
    let size = op.hidden / op.heads;
    let q = i * op.hidden + h * size;
    var m = -3.0e38;
    for (var j = tid; j < tokens; j += WORKGROUP_SIZE) {
        let k = j * op.hidden + h * size;
        var s = 0.0;
        for (var d = 0u; d < size; d++) {
            s = fma(a[q + d], b[k + d], s);
        }
        scores[j] = s * op.scale;
        m = max(m, scores[j]);
    }
    let top = workgroup_max(tid, m);
    var z = 0.0;
    for (var j = tid; j < tokens; j += WORKGROUP_SIZE) {
        let e = exp(scores[j] - top);
        scores[j] = e;
        z += e;
    }
    let total = workgroup_sum(tid, z);
    for (var d = tid; d < size; d += WORKGROUP_SIZE) {
        var acc = 0.0;
        for (var j = 0u; j < tokens; j++) {
            acc = fma(scores[j], c[j * op.hidden + h * size + d], acc);
        }
        out[q + d] = acc / total;
    }
}

// out = normalize(mean over tokens of a): sentence-transformers' mean pooling then Normalize.
// One workgroup.
@compute @workgroup_size(WORKGROUP_SIZE)
fn mean_pool(@builtin(local_invocation_index) tid: u32) {
    var sq = 0.0;
    for (var i = tid; i < op.hidden; i += WORKGROUP_SIZE) {
        var s = 0.0;
        for (var t = 0u; t < op.tokens; t++) {
            s += a[t * op.hidden + i];
        }
        let mean = s / f32(max(op.tokens, 1u));
        out[i] = mean;
        sq = fma(mean, mean, sq);
    }
    let norm = max(sqrt(workgroup_sum(tid, sq)), 1e-12);
    for (var i = tid; i < op.hidden; i += WORKGROUP_SIZE) {
        out[i] = out[i] / norm;
    }
}
