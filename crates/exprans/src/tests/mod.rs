//! Tests of the library's internals (the coder, the CPU kernels, hostile entries, the GPU
//! kernels) against the reference decoder. Tests of the public API are in `tests/` and in the
//! doctests.

mod container_v2;
mod cpu_decode;
mod forge;
mod fuzz_regressions;
mod gpu_decode;
mod hostile;
mod rans_props;
mod robustness;
mod vector_encode;
