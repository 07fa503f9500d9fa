//! `exprans generate` end to end on a tiny random Llama-family model directory, plain and
//! compressed: streamed text, `--json`, weight modes, and every bad input as one line.

use std::path::Path;

use exprans_testkit::{cli, ok, TinyLm};

fn tiny(dir: &Path) -> std::path::PathBuf {
    let model = dir.join("tiny");
    TinyLm {
        architecture: "LlamaForCausalLM",
        tied: true,
        seed: 11,
        f16: false,
        shape: exprans_testkit::LmShape::TINY,
    }
    .write(&model);
    model
}

fn json(out: &str) -> serde_json::Value {
    serde_json::from_str(out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

/// One line `exprans: error: ...` containing `what`, exit 1, nothing on stdout.
fn refused(r: (i32, String, String), what: &str) {
    let (code, out, err) = r;
    assert_eq!(code, 1, "{err}");
    assert!(out.is_empty(), "{out}");
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("exprans: error: ") && err.contains(what),
        "{err} (wanted {what})"
    );
}

#[test]
fn generates_the_same_tokens_from_plain_and_compressed_directories_in_every_mode() {
    exprans_testkit::quiet_wayland();
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny(tmp.path());
    let packed = tmp.path().join("tiny.exprans");
    ok(cli!(
        "compress",
        model,
        "-o",
        packed,
        "--rows-per-block",
        "1"
    ));
    let args = ["--prompt", "w5 w9 w200", "--max-new-tokens", "6"];
    let reference = json(&ok(cli!(
        "generate", model, args[0], args[1], args[2], args[3], "--json", "--device", "cpu"
    )));
    assert_eq!(reference["prompt_ids"], serde_json::json!([5, 9, 200]));
    let ids = reference["generated_ids"].as_array().unwrap().clone();
    assert!(!ids.is_empty() && ids.len() <= 6);
    for (dir, weights) in [
        (&model, "plain"),
        (&packed, "decoded"),
        (&packed, "fused"),
        (&packed, "auto"),
    ] {
        let r = json(&ok(cli!(
            "generate",
            dir,
            args[0],
            args[1],
            args[2],
            args[3],
            "--json",
            "--weights",
            weights
        )));
        assert_eq!(r["generated_ids"].as_array().unwrap(), &ids, "{weights}");
        assert_eq!(r["text"], reference["text"]);
        let steps = r["steps"].as_array().unwrap();
        assert_eq!(steps.len(), ids.len());
        for (step, id) in steps.iter().zip(&ids) {
            let top = step["top"].as_array().unwrap();
            assert_eq!(top.len(), 10);
            assert_eq!(&top[0][0], id);
        }
        let t = &r["timings"];
        assert!(t["weight_bytes"].as_u64().unwrap() > 0 && t["load_s"].as_f64().is_some());
    }
    // Streaming: the text on stdout is the JSON's text; the summary goes to stderr.
    let (code, out, err) = cli!("generate", packed, args[0], args[1], args[2], args[3]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out.trim_end(), reference["text"].as_str().unwrap());
    assert!(
        err.contains("tokens/s") && err.contains("weights fused"),
        "{err}"
    );
    // Chat: the template's prompt, then the assistant's turn.
    // A model in two shards (with an index), compressed as a directory, gives the same tokens.
    let sharded = tmp.path().join("sharded");
    TinyLm {
        architecture: "LlamaForCausalLM",
        tied: true,
        seed: 11,
        f16: false,
        shape: exprans_testkit::LmShape::TINY,
    }
    .write_sharded(&sharded, 2);
    let sharded_packed = tmp.path().join("sharded.exprans");
    ok(cli!(
        "compress",
        sharded,
        "-o",
        sharded_packed,
        "--rows-per-block",
        "1"
    ));
    for dir in [&sharded, &sharded_packed] {
        let r = json(&ok(cli!(
            "generate", dir, args[0], args[1], args[2], args[3], "--json"
        )));
        assert_eq!(r["generated_ids"].as_array().unwrap(), &ids);
    }
    let chat = json(&ok(cli!(
        "generate",
        model,
        "--chat",
        "w7 w8",
        "--max-new-tokens",
        "2",
        "--json"
    )));
    assert_eq!(chat["prompt_ids"], serde_json::json!([0, 7, 8, 3]));
    // Seeded sampling repeats.
    let sample = |seed: &str| {
        json(&ok(cli!(
            "generate",
            model,
            "--prompt",
            "w5",
            "--max-new-tokens",
            "6",
            "--json",
            "--temperature",
            "1.5",
            "--seed",
            seed
        )))["generated_ids"]
            .clone()
    };
    assert_eq!(sample("3"), sample("3"));
}

#[test]
fn bad_models_and_options_are_refused_in_one_line() {
    exprans_testkit::quiet_wayland();
    let tmp = tempfile::tempdir().unwrap();
    let model = tiny(tmp.path());
    let run = |dir: &Path, extra: &[&str]| {
        let mut args: Vec<std::ffi::OsString> = vec![
            "generate".into(),
            dir.into(),
            "--prompt".into(),
            "w5".into(),
        ];
        args.extend(extra.iter().map(Into::into));
        let refs: Vec<&std::ffi::OsStr> = args.iter().map(|a| a.as_os_str()).collect();
        exprans_testkit::run(env!("CARGO_BIN_EXE_exprans"), &refs)
    };
    // A copy of the model with one file replaced.
    let variant = |name: &str, file: &str, text: &str| {
        let dir = tmp.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        for e in std::fs::read_dir(&model).unwrap() {
            let e = e.unwrap();
            std::fs::copy(e.path(), dir.join(e.file_name())).unwrap();
        }
        std::fs::write(dir.join(file), text).unwrap();
        dir
    };
    let config = |edit: &dyn Fn(&mut serde_json::Value)| {
        let mut c: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(model.join("config.json")).unwrap())
                .unwrap();
        edit(&mut c);
        c.to_string()
    };
    let arch = variant(
        "arch",
        "config.json",
        &config(&|c| c["architectures"] = serde_json::json!(["BertModel"])),
    );
    refused(run(&arch, &[]), "architecture 'BertModel' is not supported");
    let missing = variant(
        "missing",
        "config.json",
        &config(&|c| {
            c.as_object_mut().unwrap().remove("num_hidden_layers");
        }),
    );
    refused(run(&missing, &[]), "no \"num_hidden_layers\"");
    let shape = variant(
        "shape",
        "config.json",
        &config(&|c| c["intermediate_size"] = 128.into()),
    );
    refused(run(&shape, &[]), "config.json needs [128, 64]");
    let layers = variant(
        "layers",
        "config.json",
        &config(&|c| c["num_hidden_layers"] = 3.into()),
    );
    refused(run(&layers, &[]), "no tensor 'model.layers.2");
    let tokenizer = variant("tok", "tokenizer.json", "{\"model\": 3}");
    refused(run(&tokenizer, &[]), "tokenizer.json");
    refused(
        run(&model, &["--max-new-tokens", "600"]),
        "exceed the context",
    );
    refused(
        run(&model, &["--context", "4", "--max-new-tokens", "4"]),
        "exceed the context of 4",
    );
    refused(
        run(&model, &["--weights", "fused"]),
        "need a compressed model",
    );
    refused(run(&model, &["--temperature=-1"]), "temperature");
    refused(run(&model, &["--top-p", "0"]), "top-p");
    refused(run(tmp.path(), &[]), "config.json");
    refused(run(&tmp.path().join("nope"), &[]), "no such file");
    // Blocks that are not whole rows: fused is refused with the options that work.
    let unaligned = tmp.path().join("unaligned.exprans");
    ok(cli!(
        "compress",
        model,
        "-o",
        unaligned,
        "--block-size",
        "4096"
    ));
    refused(run(&unaligned, &["--weights", "fused"]), "--rows-per-block");
    ok(run(&unaligned, &["--max-new-tokens", "2"]));
}
