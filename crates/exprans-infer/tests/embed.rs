//! all-MiniLM-L6-v2 end to end on the shared model: the GPU encoder gives bit-identical
//! sentence embeddings with its weights held plain, decoded once on the GPU, or fused (decoded
//! inside the matrix kernels), each with cosine similarity >= 0.999 to the CPU f32 reference.
//! (The tokenizer is checked against Hugging Face `tokenizers` in tests/tokenizer.rs.)
//!
//! Skipped, with a printed notice, when the shared models are absent (`../shared/models`, or
//! `EXPRANS_MODELS_DIR`). The GPU test fails when no Vulkan adapter exists (install one with
//! `apt-get install -y mesa-vulkan-drivers`), unless `EXPRANS_SKIP_GPU_TESTS=1`.

use exprans_testkit as common;

use common::open_gpu_or_skip;
use std::path::{Path, PathBuf};

use exprans::gpu::{DecoderOptions, GpuDecoder};
use exprans_infer::bert::{cosine, BertConfig, CpuBert, GpuBert, GpuContext, WeightMode};
use exprans_infer::checkpoint::{compress_row_aligned, Checkpoint};
use exprans_infer::tokenizer::Tokenizer;

const SENTENCES: [&str; 3] = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The girl is carrying a baby.",
];

/// The model folder (tokenizer, config) and the BF16 weights, or `None` (notice printed).
fn model() -> Option<(PathBuf, Vec<u8>)> {
    let dir = common::shared_models()?;
    let weights = std::fs::read(dir.join("all-MiniLM-L6-v2.bf16.safetensors")).unwrap();
    Some((dir.join("all-MiniLM-L6-v2"), weights))
}

/// The model's tokenizer, truncating to 256 ids (`[CLS]` and `[SEP]` included).
fn tokenizer(dir: &Path) -> Tokenizer {
    Tokenizer::from_json(&std::fs::read_to_string(dir.join("tokenizer.json")).unwrap())
        .unwrap()
        .with_truncation(256)
        .unwrap()
}

/// The GPU context of the tests: the Vulkan adapter (lavapipe in CI).
async fn gpu_context() -> exprans::Result<GpuContext> {
    let decoder =
        GpuDecoder::with_backends(wgpu::Backends::VULKAN, DecoderOptions::default()).await?;
    GpuContext::new(decoder).await
}

