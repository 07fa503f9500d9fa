//! `exprans info`: what each tensor became, and where the bytes go.

use std::path::Path;

use crate::files;
use exprans::Result;
use exprans::{CodedEntry, Encoding};

/// One tensor's line.
#[derive(serde::Serialize)]
struct TensorRow {
    name: String,
    dtype: String,
    shape: Vec<u64>,
    encoding: Encoding,
    /// One letter per byte plane: `C` coded, `R` raw; empty for tensors stored verbatim.
    planes: String,
    original_bytes: u64,
    stored_bytes: u64,
    bits_per_value: f64,
    ratio: f64,
    /// Order-0 entropy bound with every byte plane coded, in bits per value.
    entropy_bound_bits: f64,
    block_size: Option<u32>,
}

/// File totals.
#[derive(Default, serde::Serialize)]
struct Totals {
    original_bytes: u64,
    compressed_bytes: u64,
    ratio: f64,
    /// Exprans header (JSON index and original header included) and its padding.
    container_header_bytes: u64,
    /// Serialized frequency tables.
    table_bytes: u64,
    /// Lane directories (state and first word of every lane).
    directory_bytes: u64,
    /// rANS words.
    word_bytes: u64,
    /// Raw planes of coded tensors.
    raw_plane_bytes: u64,
    /// Entry headers and alignment padding of coded tensors.
    entry_header_and_padding_bytes: u64,
    /// Tensors stored verbatim (padding included).
    verbatim_bytes: u64,
    /// rANS words minus the order-0 entropy of the coded planes: table quantization and flushes.
    coding_loss_bytes: f64,
    /// Order-0 bound, as a share of the original: exponent plane coded, the rest raw (tensors
    /// under 4 KiB and the original header counted verbatim).
    bound_exponent_only: f64,
    /// The same with every byte plane coded.
    bound_all_planes: f64,
}

/// Tensors smaller than this count verbatim in the entropy bounds.
const BOUND_MIN_BYTES: u64 = 4096;

/// Prints the report for an exprans file.
pub fn run(path: &Path, json: bool) -> Result<()> {
    let (data, archive) = files::open_archive(path)?;
    let mut rows = Vec::new();
    let mut totals = Totals {
        original_bytes: archive.original_len(),
        compressed_bytes: data.len() as u64,
        container_header_bytes: archive
            .tensors
            .first()
            .map_or(data.len() as u64, |t| t.stored.start),
        ..Totals::default()
    };
    let source_header_len = archive.source_header_bytes().len() as f64;
    let (mut bound_exp, mut bound_all) = (source_header_len, source_header_len);
    for t in &archive.tensors {
        let ix = &t.index;
        let stored = t.stored_in(&data).map_err(|e| e.in_file(path))?;
        let values = ix.value_count();
        let entropy: Vec<f64> = ix
            .entropy_millibits
            .iter()
            .map(|&m| m as f64 / 1000.0)
            .collect();
        if entropy.is_empty() || ix.bytes < BOUND_MIN_BYTES {
            bound_exp += ix.bytes as f64;
            bound_all += ix.bytes as f64;
        } else {
            let v = values as f64;
            bound_exp += v * (entropy[0] / 8.0) + v * (entropy.len() - 1) as f64;
            bound_all += entropy.iter().map(|h| v * h / 8.0).sum::<f64>();
        }
        let (planes, block_size) = match ix.encoding {
            Encoding::Raw => {
                totals.verbatim_bytes += stored.len() as u64;
                (String::new(), None)
            }
            Encoding::Rans => {
                let entry = CodedEntry::of_tensor(ix, stored)
                    .map_err(|e| e.in_file(path))?
                    .expect("a coded tensor has a coded entry");
                let b = entry.size_breakdown();
                totals.table_bytes += b.tables as u64;
                totals.directory_bytes += b.directory as u64;
                totals.word_bytes += b.words as u64;
                totals.raw_plane_bytes += b.raw as u64;
                totals.entry_header_and_padding_bytes += b.header_and_padding as u64;
                let planes: String = (0..entry.plane_count())
                    .map(|p| if entry.plane_is_coded(p) { 'C' } else { 'R' })
                    .collect();
                let coded_entropy: f64 = planes
                    .chars()
                    .zip(&entropy)
                    .filter(|(c, _)| *c == 'C')
                    .map(|(_, h)| h * values as f64 / 8.0)
                    .sum();
                totals.coding_loss_bytes += b.words as f64 - coded_entropy;
                (planes, Some(entry.block_size()))
            }
        };
        rows.push(TensorRow {
            name: ix.name.clone(),
            dtype: ix.dtype.clone(),
            shape: ix.shape.clone(),
            encoding: ix.encoding,
            planes,
            original_bytes: ix.bytes,
            stored_bytes: stored.len() as u64,
            bits_per_value: if values > 0 {
                stored.len() as f64 * 8.0 / values as f64
            } else {
                0.0
            },
            ratio: stored.len() as f64 / ix.bytes.max(1) as f64,
            entropy_bound_bits: entropy.iter().fold(0.0, |a, h| a + h),
            block_size,
        });
    }
    let original = totals.original_bytes.max(1) as f64;
    totals.ratio = totals.compressed_bytes as f64 / original;
    totals.bound_exponent_only = bound_exp / original;
    totals.bound_all_planes = bound_all / original;

    if json {
        let out = serde_json::json!({"file": path, "tensors": rows, "totals": totals});
        println!(
            "{}",
            serde_json::to_string_pretty(&out).expect("serializable")
        );
        return Ok(());
    }
    println!(
        "{:<48} {:<5} {:<16} {:<6} {:>8} {:>8} {:>8} {:>8}",
        "tensor", "dtype", "shape", "planes", "bits/val", "H0 bits", "ratio", "block"
    );
    for r in &rows {
        let shape = format!("{:?}", r.shape);
        let planes = if r.planes.is_empty() {
            "raw".to_string()
        } else {
            r.planes.clone()
        };
        println!(
            "{:<48} {:<5} {:<16} {:<6} {:>8.3} {:>8.3} {:>7.2}% {:>8}",
            r.name,
            r.dtype,
            shape,
            planes,
            r.bits_per_value,
            r.entropy_bound_bits,
            100.0 * r.ratio,
            r.block_size.map_or("-".to_string(), |b| b.to_string()),
        );
    }
    let t = &totals;
    println!();
    println!(
        "total: {} -> {} bytes = {:.4}% of the original ({} tensors)",
        t.original_bytes,
        t.compressed_bytes,
        100.0 * t.ratio,
        rows.len()
    );
    println!(
        "order-0 bounds: exponent coded, rest raw {:.4}%; every byte plane coded {:.4}%",
        100.0 * t.bound_exponent_only,
        100.0 * t.bound_all_planes
    );
    let pct = |b: f64| 100.0 * b / original;
    println!(
        "overheads (points of the original): container header {:.4}, tables {:.4}, lane directories {:.4}, entry headers+padding {:.4}, coding loss {:.4}",
        pct(t.container_header_bytes as f64),
        pct(t.table_bytes as f64),
        pct(t.directory_bytes as f64),
        pct(t.entry_header_and_padding_bytes as f64),
        pct(t.coding_loss_bytes),
    );
    println!(
        "bytes: words {}, raw planes {}, verbatim tensors {}",
        t.word_bytes, t.raw_plane_bytes, t.verbatim_bytes
    );
    Ok(())
}
