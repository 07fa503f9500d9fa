//! Writes a language-model directory with SmolLM2-135M's sizes and random BF16 weights (a
//! word-level tokenizer of 300 words), for speed measurements of `exprans generate` where the
//! real model cannot be fetched (the device machine has no network):
//!
//!   cargo run --release -p exprans-cli --example synthetic_lm -- DIR
//!
//! Its tokens mean nothing; its shapes, kernels and memory are SmolLM2's.

fn main() {
    let Some(dir) = std::env::args_os().nth(1) else {
        eprintln!("usage: synthetic_lm DIR");
        std::process::exit(2);
    };
    let model = exprans_testkit::TinyLm {
        architecture: "LlamaForCausalLM",
        tied: true,
        seed: 1,
        f16: false,
        shape: exprans_testkit::LmShape::SMOLLM2_135M,
    };
    model.write(std::path::Path::new(&dir));
}