#[test]
fn gpu_modes_are_bit_identical_and_match_the_cpu_reference() {
    let Some((dir, plain_file)) = model() else {
        return;
    };
    let Some(gpu) = open_gpu_or_skip(gpu_context) else {
        return;
    };
    let config =
        BertConfig::from_json(&std::fs::read_to_string(dir.join("config.json")).unwrap()).unwrap();
    let t = tokenizer(&dir);
    let ids: Vec<Vec<u32>> = SENTENCES
        .iter()
        .map(|s| t.encode(s, true).unwrap())
        .collect();

    let plain = Checkpoint::parse(&plain_file).unwrap();
    let cpu = CpuBert::load(&config, &plain).unwrap();
    let reference: Vec<Vec<f32>> = ids.iter().map(|i| cpu.embed(i).unwrap()).collect();
    // The CPU reference itself: unit vectors, and the related pair closer than the unrelated.
    for r in &reference {
        assert!((cosine(r, r) - 1.0).abs() < 1e-6);
        assert!((r.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-4);
    }
    assert!(cosine(&reference[0], &reference[1]) > cosine(&reference[0], &reference[2]) + 0.3);

    // Default compression (both planes coded where it pays) and fast mode (sign/mantissa raw).
    let default = compress_row_aligned(&plain_file, 32, false).unwrap();
    let fast = compress_row_aligned(&plain_file, 16, true).unwrap();
    let (default, fast) = (
        Checkpoint::parse(&default).unwrap(),
        Checkpoint::parse(&fast).unwrap(),
    );
    let runs = [
        (WeightMode::Plain, &plain, "plain"),
        (WeightMode::Decoded, &default, "decoded"),
        (WeightMode::Fused, &default, "fused"),
        (WeightMode::Fused, &fast, "fused, fast mode"),
    ];
    let mut first: Option<Vec<Vec<f32>>> = None;
    let mut bytes = Vec::new();
    for (mode, checkpoint, what) in runs {
        let mut bert = pollster::block_on(GpuBert::load(&gpu, &config, checkpoint, mode)).unwrap();
        bytes.push(bert.weight_bytes());
        let got: Vec<Vec<f32>> = ids
            .iter()
            .map(|i| pollster::block_on(bert.embed(i)).unwrap())
            .collect();
        for (i, (g, r)) in got.iter().zip(&reference).enumerate() {
            let c = cosine(g, r);
            eprintln!(
                "{what}: sentence {i}: cosine with the CPU reference {c:.9} (1 - {:.1e})",
                1.0 - c
            );
            // The issue asks for 0.999; measured 1 - 6e-13 on lavapipe.
            assert!(c >= 0.9999, "{what}: sentence {i}: cosine {c}");
        }
        match &first {
            None => first = Some(got),
            Some(f) => {
                for (i, (g, f)) in got.iter().zip(f).enumerate() {
                    let same = g.iter().zip(f).all(|(a, b)| a.to_bits() == b.to_bits());
                    assert!(same, "{what}: sentence {i} differs from the plain run");
                }
            }
        }
    }
    // Fused weights hold less GPU memory than plain ones; decoded ones as much as plain.
    assert_eq!(bytes[0], bytes[1]);
    assert!(bytes[2] * 10 < bytes[0] * 7, "{bytes:?}");
    assert!(bytes[3] < bytes[0], "{bytes:?}");

    // Fused and decoded need a compressed checkpoint.
    let err =
        pollster::block_on(GpuBert::load(&gpu, &config, &plain, WeightMode::Fused)).unwrap_err();
    assert!(err.to_string().contains("compressed"), "{err}");
}

/// A tiny BERT: config.json text and a plain BF16 safetensors file of its tensors (shapes from
/// `shape`, which may be changed per tensor), small deterministic values.
fn tiny_bert(shape: impl Fn(&str, Vec<u64>) -> Vec<u64>) -> (BertConfig, Vec<u8>) {
    let config = BertConfig::from_json(
        r#"{"hidden_size": 4, "num_attention_heads": 2, "num_hidden_layers": 1,
            "intermediate_size": 8, "layer_norm_eps": 1e-12, "max_position_embeddings": 6,
            "hidden_act": "gelu"}"#,
    )
    .unwrap();
    let mut header = Vec::new();
    let mut data = Vec::new();
    for name in config.tensor_names() {
        let want: Vec<u64> = match name.as_str() {
            "embeddings.word_embeddings.weight" => vec![10, 4],
            "embeddings.position_embeddings.weight" => vec![6, 4],
            "embeddings.token_type_embeddings.weight" => vec![2, 4],
            n if n.contains("intermediate.dense.weight") => vec![8, 4],
            n if n.contains("intermediate.dense.bias") => vec![8],
            n if n.contains("layer.0.output.dense.weight") => vec![4, 8],
            n if n.ends_with(".weight") && !n.contains("LayerNorm") => vec![4, 4],
            _ => vec![4],
        };
        let shape = shape(&name, want);
        let n: u64 = shape.iter().product();
        let start = data.len();
        for i in 0..n {
            let v = half::bf16::from_f32(((i * 7 + name.len() as u64) % 11) as f32 / 11.0 - 0.4);
            data.extend_from_slice(&v.to_bits().to_le_bytes());
        }
        header.push(format!(
            "\"{name}\":{{\"dtype\":\"BF16\",\"shape\":{shape:?},\"data_offsets\":[{start},{}]}}",
            data.len()
        ));
    }
    let json = format!("{{{}}}", header.join(","));
    let mut file = (json.len() as u64).to_le_bytes().to_vec();
    file.extend_from_slice(json.as_bytes());
    file.extend_from_slice(&data);
    (config, file)
}

#[test]
fn bad_shapes_and_token_ids_are_errors_not_panics() {
    let (config, file) = tiny_bert(|_, s| s);
    let plain = Checkpoint::parse(&file).unwrap();
    let cpu = CpuBert::load(&config, &plain).unwrap();
    let e = cpu.embed(&[1, 2, 3]).unwrap();
    assert!((e.iter().map(|v| v * v).sum::<f32>() - 1.0).abs() < 1e-4);
    for ids in [&[][..], &[1; 7], &[1, 10]] {
        assert!(cpu.embed(ids).is_err(), "{ids:?}");
    }

    // A matrix stored flat, a bias stored as a matrix, a layer of the wrong width.
    let damages: [(&str, Vec<u64>); 3] = [
        ("encoder.layer.0.attention.self.query.weight", vec![16]),
        ("encoder.layer.0.attention.self.key.bias", vec![1, 4]),
        ("encoder.layer.0.intermediate.dense.weight", vec![4, 4]),
    ];
    let gpu = open_gpu_or_skip(gpu_context);
    if let Some(gpu) = &gpu {
        let mut bert =
            pollster::block_on(GpuBert::load(gpu, &config, &plain, WeightMode::Plain)).unwrap();
        let g = pollster::block_on(bert.embed(&[1, 2, 3])).unwrap();
        assert!(cosine(&g, &e) > 0.9999);
    }
    for (victim, bad) in damages {
        let (config, file) = tiny_bert(|n, s| if n == victim { bad.clone() } else { s });
        let plain = Checkpoint::parse(&file).unwrap();
        let err = CpuBert::load(&config, &plain).unwrap_err();
        assert!(err.to_string().contains(victim), "{err}");
        if let Some(gpu) = &gpu {
            let err = pollster::block_on(GpuBert::load(gpu, &config, &plain, WeightMode::Plain))
                .unwrap_err();
            assert!(err.to_string().contains(victim), "{err}");
        }
    }
}
