//! The Llama-family model on the CPU in plain f32: the reference the GPU runs are compared with.

use std::collections::HashMap;

use exprans::{Error, Result};

use super::{CausalLm, LlamaConfig, EMBEDDING, FINAL_NORM};
use crate::checkpoint::{values_f32, TensorSource};

/// The model on the CPU, weights as f32, with a KV cache of `context` positions.
#[derive(Clone, Debug)]
pub struct CpuLlama {
    config: LlamaConfig,
    tensors: HashMap<String, Vec<f32>>,
    lm_head: &'static str,
    context: usize,
    /// `[cos, sin]` per position and frequency ([`LlamaConfig::rope_table`]).
    rope: Vec<f32>,
    /// Per layer: keys and values, `[position][kv_width]`.
    keys: Vec<Vec<f32>>,
    values: Vec<Vec<f32>>,
}

/// `y[r] = W[r] . x (+ b[r])` for `W` `[rows][x.len()]`; 8 partial sums per row.
fn linear(w: &[f32], x: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let cols = x.len();
    w.chunks_exact(cols)
        .enumerate()
        .map(|(r, row)| {
            let mut acc = [0f32; 8];
            let (rows8, rest) = row.split_at(cols / 8 * 8);
            for (wc, xc) in rows8.chunks_exact(8).zip(x.chunks_exact(8)) {
                for k in 0..8 {
                    acc[k] += wc[k] * xc[k];
                }
            }
            let mut s: f32 = acc.iter().sum();
            for (a, b) in rest.iter().zip(&x[cols / 8 * 8..]) {
                s += a * b;
            }
            s + bias.map_or(0.0, |b| b[r])
        })
        .collect()
}

/// `x / rms(x) * g`.
fn rms_norm(x: &[f32], g: &[f32], eps: f32) -> Vec<f32> {
    let ms = x.iter().map(|v| (*v as f64) * (*v as f64)).sum::<f64>() / x.len() as f64;
    let inv = 1.0 / (ms as f32 + eps).sqrt();
    x.iter().zip(g).map(|(v, g)| v * inv * g).collect()
}

/// Rotates each head of `x` (`[heads][head_dim]`, halves paired as `rotate_half` does) by the
/// angles of position `pos`.
fn rope(x: &mut [f32], head_dim: usize, table: &[f32], pos: usize) {
    let half = head_dim / 2;
    let angles = &table[pos * head_dim..(pos + 1) * head_dim];
    for head in x.chunks_exact_mut(head_dim) {
        for i in 0..half {
            let (cos, sin) = (angles[2 * i], angles[2 * i + 1]);
            let (a, b) = (head[i], head[i + half]);
            head[i] = a * cos - b * sin;
            head[i + half] = b * cos + a * sin;
        }
    }
}

