//! Frozen version-1 files (tests/frozen/, made by exprans 0.1.0) must decode identically in every
//! later version. Never regenerate them: a change that breaks this test breaks users' files.

mod common;

use std::path::Path;

use common::*;
use exprans::archive::{decode_tensor, Archive, CpuDecoder};

const FROZEN: [(&str, u32); 3] = [
    ("v1-default.exprans.safetensors", 449_249_260),
    ("v1-fast.exprans.safetensors", 844_805_248),
    ("v1-block1000.exprans.safetensors", 1_031_816_585),
];
const INPUT: (&str, u32) = ("v1-input.safetensors", 286_247_232);

fn frozen(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/frozen")
        .join(name)
}

fn read_checked(name: &str, crc: u32) -> Vec<u8> {
    let bytes = std::fs::read(frozen(name)).unwrap();
    assert_eq!(
        crc32c::crc32c(&bytes),
        crc,
        "{name} was modified: frozen files must never change"
    );
    bytes
}

#[test]
fn frozen_files_decode_to_their_input_with_every_cpu_decoder() {
    let input = read_checked(INPUT.0, INPUT.1);
    for (name, crc) in FROZEN {
        let file = read_checked(name, crc);
        let archive = Archive::from_bytes(&file).unwrap();
        for decoder in [
            CpuDecoder::Reference,
            CpuDecoder::Fast { parallel: false },
            CpuDecoder::Fast { parallel: true },
        ] {
            let mut out = archive.source_header_bytes();
            for t in &archive.tensors {
                let stored = &file[t.stored.start as usize..t.stored.end as usize];
                out.extend(decode_tensor(&t.index, stored, decoder).unwrap());
            }
            assert!(out == input, "{name} with {decoder:?}");
        }
    }
}

#[test]
fn frozen_files_decompress_and_verify_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    for (name, _) in FROZEN {
        let out = dir.path().join(format!("{name}.out"));
        ok(cli!(
            "decompress",
            frozen(name),
            "-o",
            out,
            "--device",
            "cpu"
        ));
        assert!(
            std::fs::read(&out).unwrap() == std::fs::read(frozen(INPUT.0)).unwrap(),
            "{name}"
        );
        ok(cli!("verify", frozen(name), frozen(INPUT.0)));
    }
}
