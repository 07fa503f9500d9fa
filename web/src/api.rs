//! The JavaScript API (wasm-bindgen): [`WebDecoder`] (`Decoder` in JavaScript) and [`WebFile`]
//! (`ExpransFile`), plus [`webgpu_available`] and [`crc32c()`].
//!
//! Every decode goes through the library: the stored checksum is checked before anything is
//! uploaded, coded tensors are decoded by
//! [`exprans::gpu::GpuDecoder`] (the same WGSL kernels as on native GPUs), and the decoded
//! checksum is checked on what the GPU wrote (`GpuDecoder::decode_tensors_into`).

use std::cell::RefCell;
use std::ops::Range;
use std::rc::Rc;

use exprans::gpu::{self, sync, DecoderOptions, GpuDecoder, OutputTarget};
use exprans::{Archive, ArchiveTensor, Encoding, TensorIndex};
use js_sys::{Array, Function, Object, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::http;

/// Bytes the first read of a file asks for: the whole header of most files.
const FIRST_READ: u64 = 64 * 1024;

/// Buffer usages every decoded tensor's buffer has.
const BASE_USAGE: wgpu::BufferUsages = wgpu::BufferUsages::STORAGE
    .union(wgpu::BufferUsages::COPY_SRC)
    .union(wgpu::BufferUsages::COPY_DST);

const NO_WEBGPU: &str =
    "this browser has no WebGPU (navigator.gpu is missing): use a browser with \
     WebGPU enabled (e.g. Chrome or Edge 113 or later), on a page served from https:// or \
     http://localhost (WebGPU needs a secure context)";

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = performance, js_name = now)]
    pub(crate) fn now_ms() -> f64;
    #[wasm_bindgen(js_name = fetch)]
    pub(crate) fn fetch_request(request: &web_sys::Request) -> js_sys::Promise;
    /// A `Uint8Array`, for `subarray` with offsets past 4 GiB.
    #[wasm_bindgen(extends = Uint8Array)]
    type BigUint8Array;
    #[wasm_bindgen(method, js_name = subarray)]
    fn subarray_f64(this: &BigUint8Array, begin: f64, end: f64) -> Uint8Array;
    #[wasm_bindgen(js_namespace = console, js_name = error)]
    fn console_error(message: &str);
}

/// Internal results carry a one-line message; the JavaScript boundary turns it into an `Error`.
pub(crate) type Res<T> = Result<T, String>;

pub(crate) fn js_error(message: String) -> JsError {
    JsError::new(&message)
}

/// The message of a JavaScript exception (an `Error`'s `message`, or the value as text).
pub(crate) fn describe(value: &JsValue) -> String {
    if let Some(s) = value.as_string() {
        return s;
    }
    if let Ok(message) = Reflect::get(value, &"message".into()) {
        if let Some(s) = message.as_string() {
            return s;
        }
    }
    format!("{value:?}")
}

pub(crate) fn lib_error(e: exprans::Error) -> String {
    e.to_string()
}

/// Routes Rust panics to the console (they would otherwise only say "unreachable"). Runs when
/// the module is initialized; there is no need to call it.
#[wasm_bindgen(start)]
fn start() {
    std::panic::set_hook(Box::new(|info| console_error(&format!("exprans: {info}"))));
}

/// Whether this browser exposes WebGPU (`navigator.gpu`). A `true` does not promise an
/// adapter: `Decoder.create` reports that.
#[wasm_bindgen(js_name = webgpuAvailable)]
pub fn webgpu_available() -> bool {
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).unwrap_or_default();
    if navigator.is_undefined() || navigator.is_null() {
        return false;
    }
    Reflect::get(&navigator, &"gpu".into()).is_ok_and(|gpu| !gpu.is_undefined() && !gpu.is_null())
}

/// CRC-32C (Castagnoli) of `bytes`, the checksum exprans files use.
#[wasm_bindgen]
pub fn crc32c(bytes: &[u8]) -> u32 {
    crc32c::crc32c(bytes)
}

/// The exprans library version this module was built from.
#[wasm_bindgen]
pub fn version() -> String {
    env!("CARGO_PKG_VERSION").to_string()
}

// ---------------------------------------------------------------------------------------------
// Options and plain JavaScript objects

pub(crate) fn get(options: Option<&Object>, key: &str) -> JsValue {
    options
        .and_then(|o| Reflect::get(o, &key.into()).ok())
        .unwrap_or(JsValue::UNDEFINED)
}

pub(crate) fn opt_bool(options: Option<&Object>, key: &str, default: bool) -> Res<bool> {
    let v = get(options, key);
    if v.is_undefined() || v.is_null() {
        return Ok(default);
    }
    v.as_bool()
        .ok_or_else(|| format!("option '{key}' must be true or false"))
}

