//! `exprans bench`: ratio and speed, each speed beside memcpy of the same bytes in the same run.
//!
//! Everything runs in memory on the tensors of one .safetensors file: compression (default and
//! `--fast`), the fast CPU decoder (1 and 2 threads), the reference decoder, and optionally the
//! GPU decoder. Each figure is the best of `repeat` runs, in bytes of the original file per
//! second. Compression and decoding run the same code as `compress` and `decompress` (tensors in
//! parallel batches, both checksums), writing to memory instead of a file.

use std::io::Cursor;
use std::path::Path;
use std::time::Instant;

use crate::files;
use exprans::EncodeOptions;
use exprans::{Archive, CpuDecoder};
use exprans::{Error, Result};

use crate::Device;

/// One measured speed.
#[derive(serde::Serialize)]
struct Speed {
    what: String,
    threads: usize,
    /// Bytes per second (input bytes for compression, decoded bytes for decoding).
    bytes_per_second: f64,
    /// Divided by memcpy of the same bytes in the same run.
    vs_memcpy: f64,
}

#[derive(serde::Serialize)]
struct Report {
    file: String,
    original_bytes: u64,
    /// Compressed file size / original, default mode.
    ratio: f64,
    /// The same with `--fast`.
    ratio_fast: f64,
    memcpy_bytes_per_second: f64,
    speeds: Vec<Speed>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gpu: Option<serde_json::Value>,
}

fn best_of<T>(repeat: usize, mut f: impl FnMut() -> Result<T>) -> Result<(T, f64)> {
    let mut best = f64::INFINITY;
    let mut out = None;
    for _ in 0..repeat {
        let t = Instant::now();
        let v = f()?;
        best = best.min(t.elapsed().as_secs_f64());
        out = Some(v);
    }
    Ok((out.expect("repeat >= 1"), best))
}

fn pool(threads: usize) -> Result<rayon::ThreadPool> {
    rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| Error::invalid(format!("cannot start threads: {e}")))
}

