//! `exprans bench`: ratio and speed, each speed beside memcpy of the same bytes in the same run.
//!
//! Everything runs in memory on the tensors of one .safetensors file, or of each shard of a model
//! directory in turn (then with totals over the shards): compression (default and
//! `--fast`), the fast CPU decoder (1 and 2 threads), the reference decoder, and optionally the
//! GPU decoder. Each figure is the best of `repeat` runs, in bytes of the original file per
//! second. Compression and decoding run the same code as `compress` and `decompress` (tensors in
//! parallel batches, both checksums), writing to memory instead of a file.

use std::io::Cursor;
use std::path::Path;
use std::time::Instant;

use crate::files::{self, Expected};
use exprans::EncodeOptions;
use exprans::{Archive, CpuDecoder, Encoding};
use exprans::{Error, Result};

use crate::Device;

/// One measured speed.
#[derive(Clone, serde::Serialize)]
struct Speed {
    what: String,
    threads: usize,
    /// Bytes per second (input bytes for compression, decoded bytes for decoding).
    bytes_per_second: f64,
    /// Divided by memcpy of the same bytes in the same run.
    vs_memcpy: f64,
    /// The best time, in seconds, for [`Speed::bytes`].
    seconds: f64,
    /// Bytes processed in [`Speed::seconds`].
    #[serde(skip)]
    bytes: f64,
}

/// Sizes and speeds of one file, or of every shard of a directory: there the byte counts and
/// times are the sums of the shards', and ratios and rates are recomputed from the sums
/// ([`Measures::sum`]).
#[derive(Clone, serde::Serialize)]
struct Measures {
    original_bytes: u64,
    /// Compressed size / original, default mode.
    ratio: f64,
    /// The same with `--fast`.
    ratio_fast: f64,
    /// Compressed size, default mode.
    compressed_bytes: u64,
    /// Compressed size with `--fast`.
    compressed_bytes_fast: u64,
    memcpy_bytes_per_second: f64,
    /// The best time of memcpy of [`Measures::original_bytes`].
    #[serde(skip)]
    memcpy_seconds: f64,
    speeds: Vec<Speed>,
    /// GPU figures, `{"default": ..., "fast": ...}`; absent for the CPU only, or when no tensor is
    /// coded.
    #[serde(skip_serializing_if = "Option::is_none")]
    gpu: Option<serde_json::Value>,
}

/// The report on one file: its JSON form is `bench --json` of that file.
#[derive(serde::Serialize)]
struct Report {
    file: String,
    #[serde(flatten)]
    measures: Measures,
}

/// The report on a model directory: every shard's, and the totals over them.
#[derive(serde::Serialize)]
struct DirReport {
    dir: String,
    shards: Vec<Report>,
    total: Measures,
}

/// GPU rates in the benchmark's JSON, all in decoded bytes per second.
const GPU_RATES: [&str; 6] = [
    "decode",
    "copy_u32",
    "copy_vec4",
    "upload_and_decode",
    "upload_decode_read_back",
    "upload_uncompressed",
];
/// GPU byte and entry counts in the benchmark's JSON, summed over shards.
const GPU_COUNTS: [&str; 4] = [
    "entries",
    "decoded_bytes",
    "compressed_bytes",
    "checked_tensors",
];