pub(crate) fn opt_u64(options: Option<&Object>, key: &str) -> Res<Option<u64>> {
    let v = get(options, key);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    match v.as_f64() {
        Some(n) if n >= 0.0 && n.fract() == 0.0 && n <= 9_007_199_254_740_991.0 => {
            Ok(Some(n as u64))
        }
        _ => Err(format!("option '{key}' must be a non-negative integer")),
    }
}

pub(crate) fn opt_function(options: Option<&Object>, key: &str) -> Res<Option<Function>> {
    let v = get(options, key);
    if v.is_undefined() || v.is_null() {
        return Ok(None);
    }
    v.dyn_into::<Function>()
        .map(Some)
        .map_err(|_| format!("option '{key}' must be a function"))
}

/// A plain object with these properties.
pub(crate) fn object(props: &[(&str, JsValue)]) -> Object {
    let o = Object::new();
    for (key, value) in props {
        Reflect::set(&o, &(*key).into(), value).expect("setting a property of a new object");
    }
    o
}

pub(crate) fn set(o: &Object, key: &str, value: impl Into<JsValue>) {
    Reflect::set(o, &key.into(), &value.into()).expect("setting a property of a plain object");
}

pub(crate) fn number(n: u64) -> JsValue {
    JsValue::from_f64(n as f64)
}

fn decoder_options(options: Option<&Object>) -> Res<DecoderOptions> {
    Ok(DecoderOptions {
        force_portable: opt_bool(options, "forcePortable", false)?,
        max_binding_size: opt_u64(options, "maxBindingSize")?,
    })
}

fn buffer_usage(options: Option<&Object>) -> Res<wgpu::BufferUsages> {
    let extra = opt_u64(options, "usage")?.unwrap_or(0);
    let extra = u32::try_from(extra)
        .ok()
        .and_then(wgpu::BufferUsages::from_bits)
        .ok_or_else(|| format!("option 'usage' ({extra}) is not a set of GPUBufferUsage flags"))?;
    Ok(BASE_USAGE | extra)
}

// ---------------------------------------------------------------------------------------------
// Decoder

/// A GPU decoder on a WebGPU device that it opened itself (`Decoder` in JavaScript).
///
/// wgpu 30 can hand its device to the page but cannot adopt a device the page created, so the
/// page shares this decoder's device: `decoder.device` is the `GPUDevice`, and decoded
/// tensors are `GPUBuffer`s on it.
#[wasm_bindgen(js_name = Decoder)]
pub struct WebDecoder {
    pub(crate) gpu: Rc<GpuDecoder>,
    adapter: JsValue,
    /// What the browser says of the adapter (`GPUAdapterInfo`), as a plain object; null when
    /// it says nothing.
    adapter_info: JsValue,
    /// The inference kernels (`EmbeddingModel`), compiled on this device at first use.
    pub(crate) infer: RefCell<Option<Rc<exprans_infer::bert::GpuContext>>>,
}

#[wasm_bindgen(js_class = Decoder)]
impl WebDecoder {
    /// Opens the browser's WebGPU adapter (high-performance preference) and a device with the
    /// adapter's limits, and compiles the decode kernels. Options: `forcePortable` (bool: the
    /// portable kernel even where subgroups are available), `maxBindingSize` (bytes: decode
    /// tensors in pieces no larger than this, below the device limit).
    pub async fn create(options: Option<Object>) -> Result<WebDecoder, JsError> {
        if !webgpu_available() {
            return Err(JsError::new(NO_WEBGPU));
        }
        let options = decoder_options(options.as_ref()).map_err(js_error)?;
        let gpu = GpuDecoder::new_default(options)
            .await
            .map_err(|e| js_error(lib_error(e)))?;
        let adapter = match gpu.adapter() {
            Some(summary) => {
                let json = serde_json::to_string(summary).expect("adapter summary serializes");
                js_sys::JSON::parse(&json).unwrap_or(JsValue::NULL)
            }
            None => JsValue::NULL,
        };
        let gpu = Rc::new(gpu);
        let adapter_info = browser_adapter_info(&gpu).await;
        Ok(WebDecoder {
            gpu,
            adapter,
            adapter_info,
            infer: RefCell::new(None),
        })
    }

    /// Another decoder on the same device, with other options (those of `Decoder.create`).
    #[wasm_bindgen(js_name = withOptions)]
    pub async fn with_options(&self, options: Option<Object>) -> Result<WebDecoder, JsError> {
        let options = decoder_options(options.as_ref()).map_err(js_error)?;
        let gpu = GpuDecoder::from_device(self.gpu.device(), self.gpu.queue(), options)
            .await
            .map_err(|e| js_error(lib_error(e)))?;
        Ok(WebDecoder {
            gpu: Rc::new(gpu),
            adapter: self.adapter.clone(),
            adapter_info: self.adapter_info.clone(),
            infer: RefCell::new(None),
        })
    }

