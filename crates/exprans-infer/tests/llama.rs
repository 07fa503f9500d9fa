//! The Llama-family runtime: the GPU's three weight modes against each other (bit-identical) and
//! against the f32 CPU reference, on tiny random models of each architecture (always) and on the
//! real SmolLM2-135M-Instruct (when fetched; `SKIPPED:` otherwise).

use exprans::gpu::{DecoderOptions, GpuDecoder};
use exprans_infer::checkpoint::{compress_row_aligned, Shards};
use exprans_infer::context::GpuContext;
use exprans_infer::llama::cpu::CpuLlama;
use exprans_infer::llama::gpu::{GpuLlama, MAX_BATCH};
use exprans_infer::llama::{generate, CausalLm, GenerateOptions, LlamaConfig};
use exprans_infer::model_files::ModelFiles;
use exprans_infer::sample::Sampling;
use exprans_infer::WeightMode;
use exprans_testkit::{safetensors_bytes, TinyLm};
use pollster::block_on;

fn gpu() -> Option<GpuContext> {
    exprans_testkit::open_gpu_or_skip(|| async {
        GpuContext::new(GpuDecoder::new_default(DecoderOptions::default()).await?).await
    })
}

/// Largest |a - b| over the largest |a|.
fn relative_error(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    let scale = a.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
    a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs())) / scale
}

fn greedy(max_new_tokens: usize) -> GenerateOptions {
    GenerateOptions {
        max_new_tokens,
        sampling: Sampling::greedy(),
        stop_ids: Vec::new(),
        top_logits: 10,
    }
}

/// The same logits, bit for bit, from every weight mode; close to the CPU reference; prefill in
/// chunks of MAX_BATCH equal to feeding the tokens one at a time.
fn check_tiny(gpu: &GpuContext, tiny: TinyLm) {
    let config = LlamaConfig::from_json(&tiny.config().to_string(), None).unwrap();
    let file = safetensors_bytes(&tiny.tensors(), None);
    let compressed = compress_row_aligned(&file, 1, false).unwrap();
    let plain = Shards::parse(&[("model", &file)]).unwrap();
    let coded = Shards::parse(&[("model", &compressed)]).unwrap();
    let prompt: Vec<u32> = (0..MAX_BATCH as u32 + 37)
        .map(|i| 3 + (i * 7919) % 290)
        .collect();
    let what = tiny.architecture;

    let mut cpu = CpuLlama::load(&config, &plain, 512).unwrap();
    let reference = block_on(cpu.forward(&prompt, 0)).unwrap();
    let reference_next = block_on(cpu.forward(&[5], prompt.len())).unwrap();

    let mut logits = Vec::new();
    for mode in WeightMode::ALL {
        let source = if mode == WeightMode::Plain {
            &plain
        } else {
            &coded
        };
        let mut m = block_on(GpuLlama::load(gpu, &config, source, mode, 512)).unwrap();
        let first = block_on(m.forward(&prompt, 0)).unwrap();
        let next = block_on(m.forward(&[5], prompt.len())).unwrap();
        let err = relative_error(&reference, &first).max(relative_error(&reference_next, &next));
        assert!(
            err < 1e-4,
            "{what} {mode:?}: relative error {err} against the CPU"
        );
        // Overwriting the cache from position 1 on, one token at a time, gives the same bits
        // as the chunked prefill.
        let mut stepped = Vec::new();
        for (i, &id) in prompt.iter().enumerate().skip(1) {
            stepped = block_on(m.forward(&[id], i)).unwrap();
        }
        assert!(
            first == stepped,
            "{what} {mode:?}: chunked prefill differs from stepping"
        );
        assert!(m.weight_bytes() > 0 && m.activation_bytes() > 0);
        logits.push((mode, first, next));
    }
    for (mode, first, next) in &logits[1..] {
        assert!(
            *first == logits[0].1 && *next == logits[0].2,
            "{what}: {mode:?} differs from plain"
        );
    }
}

