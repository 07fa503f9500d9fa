//! The exprans header and the original-header renderer (`Archive::from_bytes`, then
//! `source_header_bytes`), and the whole `decompress` path, on arbitrary files: each input as
//! it is, and again with its checksums recomputed (`with_valid_checksums`) so that mutated
//! index and original-header records reach the semantic checks, and once more with some of
//! their numbers set to edge values (`with_edge_values`: 2^32, 2^63, 2^64 - 1, ...).
//!
//! Must hold: no panic, no abort, no unbounded allocation; a file that decompresses gives a
//! valid safetensors file listing exactly the archive's tensors, the same with every CPU
//! decoder, which `verify` then accepts.
#![no_main]

use exprans::safetensors::Header;
use exprans::{Archive, CpuDecoder};
use exprans_fuzz::{with_edge_values, with_valid_checksums, Choices, MAX_DECODED};
use libfuzzer_sys::fuzz_target;

fn check(file: &[u8]) {
    let Ok(archive) = Archive::from_bytes(file) else {
        // Every command opens the file this way first; decompress must fail the same way.
        assert!(exprans::decompress(file, CpuDecoder::Reference).is_err());
        return;
    };
    let head = archive.source_header_bytes();
    let original_len = archive.original_len();
    assert!(head.len() as u64 <= original_len);
    let json_len = u64::from_le_bytes(head[..8].try_into().unwrap());
    assert_eq!(json_len + 8, head.len() as u64);
    assert_eq!(archive.file_len(), file.len() as u64);
    for t in &archive.tensors {
        assert!(t.stored.start <= t.stored.end && t.stored.end <= file.len() as u64);
    }
    if original_len > MAX_DECODED as u64 {
        return;
    }
    let reference = exprans::decompress(file, CpuDecoder::Reference);
    let fast = exprans::decompress(file, CpuDecoder::Fast { parallel: false });
    match (&reference, &fast) {
        (Ok(a), Ok(b)) => assert!(a == b, "decoders disagree on the bytes"),
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!(
            "decoders disagree: reference {:?}, fast {:?}",
            reference.as_ref().map(Vec::len),
            fast.as_ref().map(Vec::len)
        ),
    }
    let Ok(decoded) = reference else {
        return;
    };
    assert_eq!(decoded.len() as u64, original_len);
    assert!(decoded.starts_with(&head));
    let header = Header::read(&decoded).expect("a decompressed file is valid safetensors");
    assert_eq!(header.tensors.len(), archive.tensors.len(), "tensor count");
    for ((name, t), a) in header.tensors.iter().zip(&archive.tensors) {
        assert_eq!(name, &a.index.name);
        assert_eq!(t.dtype, a.index.dtype);
        assert_eq!(t.shape, a.index.shape);
        assert_eq!(t.data_offsets.1 - t.data_offsets.0, a.index.bytes);
    }
    let mut decoder = CpuDecoder::Reference;
    let verdict = exprans::verify(file, &archive, Some(&decoded), &mut decoder, &|_| {});
    assert!(matches!(verdict, Ok(None)), "verify disagrees: {verdict:?}");
}

fuzz_target!(|data: &[u8]| {
    check(data);
    if let Some(fixed) = with_valid_checksums(data) {
        check(&fixed);
    }
    if let Some(edged) = with_edge_values(data, &mut Choices::of(data)) {
        check(&edged);
    }
});