    /// The decoder's `GPUDevice`: the page's own WebGPU code uses it to work with decoded
    /// buffers (bind them, copy them, read them back).
    #[wasm_bindgen(getter)]
    pub fn device(&self) -> JsValue {
        self.gpu
            .device()
            .as_webgpu()
            .map_or(JsValue::NULL, |d| d.clone().into())
    }

    /// The device's `GPUQueue` (the same object as `device.queue`).
    #[wasm_bindgen(getter)]
    pub fn queue(&self) -> JsValue {
        self.gpu
            .queue()
            .as_webgpu()
            .map_or(JsValue::NULL, |q| q.clone().into())
    }

    /// The BF16/F16 kernel in use: `"portable"` or `"subgroup"`.
    #[wasm_bindgen(getter, js_name = kernelPath)]
    pub fn kernel_path(&self) -> String {
        self.gpu.path().to_string()
    }

    /// What the adapter offers (backend, name, subgroups, limits), as a plain object. In a
    /// browser wgpu gets no name or driver (they are empty); see `adapterInfo`.
    #[wasm_bindgen(getter)]
    pub fn adapter(&self) -> JsValue {
        self.adapter.clone()
    }

    /// What the browser says of the adapter, as a plain object `{vendor, architecture, device,
    /// description, isFallbackAdapter?, subgroupMinSize?, subgroupMaxSize?}` (a copy of the
    /// device's `GPUAdapterInfo`: `GPUDevice.adapterInfo`, else `GPUAdapter.info`, else the
    /// older `requestAdapterInfo()`); null when the browser gives none. Browsers may leave
    /// fields empty (to limit fingerprinting).
    #[wasm_bindgen(getter, js_name = adapterInfo)]
    pub fn adapter_info(&self) -> JsValue {
        self.adapter_info.clone()
    }

    /// A name for the adapter: wgpu's adapter name where it has one, else the browser's
    /// `description`, else its `vendor`, `architecture` and `device` (e.g. "google swiftshader");
    /// an empty string when the browser gives none of them.
    #[wasm_bindgen(getter, js_name = adapterName)]
    pub fn adapter_name(&self) -> String {
        self.name()
    }
}

