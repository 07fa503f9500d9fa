//! Decoder-only language models of the Llama family (`LlamaForCausalLM`, `MistralForCausalLM`,
//! `Qwen2ForCausalLM`): pre-RMSNorm layers, rotary positions, grouped-query attention, SwiGLU.
//!
//! [`LlamaConfig`] reads everything the family's `config.json` files vary. [`cpu::CpuLlama`] is
//! the f32 reference; [`gpu::GpuLlama`] runs on wgpu with the weights held plain, decoded once
//! or fused ([`crate::WeightMode`]), the three bit-identical. Both implement [`CausalLm`], which
//! [`generate`] drives.
//!
//! One step of `T` new tokens at positions `p0 .. p0 + T`:
//!
//! ```text
//! x = embed[ids]
//! per layer:  n = RMSNorm(x) * g1
//!             q, k, v = n Wq (+bq), n Wk (+bk), n Wv (+bv);  rotate q, k by position
//!             append k, v to the layer's cache at p0 ..
//!             x = x + softmax_causal(q K^T / sqrt(d)) V Wo      (per head; heads share KV heads)
//!             n = RMSNorm(x) * g2
//!             x = x + (silu(n Wg) * (n Wu)) Wd
//! logits = (RMSNorm(x[T-1]) * gn) W_lm_head                     (the tied embedding or lm_head)
//! ```

pub mod cpu;
pub mod gpu;

use exprans::{quote, Error, Result};
use serde_json::Value;

use crate::checkpoint::{TensorInfo, TensorSource};
use crate::sample::{Sampler, Sampling};

/// The architectures this module runs (`config.json` `architectures[0]`).
pub const ARCHITECTURES: [&str; 3] = ["LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"];

/// Context length used when the caller does not ask for one (bounded by the model's).
pub const DEFAULT_CONTEXT: usize = 2048;

/// The architecture numbers of a Llama-family model, as its `config.json` gives them.
#[derive(Clone, Debug, PartialEq)]
pub struct LlamaConfig {
    /// `architectures[0]`, one of [`ARCHITECTURES`].
    pub architecture: String,
    /// Hidden size.
    pub hidden: usize,
    /// Feed-forward inner size.
    pub intermediate: usize,
    /// Decoder layers.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads; divides `heads` (grouped-query attention).
    pub kv_heads: usize,
    /// Size of one head; even.
    pub head_dim: usize,
    /// Vocabulary size (rows of the embedding).
    pub vocab: usize,
    /// RMSNorm epsilon.
    pub rms_norm_eps: f32,
    /// Rotary frequencies, one per pair of a head's dimensions (`head_dim / 2`), scaling applied.
    pub inv_freq: Vec<f64>,
    /// Longest context the model supports (positions), the sliding window when smaller.
    pub max_positions: usize,
    /// Whether the output projection is the embedding (no `lm_head.weight`).
    pub tied_embeddings: bool,
    /// Whether q, k, v projections have biases (Qwen2; Llama with `attention_bias`).
    pub qkv_bias: bool,
    /// Whether the output projection of attention has a bias (Llama `attention_bias`).
    pub o_bias: bool,
    /// Whether the MLP projections have biases (Llama `mlp_bias`).
    pub mlp_bias: bool,
    /// Beginning-of-sequence token, if the config names one.
    pub bos_token_id: Option<u32>,
    /// End-of-sequence tokens (config and generation config together).
    pub eos_token_ids: Vec<u32>,
}

/// A one-line configuration error.
fn bad(message: impl std::fmt::Display) -> Error {
    Error::invalid(format!("config.json: {message}"))
}

/// Field `key` of `json` as a positive integer, or `default` when absent or null.
fn count(json: &Value, key: &str, default: Option<usize>) -> Result<usize> {
    match json.get(key) {
        None | Some(Value::Null) => default.ok_or_else(|| bad(format!("no \"{key}\""))),
        Some(v) => v
            .as_u64()
            .filter(|&n| n > 0 && n < 1 << 31)
            .map(|n| n as usize)
            .ok_or_else(|| bad(format!("\"{key}\" is {v}, not a positive integer"))),
    }
}

