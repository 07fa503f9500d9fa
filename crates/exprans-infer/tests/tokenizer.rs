//! The tokenizer and chat templates against the Python implementations: token ids, decoded
//! texts and rendered prompts in `tests/data/smollm2_tokenizer_refs.json`, written by
//! `tests/data/make_tokenizer_refs.py` from Hugging Face `tokenizers`, Jinja2 set up as
//! `transformers` sets it up, and `transformers`' `apply_chat_template`.
//!
//! The model tests need the tokenizer files: SmolLM2-135M-Instruct (`EXPRANS_SMOLLM2_DIR`,
//! default `<workspace>/target/models/SmolLM2-135M-Instruct`) and all-MiniLM-L6-v2
//! (`EXPRANS_MODELS_DIR`, default `../shared/models`); each prints `SKIPPED: ...` and passes
//! when its files are absent. The template tests need nothing.

use std::path::PathBuf;

use exprans_infer::chat::{ChatTemplate, Message};
use exprans_infer::tokenizer::Tokenizer;
use exprans_testkit as common;
use serde::Deserialize;

#[derive(Deserialize)]
struct Refs {
    templates: Vec<TemplateRef>,
    smollm2: Option<ModelRefs>,
    minilm: Option<ModelRefs>,
}

#[derive(Deserialize)]
struct TemplateRef {
    template: String,
    messages: Vec<Message>,
    add_generation_prompt: bool,
    bos_token: String,
    eos_token: String,
    prompt: String,
}

#[derive(Deserialize)]
struct ModelRefs {
    cases: Vec<Case>,
    truncation: Vec<Truncated>,
    #[serde(default)]
    chat: Vec<Chat>,
}

#[derive(Deserialize)]
struct Case {
    text: String,
    ids: Vec<u32>,
    ids_no_special: Vec<u32>,
    decoded: String,
    decoded_skip_special: String,
}

#[derive(Deserialize)]
struct Truncated {
    text: String,
    max_len: usize,
    ids: Vec<u32>,
}

#[derive(Deserialize)]
struct Chat {
    messages: Vec<Message>,
    add_generation_prompt: bool,
    prompt: String,
    ids: Vec<u32>,
}

