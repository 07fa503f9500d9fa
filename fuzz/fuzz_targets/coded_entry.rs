//! Coded entries and the CPU decoders: every coded entry of a fuzzed exprans file (checksums
//! recomputed) or one bare entry (an input starting with `XRNS`), through
//! `CodedEntry::of_tensor` / `parse_entry`, then the reference decoder and every fast kernel this
//! CPU runs, serial and parallel.
//!
//! Must hold: no panic, no abort, no unbounded allocation; every kernel agrees with the
//! reference on success or failure and on the bytes, and a serial kernel names the same failing
//! lane.
#![no_main]

use exprans::{CpuDecoder, CpuKernel};
use exprans_fuzz::{for_each_entry, reference_decode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    for_each_entry(data, |entry| {
        let _ = entry.sections();
        let _ = entry.size_breakdown();
        let Some(reference) = reference_decode(entry) else {
            return;
        };
        let mut decoders = vec![CpuDecoder::Fast { parallel: true }];
        for kernel in CpuKernel::available() {
            for parallel in [false, true] {
                decoders.push(CpuDecoder::Kernel { kernel, parallel });
            }
        }
        for decoder in decoders {
            let mut out = vec![0u8; entry.decoded_len()];
            let result = decoder
                .decode_entry(entry, &mut out)
                .map(|()| out)
                .map_err(|e| e.to_string());
            let serial = matches!(
                decoder,
                CpuDecoder::Kernel {
                    parallel: false,
                    ..
                }
            );
            match (&reference, &result) {
                (Ok(a), Ok(b)) => assert!(a == b, "{decoder:?} decodes other bytes"),
                (Err(a), Err(b)) => {
                    if serial {
                        assert_eq!(a, b, "{decoder:?} names another failure");
                    }
                }
                _ => panic!("{decoder:?}: {result:?} where the reference gives {reference:?}"),
            }
        }
    });
});
