//! Makes an FP8 test model from a real one: every F32/BF16/F16 tensor of a safetensors file
//! rounded to F8_E4M3 (round to nearest, ties to even, saturating at ±448, as the OCP FP8
//! "E4M3FN" format and `torch.float8_e4m3fn` do), other tensors copied. The result is what
//! FP8-quantized checkpoints ship (without their scales), for measuring how much exprans saves
//! on one-byte dtypes.
//!
//! ```text
//! cargo run --release -p exprans --example to_fp8 -- IN.safetensors OUT.safetensors
//! ```

use std::collections::BTreeMap;

use exprans::safetensors::Header;

/// F8_E4M3 (E4M3FN: 4 exponent bits of bias 7, 3 mantissa bits, no infinities, 0x7f/0xff NaN)
/// nearest to `x`, ties to even; magnitudes past the largest finite value (448) saturate.
fn f32_to_e4m3(x: f32) -> u8 {
    let sign = ((x.to_bits() >> 24) & 0x80) as u8;
    let a = x.abs();
    if a.is_nan() {
        return sign | 0x7f;
    }
    if a >= 464.0 {
        // Halfway between 448 and the next step (480) and above: saturate.
        return sign | 0x7e;
    }
    // Subnormals are multiples of 2^-9; normals have 3 mantissa bits below 2^e.
    let e = a.log2().floor().max(-6.0) as i32;
    let step = (2.0f32).powi(e - 3);
    let q = (a / step).round_ties_even(); // in 0..=16 (16 carries into the next binade)
    let (mut e, mut q) = (e, q as u32);
    if q == 16 {
        e += 1;
        q = 8;
    }
    if e == -6 && q < 8 {
        return sign | q as u8; // subnormal (or zero)
    }
    let bits = (((e + 7) as u32) << 3 | (q - 8)) as u8;
    sign | bits.min(0x7e)
}

fn to_f32(dtype: &str, bytes: &[u8]) -> Option<Vec<f32>> {
    Some(match dtype {
        "F32" => bytes
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        "BF16" => bytes
            .chunks_exact(2)
            .map(|c| half::bf16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        "F16" => bytes
            .chunks_exact(2)
            .map(|c| half::f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect(),
        _ => return None,
    })
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else {
        eprintln!("usage: to_fp8 IN.safetensors OUT.safetensors");
        std::process::exit(2);
    };
    let file = std::fs::read(input)?;
    let json_len = Header::json_len_from_prefix(file[..8].try_into()?, file.len() as u64)?;
    let header = Header::parse(&file[8..8 + json_len as usize], file.len() as u64)?;
    let data = &file[header.data_start() as usize..];
    let mut entries = serde_json::Map::new();
    if let Some(meta) = &header.metadata {
        let meta: BTreeMap<_, _> = meta.iter().collect();
        entries.insert("__metadata__".into(), serde_json::to_value(meta)?);
    }
    let mut body = Vec::new();
    for (name, t) in &header.tensors {
        let bytes = &data[t.data_offsets.0 as usize..t.data_offsets.1 as usize];
        let (dtype, out) = match to_f32(&t.dtype, bytes) {
            Some(values) => (
                "F8_E4M3".to_string(),
                values.into_iter().map(f32_to_e4m3).collect(),
            ),
            None => (t.dtype.clone(), bytes.to_vec()),
        };
        let begin = body.len();
        body.extend_from_slice(&out);
        entries.insert(
            name.clone(),
            serde_json::json!({"dtype": dtype, "shape": t.shape, "data_offsets": [begin, body.len()]}),
        );
    }
    let mut json = serde_json::to_string(&entries)?;
    while (8 + json.len()) % 8 != 0 {
        json.push(' ');
    }
    let mut out = (json.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(json.as_bytes());
    out.extend_from_slice(&body);
    std::fs::write(output, out)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::f32_to_e4m3;

    /// Every finite E4M3 value converts to itself; midpoints round to the even neighbour.
    #[test]
    fn round_trips_and_ties() {
        let decode = |b: u8| {
            let (s, e, m) = (b >> 7, (b >> 3) & 15, b & 7);
            let v = if e == 0 {
                m as f32 * 2f32.powi(-9)
            } else {
                (8 + m) as f32 * 2f32.powi(e as i32 - 10)
            };
            if s == 1 {
                -v
            } else {
                v
            }
        };
        for b in (0u8..=255).filter(|b| b & 0x7f != 0x7f) {
            assert_eq!(
                f32_to_e4m3(decode(b)),
                if b == 0x80 { 0x80 } else { b },
                "{b:#x}"
            );
        }
        assert_eq!(f32_to_e4m3(1.0625), 0x38, "tie 1 + 1/16 goes to 1.0 (even)");
        assert_eq!(f32_to_e4m3(1.1875), 0x3a, "tie goes to 1.25 (even)");
        assert_eq!(f32_to_e4m3(1e6), 0x7e);
        assert_eq!(f32_to_e4m3(f32::NAN), 0x7f);
    }
}
