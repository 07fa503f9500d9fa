//! Chat with a Llama-family language model (SmolLM2, Llama, Mistral, Qwen2) on WebGPU
//! (`ChatModel` in JavaScript), run by the library's own [`exprans_infer`] code with the same
//! WGSL kernels as natively, from a model directory compressed by `exprans compress DIR`: with
//! `--rows-per-block 1` its matrices stay compressed on the GPU and are decoded inside the
//! matrix kernels (`weights: "fused"`).
//!
//! ```js
//! const model = await ChatModel.load(decoder, "SmolLM2-135M-Instruct.exprans/", {
//!   onProgress: (p) => {},          // {phase: "download", loaded, total, ...}, ...
//! });
//! const answer = await model.chat("What is the capital of France?", {
//!   maxNewTokens: 64, onToken: ({ text }) => out.append(text),
//! });
//! answer.text; answer.tokensPerSecond; model.weightBytes; model.activationBytes;
//! ```

use std::cell::{Cell, RefCell};

use exprans_infer::chat::{ChatTemplate, Message};
use exprans_infer::llama::gpu::GpuLlama;
use exprans_infer::llama::{top_logits, CausalLm, LlamaConfig};
use exprans_infer::model_files::{ModelFiles, ShardBytes};
use exprans_infer::sample::{Sampler, Sampling};
use exprans_infer::tokenizer::Tokenizer;
use exprans_infer::{best_mode, WeightMode};
use js_sys::{Array, Function, Object, Uint32Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;

use crate::api::{
    get, js_error, lib_error, now_ms, number, object, opt_bool, opt_function, opt_u64, set, Res,
    WebDecoder,
};
use crate::embed::{context, opt_string};
use crate::fetch::{fetch_bytes, fetch_optional_text, fetch_text, head, Progress};

/// Positions of the KV cache unless `context` says otherwise (at most the model's).
const DEFAULT_CONTEXT: u64 = 1024;

/// Tokens a reply may have unless `maxNewTokens` says otherwise.
const DEFAULT_MAX_NEW_TOKENS: u64 = 256;

/// The index of a sharded model directory (its name is kept by `exprans compress DIR`, which
/// rewrites the shard names inside).
const INDEX: &str = "model.safetensors.index.json";

/// The single shard of an unsharded directory, compressed or plain.
const SINGLE_SHARDS: [&str; 2] = ["model.exprans.safetensors", "model.safetensors"];

/// `base` joined with a file name (`base` is a directory URL, with or without its final `/`).
fn join(base: &str, name: &str) -> String {
    if base.is_empty() || base.ends_with('/') {
        format!("{base}{name}")
    } else {
        format!("{base}/{name}")
    }
}

fn opt_f64(options: Option<&Object>, key: &str) -> Res<Option<f64>> {
    let v = get(options, key);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.as_f64()
        .filter(|x| x.is_finite())
        .map(Some)
        .ok_or_else(|| format!("option '{key}' must be a number"))
}

/// The sampling options `temperature` (0, the default: greedy), `topK`, `topP`, `seed`.
fn sampling(options: Option<&Object>) -> Res<Sampling> {
    let greedy = Sampling::greedy();
    let s = Sampling {
        temperature: opt_f64(options, "temperature")?.map_or(greedy.temperature, |t| t as f32),
        top_k: opt_u64(options, "topK")?.map_or(greedy.top_k, |k| k as usize),
        top_p: opt_f64(options, "topP")?.map_or(greedy.top_p, |p| p as f32),
        seed: opt_u64(options, "seed")?.unwrap_or(greedy.seed),
    };
    Sampler::new(s.clone()).map_err(lib_error)?;
    Ok(s)
}

/// The shard file names of the directory at `base`: the `shards` option, else
/// `model.exprans.safetensors` when it exists, else the index's `weight_map` (each name once,
/// sorted), else `model.safetensors`.
async fn shard_names(base: &str, options: &Object) -> Res<Vec<String>> {
    let given = get(Some(options), "shards");
    if !given.is_undefined() && !given.is_null() {
        if !Array::is_array(&given) {
            return Err("option 'shards' must be an array of file names".into());
        }
        let names: Vec<String> = Array::from(&given)
            .iter()
            .map(|n| n.as_string().ok_or("option 'shards' must hold file names"))
            .collect::<Result<_, _>>()?;
        if names.is_empty() {
            return Err("option 'shards' is empty".into());
        }
        return Ok(names);
    }
    // A single compressed shard first: the usual directory then costs no failed request.
    if head(&join(base, SINGLE_SHARDS[0])).await?.is_some() {
        return Ok(vec![SINGLE_SHARDS[0].to_string()]);
    }
    if let Some(text) = fetch_optional_text(&join(base, INDEX)).await? {
        let json: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{INDEX}: {e}"))?;
        let map = json
            .get("weight_map")
            .and_then(|m| m.as_object())
            .ok_or_else(|| format!("{INDEX}: no \"weight_map\" object"))?;
        let mut names = Vec::new();
        for file in map.values() {
            let file = file
                .as_str()
                .ok_or_else(|| format!("{INDEX}: a shard name is not a string"))?;
            if file.contains('/') || file.contains('\\') || file.starts_with('.') {
                return Err(format!("{INDEX}: shard '{file}' is outside the directory"));
            }
            names.push(file.to_string());
        }
        names.sort();
        names.dedup();
        if names.is_empty() {
            return Err(format!("{INDEX}: no shards in its weight_map"));
        }
        return Ok(names);
    }
    if head(&join(base, SINGLE_SHARDS[1])).await?.is_some() {
        return Ok(vec![SINGLE_SHARDS[1].to_string()]);
    }
    Err(format!(
        "{base}: no {INDEX}, {} or {} (give a model directory made by `exprans compress DIR`, \
         or the option 'shards')",
        SINGLE_SHARDS[0], SINGLE_SHARDS[1]
    ))
}

/// What a generation is asked to do.
struct Request<'a> {
    max_new_tokens: usize,
    sampling: Sampling,
    top_logits: usize,
    on_token: Option<&'a Function>,
    /// Whether the KV cache's positions that hold the prompt's first tokens may be kept.
    reuse_cache: bool,
}

