//! End-to-end tests of the `exprans` binary: round trips, the container, bad input.

use exprans_testkit as common;

use std::path::{Path, PathBuf};

use common::*;

mod support;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// Compresses, checks the container, decompresses, verifies; returns the compressed bytes.
fn round_trip(input: &Path, extra: &[&str]) -> Vec<u8> {
    let dir = input.parent().unwrap();
    let packed = dir.join(format!(
        "{}.xr",
        input.file_name().unwrap().to_string_lossy()
    ));
    let back = dir.join("back.safetensors");
    let mut args: Vec<&std::ffi::OsStr> =
        vec!["compress".as_ref(), input.as_os_str(), "-o".as_ref()];
    args.push(packed.as_os_str());
    args.push("--force".as_ref());
    args.extend(extra.iter().map(std::ffi::OsStr::new));
    ok(run(env!("CARGO_BIN_EXE_exprans"), &args));
    let compressed = std::fs::read(&packed).unwrap();
    check_container(&compressed);
    ok(cli!(
        "decompress",
        packed,
        "-o",
        back,
        "--force",
        "--device",
        "cpu"
    ));
    assert!(
        std::fs::read(&back).unwrap() == std::fs::read(input).unwrap(),
        "round trip differs"
    );
    ok(cli!("verify", packed, input));
    compressed
}

/// The output is a valid safetensors file (checked by the `safetensors` crate itself), marked
/// as exprans, with every entry 16-byte aligned in the file.
fn check_container(bytes: &[u8]) {
    let st = safetensors::SafeTensors::deserialize(bytes).expect("valid safetensors");
    let (header_len, meta) = safetensors::SafeTensors::read_metadata(bytes).unwrap();
    let m = meta.metadata().as_ref().expect("metadata");
    assert_eq!(m.get("format").map(String::as_str), Some("exprans"));
    assert_eq!(m.get("exprans.version").map(String::as_str), Some("2"));
    assert_eq!((8 + header_len) % 16, 0, "data must start 16-byte aligned");
    for (name, view) in st.tensors() {
        assert_eq!(view.dtype(), safetensors::Dtype::U8, "{name}");
        let offset = view.data().as_ptr() as usize - bytes.as_ptr() as usize;
        assert_eq!(offset % 16, 0, "{name} starts unaligned");
    }
}