impl WebDecoder {
    /// See [`WebDecoder::adapter_name`].
    pub(crate) fn name(&self) -> String {
        if let Some(name) = self.gpu.adapter().map(|a| a.name.trim()) {
            if !name.is_empty() {
                return name.to_string();
            }
        }
        let field = |k: &str| {
            get(self.adapter_info.dyn_ref::<Object>(), k)
                .as_string()
                .map(|s| s.trim().to_string())
                .unwrap_or_default()
        };
        let description = field("description");
        if !description.is_empty() {
            return description;
        }
        ["vendor", "architecture", "device"]
            .map(field)
            .into_iter()
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

/// The fields of a `GPUAdapterInfo` (attributes on its prototype, which `JSON.stringify` and
/// object spreading do not see) copied into a plain object; null for anything but an object.
fn plain_adapter_info(info: &JsValue) -> JsValue {
    if !info.is_object() {
        return JsValue::NULL;
    }
    let out = Object::new();
    for key in [
        "vendor",
        "architecture",
        "device",
        "description",
        "isFallbackAdapter",
        "subgroupMinSize",
        "subgroupMaxSize",
    ] {
        let v = Reflect::get(info, &key.into()).unwrap_or(JsValue::UNDEFINED);
        if !v.is_undefined() {
            set(&out, key, v);
        }
    }
    out.into()
}

/// What the browser says of the decoder's adapter: the device's `adapterInfo` (Chrome 132 and
/// later), else the `info` of the adapter `navigator.gpu.requestAdapter()` gives (the same
/// preference as wgpu's), else that adapter's `requestAdapterInfo()` (older browsers).
async fn browser_adapter_info(gpu: &GpuDecoder) -> JsValue {
    if let Some(device) = gpu.device().as_webgpu() {
        let device: &JsValue = device.as_ref();
        let info = Reflect::get(device, &"adapterInfo".into()).unwrap_or(JsValue::UNDEFINED);
        if info.is_object() {
            return plain_adapter_info(&info);
        }
    }
    let call = |target: &JsValue, method: &str, args: &Array| -> Option<js_sys::Promise> {
        let f: Function = Reflect::get(target, &method.into()).ok()?.dyn_into().ok()?;
        f.apply(target, args).ok()?.dyn_into().ok()
    };
    let navigator = Reflect::get(&js_sys::global(), &"navigator".into()).unwrap_or_default();
    let Ok(gpu_js) = Reflect::get(&navigator, &"gpu".into()) else {
        return JsValue::NULL;
    };
    let preference = object(&[("powerPreference", "high-performance".into())]);
    let Some(request) = call(&gpu_js, "requestAdapter", &Array::of1(&preference)) else {
        return JsValue::NULL;
    };
    let adapter = match JsFuture::from(request).await {
        Ok(a) if a.is_object() => a,
        _ => return JsValue::NULL,
    };
    let info = Reflect::get(&adapter, &"info".into()).unwrap_or(JsValue::UNDEFINED);
    if info.is_object() {
        return plain_adapter_info(&info);
    }
    match call(&adapter, "requestAdapterInfo", &Array::new()) {
        Some(p) => JsFuture::from(p)
            .await
            .map(|i| plain_adapter_info(&i))
            .unwrap_or(JsValue::NULL),
        None => JsValue::NULL,
    }
}

// ---------------------------------------------------------------------------------------------
// Sources of file bytes

/// Where a file's bytes come from. Every read copies one range into wasm memory, so a file
/// larger than wasm's 4 GiB can be decoded tensor by tensor.
enum Source {
    /// An `ArrayBuffer` (or a view of one) held by JavaScript.
    Bytes(Uint8Array),
    /// A `Blob` or `File` (e.g. from `<input type="file">`), read slice by slice.
    Blob(web_sys::Blob),
    /// A URL, read with HTTP range requests.
    Url(String),
}

impl Source {
    fn kind(&self) -> &'static str {
        match self {
            Source::Bytes(_) => "bytes",
            Source::Blob(_) => "blob",
            Source::Url(_) => "url",
        }
    }

    async fn read(&self, range: Range<u64>) -> Res<Vec<u8>> {
        if range.is_empty() {
            return Ok(Vec::new());
        }
        match self {
            Source::Bytes(bytes) => {
                let bytes: &BigUint8Array = bytes.unchecked_ref();
                Ok(bytes
                    .subarray_f64(range.start as f64, range.end as f64)
                    .to_vec())
            }
            Source::Blob(blob) => {
                let part = blob
                    .slice_with_f64_and_f64(range.start as f64, range.end as f64)
                    .map_err(|e| format!("cannot slice the file: {}", describe(&e)))?;
                let buffer = JsFuture::from(part.array_buffer())
                    .await
                    .map_err(|e| format!("cannot read the file: {}", describe(&e)))?;
                let bytes = Uint8Array::new(&buffer).to_vec();
                if bytes.len() as u64 != range.end - range.start {
                    return Err("the file changed while it was read".into());
                }
                Ok(bytes)
            }
            Source::Url(url) => {
                let answer = fetch_range(url, &range).await?;
                match answer.range {
                    Some(r) if r.start == range.start && r.end == range.end => {
                        Ok(answer.body.to_vec())
                    }
                    Some(r) => Err(format!(
                        "{url}: asked for bytes {}..{}, the server sent {}..{}",
                        range.start, range.end, r.start, r.end
                    )),
                    None => Err(format!(
                        "{url}: the server ignored the Range header (status {}); serve the file \
                         from a server that supports range requests",
                        answer.status
                    )),
                }
            }
        }
    }
}

/// The answer to a range request.
struct RangeAnswer {
    status: u16,
    /// The Content-Range of a 206 answer; `None` for a 200 answer (the whole file).
    range: Option<http::ContentRange>,
    /// The body, still in JavaScript memory.
    body: Uint8Array,
}

async fn fetch_range(url: &str, range: &Range<u64>) -> Res<RangeAnswer> {
    let init = web_sys::RequestInit::new();
    let headers = web_sys::Headers::new().map_err(|e| describe(&e))?;
    headers
        .set("Range", &http::range_header(range))
        .map_err(|e| describe(&e))?;
    init.set_headers(&headers);
    let request = web_sys::Request::new_with_str_and_init(url, &init)
        .map_err(|e| format!("{url}: {}", describe(&e)))?;
    let response: web_sys::Response = JsFuture::from(fetch_request(&request))
        .await
        .map_err(|e| format!("{url}: fetch failed: {}", describe(&e)))?
        .unchecked_into();
    let status = response.status();
    let range = match status {
        206 => {
            let value = response
                .headers()
                .get("Content-Range")
                .map_err(|e| describe(&e))?
                .ok_or_else(|| {
                    format!(
                        "{url}: a 206 answer without a readable Content-Range header (a \
                         cross-origin server must list it in Access-Control-Expose-Headers)"
                    )
                })?;
            Some(
                http::parse_content_range(&value)
                    .ok_or_else(|| format!("{url}: unreadable Content-Range '{value}'"))?,
            )
        }
        200 => None,
        _ => return Err(format!("{url}: HTTP {status} {}", response.status_text())),
    };
    let body = response.array_buffer().map_err(|e| describe(&e))?;
    let body = JsFuture::from(body)
        .await
        .map_err(|e| format!("{url}: reading the answer failed: {}", describe(&e)))?;
    let body = Uint8Array::new(&body);
    if let Some(r) = range {
        let len = byte_length(&body);
        if len != r.end - r.start {
            return Err(format!(
                "{url}: Content-Range says {} bytes, the answer has {len}",
                r.end - r.start
            ));
        }
    }
    Ok(RangeAnswer {
        status,
        range,
        body,
    })
}

// ---------------------------------------------------------------------------------------------
// Files

/// An opened `.exprans.safetensors` file (`ExpransFile` in JavaScript): its checked header, and
/// where to read each tensor's stored bytes from.
#[wasm_bindgen(js_name = ExpransFile)]
pub struct WebFile {
    source: Source,
    archive: Archive,
    /// Whether reads go through HTTP range requests.
    ranged: bool,
}

pub(crate) fn u8_array_of(value: &JsValue) -> Res<Uint8Array> {
    if let Some(buffer) = value.dyn_ref::<js_sys::ArrayBuffer>() {
        return Ok(Uint8Array::new(buffer));
    }
    if js_sys::ArrayBuffer::is_view(value) {
        // A view of the same memory (no copy): `new Uint8Array(buffer, byteOffset, byteLength)`.
        let field = |k: &str| Reflect::get(value, &k.into()).unwrap_or_default();
        let buffer = field("buffer");
        let (offset, len) = (field("byteOffset"), field("byteLength"));
        let ctor: Function = Reflect::get(&js_sys::global(), &"Uint8Array".into())
            .map_err(|e| describe(&e))?
            .unchecked_into();
        let args = Array::of3(&buffer, &offset, &len);
        return Reflect::construct(&ctor, &args)
            .map(|v| v.unchecked_into())
            .map_err(|e| describe(&e));
    }
    Err("expected an ArrayBuffer or a typed array".into())
}

pub(crate) fn byte_length(value: &JsValue) -> u64 {
    Reflect::get(value, &"byteLength".into())
        .ok()
        .and_then(|v| v.as_f64())
        .unwrap_or(0.0) as u64
}

impl WebFile {
    /// Reads the header of a file of `len` bytes whose first bytes are `first`, and parses it.
    async fn open(source: Source, len: u64, mut head: Vec<u8>, ranged: bool) -> Res<WebFile> {
        let prefix: [u8; 8] = head
            .get(..8)
            .and_then(|p| p.try_into().ok())
            .ok_or("file too short to be safetensors")?;
        let head_len = Archive::header_len(&prefix, len).map_err(lib_error)?;
        if (head.len() as u64) < head_len {
            let rest = source.read(head.len() as u64..head_len).await?;
            head.extend_from_slice(&rest);
        }
        head.truncate(head_len as usize);
        let archive = Archive::parse(&head, len).map_err(lib_error)?;
        Ok(WebFile {
            source,
            archive,
            ranged,
        })
    }

