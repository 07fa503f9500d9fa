#!/usr/bin/env bash
# Text generation with SmolLM2-135M-Instruct, weights plain, decoded once and fused (kept
# compressed, decoded inside the matrix kernels; from a default and a --fast file), all on the
# default GPU adapter (lavapipe here; a real GPU on the device machine), plus the f32 CPU
# reference: greedy tokens for each prompt must be identical in every GPU mode (the script fails
# otherwise) and are compared with the CPU's; prints GPU memory, load time, prefill and decode
# tokens/s per mode, and fused/plain time per generated token. The commands timed are the ones
# a user types (`exprans generate DIR --chat TEXT --json`), process start and file reads included.
#
#   bash benches/generate.sh [NEW_TOKENS] [MODEL_DIR]      (writes $OUT or ./generate-out)
set -euo pipefail
cd "$(dirname "$0")/.."
new=${1:-32}
model=${2:-target/models/SmolLM2-135M-Instruct}
out=${OUT:-generate-out}
mkdir -p "$out"
export XDG_RUNTIME_DIR=$(mktemp -d)
chmod 700 "$XDG_RUNTIME_DIR"
[ -f "$model/model.safetensors" ] || bash ../shared/tools/fetch-smollm2.sh "$model"
cargo build --release -p exprans-cli --bin exprans 2>&1 | tail -1
bin=target/release/exprans
for kind in default fast; do
  flag=$([ $kind = fast ] && echo --fast || true)
  [ -d "$out/model-$kind.exprans" ] ||
    $bin compress "$model" -o "$out/model-$kind.exprans" --rows-per-block 16 $flag --quiet
done
prompts=("What is the capital of France?" "Write a haiku about the sea." "Explain what a GPU does in one sentence.")
for i in "${!prompts[@]}"; do
  p=${prompts[$i]}
  $bin generate "$model" --chat "$p" --max-new-tokens "$new" --json --device cpu >"$out/p$i-cpu.json"
  $bin generate "$model" --chat "$p" --max-new-tokens "$new" --json --weights plain >"$out/p$i-plain.json"
  $bin generate "$out/model-default.exprans" --chat "$p" --max-new-tokens "$new" --json --weights decoded >"$out/p$i-decoded.json"
  $bin generate "$out/model-default.exprans" --chat "$p" --max-new-tokens "$new" --json --weights fused >"$out/p$i-fused.json"
  $bin generate "$out/model-fast.exprans" --chat "$p" --max-new-tokens "$new" --json --weights fused >"$out/p$i-fused-fast.json"
done
python3 - "$out" "${#prompts[@]}" <<'PY'
import json, sys
out, n = sys.argv[1], int(sys.argv[2])
modes = ["plain", "decoded", "fused", "fused-fast"]
rows = {m: [] for m in modes + ["cpu"]}
ok = True
for i in range(n):
    runs = {m: json.load(open(f"{out}/p{i}-{m}.json")) for m in modes + ["cpu"]}
    ids = {m: r["generated_ids"] for m, r in runs.items()}
    same = all(ids[m] == ids["plain"] for m in modes)
    ok &= same
    agree = next((k for k, (a, b) in enumerate(zip(ids["plain"], ids["cpu"])) if a != b), min(len(ids["plain"]), len(ids["cpu"])))
    print(f"prompt {i}: {len(ids['plain'])} tokens, identical in every GPU mode: {same}; "
          f"first {agree} agree with the CPU reference; text: {runs['plain']['text'][:70]!r}")
    for m, r in runs.items():
        rows[m].append(r["timings"])
print(f"\ndevice: {json.load(open(f'{out}/p0-plain.json'))['device']}")
print("| weights | GPU memory: weights | activations + KV cache | load s | prefill tokens/s | decode tokens/s | time per token vs plain |")
print("|---|---|---|---|---|---|---|")
def mean(m, k):
    v = [t[k] for t in rows[m] if t[k] is not None]
    return sum(v) / len(v) if v else float("nan")
for m in modes + ["cpu"]:
    w, a = rows[m][0]["weight_bytes"], rows[m][0]["activation_bytes"]
    mb = lambda b: "-" if b is None else f"{b / 1e6:.1f} MB"
    ratio = mean("plain", "decode_tokens_per_s") / mean(m, "decode_tokens_per_s")
    label = "cpu (f32 reference)" if m == "cpu" else m
    print(f"| {label} | {mb(w)} | {mb(a)} | {mean(m, 'load_s'):.2f} | {mean(m, 'prefill_tokens_per_s'):.2f} "
          f"| {mean(m, 'decode_tokens_per_s'):.2f} | {ratio:.2f}x |")
pw = rows["plain"][0]["weight_bytes"]
for m in ["decoded", "fused", "fused-fast"]:
    print(f"{m}: weights {rows[m][0]['weight_bytes'] / pw:.3f} of plain's bytes")
sys.exit(0 if ok else 1)
PY