#[test]
fn every_dtype_and_edge_case_round_trips() {
    let dir = tmp();
    let input = write(
        dir.path(),
        "edge.safetensors",
        &safetensors_bytes(&edge_case_tensors(), Some(r#"{"format":"pt","note":"x"}"#)),
    );
    for extra in [
        &[][..],
        &["--fast"],
        &["--block-size", "64"],
        &["--block-size", "66"],
        &["--rows-per-block", "3"],
        &["--threads", "1"],
    ] {
        round_trip(&input, extra);
    }
}

#[test]
fn codes_what_gains_and_keeps_the_rest_verbatim() {
    let dir = tmp();
    let input = write(
        dir.path(),
        "e.safetensors",
        &safetensors_bytes(&edge_case_tensors(), None),
    );
    let packed = dir.path().join("e.exprans.safetensors");
    ok(cli!("compress", input));
    let info: serde_json::Value =
        serde_json::from_str(&ok(cli!("info", packed, "--json"))).unwrap();
    let enc = |name: &str| {
        let t = info["tensors"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == name)
            .unwrap();
        (
            t["encoding"].as_str().unwrap().to_string(),
            t["planes"].as_str().unwrap().to_string(),
        )
    };
    assert_eq!(enc("bf16.weights"), ("rans".into(), "CC".into()));
    assert_eq!(enc("f32.weights").0, "rans");
    // Random bits: stored raw unless coding really makes them smaller (small tensors can
    // gain a little from plane 1's classes fitted to their own counts).
    let random = info["tensors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["name"] == "bf16.random_bits")
        .unwrap();
    assert!(
        random["encoding"] == "raw"
            || random["stored_bytes"].as_u64() < random["original_bytes"].as_u64(),
        "{random}"
    );
    assert_eq!(enc("bf16.one").0, "raw");
    assert_eq!(enc("i64.ids").0, "raw");
    assert_eq!(enc("unknown.dtype").0, "raw");
    // --fast keeps every plane but the exponent raw.
    let fast = dir.path().join("fast.exprans.safetensors");
    ok(cli!("compress", input, "-o", fast, "--fast"));
    let info: serde_json::Value = serde_json::from_str(&ok(cli!("info", fast, "--json"))).unwrap();
    for t in info["tensors"].as_array().unwrap() {
        let planes = t["planes"].as_str().unwrap();
        assert!(
            planes.is_empty() || planes.starts_with('C') && !planes[1..].contains('C'),
            "{t}"
        );
    }
}

#[test]
fn random_bits_grow_by_at_most_a_header() {
    let dir = tmp();
    let mut rng = Rng(7);
    let bits: Vec<u8> = (0..2_000_000).map(|_| rng.next_u64() as u8).collect();
    let input = write(
        dir.path(),
        "random.safetensors",
        &safetensors_bytes(&[t("w", "BF16", &[1_000_000], bits)], None),
    );
    let packed = round_trip(&input, &[]);
    let original = std::fs::metadata(&input).unwrap().len() as f64;
    assert!(
        (packed.len() as f64) <= original * 1.001 + 1024.0,
        "{} bytes from {original}",
        packed.len()
    );
}

#[test]
fn bundled_sample_round_trips_and_compresses() {
    let sample = sample();
    let dir = tmp();
    let input = dir.path().join("sample.safetensors");
    std::fs::copy(&sample, &input).unwrap();
    let packed = round_trip(&input, &[]);
    let ratio = packed.len() as f64 / std::fs::metadata(&input).unwrap().len() as f64;
    assert!(ratio < 0.67, "sample ratio {ratio}");
}

#[test]
fn info_reports_tensors_and_bounds() {
    let dir = tmp();
    let packed = dir.path().join("s.exprans.safetensors");
    ok(cli!("compress", sample(), "-o", packed));
    let text = ok(cli!("info", packed));
    assert!(text.contains("encoder.layer.0.attention.self.query.weight"));
    assert!(text.contains("order-0 bounds"));
    let info: serde_json::Value =
        serde_json::from_str(&ok(cli!("info", packed, "--json"))).unwrap();
    let totals = &info["totals"];
    let ratio = totals["ratio"].as_f64().unwrap();
    // Context classes beat the per-plane bound; the joint bound stays below the result.
    let bound = totals["bound_all_planes"].as_f64().unwrap();
    let joint = totals["bound_joint16"].as_f64().unwrap();
    assert!(
        joint < ratio && ratio < joint + 0.004 && ratio < bound,
        "ratio {ratio} vs bounds {bound} (per plane), {joint} (joint)"
    );
    let parts: u64 = [
        "container_header_bytes",
        "table_bytes",
        "directory_bytes",
        "word_bytes",
        "raw_plane_bytes",
        "entry_header_and_padding_bytes",
        "verbatim_bytes",
    ]
    .iter()
    .map(|k| totals[k].as_u64().unwrap())
    .sum();
    assert_eq!(
        parts,
        totals["compressed_bytes"].as_u64().unwrap(),
        "every byte accounted for"
    );
}

#[test]
fn model_directory_round_trips() {
    let dir = tmp();
    let model = dir.path().join("model");
    std::fs::create_dir_all(model.join("1_Pooling")).unwrap();
    let tensors = edge_case_tensors();
    let (a, b) = tensors.split_at(10);
    std::fs::write(
        model.join("model-00001-of-00002.safetensors"),
        safetensors_bytes(a, None),
    )
    .unwrap();
    std::fs::write(
        model.join("model-00002-of-00002.safetensors"),
        safetensors_bytes(b, None),
    )
    .unwrap();
    let weight_map: Vec<String> = tensors
        .iter()
        .enumerate()
        .map(|(i, t)| {
            format!(
                "    \"{}\": \"model-0000{}-of-00002.safetensors\"",
                t.name,
                1 + (i >= 10) as u8
            )
        })
        .collect();
    let index = format!(
        "{{\n  \"metadata\": {{\"total_size\": 1}},\n  \"weight_map\": {{\n{}\n  }}\n}}\n",
        weight_map.join(",\n")
    );
    std::fs::write(model.join("model.safetensors.index.json"), &index).unwrap();
    std::fs::write(model.join("config.json"), "{\"hidden_size\": 384}\n").unwrap();
    std::fs::write(model.join("1_Pooling/config.json"), "{}\n").unwrap();

    ok(cli!("compress", model));
    let packed = dir.path().join("model.exprans");
    assert_eq!(
        listing(&packed),
        [
            "1_Pooling",
            "config.json",
            "model-00001-of-00002.exprans.safetensors",
            "model-00002-of-00002.exprans.safetensors",
            "model.safetensors.index.json"
        ]
    );
    let new_index = std::fs::read_to_string(packed.join("model.safetensors.index.json")).unwrap();
    assert!(new_index.contains("\"model-00002-of-00002.exprans.safetensors\""));
    assert!(!new_index.contains("\"model-00002-of-00002.safetensors\""));
    ok(cli!("verify", packed, model));
    let back = dir.path().join("back");
    ok(cli!("decompress", packed, "-o", back));
    for rel in [
        "config.json",
        "1_Pooling/config.json",
        "model.safetensors.index.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
    ] {
        assert!(
            std::fs::read(model.join(rel)).unwrap() == std::fs::read(back.join(rel)).unwrap(),
            "{rel}"
        );
    }
    // A changed original file is reported.
    std::fs::write(model.join("config.json"), "{\"hidden_size\": 385}\n").unwrap();
    fails(
        cli!("verify", packed, model),
        Path::new("config.json"),
        "differs",
    );
}

#[test]
fn real_models_round_trip() {
    let Some(models) = shared_models() else {
        return;
    };
    let dir = tmp();
    let bf16 = models.join("all-MiniLM-L6-v2.bf16.safetensors");
    let packed = dir.path().join("m.exprans.safetensors");
    ok(cli!("compress", bf16, "-o", packed));
    check_container(&std::fs::read(&packed).unwrap());
    ok(cli!("verify", packed, bf16));
    let ratio = std::fs::metadata(&packed).unwrap().len() as f64
        / std::fs::metadata(&bf16).unwrap().len() as f64;
    assert!(ratio <= 0.6630, "MiniLM BF16 ratio {ratio}");
    let back = dir.path().join("back.safetensors");
    ok(cli!("decompress", packed, "-o", back));
    assert!(std::fs::read(&back).unwrap() == std::fs::read(&bf16).unwrap());

    // The model directory as shipped (F32 weights, an I64 buffer, tokenizer and config files).
    let model = models.join("all-MiniLM-L6-v2");
    let packed_dir = dir.path().join("minilm.exprans");
    ok(cli!("compress", model, "-o", packed_dir));
    ok(cli!("verify", packed_dir, model));
    let back_dir = dir.path().join("minilm");
    ok(cli!("decompress", packed_dir, "-o", back_dir));
    for rel in [
        "model.safetensors",
        "tokenizer.json",
        "1_Pooling/config.json",
    ] {
        assert!(
            std::fs::read(model.join(rel)).unwrap() == std::fs::read(back_dir.join(rel)).unwrap(),
            "{rel}"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Bad input: one line naming the file and the problem, exit 1, no output left behind.

fn sample_compressed(dir: &Path) -> (PathBuf, Vec<u8>) {
    let packed = dir.join("s.exprans.safetensors");
    ok(cli!("compress", sample(), "-o", packed));
    let bytes = std::fs::read(&packed).unwrap();
    (packed, bytes)
}

#[test]
fn missing_input_and_existing_output() {
    let dir = tmp();
    let missing = dir.path().join("missing.safetensors");
    fails(cli!("compress", missing), &missing, "no such file");
    fails(cli!("decompress", missing), &missing, "no such file");
    fails(cli!("verify", missing), &missing, "no such file");
    let (packed, _) = sample_compressed(dir.path());
    fails(
        cli!("compress", sample(), "-o", packed),
        &packed,
        "output exists",
    );
    let out = dir.path().join("exists.safetensors");
    std::fs::write(&out, b"keep me").unwrap();
    fails(cli!("decompress", packed, "-o", out), &out, "output exists");
    assert_eq!(std::fs::read(&out).unwrap(), b"keep me");
    ok(cli!("decompress", packed, "-o", out, "--force"));
}

#[test]
fn bad_options() {
    let dir = tmp();
    let out = dir.path().join("o.safetensors");
    let (code, _, err) = cli!("compress", sample(), "-o", out, "--block-size", "33");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("block size 33 must be even"), "{err}");
    let (code, _, err) = cli!("compress", sample(), "-o", out, "--threads", "0");
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("--threads"), "{err}");
    assert!(!out.exists());
}

#[test]
fn malformed_safetensors_inputs() {
    let dir = tmp();
    let cases: Vec<(&str, Vec<u8>, &str)> = vec![
        ("short.safetensors", vec![1, 2, 3], "too short"),
        (
            "huge_header.safetensors",
            u64::MAX.to_le_bytes().to_vec(),
            "exceeds",
        ),
        (
            "past_end.safetensors",
            raw_file("{}", b"").into_iter().take(9).collect(),
            "past the end",
        ),
        (
            "bad_json.safetensors",
            raw_file("{\"a\":", b""),
            "not valid JSON",
        ),
        (
            "not_object.safetensors",
            raw_file("[1,2]   ", b""),
            "not a JSON object",
        ),
        (
            "bad_entry.safetensors",
            raw_file(r#"{"a":{"dtype":"F32","shape":[1]}}"#, b""),
            "bad entry",
        ),
        (
            "offsets_past_end.safetensors",
            raw_file(
                r#"{"a":{"dtype":"U8","shape":[8],"data_offsets":[0,8]}}"#,
                b"1234",
            ),
            "run past the end",
        ),
        (
            "overlap.safetensors",
            raw_file(
                r#"{"a":{"dtype":"U8","shape":[4],"data_offsets":[0,4]},"b":{"dtype":"U8","shape":[4],"data_offsets":[2,6]}}"#,
                b"123456",
            ),
            "not contiguous",
        ),
        (
            "gap.safetensors",
            raw_file(
                r#"{"a":{"dtype":"U8","shape":[2],"data_offsets":[0,2]}}"#,
                b"1234",
            ),
            "tensors cover 2",
        ),
        (
            "overflow.safetensors",
            raw_file(
                r#"{"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#,
                b"1234",
            ),
            "overflows",
        ),
        (
            "size_mismatch.safetensors",
            raw_file(
                r#"{"a":{"dtype":"BF16","shape":[3],"data_offsets":[0,4]}}"#,
                b"1234",
            ),
            "needs 6 bytes",
        ),
        (
            "bad_metadata.safetensors",
            raw_file(r#"{"__metadata__":{"a":1}}"#, b""),
            "__metadata__",
        ),
    ];
    for (name, bytes, what) in cases {
        let input = write(dir.path(), name, &bytes);
        let out = dir.path().join("out.exprans.safetensors");
        fails(cli!("compress", input, "-o", out), &input, what);
        assert!(!out.exists(), "{name}: partial output left");
    }
    let leftovers: Vec<String> = listing(dir.path())
        .into_iter()
        .filter(|n| n.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "temporary files left: {leftovers:?}");
}

#[test]
fn wrong_kind_of_file() {
    let dir = tmp();
    let (packed, _) = sample_compressed(dir.path());
    let again = dir.path().join("again.safetensors");
    fails(
        cli!("compress", packed, "-o", again),
        &packed,
        "already an exprans file",
    );
    let out = dir.path().join("o.safetensors");
    fails(
        cli!("decompress", sample(), "-o", out),
        &sample(),
        "not an exprans file",
    );
    fails(cli!("info", sample()), &sample(), "not an exprans file");
    assert!(!out.exists() && !again.exists());
}

/// Damages a copy of the compressed sample and expects decompress and verify to fail.
fn expect_rejected(dir: &Path, name: &str, bytes: &[u8], what: &str) {
    let bad = write(dir, name, bytes);
    let out = dir.join(format!("{name}.out"));
    fails(
        cli!("decompress", bad, "-o", out, "--device", "cpu"),
        &bad,
        what,
    );
    assert!(!out.exists(), "{name}: partial output left");
    fails(cli!("verify", bad, "--device", "cpu"), &bad, what);
}

#[test]
fn corrupted_compressed_files_are_rejected() {
    let dir = tmp();
    let (_, good) = sample_compressed(dir.path());
    let archive = exprans::Archive::from_bytes(&good).unwrap();
    let coded = archive
        .tensors
        .iter()
        .find(|t| t.index.encoding == exprans::Encoding::Rans && t.index.bytes > 100_000)
        .unwrap();
    let raw = archive
        .tensors
        .iter()
        .find(|t| t.index.encoding == exprans::Encoding::Raw)
        .unwrap();
    let entry_start = coded.stored.start as usize;
    let stored = &good[entry_start..coded.stored.end as usize];
    let entry = exprans::CodedEntry::of_tensor(&coded.index, stored)
        .unwrap()
        .unwrap();
    let sections = entry.sections();

    // A flipped bit anywhere in a stored tensor: table, directory, words, raw plane, verbatim.
    let spots = [
        ("table", entry_start + sections.tables.start + 1),
        ("directory", entry_start + sections.directory.start + 9),
        ("words", entry_start + sections.words.start + 1000),
        ("entry header", entry_start + 9),
        ("verbatim tensor", raw.stored.start as usize + 3),
    ];
    for (what, at) in spots {
        let mut bad = good.clone();
        bad[at] ^= 0x10;
        expect_rejected(
            dir.path(),
            &format!("flip_{}.xr", what.replace(' ', "_")),
            &bad,
            "fail their checksum",
        );
    }
    // Truncated files.
    for cut in [good.len() - 1, good.len() / 2, 100, 7] {
        let bad = &good[..cut];
        let name = format!("cut{cut}.xr");
        let p = write(dir.path(), &name, bad);
        let (code, _, err) = cli!("verify", p);
        assert_eq!(code, 1, "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains(&name), "{err}");
    }
    // Header damage: a changed checksum digit, an unknown version.
    // Byte offsets in the file: searched in the bytes, not in a lossy text of them (whose
    // replacement characters for a length prefix that is not UTF-8 shift every offset).
    let find = |what: &str| {
        good.windows(what.len())
            .position(|w| w == what.as_bytes())
            .unwrap()
            + what.len()
    };
    let at = find("\"exprans.version\":\"");
    assert_eq!(good[at], b'2');
    let mut bad = good.clone();
    bad[at] = b'7';
    expect_rejected(
        dir.path(),
        "version.xr",
        &bad,
        "version '7' is not supported",
    );
    let at = find("\"exprans.header_crc32c\":\"");
    let mut bad = good.clone();
    bad[at] = if bad[at] == b'1' { b'2' } else { b'1' };
    expect_rejected(dir.path(), "hcrc.xr", &bad, "header checksum mismatch");
}

#[test]
fn a_stream_damaged_behind_a_matching_checksum_is_still_caught() {
    // Recompute the stored checksum after damaging the words: the decoders' final-state check
    // must catch what the checksum no longer can, and the decoded checksum backs it up.
    let dir = tmp();
    let (_, good) = sample_compressed(dir.path());
    let archive = exprans::Archive::from_bytes(&good).unwrap();
    let t = support::largest_coded(&archive);
    let (index, stored) = support::damaged_behind_its_checksum(&good, t, 4242, 0);
    for decoder in [
        exprans::CpuDecoder::Reference,
        exprans::CpuDecoder::Fast { parallel: true },
    ] {
        let err = decoder
            .decode_tensor(&index, &stored)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("does not decode to its final state")
                || err.contains("decoded bytes fail"),
            "{err}"
        );
    }
}

#[test]
fn full_disk_is_reported_without_partial_output() {
    let dir = tmp();
    let small = dir.path().join("small");
    std::fs::create_dir(&small).unwrap();
    let mounted = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&small)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !mounted {
        eprintln!("SKIPPED: cannot mount a 1 MiB tmpfs here (needs root) to fill a disk");
        return;
    }
    let (packed, _) = sample_compressed(dir.path());
    let out = small.join("x.exprans.safetensors");
    let r1 = cli!("compress", sample(), "-o", out);
    let back = small.join("x.safetensors");
    let r2 = cli!("decompress", packed, "-o", back);
    let left = listing(&small);
    std::process::Command::new("umount")
        .arg(&small)
        .status()
        .unwrap();
    fails(r1, &out, "No space left on device");
    // Decompression knows the output's size: refused before anything is written.
    fails(r2, &back, "only 1048576 are free on its file system");
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// The frozen version-1 files decompress to their input and verify against it through the CLI
/// (crates/exprans/tests/frozen.rs checks them byte for byte through the library).
#[test]
fn frozen_files_decompress_and_verify_through_the_cli() {
    let dir = tmp();
    let mut checked = 0;
    for entry in std::fs::read_dir(frozen_dir()).unwrap() {
        let path = entry.unwrap().path();
        if !path.to_string_lossy().ends_with(".exprans.safetensors") {
            continue;
        }
        let fp8 = path.to_string_lossy().contains("fp8");
        let input = frozen_dir().join(if fp8 {
            "v2-fp8-input.safetensors"
        } else {
            "v1-input.safetensors"
        });
        let out = dir.path().join("out.safetensors");
        ok(cli!(
            "decompress",
            path,
            "-o",
            out,
            "--device",
            "cpu",
            "--force"
        ));
        assert!(
            std::fs::read(&out).unwrap() == std::fs::read(&input).unwrap(),
            "{}",
            path.display()
        );
        ok(cli!("verify", path, input));
        checked += 1;
    }
    assert_eq!(checked, 7, "frozen files (3 of version 1, 4 of version 2)");
}

#[test]
fn shaders_writes_every_pipeline_variant_and_each_validates() {
    let dir = tmp();
    let out = dir.path().join("wgsl");
    let stdout = ok(cli!("shaders", "--out", out));
    let modules: Vec<_> = exprans::gpu::wgsl_modules()
        .into_iter()
        .chain(exprans_infer::shaders::wgsl_modules())
        .collect();
    let variants: usize = modules.iter().map(|m| m.coded_masks.len().max(1)).sum();
    assert_eq!(stdout.lines().count(), variants, "{stdout}");
    let files: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
    assert_eq!(files.len(), variants);
    assert!(out.join("decode16_portable.mask3.wgsl").exists());
    for line in stdout.lines() {
        let path = Path::new(line);
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let source = std::fs::read_to_string(path).unwrap();
        let module = exprans_testkit::wgsl::parse(&name, &source);
        // Every pipeline constant is resolved in the file.
        assert!(module.overrides.is_empty(), "{name}");
        let caps = exprans_testkit::wgsl::capabilities(source.contains("subgroup built-ins"));
        exprans_testkit::wgsl::validate(&name, &source, &module, caps)
            .unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Outputs get the permissions of any new file under the user's umask (as `cp` gives), not the
/// owner-only mode of the temporary file they are written through.
#[cfg(unix)]
#[test]
fn outputs_have_ordinary_permissions() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tmp();
    let plain = dir.path().join("plain");
    std::fs::write(&plain, b"x").unwrap();
    let expected = std::fs::metadata(&plain).unwrap().permissions().mode() & 0o777;
    let packed = dir.path().join("s.exprans.safetensors");
    let restored = dir.path().join("s.safetensors");
    ok(cli!("compress", sample(), "-o", packed));
    ok(cli!("decompress", packed, "-o", restored));
    for f in [&packed, &restored] {
        let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, expected, "{}", f.display());
    }
}
