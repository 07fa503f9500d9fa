//! Sentence embeddings with all-MiniLM-L6-v2 on the GPU, from compressed weights.
//!
//! ```text
//! cargo run --release --example embed -- --compare
//! cargo run --release --example embed -- --weights fused "A man is eating food." "A man eats."
//! cargo run --release --example embed -- --model model.exprans.safetensors --weights decoded
//! ```
//!
//! The model file may be plain safetensors (it is then compressed in memory with whole-row
//! blocks, `--rows-per-block`) or an exprans file made with `exprans compress --rows-per-block N`.
//! `--weights` picks how the GPU holds the weights: `plain` (uncompressed BF16), `decoded`
//! (decoded once on the GPU into plain buffers) or `fused` (kept compressed, decoded inside the
//! matrix kernels); `--compare` runs all three in one process and reports, for each, the GPU
//! memory its weights hold and the time per forward pass, checks that their embeddings are
//! bit-identical, and compares them with a plain CPU f32 implementation.

use std::path::PathBuf;
use std::time::Instant;

use clap::Parser;
use exprans::gpu::{DecoderOptions, GpuDecoder};
use exprans_infer::bert::{cosine, BertConfig, CpuBert, GpuBert, GpuContext, WeightMode};
use exprans_infer::checkpoint::{compress_row_aligned, Checkpoint};
use exprans_infer::tokenizer::Tokenizer;

const DEFAULT_SENTENCES: [&str; 4] = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
    "A woman is playing violin.",
];

#[derive(Parser)]
#[command(about = "all-MiniLM-L6-v2 sentence embeddings on the GPU from compressed weights")]
struct Args {
    /// Sentences to embed (default: four examples).
    sentences: Vec<String>,
    /// Model file, plain or compressed [default: <models>/all-MiniLM-L6-v2.bf16.safetensors,
    /// <models> being $EXPRANS_MODELS_DIR or ../shared/models].
    #[arg(long)]
    model: Option<PathBuf>,
    /// Folder with tokenizer.json and config.json [default: <models>/all-MiniLM-L6-v2].
    #[arg(long)]
    model_dir: Option<PathBuf>,
    /// How the GPU holds the weights: plain, decoded or fused.
    #[arg(long, default_value = "fused")]
    weights: String,
    /// Run all three weight modes and compare them.
    #[arg(long)]
    compare: bool,
    /// Rows per block when compressing a plain model in memory.
    #[arg(long, default_value_t = 32)]
    rows_per_block: u32,
    /// Compress in fast mode (sign/mantissa plane raw).
    #[arg(long)]
    fast: bool,
    /// Timed forward passes per sentence and mode.
    #[arg(long, default_value_t = 3)]
    runs: usize,
}

fn models_dir() -> PathBuf {
    std::env::var_os("EXPRANS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models"))
}