/// Why a generation ended.
#[derive(Clone, Copy)]
enum Finish {
    /// A stop token (not included).
    Stop,
    /// `maxNewTokens` (or the context) reached.
    Length,
    /// `stop()` was called.
    Stopped,
}

impl Finish {
    fn name(self) -> &'static str {
        match self {
            Finish::Stop => "stop",
            Finish::Length => "length",
            Finish::Stopped => "stopped",
        }
    }
}

/// A language model on the GPU with its tokenizer and chat template (`ChatModel` in
/// JavaScript).
#[wasm_bindgen(js_name = ChatModel)]
pub struct WebChatModel {
    /// Taken out while a generation runs (one at a time).
    model: Cell<Option<GpuLlama>>,
    config: LlamaConfig,
    tokenizer: Tokenizer,
    template: Option<ChatTemplate>,
    stop_ids: Vec<u32>,
    /// The ids whose keys and values the KV cache holds, at positions `0..len`.
    cached: RefCell<Vec<u32>>,
    /// The conversation `chat` continues.
    history: RefCell<Vec<Message>>,
    /// Set by `stop()`, checked between tokens.
    cancel: Cell<bool>,
    mode: WeightMode,
    context: usize,
    parameters: u64,
    weight_bytes: u64,
    activation_bytes: u64,
    download_bytes: u64,
    shards: Vec<String>,
    compressed: bool,
    adapter: String,
    load_ms: f64,
}