impl Measures {
    /// The totals of several shards' measures (at least one, all of the same measurements).
    fn sum(shards: &[&Measures]) -> Measures {
        let first = shards[0];
        let total = |f: &dyn Fn(&Measures) -> u64| shards.iter().map(|m| f(m)).sum::<u64>();
        let original_bytes = total(&|m| m.original_bytes);
        let compressed_bytes = total(&|m| m.compressed_bytes);
        let compressed_bytes_fast = total(&|m| m.compressed_bytes_fast);
        let memcpy_seconds: f64 = shards.iter().map(|m| m.memcpy_seconds).sum();
        let memcpy = original_bytes as f64 / memcpy_seconds;
        let speeds = (0..first.speeds.len())
            .map(|i| {
                let bytes: f64 = shards.iter().map(|m| m.speeds[i].bytes).sum();
                let seconds: f64 = shards.iter().map(|m| m.speeds[i].seconds).sum();
                Speed {
                    what: first.speeds[i].what.clone(),
                    threads: first.speeds[i].threads,
                    bytes_per_second: bytes / seconds,
                    vs_memcpy: bytes / seconds / memcpy,
                    seconds,
                    bytes,
                }
            })
            .collect();
        let gpu_shards: Vec<&serde_json::Value> =
            shards.iter().filter_map(|m| m.gpu.as_ref()).collect();
        let original = original_bytes.max(1) as f64;
        Measures {
            original_bytes,
            ratio: compressed_bytes as f64 / original,
            ratio_fast: compressed_bytes_fast as f64 / original,
            compressed_bytes,
            compressed_bytes_fast,
            memcpy_bytes_per_second: memcpy,
            memcpy_seconds,
            speeds,
            gpu: (!gpu_shards.is_empty()).then(|| {
                serde_json::json!({
                    "default": sum_gpu(&gpu_shards, "default"),
                    "fast": sum_gpu(&gpu_shards, "fast"),
                })
            }),
        }
    }
}

/// The GPU figures of one mode (`default` or `fast`) over several shards: counts summed, rates
/// as total decoded bytes over total time, adapter and kernel those of the first shard.
fn sum_gpu(shards: &[&serde_json::Value], mode: &str) -> serde_json::Value {
    let modes: Vec<&serde_json::Value> = shards.iter().map(|g| &g[mode]).collect();
    let number = |m: &serde_json::Value, k: &str| m[k].as_f64().unwrap_or(0.0);
    let mut out = serde_json::json!({
        "adapter": modes[0]["adapter"],
        "path": modes[0]["path"],
        "gpu_timed": modes[0]["gpu_timed"],
    });
    for k in GPU_COUNTS {
        out[k] = modes
            .iter()
            .map(|m| m[k].as_u64().unwrap_or(0))
            .sum::<u64>()
            .into();
    }
    let decoded: f64 = modes.iter().map(|m| number(m, "decoded_bytes")).sum();
    for k in GPU_RATES {
        let seconds: f64 = modes
            .iter()
            .map(|m| number(m, "decoded_bytes") / number(m, k))
            .sum();
        out[k] = (decoded / seconds).into();
    }
    out["decode_vs_copy_u32"] = (number(&out, "decode") / number(&out, "copy_u32")).into();
    out["decode_vs_copy_vec4"] = (number(&out, "decode") / number(&out, "copy_vec4")).into();
    out
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

/// Runs the benchmark on a .safetensors file or on every shard of a model directory
/// ([`files::model_shards`]) and prints it (text, or JSON).
pub fn run(
    path: &Path,
    json: bool,
    device: Device,
    repeat: usize,
    default_opts: EncodeOptions,
) -> Result<()> {
    files::check_input(path, Expected::Original)?;
    let gpu_wanted = device != Device::Cpu;
    let no_gpu_figures = || {
        Error::invalid("no tensor is coded, so there is nothing for the GPU to decode")
            .in_file(path)
    };
    if path.is_dir() {
        let mut shards = Vec::new();
        for rel in files::model_shards(path)? {
            let file = path.join(rel);
            let data = load(&file)?;
            let measures =
                measure(&data, device, repeat, default_opts).map_err(|e| e.in_file(&file))?;
            shards.push(Report {
                file: file.display().to_string(),
                measures,
            });
        }
        let total = Measures::sum(&shards.iter().map(|r| &r.measures).collect::<Vec<_>>());
        if gpu_wanted && total.gpu.is_none() {
            return Err(no_gpu_figures());
        }
        let report = DirReport {
            dir: path.display().to_string(),
            shards,
            total,
        };
        if json {
            print_json(&report);
        } else {
            print_dir(&report);
        }
    } else {
        let data = load(path)?;
        let measures = measure(&data, device, repeat, default_opts).map_err(|e| e.in_file(path))?;
        if gpu_wanted && measures.gpu.is_none() {
            return Err(no_gpu_figures());
        }
        let report = Report {
            file: path.display().to_string(),
            measures,
        };
        if json {
            print_json(&report);
        } else {
            println!(
                "file: {} ({} bytes)",
                report.file, report.measures.original_bytes
            );
            print_measures(&report.measures);
        }
    }
    Ok(())
}

fn print_json(report: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(report).expect("serializable")
    );
}

