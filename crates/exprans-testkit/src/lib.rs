//! Test support shared by the exprans crates' tests: a deterministic RNG, a safetensors writer,
//! the edge-case tensors every codec path is tested on, the bundled sample and the shared real
//! models, running the CLI, and the GPU-or-skip preamble. Not published.

pub mod wgsl;

use std::path::{Path, PathBuf};
use std::process::Command;

/// A deterministic xorshift generator (tests must be reproducible).
pub struct Rng(pub u64);

impl Rng {
    /// A generator for any seed (xorshift's state must not be 0: the seed is mixed first).
    pub fn seeded(seed: u64) -> Rng {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Rng((z ^ (z >> 31)) | 1)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// Roughly normal (sum of uniforms), scaled.
    pub fn normal(&mut self, scale: f32) -> f32 {
        let s: f32 = (0..4)
            .map(|_| (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32)
            .sum();
        (s - 2.0) * scale
    }
    /// Uniform in [-1, 1).
    pub fn uniform(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 23) as f32 - 1.0
    }
    /// Weight-like values: roughly normal, scale 0.05, with some exact zeros and tiny values.
    pub fn weight(&mut self) -> f32 {
        match self.next_u64() % 64 {
            0 => 0.0,
            1 => 1e-6 * self.uniform(),
            _ => 0.05 * (0..4).map(|_| self.uniform()).sum::<f32>(),
        }
    }
}

/// One tensor of a generated file.
pub struct T {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<u64>,
    pub data: Vec<u8>,
}

pub fn t(name: &str, dtype: &str, shape: &[u64], data: Vec<u8>) -> T {
    T {
        name: name.into(),
        dtype: dtype.into(),
        shape: shape.to_vec(),
        data,
    }
}

pub fn bf16s(values: impl IntoIterator<Item = f32>) -> Vec<u8> {
    values
        .into_iter()
        .flat_map(|v| half::bf16::from_f32(v).to_le_bytes())
        .collect()
}

pub fn f16s(values: impl IntoIterator<Item = f32>) -> Vec<u8> {
    values
        .into_iter()
        .flat_map(|v| half::f16::from_f32(v).to_le_bytes())
        .collect()
}

pub fn f32s(values: impl IntoIterator<Item = f32>) -> Vec<u8> {
    values.into_iter().flat_map(|v| v.to_le_bytes()).collect()
}

/// Serializes tensors (in the given order) as a safetensors file, like the reference writer:
/// compact JSON, `__metadata__` first, header padded with spaces to a multiple of 8.
pub fn safetensors_bytes(tensors: &[T], metadata: Option<&str>) -> Vec<u8> {
    let mut parts = Vec::new();
    if let Some(m) = metadata {
        parts.push(format!("\"__metadata__\":{m}"));
    }
    let mut offset = 0usize;
    for t in tensors {
        parts.push(format!(
            "{}:{{\"dtype\":\"{}\",\"shape\":{:?},\"data_offsets\":[{},{}]}}",
            serde_json::to_string(&t.name).unwrap(),
            t.dtype,
            t.shape,
            offset,
            offset + t.data.len()
        ));
        offset += t.data.len();
    }
    let mut header = format!("{{{}}}", parts.join(","));
    while header.len() % 8 != 0 {
        header.push(' ');
    }
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    for t in tensors {
        out.extend_from_slice(&t.data);
    }
    out
}

/// A file with a header given as text and raw data bytes.
pub fn raw_file(header: &str, data: &[u8]) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend_from_slice(data);
    out
}