impl WebChatModel {
    async fn load_inner(decoder: &WebDecoder, base: &str, options: Object) -> Res<WebChatModel> {
        let start = now_ms();
        let progress = Progress(opt_function(Some(&options), "onProgress")?);
        let weights = opt_string(&options, "weights")?.unwrap_or_else(|| "auto".into());
        let wanted = match weights.as_str() {
            "auto" => None,
            name => Some(WeightMode::from_name(name).ok_or_else(|| {
                format!(
                    "option 'weights' is '{name}': use \"auto\", \"fused\", \"decoded\" or \
                     \"plain\""
                )
            })?),
        };
        let context_wanted = opt_u64(Some(&options), "context")?.unwrap_or(DEFAULT_CONTEXT);

        progress.report("config", &[("base", base.into())])?;
        let config = fetch_text(&join(base, "config.json")).await?;
        let generation_config = fetch_optional_text(&join(base, "generation_config.json")).await?;
        let tokenizer = fetch_text(&join(base, "tokenizer.json")).await?;
        let tokenizer_config = fetch_optional_text(&join(base, "tokenizer_config.json")).await?;

        let names = shard_names(base, &options).await?;
        let mut sizes = Vec::new();
        for name in &names {
            let url = join(base, name);
            sizes.push(
                head(&url)
                    .await?
                    .ok_or_else(|| format!("{url}: HTTP 404 Not Found"))?,
            );
        }
        let total: Option<u64> = sizes.iter().copied().sum();
        let total_js = total.map_or(JsValue::NULL, number);
        let mut shards = Vec::new();
        let mut done = 0u64;
        for (i, name) in names.iter().enumerate() {
            let url = join(base, name);
            let file: JsValue = name.as_str().into();
            let bytes = fetch_bytes(&url, |loaded, file_total| {
                progress.report(
                    "download",
                    &[
                        ("file", file.clone()),
                        ("fileIndex", number(i as u64)),
                        ("files", number(names.len() as u64)),
                        ("fileLoaded", number(loaded)),
                        ("fileTotal", file_total.map_or(JsValue::NULL, number)),
                        ("loaded", number(done + loaded)),
                        ("total", total_js.clone()),
                    ],
                )
            })
            .await?;
            done += bytes.len() as u64;
            shards.push((name.clone(), ShardBytes::Owned(bytes)));
        }
        let files = ModelFiles {
            config,
            generation_config,
            tokenizer,
            tokenizer_config,
            shards,
        };

        let lm = files.language_model().map_err(lib_error)?;
        let source = files.shards().map_err(lib_error)?;
        let tensors = lm.config.checked_tensors(&source).map_err(lib_error)?;
        let compressed = exprans_infer::checkpoint::TensorSource::is_compressed(&source);
        let mode = match wanted {
            Some(m) => m,
            None => best_mode(&tensors, &source).map_err(lib_error)?,
        };
        let parameters: u64 = tensors
            .iter()
            .map(|(_, t)| t.shape.iter().product::<u64>())
            .sum();
        progress.report(
            "parse",
            &[
                ("tensors", number(tensors.len() as u64)),
                ("parameters", number(parameters)),
                ("compressed", compressed.into()),
                ("weights", mode.name().into()),
            ],
        )?;
        if decoder.infer.borrow().is_none() {
            progress.report("kernels", &[])?;
        }
        let gpu = context(decoder).await?;
        progress.report(
            "weights",
            &[
                ("tensors", number(tensors.len() as u64)),
                ("weights", mode.name().into()),
            ],
        )?;
        let context_len = (context_wanted as usize).min(lm.config.max_positions);
        let model = GpuLlama::load(&gpu, &lm.config, &source, mode, context_len)
            .await
            .map_err(lib_error)?;
        drop(source);
        drop(files);
        let load_ms = now_ms() - start;
        progress.report(
            "ready",
            &[
                ("tensors", number(tensors.len() as u64)),
                ("weightBytes", number(model.weight_bytes())),
                ("activationBytes", number(model.activation_bytes())),
                ("loadMs", JsValue::from_f64(load_ms)),
            ],
        )?;
        Ok(WebChatModel {
            context: model.context(),
            weight_bytes: model.weight_bytes(),
            activation_bytes: model.activation_bytes(),
            model: Cell::new(Some(model)),
            config: lm.config,
            tokenizer: lm.tokenizer,
            template: lm.chat_template,
            stop_ids: lm.stop_ids,
            cached: RefCell::new(Vec::new()),
            history: RefCell::new(Vec::new()),
            cancel: Cell::new(false),
            mode,
            parameters,
            download_bytes: done,
            shards: names,
            compressed,
            adapter: decoder.name(),
            load_ms,
        })
    }

    fn template(&self) -> Res<&ChatTemplate> {
        self.template.as_ref().ok_or_else(|| {
            "this model has no chat template (tokenizer_config.json's chat_template): use \
             generateIds with {raw: true}"
                .to_string()
        })
    }

