//! Quickstart: compress the bundled real sample (a slice of all-MiniLM-L6-v2 in BF16), decode it
//! on the GPU, check every byte against the CPU reference decoder, and print ratio and speed.
//!
//! ```text
//! cargo run --release --example quickstart [FILE.safetensors]
//! ```

use std::time::Instant;

use exprans::gpu::{DecoderOptions, GpuDecoder};
use exprans::{Archive, CpuDecoder, EncodeOptions, Result};

fn main() {
    // No libwayland "error:" line when wgpu probes the GL backend.
    let _runtime_dir = exprans::gpu::private_runtime_dir();
    if let Err(e) = run() {
        eprintln!("quickstart: error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let path = std::env::args().nth(1).unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../samples/minilm-slice.bf16.safetensors"
        )
        .into()
    });
    let original = std::fs::read(&path).map_err(|e| exprans::Error::Io(e).in_file(&path))?;

    // 1. Compress in memory, as `exprans compress` does.
    let t = Instant::now();
    let packed = exprans::compress(&original, &EncodeOptions::default())?;
    let compress_secs = t.elapsed().as_secs_f64();
    let archive = Archive::from_bytes(&packed)?;
    println!("{path}");
    println!(
        "  {} tensors, {} -> {} bytes = {:.2}% of the original, compressed at {:.0} MB/s",
        archive.tensors.len(),
        original.len(),
        packed.len(),
        100.0 * packed.len() as f64 / original.len() as f64,
        original.len() as f64 / compress_secs / 1e6
    );

    // 2. The CPU reference decoder: the oracle.
    let reference: Vec<Vec<u8>> = archive
        .tensors
        .iter()
        .map(|t| CpuDecoder::Reference.decode_tensor(&t.index, t.stored_in(&packed)?))
        .collect::<Result<_>>()?;

    // 3. Every coded tensor decoded on the GPU in one submission.
    let gpu = pollster::block_on(GpuDecoder::new_default(DecoderOptions::default()))?;
    let adapter = gpu.adapter().expect("opened on an adapter");
    println!(
        "  GPU: {} ({}, {}), {} kernel",
        adapter.name,
        adapter.backend,
        adapter.device_type,
        gpu.path()
    );
    let items: Vec<_> = archive
        .tensors
        .iter()
        .map(|t| Ok((&t.index, t.stored_in(&packed)?)))
        .collect::<Result<_>>()?;
    pollster::block_on(gpu.decode_tensors(&items))?; // warm-up: compiles the pipelines it needs
    let t = Instant::now();
    // Both checksums checked, as for the CPU.
    let decoded = pollster::block_on(gpu.decode_tensors(&items))?;
    let gpu_secs = t.elapsed().as_secs_f64();

    // 4. Bit for bit against the reference.
    for ((t, _), (values, expected)) in items.iter().zip(decoded.iter().zip(&reference)) {
        assert!(
            values == expected,
            "GPU output differs from the CPU reference for '{}'",
            t.name
        );
    }
    let gpu_bytes: usize = decoded.iter().map(Vec::len).sum();
    let mut restored = archive.source_header_bytes();
    restored.extend(reference.iter().flatten());
    assert!(restored == original, "decompressed file differs");
    println!(
        "  GPU decoded {} tensors ({gpu_bytes} bytes) at {:.0} MB/s (upload + decode + read back): \
         identical to the CPU reference decoder",
        decoded.len(),
        gpu_bytes as f64 / gpu_secs / 1e6
    );
    println!("  the decompressed file is identical to the original: OK");
    Ok(())
}
