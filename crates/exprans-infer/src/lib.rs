//! Running models from compressed weights on the GPU: fused decode+matvec kernels, Llama-family
//! language models and a BERT sentence encoder (all-MiniLM-L6-v2), each with a CPU reference.
//!
//! - [`matvec`]: `y = W x` for a 16-bit weight matrix held either uncompressed
//!   ([`matvec::GpuMatrix::plain`]) or as its coded entry, decoded on the fly inside the kernel
//!   ([`matvec::GpuMatrix::fused`]; files compressed with `--rows-per-block`). Both kernels add
//!   the same products in the same order, so their outputs are bit-identical.
//! - [`tokenizer`]: Hugging Face tokenizers (BERT WordPiece, byte-level BPE, ...) from a
//!   `tokenizer.json`, and streaming detokenization of generated ids.
//! - [`chat`]: chat templates (`tokenizer_config.json`'s Jinja `chat_template`) rendered into
//!   prompts.
//! - [`llama`]: decoder-only language models of the Llama family (Llama, Mistral, Qwen2): an f32
//!   CPU reference and the GPU runtime with a KV cache, weights plain, decoded once or fused;
//!   [`llama::generate`] with greedy or seeded sampling ([`sample`]).
//! - [`model_files`]: a model directory's files (configs, tokenizer, shards).
//! - [`bert`]: the encoder on the CPU (f32 reference) and on the GPU ([`bert::GpuBert`]) with
//!   weights held plain, decoded once on the GPU, or fused.
//! - [`shaders`]: the WGSL modules, assembled as they are compiled.

pub mod bert;
pub mod chat;
pub mod checkpoint;
pub mod context;
pub mod llama;
pub mod matvec;
pub mod model_files;
mod ops;
pub mod sample;
pub mod shaders;
pub mod tokenizer;
mod weights;
pub use weights::{best_mode, WeightMode};
