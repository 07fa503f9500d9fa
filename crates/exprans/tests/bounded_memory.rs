//! Decompression holds a bounded amount of decoded data whatever the tensor size: a tensor
//! larger than `BATCH_BYTES` is decoded and written in pieces (`TensorDecoder::decode_streamed`).
//! The peak of live heap bytes is measured by a counting allocator.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicUsize, Ordering};

use exprans::{Archive, CpuDecoder, EncodeOptions, BATCH_BYTES};
use exprans_testkit::{bf16s, safetensors_bytes, t, Rng};

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            let live = LIVE.fetch_add(layout.size(), Ordering::SeqCst) + layout.size();
            PEAK.fetch_max(live, Ordering::SeqCst);
        }
        p
    }
    unsafe fn dealloc(&self, p: *mut u8, layout: Layout) {
        unsafe { System.dealloc(p, layout) };
        LIVE.fetch_sub(layout.size(), Ordering::SeqCst);
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Counts bytes written, keeps none, and checks them against a CRC of the original.
struct Sink {
    bytes: u64,
    crc: u32,
}

impl std::io::Write for Sink {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.bytes += buf.len() as u64;
        self.crc = crc32c::crc32c_append(self.crc, buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn a_tensor_four_times_the_batch_size_decompresses_in_bounded_memory() {
    let values = 2 * BATCH_BYTES as usize; // BF16: 4 x BATCH_BYTES bytes
    let mut rng = Rng::seeded(7);
    let file = safetensors_bytes(
        &[
            t(
                "small",
                "BF16",
                &[1000],
                bf16s((0..1000).map(|_| rng.weight())),
            ),
            t(
                "big",
                "BF16",
                &[values as u64],
                bf16s((0..values).map(|_| rng.weight())),
            ),
        ],
        None,
    );
    let packed = exprans::compress(&file, &EncodeOptions::default()).unwrap();
    let want = crc32c::crc32c(&file);
    let original_len = file.len();
    drop(file);
    let archive = Archive::from_bytes(&packed).unwrap();
    for decoder in [CpuDecoder::default(), CpuDecoder::Fast { parallel: false }] {
        let mut sink = Sink { bytes: 0, crc: 0 };
        let before = LIVE.load(Ordering::SeqCst);
        PEAK.store(before, Ordering::SeqCst);
        exprans::decompress_into(&packed, &archive, &mut { decoder }, &mut sink, &|_| {}).unwrap();
        let peak = PEAK.load(Ordering::SeqCst) - before;
        assert_eq!((sink.bytes, sink.crc), (original_len as u64, want));
        // One piece of about BATCH_BYTES (whole blocks) and the decoders' tables: far below
        // the tensor's 4 x BATCH_BYTES.
        assert!(
            peak < 2 * BATCH_BYTES as usize,
            "peak {peak} bytes for a {} byte tensor",
            2 * values
        );
    }
}

#[test]
fn pieces_concatenate_to_the_tensor_and_damage_is_still_caught() {
    let mut rng = Rng::seeded(8);
    let values: Vec<f32> = (0..300_000).map(|_| rng.weight()).collect();
    let file = safetensors_bytes(&[t("w", "BF16", &[300_000], bf16s(values))], None);
    let opts = EncodeOptions {
        block_size: 4096,
        ..Default::default()
    };
    let packed = exprans::compress(&file, &opts).unwrap();
    let archive = Archive::from_bytes(&packed).unwrap();
    let w = archive.tensor("w").unwrap();
    let stored = w.stored_in(&packed).unwrap();
    let whole = CpuDecoder::default()
        .decode_tensor(&w.index, stored)
        .unwrap();
    for chunk in [1, 8192, 10_000, 1 << 30] {
        let mut pieces = Vec::new();
        let mut sizes = Vec::new();
        CpuDecoder::default()
            .decode_tensor_chunks(&w.index, stored, chunk, |p| {
                pieces.extend_from_slice(p);
                sizes.push(p.len());
                Ok(())
            })
            .unwrap();
        assert_eq!(pieces, whole, "chunk {chunk}");
        // Whole blocks (4096 values, 8192 bytes) per piece, at least one.
        let block = 8192;
        assert!(sizes[..sizes.len() - 1]
            .iter()
            .all(|s| s % block == 0 && *s >= block.min(chunk.max(block))));
    }
    // A wrong decoded checksum fails after the pieces.
    let mut index = w.index.clone();
    index.decoded_crc32c ^= 1;
    let err = CpuDecoder::default()
        .decode_tensor_chunks(&index, stored, 8192, |_| Ok(()))
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("decoded bytes fail their checksum"),
        "{err}"
    );
}
