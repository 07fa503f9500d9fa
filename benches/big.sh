#!/usr/bin/env bash
# Bounded memory, measured (issue 10): builds a synthetic BF16 model larger than this machine's
# RAM from real weights (all-MiniLM-L6-v2's, tiled, each tensor's low mantissa bits varied with
# random bits so that no two tensors are alike and the model does not compress trivially),
# compresses and decompresses it with --threads 2, checks the round trip tensor by tensor
# (CRC-32 of each tensor's bytes, computed while writing the model and again from the output),
# and records peak RSS and wall time of each command (/usr/bin/time -v). Then the same on the
# GPU (`decompress --device gpu`, lavapipe here) for a smaller model and for a model whose one
# tensor is larger than the GPU's storage-binding limit (decoded in pieces).
#
#   bash benches/big.sh [SIZE_GB] [DIR]     (defaults: 26 GB, target/big; needs ~2.7x SIZE_GB of
#                                            disk: the model and its compressed form, then the
#                                            compressed form and the decompressed model)
#
# Prints a markdown table and writes DIR/big.json. Takes minutes (disk and 2 cores bound).
set -euo pipefail
cd "$(dirname "$0")/.."
size_gb=${1:-26}
dir=${2:-target/big}
gpu_gb=${EXPRANS_BIG_GPU_GB:-2}
mkdir -p "$dir"
export XDG_RUNTIME_DIR=$(mktemp -d)
chmod 700 "$XDG_RUNTIME_DIR"
cargo build --release -p exprans-cli --bin exprans 2>&1 | tail -1
bin=$PWD/target/release/exprans
base=../shared/models/all-MiniLM-L6-v2.bf16.safetensors
[ -f "$base" ] || base=samples/minilm-slice.bf16.safetensors

py=python3
python3 -c 'import numpy' 2>/dev/null || {
  [ -x target/bench-venv/bin/python ] || { python3 -m venv target/bench-venv && target/bench-venv/bin/pip -q install numpy; }
  py=target/bench-venv/bin/python
}

# make MODEL TOTAL_BYTES TENSOR_VALUES: a BF16 safetensors file of tensors of TENSOR_VALUES values
# ([rows, 4096]) filling about TOTAL_BYTES, streamed to disk; prints nothing, writes MODEL.crc.
make_model() {
  "$py" - "$base" "$1" "$2" "$3" <<'EOF'
import json, struct, sys, zlib
import numpy as np
base, out, total, per = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
blob = open(base, "rb").read()
n = struct.unpack("<Q", blob[:8])[0]
header = json.loads(blob[8:8 + n])
data = blob[8 + n:]
# Every BF16 weight of the base model, as one pool of real values.
pool = np.concatenate([
    np.frombuffer(data[t["data_offsets"][0]:t["data_offsets"][1]], dtype="<u2")
    for k, t in sorted(header.items()) if k != "__metadata__" and t["dtype"] == "BF16"
])
cols = 4096
rows = per // cols
count = max(1, total // (2 * rows * cols))
entries, offset = {}, 0
for i in range(count):
    b = 2 * rows * cols
    entries[f"layers.{i}.weight"] = {"dtype": "BF16", "shape": [rows, cols], "data_offsets": [offset, offset + b]}
    offset += b
js = json.dumps(entries, separators=(",", ":"))
js += " " * ((-(8 + len(js))) % 16)
rng = np.random.default_rng(26)
crcs = {}
with open(out, "wb") as f:
    f.write(struct.pack("<Q", len(js)) + js.encode())
    for i in range(count):
        start = (i * 7919 * 4096) % len(pool)
        idx = (start + np.arange(rows * cols, dtype=np.int64)) % len(pool)
        v = pool[idx] ^ rng.integers(0, 8, rows * cols, dtype=np.uint16)
        b = v.astype("<u2").tobytes()
        crcs[f"layers.{i}.weight"] = zlib.crc32(b)
        f.write(b)
json.dump(crcs, open(out + ".crc", "w"))
EOF
}

# check MODEL CRC_FILE: per-tensor CRC-32 of MODEL equal to those in CRC_FILE.
check_model() {
  "$py" - "$1" "$2" <<'EOF'
import json, struct, sys, zlib
path, crcs = sys.argv[1], json.load(open(sys.argv[2]))
with open(path, "rb") as f:
    n = struct.unpack("<Q", f.read(8))[0]
    header = json.loads(f.read(n))
    bad = 0
    for name, t in sorted(((k, v) for k, v in header.items() if k != "__metadata__"), key=lambda kv: kv[1]["data_offsets"]):
        b, e = t["data_offsets"]
        f.seek(8 + n + b)
        crc, left = 0, e - b
        while left:
            chunk = f.read(min(left, 64 << 20))
            crc = zlib.crc32(chunk, crc)
            left -= len(chunk)
        bad += crc != crcs[name]
    if bad or len(header) != len(crcs):
        sys.exit(f"round trip FAILED: {bad} tensors differ")
print(f"round trip ok: {len(crcs)} tensors")
EOF
}

results=()
# timed NAME INPUT_BYTES CMD...: runs CMD under /usr/bin/time -v, records peak RSS and wall time.
timed() {
  local name=$1 bytes=$2
  shift 2
  /usr/bin/time -v "$@" 2>"$dir/time.txt" >/dev/null || { cat "$dir/time.txt" >&2; exit 1; }
  local rss wall
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$dir/time.txt")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$dir/time.txt")
  results+=("$name|$bytes|$rss|$wall")
  echo "$name: peak RSS $((rss / 1024)) MiB, wall $wall" >&2
}