impl CpuLlama {
    /// Reads the model's tensors from `source` (compressed ones are decoded on the CPU), with a
    /// cache of `context` positions (at most the model's).
    pub fn load<'a>(
        config: &LlamaConfig,
        source: &impl TensorSource<'a>,
        context: usize,
    ) -> Result<CpuLlama> {
        let context = context.min(config.max_positions);
        let mut tensors = HashMap::new();
        for (name, info) in config.checked_tensors(source)? {
            let bytes = source.checkpoint_of(&name)?.bytes(&name)?;
            tensors.insert(name.clone(), values_f32(&name, &info.dtype, &bytes)?);
        }
        Ok(CpuLlama {
            lm_head: config.lm_head_name(source),
            rope: config.rope_table(context),
            keys: vec![Vec::new(); config.layers],
            values: vec![Vec::new(); config.layers],
            config: config.clone(),
            tensors,
            context,
        })
    }

    fn t(&self, name: &str) -> &[f32] {
        &self.tensors[name]
    }

    fn layer(&self, l: usize, part: &str) -> Option<&[f32]> {
        self.tensors
            .get(&format!("model.layers.{l}.{part}"))
            .map(Vec::as_slice)
    }

    fn proj(&self, l: usize, name: &str, x: &[f32]) -> Vec<f32> {
        let w = self.layer(l, &format!("{name}.weight")).expect("checked");
        linear(w, x, self.layer(l, &format!("{name}.bias")))
    }

    /// One token at position `pos` (the cache holds `0 .. pos`); returns the final hidden
    /// state.
    fn step(&mut self, id: u32, pos: usize) -> Vec<f32> {
        let c = &self.config;
        let (hs, hd, kvw) = (c.hidden, c.head_dim, c.kv_width());
        let group = c.heads / c.kv_heads;
        let id = id as usize;
        let mut x = self.t(EMBEDDING)[id * hs..(id + 1) * hs].to_vec();
        for l in 0..c.layers {
            let n = rms_norm(
                &x,
                self.layer(l, "input_layernorm.weight").unwrap(),
                c.rms_norm_eps,
            );
            let mut q = self.proj(l, "self_attn.q_proj", &n);
            let mut k = self.proj(l, "self_attn.k_proj", &n);
            let v = self.proj(l, "self_attn.v_proj", &n);
            rope(&mut q, hd, &self.rope, pos);
            rope(&mut k, hd, &self.rope, pos);
            self.keys[l].truncate(pos * kvw);
            self.values[l].truncate(pos * kvw);
            self.keys[l].extend_from_slice(&k);
            self.values[l].extend_from_slice(&v);
            let (keys, values) = (&self.keys[l], &self.values[l]);
            let scale = 1.0 / (hd as f32).sqrt();
            let mut att = vec![0f32; c.q_width()];
            for h in 0..c.heads {
                let g = h / group;
                let qh = &q[h * hd..(h + 1) * hd];
                let scores: Vec<f32> = (0..=pos)
                    .map(|j| {
                        let kj = &keys[j * kvw + g * hd..j * kvw + (g + 1) * hd];
                        qh.iter().zip(kj).map(|(a, b)| a * b).sum::<f32>() * scale
                    })
                    .collect();
                let top = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
                let e: Vec<f32> = scores.iter().map(|s| (s - top).exp()).collect();
                let z: f32 = e.iter().sum();
                let out = &mut att[h * hd..(h + 1) * hd];
                for (j, p) in e.iter().enumerate() {
                    let vj = &values[j * kvw + g * hd..j * kvw + (g + 1) * hd];
                    for (o, v) in out.iter_mut().zip(vj) {
                        *o += p / z * v;
                    }
                }
            }
            let o = self.proj(l, "self_attn.o_proj", &att);
            x.iter_mut().zip(&o).for_each(|(x, o)| *x += o);
            let n = rms_norm(
                &x,
                self.layer(l, "post_attention_layernorm.weight").unwrap(),
                c.rms_norm_eps,
            );
            let gate = self.proj(l, "mlp.gate_proj", &n);
            let up = self.proj(l, "mlp.up_proj", &n);
            let act: Vec<f32> = gate
                .iter()
                .zip(&up)
                .map(|(g, u)| g / (1.0 + (-g).exp()) * u)
                .collect();
            let down = self.proj(l, "mlp.down_proj", &act);
            x.iter_mut().zip(&down).for_each(|(x, d)| *x += d);
        }
        x
    }
}

impl CausalLm for CpuLlama {
    fn context(&self) -> usize {
        self.context
    }

    fn vocab(&self) -> usize {
        self.config.vocab
    }

    async fn forward(&mut self, ids: &[u32], pos0: usize) -> Result<Vec<f32>> {
        if ids.is_empty() || pos0 + ids.len() > self.context {
            return Err(Error::invalid(format!(
                "{} tokens at position {pos0} do not fit the context of {}",
                ids.len(),
                self.context
            )));
        }
        if let Some(bad) = ids.iter().find(|&&i| i as usize >= self.config.vocab) {
            return Err(Error::invalid(format!(
                "token id {bad} is outside the vocabulary"
            )));
        }
        let mut x = Vec::new();
        for (i, &id) in ids.iter().enumerate() {
            x = self.step(id, pos0 + i);
        }
        let n = rms_norm(&x, self.t(FINAL_NORM), self.config.rms_norm_eps);
        Ok(linear(self.t(self.lm_head), &n, None))
    }
}