/// Every dtype and edge case of the codec, in one file.
pub fn edge_case_tensors() -> Vec<T> {
    let mut rng = Rng(0x9e3779b97f4a7c15);
    let mut v = Vec::new();
    let normal: Vec<f32> = (0..70_001).map(|_| rng.normal(0.05)).collect();
    for (dtype, enc) in [
        ("BF16", bf16s as fn(Vec<f32>) -> Vec<u8>),
        ("F16", |x: Vec<f32>| f16s(x)),
        ("F32", |x: Vec<f32>| f32s(x)),
    ] {
        let d = dtype.to_lowercase();
        v.push(t(
            &format!("{d}.weights"),
            dtype,
            &[70_001],
            enc(normal.clone()),
        ));
        v.push(t(&format!("{d}.empty"), dtype, &[0, 16], Vec::new()));
        v.push(t(&format!("{d}.one"), dtype, &[1], enc(vec![1.5])));
        v.push(t(
            &format!("{d}.odd"),
            dtype,
            &[3, 333],
            enc(normal[..999].to_vec()),
        ));
        v.push(t(
            &format!("{d}.equal"),
            dtype,
            &[50_000],
            enc(vec![0.25; 50_000]),
        ));
        v.push(t(
            &format!("{d}.one_exponent"),
            dtype,
            &[40_000],
            enc((0..40_000).map(|i| 1.0 + (i % 97) as f32 / 97.0).collect()),
        ));
        v.push(t(
            &format!("{d}.specials"),
            dtype,
            &[30_000],
            enc((0..30_000)
                .map(|i| match i % 7 {
                    0 => f32::NAN,
                    1 => f32::INFINITY,
                    2 => f32::NEG_INFINITY,
                    3 => -0.0,
                    4 => 1e-40, // subnormal in F32 and BF16, zero in F16
                    5 => 3e-6,  // subnormal in F16
                    _ => normal[i],
                })
                .collect()),
        ));
        let bytes = match dtype {
            "F32" => 4,
            _ => 2,
        };
        v.push(t(
            &format!("{d}.random_bits"),
            dtype,
            &[65_536],
            (0..65_536 * bytes).map(|_| rng.next_u64() as u8).collect(),
        ));
    }
    v.push(t(
        "i64.ids",
        "I64",
        &[2, 7],
        (0..14u64).flat_map(|i| (i * 3).to_le_bytes()).collect(),
    ));
    v.push(t("u8.bytes", "U8", &[5], vec![1, 2, 3, 4, 5]));
    v.push(t("bool.mask", "BOOL", &[3], vec![1, 0, 1]));
    v.push(t("f64.x", "F64", &[2], f64::to_le_bytes(1.5).repeat(2)));
    v.push(t(
        "fp8.w",
        "F8_E4M3",
        &[4000],
        (0..4000).map(|i| (i % 13) as u8).collect(),
    ));
    v.push(t("unknown.dtype", "Q4_K_FUTURE", &[7], vec![9; 21]));
    v
}

