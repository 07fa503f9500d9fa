//! Frozen version-1 files (tests/frozen/, made by exprans 0.1.0) must decode identically in every
//! later version. Never regenerate them: a change that breaks this test breaks users' files.

use exprans::{Archive, CpuDecoder, CpuKernel};
use exprans_testkit::frozen_dir;

const FROZEN: [(&str, u32); 3] = [
    ("v1-default.exprans.safetensors", 449_249_260),
    ("v1-fast.exprans.safetensors", 844_805_248),
    ("v1-block1000.exprans.safetensors", 1_031_816_585),
];
const INPUT: (&str, u32) = ("v1-input.safetensors", 286_247_232);

fn frozen(name: &str) -> std::path::PathBuf {
    frozen_dir().join(name)
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
        let kernels = CpuKernel::available()
            .into_iter()
            .map(|kernel| CpuDecoder::Kernel {
                kernel,
                parallel: false,
            });
        let decoders = [
            CpuDecoder::Reference,
            CpuDecoder::Fast { parallel: false },
            CpuDecoder::Fast { parallel: true },
        ];
        for decoder in decoders.into_iter().chain(kernels) {
            let mut out = archive.source_header_bytes();
            for t in &archive.tensors {
                out.extend(
                    decoder
                        .decode_tensor(&t.index, t.stored_in(&file).unwrap())
                        .unwrap(),
                );
            }
            assert!(out == input, "{name} with {decoder:?}");
        }
    }
}
