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
