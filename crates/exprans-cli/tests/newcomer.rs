//! What a newcomer trips over (issue 11): `info` and `bench` on model directories, and the
//! common wrong inputs (JSON, GGUF, PyTorch, Git LFS pointers, already compressed or plain files,
//! empty files, directories without shards), each refused with one line saying what the input is
//! and what to run instead, exit code 1 and no output left behind.

use exprans_testkit as common;

use std::path::{Path, PathBuf};

use common::*;

fn tmp() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, bytes).unwrap();
    p
}

/// The bundled sample's tensors, in file order.
fn sample_tensors() -> Vec<T> {
    let bytes = std::fs::read(sample()).unwrap();
    let st = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(usize, T)> = st
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let offset = view.data().as_ptr() as usize - bytes.as_ptr() as usize;
            let shape: Vec<u64> = view.shape().iter().map(|&d| d as u64).collect();
            let dtype = format!("{:?}", view.dtype());
            (offset, t(&name, &dtype, &shape, view.data().to_vec()))
        })
        .collect();
    tensors.sort_by_key(|(offset, _)| *offset);
    tensors.into_iter().map(|(_, t)| t).collect()
}

const SHARDS: [&str; 2] = [
    "model-00001-of-00002.safetensors",
    "model-00002-of-00002.safetensors",
];

/// A Hugging Face style model directory `parent/model`: the sample's tensors in two shards, their
/// index, a config.json, and a stray .safetensors file the index does not list (not a shard).
fn two_shard_model(parent: &Path) -> PathBuf {
    let model = parent.join("model");
    std::fs::create_dir_all(&model).unwrap();
    let tensors = sample_tensors();
    let (a, b) = tensors.split_at(tensors.len() / 2);
    write(&model, SHARDS[0], &safetensors_bytes(a, None));
    write(&model, SHARDS[1], &safetensors_bytes(b, None));
    let weight_map: Vec<String> = tensors
        .iter()
        .enumerate()
        .map(|(i, t)| format!("\"{}\": \"{}\"", t.name, SHARDS[(i >= a.len()) as usize]))
        .collect();
    write(
        &model,
        "model.safetensors.index.json",
        format!(
            "{{\"metadata\": {{}}, \"weight_map\": {{{}}}}}\n",
            weight_map.join(", ")
        )
        .as_bytes(),
    );
    write(
        &model,
        "config.json",
        b"{\"architectures\": [\"BertModel\"]}\n",
    );
    model
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// Every path under `root`, relative, sorted (hidden temporary files included).
fn tree(root: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            out.push(path.strip_prefix(root).unwrap().to_path_buf());
            if path.is_dir() {
                stack.push(path);
            }
        }
    }
    out.sort();
    out
}

/// Runs `args`, expects exit 1 with one line `exprans: error: ...` naming `file` and containing
/// every one of `what`, and nothing created or removed under `root`.
fn refused(root: &Path, args: &[&dyn AsRef<std::ffi::OsStr>], file: &Path, what: &[&str]) {
    let before = tree(root);
    let args: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_ref()).collect();
    let (code, out, err) = run(env!("CARGO_BIN_EXE_exprans"), &args);
    let shown = format!("{args:?}: exit {code}, stderr {err:?}");
    assert!(out.is_empty(), "{shown}, stdout {out:?}");
    for w in what {
        fails((code, String::new(), err.clone()), file, w);
    }
    assert!(!err.contains('\u{1b}'), "{shown}");
    assert_eq!(tree(root), before, "{shown}: files created or removed");
}