/// Field `key` as a positive finite number, or `default` when absent or null.
fn number(json: &Value, key: &str, default: Option<f64>) -> Result<f64> {
    match json.get(key) {
        None | Some(Value::Null) => default.ok_or_else(|| bad(format!("no \"{key}\""))),
        Some(v) => v
            .as_f64()
            .filter(|x| x.is_finite() && *x > 0.0)
            .ok_or_else(|| bad(format!("\"{key}\" is {v}, not a positive number"))),
    }
}

fn flag(json: &Value, key: &str, default: bool) -> Result<bool> {
    match json.get(key) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::Bool(b)) => Ok(*b),
        Some(v) => Err(bad(format!("\"{key}\" is {v}, not true or false"))),
    }
}

/// Token ids of field `key`: a number or a list of numbers.
fn token_ids(json: &Value, key: &str) -> Result<Vec<u32>> {
    let one = |v: &Value| {
        v.as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .ok_or_else(|| bad(format!("\"{key}\" holds {v}, not a token id")))
    };
    match json.get(key) {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::Array(items)) => items.iter().map(one).collect(),
        Some(v) => Ok(vec![one(v)?]),
    }
}

/// The rotary frequencies `theta^(-2i/d)`, `i < d/2`, with the `rope_scaling` /
/// `rope_parameters` of the config applied (none, `default`, or `llama3`).
fn rope_frequencies(json: &Value, head_dim: usize) -> Result<Vec<f64>> {
    // transformers 5 writes `rope_parameters` (with `rope_theta` inside); older configs a
    // top-level `rope_theta` and an optional `rope_scaling`.
    let params = json.get("rope_parameters").filter(|v| !v.is_null());
    let theta = match params {
        Some(p) if p.get("rope_theta").is_some() => number(p, "rope_theta", None)?,
        _ => number(json, "rope_theta", Some(10_000.0))?,
    };
    let d = head_dim as f64;
    let mut inv_freq: Vec<f64> = (0..head_dim / 2)
        .map(|i| theta.powf(-((2 * i) as f64) / d))
        .collect();
    let scaling = params.or(json.get("rope_scaling").filter(|v| !v.is_null()));
    let Some(scaling) = scaling else {
        return Ok(inv_freq);
    };
    let kind = scaling
        .get("rope_type")
        .or(scaling.get("type"))
        .and_then(Value::as_str)
        .unwrap_or("default");
    match kind {
        "default" => Ok(inv_freq),
        "llama3" => {
            let factor = number(scaling, "factor", None)?;
            let low = number(scaling, "low_freq_factor", None)?;
            let high = number(scaling, "high_freq_factor", None)?;
            let old = number(scaling, "original_max_position_embeddings", None)?;
            if high <= low {
                return Err(bad(
                    "rope llama3 scaling needs high_freq_factor > low_freq_factor",
                ));
            }
            let (low_wavelen, high_wavelen) = (old / low, old / high);
            for f in &mut inv_freq {
                let wavelen = 2.0 * std::f64::consts::PI / *f;
                *f = if wavelen < high_wavelen {
                    *f
                } else if wavelen > low_wavelen {
                    *f / factor
                } else {
                    let smooth = (old / wavelen - low) / (high - low);
                    (1.0 - smooth) * *f / factor + smooth * *f
                };
            }
            Ok(inv_freq)
        }
        other => Err(bad(format!(
            "rope scaling {} is not supported (default and llama3 are)",
            quote(other)
        ))),
    }
}

