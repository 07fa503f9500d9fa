// BF16/F16 decode kernel for adapters with subgroups: one invocation per lane. The two lanes 2k
// and 2k+1 of a block hold the two halves of every output word; the even lane fetches its
// partner's value with subgroupShuffleXor(_, 1) and writes the word.
//
// Correct for any subgroup size (4..128) and any placement of invocations into subgroups: lanes
// are assigned from subgroup ranks, not from local_invocation_index. Each subgroup reserves a run
// of `slots` (its active invocation count, even since workgroup and subgroup sizes are powers of
// two >= 4) with one workgroup atomic, and invocation of rank r takes slot base + r. So the two
// lanes of a word sit at ranks 2m and 2m + 1 of one subgroup. The shuffle addresses subgroup
// invocation ids, so ranks must equal ids: true when the active invocations are the first ones of
// the subgroup, as at the start of every compute dispatch; otherwise the job's layout flag is
// raised and the host reports an error instead of returning wrong bytes.

var<workgroup> slots_taken: atomic<u32>;

@compute @workgroup_size(WORKGROUP_SIZE)
fn decode16(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(num_workgroups) groups: vec3<u32>,
    @builtin(subgroup_invocation_id) id: u32,
) {
    let first_lane = load_job(wg, groups) * WORKGROUP_SIZE;
    // Workgroup-uniform: a whole workgroup past the job's lanes leaves together.
    if (first_lane >= entry.block_count * LANES) {
        return;
    }
    let rank = subgroupExclusiveAdd(1u);
    let members = subgroupAdd(1u);
    var base = 0u;
    if (rank == 0u) {
        base = atomicAdd(&slots_taken, members);
    }
    base = subgroupBroadcastFirst(base);
    if (subgroupAny(rank != id) && rank == 0u) {
        atomicMax(&flags[2u * job.flag_index + 1u], 1u);
    }

    let index = first_lane + base + rank;
    let block = index / LANES;
    let l = index % LANES;
    let even = (l & 1u) == 0u;
    var count = 0u;
    var lane = Lane(RANS_L, 0u, 0u);
    if (block < entry.block_count) {
        count = lane_values(block_values(block), l);
        lane = open_lane(block, l);
    }
    // The loop runs the same number of times in the whole subgroup so every shuffle has its
    // partner active. Lanes past their values contribute 0 (the high half of a tensor's last
    // word when its value count is odd).
    let steps = subgroupMax(count);
    let start = block * entry.block_size;
    for (var j = 0u; j < steps; j++) {
        let i = start + l + j * LANES;
        var value = 0u;
        if (j < count) {
            value = value16(&lane, i);
        }
        let partner = subgroupShuffleXor(value, 1u);
        if (even && j < count) {
            output[job.out_base + (i >> 1u)] = value | (partner << 16u);
        }
    }
    if (block < entry.block_count) {
        close_lane(lane, block, l, job.flag_index);
    }
}