#[test]
fn info_on_a_compressed_directory_reports_every_shard_and_the_total() {
    let dir = tmp();
    let model = two_shard_model(dir.path());
    write(
        &model,
        "stray.safetensors",
        &std::fs::read(sample()).unwrap(),
    );
    ok(cli!("compress", model));
    let packed = dir.path().join("model.exprans");

    let text = ok(cli!("info", packed));
    for shard in SHARDS {
        let name = shard.replace(".safetensors", ".exprans.safetensors");
        let line = text
            .lines()
            .find(|l| l.starts_with(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("no line for {name}:\n{text}"));
        assert!(line.contains("% of the original"), "{line}");
    }
    assert!(
        !text.contains("stray"),
        "the index lists the shards:\n{text}"
    );
    let total = text.lines().find(|l| l.starts_with("total: ")).unwrap();
    assert!(total.contains("in 2 shards"), "{total}");
    assert!(text.contains("order-0 bounds"), "{text}");

    let report = json(&ok(cli!("info", packed, "--json")));
    let shards = report["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 2, "{report}");
    let total = &report["total"];
    for key in [
        "original_bytes",
        "compressed_bytes",
        "container_header_bytes",
        "table_bytes",
        "directory_bytes",
        "word_bytes",
        "raw_plane_bytes",
        "entry_header_and_padding_bytes",
        "verbatim_bytes",
    ] {
        let sum: u64 = shards
            .iter()
            .map(|s| s["totals"][key].as_u64().unwrap())
            .sum();
        assert_eq!(total[key].as_u64(), Some(sum), "{key}");
    }
    let ratio =
        total["compressed_bytes"].as_f64().unwrap() / total["original_bytes"].as_f64().unwrap();
    assert!((total["ratio"].as_f64().unwrap() - ratio).abs() < 1e-12);
    let bound = total["bound_joint16"].as_f64().unwrap();
    assert!(
        bound > 0.0 && bound < ratio,
        "joint bound {bound}, ratio {ratio}"
    );
    // Each shard's entry is what `info --json` gives for that file alone.
    for shard in shards {
        let file = shard["file"].as_str().unwrap();
        assert_eq!(shard, &json(&ok(cli!("info", file, "--json"))));
    }
    // The shards compressed are the original shards: sizes add up to the original files.
    let original: u64 = SHARDS
        .iter()
        .map(|s| std::fs::metadata(model.join(s)).unwrap().len())
        .sum();
    assert_eq!(total["original_bytes"].as_u64(), Some(original));
}

#[test]
fn info_on_a_directory_without_index_takes_every_shard() {
    let dir = tmp();
    let model = dir.path().join("m");
    std::fs::create_dir_all(model.join("sub")).unwrap();
    std::fs::copy(sample(), model.join("b.safetensors")).unwrap();
    std::fs::copy(sample(), model.join("sub/a.safetensors")).unwrap();
    ok(cli!("compress", model));
    let report = json(&ok(cli!("info", dir.path().join("m.exprans"), "--json")));
    let files: Vec<&str> = report["shards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["file"].as_str().unwrap())
        .collect();
    assert_eq!(files.len(), 2, "{report}");
    assert!(files[0].ends_with("b.exprans.safetensors"), "{files:?}");
    assert!(files[1].ends_with("sub/a.exprans.safetensors"), "{files:?}");
}

#[test]
fn bench_on_a_directory_reports_every_shard_and_the_total() {
    let dir = tmp();
    let model = two_shard_model(dir.path());
    let before = tree(dir.path());
    let report = json(&ok(cli!("bench", model, "--json", "--repeat", "1")));
    let shards = report["shards"].as_array().unwrap();
    assert_eq!(shards.len(), 2, "{report}");
    for (shard, name) in shards.iter().zip(SHARDS) {
        assert!(shard["file"].as_str().unwrap().ends_with(name), "{shard}");
        assert!(shard["ratio"].as_f64().unwrap() < 1.0, "{shard}");
    }
    let total = &report["total"];
    for key in [
        "original_bytes",
        "compressed_bytes",
        "compressed_bytes_fast",
    ] {
        let sum: u64 = shards.iter().map(|s| s[key].as_u64().unwrap()).sum();
        assert_eq!(total[key].as_u64(), Some(sum), "{key}");
    }
    let ratio =
        total["compressed_bytes"].as_f64().unwrap() / total["original_bytes"].as_f64().unwrap();
    assert!((total["ratio"].as_f64().unwrap() - ratio).abs() < 1e-12);
    let speeds = total["speeds"].as_array().unwrap();
    assert_eq!(speeds.len(), shards[0]["speeds"].as_array().unwrap().len());
    for (i, s) in speeds.iter().enumerate() {
        let seconds: f64 = shards
            .iter()
            .map(|sh| sh["speeds"][i]["seconds"].as_f64().unwrap())
            .sum();
        assert!(
            (s["seconds"].as_f64().unwrap() - seconds).abs() < 1e-9,
            "{s}"
        );
        let rate = total["original_bytes"].as_f64().unwrap() / seconds;
        let got = s["bytes_per_second"].as_f64().unwrap();
        assert!((got - rate).abs() < 1e-6 * rate, "{s}");
    }
    assert!(total.get("gpu").is_none(), "CPU only by default");

    let text = ok(cli!("bench", model, "--repeat", "1"));
    for name in SHARDS {
        assert!(
            text.lines().any(|l| l.starts_with(&format!("{name}: "))),
            "{text}"
        );
    }
    assert!(text.contains("(2 shards, "), "{text}");
    assert!(text.contains("decode (fast CPU decoder)"), "{text}");
    assert_eq!(tree(dir.path()), before, "bench writes nothing");
}

/// The GPU figures of a directory add up: decoded bytes summed, each rate the total bytes over
/// the total time.
#[test]
fn bench_on_a_directory_sums_the_gpu_figures() {
    quiet_wayland();
    if !gpu_tests_enabled() {
        return;
    }
    let dir = tmp();
    let model = two_shard_model(dir.path());
    let report = json(&ok(cli!(
        "bench", model, "--json", "--repeat", "1", "--device", "gpu"
    )));
    let shards = report["shards"].as_array().unwrap();
    for mode in ["default", "fast"] {
        let total = &report["total"]["gpu"][mode];
        let part = |k: &str| -> Vec<f64> {
            shards
                .iter()
                .map(|s| s["gpu"][mode][k].as_f64().unwrap())
                .collect()
        };
        let bytes = part("decoded_bytes");
        let sum: f64 = bytes.iter().sum();
        assert_eq!(total["decoded_bytes"].as_f64(), Some(sum), "{total}");
        let seconds: f64 = bytes.iter().zip(part("decode")).map(|(b, r)| b / r).sum();
        let rate = total["decode"].as_f64().unwrap();
        assert!((rate - sum / seconds).abs() < 1e-9 * rate, "{total}");
        assert!(total["adapter"]["name"].is_string(), "{total}");
    }
}

#[test]
fn json_files_are_named_as_such_for_every_command() {
    let dir = tmp();
    let config = write(
        dir.path(),
        "config.json",
        b"{\"architectures\": [\"BertModel\"], \"hidden_size\": 384}\n",
    );
    let what = ["not a safetensors file (it starts with '{\"archit'): a JSON file; give"];
    let root = dir.path();
    refused(root, &[&"compress", &config], &config, &what);
    refused(root, &[&"decompress", &config], &config, &what);
    refused(root, &[&"info", &config], &config, &what);
    refused(root, &[&"info", &config, &"--json"], &config, &what);
    refused(root, &[&"verify", &config], &config, &what);
    refused(
        root,
        &[&"bench", &config, &"--repeat", &"1"],
        &config,
        &what,
    );
    refused(
        root,
        &[&"compress", &config],
        &config,
        &["give the model's .safetensors file or its directory"],
    );
    refused(
        root,
        &[&"decompress", &config],
        &config,
        &["give an .exprans.safetensors file or a directory made by `exprans compress`"],
    );
    // A shard index points at its directory.
    let index = write(
        root,
        "model.safetensors.index.json",
        b"{\n  \"metadata\": {},\n  \"weight_map\": {}\n}\n",
    );
    refused(
        root,
        &[&"compress", &index],
        &index,
        &[
            "'{\\n  \"met'",
            "a JSON file (a shard index); give the directory it is in",
        ],
    );
}

#[test]
fn other_formats_are_named_with_what_to_do() {
    let dir = tmp();
    let root = dir.path();
    let cases: [(&str, &[u8], &[&str]); 5] = [
        (
            "model.gguf",
            b"GGUF\x03\x00\x00\x00\x10\x00\x00\x00\x00\x00\x00\x00",
            &["'GGUF\\x03\\x00\\x00\\x00'", "a GGUF file", "convert"],
        ),
        (
            "pytorch_model.bin",
            b"PK\x03\x04\x00\x00\x08\x08\x00\x00archive/data.pkl",
            &["a PyTorch checkpoint (a zip archive", "convert it"],
        ),
        (
            "old.pt",
            b"\x80\x02\x8a\x0alZ\xfc\x9cF\xf9 j\xa8P\x19.\x80\x02M\xe9\x03.",
            &[
                "'\\x80\\x02\\x8a\\nlZ\\xfc\\x9c'",
                "a PyTorch checkpoint (a legacy pickle",
            ],
        ),
        (
            "lfs.safetensors",
            b"version https://git-lfs.github.com/spec/v1\noid sha256:0123\nsize 90868376\n",
            &["a Git LFS pointer", "git lfs pull"],
        ),
        (
            "page.safetensors",
            b"\n<!DOCTYPE html>\n<html class=\"\">",
            &["an HTML page", "/resolve/"],
        ),
    ];
    for (name, bytes, what) in cases {
        let file = write(root, name, bytes);
        for command in ["compress", "decompress", "info", "verify", "bench"] {
            refused(root, &[&command, &file], &file, what);
        }
    }
}

#[test]
fn compressed_inputs_to_compress_and_plain_inputs_to_decompress() {
    let dir = tmp();
    let root = dir.path();
    let model = two_shard_model(root);
    let plain = model.join(SHARDS[0]);
    ok(cli!(
        "compress",
        plain,
        "-o",
        root.join("one.exprans.safetensors")
    ));
    ok(cli!("compress", model));
    let packed_file = root.join("one.exprans.safetensors");
    let packed_dir = root.join("model.exprans");

    let already =
        "already an exprans file (compressed by exprans); run `exprans decompress` to get \
                   the original back, or `exprans info` to see what is inside";
    refused(root, &[&"compress", &packed_file], &packed_file, &[already]);
    let out = root.join("again.safetensors");
    refused(
        root,
        &[&"compress", &packed_file, &"-o", &out],
        &packed_file,
        &[already],
    );
    refused(root, &[&"bench", &packed_file], &packed_file, &[already]);
    refused(
        root,
        &[&"compress", &packed_dir, &"-o", &root.join("twice")],
        &packed_dir,
        &["already compressed by exprans (every shard is an exprans file)"],
    );
    refused(
        root,
        &[&"bench", &packed_dir],
        &packed_dir,
        &["already compressed by exprans"],
    );

    let not_compressed = "not an exprans file: a plain safetensors file, not compressed by \
                          exprans; run `exprans compress`";
    let out = root.join("back.safetensors");
    refused(root, &[&"decompress", &plain], &plain, &[not_compressed]);
    refused(
        root,
        &[&"decompress", &plain, &"-o", &out],
        &plain,
        &[not_compressed],
    );
    refused(root, &[&"verify", &plain], &plain, &[not_compressed]);
    refused(
        root,
        &[&"verify", &plain, &plain],
        &plain,
        &[not_compressed],
    );
    refused(root, &[&"info", &plain], &plain, &[not_compressed]);
    refused(
        root,
        &[&"info", &plain, &"--json"],
        &plain,
        &[not_compressed],
    );
    let plain_dir = "not compressed by exprans (its shards are plain safetensors files); run \
                     `exprans compress`";
    refused(root, &[&"decompress", &model], &model, &[plain_dir]);
    refused(root, &[&"verify", &model], &model, &[plain_dir]);
    refused(root, &[&"info", &model], &model, &[plain_dir]);

    // A directory mixing original and exprans shards is not compressed again.
    let mixed = root.join("mixed");
    std::fs::create_dir(&mixed).unwrap();
    std::fs::copy(&plain, mixed.join("a.safetensors")).unwrap();
    std::fs::copy(&packed_file, mixed.join("b.exprans.safetensors")).unwrap();
    refused(
        root,
        &[&"compress", &mixed],
        &mixed.join("b.exprans.safetensors"),
        &["already an exprans file (compressed by exprans), beside original shards"],
    );
}

#[test]
fn empty_short_and_shardless_inputs() {
    let dir = tmp();
    let root = dir.path();
    let empty = write(root, "empty.safetensors", b"");
    let short = write(root, "short.safetensors", b"abc");
    for command in ["compress", "decompress", "info", "verify", "bench"] {
        refused(root, &[&command, &empty], &empty, &["empty file (0 bytes)"]);
        refused(
            root,
            &[&command, &short],
            &short,
            &["file too short to be safetensors (3 bytes"],
        );
    }
    let shardless = root.join("shardless");
    std::fs::create_dir(&shardless).unwrap();
    write(&shardless, "config.json", b"{}\n");
    for command in ["compress", "decompress", "info", "verify", "bench"] {
        refused(
            root,
            &[&command, &shardless],
            &shardless,
            &["no .safetensors files in this directory"],
        );
    }
    // A shard of the index is missing: an incomplete download.
    let model = two_shard_model(&root.join("partial"));
    std::fs::remove_file(model.join(SHARDS[1])).unwrap();
    for command in ["compress", "bench"] {
        refused(
            root,
            &[&command, &model],
            &model.join(SHARDS[1]),
            &["listed in model.safetensors.index.json but missing"],
        );
    }
}

#[test]
fn file_bytes_in_messages_are_escaped() {
    let dir = tmp();
    let root = dir.path();
    let nasty = write(root, "nasty.json", b"{\n\x1b[2J\r\"a\": 1}");
    refused(
        root,
        &[&"compress", &nasty],
        &nasty,
        &["it starts with '{\\n\\x1b[2J\\r\"'"],
    );
    // A shard name from an index cannot reach outside the directory.
    let model = root.join("evil");
    std::fs::create_dir(&model).unwrap();
    let index = write(
        &model,
        "model.safetensors.index.json",
        b"{\"weight_map\": {\"w\": \"../x\\n.safetensors\"}}",
    );
    refused(
        root,
        &[&"info", &model],
        &index,
        &["lists shard '../x\\n.safetensors', which is not a file name inside the directory"],
    );
}