/// Runs the program `bin` (a test's `env!("CARGO_BIN_EXE_exprans")`, see [`cli!`]); returns
/// (exit code, stdout, stderr).
pub fn run(bin: &str, args: &[&std::ffi::OsStr]) -> (i32, String, String) {
    let out = Command::new(bin).args(args).output().expect("run exprans");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Runs the `exprans` binary of the calling test crate with these arguments (anything
/// `AsRef<OsStr>`); returns (exit code, stdout, stderr).
#[macro_export]
macro_rules! cli {
    ($($a:expr),* $(,)?) => {
        $crate::run(env!("CARGO_BIN_EXE_exprans"), &[$(std::ffi::OsStr::new(&$a)),*])
    };
}

/// Asserts a run succeeded.
pub fn ok(r: (i32, String, String)) -> String {
    assert_eq!(r.0, 0, "exprans failed: {}", r.2);
    r.1
}

/// Asserts a run failed with exit 1 and one line of error naming `file` and containing `what`.
pub fn fails(r: (i32, String, String), file: &Path, what: &str) {
    let (code, _, err) = r;
    assert_eq!(code, 1, "expected exit 1, got {code}: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line of error, got: {err}");
    assert!(lines[0].starts_with("exprans: error: "), "{err}");
    let name = file.file_name().unwrap().to_string_lossy();
    assert!(
        lines[0].contains(name.as_ref()),
        "error does not name {name}: {err}"
    );
    assert!(lines[0].contains(what), "error lacks '{what}': {err}");
}

/// Folder with the shared real models, or `None` (and a printed notice) when absent.
pub fn shared_models() -> Option<PathBuf> {
    let dir = std::env::var_os("EXPRANS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("../shared/models"));
    if dir.join("all-MiniLM-L6-v2.bf16.safetensors").exists() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: real models not found in {} (set EXPRANS_MODELS_DIR)",
            dir.display()
        );
        None
    }
}

/// The repository's root folder.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The frozen version-1 files (`crates/exprans/tests/frozen/`): `v1-input.safetensors` and the
/// `v1-*.exprans.safetensors` files made from it by exprans 0.1.0.
pub fn frozen_dir() -> PathBuf {
    repo_root().join("crates/exprans/tests/frozen")
}

/// The bundled real sample.
pub fn sample() -> PathBuf {
    repo_root().join("samples/minilm-slice.bf16.safetensors")
}

/// Names of the files in a folder (to check that nothing partial was left behind).
pub fn listing(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// False (with a notice) when the GPU tests are deliberately skipped with
/// `EXPRANS_SKIP_GPU_TESTS=1`. Otherwise GPU tests run and fail when no adapter exists.
pub fn gpu_tests_enabled() -> bool {
    if std::env::var("EXPRANS_SKIP_GPU_TESTS").is_ok_and(|v| v == "1") {
        eprintln!("SKIPPED: EXPRANS_SKIP_GPU_TESTS=1");
        return false;
    }
    true
}

/// The GPU for a test binary: `None` (after a `SKIPPED:` line) with EXPRANS_SKIP_GPU_TESTS=1,
/// else what `open` resolves to. Failing to open one panics: on a machine meant to run the GPU
/// tests a missing adapter is a failure (its message says how to install lavapipe).
pub fn open_gpu_or_skip<T, E: std::fmt::Display, F: std::future::Future<Output = Result<T, E>>>(
    open: impl FnOnce() -> F,
) -> Option<T> {
    if !gpu_tests_enabled() {
        return None;
    }
    quiet_wayland();
    match pollster::block_on(open()) {
        Ok(gpu) => Some(gpu),
        Err(e) => panic!("{e}\n(set EXPRANS_SKIP_GPU_TESTS=1 to skip the GPU tests)"),
    }
}

/// Silences libwayland's warning about a missing XDG_RUNTIME_DIR (GPU tests on the GL backend).
pub fn quiet_wayland() {
    if std::env::var_os("XDG_RUNTIME_DIR").is_none() {
        let dir = std::env::temp_dir().join(format!("exprans-xdg-{}", std::process::id()));
        if std::fs::create_dir_all(&dir).is_ok() {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
            std::env::set_var("XDG_RUNTIME_DIR", dir);
        }
    }
}

/// The SmolLM2-135M-Instruct directory (`EXPRANS_SMOLLM2_DIR`, default
/// `target/models/SmolLM2-135M-Instruct`, written by `../shared/tools/fetch-smollm2.sh`), or
/// `None` (and a printed notice) when it is absent.
pub fn smollm2() -> Option<PathBuf> {
    let dir = std::env::var_os("EXPRANS_SMOLLM2_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/models/SmolLM2-135M-Instruct"));
    if dir.join("model.safetensors").exists() && dir.join("config.json").exists() {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: SmolLM2 not found in {} (run ../shared/tools/fetch-smollm2.sh DIR, set \
             EXPRANS_SMOLLM2_DIR)",
            dir.display()
        );
        None
    }
}

/// A small random model of the Llama family written as a Hugging Face directory (config.json,
/// generation_config.json, tokenizer.json, tokenizer_config.json with a chat template,
/// model.safetensors in BF16), so language-model tests run in seconds without downloads.
pub struct TinyLm {
    /// `LlamaForCausalLM`, `MistralForCausalLM` or `Qwen2ForCausalLM` (q/k/v biases).
    pub architecture: &'static str,
    /// Output projection is the embedding (no `lm_head.weight`).
    pub tied: bool,
    pub seed: u64,
    /// F16 weights instead of BF16.
    pub f16: bool,
    /// Sizes.
    pub shape: LmShape,
}

