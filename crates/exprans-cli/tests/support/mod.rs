//! Helpers shared by the CLI's test binaries (`mod support;` in each).

use exprans::{Archive, ArchiveTensor, CodedEntry, TensorIndex};

/// The largest coded tensor of an exprans file.
pub fn largest_coded(archive: &Archive) -> &ArchiveTensor {
    archive
        .tensors
        .iter()
        .filter(|t| t.index.encoding == exprans::Encoding::Rans)
        .max_by_key(|t| t.index.bytes)
        .expect("a coded tensor")
}

/// Tensor `t` of `file` with bit `bit` of rANS word byte `word_byte` flipped and its stored
/// checksum recomputed, so that only the decoders' end-of-lane check and the decoded checksum
/// can catch the damage: the damaged index and stored bytes.
pub fn damaged_behind_its_checksum(
    file: &[u8],
    t: &ArchiveTensor,
    word_byte: usize,
    bit: u8,
) -> (TensorIndex, Vec<u8>) {
    let mut stored = t.stored_in(file).unwrap().to_vec();
    let words = CodedEntry::of_tensor(&t.index, &stored)
        .unwrap()
        .expect("a coded tensor")
        .sections()
        .words;
    assert!(word_byte < words.len());
    stored[words.start + word_byte] ^= 1 << bit;
    let mut index = t.index.clone();
    index.stored_crc32c = crc32c::crc32c(&stored);
    (index, stored)
}