/// Runs the benchmark and prints it.
pub fn run(
    path: &Path,
    json: bool,
    device: Device,
    repeat: usize,
    default_opts: EncodeOptions,
) -> Result<()> {
    let map = files::map_file(path)?;
    // Work on a private copy so page faults of the map do not count.
    let data = map.to_vec();
    exprans::safetensors::Header::read(&data).map_err(|e| e.in_file(path))?;
    let data_bytes = data.len() as f64;

    // memcpy of the same bytes, the yardstick of every speed below.
    let mut copy = vec![0u8; data.len()];
    let (_, memcpy_secs) = best_of(repeat, || {
        copy.copy_from_slice(&data);
        Ok(std::hint::black_box(copy[0]))
    })?;
    let memcpy = data_bytes / memcpy_secs;
    let mut speeds = Vec::new();
    let mut record = |what: &str, threads: usize, bytes: f64, secs: f64| {
        speeds.push(Speed {
            what: what.to_string(),
            threads,
            bytes_per_second: bytes / secs,
            vs_memcpy: bytes / secs / memcpy,
        });
    };

    let fast_opts = EncodeOptions {
        fast: true,
        ..default_opts
    };
    let compress = |opts: &EncodeOptions| -> Result<Vec<u8>> {
        let mut out = Cursor::new(Vec::with_capacity(data.len()));
        exprans::compress_into(&data, &mut out, opts, &|_| {})?;
        Ok(out.into_inner())
    };
    let mut packed_default = Vec::new();
    let mut packed_fast = Vec::new();
    for threads in [1, 2] {
        let p = pool(threads)?;
        let (s, secs) = p.install(|| best_of(repeat, || compress(&default_opts)))?;
        record("compress", threads, data_bytes, secs);
        packed_default = s;
        let (s, secs) = p.install(|| best_of(repeat, || compress(&fast_opts)))?;
        record("compress --fast", threads, data_bytes, secs);
        packed_fast = s;
    }
    let archive_default = Archive::from_bytes(&packed_default)?;
    let archive_fast = Archive::from_bytes(&packed_fast)?;
    let decode_all = |packed: &[u8], archive: &Archive, decoder: CpuDecoder| -> Result<()> {
        exprans::decompress_into(
            packed,
            archive,
            &mut { decoder },
            &mut std::io::sink(),
            &|_| {},
        )
    };
    let fast = CpuDecoder::Fast { parallel: true };
    for threads in [1, 2] {
        let p = pool(threads)?;
        let (_, secs) = p.install(|| {
            best_of(repeat, || {
                decode_all(&packed_default, &archive_default, fast)
            })
        })?;
        record("decode (fast CPU decoder)", threads, data_bytes, secs);
        let (_, secs) =
            p.install(|| best_of(repeat, || decode_all(&packed_fast, &archive_fast, fast)))?;
        record(
            "decode --fast file (fast CPU decoder)",
            threads,
            data_bytes,
            secs,
        );
    }
    let (_, secs) = pool(1)?.install(|| {
        best_of(repeat, || {
            decode_all(&packed_default, &archive_default, CpuDecoder::Reference)
        })
    })?;
    record("decode (reference CPU decoder)", 1, data_bytes, secs);

    let gpu = match device {
        Device::Cpu => None,
        Device::Gpu | Device::Auto => Some(serde_json::json!({
            "default": super::gpu::bench(&packed_default, &archive_default, repeat)?,
            "fast": super::gpu::bench(&packed_fast, &archive_fast, repeat)?,
        })),
    };
    let original = data.len() as f64;
    let report = Report {
        file: path.display().to_string(),
        original_bytes: data.len() as u64,
        ratio: packed_default.len() as f64 / original,
        ratio_fast: packed_fast.len() as f64 / original,
        memcpy_bytes_per_second: memcpy,
        speeds,
        gpu,
    };
    if json {
        println!(
            "{}",
            serde_json::to_string_pretty(&report).expect("serializable")
        );
        return Ok(());
    }
    println!("file: {} ({} bytes)", report.file, report.original_bytes);
    println!(
        "size: default {:.4}% of the original, --fast {:.4}%",
        100.0 * report.ratio,
        100.0 * report.ratio_fast
    );
    println!("memcpy of the same bytes: {:.2} GB/s", memcpy / 1e9);
    for s in &report.speeds {
        println!(
            "{:<40} {} thread{}: {:>8.1} MB/s = {:.3}x memcpy",
            s.what,
            s.threads,
            if s.threads == 1 { " " } else { "s" },
            s.bytes_per_second / 1e6,
            s.vs_memcpy
        );
    }
    if let Some(g) = &report.gpu {
        let a = &g["default"]["adapter"];
        println!(
            "GPU: {} ({}, {}), {} kernel, {}",
            a["name"].as_str().unwrap_or("?"),
            a["backend"].as_str().unwrap_or("?"),
            a["device_type"].as_str().unwrap_or("?"),
            g["default"]["path"].as_str().unwrap_or("?").to_lowercase(),
            if g["default"]["gpu_timed"] == true {
                "timestamp queries"
            } else {
                "wall clock"
            }
        );
        for mode in ["default", "fast"] {
            let m = &g[mode];
            let rate = |k: &str| m[k].as_f64().unwrap_or(0.0) / 1e6;
            println!(
                "GPU decode, {mode:<7} file: {:>8.1} MB/s = {:.3}x the u32 copy shader ({:.1} MB/s), {:.3}x the vec4 copy shader ({:.1} MB/s)",
                rate("decode"),
                m["decode_vs_copy_u32"].as_f64().unwrap_or(0.0),
                rate("copy_u32"),
                m["decode_vs_copy_vec4"].as_f64().unwrap_or(0.0),
                rate("copy_vec4"),
            );
            println!(
                "    whole path: upload compressed + decode {:.1} MB/s, + read back {:.1} MB/s; upload uncompressed {:.1} MB/s",
                rate("upload_and_decode"),
                rate("upload_decode_read_back"),
                rate("upload_uncompressed"),
            );
        }
    }
    Ok(())
}
