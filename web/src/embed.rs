//! Sentence embeddings on WebGPU (`EmbeddingModel` in JavaScript): a BERT sentence encoder
//! (all-MiniLM-L6-v2 and its kin) run by the library's own [`exprans_infer`] code, with the same
//! WGSL kernels as natively, from a compressed model whose matrices stay compressed on the GPU
//! and are decoded inside the matrix kernels (`weights: "fused"`), or are held plain.
//!
//! ```js
//! const model = await EmbeddingModel.load(decoder, {
//!   modelUrl: "all-MiniLM-L6-v2.rows32.exprans.safetensors",   // or modelBytes (ArrayBuffer, typed array, Blob)
//!   tokenizerUrl: "tokenizer.json",                            // or tokenizerJson (text)
//!   configUrl: "config.json",                                  // or configJson (text)
//!   weights: "fused",                                          // "plain" | "decoded" | "fused"
//! });
//! const [a, b] = await model.embed(["A man is eating food.", "A man eats bread."]);
//! cosine(a, b); model.weightBytes; model.lastPassMs;
//! ```

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use exprans::gpu::GpuDecoder;
use exprans_infer::bert::{self, BertConfig, GpuBert, GpuContext, WeightMode};
use exprans_infer::checkpoint::Checkpoint;
use exprans_infer::matvec::row_aligned_block_rows;
use exprans_infer::shaders::ATTENTION_MAX_TOKENS;
use exprans_infer::tokenizer::Tokenizer;
use js_sys::{Array, Float32Array, Object, Uint32Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::api::{
    byte_length, describe, get, js_error, lib_error, now_ms, number, object, opt_function, opt_u64,
    u8_array_of, Res, WebDecoder,
};
use crate::fetch::{fetch_bytes, fetch_text, Progress};

/// The longest input sentence-transformers gives all-MiniLM-L6-v2 (`max_seq_length`).
const DEFAULT_MAX_TOKENS: u64 = 256;

const ROW_ALIGNED_HINT: &str = "fused weights need a compressed model whose blocks are whole \
     matrix rows: make it with `exprans compress MODEL.safetensors --rows-per-block 32`";

pub(crate) fn opt_string(options: &Object, key: &str) -> Res<Option<String>> {
    let v = get(Some(options), key);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.as_string()
        .map(Some)
        .ok_or_else(|| format!("option '{key}' must be a string"))
}

/// Text given inline (`{key}Json`) or by URL (`{key}Url`).
async fn text_option(options: &Object, key: &str, file: &str) -> Res<String> {
    match (
        opt_string(options, &format!("{key}Json"))?,
        opt_string(options, &format!("{key}Url"))?,
    ) {
        (Some(text), _) => Ok(text),
        (None, Some(url)) => fetch_text(&url).await,
        (None, None) => Err(format!("give {key}Url or {key}Json (the model's {file})")),
    }
}

/// The model file: `modelBytes` (an `ArrayBuffer`, a typed array or a `Blob`) or `modelUrl`
/// (downloaded with `"download"` progress reports).
async fn model_bytes(options: &Object, progress: &Progress) -> Res<Vec<u8>> {
    let bytes = get(Some(options), "modelBytes");
    if !bytes.is_undefined() && !bytes.is_null() {
        if let Some(blob) = bytes.dyn_ref::<web_sys::Blob>() {
            let buffer = JsFuture::from(blob.array_buffer())
                .await
                .map_err(|e| format!("cannot read the model file: {}", describe(&e)))?;
            return Ok(js_sys::Uint8Array::new(&buffer).to_vec());
        }
        let array = u8_array_of(&bytes)
            .map_err(|_| "option 'modelBytes' must be an ArrayBuffer, a typed array or a Blob")?;
        if byte_length(&array) > u32::MAX as u64 {
            return Err("the model file does not fit in wasm memory".into());
        }
        return Ok(array.to_vec());
    }
    match opt_string(options, "modelUrl")? {
        Some(url) => {
            let file: JsValue = url.as_str().into();
            fetch_bytes(&url, |loaded, total| {
                let total = total.map_or(JsValue::NULL, number);
                progress.report(
                    "download",
                    &[
                        ("file", file.clone()),
                        ("loaded", number(loaded)),
                        ("total", total),
                    ],
                )
            })
            .await
        }
        None => Err("give modelUrl or modelBytes (the compressed model file)".into()),
    }
}

/// Fails with a clear message, before anything reaches the GPU, when a matrix of a compressed
/// checkpoint is not stored in whole-row blocks (fused weights need them).
fn check_row_aligned(config: &BertConfig, checkpoint: &Checkpoint) -> Res<()> {
    for name in config.tensor_names() {
        let info = checkpoint.info(&name).map_err(lib_error)?;
        let [_, cols] = info.shape[..] else { continue };
        let Some(entry) = checkpoint.coded_entry(&name).map_err(lib_error)? else {
            continue;
        };
        let block = entry.block_size();
        if row_aligned_block_rows(block, cols as u32).is_none() {
            return Err(format!(
                "{ROW_ALIGNED_HINT}; this model's matrix '{name}' has blocks of {block} values,                  not whole rows of {cols}"
            ));
        }
    }
    Ok(())
}

/// The inference kernels on `decoder`'s device, compiled once per `Decoder`.
pub(crate) async fn context(decoder: &WebDecoder) -> Res<Rc<GpuContext>> {
    if let Some(c) = decoder.infer.borrow().as_ref() {
        return Ok(c.clone());
    }
    // The page's decoder, shared: one device, one set of compiled decode pipelines.
    let shared = GpuDecoder::clone(&decoder.gpu);
    let c = Rc::new(GpuContext::new(shared).await.map_err(lib_error)?);
    *decoder.infer.borrow_mut() = Some(c.clone());
    Ok(c)
}

/// A sentence encoder on the GPU (`EmbeddingModel` in JavaScript).
#[wasm_bindgen(js_name = EmbeddingModel)]
pub struct WebEmbeddingModel {
    /// Taken out while a forward pass runs (passes share their buffers: one at a time).
    bert: Cell<Option<GpuBert>>,
    tokenizer: Tokenizer,
    hidden: usize,
    max_tokens: usize,
    mode: WeightMode,
    weight_bytes: u64,
    activation_bytes: u64,
    compressed: bool,
    file_bytes: u64,
    load_ms: f64,
    last_pass_ms: RefCell<Vec<f64>>,
}

impl WebEmbeddingModel {
    async fn load_inner(decoder: &WebDecoder, options: Object) -> Res<WebEmbeddingModel> {
        let start = now_ms();
        let progress = Progress(opt_function(Some(&options), "onProgress")?);
        let mode_name = opt_string(&options, "weights")?.unwrap_or_else(|| "fused".into());
        let mode = WeightMode::from_name(&mode_name).ok_or_else(|| {
            format!("option 'weights' is '{mode_name}': use \"fused\", \"plain\" or \"decoded\"")
        })?;
        let config = BertConfig::from_json(&text_option(&options, "config", "config.json").await?)
            .map_err(lib_error)?;
        let tokenizer =
            Tokenizer::from_json(&text_option(&options, "tokenizer", "tokenizer.json").await?)
                .map_err(lib_error)?;
        let max_tokens = opt_u64(Some(&options), "maxTokens")?.unwrap_or(DEFAULT_MAX_TOKENS);
        if max_tokens < 2 {
            return Err("option 'maxTokens' must be at least 2 ([CLS] and [SEP])".into());
        }
        let max_tokens = (max_tokens as usize)
            .min(config.max_positions)
            .min(ATTENTION_MAX_TOKENS as usize);
        let file = model_bytes(&options, &progress).await?;
        let checkpoint = Checkpoint::parse(&file).map_err(|e| format!("model file: {e}"))?;
        let tensors = config.tensor_names().len();
        progress.report("parse", &[("tensors", number(tensors as u64))])?;
        if mode.needs_compressed() && !checkpoint.is_compressed() {
            return Err(format!(
                "weights \"{}\" need a compressed model (.exprans.safetensors); this is a plain \
                 safetensors file. {ROW_ALIGNED_HINT}, or use weights \"plain\"",
                mode.name()
            ));
        }
        if mode == WeightMode::Fused {
            check_row_aligned(&config, &checkpoint)?;
        }
        if decoder.infer.borrow().is_none() {
            progress.report("kernels", &[])?;
        }
        let gpu = context(decoder).await?;
        progress.report(
            "weights",
            &[
                ("tensors", number(tensors as u64)),
                ("weights", mode.name().into()),
            ],
        )?;
        let bert = GpuBert::load(&gpu, &config, &checkpoint, mode)
            .await
            .map_err(|e| {
                let e = e.to_string();
                if mode == WeightMode::Fused && e.contains("not whole rows") {
                    format!("{ROW_ALIGNED_HINT} ({e})")
                } else {
                    e
                }
            })?;
        let max_tokens = max_tokens.min(bert.max_tokens());
        let tokenizer = tokenizer.with_truncation(max_tokens).map_err(lib_error)?;
        progress.report(
            "ready",
            &[
                ("tensors", number(tensors as u64)),
                ("weightBytes", number(bert.weight_bytes())),
                ("loadMs", JsValue::from_f64(now_ms() - start)),
            ],
        )?;
        Ok(WebEmbeddingModel {
            hidden: config.hidden,
            max_tokens,
            mode,
            weight_bytes: bert.weight_bytes(),
            activation_bytes: bert.activation_bytes(),
            compressed: checkpoint.is_compressed(),
            file_bytes: file.len() as u64,
            bert: Cell::new(Some(bert)),
            tokenizer,
            load_ms: now_ms() - start,
            last_pass_ms: RefCell::new(Vec::new()),
        })
    }

    async fn embed_inner(&self, sentences: JsValue) -> Res<Array> {
        let texts: Vec<String> = match sentences.as_string() {
            Some(s) => vec![s],
            None if Array::is_array(&sentences) => Array::from(&sentences)
                .iter()
                .map(|s| s.as_string().ok_or("every sentence must be a string"))
                .collect::<Result<_, _>>()?,
            None => return Err("embed takes a string or an array of strings".into()),
        };
        let mut bert = self
            .bert
            .take()
            .ok_or("a forward pass is already running on this model: await it first")?;
        let mut times = Vec::new();
        let out = Array::new();
        let mut result = Ok(());
        for text in &texts {
            let ids = match self.tokenizer.encode(text, true) {
                Ok(ids) => ids,
                Err(e) => {
                    result = Err(lib_error(e));
                    break;
                }
            };
            let t = now_ms();
            match bert.embed(&ids).await {
                Ok(e) => {
                    times.push(now_ms() - t);
                    out.push(&Float32Array::from(&e[..]));
                }
                Err(e) => {
                    result = Err(lib_error(e));
                    break;
                }
            }
        }
        self.bert.set(Some(bert));
        result?;
        *self.last_pass_ms.borrow_mut() = times;
        Ok(out)
    }
}

#[wasm_bindgen(js_class = EmbeddingModel)]
impl WebEmbeddingModel {
    /// Loads a BERT sentence encoder onto `decoder`'s device. Options:
    ///
    /// - `modelUrl` or `modelBytes` (`ArrayBuffer`, typed array, `Blob`): the model file, an
    ///   exprans file (needed by `"fused"` and `"decoded"`; `"fused"` needs one compressed with
    ///   `--rows-per-block`) or, for `"plain"`, also a plain safetensors file;
    /// - `tokenizerUrl` or `tokenizerJson`; `configUrl` or `configJson`;
    /// - `weights`: `"fused"` (default: matrices kept compressed, decoded inside the matrix
    ///   kernels), `"decoded"` (decoded once on the GPU) or `"plain"` (decoded on the CPU and
    ///   uploaded);
    /// - `maxTokens`: longer sentences are truncated (default 256);
    /// - `onProgress`: called with `{phase, ...}` as the load goes on: `"download"` (`file`,
    ///   `loaded`, `total` bytes; `total` null when the server gives no length; at most every
    ///   MiB), `"parse"` (`tensors`), `"kernels"` (the inference kernels are compiled: the first
    ///   model on a decoder only), `"weights"` (`tensors`, `weights`: uploading them and decoding
    ///   on the GPU, in one submission), `"ready"` (`tensors`, `weightBytes`, `loadMs`).
    pub async fn load(decoder: &WebDecoder, options: Object) -> Result<WebEmbeddingModel, JsError> {
        Self::load_inner(decoder, options).await.map_err(js_error)
    }

    /// Embeds a sentence or an array of sentences, one forward pass each: an array of
    /// `Float32Array`s (L2-normalized, `hidden` values each). `lastPassMs` then holds the
    /// milliseconds of each pass (upload of the token ids to read-back of the embedding).
    pub async fn embed(&self, sentences: JsValue) -> Result<Array, JsError> {
        self.embed_inner(sentences).await.map_err(js_error)
    }

    /// The token ids of `text` (`[CLS] ... [SEP]`, truncated to `maxTokens`).
    pub fn tokenize(&self, text: &str) -> Result<Uint32Array, JsError> {
        let ids = self
            .tokenizer
            .encode(text, true)
            .map_err(lib_error)
            .map_err(js_error)?;
        Ok(Uint32Array::from(&ids[..]))
    }

    /// `"fused"`, `"decoded"` or `"plain"`.
    #[wasm_bindgen(getter)]
    pub fn weights(&self) -> String {
        self.mode.name().into()
    }

    /// GPU memory held by the weights, bytes (activations not included).
    #[wasm_bindgen(getter, js_name = weightBytes)]
    pub fn weight_bytes(&self) -> f64 {
        self.weight_bytes as f64
    }

    /// GPU memory held by the activation buffers, bytes.
    #[wasm_bindgen(getter, js_name = activationBytes)]
    pub fn activation_bytes(&self) -> f64 {
        self.activation_bytes as f64
    }

    /// Values per embedding.
    #[wasm_bindgen(getter)]
    pub fn hidden(&self) -> usize {
        self.hidden
    }

    /// Most tokens per sentence (longer ones are truncated).
    #[wasm_bindgen(getter, js_name = maxTokens)]
    pub fn max_tokens(&self) -> usize {
        self.max_tokens
    }

    /// Whether the model file was an exprans file; its size in bytes.
    #[wasm_bindgen(getter)]
    pub fn info(&self) -> Object {
        object(&[
            ("compressed", self.compressed.into()),
            ("fileBytes", JsValue::from_f64(self.file_bytes as f64)),
        ])
    }

    /// Milliseconds `load` took (reading the files, parsing, upload, decoding, binding).
    #[wasm_bindgen(getter, js_name = loadMs)]
    pub fn load_ms(&self) -> f64 {
        self.load_ms
    }

    /// Milliseconds of each forward pass of the last `embed` call.
    #[wasm_bindgen(getter, js_name = lastPassMs)]
    pub fn last_pass_ms(&self) -> Vec<f64> {
        self.last_pass_ms.borrow().clone()
    }
}

/// Cosine similarity of two embeddings (f64 accumulation, as `exprans_infer::bert::cosine`).
#[wasm_bindgen]
pub fn cosine(a: &[f32], b: &[f32]) -> Result<f64, JsError> {
    if a.len() != b.len() {
        return Err(JsError::new(&format!(
            "cosine: vectors of {} and {} values",
            a.len(),
            b.len()
        )));
    }
    Ok(bert::cosine(a, b))
}
