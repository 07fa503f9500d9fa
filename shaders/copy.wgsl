// Plain copy kernels, the yardstick of `exprans::gpu::bench`: the same bytes the decoder writes,
// copied one u32 or one vec4<u32> per invocation.

@group(0) @binding(0) var<storage, read> src_words: array<u32>;
@group(0) @binding(1) var<storage, read_write> dst_words: array<u32>;
@group(0) @binding(2) var<storage, read> src_quads: array<vec4<u32>>;
@group(0) @binding(3) var<storage, read_write> dst_quads: array<vec4<u32>>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn copy_u32(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
) {
    let i = (wg.y * groups.x + wg.x) * WORKGROUP_SIZE + local;
    if (i < arrayLength(&dst_words)) {
        dst_words[i] = src_words[i];
    }
}

@compute @workgroup_size(WORKGROUP_SIZE)
fn copy_vec4(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
) {
    let i = (wg.y * groups.x + wg.x) * WORKGROUP_SIZE + local;
    if (i < arrayLength(&dst_quads)) {
        dst_quads[i] = src_quads[i];
    }
}