    /// The prompt ids of `messages`, rendered with the chat template (its special tokens are
    /// in the text, so none are added).
    fn render(&self, messages: &[Message]) -> Res<Vec<u32>> {
        let text = self.template()?.render(messages, true).map_err(lib_error)?;
        self.tokenizer.encode(&text, false).map_err(lib_error)
    }

    /// Generates after `prompt`; the result object has `text`, `ids`, timings and `finish`.
    async fn run(&self, prompt: &[u32], request: &Request<'_>) -> Res<Object> {
        let mut model = self
            .model
            .take()
            .ok_or("a generation is already running on this model: await it first")?;
        self.cancel.set(false);
        let result = self.run_with(&mut model, prompt, request).await;
        self.model.set(Some(model));
        result
    }

    async fn run_with(
        &self,
        model: &mut GpuLlama,
        prompt: &[u32],
        request: &Request<'_>,
    ) -> Res<Object> {
        if prompt.is_empty() {
            return Err("the prompt has no tokens".into());
        }
        if prompt.len() >= self.context {
            return Err(format!(
                "the prompt's {} tokens fill the context of {} tokens: reset() the conversation, \
                 or load the model with a larger 'context' (at most {})",
                prompt.len(),
                self.context,
                self.config.max_positions
            ));
        }
        let max_new = request.max_new_tokens.min(self.context - prompt.len());
        let mut sampler = Sampler::new(request.sampling.clone()).map_err(lib_error)?;
        // Positions whose cached keys and values already belong to this prompt (at least one
        // token must run, for the logits).
        let reused = if request.reuse_cache {
            let cached = self.cached.borrow();
            let common = cached
                .iter()
                .zip(prompt)
                .take_while(|(a, b)| a == b)
                .count();
            common.min(prompt.len() - 1)
        } else {
            0
        };
        let mut detok = self.tokenizer.detokenizer(true);
        let text = RefCell::new(String::new());
        let emit = |id: Option<u32>, index: usize, piece: String| -> Res<()> {
            text.borrow_mut().push_str(&piece);
            if let Some(f) = request.on_token {
                let token = object(&[
                    ("id", id.map_or(JsValue::NULL, |i| number(i as u64))),
                    ("index", number(index as u64)),
                    ("text", piece.into()),
                ]);
                f.call1(&JsValue::NULL, &token)
                    .map_err(|e| format!("onToken threw: {}", crate::api::describe(&e)))?;
            }
            Ok(())
        };

        let started = now_ms();
        self.cached.borrow_mut().truncate(reused);
        let mut logits = model
            .forward(&prompt[reused..], reused)
            .await
            .map_err(lib_error)?;
        self.cached
            .borrow_mut()
            .extend_from_slice(&prompt[reused..]);
        let prefill_ms = now_ms() - started;
        let mut ids = Vec::new();
        let tops = Array::new();
        let (mut decode_ms, mut steps) = (0.0, 0u64);
        let mut pos = prompt.len();
        let finish = loop {
            if max_new == 0 {
                break Finish::Length;
            }
            let id = sampler.choose(&logits);
            if self.stop_ids.contains(&id) {
                break Finish::Stop;
            }
            if request.top_logits > 0 {
                let top: Array = top_logits(&logits, request.top_logits)
                    .into_iter()
                    .map(|(i, l)| JsValue::from(Array::of2(&number(i as u64), &(l as f64).into())))
                    .collect();
                tops.push(&top);
            }
            ids.push(id);
            let piece = detok.push(id).map_err(lib_error)?;
            emit(Some(id), ids.len() - 1, piece)?;
            if ids.len() == max_new {
                break Finish::Length;
            }
            if self.cancel.get() {
                break Finish::Stopped;
            }
            let t = now_ms();
            logits = model.forward(&[id], pos).await.map_err(lib_error)?;
            decode_ms += now_ms() - t;
            steps += 1;
            self.cached.borrow_mut().push(id);
            pos += 1;
        };
        let rest = detok.finish().map_err(lib_error)?;
        if !rest.is_empty() {
            emit(None, ids.len(), rest)?;
        }
        let per_second = |n: f64, ms: f64| {
            if ms > 0.0 {
                JsValue::from_f64(1e3 * n / ms)
            } else {
                JsValue::NULL
            }
        };
        let out = object(&[
            ("text", text.into_inner().into()),
            ("ids", Uint32Array::from(&ids[..]).into()),
            ("promptIds", Uint32Array::from(prompt).into()),
            ("promptTokens", number(prompt.len() as u64)),
            ("reusedTokens", number(reused as u64)),
            ("newTokens", number(ids.len() as u64)),
            ("finish", finish.name().into()),
            ("prefillMs", JsValue::from_f64(prefill_ms)),
            (
                "prefillTokensPerSecond",
                per_second((prompt.len() - reused) as f64, prefill_ms),
            ),
            ("decodeMs", JsValue::from_f64(decode_ms)),
            ("decodeSteps", number(steps)),
            ("tokensPerSecond", per_second(steps as f64, decode_ms)),
            ("totalMs", JsValue::from_f64(now_ms() - started)),
        ]);
        if request.top_logits > 0 {
            set(&out, "top", tops);
        }
        Ok(out)
    }

