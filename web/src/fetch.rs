//! Whole-file downloads with `fetch`: text, bytes streamed into wasm memory with progress, and
//! sizes from `HEAD` requests (for a progress bar's total before the download starts); and the
//! `onProgress` callbacks of the model loaders.

use js_sys::{Function, Reflect, Uint8Array};
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::JsFuture;

use crate::api::{describe, fetch_request, object, Res};

/// A page's `onProgress` callback (or none): each report is one plain object `{phase, ...}`.
pub(crate) struct Progress(pub(crate) Option<Function>);

impl Progress {
    /// Calls the callback with `{phase, ...props}`; an exception it throws fails the load.
    pub(crate) fn report(&self, phase: &str, props: &[(&str, JsValue)]) -> Res<()> {
        let Some(f) = &self.0 else { return Ok(()) };
        let o = object(&[("phase", phase.into())]);
        for (k, v) in props {
            Reflect::set(&o, &(*k).into(), v).expect("setting a property of a new object");
        }
        f.call1(&JsValue::NULL, &o)
            .map(drop)
            .map_err(|e| format!("onProgress threw: {}", describe(&e)))
    }
}

/// Bytes between two progress reports of a download (and its last chunk).
const PROGRESS_STEP: u64 = 1 << 20;

fn request(url: &str, method: &str) -> Res<web_sys::Request> {
    let init = web_sys::RequestInit::new();
    init.set_method(method);
    web_sys::Request::new_with_str_and_init(url, &init)
        .map_err(|e| format!("{url}: {}", describe(&e)))
}

async fn send(url: &str, method: &str) -> Res<web_sys::Response> {
    let response: web_sys::Response = JsFuture::from(fetch_request(&request(url, method)?))
        .await
        .map_err(|e| format!("{url}: fetch failed: {}", describe(&e)))?
        .unchecked_into();
    Ok(response)
}

/// The answer to a GET of `url`; an error unless it is 2xx. With `optional`, a 404 is `None`.
async fn get_ok(url: &str, optional: bool) -> Res<Option<web_sys::Response>> {
    let response = send(url, "GET").await?;
    if optional && response.status() == 404 {
        return Ok(None);
    }
    if !response.ok() {
        return Err(format!(
            "{url}: HTTP {} {}",
            response.status(),
            response.status_text()
        ));
    }
    Ok(Some(response))
}

/// The `Content-Length` of `response`, when it has a usable one.
fn content_length(response: &web_sys::Response) -> Option<u64> {
    let headers = response.headers();
    // A compressed transfer's length is not the body's.
    if headers
        .get("Content-Encoding")
        .ok()
        .flatten()
        .is_some_and(|e| !e.eq_ignore_ascii_case("identity"))
    {
        return None;
    }
    headers
        .get("Content-Length")
        .ok()
        .flatten()
        .and_then(|v| v.trim().parse().ok())
}

/// What a `HEAD` request says of `url`: `None` for a 404, else its length when the server
/// gives one.
pub(crate) async fn head(url: &str) -> Res<Option<Option<u64>>> {
    let response = send(url, "HEAD").await?;
    if response.status() == 404 {
        return Ok(None);
    }
    if !response.ok() {
        return Err(format!(
            "{url}: HTTP {} {}",
            response.status(),
            response.status_text()
        ));
    }
    Ok(Some(content_length(&response)))
}

async fn text_of(url: &str, response: web_sys::Response) -> Res<String> {
    let body = response.text().map_err(|e| describe(&e))?;
    JsFuture::from(body)
        .await
        .map_err(|e| format!("{url}: reading the answer failed: {}", describe(&e)))?
        .as_string()
        .ok_or_else(|| format!("{url}: the answer is not text"))
}

/// The text at `url`.
pub(crate) async fn fetch_text(url: &str) -> Res<String> {
    let response = get_ok(url, false).await?.expect("not optional");
    text_of(url, response).await
}

/// The text at `url`, or `None` when the server answers 404.
pub(crate) async fn fetch_optional_text(url: &str) -> Res<Option<String>> {
    match get_ok(url, true).await? {
        Some(response) => text_of(url, response).await.map(Some),
        None => Ok(None),
    }
}

/// The bytes at `url`, read chunk by chunk from the answer's stream into wasm memory.
/// `progress(loaded, total)` is called as they arrive (at most every MiB, and at the end);
/// `total` is the answer's `Content-Length` when it has one.
pub(crate) async fn fetch_bytes(
    url: &str,
    mut progress: impl FnMut(u64, Option<u64>) -> Res<()>,
) -> Res<Vec<u8>> {
    let response = get_ok(url, false).await?.expect("not optional");
    let total = content_length(&response);
    let too_big = |n: u64| n > u32::MAX as u64;
    if total.is_some_and(too_big) {
        return Err(format!(
            "{url}: {} bytes do not fit in wasm memory",
            total.unwrap_or(0)
        ));
    }
    let failed = |e: JsValue| format!("{url}: reading the answer failed: {}", describe(&e));
    let body = Reflect::get(&response, &"body".into()).map_err(failed)?;
    let mut out: Vec<u8> = Vec::with_capacity(total.unwrap_or(0) as usize);
    progress(0, total)?;
    if body.is_null() || body.is_undefined() {
        // No stream (an empty body, or a browser without streams): the whole answer at once.
        let buffer = JsFuture::from(response.array_buffer().map_err(failed)?)
            .await
            .map_err(failed)?;
        out = Uint8Array::new(&buffer).to_vec();
        progress(out.len() as u64, total)?;
        return Ok(out);
    }
    let get_reader: Function = Reflect::get(&body, &"getReader".into())
        .map_err(failed)?
        .dyn_into()
        .map_err(|_| format!("{url}: the answer's body has no getReader"))?;
    let reader = get_reader.call0(&body).map_err(failed)?;
    let read: Function = Reflect::get(&reader, &"read".into())
        .map_err(failed)?
        .dyn_into()
        .map_err(|_| format!("{url}: the body's reader has no read"))?;
    let mut reported = 0u64;
    loop {
        let promise: js_sys::Promise = read.call0(&reader).map_err(failed)?.unchecked_into();
        let chunk = JsFuture::from(promise).await.map_err(failed)?;
        if Reflect::get(&chunk, &"done".into())
            .map_err(failed)?
            .is_truthy()
        {
            break;
        }
        let value: Uint8Array = Reflect::get(&chunk, &"value".into())
            .map_err(failed)?
            .dyn_into()
            .map_err(|_| format!("{url}: a chunk of the answer is not bytes"))?;
        let start = out.len();
        let len = value.length() as usize;
        if too_big((start + len) as u64) {
            return Err(format!("{url}: the answer does not fit in wasm memory"));
        }
        out.resize(start + len, 0);
        value.copy_to(&mut out[start..]);
        let loaded = out.len() as u64;
        if loaded - reported >= PROGRESS_STEP {
            reported = loaded;
            progress(loaded, total)?;
        }
    }
    if let Some(t) = total {
        if out.len() as u64 != t {
            return Err(format!(
                "{url}: Content-Length says {t} bytes, the answer has {}",
                out.len()
            ));
        }
    }
    progress(out.len() as u64, total)?;
    Ok(out)
}