/// A private copy of a safetensors file (so that page faults of a map do not count), its header
/// checked.
fn load(path: &Path) -> Result<Vec<u8>> {
    let data = files::map_file(path)?.to_vec();
    exprans::safetensors::Header::read(&data).map_err(|e| e.in_file(path))?;
    Ok(data)
}

/// Measures sizes and speeds on the safetensors file `data`, each speed the best of `repeat`.
fn measure(
    data: &[u8],
    device: Device,
    repeat: usize,
    default_opts: EncodeOptions,
) -> Result<Measures> {
    let data_bytes = data.len() as f64;

    // memcpy of the same bytes, the yardstick of every speed below.
    let mut copy = vec![0u8; data.len()];
    let (_, memcpy_secs) = best_of(repeat, || {
        copy.copy_from_slice(data);
        Ok(std::hint::black_box(copy.first().copied()))
    })?;
    let memcpy = data_bytes / memcpy_secs;
    let mut speeds = Vec::new();
    let mut record = |what: &str, threads: usize, bytes: f64, secs: f64| {
        speeds.push(Speed {
            what: what.to_string(),
            threads,
            bytes_per_second: bytes / secs,
            vs_memcpy: bytes / secs / memcpy,
            seconds: secs,
            bytes,
        });
    };

    let fast_opts = EncodeOptions {
        fast: true,
        ..default_opts
    };
    let compress = |opts: &EncodeOptions| -> Result<Vec<u8>> {
        let mut out = Cursor::new(Vec::with_capacity(data.len()));
        exprans::compress_into(data, &mut out, opts, &|_| {})?;
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

    let has_coded = archive_default
        .tensors
        .iter()
        .any(|t| t.index.encoding == Encoding::Rans);
    let gpu = match device {
        Device::Cpu => None,
        Device::Gpu | Device::Auto if !has_coded => None,
        Device::Gpu | Device::Auto => Some(serde_json::json!({
            "default": super::gpu::bench(&packed_default, &archive_default, repeat)?,
            "fast": super::gpu::bench(&packed_fast, &archive_fast, repeat)?,
        })),
    };
    let original = data_bytes.max(1.0);
    Ok(Measures {
        original_bytes: data.len() as u64,
        ratio: packed_default.len() as f64 / original,
        ratio_fast: packed_fast.len() as f64 / original,
        compressed_bytes: packed_default.len() as u64,
        compressed_bytes_fast: packed_fast.len() as u64,
        memcpy_bytes_per_second: memcpy,
        memcpy_seconds: memcpy_secs,
        speeds,
        gpu,
    })
}

/// One line per shard, then the totals over all of them.
fn print_dir(report: &DirReport) {
    for shard in &report.shards {
        let name = Path::new(&shard.file)
            .strip_prefix(&report.dir)
            .unwrap_or(Path::new(&shard.file));
        let m = &shard.measures;
        println!(
            "{}: {} bytes, default {:.4}% of the original, --fast {:.4}%",
            name.display(),
            m.original_bytes,
            100.0 * m.ratio,
            100.0 * m.ratio_fast
        );
    }
    println!();
    println!(
        "total: {} ({} shards, {} bytes)",
        report.dir,
        report.shards.len(),
        report.total.original_bytes
    );
    print_measures(&report.total);
}

/// Sizes, then every speed beside memcpy, then the GPU figures when measured.
fn print_measures(m: &Measures) {
    println!(
        "size: default {:.4}% of the original, --fast {:.4}%",
        100.0 * m.ratio,
        100.0 * m.ratio_fast
    );
    println!(
        "memcpy of the same bytes: {:.2} GB/s",
        m.memcpy_bytes_per_second / 1e9
    );
    for s in &m.speeds {
        println!(
            "{:<40} {} thread{}: {:>8.1} MB/s = {:.3}x memcpy",
            s.what,
            s.threads,
            if s.threads == 1 { " " } else { "s" },
            s.bytes_per_second / 1e6,
            s.vs_memcpy
        );
    }
    if let Some(g) = &m.gpu {
        print_gpu(g);
    }
}

/// The GPU figures: adapter, then per mode the decode rate beside the copy shaders.
fn print_gpu(g: &serde_json::Value) {
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
