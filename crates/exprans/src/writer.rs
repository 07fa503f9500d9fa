//! Writing the container: [`ArchiveWriter`] turns the tensors of a safetensors file into an
//! exprans file (docs/FORMAT.md), one tensor at a time, each with its own [`EncodeOptions`].
//!
//! The header is written last, into space reserved up front (`reserve_header_len`), so the
//! writer never holds more than the tensor it is given: memory is bounded by the largest
//! tensor whatever the size of the file.

use std::io::{Seek, SeekFrom, Write};

use crate::archive::{
    header_crc, source_header_crc, Encoding, TensorIndex, FORMAT_NAME, FORMAT_VERSION, KEY_CRC,
    KEY_FORMAT, KEY_INDEX, KEY_SOURCE, KEY_SOURCE_CRC, KEY_VERSION,
};
use crate::codec::{self, EncodeOptions};
use crate::error::quote;
use crate::params::{align_up, ALIGN};
use crate::planes::PlaneLayout;
use crate::safetensors::{Header, TensorEntry};
use crate::source_header::SourceHeader;
use crate::{Error, Result};

/// One tensor as stored in the container: its index record and stored bytes.
#[derive(Clone, Debug)]
pub(crate) struct StoredTensor {
    /// Index record.
    pub index: TensorIndex,
    /// Stored bytes (a multiple of [`ALIGN`] long).
    pub stored: Vec<u8>,
}

/// Encodes one tensor of the original file: a coded entry when that is smaller, else its bytes
/// verbatim (zero-padded).
pub(crate) fn encode_tensor(
    name: &str,
    entry: &TensorEntry,
    data: &[u8],
    opts: &EncodeOptions,
) -> Result<StoredTensor> {
    let (coded, entropy) = match PlaneLayout::for_dtype(&entry.dtype) {
        Some(layout) => {
            let opts = opts
                .for_shape(&entry.shape)
                .map_err(|e| e.in_tensor(name))?;
            let (coded, stats) =
                codec::encode(layout, data, &opts).map_err(|e| e.in_tensor(name))?;
            let millibits = stats
                .iter()
                .map(|s| (s.entropy_bits * 1000.0).round() as u32)
                .collect();
            (coded, millibits)
        }
        None => (None, Vec::new()),
    };
    let (encoding, stored) = match coded {
        Some(bytes) => (Encoding::Rans, bytes),
        None => {
            let mut bytes = Vec::with_capacity(align_up(data.len()));
            bytes.extend_from_slice(data);
            bytes.resize(align_up(data.len()), 0);
            (Encoding::Raw, bytes)
        }
    };
    Ok(StoredTensor {
        index: TensorIndex {
            name: name.to_string(),
            dtype: entry.dtype.clone(),
            shape: entry.shape.clone(),
            encoding,
            bytes: data.len() as u64,
            stored_crc32c: crc32c::crc32c(&stored),
            decoded_crc32c: crc32c::crc32c(data),
            entropy_millibits: entropy,
            container_version: 2,
        },
        stored,
    })
}

/// Renders the exprans header JSON (unpadded) for tensors stored with these lengths, of an
/// original file whose header has the CRC `source_crc` ([`source_header_crc`]).
fn render_header(
    source: &SourceHeader,
    source_crc: u32,
    index: &[TensorIndex],
    stored_lens: &[u64],
) -> String {
    let index_json = serde_json::to_string(index).expect("index serializes");
    let source_json = serde_json::to_string(source).expect("source header serializes");
    let mut meta = serde_json::Map::new();
    meta.insert(KEY_FORMAT.into(), FORMAT_NAME.into());
    meta.insert(KEY_VERSION.into(), FORMAT_VERSION.into());
    meta.insert(
        KEY_CRC.into(),
        header_crc(&index_json, &source_json).to_string().into(),
    );
    meta.insert(KEY_SOURCE_CRC.into(), source_crc.to_string().into());
    meta.insert(KEY_INDEX.into(), index_json.into());
    meta.insert(KEY_SOURCE.into(), source_json.into());
    let mut root = serde_json::Map::new();
    root.insert("__metadata__".into(), meta.into());
    let mut offset = 0u64;
    for (t, &len) in index.iter().zip(stored_lens) {
        root.insert(
            t.name.clone(),
            serde_json::json!({"dtype": "U8", "shape": [len], "data_offsets": [offset, offset + len]}),
        );
        offset += len;
    }
    serde_json::to_string(&root).expect("header serializes")
}

