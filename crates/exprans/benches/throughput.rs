//! `cargo bench`: codec throughput as ratios to memcpy of the same bytes, measured in the same
//! run (these machines are shared and noisy; absolute numbers mean little). Uses the shared
//! MiniLM model when `../shared/models` (or `EXPRANS_MODELS_DIR`) has it, else the bundled sample.
//! `exprans bench FILE [--device gpu]` prints the fuller report.

use std::io::Cursor;
use std::path::PathBuf;
use std::time::Instant;

use exprans::{Archive, CodedEntry, CpuDecoder, EncodeOptions};

fn input() -> PathBuf {
    let models = std::env::var_os("EXPRANS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/../../../shared/models"
            ))
        });
    let model = models.join("all-MiniLM-L6-v2.bf16.safetensors");
    if model.exists() {
        model
    } else {
        PathBuf::from(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../samples/minilm-slice.bf16.safetensors"
        ))
    }
}

/// Best of 5 runs, in seconds.
fn best(mut f: impl FnMut()) -> f64 {
    (0..5)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64()
        })
        .fold(f64::INFINITY, f64::min)
}

fn main() {
    let path = input();
    let data = std::fs::read(&path).expect("read input");
    let one = rayon::ThreadPoolBuilder::new()
        .num_threads(1)
        .build()
        .unwrap();
    let mut copy = vec![0u8; data.len()];
    let memcpy = best(|| copy.copy_from_slice(&data));
    println!(
        "{} ({} bytes), one thread; memcpy {:.2} GB/s",
        path.display(),
        data.len(),
        data.len() as f64 / memcpy / 1e9
    );
    for (mode, fast) in [("default", false), ("--fast", true)] {
        let opts = EncodeOptions {
            fast,
            ..EncodeOptions::default()
        };
        let mut packed = Vec::new();
        let compress = one.install(|| {
            best(|| {
                let mut out = Cursor::new(Vec::new());
                exprans::compress_into(&data, &mut out, &opts, &|_| {}).unwrap();
                packed = out.into_inner();
            })
        });
        let archive = Archive::from_bytes(&packed).unwrap();
        let entries: Vec<CodedEntry> = archive
            .tensors
            .iter()
            .filter_map(|t| CodedEntry::of_tensor(&t.index, t.stored_in(&packed).unwrap()).unwrap())
            .collect();
        let decoded: usize = entries.iter().map(|e| e.decoded_len()).sum();
        let mut outs: Vec<Vec<u8>> = entries.iter().map(|e| vec![0u8; e.decoded_len()]).collect();
        let mut memcpy_coded = vec![0u8; decoded];
        let memcpy_coded_secs = best(|| memcpy_coded.copy_from_slice(&data[..decoded]));
        let decode = best(|| {
            for (e, o) in entries.iter().zip(&mut outs) {
                CpuDecoder::Fast { parallel: false }
                    .decode_entry(e, o)
                    .unwrap();
            }
        });
        let whole = one.install(|| {
            best(|| {
                exprans::decompress_into(
                    &packed,
                    &archive,
                    &mut CpuDecoder::Fast { parallel: true },
                    &mut std::io::sink(),
                    &|_| {},
                )
                .unwrap()
            })
        });
        println!(
            "{mode:>8}: size {:.4}%; compress {:.0} MB/s ({:.3}x memcpy); decode kernel {:.0} MB/s ({:.3}x memcpy); \
             decompress with checksums {:.0} MB/s ({:.3}x memcpy)",
            100.0 * packed.len() as f64 / data.len() as f64,
            data.len() as f64 / compress / 1e6,
            memcpy / compress,
            decoded as f64 / decode / 1e6,
            memcpy_coded_secs / decode,
            data.len() as f64 / whole / 1e6,
            memcpy / whole,
        );
    }
}
