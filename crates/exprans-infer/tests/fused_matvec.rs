//! The fused decode+matvec kernel gives bit-identical results to the plain kernel over the same
//! uncompressed weights, for BF16 and F16, odd shapes, batches 1 to 8 (and tiled beyond), every
//! combination of coded planes, and entries from the real encoder; both agree with a CPU
//! reference within f32 rounding; damaged streams are reported, not hung on. (Shader validation:
//! tests/shaders.rs.)
//!
//! The GPU tests fail when no Vulkan adapter exists (install one with
//! `apt-get install -y mesa-vulkan-drivers`), unless `EXPRANS_SKIP_GPU_TESTS=1`.

use std::sync::OnceLock;

use exprans::gpu::{DecoderOptions, GpuDecoder};
use exprans::internals::{
    encode, encode_with_mask, entry_geometry, parse_entry, Geometry, PlaneLayout,
};
use exprans::{CodedEntry, EncodeOptions, Error};
use exprans_infer::matvec::{Dtype16, GpuMatrix, MatrixKernels};
use exprans_testkit::{open_gpu_or_skip, Rng};
use pollster::block_on;

// ---------------------------------------------------------------------------------------------
// Device

struct Gpu {
    decoder: GpuDecoder,
    kernels: MatrixKernels,
}

/// The Vulkan device, or `None` with EXPRANS_SKIP_GPU_TESTS=1.
fn gpu() -> Option<&'static Gpu> {
    static GPU: OnceLock<Option<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| {
        open_gpu_or_skip(|| async {
            let decoder =
                GpuDecoder::with_backends(wgpu::Backends::VULKAN, DecoderOptions::default())
                    .await?;
            let kernels = MatrixKernels::new(decoder.device()).await?;
            Ok::<_, Error>(Gpu { decoder, kernels })
        })
    })
    .as_ref()
}

// ---------------------------------------------------------------------------------------------
// Test data

fn to_bytes(dtype: Dtype16, values: &[f32]) -> Vec<u8> {
    values
        .iter()
        .flat_map(|&v| match dtype {
            Dtype16::Bf16 => half::bf16::from_f32(v).to_le_bytes(),
            Dtype16::F16 => half::f16::from_f32(v).to_le_bytes(),
        })
        .collect()
}

fn from_bytes(dtype: Dtype16, bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(2)
        .map(|b| dtype.to_f32(u16::from_le_bytes([b[0], b[1]])))
        .collect()
}

/// A coded entry of `data` with exactly the planes of `mask` coded, even where coding does not
/// pay (which `codec::encode` would refuse), following docs/FORMAT.md section 4.
fn forced_entry(data: &[u8], block_size: u32, mask: u8) -> Vec<u8> {
    encode_with_mask(PlaneLayout::Float16, data, block_size, mask).unwrap()
}

/// Block size of `rows_per_block` rows of `cols` (doubled when odd), as the compressor picks it.
fn row_block_size(rows: usize, cols: usize, rows_per_block: u32) -> u32 {
    let shape = [rows as u64, cols as u64];
    EncodeOptions {
        rows_per_block: Some(rows_per_block),
        ..EncodeOptions::default()
    }
    .for_shape(&shape)
    .unwrap()
    .block_size
}

/// A matrix case: weights, their coded entry, activations.
struct Case {
    what: String,
    dtype: Dtype16,
    rows: usize,
    cols: usize,
    data: Vec<u8>,
    entry: Vec<u8>,
    bias: Option<Vec<u8>>,
    gelu: bool,
}