fn main() {
    // No libwayland "error:" line when wgpu probes the GL backend.
    let _runtime_dir = exprans::gpu::private_runtime_dir();
    if let Err(e) = run(Args::parse()) {
        eprintln!("embed: error: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    // 1. Model files: weights, tokenizer, configuration.
    let model = args
        .model
        .unwrap_or_else(|| models_dir().join("all-MiniLM-L6-v2.bf16.safetensors"));
    let model_dir = args
        .model_dir
        .unwrap_or_else(|| models_dir().join("all-MiniLM-L6-v2"));
    let read = |p: PathBuf| std::fs::read(&p).map_err(|e| format!("{}: {e}", p.display()));
    let file = read(model.clone())?;
    let tokenizer =
        Tokenizer::from_json(&String::from_utf8(read(model_dir.join("tokenizer.json"))?)?)?;
    let config = BertConfig::from_json(&String::from_utf8(read(model_dir.join("config.json"))?)?)?;
    let max_tokens = std::fs::read_to_string(model_dir.join("sentence_bert_config.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v["max_seq_length"].as_u64())
        .unwrap_or(256) as usize;
    // Never more than a forward pass takes (longer sentences are truncated, not refused).
    let max_tokens = max_tokens
        .min(config.max_positions)
        .min(exprans_infer::shaders::ATTENTION_MAX_TOKENS as usize);

    // 2. The plain and the compressed checkpoint (one of them made here when not given).
    let original = Checkpoint::parse(&file)?;
    let compressed_file = match original.is_compressed() {
        true => None,
        false => {
            let t = Instant::now();
            let c = compress_row_aligned(&file, args.rows_per_block, args.fast)?;
            println!(
                "compressed {} in memory (--rows-per-block {}{}): {} -> {} bytes ({:.2}%) in {:.1} s",
                model.display(),
                args.rows_per_block,
                if args.fast { ", fast" } else { "" },
                file.len(),
                c.len(),
                100.0 * c.len() as f64 / file.len() as f64,
                t.elapsed().as_secs_f64()
            );
            Some(c)
        }
    };
    let compressed = match &compressed_file {
        Some(c) => Checkpoint::parse(c)?,
        None => Checkpoint::parse(&file)?,
    };

    // 3. Tokens.
    let sentences: Vec<String> = match args.sentences.is_empty() {
        true => DEFAULT_SENTENCES.iter().map(|s| s.to_string()).collect(),
        false => args.sentences,
    };
    let tokenizer = tokenizer.with_truncation(max_tokens)?;
    let ids: Vec<Vec<u32>> = sentences
        .iter()
        .map(|s| tokenizer.encode(s, true))
        .collect::<Result<_, _>>()?;

    // 4. GPU runs, one per weight mode.
    let modes = match args.compare {
        true => WeightMode::ALL.to_vec(),
        false => vec![WeightMode::from_name(&args.weights)
            .ok_or_else(|| format!("--weights {}: use plain, decoded or fused", args.weights))?],
    };
    let decoder = pollster::block_on(GpuDecoder::new_default(DecoderOptions::default()))?;
    if let Some(a) = decoder.adapter() {
        println!("GPU: {} ({}, {})", a.name, a.backend, a.device_type);
    }
    let gpu = pollster::block_on(GpuContext::new(decoder))?;
    let mut models = Vec::new();
    for mode in modes {
        let checkpoint = match mode {
            WeightMode::Plain => &original,
            WeightMode::Decoded | WeightMode::Fused => &compressed,
        };
        let t = Instant::now();
        let mut bert = pollster::block_on(GpuBert::load(&gpu, &config, checkpoint, mode))?;
        let load = t.elapsed().as_secs_f64();
        // One untimed pass per model (pipeline warm-up).
        pollster::block_on(bert.embed(&ids[0]))?;
        models.push((bert, load, Vec::new()));
    }
    // Timed passes, the modes taking turns so that a busy machine slows them alike; every
    // repeated pass must give the same bits as the first.
    let mut results: Vec<Vec<Vec<f32>>> = vec![Vec::new(); models.len()];
    for run in 0..args.runs.max(1) {
        for ((bert, _, times), embeddings) in models.iter_mut().zip(&mut results) {
            for (i, sentence) in ids.iter().enumerate() {
                let t = Instant::now();
                let e = pollster::block_on(bert.embed(sentence))?;
                times.push(t.elapsed().as_secs_f64());
                match run {
                    0 => embeddings.push(e),
                    _ if e != embeddings[i] => {
                        let mode = bert.mode().name();
                        return Err(format!("{mode}: repeated forward passes differ").into());
                    }
                    _ => {}
                }
            }
        }
    }
    println!(
        "\n{} forward passes per mode ({} sentences of {} tokens, {} runs), activations {} bytes",
        ids.len() * args.runs.max(1),
        ids.len(),
        ids.iter()
            .map(|i| i.len().to_string())
            .collect::<Vec<_>>()
            .join("/"),
        args.runs.max(1),
        models[0].0.activation_bytes()
    );
    println!("| weights | GPU memory held by weights (bytes) | load (s) | ms per forward pass (median) |");
    println!("|---|---|---|---|");
    for (bert, load, times) in &mut models {
        times.sort_by(f64::total_cmp);
        let median = 1e3 * times[times.len() / 2];
        let (mode, bytes) = (bert.mode().name(), bert.weight_bytes());
        println!("| {mode} | {bytes} | {load:.2} | {median:.1} |");
    }
    let results: Vec<(WeightMode, Vec<Vec<f32>>)> = models
        .iter()
        .map(|(b, _, _)| b.mode())
        .zip(results)
        .collect();

    // 5. Embeddings, similarities, and the checks.
    let (first_mode, first) = &results[0];
    println!(
        "\nembeddings ({} weights), first 6 of {} values:",
        first_mode.name(),
        config.hidden
    );
    for (s, e) in sentences.iter().zip(first) {
        let head: Vec<String> = e.iter().take(6).map(|v| format!("{v:+.5}")).collect();
        println!("  [{}] {s}", head.join(", "));
    }
    println!("\ncosine similarities:");
    for i in 0..sentences.len() {
        for j in i + 1..sentences.len() {
            println!(
                "  {:.4}  {:?} / {:?}",
                cosine(&first[i], &first[j]),
                sentences[i],
                sentences[j]
            );
        }
    }
    for (mode, embeddings) in &results[1..] {
        let same = embeddings
            .iter()
            .flatten()
            .zip(first.iter().flatten())
            .all(|(a, b)| a.to_bits() == b.to_bits());
        println!(
            "\n{} embeddings bit-identical to {}: {}",
            mode.name(),
            first_mode.name(),
            if same { "yes" } else { "NO" }
        );
        if !same {
            return Err("embeddings differ between weight modes".into());
        }
    }
    let cpu = CpuBert::load(&config, &original)?;
    let worst = ids
        .iter()
        .zip(first)
        .map(|(ids, e)| Ok(cosine(&cpu.embed(ids)?, e)))
        .collect::<exprans::Result<Vec<f64>>>()?
        .into_iter()
        .fold(f64::INFINITY, f64::min);
    println!(
        "lowest cosine similarity with the CPU f32 reference: {worst:.9} (1 - {:.1e})",
        1.0 - worst
    );
    if worst < 0.999 {
        return Err("GPU embeddings differ from the CPU reference".into());
    }
    Ok(())
}
