//! `exprans info`: what each tensor became, and where the bytes go, for an exprans file or every
//! shard of a compressed model directory.

use std::path::{Path, PathBuf};

use crate::files::{self, Expected};
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
    /// The per-tensor joint bound, in bits per value: the order-0 entropy of the top 16 bits as
    /// one symbol (the exponent and sign/mantissa bytes together), plus the other planes'
    /// order-0 entropy. What coding plane 1 by plane 0's classes approaches.
    joint_bound_bits: f64,
    block_size: Option<u32>,
}

/// Totals of a file, or of every shard of a directory. The byte counts of a directory are the
/// sums of its shards'; the ratios are recomputed from the sums ([`Totals::finish`]).
#[derive(Clone, Default, serde::Serialize)]
struct Totals {
    original_bytes: u64,
    compressed_bytes: u64,
    ratio: f64,
    /// Exprans header (JSON index and original header included) and its padding.
    container_header_bytes: u64,
    /// Serialized frequency tables.
    table_bytes: u64,
    /// Lane directories and the lanes' initial states.
    directory_bytes: u64,
    /// rANS words (the states not included).
    word_bytes: u64,
    /// Raw planes of coded tensors.
    raw_plane_bytes: u64,
    /// Entry headers and alignment padding of coded tensors.
    entry_header_and_padding_bytes: u64,
    /// Tensors stored verbatim (padding included).
    verbatim_bytes: u64,
    /// rANS words minus the entropy of the coded planes (plane 1 given plane 0 when both are
    /// coded, as the joint bound counts it): fewer context classes than exponents, table
    /// quantization and flushes.
    coding_loss_bytes: f64,
    /// Order-0 bound, as a share of the original: exponent plane coded, the rest raw (tensors
    /// under 4 KiB and the original header counted verbatim).
    bound_exponent_only: f64,
    /// The same with every byte plane coded.
    bound_all_planes: f64,
    /// The per-tensor joint bound ([`TensorRow::joint_bound_bits`]), as a share of the original.
    bound_joint16: f64,
    /// [`Totals::bound_joint16`] in bytes.
    #[serde(skip)]
    bound_joint16_bytes: f64,
    /// [`Totals::bound_exponent_only`] in bytes.
    #[serde(skip)]
    bound_exponent_only_bytes: f64,
    /// [`Totals::bound_all_planes`] in bytes.
    #[serde(skip)]
    bound_all_planes_bytes: f64,
}

impl Totals {
    /// Adds the byte counts of `other` (ratios are left for [`Totals::finish`]).
    fn add(&mut self, other: &Totals) {
        self.original_bytes += other.original_bytes;
        self.compressed_bytes += other.compressed_bytes;
        self.container_header_bytes += other.container_header_bytes;
        self.table_bytes += other.table_bytes;
        self.directory_bytes += other.directory_bytes;
        self.word_bytes += other.word_bytes;
        self.raw_plane_bytes += other.raw_plane_bytes;
        self.entry_header_and_padding_bytes += other.entry_header_and_padding_bytes;
        self.verbatim_bytes += other.verbatim_bytes;
        self.coding_loss_bytes += other.coding_loss_bytes;
        self.bound_exponent_only_bytes += other.bound_exponent_only_bytes;
        self.bound_all_planes_bytes += other.bound_all_planes_bytes;
        self.bound_joint16_bytes += other.bound_joint16_bytes;
    }

    /// Sets the ratios from the byte counts.
    fn finish(&mut self) {
        let original = self.original_bytes.max(1) as f64;
        self.ratio = self.compressed_bytes as f64 / original;
        self.bound_exponent_only = self.bound_exponent_only_bytes / original;
        self.bound_all_planes = self.bound_all_planes_bytes / original;
        self.bound_joint16 = self.bound_joint16_bytes / original;
    }
}

/// The report on one exprans file: its JSON form is `info --json` of that file.
#[derive(serde::Serialize)]
struct FileReport {
    file: PathBuf,
    tensors: Vec<TensorRow>,
    totals: Totals,
}

/// The report on a compressed model directory: every shard's, and the totals over them.
#[derive(serde::Serialize)]
struct DirReport {
    dir: PathBuf,
    shards: Vec<FileReport>,
    total: Totals,
}

/// Tensors smaller than this count verbatim in the entropy bounds.
const BOUND_MIN_BYTES: u64 = 4096;

/// Prints the report on an exprans file or a compressed model directory (a table, or JSON).
pub fn run(path: &Path, json: bool) -> Result<()> {
    files::check_input(path, Expected::Compressed)?;
    if path.is_dir() {
        let report = dir_report(path)?;
        if json {
            print_json(&report);
        } else {
            print_dir(&report);
        }
    } else {
        let report = file_report(path)?;
        if json {
            print_json(&report);
        } else {
            print_file(&report);
        }
    }
    Ok(())
}

fn print_json(report: &impl serde::Serialize) {
    println!(
        "{}",
        serde_json::to_string_pretty(report).expect("serializable")
    );
}

/// The reports on every shard of a compressed directory ([`files::model_shards`]) and their sum.
fn dir_report(dir: &Path) -> Result<DirReport> {
    let mut shards = Vec::new();
    let mut total = Totals::default();
    for rel in files::model_shards(dir)? {
        let report = file_report(&dir.join(rel))?;
        total.add(&report.totals);
        shards.push(report);
    }
    total.finish();
    Ok(DirReport {
        dir: dir.to_path_buf(),
        shards,
        total,
    })
}