fn refs() -> Refs {
    let path =
        common::repo_root().join("crates/exprans-infer/tests/data/smollm2_tokenizer_refs.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `dir/file` when `dir` holds every file of `files`, or `None` (notice printed).
fn model_dir(dir: PathBuf, files: &[&str], what: &str, var: &str) -> Option<PathBuf> {
    if files.iter().all(|f| dir.join(f).exists()) {
        Some(dir)
    } else {
        eprintln!(
            "SKIPPED: {what} tokenizer files not found in {} (set {var})",
            dir.display()
        );
        None
    }
}

fn smollm2_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("EXPRANS_SMOLLM2_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::repo_root().join("target/models/SmolLM2-135M-Instruct"));
    let files = ["tokenizer.json", "tokenizer_config.json"];
    model_dir(dir, &files, "SmolLM2-135M-Instruct", "EXPRANS_SMOLLM2_DIR")
}

fn minilm_dir() -> Option<PathBuf> {
    let models = std::env::var_os("EXPRANS_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| common::repo_root().join("../shared/models"));
    let dir = models.join("all-MiniLM-L6-v2");
    model_dir(
        dir,
        &["tokenizer.json"],
        "all-MiniLM-L6-v2",
        "EXPRANS_MODELS_DIR",
    )
}

fn read(dir: &std::path::Path, name: &str) -> String {
    std::fs::read_to_string(dir.join(name)).unwrap()
}

/// Every id pushed through a [`exprans_infer::tokenizer::Detokenizer`]: the texts it returned
/// and what `finish` gave, joined.
fn stream(t: &Tokenizer, ids: &[u32], skip_special_tokens: bool) -> String {
    let mut d = t.detokenizer(skip_special_tokens);
    let mut out = String::new();
    for &id in ids {
        let piece = d.push(id).unwrap();
        assert!(!piece.ends_with('\u{fffd}'), "{piece:?}");
        out += &piece;
    }
    out + &d.finish().unwrap()
}

/// Ids, decodes and streamed decodes of every case; truncation.
fn check_cases(t: &Tokenizer, refs: &ModelRefs) {
    assert!(refs.cases.len() >= 15);
    for c in &refs.cases {
        let text = &c.text;
        assert_eq!(t.encode(text, true).unwrap(), c.ids, "{text:?}");
        assert_eq!(t.encode(text, false).unwrap(), c.ids_no_special, "{text:?}");
        assert_eq!(t.decode(&c.ids, false).unwrap(), c.decoded, "{text:?}");
        assert_eq!(
            t.decode(&c.ids, true).unwrap(),
            c.decoded_skip_special,
            "{text:?}"
        );
        assert_eq!(stream(t, &c.ids, false), c.decoded, "streamed {text:?}");
        assert_eq!(
            stream(t, &c.ids, true),
            c.decoded_skip_special,
            "streamed {text:?}"
        );
    }
    for c in &refs.truncation {
        let cut = t.clone().with_truncation(c.max_len).unwrap();
        let ids = cut.encode(&c.text, true).unwrap();
        assert_eq!(ids, c.ids, "{:?} to {}", c.text, c.max_len);
        assert!(ids.len() <= c.max_len);
    }
}

#[test]
fn chat_templates_render_as_jinja2_does() {
    let refs = refs();
    assert!(refs.templates.len() >= 2);
    for r in &refs.templates {
        let t = ChatTemplate::new(
            &r.template,
            Some(r.bos_token.clone()),
            Some(r.eos_token.clone()),
        )
        .unwrap();
        assert_eq!(
            t.render(&r.messages, r.add_generation_prompt).unwrap(),
            r.prompt,
            "{}",
            r.template
        );
    }
    // The first template refuses the role "bad" through raise_exception.
    let t = ChatTemplate::new(&refs.templates[0].template, None, None).unwrap();
    let err = t.render(&[Message::new("bad", "")], false).unwrap_err();
    assert!(err.to_string().contains("bad role"), "{err}");
}

#[test]
fn smollm2_ids_decodes_and_chat_prompts_match_python() {
    let Some(dir) = smollm2_dir() else { return };
    let refs = refs()
        .smollm2
        .expect("references for SmolLM2: run make_tokenizer_refs.py");
    let t = Tokenizer::from_json(&read(&dir, "tokenizer.json")).unwrap();
    assert_eq!(t.vocab_size(), 49152);
    assert_eq!(t.special_tokens_added(), 0);
    assert_eq!(
        (t.token_id("<|im_start|>"), t.token_id("<|im_end|>")),
        (Some(1), Some(2))
    );
    check_cases(&t, &refs);

    let template = ChatTemplate::from_tokenizer_config(&read(&dir, "tokenizer_config.json"))
        .unwrap()
        .expect("SmolLM2 has a chat template");
    assert_eq!(
        (template.bos_token(), template.eos_token()),
        (Some("<|im_start|>"), Some("<|im_end|>"))
    );
    assert_eq!(refs.chat.len(), 3);
    for c in &refs.chat {
        let prompt = template
            .render(&c.messages, c.add_generation_prompt)
            .unwrap();
        assert_eq!(prompt, c.prompt);
        assert_eq!(t.encode(&prompt, false).unwrap(), c.ids, "{prompt:?}");
        assert_eq!(stream(&t, &c.ids, false), prompt);
    }
}

#[test]
fn minilm_ids_match_python_and_the_old_tokenizer() {
    let Some(dir) = minilm_dir() else { return };
    let refs = refs()
        .minilm
        .expect("references for all-MiniLM-L6-v2: run make_tokenizer_refs.py");
    // The file asks for padding to 128 and truncation at 128: both are dropped on load.
    let t = Tokenizer::from_json(&read(&dir, "tokenizer.json")).unwrap();
    assert_eq!(
        (t.vocab_size(), t.max_len(), t.special_tokens_added()),
        (30522, None, 2)
    );
    assert_eq!(
        (t.token_id("[CLS]"), t.token_id("[SEP]")),
        (Some(101), Some(102))
    );
    check_cases(&t, &refs);

    // Ids the hand-written WordPiece tokenizer this crate had gave (and `tokenizers` 0.22).
    let t = t.with_truncation(256).unwrap();
    let old: [(&str, &[u32]); 5] = [
        (
            "A man is eating food.",
            &[101, 1037, 2158, 2003, 5983, 2833, 1012, 102],
        ),
        (
            "Héllo, WORLD!! naïve café — 東京 déjà-vu",
            &[
                101, 7592, 1010, 2088, 999, 999, 15743, 7668, 1517, 1879, 1755, 2139, 3900, 1011,
                24728, 102,
            ],
        ),
        (
            "Don't stop believin' 123.45",
            &[
                101, 2123, 1005, 1056, 2644, 19337, 2666, 6371, 1005, 13138, 1012, 3429, 102,
            ],
        ),
        (
            "unaffable xyzzyplugh",
            &[101, 14477, 20961, 3468, 1060, 2100, 28753, 24759, 8953, 102],
        ),
        (
            "\tTabs\nand\u{a0}nbsp\u{200b}zero-width \u{3a9} \u{1c4}",
            &[
                101, 21628, 2015, 1998, 1050, 5910, 2361, 6290, 2080, 1011, 9381, 1179, 100, 102,
            ],
        ),
    ];
    for (text, want) in old {
        assert_eq!(t.encode(text, true).unwrap(), want, "{text:?}");
    }
    let long = t.encode(&"word ".repeat(300), true).unwrap();
    assert_eq!(long.len(), 256);
    assert_eq!((long[0], long[255]), (101, 102));
}
