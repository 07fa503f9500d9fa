#!/usr/bin/env bash
# Builds exprans for the browser into web/pkg (wasm-bindgen --target web output: exprans_web.js,
# exprans_web_bg.wasm, TypeScript declarations).
#
#   web/build.sh           the wasm module only
#   web/build.sh --data    also the demo's data in target/web-test: the bundled sample compressed by
#                          the CLI, the conformance file (every dtype and edge case) and the native
#                          checksums and decode speeds of both (examples/web_fixtures.rs); and,
#                          when all-MiniLM-L6-v2 is in $EXPRANS_MODELS_DIR (default ../shared/models:
#                          all-MiniLM-L6-v2.bf16.safetensors and all-MiniLM-L6-v2/{tokenizer,config}.json),
#                          the embedding demo's data: the model compressed with --rows-per-block 32
#                          (and with default blocks, which fused weights refuse), its tokenizer and
#                          config, and the native reference embeddings (embeddings.json); and, when
#                          SmolLM2-135M-Instruct is in $TARGET_DIR/models (web/test.sh fetches it),
#                          the chat demo's data: the model directory compressed with
#                          --rows-per-block 1 and the native greedy reply to the test's chat prompt
#                          (chat.json, from `exprans generate --json`; kept while the program and the
#                          model are unchanged)
#
# Needs rustup and cargo; adds the wasm32 target and installs wasm-bindgen-cli at exactly the
# wasm-bindgen version of Cargo.lock when they are missing.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-target}

# The CLI must match the wasm-bindgen crate the module was built with, to the patch version.
WB_VERSION=$(awk '$0 == "name = \"wasm-bindgen\"" { getline; gsub(/"/, "", $3); print $3; exit }' Cargo.lock)
[ -n "$WB_VERSION" ] || { echo "build.sh: no wasm-bindgen in Cargo.lock" >&2; exit 1; }

rustup target list --installed | grep -qx wasm32-unknown-unknown || rustup target add wasm32-unknown-unknown
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$WB_VERSION" ]; then
  echo "== cargo install wasm-bindgen-cli $WB_VERSION"
  # --locked uses the CLI's own lock file; a registry mirror that lacks one of those exact
  # versions makes it fail, and then the newest compatible dependencies are used instead.
  cargo install wasm-bindgen-cli --version "=$WB_VERSION" --locked \
    || cargo install wasm-bindgen-cli --version "=$WB_VERSION"
fi

echo "== wasm32 build (web/ crate, release)"
cargo build --release --target wasm32-unknown-unknown -p exprans-web
wasm-bindgen --target web --out-dir web/pkg \
  "$TARGET_DIR/wasm32-unknown-unknown/release/exprans_web.wasm"
echo "web/pkg: $(du -k web/pkg/exprans_web_bg.wasm | cut -f1) KiB of wasm"

if [ "${1:-}" = "--data" ]; then
  DATA="$TARGET_DIR/web-test"
  echo "== test and demo data in $DATA"
  mkdir -p "$DATA"
  # A private runtime dir silences a harmless libwayland warning from wgpu's GL backend.
  if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
    XDG_RUNTIME_DIR=$(mktemp -d)
    chmod 700 "$XDG_RUNTIME_DIR"
    export XDG_RUNTIME_DIR
  fi
  cargo build --release --bin exprans --example web_fixtures
  # The sample as the CLI compresses it by default (blocks of 2^17 values), and with blocks of
  # 16384 values (more GPU parallelism).
  SAMPLE=samples/minilm-slice.bf16.safetensors
  "$TARGET_DIR/release/exprans" -q compress "$SAMPLE" --force \
    -o "$DATA/minilm-slice.bf16.exprans.safetensors"
  "$TARGET_DIR/release/exprans" -q compress "$SAMPLE" --force --block-size 16384 \
    -o "$DATA/minilm-slice.bf16.b16k.exprans.safetensors"
  # Frozen files of both format versions (crates/exprans/tests/frozen): the browser decodes
  # version-1 files as well as version-2 ones.
  FROZEN=crates/exprans/tests/frozen
  install -m 644 "$FROZEN/v1-default.exprans.safetensors" "$FROZEN/v2-fp8.exprans.safetensors" "$DATA/"
  "$TARGET_DIR/release/examples/web_fixtures" "$DATA" "$SAMPLE" \
    "$DATA/minilm-slice.bf16.exprans.safetensors" "$DATA/minilm-slice.bf16.b16k.exprans.safetensors" \
    "$FROZEN/v1-input.safetensors=$DATA/v1-default.exprans.safetensors" \
    "$FROZEN/v2-fp8-input.safetensors=$DATA/v2-fp8.exprans.safetensors"

  MODELS=${EXPRANS_MODELS_DIR:-../shared/models}
  MODEL="$MODELS/all-MiniLM-L6-v2.bf16.safetensors"
  MODEL_DIR="$MODELS/all-MiniLM-L6-v2"
  rm -f "$DATA/embeddings.json"
  if [ -f "$MODEL" ] && [ -f "$MODEL_DIR/tokenizer.json" ] && [ -f "$MODEL_DIR/config.json" ]; then
    echo "== embedding demo data (all-MiniLM-L6-v2)"
    mkdir -p "$DATA/all-MiniLM-L6-v2"
    install -m 644 "$MODEL_DIR/tokenizer.json" "$MODEL_DIR/config.json" "$DATA/all-MiniLM-L6-v2/"
    "$TARGET_DIR/release/exprans" -q compress "$MODEL" --force --rows-per-block 32 \
      -o "$DATA/all-MiniLM-L6-v2.rows32.exprans.safetensors"
    "$TARGET_DIR/release/exprans" -q compress "$MODEL" --force \
      -o "$DATA/all-MiniLM-L6-v2.exprans.safetensors"
    "$TARGET_DIR/release/examples/web_fixtures" --embeddings "$DATA" "$MODEL" "$MODEL_DIR" \
      "$DATA/all-MiniLM-L6-v2.rows32.exprans.safetensors"
  else
    echo "SKIPPED: embedding demo data: $MODEL or $MODEL_DIR/{tokenizer,config}.json is missing"
  fi
  CHAT_MODEL=${EXPRANS_CHAT_MODEL:-$TARGET_DIR/models/SmolLM2-135M-Instruct}
  CHAT_DIR="$DATA/SmolLM2-135M-Instruct.rows1.exprans"
  if [ -f "$CHAT_MODEL/model.safetensors" ] && [ -f "$CHAT_MODEL/tokenizer.json" ]; then
    echo "== chat demo data (SmolLM2-135M-Instruct, --rows-per-block 1)"
    "$TARGET_DIR/release/exprans" -q compress "$CHAT_MODEL" --force --rows-per-block 1 -o "$CHAT_DIR"
    "$TARGET_DIR/release/examples/web_fixtures" --chat "$DATA" "$TARGET_DIR/release/exprans" "$CHAT_DIR"
  else
    rm -f "$DATA/chat.json"
    echo "SKIPPED: chat demo data: $CHAT_MODEL/{model.safetensors,tokenizer.json} is missing" \
      "(web/test.sh fetches it with ../shared/tools/fetch-smollm2.sh)"
  fi
fi
