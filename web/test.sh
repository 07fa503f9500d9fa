#!/usr/bin/env bash
# The browser test, from a fresh Debian machine: installs Chromium (Debian package `chromium`) and
# playwright-core (npm) when missing, builds the wasm module and the test data (web/build.sh
# --data), then loads the demo page in headless Chromium on WebGPU (SwiftShader) from a static
# server on 127.0.0.1 and checks that every tensor decodes to exactly the bytes of the original
# (web/test/browser-test.mjs). Prints the browser's decode throughput beside the native decoder's
# on the same files in the same run. Also runs the embedding page (when ../shared/models has
# all-MiniLM-L6-v2) and the chat page (SmolLM2-135M-Instruct, fetched into target/models by
# ../shared/tools/fetch-smollm2.sh) against native references; each of those two is skipped with
# a SKIPPED: line when its model is missing. Fails, and never skips, when Chromium cannot be
# started.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR=${CARGO_TARGET_DIR:-target}
export DEBIAN_FRONTEND=noninteractive

apt_install() {
  if [ "$(id -u)" != 0 ]; then
    echo "test.sh: missing $*; install with: sudo apt-get install -y $*" >&2
    exit 1
  fi
  apt-get update -qq
  apt-get install -y -qq "$@" >/dev/null
}

if [ -z "${CHROMIUM:-}" ] && ! command -v chromium >/dev/null; then
  echo "== apt-get install chromium"
  apt_install chromium
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  echo "== apt-get install nodejs npm"
  apt_install nodejs npm
fi
if [ "$(node -p 'process.versions.node.split(".")[0]')" -lt 20 ]; then
  echo "test.sh: playwright-core needs Node.js 20 or later, this is $(node --version)" >&2
  exit 1
fi

# SmolLM2-135M-Instruct for the chat test (idempotent: the script checks the file's hash).
SMOLLM2="$TARGET_DIR/models/SmolLM2-135M-Instruct"
FETCH_SMOLLM2=../shared/tools/fetch-smollm2.sh
if [ -f "$FETCH_SMOLLM2" ]; then
  echo "== SmolLM2-135M-Instruct in $SMOLLM2 ($FETCH_SMOLLM2)"
  bash "$FETCH_SMOLLM2" "$SMOLLM2" \
    || echo "SKIPPED: chat test: $FETCH_SMOLLM2 failed (see above); the rest of the test runs"
elif [ ! -f "$SMOLLM2/model.safetensors" ]; then
  echo "SKIPPED: chat test: $FETCH_SMOLLM2 is missing (no ../shared) and $SMOLLM2 has no model;" \
    "the rest of the test runs"
fi

web/build.sh --data

echo "== unit tests of the web crate (native)"
cargo test --release -q -p exprans-web

echo "== npm ci (playwright-core)"
(cd web && npm ci --no-audit --no-fund --loglevel=error)

echo "== browser test"
node web/test/browser-test.mjs --data "$TARGET_DIR/web-test"