run_model() {
  local label=$1 gb=$2 per=$3 device=$4
  local model=$dir/$label.safetensors packed=$dir/$label.exprans.safetensors out=$dir/$label.out.safetensors
  rm -f "$model" "$packed" "$out"
  echo "== $label: building a ${gb} GB model (tensors of $per values)" >&2
  make_model "$model" "$((gb * 1000000000))" "$per"
  local bytes
  bytes=$(stat -c %s "$model")
  if [ "$device" = cpu ]; then
    timed "$label: compress --threads 2" "$bytes" "$bin" compress "$model" -o "$packed" --threads 2 -q
  else
    "$bin" compress "$model" -o "$packed" --threads 2 -q
  fi
  rm -f "$model" # the disk holds the compressed form and the output, not all three
  timed "$label: decompress --device $device --threads 2" "$bytes" \
    "$bin" decompress "$packed" -o "$out" --device "$device" --threads 2 -q
  check_model "$out" "$model.crc" >&2
  echo "$label: $(stat -c %s "$packed") bytes compressed" >&2
  rm -f "$packed" "$out"
}

# The largest tensor of the big models: 64 M values (128 MB). EXPRANS_BIG_STEPS picks the runs
# (default all three; EXPRANS_BIG_GPU_GB sets the GPU model's size, default 2: lavapipe decodes
# at tens of MB/s, so a GPU model larger than RAM takes a quarter of an hour).
steps=${EXPRANS_BIG_STEPS:-cpu gpu one}
[[ $steps == *cpu* ]] && run_model "big-${size_gb}gb" "$size_gb" $((64 << 20)) cpu
[[ $steps == *gpu* ]] && run_model "gpu-${gpu_gb}gb" "$gpu_gb" $((64 << 20)) gpu
# One tensor of 300 M values (600 MB), larger than lavapipe's 128 MiB storage binding.
[[ $steps == *one* ]] && run_model "one-600mb-tensor" 1 $((300 << 20)) gpu

mem_gb=$(awk '/MemTotal/ {printf "%.1f", $2 / 1048576}' /proc/meminfo)
{
  echo "Bounded memory ($(nproc) cores, ${mem_gb} GiB RAM, $(date -u +%Y-%m-%d); \`bash benches/big.sh $size_gb\`):"
  echo
  echo "| command | model | largest tensor | peak RSS | wall | MB/s |"
  echo "|---|---:|---:|---:|---:|---:|"
  for r in "${results[@]}"; do
    IFS='|' read -r name bytes rss wall <<<"$r"
    secs=$(echo "$wall" | awk -F: '{ if (NF == 3) print $1 * 3600 + $2 * 60 + $3; else print $1 * 60 + $2 }')
    largest=$([[ $name == one-600mb* ]] && echo "600 MB" || echo "128 MB")
    printf "| %s | %.1f GB | %s | %d MiB | %s | %.0f |\n" "$name" "$(echo "$bytes / 1000000000" | bc -l)" \
      "$largest" "$((rss / 1024))" "$wall" "$(echo "$bytes / 1000000 / $secs" | bc -l)"
  done
} | tee "$dir/big.md"