    fn request<'a>(
        options: Option<&'a Object>,
        on_token: Option<&'a Function>,
    ) -> Res<Request<'a>> {
        Ok(Request {
            max_new_tokens: opt_u64(options, "maxNewTokens")?.unwrap_or(DEFAULT_MAX_NEW_TOKENS)
                as usize,
            sampling: sampling(options)?,
            top_logits: opt_u64(options, "topLogits")?.unwrap_or(0) as usize,
            on_token,
            reuse_cache: true,
        })
    }

    async fn chat_inner(&self, text: String, options: Option<Object>) -> Res<Object> {
        let o = options.as_ref();
        let on_token = opt_function(o, "onToken")?;
        let request = Self::request(o, on_token.as_ref())?;
        let mut messages = self.history.borrow().clone();
        if messages.is_empty() {
            if let Some(system) = opt_string_in(o, "system")? {
                messages.push(Message::new("system", system));
            }
        }
        messages.push(Message::new("user", text));
        let prompt = self.render(&messages)?;
        let result = self.run(&prompt, &request).await?;
        let reply = get(Some(&result), "text").as_string().unwrap_or_default();
        messages.push(Message::new("assistant", reply));
        *self.history.borrow_mut() = messages;
        Ok(result)
    }

    async fn generate_inner(&self, prompt: JsValue, options: Option<Object>) -> Res<Object> {
        let o = options.as_ref();
        let ids: Vec<u32> = if let Some(text) = prompt.as_string() {
            if opt_bool(o, "raw", false)? {
                self.tokenizer.encode(&text, true).map_err(lib_error)?
            } else {
                self.render(&[Message::new("user", text)])?
            }
        } else if Array::is_array(&prompt) || prompt.is_instance_of::<Uint32Array>() {
            let values: Vec<f64> = if let Some(a) = prompt.dyn_ref::<Uint32Array>() {
                a.to_vec().into_iter().map(f64::from).collect()
            } else {
                Array::from(&prompt)
                    .iter()
                    .map(|v| v.as_f64().ok_or("prompt ids must be numbers"))
                    .collect::<Result<_, _>>()?
            };
            values
                .into_iter()
                .map(|v| {
                    if v >= 0.0 && v.fract() == 0.0 && v < self.config.vocab as f64 {
                        Ok(v as u32)
                    } else {
                        Err(format!(
                            "prompt id {v} is not a token id (0 to {})",
                            self.config.vocab - 1
                        ))
                    }
                })
                .collect::<Res<_>>()?
        } else {
            return Err(
                "generateIds takes a string (a user message, or raw text with {raw: true}) or \
                 an array of token ids"
                    .into(),
            );
        };
        let on_token = opt_function(o, "onToken")?;
        let mut request = Self::request(o, on_token.as_ref())?;
        request.reuse_cache = opt_bool(o, "reuseCache", false)?;
        self.run(&ids, &request).await
    }
}

fn opt_string_in(options: Option<&Object>, key: &str) -> Res<Option<String>> {
    match options {
        Some(o) => opt_string(o, key),
        None => Ok(None),
    }
}

