//! Test files and native reference numbers for the browser test (`web/test.sh`).
//!
//! ```text
//! cargo run --release --example web_fixtures -- OUT_DIR SAMPLE.safetensors PACKED...
//! cargo run --release --example web_fixtures -- --embeddings OUT_DIR MODEL.safetensors \
//!     MODEL_DIR ROWS.exprans.safetensors
//! cargo run --release --example web_fixtures -- --chat OUT_DIR EXPRANS_BIN MODEL_DIR
//! ```
//!
//! With `--embeddings`: the native reference of the browser's sentence-embedding test
//! (`EmbeddingModel`): `embeddings.json` in `OUT_DIR`, holding the test sentences, their token
//! ids, and their embeddings computed here by `exprans_infer` on the native GPU (wgpu; lavapipe
//! on a machine without a GPU) from `ROWS.exprans.safetensors` (made by `exprans compress
//! --rows-per-block 32`) with fused and with plain weights (as f32 bit patterns), with the GPU
//! memory of the weights and the milliseconds per forward pass (median of 3 after a warm-up
//! pass), and by the CPU f32 reference ([`exprans_infer::bert::CpuBert`]) from the plain
//! `MODEL.safetensors`.
//!
//! With `--chat OUT_DIR EXPRANS_BIN MODEL_DIR`: the native reference of the browser's chat test
//! (`ChatModel`, `chat.html`): `chat.json` in `OUT_DIR`, holding the test's chat prompt and
//! settings and what `EXPRANS_BIN generate MODEL_DIR --chat PROMPT --json` (the native runtime,
//! greedy) printed: prompt ids, generated ids, text, each step's highest logits, timings and GPU
//! memory. `MODEL_DIR` is the model directory compressed by `exprans compress DIR
//! --rows-per-block 1`. The weights are held as `$EXPRANS_WEB_CHAT_WEIGHTS` says (default
//! `decoded`: the fused kernels are much slower on software GPUs), and the browser test holds
//! them the same way. The run is skipped when `chat.json` already holds the reference for the
//! same CRC-32C of the binary and of every file of `MODEL_DIR`, and the same settings.
//!
//! `PACKED...` are compressed forms of `SAMPLE.safetensors` (made by the CLI, e.g. with different
//! block sizes), already in `OUT_DIR`.
//!
//! Writes to `OUT_DIR`:
//!
//! - `conformance.safetensors`: every built-in conformance vector (`exprans::conformance`: BF16,
//!   F16 and F32 with every coded-plane combination, odd counts, one-value last blocks,
//!   single-symbol planes, NaN/Inf/subnormals/-0, many block sizes), every other dtype (stored
//!   raw), empty, scalar and tiny tensors, incompressible floats, and tensors of many blocks that
//!   a small storage-binding limit splits into pieces;
//! - `conformance.exprans.safetensors`: its compressed form, each conformance vector coded with
//!   its own options (block size, fast mode), checked to decode back on the CPU;
//! - `expected.json`: for every compressed file, each tensor's CRC-32C computed here from the
//!   *original* file (not from the exprans index), and the native decode throughput of the same
//!   compressed files in this run: the GPU decoder through wgpu (subgroup and portable kernels)
//!   and the fast CPU decoder, measured like the browser measures (per coded tensor: stored
//!   checksum, parse, output buffer, decode, wait; second of two passes), plus the decode and
//!   u32-copy kernel rates of `exprans::gpu::bench` for context, and the decoder's WGSL modules
//!   (`exprans::gpu::wgsl_modules`).

use std::path::{Path, PathBuf};
use std::time::Instant;

use exprans::gpu::{DecoderOptions, GpuDecoder, OutputTarget};
use exprans::safetensors::Header;
use exprans::{
    conformance, Archive, ArchiveWriter, CodedEntry, CpuDecoder, EncodeOptions, Encoding, Error,
    Result,
};
use serde_json::{json, Value};

