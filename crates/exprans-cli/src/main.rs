//! The `exprans` command-line tool.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use exprans::{CpuDecoder, EncodeOptions};
use exprans::{Error, Result};
use files::{SizeReport, TensorDecoder};

mod cli;
mod files;

#[derive(Parser)]
#[command(
    name = "exprans",
    version,
    about = "Lossless compression of neural-network weights, decoded on the CPU or any GPU"
)]
struct Args {
    /// No progress bars or summaries (errors are still printed).
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Compress a .safetensors file or a Hugging Face model directory.
    Compress {
        /// A .safetensors file or a model directory.
        input: PathBuf,
        /// Output path (default: NAME.exprans.safetensors, or DIR.exprans for a directory).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Worker threads (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Replace an existing output.
        #[arg(long)]
        force: bool,
        /// Code only the exponent plane: faster to decode, slightly larger.
        #[arg(long)]
        fast: bool,
        /// Values per rANS block (even, at most 524288). Smaller blocks give GPUs more parallel
        /// lanes; each lane costs about 5 bytes (about 160 bytes per block of 32 lanes).
        #[arg(long, default_value_t = exprans::DEFAULT_BLOCK_SIZE)]
        block_size: u32,
        /// Align blocks on rows of 2-D weights: N rows per block (for fused decode+matvec).
        #[arg(long, value_name = "N")]
        rows_per_block: Option<u32>,
    },
    /// Decompress an exprans file or directory back to the original, byte for byte.
    Decompress {
        /// An .exprans.safetensors file or a compressed model directory.
        input: PathBuf,
        /// Output path (default: the original name).
        #[arg(short, long)]
        output: Option<PathBuf>,
        /// Where to decode.
        #[arg(long, value_enum, default_value_t = Device::Auto)]
        device: Device,
        /// Worker threads for the CPU decoder (default: all cores).
        #[arg(long)]
        threads: Option<usize>,
        /// Replace an existing output.
        #[arg(long)]
        force: bool,
    },
    /// Show per-tensor encoding, sizes, ratios and entropy bounds (per shard and in total for a
    /// compressed model directory).
    Info {
        /// An exprans file or a compressed model directory.
        input: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Decode everything, check every checksum, and compare with the original when given.
    Verify {
        /// An exprans file or compressed directory.
        compressed: PathBuf,
        /// The original file or directory to compare with, byte for byte.
        original: Option<PathBuf>,
        /// Where to decode.
        #[arg(long, value_enum, default_value_t = Device::Cpu)]
        device: Device,
    },
    /// List GPU adapters: backend, name, type, subgroup sizes, limits.
    Devices {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Decode the built-in conformance vectors (every dtype and edge case) on the GPU and compare
    /// with the CPU reference decoder, per adapter and kernel path.
    Selftest {
        /// Every adapter of every backend, not just the default one.
        #[arg(long)]
        all_adapters: bool,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Measure ratio and speed on a .safetensors file or on every shard of a model directory (in
    /// memory; nothing is written).
    Bench {
        /// A .safetensors file or a model directory.
        input: PathBuf,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Also benchmark the GPU decoder (`gpu`), or only the CPU (`cpu`).
        #[arg(long, value_enum, default_value_t = Device::Cpu)]
        device: Device,
        /// Repetitions per measurement (the best is kept).
        #[arg(long, default_value_t = 3)]
        repeat: usize,
        /// Values per rANS block, as for `compress`.
        #[arg(long, default_value_t = exprans::DEFAULT_BLOCK_SIZE)]
        block_size: u32,
    },
    /// Write every WGSL module exactly as the program compiles it, one file per pipeline variant
    /// (for outside validators such as `naga` or `tint`).
    Shaders {
        /// Folder to write into (created if missing).
        #[arg(long)]
        out: PathBuf,
    },
    /// Generate text with a Llama-family language model (plain or compressed model directory);
    /// tokens stream to stdout, the summary goes to stderr.
    Generate(cli::generate::GenerateArgs),
}

/// Where to decode.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Device {
    /// The CPU decoder.
    Cpu,
    /// The GPU decoder (fails if no GPU adapter is available).
    Gpu,
    /// A GPU only when the adapter is a real one (not a CPU adapter like lavapipe), else the CPU.
    Auto,
}

fn main() -> ExitCode {
    let args = Args::parse();
    // Keeps libwayland quiet when wgpu probes the GL backend.
    let _runtime_dir = exprans::gpu::private_runtime_dir();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("exprans: error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn thread_pool(threads: Option<usize>) -> Result<rayon::ThreadPool> {
    let mut builder = rayon::ThreadPoolBuilder::new();
    if let Some(n) = threads {
        if n == 0 {
            return Err(Error::invalid("--threads must be at least 1"));
        }
        builder = builder.num_threads(n);
    }
    builder
        .build()
        .map_err(|e| Error::invalid(format!("cannot start threads: {e}")))
}

/// A progress bar over `total` bytes, hidden when stderr is not a terminal or with `--quiet`.
fn progress_bar(total: u64, quiet: bool, what: &str) -> indicatif::ProgressBar {
    if quiet || !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{msg} [{bar:40}] {bytes}/{total_bytes} ({bytes_per_sec}, {eta})",
        )
        .expect("valid template")
        .progress_chars("=> "),
    );
    bar.set_message(what.to_string());
    bar
}

/// Total size of a file, or of every file under a directory.
fn input_size(path: &Path) -> u64 {
    if path.is_dir() {
        std::fs::read_dir(path)
            .map(|rd| rd.flatten().map(|e| input_size(&e.path())).sum())
            .unwrap_or(0)
    } else {
        path.metadata().map(|m| m.len()).unwrap_or(0)
    }
}

/// A library error about an option's value, with the option the user gave.
fn with_flag(e: Error, flag: &str) -> Error {
    match e {
        Error::Invalid(m) => Error::Invalid(format!("{flag}: {m}")),
        other => other,
    }
}

fn require_input(path: &Path) -> Result<()> {
    if path.symlink_metadata().is_err() {
        return Err(Error::invalid("no such file or directory").in_file(path));
    }
    Ok(())
}

/// One line on what was written: sizes in the direction of the work, and the ratio.
fn summary(quiet: bool, compressed: bool, output: &Path, r: SizeReport) {
    if quiet {
        return;
    }
    let (verb, from, to) = if compressed {
        ("compressed", r.original, r.compressed)
    } else {
        ("decompressed", r.compressed, r.original)
    };
    eprintln!(
        "{verb} {}: {from} -> {to} bytes (compressed size {:.2}% of the original)",
        output.display(),
        100.0 * r.compressed as f64 / r.original.max(1) as f64
    );
}

fn run(args: Args) -> Result<()> {
    let quiet = args.quiet;
    match args.command {
        Command::Compress {
            input,
            output,
            threads,
            force,
            fast,
            block_size,
            rows_per_block,
        } => {
            require_input(&input)?;
            let output = output.unwrap_or_else(|| files::default_compressed_path(&input));
            let opts = EncodeOptions {
                block_size,
                fast,
                rows_per_block,
            };
            opts.validate().map_err(|e| {
                let flag = match rows_per_block {
                    Some(0) => "--rows-per-block",
                    _ => "--block-size",
                };
                with_flag(e, flag)
            })?;
            let bar = progress_bar(input_size(&input), quiet, "compress");
            let progress = |n: u64| bar.inc(n);
            let report = thread_pool(threads)?.install(|| {
                if input.is_dir() {
                    files::compress_dir(&input, &output, &opts, force, &progress)
                } else {
                    files::compress_file(&input, &output, &opts, force, &progress)
                }
            })?;
            bar.finish_and_clear();
            summary(quiet, true, &output, report);
        }
        Command::Decompress {
            input,
            output,
            device,
            threads,
            force,
        } => {
            require_input(&input)?;
            let output = output.unwrap_or_else(|| files::default_decompressed_path(&input));
            let mut decoder = cli::gpu::decoder_for(device, quiet)?;
            let bar = progress_bar(input_size(&input), quiet, "decompress");
            let progress = |n: u64| bar.inc(n);
            let report = thread_pool(threads)?.install(|| {
                if input.is_dir() {
                    files::decompress_dir(&input, &output, decoder.as_mut(), force, &progress)
                } else {
                    files::decompress_file(&input, &output, decoder.as_mut(), force, &progress)
                }
            })?;
            bar.finish_and_clear();
            summary(quiet, false, &output, report);
        }
        Command::Info { input, json } => {
            require_input(&input)?;
            cli::info::run(&input, json)?;
        }
        Command::Verify {
            compressed,
            original,
            device,
        } => {
            require_input(&compressed)?;
            if let Some(o) = &original {
                require_input(o)?;
            }
            let mut decoder = cli::gpu::decoder_for(device, quiet)?;
            let bar = progress_bar(input_size(&compressed), quiet, "verify");
            let progress = |n: u64| bar.inc(n);
            let report = if compressed.is_dir() {
                files::verify_dir(
                    &compressed,
                    original.as_deref(),
                    decoder.as_mut(),
                    &progress,
                )
            } else {
                files::verify_file(
                    &compressed,
                    original.as_deref(),
                    decoder.as_mut(),
                    &progress,
                )
            }?;
            bar.finish_and_clear();
            if !quiet {
                let what = if original.is_some() {
                    "identical to the original"
                } else {
                    "all checksums good"
                };
                eprintln!(
                    "verified {}: {} bytes decode to {} bytes, {what}",
                    compressed.display(),
                    report.compressed,
                    report.original
                );
            }
        }
        Command::Devices { json } => cli::gpu::devices(json)?,
        Command::Selftest { all_adapters, json } => cli::gpu::selftest(all_adapters, json)?,
        Command::Bench {
            input,
            json,
            device,
            repeat,
            block_size,
        } => {
            require_input(&input)?;
            let opts = EncodeOptions {
                block_size,
                ..EncodeOptions::default()
            };
            opts.validate().map_err(|e| with_flag(e, "--block-size"))?;
            cli::bench::run(&input, json, device, repeat.max(1), opts)?;
        }
        Command::Shaders { out } => {
            cli::shaders::run(&out)?;
        }
        Command::Generate(generate) => {
            require_input(&generate.model)?;
            cli::generate::run(&generate, quiet)?;
        }
    }
    Ok(())
}

/// The CPU decoder used by the CLI: the fast one, blocks in parallel.
pub fn cpu_decoder() -> Box<dyn TensorDecoder + Send> {
    Box::new(CpuDecoder::Fast { parallel: true })
}
