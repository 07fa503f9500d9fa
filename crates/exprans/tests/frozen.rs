//! Frozen files (tests/frozen/) must decode identically in every later version: the version-1
//! ones made by exprans 0.1.0, the version-2 ones by exprans 0.2.0 (docs/FORMAT.md, section 7,
//! says which options made each). Never regenerate them: a change that breaks this test breaks
//! users' files.

use exprans::{Archive, CpuDecoder, CpuKernel};
use exprans_testkit::frozen_dir;

/// (compressed file, its CRC-32C, its input).
const FROZEN: [(&str, u32, &str); 7] = [
    (
        "v1-default.exprans.safetensors",
        449_249_260,
        "v1-input.safetensors",
    ),
    (
        "v1-fast.exprans.safetensors",
        844_805_248,
        "v1-input.safetensors",
    ),
    (
        "v1-block1000.exprans.safetensors",
        1_031_816_585,
        "v1-input.safetensors",
    ),
    (
        "v2-default.exprans.safetensors",
        3_581_881_397,
        "v1-input.safetensors",
    ),
    (
        "v2-fast.exprans.safetensors",
        329_509_680,
        "v1-input.safetensors",
    ),
    (
        "v2-block1000.exprans.safetensors",
        1_139_162_717,
        "v1-input.safetensors",
    ),
    (
        "v2-fp8.exprans.safetensors",
        1_603_876_891,
        "v2-fp8-input.safetensors",
    ),
];
/// The inputs and their CRC-32C.
const INPUTS: [(&str, u32); 2] = [
    ("v1-input.safetensors", 286_247_232),
    ("v2-fp8-input.safetensors", 2_253_826_248),
];

fn read_checked(name: &str, crc: u32) -> Vec<u8> {
    let bytes = std::fs::read(frozen_dir().join(name)).unwrap();
    assert_eq!(
        crc32c::crc32c(&bytes),
        crc,
        "{name} was modified: frozen files must never change"
    );
    bytes
}

/// Every frozen file with its archive and its input.
fn frozen() -> Vec<(&'static str, Vec<u8>, Archive, Vec<u8>)> {
    FROZEN
        .iter()
        .map(|&(name, crc, input)| {
            let file = read_checked(name, crc);
            let archive = Archive::from_bytes(&file).unwrap();
            let expected_version = if name.starts_with("v1") { 1 } else { 2 };
            assert_eq!(archive.version(), expected_version, "{name}");
            let input_crc = INPUTS.iter().find(|i| i.0 == input).unwrap().1;
            (name, file, archive, read_checked(input, input_crc))
        })
        .collect()
}

#[test]
fn frozen_files_decode_to_their_input_with_every_cpu_decoder() {
    for (name, file, archive, input) in frozen() {
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
        let whole = exprans::decompress(&file, CpuDecoder::Fast { parallel: true }).unwrap();
        assert!(whole == input, "{name}");
    }
}

#[test]
fn frozen_files_decode_to_their_input_on_the_gpu() {
    let Some(gpu) = exprans_testkit::open_gpu_or_skip(|| {
        exprans::gpu::GpuDecoder::new_default(exprans::gpu::DecoderOptions::default())
    }) else {
        return;
    };
    for (name, file, archive, input) in frozen() {
        let items: Vec<_> = archive
            .tensors
            .iter()
            .map(|t| (&t.index, t.stored_in(&file).unwrap()))
            .collect();
        let decoded = pollster::block_on(gpu.decode_tensors(&items)).unwrap();
        let mut out = archive.source_header_bytes();
        for d in decoded {
            out.extend(d);
        }
        assert!(out == input, "{name} on {:?}", gpu.adapter());
    }
}