    async fn from_source(source: Source, len: u64) -> Res<WebFile> {
        let first = source.read(0..len.min(FIRST_READ)).await?;
        Self::open(source, len, first, false).await
    }

    fn find(&self, name: &str) -> Res<&ArchiveTensor> {
        self.archive
            .tensor(name)
            .ok_or_else(|| format!("no tensor named '{name}' in this file"))
    }

    async fn stored(&self, t: &ArchiveTensor) -> Res<Vec<u8>> {
        self.source
            .read(t.stored.clone())
            .await
            .map_err(|e| format!("tensor '{}': {e}", t.index.name))
    }
}

/// `bytes` rounded up to a whole u32 word (GPU copies and writes are in words).
fn align4(bytes: u64) -> u64 {
    bytes.div_ceil(4) * 4
}

fn encoding_name(e: Encoding) -> &'static str {
    match e {
        Encoding::Rans => "rans",
        Encoding::Raw => "raw",
    }
}

/// The plain-object description of a tensor.
fn tensor_info(t: &ArchiveTensor) -> Object {
    let i = &t.index;
    let stored = t.stored.end - t.stored.start;
    let shape: Array = i.shape.iter().map(|&d| number(d)).collect();
    let ratio = if i.bytes == 0 {
        JsValue::NULL
    } else {
        JsValue::from_f64(stored as f64 / i.bytes as f64)
    };
    let entropy: Array = i
        .entropy_millibits
        .iter()
        .map(|&m| JsValue::from_f64(m as f64 / 1000.0))
        .collect();
    object(&[
        ("name", i.name.as_str().into()),
        ("dtype", i.dtype.as_str().into()),
        ("shape", shape.into()),
        ("encoding", encoding_name(i.encoding).into()),
        ("bytes", number(i.bytes)),
        ("storedBytes", number(stored)),
        ("storedOffset", number(t.stored.start)),
        ("ratio", ratio),
        ("storedCrc32c", i.stored_crc32c.into()),
        ("decodedCrc32c", i.decoded_crc32c.into()),
        ("entropyBits", entropy.into()),
    ])
}

