#!/usr/bin/env bash
# The one short run for a machine with a real GPU (`run` tool of the device machine): builds,
# then on all-MiniLM-L6-v2 BF16 measures the GPU decode kernels against copy shaders writing the
# same bytes (default and --fast files), and the embedding model's forward pass with weights
# plain, decoded and fused (bit-identical, GPU memory held by the weights). Writes everything to
# $OUT (or ./device-out). Budget: a few minutes, most of it the build.
#
#   bash benches/device.sh [MODELS_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
models=${1:-../shared/models}
out=${OUT:-device-out}
mkdir -p "$out"
export XDG_RUNTIME_DIR=$(mktemp -d)
chmod 700 "$XDG_RUNTIME_DIR"
model="$models/all-MiniLM-L6-v2.bf16.safetensors"
[ -f "$model" ] || { echo "no model at $model" >&2; exit 1; }

cargo build --release -p exprans-cli --bin exprans --example embed 2>&1 | tail -1
bin=target/release/exprans
$bin devices | tee "$out/devices.txt"
# Decode kernels vs copy shaders (kernel figures, labelled as such), and the CPU figures.
$bin bench "$model" --device gpu --json --repeat 5 >"$out/bench.json"
python3 - "$out/bench.json" <<'PY'
import json, sys
v = json.load(open(sys.argv[1]))
for mode, g in v["gpu"].items():
    print(f"GPU {mode} file on {g['adapter']['name']}: decode kernel {g['decode'] / 1e9:.1f} GB/s, "
          f"{g['decode_vs_copy_u32']:.2f}x the u32 copy shader, {g['decode_vs_copy_vec4']:.2f}x "
          f"the vec4 copy; upload+decode {g['upload_and_decode'] / 1e9:.1f} GB/s vs upload "
          f"uncompressed {g['upload_uncompressed'] / 1e9:.1f} GB/s")
PY
# End to end, the user's command: GPU decompress vs CPU decompress of the same file.
$bin compress "$model" -o "$out/m.xr" --force -q
for device in gpu cpu; do
  TIMEFORMAT="decompress --device $device (whole command): %R s"
  time $bin decompress "$out/m.xr" -o "$out/m.$device.safetensors" --device $device --force -q
done
cmp "$out/m.gpu.safetensors" "$model" && cmp "$out/m.cpu.safetensors" "$model"
rm -f "$out"/m.*
# Forward passes: plain vs decoded vs fused weights (tokens/s and memory), bit-identical.
EXPRANS_MODELS_DIR="$models" target/release/examples/embed --compare | tee "$out/embed.txt"

# Text generation (exprans generate) with SmolLM2-135M's shapes and random weights (the real model
# cannot be fetched here): plain vs decoded vs fused tokens/s and GPU memory, identical tokens.
cargo build --release -p exprans-cli --example synthetic_lm 2>&1 | tail -1
lm="$out/synthetic-lm"
target/release/examples/synthetic_lm "$lm"
$bin compress "$lm" -o "$lm.exprans" --rows-per-block 16 --quiet --force
for weights in plain decoded fused; do
  src=$([ $weights = plain ] && echo "$lm" || echo "$lm.exprans")
  $bin generate "$src" --prompt "w5 w6 w7 w8" --max-new-tokens 64 --weights $weights --json \
    >"$out/generate-$weights.json"
done
python3 - "$out" <<'PY'
import json, sys
runs = {w: json.load(open(f"{sys.argv[1]}/generate-{w}.json")) for w in ["plain", "decoded", "fused"]}
same = all(r["generated_ids"] == runs["plain"]["generated_ids"] for r in runs.values())
print(f"generate (SmolLM2 shapes, random weights) on {runs['plain']['device']}: identical tokens: {same}")
for w, r in runs.items():
    t = r["timings"]
    print(f"  {w}: weights {t['weight_bytes'] / 1e6:.1f} MB, prefill {t['prefill_tokens_per_s']:.1f} tokens/s, "
          f"decode {t['decode_tokens_per_s']:.1f} tokens/s")
p, f = runs["plain"]["timings"], runs["fused"]["timings"]
print(f"  fused/plain time per generated token: {p['decode_tokens_per_s'] / f['decode_tokens_per_s']:.2f}x")
PY
