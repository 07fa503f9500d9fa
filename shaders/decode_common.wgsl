// Shared part of every decode kernel: bindings and the job description. The host prepends the
// format constants (crates/exprans/src/params.rs, `wgsl_constants`) and the rANS lane (rans_lane.wgsl), and
// appends one kernel (decode16_portable.wgsl, decode16_subgroup.wgsl or decode32.wgsl).
//
// Vocabulary: a *job* decodes a run of whole blocks of one coded entry (a piece of it small enough
// for one storage binding); one dispatch runs many jobs, each on its own range of workgroups.
// `packed` holds the packed entry of each job (rans_lane.wgsl, `exprans::gpu::PackedEntry`), one
// after the other. Value and lane indices are relative to the job.
//
// Safety against hostile streams: every loop is bounded by value counts derived from the header,
// never by stream contents (see rans_lane.wgsl for the reads).

// Mirrors `JobParams` in src/gpu/plan.rs field for field.
struct Job {
    // First workgroup of the job in the dispatch (jobs are sorted by it).
    first_group: u32,
    // Index in `output` of the u32 holding the job's first value.
    out_base: u32,
    // The job's error slots: flags[2 * flag_index] (lanes) and flags[2 * flag_index + 1]
    // (subgroup layout).
    flag_index: u32,
    pad: u32,
    // The job's packed entry, its indices into `packed`.
    entry: PackedEntry,
}

// Bit p set: plane p is rANS coded, else stored raw. A pipeline constant, so that each pipeline
// is straight-line code for one combination of coded planes.
override CODED_MASK: u32;

@group(0) @binding(0) var<storage, read> jobs: array<Job>;
@group(0) @binding(1) var<storage, read> packed: array<u32>;
@group(0) @binding(2) var<storage, read_write> output: array<u32>;
@group(0) @binding(3) var<storage, read_write> flags: array<atomic<u32>>;

// The coded planes, for rans_lane.wgsl.
fn coded_mask() -> u32 {
    return CODED_MASK;
}

// The job of this workgroup, copied into registers by `load_job` first thing in every kernel
// (loop-invariant values rather than loads the compiler cannot hoist past the output stores).
var<private> job: Job;

// Loads the job of workgroup `group` of the dispatch (binary search on `first_group`: at most
// log2(jobs) steps), and its packed entry into `entry`; returns the workgroup's index within the
// job.
fn load_job(wg: vec3<u32>, groups: vec3<u32>) -> u32 {
    let group = wg.y * groups.x + wg.x;
    var lo = 0u;
    var hi = arrayLength(&jobs);
    // Invariant: jobs[lo].first_group <= group (jobs[0].first_group is 0), and every job from
    // `hi` on starts after `group`.
    while (hi - lo > 1u) {
        let mid = (lo + hi) / 2u;
        if (jobs[mid].first_group <= group) {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    job = jobs[lo];
    entry = job.entry;
    return group - job.first_group;
}
