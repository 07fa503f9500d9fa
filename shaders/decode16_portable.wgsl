// BF16/F16 decode kernel without optional features: one invocation decodes the two lanes 2k and
// 2k+1 of a block, which hold the two halves of every output word (values 2k + LANES*j and
// 2k + 1 + LANES*j), so it writes whole u32 words with no exchange between invocations. The
// LANES/2 invocations of a block write consecutive words at each step.

@compute @workgroup_size(WORKGROUP_SIZE)
fn decode16(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
) {
    let pair = load_job(wg, groups) * WORKGROUP_SIZE + local;
    let block = pair / (LANES / 2u);
    if (block >= entry.block_count) {
        return;
    }
    let l = 2u * (pair % (LANES / 2u));
    let values = block_values(block);
    let start = block * entry.block_size;
    // Blocks hold an even number of values except possibly the job's last one, where lane l + 1
    // may hold one value fewer than lane l; its missing value leaves the high half 0.
    let count = lane_values(values, l);
    let count_hi = lane_values(values, l + 1u);
    var lo_lane = open_lane(block, l);
    var hi_lane = open_lane(block, l + 1u);
    for (var j = 0u; j < count; j++) {
        let i = start + l + j * LANES;
        let hi_active = j < count_hi;
        let p0 = plane_pair(&lo_lane, &hi_lane, hi_active, 0u, vec2<u32>(0u), i);
        let p1 = plane_pair(&lo_lane, &hi_lane, hi_active, 1u, p0, i);
        let lo = join16(p0.x, p1.x);
        let hi = select(0u, join16(p0.y, p1.y), hi_active);
        output[job.out_base + (i >> 1u)] = lo | (hi << 16u);
    }
    close_lane(lo_lane, block, l, job.flag_index);
    close_lane(hi_lane, block, l + 1u, job.flag_index);
}

// Plane `plane` of value `i` (even; from lane `lo`) and of value `i + 1` (from lane `hi`, when
// `hi_active`), whose plane-0 bytes are `p0` (plane 1's context classes). A raw plane gives both
// bytes with one read: they share a u32 since `i` is even.
fn plane_pair(
    lo: ptr<function, Lane>,
    hi: ptr<function, Lane>,
    hi_active: bool,
    plane: u32,
    p0: vec2<u32>,
    i: u32,
) -> vec2<u32> {
    let byte_mask = (1u << SYMBOL_BITS) - 1u;
    if (is_coded(plane)) {
        let lo_byte = decode_symbol(lo, plane_table(plane, p0.x));
        var hi_byte = 0u;
        if (hi_active) {
            hi_byte = decode_symbol(hi, plane_table(plane, p0.y));
        }
        return vec2<u32>(lo_byte, hi_byte);
    }
    let bytes = raw_bytes(plane, i);
    return vec2<u32>(bytes & byte_mask, (bytes >> SYMBOL_BITS) & byte_mask);
}
