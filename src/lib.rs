//! exprans: lossless compression of neural-network weights with interleaved rANS, decoded on the
//! CPU or on any GPU through WGSL compute shaders.

#![warn(missing_docs)]

pub mod codec;
pub mod cpu;
mod error;
pub mod params;
pub mod planes;
pub mod rans;
pub mod safetensors;

pub use error::{Error, Result};