/// Decodes one tensor from its stored bytes into a new buffer on the decoder's device, both
/// checksums checked by the library's GPU tensor decode.
async fn decode_to_buffer(
    gpu: &GpuDecoder,
    t: &TensorIndex,
    stored: &[u8],
    usage: wgpu::BufferUsages,
) -> Res<wgpu::Buffer> {
    let device = gpu.device();
    let what = format!(
        "tensor '{}': creating its GPU buffer",
        t.name.escape_debug()
    );
    let (buffer, errors) = sync::capture(device, what, || {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(&t.name),
            size: gpu::tensor_output_len(t).max(4),
            usage: usage | BASE_USAGE,
            mapped_at_creation: false,
        })
    });
    if let Err(e) = errors.await {
        buffer.destroy();
        return Err(lib_error(e));
    }
    let target = OutputTarget {
        buffer: &buffer,
        offset: 0,
    };
    if let Err(e) = gpu.decode_tensors_into(&[(t, stored, target)]).await {
        // Never handed to the page: free it now (dropping it would not).
        buffer.destroy();
        return Err(lib_error(e));
    }
    Ok(buffer)
}

/// Decodes one tensor into wasm memory, checking both checksums.
async fn decode_to_host(gpu: &GpuDecoder, t: &TensorIndex, stored: &[u8]) -> Res<Vec<u8>> {
    let mut out = gpu
        .decode_tensors(&[(t, stored)])
        .await
        .map_err(lib_error)?;
    Ok(out.remove(0))
}

/// Copies the first `len` bytes of `buffer` back to wasm memory.
async fn read_buffer(gpu: &GpuDecoder, buffer: &wgpu::Buffer, len: u64) -> Res<Vec<u8>> {
    let size = align4(len).max(4);
    let device = gpu.device();
    let (readback, errors) = sync::capture(device, "reading a decoded buffer back", || {
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("exprans readback"),
            size,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        let mut encoder = device.create_command_encoder(&Default::default());
        encoder.copy_buffer_to_buffer(buffer, 0, &readback, 0, size);
        gpu.queue().submit([encoder.finish()]);
        readback
    });
    let read = match errors.await {
        Ok(()) => sync::read(device, &readback).await,
        Err(e) => Err(e),
    };
    readback.destroy();
    let mut bytes = read.map_err(lib_error)?;
    bytes.truncate(len as usize);
    Ok(bytes)
}

/// A typed array over a copy of `bytes`, of the element type of `dtype` (`Uint16Array` for
/// BF16/F16 bits, `Float32Array` for F32, `BigInt64Array` for I64, ...; `Uint8Array` for dtypes
/// without a JavaScript counterpart).
fn typed_values(dtype: &str, bytes: &[u8]) -> (Uint8Array, JsValue) {
    let raw = Uint8Array::new_with_length(bytes.len() as u32);
    raw.copy_from(bytes);
    let buffer = raw.buffer();
    let (ctor, size) = match dtype {
        "BF16" | "F16" | "U16" => ("Uint16Array", 2),
        "I16" => ("Int16Array", 2),
        "F32" => ("Float32Array", 4),
        "I32" => ("Int32Array", 4),
        "U32" => ("Uint32Array", 4),
        "F64" => ("Float64Array", 8),
        "I64" => ("BigInt64Array", 8),
        "U64" => ("BigUint64Array", 8),
        "I8" => ("Int8Array", 1),
        _ => ("Uint8Array", 1),
    };
    if ctor == "Uint8Array" || !bytes.len().is_multiple_of(size) {
        return (raw.clone(), raw.into());
    }
    let values = Reflect::get(&js_sys::global(), &ctor.into())
        .ok()
        .and_then(|c| c.dyn_into::<Function>().ok())
        .and_then(|c| {
            let len = JsValue::from_f64((bytes.len() / size) as f64);
            Reflect::construct(&c, &Array::of3(&buffer, &0.into(), &len)).ok()
        })
        .unwrap_or_else(|| raw.clone().into());
    (raw, values)
}

impl WebFile {
    /// Reads, decodes and optionally verifies one tensor into a buffer; errors name the tensor.
    /// Returns the description handed to the page and the buffer (the page's to destroy); on
    /// failure no buffer is left behind.
    async fn decode_one_to_buffer(
        &self,
        gpu: &GpuDecoder,
        t: &ArchiveTensor,
        usage: wgpu::BufferUsages,
        verify: bool,
    ) -> Res<(Object, wgpu::Buffer)> {
        let t0 = now_ms();
        let stored = self.stored(t).await?;
        let t1 = now_ms();
        let buffer = decode_to_buffer(gpu, &t.index, &stored, usage).await?;
        drop(stored);
        let t2 = now_ms();
        let info = tensor_info(t);
        set(&info, "ok", true);
        set(
            &info,
            "buffer",
            buffer
                .as_webgpu()
                .map_or(JsValue::NULL, |b| b.clone().into()),
        );
        set(&info, "bufferSize", number(buffer.size()));
        set(&info, "readMs", t1 - t0);
        set(&info, "decodeMs", t2 - t1);
        if verify {
            let checked = match read_buffer(gpu, &buffer, t.index.bytes).await {
                // The decoded checksum was checked by the decode; this re-reads the buffer.
                Ok(bytes) if bytes.len() as u64 >= t.index.bytes => Ok(()),
                Ok(_) => Err("reading the buffer back gave too few bytes".to_string()),
                Err(e) => Err(e),
            };
            if let Err(e) = checked {
                buffer.destroy();
                return Err(e);
            }
            set(&info, "verified", true);
            set(&info, "verifyMs", now_ms() - t2);
        }
        // Dropping the wgpu handle leaves the GPUBuffer alive (wgpu's WebGPU backend never
        // destroys it on drop): the page owns it now.
        Ok((info, buffer))
    }
}