impl LlamaConfig {
    /// Reads a Hugging Face `config.json`, and `generation_config.json` when given (its EOS ids
    /// join the config's). Refuses other architectures, naming them.
    pub fn from_json(config: &str, generation_config: Option<&str>) -> Result<LlamaConfig> {
        let json: Value = serde_json::from_str(config).map_err(bad)?;
        if !json.is_object() {
            return Err(bad("not a JSON object"));
        }
        let architecture = match json.get("architectures") {
            Some(Value::Array(a)) => a.first().and_then(Value::as_str).map(str::to_string),
            _ => None,
        }
        .ok_or_else(|| bad("no \"architectures\" list"))?;
        if !ARCHITECTURES.contains(&architecture.as_str()) {
            return Err(Error::invalid(format!(
                "architecture {} is not supported (exprans runs {})",
                quote(&architecture),
                ARCHITECTURES.join(", ")
            )));
        }
        let qwen2 = architecture == "Qwen2ForCausalLM";
        let hidden = count(&json, "hidden_size", None)?;
        let heads = count(&json, "num_attention_heads", None)?;
        let kv_heads = count(&json, "num_key_value_heads", Some(heads))?;
        if !heads.is_multiple_of(kv_heads) {
            return Err(bad(format!(
                "{kv_heads} key/value heads do not divide {heads} attention heads"
            )));
        }
        let head_dim = match json.get("head_dim") {
            None | Some(Value::Null) if hidden.is_multiple_of(heads) => hidden / heads,
            None | Some(Value::Null) => {
                return Err(bad(format!(
                    "{heads} heads do not divide hidden size {hidden}"
                )))
            }
            Some(_) => count(&json, "head_dim", None)?,
        };
        if !head_dim.is_multiple_of(2) {
            return Err(bad(format!(
                "head_dim {head_dim} is odd; rotary positions need pairs"
            )));
        }
        let act = json
            .get("hidden_act")
            .and_then(Value::as_str)
            .unwrap_or("silu");
        if act != "silu" {
            return Err(bad(format!(
                "activation {} is not supported (silu is)",
                quote(act)
            )));
        }
        let mut max_positions = count(&json, "max_position_embeddings", None)?;
        let sliding = flag(&json, "use_sliding_window", !qwen2)?;
        if sliding {
            if let Some(Value::Number(_)) = json.get("sliding_window") {
                max_positions = max_positions.min(count(&json, "sliding_window", None)?);
            }
        }
        let attention_bias = flag(&json, "attention_bias", false)?;
        let mut eos_token_ids = token_ids(&json, "eos_token_id")?;
        if let Some(g) = generation_config {
            let g: Value = serde_json::from_str(g)
                .map_err(|e| Error::invalid(format!("generation_config.json: {e}")))?;
            for id in token_ids(&g, "eos_token_id")? {
                if !eos_token_ids.contains(&id) {
                    eos_token_ids.push(id);
                }
            }
        }
        let bos = token_ids(&json, "bos_token_id")?;
        Ok(LlamaConfig {
            architecture,
            hidden,
            intermediate: count(&json, "intermediate_size", None)?,
            layers: count(&json, "num_hidden_layers", None)?,
            heads,
            kv_heads,
            head_dim,
            vocab: count(&json, "vocab_size", None)?,
            rms_norm_eps: number(&json, "rms_norm_eps", Some(1e-6))? as f32,
            inv_freq: rope_frequencies(&json, head_dim)?,
            max_positions,
            tied_embeddings: flag(&json, "tie_word_embeddings", false)?,
            qkv_bias: qwen2 || attention_bias,
            o_bias: attention_bias,
            mlp_bias: flag(&json, "mlp_bias", false)?,
            bos_token_id: bos.first().copied(),
            eos_token_ids,
        })
    }

    /// Width of the query projection (`heads * head_dim`).
    pub fn q_width(&self) -> usize {
        self.heads * self.head_dim
    }

    /// Width of the key and value projections (`kv_heads * head_dim`).
    pub fn kv_width(&self) -> usize {
        self.kv_heads * self.head_dim
    }