/// The sizes of a [`TinyLm`].
#[derive(Clone, Copy, Debug)]
pub struct LmShape {
    pub hidden: u64,
    pub layers: usize,
    pub heads: u64,
    pub kv_heads: u64,
    pub head_dim: u64,
    pub intermediate: u64,
    pub vocab: u64,
}

impl LmShape {
    /// A model that runs in milliseconds.
    pub const TINY: LmShape = LmShape {
        hidden: TINY_HIDDEN,
        layers: TINY_LAYERS,
        heads: TINY_HEADS,
        kv_heads: TINY_KV_HEADS,
        head_dim: TINY_HEAD_DIM,
        intermediate: TINY_INTER,
        vocab: TINY_VOCAB,
    };
    /// SmolLM2-135M's sizes (random weights: for speed measurements where the real model
    /// cannot be fetched).
    pub const SMOLLM2_135M: LmShape = LmShape {
        hidden: 576,
        layers: 30,
        heads: 9,
        kv_heads: 3,
        head_dim: 64,
        intermediate: 1536,
        vocab: 49152,
    };
}

/// Words of the tiny model's vocabulary: `<s>`, `</s>`, `<unk>`, then `w3 .. w{TINY_VOCAB-1}`.
pub const TINY_VOCAB: u64 = 300;
const TINY_HIDDEN: u64 = 64;
const TINY_LAYERS: usize = 2;
const TINY_HEADS: u64 = 4;
const TINY_KV_HEADS: u64 = 2;
const TINY_HEAD_DIM: u64 = 16;
const TINY_INTER: u64 = 96;

impl TinyLm {
    /// The config.json text.
    pub fn config(&self) -> serde_json::Value {
        serde_json::json!({
            "architectures": [self.architecture],
            "hidden_size": self.shape.hidden,
            "intermediate_size": self.shape.intermediate,
            "num_hidden_layers": self.shape.layers,
            "num_attention_heads": self.shape.heads,
            "num_key_value_heads": self.shape.kv_heads,
            "head_dim": self.shape.head_dim,
            "max_position_embeddings": 512,
            "rms_norm_eps": 1e-5,
            "rope_theta": 10000.0,
            "vocab_size": self.shape.vocab,
            "tie_word_embeddings": self.tied,
            "hidden_act": "silu",
            "bos_token_id": 0,
            "eos_token_id": 1,
        })
    }

    /// The model's tensors: random weights (roughly unit-scale activations), norms near 1.
    pub fn tensors(&self) -> Vec<T> {
        let mut rng = Rng::seeded(self.seed);
        let mut out = Vec::new();
        let f16 = self.f16;
        let half16 = |name: &str, shape: &[u64], values: Vec<f32>| match f16 {
            true => t(name, "F16", shape, f16s(values)),
            false => t(name, "BF16", shape, bf16s(values)),
        };
        let matrix = |out: &mut Vec<T>, rng: &mut Rng, name: String, rows: u64, cols: u64| {
            let scale = 1.0 / (cols as f32).sqrt();
            let values: Vec<f32> = (0..rows * cols).map(|_| rng.normal(scale * 1.7)).collect();
            out.push(half16(&name, &[rows, cols], values));
        };
        let vector = |out: &mut Vec<T>, rng: &mut Rng, name: String, n: u64, base: f32| {
            let values: Vec<f32> = (0..n).map(|_| base + rng.normal(0.1)).collect();
            out.push(half16(&name, &[n], values));
        };
        let sh = self.shape;
        let (h, q, kv) = (sh.hidden, sh.heads * sh.head_dim, sh.kv_heads * sh.head_dim);
        let embedding = "model.embed_tokens.weight".into();
        matrix(&mut out, &mut rng, embedding, sh.vocab, h);
        for l in 0..sh.layers {
            let p = |s: &str| format!("model.layers.{l}.{s}");
            vector(&mut out, &mut rng, p("input_layernorm.weight"), h, 1.0);
            vector(
                &mut out,
                &mut rng,
                p("post_attention_layernorm.weight"),
                h,
                1.0,
            );
            for (name, rows, cols) in [
                ("self_attn.q_proj", q, h),
                ("self_attn.k_proj", kv, h),
                ("self_attn.v_proj", kv, h),
                ("self_attn.o_proj", h, q),
                ("mlp.gate_proj", sh.intermediate, h),
                ("mlp.up_proj", sh.intermediate, h),
                ("mlp.down_proj", h, sh.intermediate),
            ] {
                matrix(&mut out, &mut rng, p(&format!("{name}.weight")), rows, cols);
                let qkv = ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"];
                if self.architecture == "Qwen2ForCausalLM" && qkv.contains(&name) {
                    vector(&mut out, &mut rng, p(&format!("{name}.bias")), rows, 0.0);
                }
            }
        }
        vector(&mut out, &mut rng, "model.norm.weight".into(), h, 1.0);
        if !self.tied {
            matrix(&mut out, &mut rng, "lm_head.weight".into(), sh.vocab, h);
        }
        out
    }