#[wasm_bindgen(js_class = ExpransFile)]
impl WebFile {
    /// Opens a file held in memory: an `ArrayBuffer` or a typed array (not copied; each tensor's
    /// bytes are copied into wasm memory only while it is decoded).
    #[wasm_bindgen(js_name = fromBytes)]
    pub async fn from_bytes(bytes: JsValue) -> Result<WebFile, JsError> {
        let array = u8_array_of(&bytes).map_err(js_error)?;
        let len = byte_length(&array);
        Self::from_source(Source::Bytes(array), len)
            .await
            .map_err(js_error)
    }

    /// Opens a `Blob` or `File` (e.g. picked with `<input type="file">`), reading only the header
    /// now and each tensor when it is decoded.
    #[wasm_bindgen(js_name = fromBlob)]
    pub async fn from_blob(blob: web_sys::Blob) -> Result<WebFile, JsError> {
        let len = blob.size() as u64;
        Self::from_source(Source::Blob(blob), len)
            .await
            .map_err(js_error)
    }

    /// Opens a file by URL with HTTP range requests: the header now (one request of 64 KiB, and
    /// a second one if the header is longer), then each tensor's byte range when it is decoded.
    /// A server that ignores `Range` and answers 200 gives the whole file in the first answer,
    /// which is then kept in memory.
    #[wasm_bindgen(js_name = fromUrl)]
    pub async fn from_url(url: String) -> Result<WebFile, JsError> {
        let answer = fetch_range(&url, &(0..FIRST_READ))
            .await
            .map_err(js_error)?;
        let file = match answer.range {
            Some(range) => {
                if range.start != 0 {
                    return Err(js_error(format!(
                        "{url}: asked for the first bytes, the server sent bytes {}..{}",
                        range.start, range.end
                    )));
                }
                Self::open(Source::Url(url), range.total, answer.body.to_vec(), true).await
            }
            // The server ignored Range: the whole file is in this answer; keep it in JavaScript
            // memory and read it like an ArrayBuffer.
            None => {
                let len = byte_length(&answer.body);
                Self::from_source(Source::Bytes(answer.body), len).await
            }
        };
        file.map_err(js_error)
    }

    /// Every tensor, in file order: `{name, dtype, shape, encoding ("rans" or "raw"), bytes
    /// (decoded), storedBytes, storedOffset, ratio (stored / decoded; null when empty),
    /// storedCrc32c, decodedCrc32c, entropyBits}`.
    #[wasm_bindgen(getter)]
    pub fn tensors(&self) -> Array {
        self.archive
            .tensors
            .iter()
            .map(|t| JsValue::from(tensor_info(t)))
            .collect()
    }

    /// Size of this (compressed) file in bytes.
    #[wasm_bindgen(getter, js_name = fileLen)]
    pub fn file_len(&self) -> f64 {
        self.archive.file_len() as f64
    }

    /// Size of the original (decompressed) file in bytes.
    #[wasm_bindgen(getter, js_name = originalLen)]
    pub fn original_len(&self) -> f64 {
        self.archive.original_len() as f64
    }

    /// `"bytes"`, `"blob"` or `"url"`: where tensor bytes are read from.
    #[wasm_bindgen(getter)]
    pub fn source(&self) -> String {
        self.source.kind().to_string()
    }

    /// Whether tensors are fetched with HTTP range requests (false when opened from memory, a
    /// blob, or a server that ignored the Range header).
    #[wasm_bindgen(getter, js_name = rangeRequests)]
    pub fn range_requests(&self) -> bool {
        self.ranged
    }

    /// Decodes one tensor into a new `GPUBuffer` on `decoder`'s device. Options: `usage`
    /// (GPUBufferUsage flags added to STORAGE | COPY_SRC | COPY_DST), `verify` (bool, default
    /// true: read the buffer back and check the decoded checksum). Resolves to the tensor's
    /// description plus `{ok: true, buffer, bufferSize, readMs, decodeMs, verified?, verifyMs?}`;
    /// `buffer` holds the decoded bytes from offset 0 (its size is rounded up to 4 bytes, and
    /// is at least 4). The page owns the buffer (call `destroy()` when done with it).
    #[wasm_bindgen(js_name = decodeToBuffer)]
    pub async fn decode_to_buffer(
        &self,
        decoder: &WebDecoder,
        name: String,
        options: Option<Object>,
    ) -> Result<Object, JsError> {
        let t = self.find(&name).map_err(js_error)?;
        let usage = buffer_usage(options.as_ref()).map_err(js_error)?;
        let verify = opt_bool(options.as_ref(), "verify", true).map_err(js_error)?;
        self.decode_one_to_buffer(&decoder.gpu, t, usage, verify)
            .await
            .map(|(info, _)| info)
            .map_err(js_error)
    }