#[test]
fn tiny_models_of_every_architecture_agree_across_modes_and_with_the_cpu() {
    let Some(gpu) = gpu() else { return };
    for (architecture, tied, seed) in [
        ("LlamaForCausalLM", true, 1),
        ("Qwen2ForCausalLM", false, 2),
        ("MistralForCausalLM", false, 3),
    ] {
        check_tiny(
            &gpu,
            TinyLm {
                architecture,
                tied,
                seed,
                // The Mistral model is F16, the others BF16.
                f16: seed == 3,
                shape: exprans_testkit::LmShape::TINY,
            },
        );
    }
}

#[test]
fn fused_weights_need_whole_row_blocks_and_a_compressed_model() {
    let Some(gpu) = gpu() else { return };
    let tiny = TinyLm {
        architecture: "LlamaForCausalLM",
        tied: true,
        seed: 4,
        f16: false,
        shape: exprans_testkit::LmShape::TINY,
    };
    let config = LlamaConfig::from_json(&tiny.config().to_string(), None).unwrap();
    let file = safetensors_bytes(&tiny.tensors(), None);
    // Blocks of 4096 values do not hold whole rows of 96 columns (down_proj).
    let opts = exprans::EncodeOptions {
        block_size: 4096,
        ..Default::default()
    };
    let unaligned = exprans::compress(&file, &opts).unwrap();
    let shards = Shards::parse(&[("model", &unaligned)]).unwrap();
    let err = block_on(GpuLlama::load(
        &gpu,
        &config,
        &shards,
        WeightMode::Fused,
        64,
    ))
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("--rows-per-block") && message.contains("--weights decoded"),
        "{message}"
    );
    let tensors = config.checked_tensors(&shards).unwrap();
    assert_eq!(
        exprans_infer::best_mode(&tensors, &shards).unwrap(),
        WeightMode::Decoded
    );
    // Decoded weights run from the same file.
    block_on(GpuLlama::load(
        &gpu,
        &config,
        &shards,
        WeightMode::Decoded,
        64,
    ))
    .unwrap();
    // A plain model cannot be held decoded or fused.
    let plain = Shards::parse(&[("model", &file)]).unwrap();
    let err = block_on(GpuLlama::load(&gpu, &config, &plain, WeightMode::Fused, 64)).unwrap_err();
    assert!(err.to_string().contains("compressed"), "{err}");
}

#[test]
fn generation_stops_at_eos_and_respects_the_context() {
    let tiny = TinyLm {
        architecture: "LlamaForCausalLM",
        tied: true,
        seed: 5,
        f16: false,
        shape: exprans_testkit::LmShape::TINY,
    };
    let config = LlamaConfig::from_json(&tiny.config().to_string(), None).unwrap();
    let file = safetensors_bytes(&tiny.tensors(), None);
    let plain = Shards::parse(&[("model", &file)]).unwrap();
    let mut cpu = CpuLlama::load(&config, &plain, 16).unwrap();
    let free = block_on(generate(&mut cpu, &[3, 4, 5], &greedy(8), |_| {})).unwrap();
    assert_eq!(free.len(), 8);
    // Stopping at the third token's id ends before it.
    let mut options = greedy(8);
    options.stop_ids = vec![free[2].id];
    let first_stop = free.iter().position(|t| t.id == free[2].id).unwrap();
    let stopped = block_on(generate(&mut cpu, &[3, 4, 5], &options, |_| {})).unwrap();
    assert_eq!(stopped.len(), first_stop);
    assert!(stopped.iter().zip(&free).all(|(a, b)| a == b));
    // Top logits are sorted and the chosen token is the first.
    for t in &free {
        assert_eq!(t.top.len(), 10);
        assert_eq!(t.top[0].0, t.id);
        assert!(t.top.windows(2).all(|w| w[0].1 >= w[1].1));
    }
    let err = block_on(generate(&mut cpu, &[3; 10], &greedy(7), |_| {})).unwrap_err();
    assert!(
        err.to_string().contains("exceed the context of 16"),
        "{err}"
    );
    let err = block_on(generate(&mut cpu, &[], &greedy(1), |_| {})).unwrap_err();
    assert!(err.to_string().contains("no tokens"), "{err}");
    let err = block_on(generate(&mut cpu, &[3, 999], &greedy(1), |_| {})).unwrap_err();
    assert!(err.to_string().contains("outside the vocabulary"), "{err}");
}

