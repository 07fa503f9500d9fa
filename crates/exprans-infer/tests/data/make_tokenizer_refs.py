#!/usr/bin/env python3
"""Writes smollm2_tokenizer_refs.json beside this script: reference token ids, decoded texts
and rendered chat prompts from the Python implementations (Hugging Face `tokenizers`, Jinja2
as `transformers` sets it up, and `transformers`' own `apply_chat_template` as a cross-check),
for tests/tokenizer.rs to compare the Rust crate against.

    python3 -m venv /tmp/tokvenv && /tmp/tokvenv/bin/pip install tokenizers transformers jinja2
    /tmp/tokvenv/bin/python crates/exprans-infer/tests/data/make_tokenizer_refs.py \
        [SMOLLM2_DIR] [MINILM_DIR]

Defaults: <workspace>/target/models/SmolLM2-135M-Instruct and
<workspace>/../shared/models/all-MiniLM-L6-v2. `transformers` is optional (the cross-check is
skipped without it).
"""

import json
import os
import sys

import jinja2
import jinja2.ext
import jinja2.sandbox
import tokenizers

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.normpath(os.path.join(HERE, "../../../.."))
SMOLLM2 = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/models/SmolLM2-135M-Instruct")
MINILM = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "../shared/models/all-MiniLM-L6-v2")

# Hard strings for both tokenizers.
TEXTS = [
    "",
    " \t\n  \n\n\t  x  \t\t\n",
    "  leading spaces",
    "trailing spaces   ",
    "café naïve résumé Ångström",
    "日本語のテキスト、中文和한국어",
    "👍🏽 family 👨\u200d👩\u200d👧 🇫🇷",
    "fn main() {\n\tlet x = {1, 2};\n\tprintln!(\"{x:?}\");\n}\n",
    "1234567890 3.14159 -42 1e-9",
    "<|im_start|>user\nHi<|im_end|>",
    "Pneumonoultramicroscopicsilicovolcanoconiosis" * 8,
    "שלום مرحبا (RTL) mixed",
    "\u0000\u0007 bell\u001b[0m \u00a0nbsp\u200bzero-width\ufeff",
    "don't I'm we'll they've she'd O'Neil",
    "Hello, World! How are you? — «quotes» “curly”",
    "   \n",
]

# The old hand-written BERT tokenizer's test strings (ids then checked against `tokenizers`).
BERT_TEXTS = [
    "A man is eating food.",
    "Héllo, WORLD!! naïve café — 東京 déjà-vu",
    "Don't stop believin' 123.45",
    "unaffable xyzzyplugh",
    "\tTabs\nand\u00a0nbsp\u200bzero-width \u03a9 \u01c4",
]

CONVERSATIONS = [
    ([{"role": "user", "content": "What is the capital of France?"}], False),
    ([{"role": "user", "content": "What is the capital of France?"}], True),
    (
        [
            {"role": "system", "content": "You are a terse assistant. Answer in one word."},
            {"role": "user", "content": "Capital of Japan? 日本"},
            {"role": "assistant", "content": "Tokyo 🗼"},
            {"role": "user", "content": "And of Italy?\n  Be brief. "},
        ],
        True,
    ),
]

# Templates exercising what HF templates use: whitespace control, tojson, string methods,
# loop controls, namespace, raise_exception (rendered with the same environment).
EXTRA_TEMPLATES = [
    (
        "{% for m in messages %}\n    {% if m.role == 'bad' %}\n        {{ raise_exception('bad role') }}\n"
        "    {% endif %}\n[{{ m.content.strip() }}]{% if not loop.last %},{% endif %}\n{% endfor %}\n"
        "{{ messages[0]|tojson }}|{{ {'b': [1, 2.5, none, true], 'a': 'é\"\\n\\t<&>'}|tojson(indent=2, sort_keys=true) }}\n"
        "{{ messages|tojson(separators=(',', ':')) }}",
        [{"role": "user", "content": "  a  "}, {"role": "x", "content": "b\n"}],
        False,
    ),
    (
        "{{- bos_token }}\n{%- set ns = namespace(sys='') %}\n{%- for m in messages %}\n"
        "  {%- if m['role'] == 'system' %}{% set ns.sys = m['content'] %}{% continue %}{% endif %}\n"
        "  {%- if loop.index0 > 3 %}{% break %}{% endif %}\n"
        "  {{- '[' + m['role'].upper() + '] ' }}{% if ns.sys and loop.index0 == 1 %}{{ ns.sys + ' | ' }}{% endif %}"
        "{{ m['content'] | trim }}{{ eos_token if m.role == 'assistant' else '' }}\n"
        "{% endfor %}\n{%- if add_generation_prompt %}[ASSISTANT]{% endif %}\n",
        [
            {"role": "system", "content": "Be nice."},
            {"role": "user", "content": " hi "},
            {"role": "assistant", "content": "hello"},
            {"role": "user", "content": "q2"},
            {"role": "assistant", "content": "a2"},
            {"role": "user", "content": "cut"},
        ],
        True,
    ),
]


