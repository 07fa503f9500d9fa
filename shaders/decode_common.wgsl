// Shared part of every decode kernel: bindings, the job description, the rANS step and the plane
// joins. The host prepends the format constants (src/params.rs, `wgsl_constants`) and appends one
// kernel (decode16_portable.wgsl, decode16_subgroup.wgsl or decode32.wgsl).
//
// Vocabulary: a *job* decodes a run of whole blocks of one coded entry (a piece of it small enough
// for one storage binding); one dispatch runs many jobs, each on its own range of workgroups.
// `input` holds what the host packed for each job (src/gpu/plan.rs): decode tables, the job's
// lane directory plus one sentinel record, its 16-bit words two per u32, and its raw planes four
// bytes per u32. Value and lane indices are relative to the job.
//
// Safety against hostile streams: every loop is bounded by value counts derived from the header,
// never by stream contents; word reads are clamped below the lane's end (its range was checked
// against the entry on the host); every other index comes from value and lane positions only. A
// lane that does not end exactly at its last word with state RANS_L raises the job's error flag.

// Mirrors `JobParams` in src/gpu/plan.rs field for field.
struct Job {
    // First workgroup of the job in the dispatch (jobs are sorted by it).
    first_group: u32,
    // Values, blocks and block size of this job.
    value_count: u32,
    block_count: u32,
    block_size: u32,
    // Index in `input` of the job's first directory record (state, first word); the record after
    // the job's last lane is a sentinel whose first word is the end of that lane.
    dir_base: u32,
    // Index in `input` of the u32 holding word `word_origin`, the first stored word (even).
    word_base: u32,
    word_origin: u32,
    // Index in `output` of the u32 holding the job's first value.
    out_base: u32,
    // The job's two error slots are flags[2 * flag_index] (lanes) and flags[2 * flag_index + 1]
    // (subgroup layout).
    flag_index: u32,
    pad0: u32,
    pad1: u32,
    pad2: u32,
    // Per plane: index in `input` of its decode table (coded planes) or of its bytes (raw planes).
    plane_base: vec4<u32>,
}

// Bit p set: plane p is rANS coded, else stored raw. A pipeline constant, so that each pipeline
// is straight-line code for one combination of coded planes.
override CODED_MASK: u32;

@group(0) @binding(0) var<storage, read> jobs: array<Job>;
@group(0) @binding(1) var<storage, read> input: array<u32>;
@group(0) @binding(2) var<storage, read_write> output: array<u32>;
@group(0) @binding(3) var<storage, read_write> flags: array<atomic<u32>>;

// The job of this workgroup, copied into registers by `load_job` first thing in every kernel
// (loop-invariant values rather than loads the compiler cannot hoist past the output stores).
var<private> job: Job;

// Loads the job of workgroup `group` of the dispatch (binary search on `first_group`: at most
// log2(jobs) steps) and returns the workgroup's index within the job.
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
    return group - job.first_group;
}

// One rANS lane being decoded. `next` and `end` are word indices relative to `word_origin`.
struct Lane {
    state: u32,
    next: u32,
    end: u32,
}

// Number of values in block `block` of the job (the last block may be short, even odd).
fn block_values(block: u32) -> u32 {
    return min(job.block_size, job.value_count - block * job.block_size);
}

// Number of values lane `l` holds in a block of `values` values: l, l + LANES, ...
fn lane_values(values: u32, l: u32) -> u32 {
    if (l >= values) {
        return 0u;
    }
    return (values - l + LANES - 1u) / LANES;
}

// Opens lane `l` of block `block`: its initial state and word range from the directory.
fn open_lane(block: u32, l: u32) -> Lane {
    let record = job.dir_base + 2u * (block * LANES + l);
    return Lane(input[record], input[record + 1u] - job.word_origin, input[record + 3u] - job.word_origin);
}

// Word `w` (relative to word_origin) of the job.
fn read_word(w: u32) -> u32 {
    let shift = (w & 1u) * WORD_BITS;
    return (input[job.word_base + (w >> 1u)] >> shift) & ((1u << WORD_BITS) - 1u);
}

// Decodes one symbol of coded plane `plane` from `lane`, refilling at most one word. Branch-free:
// the word is read at `next` clamped below the lane's end (word 0 of the job, which always exists,
// when the job has no words before it) and used only when a refill is due and the lane still has
// a word; a refill past the lane's end uses 0 and still advances `next`, so `close_lane` reports
// it.
fn decode_symbol(lane: ptr<function, Lane>, plane: u32) -> u32 {
    let state = (*lane).state;
    let slot = input[job.plane_base[plane] + (state & PROB_MASK)];
    let freq = ((slot >> SYMBOL_BITS) & PROB_MASK) + 1u;
    let x = freq * (state >> PROB_BITS) + (slot >> (SYMBOL_BITS + PROB_BITS));
    let next = (*lane).next;
    let end = (*lane).end;
    let refill = x < RANS_L;
    let word = select(0u, read_word(min(next, max(end, 1u) - 1u)), refill && next < end);
    (*lane).state = select(x, (x << WORD_BITS) | word, refill);
    (*lane).next = next + u32(refill);
    return slot & ((1u << SYMBOL_BITS) - 1u);
}

// Whether plane `plane` is coded (else raw).
fn is_coded(plane: u32) -> bool {
    return ((CODED_MASK >> plane) & 1u) != 0u;
}

// Bytes of raw plane `plane` from value `i` of the job on, the byte of value `i` lowest.
fn raw_bytes(plane: u32, i: u32) -> u32 {
    return input[job.plane_base[plane] + (i >> 2u)] >> ((i & 3u) * SYMBOL_BITS);
}

// Byte of plane `plane` for value `i` of the job: decoded from `lane` when the plane is coded
// (planes must be visited in plane order), else read from the raw plane.
fn plane_byte(lane: ptr<function, Lane>, plane: u32, i: u32) -> u32 {
    if (is_coded(plane)) {
        return decode_symbol(lane, plane);
    }
    return raw_bytes(plane, i) & ((1u << SYMBOL_BITS) - 1u);
}

// Joins the planes of a 16-bit value (src/planes.rs, `join16`): plane 0 holds bits 14..7, plane 1
// holds the sign (its top bit) and bits 6..0.
fn join16(p0: u32, p1: u32) -> u32 {
    return ((p1 & 0x80u) << 8u) | (p0 << 7u) | (p1 & 0x7fu);
}

// Decodes value `i` of the job (BF16/F16) from `lane`.
fn value16(lane: ptr<function, Lane>, i: u32) -> u32 {
    let p0 = plane_byte(lane, 0u, i);
    let p1 = plane_byte(lane, 1u, i);
    return join16(p0, p1);
}

// Decodes value `i` of the job (F32) from `lane` (src/planes.rs, `join32`).
fn value32(lane: ptr<function, Lane>, i: u32) -> u32 {
    let p0 = plane_byte(lane, 0u, i);
    let p1 = plane_byte(lane, 1u, i);
    let p2 = plane_byte(lane, 2u, i);
    let p3 = plane_byte(lane, 3u, i);
    return (join16(p0, p1) << 16u) | (p2 << 8u) | p3;
}

// Checks that lane `l` of block `block` ended where the encoder started: exactly at its last word
// with state RANS_L. On failure records the job's smallest failing lane (the flag holds its
// complement, so atomicMax keeps the smallest and 0 means no failure).
fn close_lane(lane: Lane, block: u32, l: u32) {
    if (lane.state != RANS_L || lane.next != lane.end) {
        atomicMax(&flags[2u * job.flag_index], ~(block * LANES + l));
    }
}
