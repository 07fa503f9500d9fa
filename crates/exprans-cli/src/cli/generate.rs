//! `exprans generate`: text generation with a Llama-family model, on the GPU (weights plain,
//! decoded once or fused) or on the CPU (the f32 reference).

use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use exprans::gpu::{DecoderOptions, GpuDecoder};
use exprans::{Error, Result};
use exprans_infer::chat::Message;
use exprans_infer::context::GpuContext;
use exprans_infer::llama::cpu::CpuLlama;
use exprans_infer::llama::gpu::GpuLlama;
use exprans_infer::llama::{generate, CausalLm, GenerateOptions, GeneratedToken, DEFAULT_CONTEXT};
use exprans_infer::model_files::ModelFiles;
use exprans_infer::sample::Sampling;
use exprans_infer::{best_mode, WeightMode};

/// How the weights are held (`auto`: fused for a compressed model in whole-row blocks, decoded
/// for another compressed one, plain for a plain one).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Weights {
    /// Choose from the model's files.
    Auto,
    /// Uncompressed on the GPU.
    Plain,
    /// Decoded once on the GPU from the compressed files.
    Decoded,
    /// Kept compressed; decoded inside every matrix kernel.
    Fused,
}

/// Where the model runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RunOn {
    /// wgpu's default adapter.
    Gpu,
    /// The f32 CPU reference (slow; for checking).
    Cpu,
}

/// Options of `exprans generate`.
#[derive(Args, Debug)]
pub struct GenerateArgs {
    /// A model directory (config.json, tokenizer.json, safetensors shards), plain or made by
    /// `exprans compress DIR`.
    pub model: PathBuf,
    /// Text to continue.
    #[arg(long, conflicts_with = "chat")]
    pub prompt: Option<String>,
    /// A user message, rendered with the model's chat template and answered as the assistant.
    #[arg(long)]
    pub chat: Option<String>,
    /// Most tokens to generate.
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// How the weights are held on the GPU.
    #[arg(long, value_enum, default_value_t = Weights::Auto)]
    pub weights: Weights,
    /// 0 (the default) is greedy; otherwise logits are divided by it and sampled.
    #[arg(long, default_value_t = 0.0)]
    pub temperature: f32,
    /// Sample only from the smallest set of tokens whose probability reaches P.
    #[arg(long, default_value_t = 1.0)]
    pub top_p: f32,
    /// Sample only from the K most likely tokens (0: all).
    #[arg(long, default_value_t = 0)]
    pub top_k: usize,
    /// Seed of the sampler.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Where to run.
    #[arg(long, value_enum, default_value_t = RunOn::Gpu)]
    pub device: RunOn,
    /// Positions of the KV cache (prompt and generated tokens; at most the model's).
    #[arg(long, default_value_t = DEFAULT_CONTEXT)]
    pub context: usize,
    /// Print one JSON object (ids, text, per-step top logits, timings) instead of streaming.
    #[arg(long)]
    pub json: bool,
}

/// Logits reported per step with `--json`.
const TOP_LOGITS: usize = 10;

/// What a run measured.
struct Timings {
    load: Duration,
    prefill: Duration,
    decode: Duration,
    prompt_tokens: usize,
    generated: usize,
    weight_bytes: Option<u64>,
    activation_bytes: Option<u64>,
}

impl Timings {
    fn json(&self) -> serde_json::Value {
        let rate = |n: usize, d: Duration| {
            if n == 0 || d.is_zero() {
                serde_json::Value::Null
            } else {
                (n as f64 / d.as_secs_f64()).into()
            }
        };
        serde_json::json!({
            "load_s": self.load.as_secs_f64(),
            "prefill_s": self.prefill.as_secs_f64(),
            "prefill_tokens_per_s": rate(self.prompt_tokens, self.prefill),
            "decode_s": self.decode.as_secs_f64(),
            // The first token comes from the prefill step; later ones from one-token steps.
            "decode_tokens_per_s": rate(self.generated.saturating_sub(1), self.decode),
            "weight_bytes": self.weight_bytes,
            "activation_bytes": self.activation_bytes,
        })
    }
}

/// A model with its clocks: the first forward call is the prefill.
struct Timed<M> {
    model: M,
    calls: usize,
    prefill: Duration,
    decode: Duration,
}

impl<M: CausalLm> CausalLm for Timed<M> {
    fn context(&self) -> usize {
        self.model.context()
    }

    fn vocab(&self) -> usize {
        self.model.vocab()
    }

    async fn forward(&mut self, ids: &[u32], pos0: usize) -> Result<Vec<f32>> {
        let start = Instant::now();
        let logits = self.model.forward(ids, pos0).await?;
        if self.calls == 0 {
            self.prefill += start.elapsed();
        } else {
            self.decode += start.elapsed();
        }
        self.calls += 1;
        Ok(logits)
    }
}