    /// Decodes every tensor, one after the other (each is read, decoded and released before
    /// the next, so a file larger than wasm memory decodes onto the GPU). Options: those of
    /// `decodeToBuffer`, plus `onTensor` (called with each result as it is ready) and
    /// `stopOnError` (default true: reject on the first failure; false: a failed tensor gives
    /// `{...description, ok: false, error}` and decoding goes on). Resolves to the results in
    /// file order. When it rejects without `onTensor`, the buffers it had made are destroyed
    /// (the page never saw them); with `onTensor`, the page owns those it was given.
    #[wasm_bindgen(js_name = decodeAllToBuffers)]
    pub async fn decode_all_to_buffers(
        &self,
        decoder: &WebDecoder,
        options: Option<Object>,
    ) -> Result<Array, JsError> {
        let o = options.as_ref();
        let usage = buffer_usage(o).map_err(js_error)?;
        let verify = opt_bool(o, "verify", true).map_err(js_error)?;
        let stop = opt_bool(o, "stopOnError", true).map_err(js_error)?;
        let on_tensor = opt_function(o, "onTensor").map_err(js_error)?;
        let results = Array::new();
        let mut buffers = Vec::new();
        // Rejecting: buffers the page was never given are destroyed.
        let reject = |buffers: Vec<wgpu::Buffer>, e: String| {
            if on_tensor.is_none() {
                buffers.iter().for_each(wgpu::Buffer::destroy);
            }
            Err(js_error(e))
        };
        for t in &self.archive.tensors {
            let info = match self
                .decode_one_to_buffer(&decoder.gpu, t, usage, verify)
                .await
            {
                Ok((info, buffer)) => {
                    buffers.push(buffer);
                    info
                }
                Err(e) if !stop => {
                    let info = tensor_info(t);
                    set(&info, "ok", false);
                    set(&info, "error", e);
                    info
                }
                Err(e) => return reject(buffers, e),
            };
            if let Some(f) = &on_tensor {
                if let Err(e) = f.call1(&JsValue::NULL, &info) {
                    return reject(buffers, format!("onTensor threw: {}", describe(&e)));
                }
            }
            results.push(&info);
        }
        Ok(results)
    }

    /// Decodes one tensor on the GPU into memory, checking both checksums. Resolves to the
    /// tensor's description plus `{data: Uint8Array, values, readMs, decodeMs}` where `values`
    /// views the same bytes as the dtype's typed array (`Uint16Array` for BF16/F16 bit patterns,
    /// `Float32Array`, `BigInt64Array`, ...; `Uint8Array` for dtypes JavaScript has no array
    /// for).
    #[wasm_bindgen(js_name = decodeToArray)]
    pub async fn decode_to_array(
        &self,
        decoder: &WebDecoder,
        name: String,
    ) -> Result<Object, JsError> {
        let t = self.find(&name).map_err(js_error)?;
        let t0 = now_ms();
        let stored = self.stored(t).await.map_err(js_error)?;
        let t1 = now_ms();
        let out = decode_to_host(&decoder.gpu, &t.index, &stored)
            .await
            .map_err(js_error)?;
        let t2 = now_ms();
        let (data, values) = typed_values(&t.index.dtype, &out);
        let info = tensor_info(t);
        set(&info, "data", data);
        set(&info, "values", values);
        set(&info, "readMs", t1 - t0);
        set(&info, "decodeMs", t2 - t1);
        Ok(info)
    }

    /// Decodes every tensor on the GPU into memory, one at a time, and checks both checksums of
    /// each. Resolves to `{ok, tensors: [{name, ok, error?}]}`; never rejects for a damaged
    /// tensor.
    pub async fn verify(&self, decoder: &WebDecoder) -> Object {
        let tensors = Array::new();
        let mut all_ok = true;
        for t in &self.archive.tensors {
            let result = match self.stored(t).await {
                Ok(stored) => decode_to_host(&decoder.gpu, &t.index, &stored)
                    .await
                    .map(drop),
                Err(e) => Err(e),
            };
            let entry = object(&[("name", t.index.name.as_str().into())]);
            set(&entry, "ok", result.is_ok());
            if let Err(e) = result {
                all_ok = false;
                set(&entry, "error", e);
            }
            tensors.push(&entry);
        }
        object(&[("ok", all_ok.into()), ("tensors", tensors.into())])
    }
}