#[wasm_bindgen(js_class = ChatModel)]
impl WebChatModel {
    /// Downloads a model directory from `baseUrl` (a directory URL, e.g.
    /// `"SmolLM2-135M-Instruct.exprans/"`): `config.json`, `generation_config.json` (optional),
    /// `tokenizer.json`, `tokenizer_config.json` (optional; its chat template) and the shards
    /// (`model.exprans.safetensors`, else those of `model.safetensors.index.json`, else
    /// `model.safetensors`), and loads the model onto `decoder`'s device. Options:
    ///
    /// - `weights`: `"auto"` (default: `"fused"` for a directory compressed with
    ///   `--rows-per-block`, `"decoded"` for another compressed one, `"plain"` for a plain one),
    ///   `"fused"`, `"decoded"` or `"plain"`;
    /// - `context`: positions of the KV cache (default 1024, at most the model's);
    /// - `shards`: the shard file names, instead of finding them;
    /// - `onProgress`: called with `{phase, ...}`: `"config"` (`base`), `"download"` (`file`,
    ///   `fileIndex`, `files`, `fileLoaded`, `fileTotal`, and `loaded` of `total` bytes over
    ///   every shard; `total` null when a server gives no length; at most every MiB),
    ///   `"parse"` (`tensors`, `parameters`, `compressed`, `weights`), `"kernels"` (the
    ///   inference kernels are compiled: the first model on a decoder only), `"weights"`
    ///   (uploading the tensors and decoding on the GPU, one submission), `"ready"`
    ///   (`weightBytes`, `activationBytes`, `loadMs`).
    ///
    /// The shards are held in wasm memory while `load` runs, and dropped after.
    pub async fn load(
        decoder: &WebDecoder,
        base_url: String,
        options: Option<Object>,
    ) -> Result<WebChatModel, JsError> {
        let options = options.unwrap_or_default();
        Self::load_inner(decoder, &base_url, options)
            .await
            .map_err(js_error)
    }

    /// Adds a user message to the conversation, renders it with the chat template (with
    /// `system` as the first message when given on the first turn; otherwise the template's
    /// default), and generates the assistant's reply, which joins the conversation. The KV
    /// cache keeps the positions the new prompt shares with what ran before, so each turn
    /// runs only its new tokens. Options: `maxNewTokens` (default 256; fewer when the context
    /// ends first), `onToken` (called with `{id, index, text}` for each token as it is
    /// chosen: `text` is what it adds to the reply, empty while a character is incomplete; a
    /// last call with `id: null` carries text still held), `temperature` (default 0: greedy),
    /// `topK`, `topP`, `seed`, `topLogits` (report the N highest logits of each step),
    /// `system`. Resolves to `{text, ids, promptIds, promptTokens, reusedTokens, newTokens,
    /// finish ("stop", "length" or "stopped"), prefillMs, prefillTokensPerSecond, decodeMs,
    /// decodeSteps, tokensPerSecond, totalMs, top?}`: the prefill is the forward step of the
    /// prompt (its logits give the first token); each later token, and the stop token, takes
    /// one single-token step (`decodeSteps` of them in `decodeMs`; `tokensPerSecond` is their
    /// rate).
    pub async fn chat(&self, text: String, options: Option<Object>) -> Result<Object, JsError> {
        self.chat_inner(text, options).await.map_err(js_error)
    }

    /// Generates after `prompt` without touching the conversation: a string is one user
    /// message rendered with the chat template (as `exprans generate --chat`), or with
    /// `{raw: true}` text tokenized as it is (as `--prompt`); an array or `Uint32Array` is
    /// token ids. The whole prompt runs from position 0 (as the native runtime does) unless
    /// `reuseCache: true`. Options and result: those of `chat`.
    #[wasm_bindgen(js_name = generateIds)]
    pub async fn generate_ids(
        &self,
        prompt: JsValue,
        options: Option<Object>,
    ) -> Result<Object, JsError> {
        self.generate_inner(prompt, options).await.map_err(js_error)
    }

    /// Ends the running generation after its current token (its result has `finish:
    /// "stopped"`).
    pub fn stop(&self) {
        self.cancel.set(true);
    }

    /// Forgets the conversation (the next `chat` starts a new one).
    pub fn reset(&self) {
        self.history.borrow_mut().clear();
    }