/// A header length that fits the archive of these tensors whatever their compressed sizes and
/// checksums turn out to be, with `8 + len` a multiple of [`ALIGN`] so that data starts aligned.
///
/// It renders the header with every value not known before compression at its largest: stored
/// lengths at the verbatim size (a coded entry is kept only when smaller), CRCs at `u32::MAX`,
/// entropies at 8000 millibits, the longer encoding name, plus 9 digits of slack for the header
/// checksum. Numbers only shrink from there, so the real header always fits.
fn reserve_header_len(
    source: &SourceHeader,
    source_crc: u32,
    tensors: &[(String, TensorEntry)],
) -> usize {
    let index: Vec<TensorIndex> = tensors
        .iter()
        .map(|(name, e)| TensorIndex {
            name: name.clone(),
            dtype: e.dtype.clone(),
            shape: e.shape.clone(),
            bytes: e.data_offsets.1 - e.data_offsets.0,
            encoding: Encoding::Rans,
            stored_crc32c: u32::MAX,
            decoded_crc32c: u32::MAX,
            entropy_millibits: match PlaneLayout::for_dtype(&e.dtype) {
                Some(layout) => vec![8000; layout.plane_count()],
                None => Vec::new(),
            },
            container_version: 2,
        })
        .collect();
    let lens: Vec<u64> = index
        .iter()
        .map(|t| align_up(t.bytes as usize) as u64)
        .collect();
    let probe = render_header(source, source_crc, &index, &lens);
    align_up(8 + probe.len() + 9) - 8
}

/// Writes an exprans file: the tensors of one safetensors file, compressed one at a time.
///
/// Give it the original file's header ([`ArchiveWriter::new`]), then every tensor's bytes in the
/// original data order ([`ArchiveWriter::add_tensor`], each with its own options), then
/// [`ArchiveWriter::finish`]. Output starts at the writer's position 0; the header is written
/// last. Whole files in memory are simpler with [`crate::compress`].
///
/// ```
/// use std::io::Cursor;
/// use exprans::{Archive, ArchiveWriter, CpuDecoder, EncodeOptions};
///
/// // A safetensors file with two BF16 tensors.
/// let values: Vec<u8> = (0..2048u32)
///     .flat_map(|i| half::bf16::from_f32((i % 251) as f32 * 1e-3).to_le_bytes())
///     .collect();
/// let header = br#"{"a":{"dtype":"BF16","shape":[1024],"data_offsets":[0,2048]},"b":{"dtype":"BF16","shape":[32,32],"data_offsets":[2048,4096]}}"#;
/// let mut original = (header.len() as u64).to_le_bytes().to_vec();
/// original.extend_from_slice(header);
/// original.extend_from_slice(&values);
///
/// let mut writer = ArchiveWriter::new(Cursor::new(Vec::new()), &original, original.len() as u64)?;
/// let fast = EncodeOptions { fast: true, ..EncodeOptions::default() };
/// writer.add_tensor(&values[..2048], &EncodeOptions::default())?;
/// writer.add_tensor(&values[2048..], &fast)?;
/// let (file, _len) = writer.finish()?;
/// let file = file.into_inner();
///
/// let archive = Archive::from_bytes(&file)?;
/// let b = archive.tensor("b").unwrap();
/// let decoded = CpuDecoder::default().decode_tensor(&b.index, b.stored_in(&file)?)?;
/// assert_eq!(decoded, &values[2048..]);
/// # Ok::<(), exprans::Error>(())
/// ```
#[derive(Debug)]
pub struct ArchiveWriter<W: Write + Seek> {
    out: W,
    source: SourceHeader,
    /// `exprans.source_crc32c`: the CRC of the original header.
    source_crc: u32,
    /// The original tensors in data order; `index.len()` of them are written.
    tensors: Vec<(String, TensorEntry)>,
    reserved: usize,
    index: Vec<TensorIndex>,
    stored_lens: Vec<u64>,
}