impl Case {
    fn parse(&self) -> CodedEntry<'_> {
        parse_entry(
            &self.entry,
            PlaneLayout::Float16,
            (self.rows * self.cols) as u64,
        )
        .unwrap()
    }

    /// The fused and the plain matrix (whose blocks differ: the summation order does not depend
    /// on them).
    fn matrices(&self, gpu: &Gpu) -> (GpuMatrix, GpuMatrix) {
        let device = gpu.decoder.device();
        let (r, c) = (self.rows as u32, self.cols as u32);
        let fused = GpuMatrix::fused(device, &self.what, self.dtype, r, c, &self.parse()).unwrap();
        assert!(fused.is_fused());
        let plain = GpuMatrix::plain(device, &self.what, self.dtype, r, c, &self.data).unwrap();
        (fused, plain)
    }

    fn run(&self, gpu: &Gpu, m: &GpuMatrix, x: &[f32], tokens: u32) -> Result<Vec<f32>, Error> {
        let (d, q) = (gpu.decoder.device(), gpu.decoder.queue());
        block_on(
            gpu.kernels
                .matvec(d, q, m, x, tokens, self.bias.as_deref(), self.gelu),
        )
    }

    /// CPU reference in f64, and for each output the sum of |products| (the rounding scale).
    fn reference(&self, x: &[f32], tokens: usize) -> (Vec<f64>, Vec<f64>) {
        let w = from_bytes(self.dtype, &self.data);
        let bias = self.bias.as_ref().map(|b| from_bytes(self.dtype, b));
        let (mut y, mut scale) = (Vec::new(), Vec::new());
        for t in 0..tokens {
            for r in 0..self.rows {
                let products = (0..self.cols)
                    .map(|c| w[r * self.cols + c] as f64 * x[t * self.cols + c] as f64);
                let mut s: f64 = products.clone().sum();
                let mut a: f64 = products.map(f64::abs).sum();
                if let Some(b) = &bias {
                    s += b[r] as f64;
                    a += (b[r] as f64).abs();
                }
                if self.gelu {
                    s = 0.5 * s * (1.0 + exprans_infer::bert::erf(s / std::f64::consts::SQRT_2));
                }
                y.push(s);
                scale.push(a);
            }
        }
        (y, scale)
    }
}

fn case(
    dtype: Dtype16,
    rows: usize,
    cols: usize,
    rows_per_block: u32,
    mask: u8,
    seed: u64,
) -> Case {
    let mut rng = Rng::seeded(seed);
    let values: Vec<f32> = (0..rows * cols).map(|_| rng.weight()).collect();
    let data = to_bytes(dtype, &values);
    let block_size = row_block_size(rows, cols, rows_per_block);
    Case {
        what: format!("{dtype:?} {rows}x{cols} rows/block {rows_per_block} mask {mask:#b}"),
        dtype,
        rows,
        cols,
        entry: forced_entry(&data, block_size, mask),
        data,
        bias: None,
        gelu: false,
    }
}

