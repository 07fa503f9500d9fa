//! The CLI's GPU paths on whatever adapter the machine has (lavapipe in CI): decompress and
//! verify with `--device gpu`, `devices`, `selftest`, `bench --device gpu`. These fail, not skip,
//! without an adapter (install Mesa: `apt-get install -y mesa-vulkan-drivers`), unless
//! `EXPRANS_SKIP_GPU_TESTS=1`.

use exprans_testkit as common;

use common::*;

mod support;

#[test]
fn decompress_and_verify_on_the_gpu() {
    if !gpu_tests_enabled() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("edge.safetensors");
    std::fs::write(&input, safetensors_bytes(&edge_case_tensors(), None)).unwrap();
    for extra in [&[][..], &["--fast"], &["--block-size", "1000"]] {
        let packed = dir.path().join("edge.xr");
        let mut args = vec![
            "compress".to_string(),
            input.display().to_string(),
            "-o".into(),
            packed.display().to_string(),
            "--force".into(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
        ok(run(env!("CARGO_BIN_EXE_exprans"), &args));
        let back = dir.path().join("back.safetensors");
        ok(cli!(
            "decompress",
            packed,
            "-o",
            back,
            "--device",
            "gpu",
            "--force"
        ));
        assert!(
            std::fs::read(&back).unwrap() == std::fs::read(&input).unwrap(),
            "{extra:?}"
        );
        ok(cli!("verify", packed, input, "--device", "gpu"));
        // `auto` on a CPU adapter (lavapipe) decodes on the CPU; either way the bytes are right.
        ok(cli!(
            "decompress",
            packed,
            "-o",
            back,
            "--device",
            "auto",
            "--force"
        ));
        assert!(std::fs::read(&back).unwrap() == std::fs::read(&input).unwrap());
    }
}

#[test]
fn corruption_is_caught_on_the_gpu_path() {
    if !gpu_tests_enabled() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let packed = dir.path().join("s.exprans.safetensors");
    ok(cli!("compress", sample(), "-o", packed));
    let good = std::fs::read(&packed).unwrap();
    let archive = exprans::Archive::from_bytes(&good).unwrap();
    let t = support::largest_coded(&archive);

    // A flipped bit: the stored checksum fails before anything is uploaded.
    let mut bad = good.clone();
    bad[t.stored.start as usize + 5000] ^= 4;
    let bad_path = dir.path().join("bad.xr");
    std::fs::write(&bad_path, &bad).unwrap();
    fails(
        cli!("verify", bad_path, "--device", "gpu"),
        &bad_path,
        "fail their checksum",
    );

    // The same damage behind a recomputed checksum: the GPU's end-of-lane check reports it.
    let (index, stored) = support::damaged_behind_its_checksum(&good, t, 777, 5);
    let gpu =
        pollster::block_on(exprans::gpu::GpuDecoder::new_default(Default::default())).unwrap();
    let err = pollster::block_on(gpu.decode_tensors(&[(&index, &stored)]))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("does not decode to its final state") || err.contains("decoded bytes fail"),
        "{err}"
    );
    // In a batch with good tensors, the error still names the damaged one, to host memory and
    // into GPU buffers alike.
    let good_items: Vec<(&exprans::TensorIndex, &[u8])> = archive
        .tensors
        .iter()
        .map(|t| (&t.index, t.stored_in(&good).unwrap()))
        .collect();
    let mut items = good_items.clone();
    items.insert(1, (&index, &stored));
    let decoded = pollster::block_on(gpu.decode_tensors(&good_items)).unwrap();
    assert_eq!(decoded.len(), good_items.len());
    let err = pollster::block_on(gpu.decode_tensors(&items))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("tensor '{}'", t.index.name)), "{err}");
    let buffers: Vec<wgpu::Buffer> = items
        .iter()
        .map(|(t, _)| {
            gpu.device().create_buffer(&wgpu::BufferDescriptor {
                label: None,
                size: exprans::gpu::tensor_output_len(t).max(4),
                usage: wgpu::BufferUsages::STORAGE
                    | wgpu::BufferUsages::COPY_SRC
                    | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        })
        .collect();
    let targets: Vec<_> = items
        .iter()
        .zip(&buffers)
        .map(|((t, s), buffer)| (*t, *s, exprans::gpu::OutputTarget { buffer, offset: 0 }))
        .collect();
    let err = pollster::block_on(gpu.decode_tensors_into(&targets))
        .unwrap_err()
        .to_string();
    assert!(err.contains(&format!("tensor '{}'", t.index.name)), "{err}");
    let mut good_targets = targets.clone();
    good_targets.remove(1);
    pollster::block_on(gpu.decode_tensors_into(&good_targets)).unwrap();
}

#[test]
fn devices_and_selftest() {
    if !gpu_tests_enabled() {
        return;
    }
    let out = ok(cli!("devices"));
    assert!(out.contains("subgroup sizes"), "{out}");
    let json: serde_json::Value = serde_json::from_str(&ok(cli!("devices", "--json"))).unwrap();
    assert!(!json.as_array().unwrap().is_empty());
    let out = ok(cli!("selftest", "--all-adapters"));
    let passes = out.lines().filter(|l| l.starts_with("PASS ")).count();
    assert!(
        passes >= 2,
        "expected the portable and subgroup kernels to pass:\n{out}"
    );
    assert!(!out.contains("FAIL"), "{out}");
    assert!(out.contains("portable kernel"), "{out}");
}

#[test]
fn bench_reports_gpu_and_cpu_figures() {
    if !gpu_tests_enabled() {
        return;
    }
    let out = ok(cli!(
        "bench",
        sample(),
        "--device",
        "gpu",
        "--json",
        "--repeat",
        "1"
    ));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert!(v["ratio"].as_f64().unwrap() < 0.67);
    assert!(v["speeds"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s["bytes_per_second"].as_f64().unwrap() > 0.0));
    for mode in ["default", "fast"] {
        let g = &v["gpu"][mode];
        for k in [
            "decode",
            "copy_u32",
            "copy_vec4",
            "upload_decode_read_back",
            "upload_uncompressed",
        ] {
            assert!(g[k].as_f64().unwrap() > 0.0, "{k}: {g}");
        }
        let ratio = g["decode"].as_f64().unwrap() / g["copy_u32"].as_f64().unwrap();
        assert!(
            (g["decode_vs_copy_u32"].as_f64().unwrap() - ratio).abs() < 1e-9 * ratio,
            "{g}"
        );
        // Every coded tensor of the sample decoded to the bytes of its checksum.
        let coded = g["decoded_crc32c"].as_array().unwrap().len();
        assert!(coded > 10, "{g}");
        assert_eq!(g["checked_tensors"].as_u64(), Some(coded as u64), "{g}");
    }
}
