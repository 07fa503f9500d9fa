// F32 decode kernel, used by both the portable and the subgroup path: one invocation per lane.
// Every value fills a whole u32 word, so lanes need no partner; the LANES invocations of a block
// write consecutive words at each step.

@compute @workgroup_size(WORKGROUP_SIZE)
fn decode32(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
) {
    let index = load_job(wg, groups) * WORKGROUP_SIZE + local;
    let block = index / LANES;
    if (block >= entry.block_count) {
        return;
    }
    let l = index % LANES;
    let start = block * entry.block_size;
    let count = lane_values(block_values(block), l);
    var lane = open_lane(block, l);
    for (var j = 0u; j < count; j++) {
        let i = start + l + j * LANES;
        output[job.out_base + i] = value32(&lane, i);
    }
    close_lane(lane, block, l, job.flag_index);
}

// One-byte (FP8, I8, U8) decode kernel, both paths: one invocation decodes the four lanes 4k ..
// 4k+3 of a block, which hold the four bytes of every output word (values 4k + LANES*j + 0..3;
// version-2 one-byte entries have blocks of a multiple of 4 values), so it writes whole u32
// words with no exchange between invocations. In a short last block the higher lanes may hold one
// value fewer; their missing bytes are 0.
@compute @workgroup_size(WORKGROUP_SIZE)
fn decode8(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(local_invocation_index) local: u32,
) {
    let quad = load_job(wg, groups) * WORKGROUP_SIZE + local;
    let block = quad / (LANES / 4u);
    if (block >= entry.block_count) {
        return;
    }
    let l = 4u * (quad % (LANES / 4u));
    let values = block_values(block);
    let start = block * entry.block_size;
    let count = lane_values(values, l);
    let counts = vec4<u32>(count, lane_values(values, l + 1u), lane_values(values, l + 2u), lane_values(values, l + 3u));
    var lane0 = open_lane(block, l);
    var lane1 = open_lane(block, l + 1u);
    var lane2 = open_lane(block, l + 2u);
    var lane3 = open_lane(block, l + 3u);
    for (var j = 0u; j < count; j++) {
        let i = start + l + j * LANES;
        var word = value8(&lane0, i);
        if (j < counts.y) {
            word |= value8(&lane1, i + 1u) << 8u;
        }
        if (j < counts.z) {
            word |= value8(&lane2, i + 2u) << 16u;
        }
        if (j < counts.w) {
            word |= value8(&lane3, i + 3u) << 24u;
        }
        output[job.out_base + (i >> 2u)] = word;
    }
    close_lane(lane0, block, l, job.flag_index);
    close_lane(lane1, block, l + 1u, job.flag_index);
    close_lane(lane2, block, l + 2u, job.flag_index);
    close_lane(lane3, block, l + 3u, job.flag_index);
}
