#!/usr/bin/env bash
# Many tiny coded tensors (issue 10, defect 3): a model of COUNT BF16 tensors of 512 values each
# (slices of all-MiniLM-L6-v2's real weights at random offsets, low mantissa bits varied),
# compressed so that every tensor is coded, then decompressed on the CPU and on the GPU (lavapipe here) under
# /usr/bin/time -v: peak RSS and wall time of each command, and the round trip checked with cmp.
# Every GPU batch is bounded by everything it allocates (tables, directories, staging), so memory
# must not grow with the tensor count.
#
#   bash benches/many_tensors.sh [COUNT] [DIR]      (defaults: 300000, target/many)
set -euo pipefail
cd "$(dirname "$0")/.."
count=${1:-300000}
dir=${2:-target/many}
mkdir -p "$dir"
export XDG_RUNTIME_DIR=$(mktemp -d)
chmod 700 "$XDG_RUNTIME_DIR"
cargo build --release -p exprans-cli --bin exprans 2>&1 | tail -1
bin=$PWD/target/release/exprans
base=../shared/models/all-MiniLM-L6-v2.bf16.safetensors
[ -f "$base" ] || base=samples/minilm-slice.bf16.safetensors
model=$dir/many.safetensors
python3 - "$base" "$model" "$count" <<'EOF'
import json, random, struct, sys
base, out, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
blob = open(base, "rb").read()
n = struct.unpack("<Q", blob[:8])[0]
header = json.loads(blob[8:8 + n])
t = max((v for k, v in header.items() if k != "__metadata__" and v["dtype"] == "BF16"),
        key=lambda v: v["data_offsets"][1] - v["data_offsets"][0])
pool = blob[8 + n + t["data_offsets"][0]:8 + n + t["data_offsets"][1]]
per = 512 * 2
rng = random.Random(3)
entries = {}
for i in range(count):
    entries[f"t{i:07d}"] = {"dtype": "BF16", "shape": [512], "data_offsets": [i * per, (i + 1) * per]}
js = json.dumps(entries, separators=(",", ":"))
js += " " * ((-(8 + len(js))) % 16)
with open(out, "wb") as f:
    f.write(struct.pack("<Q", len(js)) + js.encode())
    for i in range(count):
        at = rng.randrange(0, len(pool) // 2 - 512) * 2
        chunk = bytearray(pool[at:at + per])
        k = rng.randrange(8)
        chunk[0::2] = bytes(chunk[0::2]).translate(bytes(b ^ k for b in range(256)))
        f.write(chunk)
EOF
"$bin" compress "$model" -o "$dir/many.exprans.safetensors" --block-size 512 --force -q
coded=$("$bin" info "$dir/many.exprans.safetensors" --json | python3 -c 'import json,sys; print(sum(t["encoding"] == "rans" for t in json.load(sys.stdin)["tensors"]))')
rows=()
for device in cpu gpu; do
  /usr/bin/time -v "$bin" decompress "$dir/many.exprans.safetensors" -o "$dir/out.safetensors" \
    --device "$device" --force -q 2>"$dir/time.txt"
  cmp "$dir/out.safetensors" "$model"
  rss=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$dir/time.txt")
  wall=$(awk -F': ' '/Elapsed \(wall clock\)/ {print $2}' "$dir/time.txt")
  rows+=("| decompress --device $device | $((rss / 1024)) MiB | $wall |")
done
echo "$count tensors of 512 BF16 values ($coded coded), $(stat -c %s "$model") bytes, compressed $(stat -c %s "$dir/many.exprans.safetensors") (\`bash benches/many_tensors.sh $count\`):"
echo
echo "| command | peak RSS | wall |"
echo "|---|---:|---:|"
printf '%s\n' "${rows[@]}"
rm -f "$model" "$dir/out.safetensors" "$dir/many.exprans.safetensors"