    /// Every tensor the model uses with the shape it must have, `[rows, cols]` for matrices
    /// (`torch.nn.Linear` layout) and `[n]` for vectors.
    pub fn tensor_shapes<'a>(&self, source: &impl TensorSource<'a>) -> Vec<(String, Vec<u64>)> {
        let (h, q, kv, i) = (
            self.hidden as u64,
            self.q_width() as u64,
            self.kv_width() as u64,
            self.intermediate as u64,
        );
        let mut shapes = vec![
            (EMBEDDING.to_string(), vec![self.vocab as u64, h]),
            (FINAL_NORM.to_string(), vec![h]),
        ];
        // A tied model may still ship lm_head.weight (a copy); use it when present.
        if !self.tied_embeddings || source.contains(LM_HEAD) {
            shapes.push((LM_HEAD.to_string(), vec![self.vocab as u64, h]));
        }
        for l in 0..self.layers {
            let p = |part: &str| format!("model.layers.{l}.{part}");
            shapes.push((p("input_layernorm.weight"), vec![h]));
            shapes.push((p("post_attention_layernorm.weight"), vec![h]));
            for (name, rows, cols, bias) in [
                ("self_attn.q_proj", q, h, self.qkv_bias),
                ("self_attn.k_proj", kv, h, self.qkv_bias),
                ("self_attn.v_proj", kv, h, self.qkv_bias),
                ("self_attn.o_proj", h, q, self.o_bias),
                ("mlp.gate_proj", i, h, self.mlp_bias),
                ("mlp.up_proj", i, h, self.mlp_bias),
                ("mlp.down_proj", h, i, self.mlp_bias),
            ] {
                shapes.push((p(&format!("{name}.weight")), vec![rows, cols]));
                if bias {
                    shapes.push((p(&format!("{name}.bias")), vec![rows]));
                }
            }
        }
        shapes
    }

    /// Dtype and shape of every tensor the model uses, checked against this configuration.
    pub fn checked_tensors<'a>(
        &self,
        source: &impl TensorSource<'a>,
    ) -> Result<Vec<(String, TensorInfo)>> {
        self.tensor_shapes(source)
            .into_iter()
            .map(|(name, want)| {
                let info = source.checkpoint_of(&name)?.info(&name)?;
                if info.shape != want {
                    return Err(Error::invalid(format!(
                        "tensor {}: shape {:?}, config.json needs {:?}",
                        quote(&name),
                        info.shape,
                        want
                    )));
                }
                Ok((name, info))
            })
            .collect()
    }

    /// The output projection's tensor name.
    pub fn lm_head_name<'a>(&self, source: &impl TensorSource<'a>) -> &'static str {
        if !self.tied_embeddings || source.contains(LM_HEAD) {
            LM_HEAD
        } else {
            EMBEDDING
        }
    }

    /// `[cos, sin]` of every position `p < positions` and frequency `i < head_dim / 2`, at
    /// `2 * (p * head_dim / 2 + i)` (angles in f64, rounded once to f32).
    pub fn rope_table(&self, positions: usize) -> Vec<f32> {
        let mut table = Vec::with_capacity(positions * self.head_dim);
        for p in 0..positions {
            for f in &self.inv_freq {
                let angle = p as f64 * f;
                table.push(angle.cos() as f32);
                table.push(angle.sin() as f32);
            }
        }
        table
    }
}

/// The token embedding.
pub const EMBEDDING: &str = "model.embed_tokens.weight";
/// The final norm's weight.
pub const FINAL_NORM: &str = "model.norm.weight";
/// The output projection of untied models.
pub const LM_HEAD: &str = "lm_head.weight";

/// A causal language model that runs forward steps over a cache of earlier positions.
#[allow(async_fn_in_trait)]
pub trait CausalLm {
    /// Most positions (prompt and generated tokens) one sequence may hold.
    fn context(&self) -> usize;

    /// Vocabulary size (logits per step).
    fn vocab(&self) -> usize;

    /// Runs tokens `ids` at positions `pos0 ..` (the cache holds positions `0 .. pos0` of this
    /// sequence; later ones are overwritten) and returns the logits after the last one.
    async fn forward(&mut self, ids: &[u32], pos0: usize) -> Result<Vec<f32>>;
}

/// What [`generate`] is asked to do.
#[derive(Clone, Debug)]
pub struct GenerateOptions {
    /// Most tokens to generate.
    pub max_new_tokens: usize,
    /// How the next token is chosen.
    pub sampling: Sampling,
    /// Tokens that end generation (not included in the output).
    pub stop_ids: Vec<u32>,
    /// Logits reported per step (highest first).
    pub top_logits: usize,
}

/// One generated token and the highest logits of its step.
#[derive(Clone, Debug, PartialEq)]
pub struct GeneratedToken {
    /// The chosen token.
    pub id: u32,
    /// The `top_logits` highest `(id, logit)` of the step, highest first (ties: lower id).
    pub top: Vec<(u32, f32)>,
}

