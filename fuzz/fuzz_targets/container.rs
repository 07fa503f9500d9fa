//! The safetensors container parser on arbitrary bytes (`exprans::safetensors::Header`), checked
//! against the `safetensors` crate, and the lossless round trip of every file it accepts.
//!
//! Must hold for every input: no panic, no abort, no unbounded allocation; an accepted header
//! describes the file exactly; a header the `safetensors` crate accepts is accepted (unless a
//! tensor entry has fields of its own, which exprans refuses), and the other way round when every
//! dtype is one both know; an accepted file that `compress` takes
//! decompresses to itself byte for byte with every decoder.
#![no_main]

use exprans::safetensors::{dtype_size, Header};
use exprans::{CpuDecoder, EncodeOptions};
use exprans_fuzz::{Choices, EDGE_VALUES};
use libfuzzer_sys::fuzz_target;

/// Inputs up to this size are also compressed and decompressed.
const ROUND_TRIP_MAX: usize = 1 << 18;

fuzz_target!(|data: &[u8]| {
    let ours = Header::read(data);
    if let Ok(h) = &ours {
        assert_eq!(h.data_start() + h.data_len(), data.len() as u64);
        let mut end = 0;
        for (_, t) in &h.tensors {
            assert_eq!(t.data_offsets.0, end, "tensors are contiguous");
            end = t.data_offsets.1;
        }
    }

    // The safetensors crate is the reference for what a safetensors file is.
    let theirs = safetensors::SafeTensors::deserialize(data);
    match (&ours, &theirs) {
        // A known difference (fuzz/README.md): exprans refuses fields other than dtype, shape
        // and data_offsets in a tensor entry, which the safetensors crate ignores.
        (Err(e), Ok(_)) if e.to_string().contains("unknown field") => {}
        (Err(e), Ok(_)) => panic!("exprans rejects a file the safetensors crate reads: {e}"),
        (Ok(h), Err(e)) => {
            // exprans stores any dtype verbatim; only dtypes both know must agree.
            let known = |d: &str| {
                dtype_size(d).is_some()
                    && serde_json::from_value::<safetensors::Dtype>(d.into()).is_ok()
            };
            if h.tensors.iter().all(|(_, t)| known(&t.dtype)) {
                panic!("exprans reads a file the safetensors crate rejects: {e:?}");
            }
        }
        _ => {}
    }

    let Ok(header) = ours else {
        return;
    };
    let mut choose = Choices::of(data);
    // The block size rule for every shape, and for the shapes with edge-valued dimensions
    // (zero-element shapes such as [0, 2^64 - 1] are valid): an error at worst.
    for (_, t) in &header.tensors {
        let mut shape = t.shape.clone();
        for d in &mut shape {
            if choose.below(2) == 0 {
                *d = EDGE_VALUES[choose.below(EDGE_VALUES.len() as u64) as usize];
            }
        }
        for rows in [1, 2, 3, 64, u32::MAX] {
            let opts = EncodeOptions {
                rows_per_block: Some(rows),
                ..EncodeOptions::default()
            };
            let _ = opts.for_shape(&t.shape);
            let _ = opts.for_shape(&shape);
        }
    }
    if data.len() > ROUND_TRIP_MAX {
        return;
    }
    let block_size = [1 << 20, 4096, 64, 2, 1000][choose.below(5) as usize];
    let opts = EncodeOptions {
        block_size,
        fast: choose.below(2) == 1,
        rows_per_block: [None, Some(1), Some(3)][choose.below(3) as usize],
    };
    // `compress` may refuse a file (rows too long for one block, say); what it writes must
    // give back the input exactly.
    let Ok(packed) = exprans::compress(data, &opts) else {
        return;
    };
    for decoder in [CpuDecoder::Reference, CpuDecoder::Fast { parallel: false }] {
        match exprans::decompress(&packed, decoder) {
            Ok(back) => assert!(back == data, "{decoder:?}: round trip differs ({opts:?})"),
            Err(e) => panic!("{decoder:?}: a compressed file does not decode: {e} ({opts:?})"),
        }
    }
});