/// Rows per block of the compressed SmolLM2: the directory (256 bytes a block) stays near 1%.
const ROWS_PER_BLOCK: u32 = 16;

/// SmolLM2-135M-Instruct, compressed with whole-row blocks.
fn smollm2() -> Option<(ModelFiles, Vec<u8>)> {
    let dir = exprans_testkit::smollm2()?;
    let files = ModelFiles::read_dir(&dir).unwrap();
    let compressed =
        compress_row_aligned(files.shards[0].1.bytes(), ROWS_PER_BLOCK, false).unwrap();
    Some((files, compressed))
}

#[test]
fn smollm2_answers_paris_on_the_cpu_reference() {
    let Some(dir) = exprans_testkit::smollm2() else {
        return;
    };
    let files = ModelFiles::read_dir(&dir).unwrap();
    let lm = files.language_model().unwrap();
    let shards = files.shards().unwrap();
    let template = lm.chat_template.as_ref().unwrap();
    let text = template
        .render(
            &[exprans_infer::chat::Message::new(
                "user",
                "What is the capital of France?",
            )],
            true,
        )
        .unwrap();
    let prompt = lm.tokenizer.encode(&text, false).unwrap();
    let mut cpu = CpuLlama::load(&lm.config, &shards, 256).unwrap();
    let mut options = greedy(16);
    options.stop_ids = lm.stop_ids.clone();
    let out = block_on(generate(&mut cpu, &prompt, &options, |_| {})).unwrap();
    let ids: Vec<u32> = out.iter().map(|t| t.id).collect();
    let answer = lm.tokenizer.decode(&ids, true).unwrap();
    assert!(answer.contains("Paris"), "{answer:?}");
}

#[test]
fn smollm2_greedy_tokens_are_identical_across_modes_and_match_the_cpu() {
    let Some((files, compressed)) = smollm2() else {
        return;
    };
    let Some(gpu) = gpu() else { return };
    let lm = files.language_model().unwrap();
    let plain = files.shards().unwrap();
    let coded = Shards::parse(&[("model", &compressed)]).unwrap();
    let prompt = lm
        .tokenizer
        .encode("The capital of France is", true)
        .unwrap();
    let options = greedy(6);
    let mut cpu = CpuLlama::load(&lm.config, &plain, 64).unwrap();
    let reference = block_on(generate(&mut cpu, &prompt, &options, |_| {})).unwrap();
    let mut runs = Vec::new();
    for mode in WeightMode::ALL {
        let source = if mode == WeightMode::Plain {
            &plain
        } else {
            &coded
        };
        let mut m = block_on(GpuLlama::load(&gpu, &lm.config, source, mode, 64)).unwrap();
        if mode == WeightMode::Fused {
            let ratio = m.weight_bytes() as f64 / runs_weight_bytes(&runs) as f64;
            assert!(
                ratio <= 0.70,
                "fused weights hold {ratio:.3} of plain's bytes"
            );
        }
        let out = block_on(generate(&mut m, &prompt, &options, |_| {})).unwrap();
        runs.push((mode, m.weight_bytes(), out));
    }
    let ids =
        |out: &[exprans_infer::llama::GeneratedToken]| out.iter().map(|t| t.id).collect::<Vec<_>>();
    for (mode, _, out) in &runs {
        assert_eq!(out, &runs[0].2, "{mode:?} differs from plain");
        assert_eq!(
            ids(out),
            ids(&reference),
            "{mode:?} differs from the CPU reference"
        );
        for (gpu_step, cpu_step) in out.iter().zip(&reference) {
            for ((gi, gl), (ci, cl)) in gpu_step.top.iter().zip(&cpu_step.top).take(3) {
                assert_eq!(gi, ci);
                assert!((gl - cl).abs() < 0.05 * cl.abs().max(1.0), "{gl} vs {cl}");
            }
        }
    }
}

/// Weight bytes of the plain run.
fn runs_weight_bytes(runs: &[(WeightMode, u64, Vec<exprans_infer::llama::GeneratedToken>)]) -> u64 {
    runs.iter()
        .find(|r| r.0 == WeightMode::Plain)
        .map(|r| r.1)
        .unwrap()
}