/// `exprans generate`.
pub fn run(args: &GenerateArgs, quiet: bool) -> Result<()> {
    let start = Instant::now();
    let in_model = |e: Error| e.in_file(&args.model);
    let files = ModelFiles::read_dir(&args.model)?;
    let lm = files.language_model().map_err(in_model)?;
    let shards = files.shards().map_err(in_model)?;
    let prompt_text = match (&args.prompt, &args.chat) {
        (Some(p), None) => p.clone(),
        (None, Some(c)) => {
            let template = lm.chat_template.as_ref().ok_or_else(|| {
                Error::invalid("--chat: tokenizer_config.json has no chat_template; use --prompt")
                    .in_file(&args.model)
            })?;
            template
                .render(&[Message::new("user", c.as_str())], true)
                .map_err(in_model)?
        }
        _ => return Err(Error::invalid("give --prompt TEXT or --chat TEXT")),
    };
    // A chat prompt carries its special tokens in the text.
    let prompt = lm
        .tokenizer
        .encode(&prompt_text, args.chat.is_none())
        .map_err(in_model)?;
    let options = GenerateOptions {
        max_new_tokens: args.max_new_tokens,
        sampling: Sampling {
            temperature: args.temperature,
            top_k: args.top_k,
            top_p: args.top_p,
            seed: args.seed,
        },
        stop_ids: lm.stop_ids.clone(),
        top_logits: if args.json { TOP_LOGITS } else { 0 },
    };
    exprans_infer::sample::Sampler::new(options.sampling.clone())?;
    let context = args.context.min(lm.config.max_positions);
    if prompt.len() + args.max_new_tokens > context {
        return Err(Error::invalid(format!(
            "the prompt's {} tokens and --max-new-tokens {} exceed the context of {context} \
             tokens (--context, at most the model's {})",
            prompt.len(),
            args.max_new_tokens,
            lm.config.max_positions
        )));
    }

    let mut text_out = lm.tokenizer.detokenizer(true);
    let mut stream_error = None;
    let stdout = std::io::stdout();
    let mut on_token = |t: &GeneratedToken| {
        if args.json || stream_error.is_some() {
            return;
        }
        let piece = match text_out.push(t.id) {
            Ok(p) => p,
            Err(e) => {
                stream_error = Some(e);
                return;
            }
        };
        let mut out = stdout.lock();
        let _ = out.write_all(piece.as_bytes()).and_then(|()| out.flush());
    };
    let (tokens, timings, device_line) = match args.device {
        RunOn::Cpu => {
            if args.weights != Weights::Auto && args.weights != Weights::Plain {
                return Err(Error::invalid(
                    "--device cpu runs the f32 reference; --weights applies to the GPU",
                ));
            }
            let model = CpuLlama::load(&lm.config, &shards, context).map_err(in_model)?;
            let load = start.elapsed();
            let mut timed = Timed {
                model,
                calls: 0,
                prefill: Duration::ZERO,
                decode: Duration::ZERO,
            };
            let tokens =
                pollster::block_on(generate(&mut timed, &prompt, &options, &mut on_token))?;
            let timings = Timings {
                load,
                prefill: timed.prefill,
                decode: timed.decode,
                prompt_tokens: prompt.len(),
                generated: tokens.len(),
                weight_bytes: None,
                activation_bytes: None,
            };
            (tokens, timings, "CPU (f32 reference)".to_string())
        }
        RunOn::Gpu => {
            let tensors = lm.config.checked_tensors(&shards).map_err(in_model)?;
            let mode = match args.weights {
                Weights::Auto => best_mode(&tensors, &shards).map_err(in_model)?,
                Weights::Plain => WeightMode::Plain,
                Weights::Decoded => WeightMode::Decoded,
                Weights::Fused => WeightMode::Fused,
            };
            let decoder = pollster::block_on(GpuDecoder::new_default(DecoderOptions::default()))?;
            let adapter = decoder
                .adapter()
                .map_or("?".to_string(), |a| format!("{} ({})", a.name, a.backend));
            let gpu = pollster::block_on(GpuContext::new(decoder))?;
            let model =
                pollster::block_on(GpuLlama::load(&gpu, &lm.config, &shards, mode, context))
                    .map_err(in_model)?;
            let (weight_bytes, activation_bytes) = (model.weight_bytes(), model.activation_bytes());
            let load = start.elapsed();
            let mut timed = Timed {
                model,
                calls: 0,
                prefill: Duration::ZERO,
                decode: Duration::ZERO,
            };
            let tokens =
                pollster::block_on(generate(&mut timed, &prompt, &options, &mut on_token))?;
            let timings = Timings {
                load,
                prefill: timed.prefill,
                decode: timed.decode,
                prompt_tokens: prompt.len(),
                generated: tokens.len(),
                weight_bytes: Some(weight_bytes),
                activation_bytes: Some(activation_bytes),
            };
            (
                tokens,
                timings,
                format!("{adapter}, weights {}", mode.name()),
            )
        }
    };
    if let Some(e) = stream_error {
        return Err(e);
    }
    let ids: Vec<u32> = tokens.iter().map(|t| t.id).collect();
    let text = lm.tokenizer.decode(&ids, true)?;
    if args.json {
        let steps: Vec<_> = tokens
            .iter()
            .map(|t| serde_json::json!({ "top": t.top.iter().map(|(i, l)| serde_json::json!([i, l])).collect::<Vec<_>>() }))
            .collect();
        let out = serde_json::json!({
            "prompt_ids": prompt,
            "generated_ids": ids,
            "text": text,
            "steps": steps,
            "device": device_line,
            "timings": timings.json(),
        });
        println!("{out}");
    } else {
        let rest = text_out.finish()?;
        let mut out = stdout.lock();
        let _ = out
            .write_all(rest.as_bytes())
            .and_then(|()| out.write_all(b"\n"));
    }
    if !quiet {
        let t = timings.json();
        let rate = |k: &str| t[k].as_f64().map_or("-".to_string(), |r| format!("{r:.2}"));
        let memory = match (timings.weight_bytes, timings.activation_bytes) {
            (Some(w), Some(a)) => format!(
                ", GPU memory: weights {:.1} MB, activations and KV cache {:.1} MB",
                w as f64 / 1e6,
                a as f64 / 1e6
            ),
            _ => String::new(),
        };
        eprintln!(
            "{device_line}: load {:.2} s, prefill {} tokens at {} tokens/s, {} generated at {} tokens/s{memory}",
            timings.load.as_secs_f64(),
            timings.prompt_tokens,
            rate("prefill_tokens_per_s"),
            timings.generated,
            rate("decode_tokens_per_s"),
        );
    }
    Ok(())
}