def hf_environment():
    """The Jinja2 environment `transformers` renders chat templates in."""

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    return env


def text_cases(tok, texts):
    cases = []
    for text in texts:
        with_special = tok.encode(text, add_special_tokens=True).ids
        without = tok.encode(text, add_special_tokens=False).ids
        cases.append(
            {
                "text": text,
                "ids": with_special,
                "ids_no_special": without,
                "decoded": tok.decode(with_special, skip_special_tokens=False),
                "decoded_skip_special": tok.decode(with_special, skip_special_tokens=True),
            }
        )
    return cases


def truncation_cases(path, texts, max_len):
    tok = tokenizers.Tokenizer.from_file(path)
    tok.no_padding()
    tok.enable_truncation(max_len)
    return [{"text": t, "max_len": max_len, "ids": tok.encode(t, add_special_tokens=True).ids} for t in texts]


def load(path):
    tok = tokenizers.Tokenizer.from_file(path)
    tok.no_padding()
    tok.no_truncation()
    return tok


def main():
    out = {
        "generator": "make_tokenizer_refs.py: tokenizers %s, jinja2 %s" % (tokenizers.__version__, jinja2.__version__),
    }
    env = hf_environment()

    out["templates"] = [
        {"template": t, "messages": m, "add_generation_prompt": g, "bos_token": "<s>", "eos_token": "</s>",
         "prompt": env.from_string(t).render(messages=m, add_generation_prompt=g, bos_token="<s>", eos_token="</s>")}
        for t, m, g in EXTRA_TEMPLATES
    ]

    if os.path.exists(os.path.join(SMOLLM2, "tokenizer.json")):
        path = os.path.join(SMOLLM2, "tokenizer.json")
        tok = load(path)
        config = json.load(open(os.path.join(SMOLLM2, "tokenizer_config.json")))
        template = env.from_string(config["chat_template"])
        chats = []
        for messages, gen in CONVERSATIONS:
            prompt = template.render(
                messages=messages, add_generation_prompt=gen,
                bos_token=config["bos_token"], eos_token=config["eos_token"],
            )
            chats.append({
                "messages": messages, "add_generation_prompt": gen, "prompt": prompt,
                "ids": tok.encode(prompt, add_special_tokens=False).ids,
            })
        try:
            import transformers

            hf = transformers.AutoTokenizer.from_pretrained(SMOLLM2)
            for c in chats:
                rendered = hf.apply_chat_template(c["messages"], tokenize=False, add_generation_prompt=c["add_generation_prompt"])
                assert rendered == c["prompt"], (rendered, c["prompt"])
                ids = hf(rendered, add_special_tokens=False)["input_ids"]
                assert ids == c["ids"], (ids, c["ids"])
            out["generator"] += ", cross-checked with transformers %s" % transformers.__version__
        except ImportError:
            pass
        out["smollm2"] = {
            "cases": text_cases(tok, TEXTS),
            "truncation": truncation_cases(path, ["Hello world, this is a longer sentence to cut."], 5),
            "chat": chats,
        }
    else:
        print("no SmolLM2 tokenizer at", SMOLLM2, file=sys.stderr)

    if os.path.exists(os.path.join(MINILM, "tokenizer.json")):
        path = os.path.join(MINILM, "tokenizer.json")
        tok = load(path)
        out["minilm"] = {
            "cases": text_cases(tok, BERT_TEXTS + TEXTS),
            "truncation": truncation_cases(path, ["word " * 300, "A man is eating food."], 256)
            + truncation_cases(path, ["A man is eating food."], 4),
        }
    else:
        print("no all-MiniLM-L6-v2 tokenizer at", MINILM, file=sys.stderr)

    with open(os.path.join(HERE, "smollm2_tokenizer_refs.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