    /// A word-level tokenizer.json over the vocabulary (whitespace-split words).
    pub fn tokenizer_json() -> String {
        let mut vocab = serde_json::Map::new();
        for (i, w) in ["<s>", "</s>", "<unk>"].iter().enumerate() {
            vocab.insert(w.to_string(), i.into());
        }
        for i in 3..TINY_VOCAB {
            vocab.insert(format!("w{i}"), i.into());
        }
        let special = |id: u64, content: &str| {
            serde_json::json!({"id": id, "content": content, "single_word": false, "lstrip": false,
                "rstrip": false, "normalized": false, "special": true})
        };
        serde_json::json!({
            "version": "1.0",
            "truncation": null,
            "padding": null,
            "added_tokens": [special(0, "<s>"), special(1, "</s>")],
            "normalizer": null,
            "pre_tokenizer": {"type": "WhitespaceSplit"},
            "post_processor": null,
            "decoder": null,
            "model": {"type": "WordLevel", "vocab": vocab, "unk_token": "<unk>"},
        })
        .to_string()
    }

    /// Writes the model directory `dir` (created), its tensors in `shards` shard files
    /// (`model-0000i-of-0000n.safetensors` and `model.safetensors.index.json` when more than one).
    pub fn write_sharded(&self, dir: &Path, shards: usize) {
        self.write(dir);
        if shards < 2 {
            return;
        }
        std::fs::remove_file(dir.join("model.safetensors")).unwrap();
        let tensors = self.tensors();
        let per = tensors.len().div_ceil(shards);
        let mut map = serde_json::Map::new();
        let mut parts: Vec<Vec<T>> = (0..shards).map(|_| Vec::new()).collect();
        for (i, t) in tensors.into_iter().enumerate() {
            let file = format!("model-{:05}-of-{shards:05}.safetensors", i / per + 1);
            map.insert(t.name.clone(), file.into());
            parts[i / per].push(t);
        }
        for (i, part) in parts.iter().enumerate() {
            let file = format!("model-{:05}-of-{shards:05}.safetensors", i + 1);
            std::fs::write(dir.join(file), safetensors_bytes(part, None)).unwrap();
        }
        let index = serde_json::json!({"metadata": {}, "weight_map": map});
        std::fs::write(dir.join("model.safetensors.index.json"), index.to_string()).unwrap();
    }

    /// Writes the model directory `dir` (created).
    pub fn write(&self, dir: &Path) {
        std::fs::create_dir_all(dir).unwrap();
        let write = |name: &str, text: String| std::fs::write(dir.join(name), text).unwrap();
        write("config.json", self.config().to_string());
        write("generation_config.json", r#"{"eos_token_id": [1]}"#.into());
        write("tokenizer.json", Self::tokenizer_json());
        write(
            "tokenizer_config.json",
            serde_json::json!({
                "bos_token": "<s>",
                "eos_token": "</s>",
                "chat_template": "{% for m in messages %}<s> {{ m['content'] }} {% endfor %}{% if add_generation_prompt %}w3 {% endif %}",
            })
            .to_string(),
        );
        std::fs::write(
            dir.join("model.safetensors"),
            safetensors_bytes(&self.tensors(), Some(r#"{"format":"pt"}"#)),
        )
        .unwrap();
    }
}