/// Runs `c` fused and plain on `tokens` random vectors: the two must agree bit for bit, and both
/// must match the f64 reference within f32 rounding.
fn check(gpu: &Gpu, c: &Case, tokens: u32, seed: u64) {
    let mut rng = Rng::seeded(seed);
    let x: Vec<f32> = (0..tokens as usize * c.cols)
        .map(|_| rng.uniform())
        .collect();
    let (fused, plain) = c.matrices(gpu);
    let y_fused = c.run(gpu, &fused, &x, tokens).unwrap();
    let y_plain = c.run(gpu, &plain, &x, tokens).unwrap();
    assert_eq!(y_fused.len(), tokens as usize * c.rows);
    for (i, (a, b)) in y_fused.iter().zip(&y_plain).enumerate() {
        assert_eq!(
            a.to_bits(),
            b.to_bits(),
            "{}, batch {tokens}: output {i}: fused {a} plain {b}",
            c.what
        );
    }
    let (reference, scale) = c.reference(&x, tokens as usize);
    for (i, ((got, want), s)) in y_fused.iter().zip(&reference).zip(&scale).enumerate() {
        let tolerance = 1e-5 * s + 1e-6;
        assert!(
            (*got as f64 - want).abs() <= tolerance,
            "{}, batch {tokens}: output {i} is {got}, reference {want}",
            c.what
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Tests

#[test]
fn fused_and_plain_are_bit_identical_on_odd_shapes_and_batches() {
    let Some(gpu) = gpu() else { return };
    let shapes: [(usize, usize, &[u32]); 5] = [
        (1, 1, &[1]),
        (3, 7, &[1, 2]),
        (37, 129, &[1, 5]),
        (384, 1536, &[2]),
        (1536, 384, &[16]),
    ];
    let mut seed = 1;
    for dtype in [Dtype16::Bf16, Dtype16::F16] {
        for &(rows, cols, rows_per_block) in &shapes {
            for &n in rows_per_block {
                // Both planes coded (default mode), exponent only (fast mode), mantissa only.
                for mask in [0b11, 0b01, 0b10] {
                    seed += 1;
                    let c = case(dtype, rows, cols, n, mask, seed);
                    let batch = 1 + (seed % 8) as u32;
                    check(gpu, &c, batch, seed);
                }
            }
        }
    }
}

#[test]
fn every_batch_size_and_tiling_past_the_workgroup_batch() {
    let Some(gpu) = gpu() else { return };
    let c = case(Dtype16::Bf16, 37, 129, 3, 0b11, 7);
    for batch in 1..=8 {
        check(gpu, &c, batch, 100 + batch as u64);
    }
    // 19 vectors: three workgroup batches (8, 8, 3).
    check(gpu, &c, 19, 200);
}

#[test]
fn bias_and_gelu_epilogue() {
    let Some(gpu) = gpu() else { return };
    for dtype in [Dtype16::Bf16, Dtype16::F16] {
        let mut c = case(dtype, 37, 129, 2, 0b11, 11);
        let mut rng = Rng::seeded(12);
        let bias: Vec<f32> = (0..c.rows).map(|_| rng.uniform()).collect();
        c.bias = Some(to_bytes(dtype, &bias));
        c.gelu = true;
        check(gpu, &c, 5, 13);
    }
}

#[test]
fn entries_of_the_real_encoder_default_and_fast() {
    let Some(gpu) = gpu() else { return };
    for (dtype, fast, rows, cols) in [
        (Dtype16::Bf16, false, 384, 1536),
        (Dtype16::Bf16, true, 1536, 384),
        (Dtype16::F16, false, 384, 384),
    ] {
        let mut rng = Rng::seeded(rows as u64 + fast as u64);
        let values: Vec<f32> = (0..rows * cols).map(|_| rng.weight()).collect();
        let data = to_bytes(dtype, &values);
        let opts = EncodeOptions {
            block_size: row_block_size(rows, cols, 8),
            fast,
            ..EncodeOptions::default()
        };
        let entry = encode(PlaneLayout::Float16, &data, &opts)
            .unwrap()
            .0
            .expect("weights compress");
        let c = Case {
            what: format!("{dtype:?} {rows}x{cols} encoded (fast: {fast})"),
            dtype,
            rows,
            cols,
            data,
            entry,
            bias: None,
            gelu: false,
        };
        check(gpu, &c, 3, 17);
    }
}

#[test]
fn gather_rows_returns_the_rows_exactly() {
    let Some(gpu) = gpu() else { return };
    for dtype in [Dtype16::Bf16, Dtype16::F16] {
        let c = case(dtype, 37, 129, 4, 0b11, 21);
        let (fused, plain) = c.matrices(gpu);
        let ids = [0u32, 36, 5, 5, 17, 4, 3];
        let (d, q) = (gpu.decoder.device(), gpu.decoder.queue());
        let w = from_bytes(dtype, &c.data);
        for m in [&fused, &plain] {
            let rows = block_on(gpu.kernels.gather(d, q, m, &ids)).unwrap();
            for (t, &id) in ids.iter().enumerate() {
                let want = &w[id as usize * c.cols..][..c.cols];
                let got = &rows[t * c.cols..][..c.cols];
                assert!(
                    got.iter()
                        .zip(want)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{}: row {id}",
                    c.what
                );
            }
        }
        let err = block_on(gpu.kernels.gather(d, q, &fused, &[37])).unwrap_err();
        assert!(matches!(err, Error::Invalid(_)), "{err}");
    }
}

/// A damage to a coded entry that still parses: (entry, its geometry, its word count).
type Damage = fn(&mut [u8], &Geometry, usize);

#[test]
fn damaged_streams_are_reported() {
    let Some(gpu) = gpu() else { return };
    let (rows, cols) = (37, 129);
    let x = vec![0.5f32; cols];
    let damages: [(&str, Damage); 3] = [
        ("a flipped word", |e, g, words| {
            e[g.words_offset + words] ^= 0x5a
        }),
        ("another initial state", |e, g, _| {
            // The high word of lane 0's state, the entry's second word (still >= RANS_L).
            e[g.words_offset + 3] ^= 0x01
        }),
        ("lane 3 of block 0 one word later", |e, g, _| {
            // Lane 2 one word longer, lane 3 one shorter (version 2 word counts).
            let count = |e: &[u8], l: usize| {
                u16::from_le_bytes([
                    e[g.directory_offset + 2 * l],
                    e[g.directory_offset + 2 * l + 1],
                ])
            };
            let (c2, c3) = (count(e, 2) + 1, count(e, 3) - 1);
            e[g.directory_offset + 4..][..2].copy_from_slice(&c2.to_le_bytes());
            e[g.directory_offset + 6..][..2].copy_from_slice(&c3.to_le_bytes());
        }),
    ];
    for (what, damage) in damages {
        let mut c = case(Dtype16::Bf16, rows, cols, 4, 0b11, 31);
        let (g, words) = {
            let e = c.parse();
            let g = entry_geometry(&e).clone();
            let words = e.size_breakdown().words / 2;
            (g, words)
        };
        damage(&mut c.entry, &g, words);
        let Ok(entry) = parse_entry(&c.entry, PlaneLayout::Float16, (rows * cols) as u64) else {
            panic!("{what}: should still parse")
        };
        let device = gpu.decoder.device();
        let fused =
            GpuMatrix::fused(device, "damaged", c.dtype, rows as u32, cols as u32, &entry).unwrap();
        let err = c.run(gpu, &fused, &x, 1).unwrap_err();
        assert!(
            err.kind() == exprans::ErrorKind::Corrupt
                && err
                    .to_string()
                    .contains("does not decode to its final state"),
            "{what}: {err}"
        );
        // Gathering every row decodes every block, the damaged one too.
        let all_rows: Vec<u32> = (0..rows as u32).collect();
        let (d, q) = (device, gpu.decoder.queue());
        let err = block_on(gpu.kernels.gather(d, q, &fused, &all_rows)).unwrap_err();
        assert_eq!(err.kind(), exprans::ErrorKind::Corrupt, "{what}: {err}");
    }
}

#[test]
fn unaligned_blocks_are_refused() {
    let Some(gpu) = gpu() else { return };
    let mut rng = Rng::seeded(41);
    let values: Vec<f32> = (0..40 * 30).map(|_| rng.weight()).collect();
    let data = to_bytes(Dtype16::Bf16, &values);
    let entry = forced_entry(&data, 64, 0b01);
    let entry = parse_entry(&entry, PlaneLayout::Float16, 1200).unwrap();
    let err =
        GpuMatrix::fused(gpu.decoder.device(), "w", Dtype16::Bf16, 40, 30, &entry).unwrap_err();
    assert!(err.to_string().contains("whole rows per block"), "{err}");
}

#[test]
fn bias_of_the_wrong_length_is_refused() {
    let Some(gpu) = gpu() else { return };
    let (d, q) = (gpu.decoder.device(), gpu.decoder.queue());
    let m = GpuMatrix::plain(d, "w", Dtype16::Bf16, 3, 4, &[0; 2 * 3 * 4]).unwrap();
    for len in [0, 4, 8] {
        let bias = vec![0u8; len];
        let err = block_on(
            gpu.kernels
                .matvec(d, q, &m, &[1.0; 4], 1, Some(&bias), false),
        )
        .unwrap_err();
        assert!(err.to_string().contains("bias"), "{len}: {err}");
    }
    let y = block_on(
        gpu.kernels
            .matvec(d, q, &m, &[1.0; 4], 1, Some(&[0; 6]), false),
    )
    .unwrap();
    assert_eq!(y, vec![0.0; 3]);
}
