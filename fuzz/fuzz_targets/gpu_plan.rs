//! The GPU decoders' host side, without a GPU: `gpu::PackedEntry::new` (the packer every kernel
//! over compressed weights reads, with its checks: block range, lane steps, word and buffer
//! addressing) over fuzz-chosen block ranges of every coded entry of the input (as in
//! `coded_entry`), `PackedEntry::packed_len`, `gpu::output_len`, `gpu::check_flags`; then the
//! WGSL rANS lane emulated on the host over each packed entry (`emulate_packed`, every read
//! bounds-checked), compared with the CPU reference decoder.
//!
//! Must hold: no panic, no abort, no unbounded allocation; a packed entry is exactly
//! `packed_len` bytes and its parameters describe its blocks; the kernels never read outside
//! it nor loop past the drivers' limits; they decode what the reference decodes and flag the
//! lane it rejects.
#![no_main]

use exprans::gpu::{check_flags, output_len, PackedEntry};
use exprans::CodedEntry;
use exprans_fuzz::{emulate_packed, for_each_entry, reference_decode, Choices, MAX_DECODED};
use libfuzzer_sys::fuzz_target;

fn layout_of(entry: &CodedEntry) -> exprans::internals::PlaneLayout {
    exprans::internals::entry_header(entry).layout
}

fn check_entry(entry: &CodedEntry, choose: &mut Choices) {
    let blocks = entry.block_count();
    let layout = layout_of(entry);
    let value_bytes = layout.value_bytes();
    assert!(output_len(entry) >= entry.decoded_len() as u64);
    // Bad ranges are errors, not panics.
    assert!(PackedEntry::new(entry, blocks..blocks).is_err());
    assert!(PackedEntry::new(entry, blocks..blocks + 1).is_err());
    if blocks == 0 {
        return;
    }
    // The whole entry, and a few runs of blocks (as `split` cuts them).
    let mut ranges = Vec::with_capacity(4);
    ranges.push(0..blocks);
    for _ in 0..3 {
        let start = choose.below(blocks as u64) as usize;
        let end = start + 1 + choose.below((blocks - start) as u64) as usize;
        ranges.push(start..end);
    }
    let reference = if entry.decoded_len() <= MAX_DECODED {
        reference_decode(entry)
    } else {
        None
    };
    let block_size = entry.block_size() as usize;
    for range in ranges {
        let packed = match PackedEntry::new(entry, range.clone()) {
            Ok(p) => p,
            Err(_) => continue,
        };
        let values = (range.end * block_size).min(entry.value_count()) - range.start * block_size;
        assert_eq!(
            packed.bytes.len() as u64,
            PackedEntry::packed_len(entry, range.clone())
        );
        assert_eq!(
            packed.params.block_count as usize,
            range.len(),
            "block count"
        );
        assert_eq!(packed.params.value_count as usize, values, "value count");
        assert_eq!(packed.params.block_size as usize, block_size);
        let Some(reference) = &reference else {
            continue;
        };
        let emulated = emulate_packed(&packed, layout);
        // The error slot as the kernel writes it, read back as the decoders do.
        let slot = emulated.failing_lane.map_or(0, |l| !l);
        let flagged = check_flags([slot, 0], range.start).map_err(|e| e.to_string());
        match reference {
            Ok(bytes) => {
                let ours = &bytes[range.start * block_size * value_bytes..][..values * value_bytes];
                assert!(emulated.bytes == ours, "GPU emulation decodes other bytes");
                assert_eq!(flagged, Ok(()), "GPU emulation flags a good entry");
            }
            Err(message) => {
                // The reference stops at its first failing lane: blocks before it decode, and
                // the packed entry holding it names the same lane.
                let lane_at = |m: &str| -> Option<(usize, usize)> {
                    let rest = m.split("rANS lane ").nth(1)?;
                    let mut words = rest.split(' ');
                    let lane = words.next()?.parse().ok()?;
                    let block = words.nth(2)?.parse().ok()?;
                    Some((block, lane))
                };
                let Some((block, _)) = lane_at(message) else {
                    continue;
                };
                if range.end <= block {
                    assert_eq!(flagged, Ok(()), "GPU emulation flags blocks that decode");
                } else if range.contains(&block) {
                    assert_eq!(flagged.as_ref().err(), Some(message), "GPU emulation flags");
                }
            }
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let mut choose = Choices::of(data);
    // Any error slots read back: an error or nothing, never a panic.
    let slots = [choose.below(1 << 32) as u32, choose.below(3) as u32];
    let _ = check_flags(slots, choose.below(1 << 40) as usize);
    for_each_entry(data, |entry| check_entry(entry, &mut choose));
});