/// Every tensor of an exprans file: how it is stored, and the file's totals.
fn file_report(path: &Path) -> Result<FileReport> {
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
    let mut bound_joint = source_header_len;
    let mut decoded = Vec::new();
    for t in &archive.tensors {
        let ix = &t.index;
        let stored = t.stored_in(&data).map_err(|e| e.in_file(path))?;
        let values = ix.value_count();
        let entropy: Vec<f64> = ix
            .entropy_millibits
            .iter()
            .map(|&m| m as f64 / 1000.0)
            .collect();
        // Entropy of the top 16 bits as one symbol (tensors with two planes or more).
        let top16 = if entropy.len() >= 2 {
            exprans::CpuDecoder::Fast { parallel: true }
                .decode_tensor_into(ix, stored, &mut decoded)
                .map_err(|e| e.in_file(path))?;
            Some(top16_entropy(&decoded, entropy.len()))
        } else {
            None
        };
        let joint_bits = match top16 {
            Some(h) => h + entropy[2..].iter().sum::<f64>(),
            None => entropy.iter().fold(0.0, |a, h| a + h),
        };
        if entropy.is_empty() || ix.bytes < BOUND_MIN_BYTES {
            bound_exp += ix.bytes as f64;
            bound_all += ix.bytes as f64;
            bound_joint += ix.bytes as f64;
        } else {
            let v = values as f64;
            bound_exp += v * (entropy[0] / 8.0) + v * (entropy.len() - 1) as f64;
            bound_all += entropy.iter().map(|h| v * h / 8.0).sum::<f64>();
            bound_joint += v * joint_bits / 8.0;
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
                // Plane 1 counts as H(plane 1 | plane 0) = H(top 16 bits) - H(plane 0).
                let mut bits = entropy.clone();
                if let Some(h) = top16 {
                    bits[1] = h - entropy[0];
                }
                let coded_entropy: f64 = planes
                    .chars()
                    .zip(&bits)
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
            joint_bound_bits: joint_bits,
            block_size,
        });
    }
    totals.bound_exponent_only_bytes = bound_exp;
    totals.bound_all_planes_bytes = bound_all;
    totals.bound_joint16_bytes = bound_joint;
    totals.finish();
    Ok(FileReport {
        file: path.to_path_buf(),
        tensors: rows,
        totals,
    })
}

/// Order-0 entropy in bits per value of the top 16 bits of little-endian values of `bytes_per_value`
/// bytes (2 or 4) taken as one symbol.
fn top16_entropy(data: &[u8], bytes_per_value: usize) -> f64 {
    let mut counts = vec![0u64; 1 << 16];
    for v in data.chunks_exact(bytes_per_value) {
        let hi = &v[bytes_per_value - 2..];
        counts[u16::from_le_bytes([hi[0], hi[1]]) as usize] += 1;
    }
    let n = (data.len() / bytes_per_value).max(1) as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = c as f64 / n;
            -p * p.log2()
        })
        .sum()
}

/// The table of a file's tensors, then its totals.
fn print_file(report: &FileReport) {
    println!(
        "{:<48} {:<5} {:<16} {:<6} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "tensor", "dtype", "shape", "planes", "bits/val", "H0 bits", "joint", "ratio", "block"
    );
    for r in &report.tensors {
        let shape = format!("{:?}", r.shape);
        let planes = if r.planes.is_empty() {
            "raw".to_string()
        } else {
            r.planes.clone()
        };
        println!(
            "{:<48} {:<5} {:<16} {:<6} {:>8.3} {:>8.3} {:>8.3} {:>7.2}% {:>8}",
            r.name,
            r.dtype,
            shape,
            planes,
            r.bits_per_value,
            r.entropy_bound_bits,
            r.joint_bound_bits,
            100.0 * r.ratio,
            r.block_size.map_or("-".to_string(), |b| b.to_string()),
        );
    }
    println!();
    print_totals(&report.totals, &format!("{} tensors", report.tensors.len()));
}

/// One line per shard, then the totals over all of them.
fn print_dir(report: &DirReport) {
    for shard in &report.shards {
        let name = shard.file.strip_prefix(&report.dir).unwrap_or(&shard.file);
        let t = &shard.totals;
        println!(
            "{}: {} -> {} bytes = {:.4}% of the original ({} tensors)",
            name.display(),
            t.original_bytes,
            t.compressed_bytes,
            100.0 * t.ratio,
            shard.tensors.len()
        );
    }
    println!();
    let tensors: usize = report.shards.iter().map(|s| s.tensors.len()).sum();
    print_totals(
        &report.total,
        &format!("{tensors} tensors in {} shards", report.shards.len()),
    );
    println!(
        "per tensor: exprans info {}",
        report.dir.join("SHARD").display()
    );
}

/// The total line (`what`: what it counts), the bounds, the overheads and where the bytes go.
fn print_totals(t: &Totals, what: &str) {
    println!(
        "total: {} -> {} bytes = {:.4}% of the original ({what})",
        t.original_bytes,
        t.compressed_bytes,
        100.0 * t.ratio,
    );
    println!(
        "order-0 bounds: exponent coded, rest raw {:.4}%; every byte plane coded {:.4}%; \
         per-tensor joint 16-bit {:.4}%",
        100.0 * t.bound_exponent_only,
        100.0 * t.bound_all_planes,
        100.0 * t.bound_joint16
    );
    let pct = |b: f64| 100.0 * b / t.original_bytes.max(1) as f64;
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
}