/// The storage-binding limit the browser test also decodes the conformance file with.
const SPLIT_BINDING: u64 = 256 * 1024;

fn main() {
    // No libwayland "error:" line when wgpu probes the GL backend.
    let _runtime_dir = exprans::gpu::private_runtime_dir();
    if let Err(e) = run() {
        eprintln!("web_fixtures: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--embeddings") {
        return embeddings(&args[1..]);
    }
    if args.first().map(String::as_str) == Some("--chat") {
        return chat(&args[1..]);
    }
    let [out, sample, packed_samples @ ..] = &args[..] else {
        return Err(Error::invalid(
            "usage: web_fixtures OUT_DIR SAMPLE.safetensors [ORIGINAL=]PACKED...",
        ));
    };
    let out = PathBuf::from(out);
    std::fs::create_dir_all(&out)?;

    let (original, options) = conformance_file();
    let packed = compress_per_tensor(&original, &options)?;
    if exprans::decompress(&packed, CpuDecoder::Reference)? != original {
        return Err(Error::invalid(
            "the conformance file does not decode back on the CPU",
        ));
    }
    let archive = Archive::from_bytes(&packed)?;
    for t in &archive.tensors {
        let coded = t.index.encoding == Encoding::Rans;
        let want_coded = !t.index.name.starts_with("raw/") && !t.index.name.starts_with("edge/");
        if coded != want_coded {
            return Err(Error::invalid(format!(
                "conformance tensor '{}' is {:?}, expected {}",
                t.index.name,
                t.index.encoding,
                if want_coded { "coded" } else { "raw" }
            )));
        }
    }
    write(&out.join("conformance.safetensors"), &original)?;
    write(&out.join("conformance.exprans.safetensors"), &packed)?;

    let sample_original = read(Path::new(sample))?;
    let mut files = Vec::new();
    // `PACKED` is a compressed form of SAMPLE, or `ORIGINAL=PACKED` for another original (the
    // frozen files of both format versions).
    for arg in packed_samples {
        let (original, path) = match arg.split_once('=') {
            Some((original, path)) => (read(Path::new(original))?, path),
            None => (sample_original.clone(), arg.as_str()),
        };
        let bytes = read(Path::new(path))?;
        files.push((file_name(path), original, bytes));
    }
    files.push((
        "conformance.exprans.safetensors".to_string(),
        original,
        packed,
    ));

    let mut entries = Vec::new();
    for (name, original, packed) in &files {
        let archive = Archive::from_bytes(packed)?;
        let expected = expected_crcs(original)?;
        // The index must agree with the original (a second, independent source of truth).
        for (t, (tname, crc, _, _)) in archive.tensors.iter().zip(&expected) {
            if &t.index.name != tname || t.index.decoded_crc32c != *crc {
                return Err(Error::invalid(format!(
                    "{name}: index and original disagree on '{tname}'"
                )));
            }
        }
        let coded: Vec<&str> = archive
            .tensors
            .iter()
            .filter(|t| t.index.encoding == Encoding::Rans)
            .map(|t| t.index.name.as_str())
            .collect();
        entries.push(json!({
            "file": name,
            "fileBytes": packed.len(),
            "originalBytes": original.len(),
            "codedTensors": coded.len(),
            "tensors": expected.iter().map(|(n, crc, dtype, bytes)| json!({
                "name": n, "crc32c": crc, "dtype": dtype, "bytes": bytes
            })).collect::<Vec<_>>(),
        }));
    }

    let native = native_numbers(&files);
    // The decoder's WGSL exactly as wgpu compiles it, so that the browser test can also compile
    // the subgroup kernel, which wgpu 30 never uses in a browser, directly in Chrome.
    let wgsl: Vec<Value> = exprans::gpu::wgsl_modules()
        .iter()
        .map(|m| {
            json!({"name": m.name, "source": m.source, "usesSubgroups": m.uses_subgroups,
                   "entryPoints": m.entry_points, "codedMasks": m.coded_masks})
        })
        .collect();
    let report = json!({ "splitBindingSize": SPLIT_BINDING, "files": entries, "native": native,
                         "wgslModules": wgsl });
    let text = serde_json::to_string_pretty(&report).expect("report serializes");
    write(&out.join("expected.json"), text.as_bytes())?;
    println!("web_fixtures: wrote {}", out.display());
    Ok(())
}

fn file_name(path: &str) -> String {
    Path::new(path)
        .file_name()
        .map_or_else(|| path.to_string(), |n| n.to_string_lossy().into_owned())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::from(e).in_file(path))
}

fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    std::fs::write(path, bytes).map_err(|e| Error::from(e).in_file(path))
}

/// A deterministic xorshift64 generator (bytes no coder can shrink).
struct Rng(u64);

impl Rng {
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                self.0 ^= self.0 << 13;
                self.0 ^= self.0 >> 7;
                self.0 ^= self.0 << 17;
                (self.0 >> 32) as u8
            })
            .collect()
    }
}

/// One tensor of the conformance file: name, dtype, shape, little-endian bytes, and the encode
/// options of coded tensors.
type Tensor = (String, String, Vec<u64>, Vec<u8>, EncodeOptions);

/// The original conformance safetensors file, and each tensor's encode options.
fn conformance_file() -> (Vec<u8>, Vec<(String, EncodeOptions)>) {
    let default = EncodeOptions::default();
    let mut tensors: Vec<Tensor> = Vec::new();
    // The largest-block cases (2^19 values per block) do not fit the small storage binding the
    // browser test splits this file with; `exprans selftest` covers them on native adapters.
    for v in conformance::vectors()
        .into_iter()
        .filter(|v| !v.name.contains("largest_block"))
    {
        let n = v.value_count();
        tensors.push((v.name, v.dtype.to_string(), vec![n], v.values, v.options));
    }
    let le = |words: &[i64], size: usize| -> Vec<u8> {
        words
            .iter()
            .flat_map(|w| w.to_le_bytes()[..size].to_vec())
            .collect()
    };
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let edge = [i64::MIN, -1, 0, 1, i64::MAX, 0x1234_5678_9abc_def0, -42];
    let mut raw = |name: &str, dtype: &str, shape: Vec<u64>, bytes: Vec<u8>| {
        tensors.push((name.to_string(), dtype.into(), shape, bytes, default));
    };
    raw("raw/i64", "I64", vec![7], le(&edge, 8));
    raw("raw/u64", "U64", vec![7], le(&edge, 8));
    raw("raw/i32", "I32", vec![7], le(&edge, 4));
    raw("raw/u32", "U32", vec![7], le(&edge, 4));
    raw("raw/i16", "I16", vec![7], le(&edge, 2));
    raw("raw/u16", "U16", vec![7], le(&edge, 2));
    raw("raw/i8", "I8", vec![7], le(&edge, 1));
    raw("raw/u8", "U8", vec![3, 5], rng.bytes(15));
    raw("raw/bool", "BOOL", vec![9], vec![1, 0, 0, 1, 1, 1, 0, 1, 0]);
    let f64s = [f64::NAN, f64::INFINITY, -0.0, 1e-310, std::f64::consts::PI];
    raw(
        "raw/f64",
        "F64",
        vec![5],
        f64s.iter().flat_map(|v| v.to_le_bytes()).collect(),
    );
    raw("raw/f8_e4m3", "F8_E4M3", vec![13], rng.bytes(13));
    raw("raw/f8_e5m2", "F8_E5M2", vec![11], rng.bytes(11));
    raw("raw/f8_e8m0", "F8_E8M0", vec![6], rng.bytes(6));
    raw("raw/unknown_dtype_f4", "F4", vec![10], rng.bytes(5));
    raw("edge/bf16_empty", "BF16", vec![0], Vec::new());
    raw("edge/f32_empty_2d", "F32", vec![4, 0], Vec::new());
    raw("edge/i64_empty", "I64", vec![0], Vec::new());
    raw(
        "edge/bf16_scalar",
        "BF16",
        vec![],
        half::bf16::from_f32(-1.5).to_le_bytes().to_vec(),
    );
    raw(
        "edge/f16_one",
        "F16",
        vec![1],
        half::f16::from_f32(0.25).to_le_bytes().to_vec(),
    );
    raw("edge/bf16_three", "BF16", vec![3], rng.bytes(6));
    raw(
        "edge/f32_random_bits",
        "F32",
        vec![64, 64],
        rng.bytes(4 * 4096),
    );
    raw(
        "edge/bf16_random_bits",
        "BF16",
        vec![4097],
        rng.bytes(2 * 4097),
    );
    raw(
        "edge/f16_random_bits",
        "F16",
        vec![1001],
        rng.bytes(2 * 1001),
    );

    // Many blocks: split into several pieces under a 256 KiB binding limit.
    let weights = |n: usize, scale: f32| -> Vec<f32> {
        (0..n)
            .map(|i| ((i as f32 * 0.618).sin() + (i as f32 * 0.0137).cos()) * scale)
            .collect()
    };
    let split = |block_size: u32| EncodeOptions {
        block_size,
        ..default
    };
    let bf16: Vec<u8> = weights(300_001, 0.05)
        .iter()
        .flat_map(|&v| half::bf16::from_f32(v).to_le_bytes())
        .collect();
    tensors.push((
        "split/bf16".into(),
        "BF16".into(),
        vec![300_001],
        bf16,
        split(4096),
    ));
    let f16: Vec<u8> = weights(200_000, 0.5)
        .iter()
        .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
        .collect();
    tensors.push((
        "split/f16".into(),
        "F16".into(),
        vec![400, 500],
        f16,
        split(2000),
    ));
    let f32s: Vec<u8> = weights(150_000, 0.02)
        .iter()
        .flat_map(|&v| (f32::from_bits(v.to_bits() & 0xffff_ff00)).to_le_bytes())
        .collect();
    tensors.push((
        "split/f32".into(),
        "F32".into(),
        vec![150_000],
        f32s,
        split(3000),
    ));

    // The original header: tensors in this order, a __metadata__, padded to 8 bytes.
    let mut header = serde_json::Map::new();
    header.insert(
        "__metadata__".into(),
        json!({"format": "pt", "source": "exprans web conformance"}),
    );
    let mut offset = 0u64;
    for (name, dtype, shape, bytes, _) in &tensors {
        let end = offset + bytes.len() as u64;
        header.insert(
            name.clone(),
            json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut text = serde_json::to_string(&header).expect("header serializes");
    while !text.len().is_multiple_of(8) {
        text.push(' ');
    }
    let mut file = (text.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(text.as_bytes());
    for (_, _, _, bytes, _) in &tensors {
        file.extend_from_slice(bytes);
    }
    let options = tensors.into_iter().map(|(n, _, _, _, o)| (n, o)).collect();
    (file, options)
}

/// Compresses `original` like `exprans::compress`, with each tensor's own encode options.
fn compress_per_tensor(original: &[u8], options: &[(String, EncodeOptions)]) -> Result<Vec<u8>> {
    let header = Header::read(original)?;
    let data_start = header.data_start() as usize;
    let out = std::io::Cursor::new(Vec::new());
    let mut writer = ArchiveWriter::new(out, original, original.len() as u64)?;
    for (name, entry) in &header.tensors {
        let opts = options
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, o)| *o)
            .ok_or_else(|| Error::invalid(format!("no options for '{name}'")))?;
        let (begin, end) = entry.data_offsets;
        writer.add_tensor(
            &original[data_start + begin as usize..data_start + end as usize],
            &opts,
        )?;
    }
    Ok(writer.finish()?.0.into_inner())
}

/// Each tensor of a plain safetensors file, in data order: name, CRC-32C, dtype, byte length.
fn expected_crcs(original: &[u8]) -> Result<Vec<(String, u32, String, u64)>> {
    let header = Header::read(original)?;
    let start = header.data_start() as usize;
    Ok(header
        .tensors
        .iter()
        .map(|(name, t)| {
            let (b, e) = t.data_offsets;
            let bytes = &original[start + b as usize..start + e as usize];
            (name.clone(), crc32c::crc32c(bytes), t.dtype.clone(), e - b)
        })
        .collect())
}

/// Native decode throughput of each compressed file: GPU (both kernels where the adapter has
/// subgroups) and the fast CPU decoder on one thread. A missing GPU is reported, not fatal: the
/// browser test is what this run checks.
fn native_numbers(files: &[(String, Vec<u8>, Vec<u8>)]) -> Value {
    let mut gpu = Vec::new();
    let mut kernels = Vec::new();
    let mut adapter = Value::Null;
    let mut gpu_error = Value::Null;
    match pollster::block_on(GpuDecoder::new_default(DecoderOptions::default())) {
        Ok(decoder) => {
            adapter = serde_json::to_value(decoder.adapter()).unwrap_or(Value::Null);
            let mut decoders = vec![decoder];
            if decoders[0].path() == exprans::gpu::KernelPath::Subgroup {
                let portable = DecoderOptions {
                    force_portable: true,
                    ..Default::default()
                };
                let d = &decoders[0];
                match pollster::block_on(GpuDecoder::from_device(d.device(), d.queue(), portable)) {
                    Ok(p) => decoders.push(p),
                    Err(e) => gpu_error = e.to_string().into(),
                }
            }
            for decoder in &decoders {
                let mut per_file = Vec::new();
                for (name, _, packed) in files {
                    match time_gpu(decoder, packed) {
                        Ok((bytes, secs)) => per_file.push(speed(name, bytes, secs)),
                        Err(e) => gpu_error = format!("{name}: {e}").into(),
                    }
                }
                gpu.push(json!({"kernelPath": decoder.path().to_string(), "files": per_file}));
            }
            // The portable kernel where there are both: the browser runs it.
            let portable = decoders.last().expect("at least one decoder");
            for (name, _, packed) in files {
                match kernel_bench(portable, packed) {
                    Ok(report) => kernels.push(json!({"file": name, "report": report})),
                    Err(e) => gpu_error = format!("{name}: {e}").into(),
                }
            }
            let conformance = &files.last().expect("the conformance file").2;
            if let Err(e) = check_split(&decoders[0], conformance) {
                gpu_error = e.to_string().into();
            }
        }
        Err(e) => gpu_error = e.to_string().into(),
    }
    let cpu: Vec<Value> = files
        .iter()
        .filter_map(|(name, _, packed)| {
            time_cpu(packed)
                .ok()
                .map(|(bytes, secs)| speed(name, bytes, secs))
        })
        .collect();
    json!({"adapter": adapter, "gpu": gpu, "kernels": kernels, "gpuError": gpu_error,
           "cpuFastOneThread": cpu})
}

fn speed(name: &str, bytes: u64, secs: f64) -> Value {
    json!({"file": name, "decodedBytes": bytes, "seconds": secs,
           "megabytesPerSecond": bytes as f64 / secs / 1e6})
}

/// Decodes every coded tensor of `packed` into a GPU buffer of its own, one submission each,
/// twice; returns the decoded bytes and seconds of the second pass.
fn time_gpu(decoder: &GpuDecoder, packed: &[u8]) -> Result<(u64, f64)> {
    let archive = Archive::from_bytes(packed)?;
    let mut result = (0, 0.0);
    for _pass in 0..2 {
        let (mut bytes, mut secs) = (0u64, 0.0f64);
        for t in &archive.tensors {
            if t.index.encoding != Encoding::Rans {
                continue;
            }
            let start = Instant::now();
            let stored = t.stored_in(packed)?;
            let buffer = decoder.device().create_buffer(&wgpu::BufferDescriptor {
                label: Some(&t.index.name),
                size: exprans::gpu::tensor_output_len(&t.index).max(4),
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            });
            let target = OutputTarget {
                buffer: &buffer,
                offset: 0,
            };
            pollster::block_on(decoder.decode_tensors_into(&[(&t.index, stored, target)]))?;
            secs += start.elapsed().as_secs_f64();
            bytes += t.index.bytes;
        }
        result = (bytes, secs);
    }
    Ok(result)
}

/// `exprans::gpu::bench` on every coded tensor of `packed` in one batch: decode and copy kernel
/// rates (GPU-resident input and output).
fn kernel_bench(decoder: &GpuDecoder, packed: &[u8]) -> Result<exprans::gpu::BenchReport> {
    let archive = Archive::from_bytes(packed)?;
    let entries = archive
        .tensors
        .iter()
        .map(|t| CodedEntry::of_tensor(&t.index, t.stored_in(packed)?))
        .filter_map(Result::transpose)
        .collect::<Result<Vec<_>>>()?;
    let refs: Vec<_> = entries.iter().collect();
    pollster::block_on(decoder.bench(&refs, 3))
}

/// The same with the fast CPU decoder on one thread (both checksums checked).
fn time_cpu(packed: &[u8]) -> Result<(u64, f64)> {
    let archive = Archive::from_bytes(packed)?;
    let mut result = (0, 0.0);
    for _pass in 0..2 {
        let (mut bytes, mut secs) = (0u64, 0.0f64);
        for t in &archive.tensors {
            if t.index.encoding != Encoding::Rans {
                continue;
            }
            let start = Instant::now();
            let stored = t.stored_in(packed)?;
            CpuDecoder::Fast { parallel: false }.decode_tensor(&t.index, stored)?;
            secs += start.elapsed().as_secs_f64();
            bytes += t.index.bytes;
        }
        result = (bytes, secs);
    }
    Ok(result)
}

/// The `split/` tensors of the conformance file decode in several pieces under the binding limit
/// the browser test uses, so that the test covers pieces.
fn check_split(decoder: &GpuDecoder, packed: &[u8]) -> Result<()> {
    let options = DecoderOptions {
        max_binding_size: Some(SPLIT_BINDING),
        ..Default::default()
    };
    let small = pollster::block_on(GpuDecoder::from_device(
        decoder.device(),
        decoder.queue(),
        options,
    ))?;
    let archive = Archive::from_bytes(packed)?;
    for t in archive
        .tensors
        .iter()
        .filter(|t| t.index.name.starts_with("split/"))
    {
        let entry = CodedEntry::of_tensor(&t.index, t.stored_in(packed)?)?
            .ok_or_else(|| Error::invalid(format!("'{}' is not coded", t.index.name)))?;
        let pieces = small.piece_count(&entry)?;
        if pieces < 2 {
            return Err(Error::invalid(format!(
                "'{}' decodes in {pieces} piece(s) under a {SPLIT_BINDING}-byte binding",
                t.index.name
            )));
        }
    }
    Ok(())
}

/// The sentences of the browser's embedding test: short, so that SwiftShader runs them quickly.
const EMBED_SENTENCES: [&str; 3] = [
    "A man is eating food.",
    "A man eats a piece of bread.",
    "The girl plays the violin.",
];

/// `--embeddings OUT_DIR MODEL.safetensors MODEL_DIR ROWS.exprans.safetensors`: `embeddings.json`.
fn embeddings(args: &[String]) -> Result<()> {
    use exprans_infer::bert::{BertConfig, CpuBert, GpuBert, GpuContext, WeightMode};
    use exprans_infer::checkpoint::Checkpoint;
    use exprans_infer::tokenizer::Tokenizer;
    let [out, model, model_dir, rows] = args else {
        return Err(Error::invalid(
            "usage: web_fixtures --embeddings OUT_DIR MODEL.safetensors MODEL_DIR ROWS.exprans.safetensors",
        ));
    };
    let text = |name: &str| -> Result<String> {
        let bytes = read(&Path::new(model_dir).join(name))?;
        String::from_utf8(bytes).map_err(|_| Error::invalid(format!("{name} is not UTF-8")))
    };
    let config = BertConfig::from_json(&text("config.json")?)?;
    // As EmbeddingModel (its default maxTokens, 256).
    let max_tokens = 256.min(config.max_positions);
    let tokenizer = Tokenizer::from_json(&text("tokenizer.json")?)?.with_truncation(max_tokens)?;
    let ids: Vec<Vec<u32>> = EMBED_SENTENCES
        .iter()
        .map(|s| tokenizer.encode(s, true))
        .collect::<Result<_>>()?;
    let (plain_file, rows_file) = (read(Path::new(model))?, read(Path::new(rows))?);
    let (plain, compressed) = (
        Checkpoint::parse(&plain_file)?,
        Checkpoint::parse(&rows_file)?,
    );
    if !compressed.is_compressed() {
        return Err(Error::invalid(format!("{rows} is not an exprans file")));
    }

    let cpu = CpuBert::load(&config, &plain)?;
    let start = Instant::now();
    let cpu_embeddings = ids
        .iter()
        .map(|i| cpu.embed(i))
        .collect::<Result<Vec<_>>>()?;
    let cpu_ms = 1e3 * start.elapsed().as_secs_f64() / ids.len() as f64;

    let decoder = pollster::block_on(GpuDecoder::new_default(DecoderOptions::default()))?;
    let adapter = serde_json::to_value(decoder.adapter()).unwrap_or(Value::Null);
    let gpu = pollster::block_on(GpuContext::new(decoder))?;
    let mut modes = Vec::new();
    for mode in [WeightMode::Fused, WeightMode::Plain] {
        // Plain weights from the compressed file too (decoded on the CPU), as the browser does.
        let mut bert = pollster::block_on(GpuBert::load(&gpu, &config, &compressed, mode))?;
        pollster::block_on(bert.embed(&ids[0]))?;
        let mut times = Vec::new();
        let mut embeddings = Vec::new();
        for _ in 0..3 {
            embeddings.clear();
            for i in &ids {
                let t = Instant::now();
                embeddings.push(pollster::block_on(bert.embed(i))?);
                times.push(1e3 * t.elapsed().as_secs_f64());
            }
        }
        times.sort_by(f64::total_cmp);
        let worst = embeddings
            .iter()
            .zip(&cpu_embeddings)
            .map(|(g, c)| exprans_infer::bert::cosine(g, c))
            .fold(f64::INFINITY, f64::min);
        println!(
            "native {} ({}): {} bytes of weights, {:.1} ms per forward pass, cosine with CPU f32 >= {worst:.9}",
            mode.name(),
            adapter["name"].as_str().unwrap_or("?"),
            bert.weight_bytes(),
            times[times.len() / 2]
        );
        modes.push(json!({
            "weights": mode.name(),
            "weightBytes": bert.weight_bytes(),
            "msPerPass": times[times.len() / 2],
            "minCosineWithCpu": worst,
            "bits": embeddings.iter().map(|e| e.iter().map(|v| v.to_bits()).collect::<Vec<u32>>())
                .collect::<Vec<_>>(),
        }));
    }
    let result = json!({
        "model": file_name(rows),
        "modelBytes": rows_file.len(),
        "sentences": EMBED_SENTENCES,
        "ids": ids,
        "hidden": config.hidden,
        "adapter": adapter,
        "gpu": modes,
        "cpu": {"msPerPass": cpu_ms, "embeddings": cpu_embeddings},
    });
    let out = PathBuf::from(out);
    write(
        &out.join("embeddings.json"),
        serde_json::to_string_pretty(&result)
            .expect("JSON serializes")
            .as_bytes(),
    )
}

/// The chat prompt of the browser's chat test: a user message with a short, certain answer
/// ("The capital of France is Paris.": 7 tokens, then the stop token).
const CHAT_PROMPT: &str = "What is the capital of France?";
/// Most new tokens in the chat test (the answer ends before, at the stop token).
const CHAT_MAX_NEW_TOKENS: usize = 8;
/// Positions of the KV cache in the chat test (native and browser alike).
const CHAT_CONTEXT: usize = 256;

/// `--chat OUT_DIR EXPRANS_BIN MODEL_DIR`: `chat.json`.
fn chat(args: &[String]) -> Result<()> {
    let [out, bin, model_dir] = args else {
        return Err(Error::invalid(
            "usage: web_fixtures --chat OUT_DIR EXPRANS_BIN MODEL_DIR",
        ));
    };
    let weights = std::env::var("EXPRANS_WEB_CHAT_WEIGHTS").unwrap_or_else(|_| "decoded".into());
    if !["auto", "plain", "decoded", "fused"].contains(&weights.as_str()) {
        return Err(Error::invalid(format!(
            "EXPRANS_WEB_CHAT_WEIGHTS={weights}: use auto, plain, decoded or fused"
        )));
    }
    // What the reference depends on: the program, the model's files and the settings.
    let mut files: Vec<PathBuf> = std::fs::read_dir(model_dir)
        .map_err(|e| Error::from(e).in_file(model_dir))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    let mut key =
        vec![json!({"file": "exprans", "crc32c": crc32c::crc32c(&read(Path::new(bin))?)})];
    for f in &files {
        key.push(
            json!({"file": file_name(&f.to_string_lossy()), "crc32c": crc32c::crc32c(&read(f)?)}),
        );
    }
    let key = json!({"files": key, "prompt": CHAT_PROMPT, "maxNewTokens": CHAT_MAX_NEW_TOKENS,
                     "context": CHAT_CONTEXT, "weights": weights});
    let path = PathBuf::from(out).join("chat.json");
    if let Ok(old) = std::fs::read(&path) {
        if serde_json::from_slice::<Value>(&old).is_ok_and(|v| v["key"] == key) {
            println!(
                "web_fixtures: {} is up to date (same program, model and settings)",
                path.display()
            );
            return Ok(());
        }
    }
    let command = [
        "generate".to_string(),
        model_dir.clone(),
        "--chat".into(),
        CHAT_PROMPT.into(),
        "--max-new-tokens".into(),
        CHAT_MAX_NEW_TOKENS.to_string(),
        "--context".into(),
        CHAT_CONTEXT.to_string(),
        "--weights".into(),
        weights.clone(),
        "--json".into(),
    ];
    println!(
        "web_fixtures: {bin} {} (greedy, native GPU; minutes on a software GPU)",
        command.join(" ")
    );
    let start = Instant::now();
    let run = std::process::Command::new(bin)
        .args(&command)
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| Error::invalid(format!("cannot run {bin}: {e}")))?;
    let seconds = start.elapsed().as_secs_f64();
    if !run.status.success() {
        return Err(Error::invalid(format!(
            "{bin} generate failed ({})",
            run.status
        )));
    }
    let native: Value = serde_json::from_slice(&run.stdout)
        .map_err(|e| Error::invalid(format!("{bin} generate --json printed no JSON: {e}")))?;
    for field in ["prompt_ids", "generated_ids", "text", "steps", "timings"] {
        if native.get(field).is_none() {
            return Err(Error::invalid(format!(
                "{bin} generate --json has no \"{field}\""
            )));
        }
    }
    let result = json!({
        "model": file_name(model_dir),
        "prompt": CHAT_PROMPT,
        "maxNewTokens": CHAT_MAX_NEW_TOKENS,
        "context": CHAT_CONTEXT,
        "weights": weights,
        "command": command,
        "nativeSeconds": seconds,
        "native": native,
        "key": key,
    });
    write(
        &path,
        serde_json::to_string_pretty(&result)
            .expect("JSON serializes")
            .as_bytes(),
    )?;
    println!("web_fixtures: wrote {} ({seconds:.0} s)", path.display());
    Ok(())
}