impl<W: Write + Seek> ArchiveWriter<W> {
    /// Starts the archive of a safetensors file of `original_len` bytes given its header: its
    /// first `8 + N` bytes (the length prefix and the header JSON; more bytes are ignored).
    /// Fails on an invalid header or on a file that is already an exprans file.
    pub fn new(mut out: W, original_header: &[u8], original_len: u64) -> Result<ArchiveWriter<W>> {
        let prefix: &[u8; 8] = original_header
            .get(..8)
            .and_then(|p| p.try_into().ok())
            .ok_or_else(|| Error::invalid("file too short to be safetensors"))?;
        let json_len = Header::json_len_from_prefix(prefix, original_len)?;
        let json = original_header
            .get(8..)
            .and_then(|rest| rest.get(..json_len as usize))
            .ok_or_else(|| Error::invalid("header truncated"))?;
        let header = Header::parse(json, original_len)?;
        let format = header.metadata.as_ref().and_then(|m| m.get("format"));
        if format.map(String::as_str) == Some(FORMAT_NAME) {
            return Err(Error::invalid("already an exprans file"));
        }
        let json = std::str::from_utf8(json).expect("checked by Header::parse");
        let source = SourceHeader::new(json, &header);
        // Of the original bytes, not of their rendering: a reader that renders anything else
        // (which the encoder's own check of `source` rules out) then fails.
        let source_crc = source_header_crc(json);
        let reserved = reserve_header_len(&source, source_crc, &header.tensors);
        out.seek(SeekFrom::Start(8 + reserved as u64))?;
        Ok(ArchiveWriter {
            out,
            source,
            source_crc,
            index: Vec::with_capacity(header.tensors.len()),
            stored_lens: Vec::with_capacity(header.tensors.len()),
            tensors: header.tensors,
            reserved,
        })
    }

    /// The original tensors, in data order: the order [`ArchiveWriter::add_tensor`] takes them.
    pub fn tensors(&self) -> impl ExactSizeIterator<Item = (&str, &TensorEntry)> {
        self.tensors.iter().map(|(n, e)| (n.as_str(), e))
    }

    /// The tensor the next [`ArchiveWriter::add_tensor`] call is for, or `None` when all are
    /// written.
    pub fn next_tensor(&self) -> Option<(&str, &TensorEntry)> {
        self.tensors
            .get(self.index.len())
            .map(|(n, e)| (n.as_str(), e))
    }

    /// Compresses and writes the next tensor (in data order) from its original bytes.
    pub fn add_tensor(&mut self, data: &[u8], opts: &EncodeOptions) -> Result<()> {
        opts.validate()?;
        let (name, entry) = self.check_next(data)?;
        let stored = encode_tensor(name, entry, data, opts)?;
        self.push(stored)
    }

    /// The next tensor's name and entry, checking that `data` has its length.
    fn check_next(&self, data: &[u8]) -> Result<(&str, &TensorEntry)> {
        let (name, entry) = self
            .next_tensor()
            .ok_or_else(|| Error::invalid("every tensor of the header is already written"))?;
        let len = entry.data_offsets.1 - entry.data_offsets.0;
        if data.len() as u64 != len {
            return Err(Error::invalid(format!(
                "tensor {} has {len} bytes, {} were given",
                quote(name),
                data.len()
            )));
        }
        Ok((name, entry))
    }

    /// Writes the next tensor, already encoded by `encode_tensor` (possibly on another thread).
    pub(crate) fn push(&mut self, stored: StoredTensor) -> Result<()> {
        debug_assert_eq!(
            Some(stored.index.name.as_str()),
            self.next_tensor().map(|(n, _)| n)
        );
        self.out.write_all(&stored.stored)?;
        self.stored_lens.push(stored.stored.len() as u64);
        self.index.push(stored.index);
        Ok(())
    }

    /// Writes the header and returns the output and the archive's length. Fails if a tensor was
    /// not written.
    pub fn finish(mut self) -> Result<(W, u64)> {
        if self.index.len() != self.tensors.len() {
            return Err(Error::invalid(format!(
                "{} of {} tensors written",
                self.index.len(),
                self.tensors.len()
            )));
        }
        let json = render_header(
            &self.source,
            self.source_crc,
            &self.index,
            &self.stored_lens,
        );
        assert!(
            json.len() <= self.reserved,
            "the reserved header fits every possible header"
        );
        // Padded by hand: `format!`'s width is limited to u16::MAX, which a model of a few
        // hundred tensors' header exceeds.
        let mut padded = json;
        padded.extend(std::iter::repeat_n(' ', self.reserved - padded.len()));
        self.out.seek(SeekFrom::Start(0))?;
        self.out.write_all(&(padded.len() as u64).to_le_bytes())?;
        self.out.write_all(padded.as_bytes())?;
        self.out.flush()?;
        debug_assert_eq!((8 + padded.len()) % ALIGN, 0);
        let len = 8 + self.reserved as u64 + self.stored_lens.iter().sum::<u64>();
        Ok((self.out, len))
    }
}
