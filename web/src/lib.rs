//! exprans in the browser: the exprans decoder compiled to WebAssembly, decoding tensors on
//! WebGPU with the same WGSL kernels as on native GPUs (through wgpu's WebGPU backend).
//!
//! The JavaScript API (built with `wasm-bindgen --target web` into `web/pkg`, see
//! `web/README.md`):
//!
//! ```js
//! import init, { Decoder, ExpransFile } from "./pkg/exprans_web.js";
//! await init();
//! const decoder = await Decoder.create();          // its own WebGPU device
//! const file = await ExpransFile.fromUrl("model.exprans.safetensors");   // header only
//! for (const t of await file.decodeAllToBuffers(decoder)) {
//!   // t.buffer is a GPUBuffer on decoder.device holding the decoded tensor
//! }
//! ```
//!
//! Everything but [`http`] is compiled for `wasm32` only; natively this crate is just the HTTP
//! helpers and their tests.

#![warn(missing_docs)]

pub mod http;

#[cfg(target_arch = "wasm32")]
mod api;
#[cfg(target_arch = "wasm32")]
mod chat;
#[cfg(target_arch = "wasm32")]
mod embed;
#[cfg(target_arch = "wasm32")]
mod fetch;
#[cfg(target_arch = "wasm32")]
pub use api::{crc32c, version, webgpu_available, WebDecoder, WebFile};
#[cfg(target_arch = "wasm32")]
pub use chat::WebChatModel;
#[cfg(target_arch = "wasm32")]
pub use embed::{cosine, WebEmbeddingModel};