/// The `n` highest `(id, logit)` of `logits`, highest first, ties by lower id.
pub fn top_logits(logits: &[f32], n: usize) -> Vec<(u32, f32)> {
    let mut ids: Vec<u32> = (0..logits.len() as u32).collect();
    let key = |&i: &u32| {
        (
            std::cmp::Reverse(crate::sample::OrderedLogit(logits[i as usize])),
            i,
        )
    };
    let n = n.min(ids.len());
    if n == 0 {
        return Vec::new();
    }
    ids.select_nth_unstable_by_key(n - 1, key);
    ids.truncate(n);
    ids.sort_by_key(key);
    ids.into_iter().map(|i| (i, logits[i as usize])).collect()
}

/// Generates up to `options.max_new_tokens` tokens after `prompt` (prefilled in one forward
/// step), stopping at a stop token; `on_token` sees each token as it is chosen (to stream it).
/// Fails before running anything when the prompt is empty or the prompt and the new tokens do
/// not fit the model's context.
pub async fn generate<M: CausalLm>(
    model: &mut M,
    prompt: &[u32],
    options: &GenerateOptions,
    mut on_token: impl FnMut(&GeneratedToken),
) -> Result<Vec<GeneratedToken>> {
    if prompt.is_empty() {
        return Err(Error::invalid("the prompt has no tokens"));
    }
    let needed = prompt.len() + options.max_new_tokens;
    if needed > model.context() {
        return Err(Error::invalid(format!(
            "{} prompt tokens and {} new tokens exceed the context of {} tokens",
            prompt.len(),
            options.max_new_tokens,
            model.context()
        )));
    }
    if let Some(bad) = prompt.iter().find(|&&id| id as usize >= model.vocab()) {
        return Err(Error::invalid(format!(
            "token id {bad} is outside the vocabulary of {}",
            model.vocab()
        )));
    }
    let mut sampler = Sampler::new(options.sampling.clone())?;
    let mut out = Vec::new();
    if options.max_new_tokens == 0 {
        return Ok(out);
    }
    let mut logits = model.forward(prompt, 0).await?;
    let mut pos = prompt.len();
    loop {
        let id = sampler.choose(&logits);
        if options.stop_ids.contains(&id) {
            break;
        }
        let token = GeneratedToken {
            id,
            top: top_logits(&logits, options.top_logits),
        };
        on_token(&token);
        out.push(token);
        if out.len() == options.max_new_tokens {
            break;
        }
        logits = model.forward(&[id], pos).await?;
        pos += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn smollm2_like() -> Value {
        serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "hidden_size": 576, "intermediate_size": 1536,
            "num_hidden_layers": 30, "num_attention_heads": 9, "num_key_value_heads": 3,
            "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_theta": 100000.0,
            "vocab_size": 49152, "tie_word_embeddings": true, "bos_token_id": 1, "eos_token_id": 2
        })
    }

    fn parse(json: &Value) -> Result<LlamaConfig> {
        LlamaConfig::from_json(&json.to_string(), None)
    }

    fn error(json: &Value) -> String {
        let e = parse(json).unwrap_err().to_string();
        assert!(!e.contains('\n'), "{e}");
        e
    }

    #[test]
    fn reads_every_field_the_family_varies() {
        let c = parse(&smollm2_like()).unwrap();
        assert_eq!((c.hidden, c.heads, c.kv_heads, c.head_dim), (576, 9, 3, 64));
        assert_eq!((c.layers, c.intermediate, c.vocab), (30, 1536, 49152));
        assert!(c.tied_embeddings && !c.qkv_bias && !c.o_bias && !c.mlp_bias);
        assert_eq!(
            (c.bos_token_id, c.eos_token_ids.clone()),
            (Some(1), vec![2])
        );
        assert_eq!(c.inv_freq.len(), 32);
        assert!((c.inv_freq[1] - 100000f64.powf(-2.0 / 64.0)).abs() < 1e-15);
        // transformers 5: theta inside rope_parameters; EOS lists joined with the generation
        // config's; explicit head_dim; untied.
        let mut j = smollm2_like();
        j.as_object_mut().unwrap().remove("rope_theta");
        j["rope_parameters"] = serde_json::json!({"rope_type": "default", "rope_theta": 500000.0});
        j["head_dim"] = 128.into();
        j["eos_token_id"] = serde_json::json!([2, 7]);
        j["tie_word_embeddings"] = false.into();
        let c =
            LlamaConfig::from_json(&j.to_string(), Some(r#"{"eos_token_id": [7, 9]}"#)).unwrap();
        assert!((c.inv_freq[1] - 500000f64.powf(-2.0 / 128.0)).abs() < 1e-15);
        assert_eq!(
            (c.head_dim, c.eos_token_ids.clone(), c.tied_embeddings),
            (128, vec![2, 7, 9], false)
        );
        // Qwen2: q/k/v biases; Mistral: the sliding window bounds the context.
        let mut q = smollm2_like();
        q["architectures"] = serde_json::json!(["Qwen2ForCausalLM"]);
        assert!(parse(&q).unwrap().qkv_bias);
        let mut m = smollm2_like();
        m["architectures"] = serde_json::json!(["MistralForCausalLM"]);
        m["sliding_window"] = 4096.into();
        assert_eq!(parse(&m).unwrap().max_positions, 4096);
        let mut b = smollm2_like();
        b["attention_bias"] = true.into();
        b["mlp_bias"] = true.into();
        let c = parse(&b).unwrap();
        assert!(c.qkv_bias && c.o_bias && c.mlp_bias);
    }

    #[test]
    fn llama3_rope_scaling_matches_its_definition() {
        let mut j = smollm2_like();
        j["rope_theta"] = 500000.0.into();
        j["rope_scaling"] = serde_json::json!({"rope_type": "llama3", "factor": 8.0,
            "low_freq_factor": 1.0, "high_freq_factor": 4.0, "original_max_position_embeddings": 8192});
        let c = parse(&j).unwrap();
        let base = |i: usize| 500000f64.powf(-((2 * i) as f64) / 64.0);
        // High frequencies (wavelength < 2048) unchanged, low ones (> 8192) divided by 8.
        assert_eq!(c.inv_freq[0], base(0));
        assert!((c.inv_freq[31] - base(31) / 8.0).abs() < 1e-18);
        let mid = (0..32).find(|&i| {
            let w = 2.0 * std::f64::consts::PI / base(i);
            w > 2048.0 && w < 8192.0
        });
        let i = mid.expect("a smoothed frequency");
        assert!(c.inv_freq[i] < base(i) && c.inv_freq[i] > base(i) / 8.0);
    }

    #[test]
    fn refuses_what_it_cannot_run_in_one_line() {
        let with = |key: &str, value: Value| {
            let mut j = smollm2_like();
            j[key] = value;
            j
        };
        let without = |key: &str| {
            let mut j = smollm2_like();
            j.as_object_mut().unwrap().remove(key);
            j
        };
        let cases = [
            (
                with("architectures", serde_json::json!(["GPT2LMHeadModel"])),
                "'GPT2LMHeadModel' is not supported",
            ),
            (without("architectures"), "no \"architectures\""),
            (without("hidden_size"), "no \"hidden_size\""),
            (with("num_key_value_heads", 2.into()), "do not divide"),
            (with("hidden_size", (-5).into()), "not a positive integer"),
            (with("head_dim", 63.into()), "odd"),
            (with("hidden_act", "gelu".into()), "activation 'gelu'"),
            (
                with(
                    "rope_scaling",
                    serde_json::json!({"rope_type": "yarn", "factor": 4.0}),
                ),
                "'yarn' is not supported",
            ),
            (with("rope_theta", "big".into()), "not a positive number"),
            (
                with("tie_word_embeddings", "yes".into()),
                "not true or false",
            ),
            (with("eos_token_id", (-1).into()), "not a token id"),
        ];
        for (json, want) in cases {
            let e = error(&json);
            assert!(e.contains(want), "{e} (wanted {want})");
        }
        assert!(LlamaConfig::from_json("[1]", None).is_err());
        assert!(LlamaConfig::from_json("{", None)
            .unwrap_err()
            .to_string()
            .starts_with("invalid"));
    }
}