    /// The conversation: `[{role, content}]`.
    #[wasm_bindgen(getter)]
    pub fn history(&self) -> Array {
        self.history
            .borrow()
            .iter()
            .map(|m| {
                JsValue::from(object(&[
                    ("role", m.role.as_str().into()),
                    ("content", m.content.as_str().into()),
                ]))
            })
            .collect()
    }

    /// The token ids of `text` (with the tokenizer's special tokens when `addSpecial`).
    pub fn tokenize(&self, text: &str, add_special: Option<bool>) -> Result<Uint32Array, JsError> {
        let ids = self
            .tokenizer
            .encode(text, add_special.unwrap_or(false))
            .map_err(lib_error)
            .map_err(js_error)?;
        Ok(Uint32Array::from(&ids[..]))
    }

    /// The text of token ids (special tokens skipped).
    pub fn detokenize(&self, ids: &[u32]) -> Result<String, JsError> {
        self.tokenizer
            .decode(ids, true)
            .map_err(lib_error)
            .map_err(js_error)
    }

    /// The prompt text the chat template makes of one user message (and `system`, if given).
    #[wasm_bindgen(js_name = renderChat)]
    pub fn render_chat(&self, text: String, system: Option<String>) -> Result<String, JsError> {
        let mut messages = Vec::new();
        if let Some(s) = system {
            messages.push(Message::new("system", s));
        }
        messages.push(Message::new("user", text));
        self.template()
            .and_then(|t| t.render(&messages, true).map_err(lib_error))
            .map_err(js_error)
    }

    /// `"fused"`, `"decoded"` or `"plain"`.
    #[wasm_bindgen(getter)]
    pub fn weights(&self) -> String {
        self.mode.name().into()
    }

    /// GPU memory held by the weights, bytes.
    #[wasm_bindgen(getter, js_name = weightBytes)]
    pub fn weight_bytes(&self) -> f64 {
        self.weight_bytes as f64
    }

    /// GPU memory held by the activations and the KV cache, bytes.
    #[wasm_bindgen(getter, js_name = activationBytes)]
    pub fn activation_bytes(&self) -> f64 {
        self.activation_bytes as f64
    }

    /// Positions of the KV cache (prompt and generated tokens of a conversation).
    #[wasm_bindgen(getter)]
    pub fn context(&self) -> usize {
        self.context
    }

    /// Positions of the conversation the KV cache holds now.
    #[wasm_bindgen(getter, js_name = cachedTokens)]
    pub fn cached_tokens(&self) -> usize {
        self.cached.borrow().len()
    }

    /// The adapter's name (`Decoder.adapterName`; empty when the browser gives none).
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> String {
        self.adapter.clone()
    }

    /// Milliseconds `load` took (downloads, parsing, kernels, upload and decoding).
    #[wasm_bindgen(getter, js_name = loadMs)]
    pub fn load_ms(&self) -> f64 {
        self.load_ms
    }

    /// The token ids that end a reply.
    #[wasm_bindgen(getter, js_name = stopIds)]
    pub fn stop_ids(&self) -> Vec<u32> {
        self.stop_ids.clone()
    }

    /// `{architecture, layers, hidden, heads, kvHeads, vocab, maxPositions, parameters,
    /// compressed, downloadBytes, shards, chatTemplate}`.
    #[wasm_bindgen(getter)]
    pub fn info(&self) -> Object {
        let c = &self.config;
        let shards: Array = self
            .shards
            .iter()
            .map(|s| JsValue::from(s.as_str()))
            .collect();
        object(&[
            ("architecture", c.architecture.as_str().into()),
            ("layers", number(c.layers as u64)),
            ("hidden", number(c.hidden as u64)),
            ("heads", number(c.heads as u64)),
            ("kvHeads", number(c.kv_heads as u64)),
            ("vocab", number(c.vocab as u64)),
            ("maxPositions", number(c.max_positions as u64)),
            ("parameters", number(self.parameters)),
            ("compressed", self.compressed.into()),
            ("downloadBytes", number(self.download_bytes)),
            ("shards", shards.into()),
            ("chatTemplate", self.template.is_some().into()),
        ])
    }
}
