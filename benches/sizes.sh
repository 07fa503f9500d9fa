#!/usr/bin/env bash
# Compressed sizes with the current build: per file its original size, the exprans default and
# `--fast` ratios (compressed file size / original file size) and the three order-0 bounds that
# `exprans info --json` reports for the default file (exponent plane coded and the rest raw; every
# byte plane coded; each tensor's whole 16-bit value as one symbol), plus info's overheads.
#
#   benches/sizes.sh [--exprans PATH] [--json PATH] [--force] [FILE.safetensors ...]
#
#   --exprans PATH  exprans binary (default: `cargo build --release -p exprans-cli` and use
#                   target/release/exprans)
#   --json PATH     output (default benches/sizes-out/sizes.json)
#   --force         remake the derived files (F16, FP8) even when they are up to date
#   FILE            files to measure instead of the default set:
#                     ../shared/models/all-MiniLM-L6-v2.bf16.safetensors        (BF16)
#                     ../shared/models/all-MiniLM-L6-v2/model.safetensors       (F32)
#                     target/bench-files/all-MiniLM-L6-v2.f16.safetensors       (F16, made from F32)
#                     target/bench-files/all-MiniLM-L6-v2.fp8.safetensors       (F8_E4M3, made from
#                                                       F32 by `--example to_fp8` of crates/exprans)
#                     target/models/SmolLM2-135M-Instruct/model.safetensors     (BF16, when present)
#
# The F16 file is every F32 tensor rounded to F16 (round to nearest even, numpy's astype where a
# python with numpy is found: target/plots-venv, target/peers-venv, python3; else the standard
# library's struct 'e' format, same rounding, slower); other tensors are copied. Compressed files
# are written to a temp dir under target/bench-files/ and removed. Prints a markdown table.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
exprans=""
json=""
force=0
files=()
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
abspath() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s/%s\n' "$PWD" "$1" ;; esac; }
while [ $# -gt 0 ]; do
  case $1 in
    --exprans) exprans=$(abspath "$2"); shift 2 ;;
    --exprans=*) exprans=$(abspath "${1#*=}"); shift ;;
    --json) json=$(abspath "$2"); shift 2 ;;
    --json=*) json=$(abspath "${1#*=}"); shift ;;
    --force) force=1; shift ;;
    -h|--help) usage; exit 0 ;;
    -*) echo "sizes.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) files+=("$(abspath "$1")"); shift ;;
  esac
done
cd "$repo"
json=${json:-$repo/benches/sizes-out/sizes.json}
if [ -z "$exprans" ]; then
  echo "sizes.sh: building exprans (cargo build --release -p exprans-cli)" >&2
  cargo build --release -p exprans-cli >&2
  exprans=$repo/target/release/exprans
fi
[ -x "$exprans" ] || { echo "sizes.sh: not an executable: $exprans" >&2; exit 2; }

derived=$repo/target/bench-files
mkdir -p "$derived" "$(dirname "$json")"
# stale: OUT is missing, or older than any of the following files, or --force
stale() { local o=$1; shift; [ $force = 1 ] || [ ! -f "$o" ] && return 0
  for i in "$@"; do [ "$i" -nt "$o" ] && return 0; done; return 1; }

# F32 safetensors -> F16 (F32 tensors rounded, others copied), header rewritten
to_f16() {
  local py=""
  for c in "$repo/target/plots-venv/bin/python" "$repo/target/peers-venv/bin/python" python3; do
    if command -v "$c" >/dev/null 2>&1 && "$c" -c 'import numpy' 2>/dev/null; then py=$c; break; fi
  done
  [ -n "$py" ] || py=python3
  "$py" - "$1" "$2" <<'PY'
import json, struct, sys
src, dst = sys.argv[1], sys.argv[2]
try:
    import numpy as np
except ImportError:
    np = None
with open(src, "rb") as f:
    blob = f.read()
(n,) = struct.unpack_from("<Q", blob)
header = json.loads(blob[8:8 + n])
data = memoryview(blob)[8 + n:]
out_h, parts, pos = {}, [], 0
if "__metadata__" in header:
    out_h["__metadata__"] = header["__metadata__"]
items = sorted(((k, v) for k, v in header.items() if k != "__metadata__"),
               key=lambda kv: kv[1]["data_offsets"][0])
for name, t in items:
    a, b = t["data_offsets"]
    raw, dtype = bytes(data[a:b]), t["dtype"]
    if dtype == "F32":
        if np is not None:
            raw = np.frombuffer(raw, dtype="<f4").astype("<f2").tobytes()
        else:
            step = 4 << 20  # bytes of F32 per chunk
            raw = b"".join(struct.pack(f"<{len(c) // 4}e", *struct.unpack(f"<{len(c) // 4}f", c))
                           for c in (raw[i:i + step] for i in range(0, len(raw), step)))
        dtype = "F16"
    out_h[name] = {"dtype": dtype, "shape": t["shape"], "data_offsets": [pos, pos + len(raw)]}
    parts.append(raw)
    pos += len(raw)
hj = json.dumps(out_h, separators=(",", ":"))
hj += " " * (-(8 + len(hj)) % 8)
with open(dst + ".tmp", "wb") as f:
    f.write(struct.pack("<Q", len(hj)) + hj.encode())
    for p in parts:
        f.write(p)
import os
os.replace(dst + ".tmp", dst)
print(f"sizes.sh: wrote {dst} ({'numpy' if np else 'struct'})", file=sys.stderr)
PY
}

bf16=$repo/../shared/models/all-MiniLM-L6-v2.bf16.safetensors
f32=$repo/../shared/models/all-MiniLM-L6-v2/model.safetensors
f16=$derived/all-MiniLM-L6-v2.f16.safetensors
fp8=$derived/all-MiniLM-L6-v2.fp8.safetensors
smol=$repo/target/models/SmolLM2-135M-Instruct/model.safetensors
# label|how the file was made, per file (for the JSON)
declare -A how=(
  ["$bf16"]="MiniLM-L6 BF16|../shared/models (the F32 checkpoint rounded to BF16)"
  ["$f32"]="MiniLM-L6 F32|../shared/models (the original checkpoint)"
  ["$f16"]="MiniLM-L6 F16|F32 checkpoint rounded to F16 by benches/sizes.sh"
  ["$fp8"]="MiniLM-L6 FP8|F32 checkpoint rounded to F8_E4M3 by cargo run --release -p exprans --example to_fp8"
  ["$smol"]="SmolLM2-135M BF16|../shared/tools/fetch-smollm2.sh (GGUF dequantized to BF16)"
)
if [ ${#files[@]} -eq 0 ]; then
  files=("$bf16" "$f32" "$f16" "$fp8")
  if stale "$f16" "$f32" "$0"; then to_f16 "$f32" "$f16"; fi
  echo "sizes.sh: building the to_fp8 example (cargo build --release -p exprans --example to_fp8)" >&2
  cargo build --release -p exprans --example to_fp8 >&2
  if stale "$fp8" "$f32" "$repo/target/release/examples/to_fp8"; then
    "$repo/target/release/examples/to_fp8" "$f32" "$fp8.tmp" && mv "$fp8.tmp" "$fp8"
    echo "sizes.sh: wrote $fp8" >&2
  fi
  if [ -f "$smol" ]; then files+=("$smol")
  else echo "sizes.sh: $smol absent, skipped (bash ../shared/tools/fetch-smollm2.sh target/models/SmolLM2-135M-Instruct)" >&2
  fi
fi

work=$(mktemp -d "$derived/sizes-tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT
list=$work/list
: >"$list"
i=0
for f in "${files[@]}"; do
  [ -f "$f" ] || { echo "sizes.sh: no such file: $f" >&2; exit 2; }
  i=$((i + 1))
  for mode in default fast; do
    flag=$([ $mode = fast ] && echo --fast || true)
    out=$work/$i.$mode.exprans.safetensors
    t0=$(date +%s.%N)
    "$exprans" compress -q $flag "$f" -o "$out"
    t1=$(date +%s.%N)
    "$exprans" info --json "$out" >"$work/$i.$mode.info.json"
    echo "$(stat -c %s "$out") $t0 $t1" >"$work/$i.$mode.size"
    rm -f "$out"
  done
  printf '%s\t%s\t%s\n' "$i" "$f" "${how[$f]:-}" >>"$list"
  echo "sizes.sh: $(basename "$f") done" >&2
done

python3 - "$work" "$json" "$exprans" "$("$exprans" --version)" <<'PY'
import datetime, json, os, struct, sys
work, out, exprans, version = sys.argv[1:5]
cpu = "unknown"
try:
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except (OSError, StopIteration):
    pass
files = []
for line in open(f"{work}/list"):
    i, path, how = line.rstrip("\n").split("\t")
    label, _, made = how.partition("|")
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    by = {}
    for k, t in header.items():
        if k != "__metadata__":
            by[t["dtype"]] = by.get(t["dtype"], 0) + t["data_offsets"][1] - t["data_offsets"][0]
    size = os.path.getsize(path)
    rec = {"label": label or os.path.basename(path), "file": os.path.relpath(path),
           "made": made or None, "dtype": max(by, key=by.get), "bytes_by_dtype": by,
           "tensors": len([k for k in header if k != "__metadata__"]), "original_bytes": size}
    for mode in ("default", "fast"):
        b, t0, t1 = open(f"{work}/{i}.{mode}.size").read().split()
        info = json.load(open(f"{work}/{i}.{mode}.info.json"))["totals"]
        assert info["original_bytes"] == size, (path, info["original_bytes"], size)
        rec[mode] = {"bytes": int(b), "ratio": int(b) / size, "info_ratio": info["ratio"],
                     "compress_seconds_wall": float(t1) - float(t0), "info_totals": info}
    t = rec["default"]["info_totals"]
    rec["bounds"] = {"exponent_only": t["bound_exponent_only"], "all_planes": t["bound_all_planes"],
                     "joint16": t["bound_joint16"]}
    files.append(rec)
report = {
    "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
    "exprans_version": version, "exprans_path": exprans, "cpu": cpu,
    "method": "exprans compress [--fast] FILE -o OUT (default settings, all cores); ratio = "
              "size of OUT / size of FILE; bounds from `exprans info --json OUT` totals of the "
              "default file (order-0, per tensor, shares of the whole original file)",
    "files": files,
}
os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
with open(out, "w") as f:
    json.dump(report, f, indent=2)
    f.write("\n")
pct = lambda x: f"{100 * x:.2f}%"
print(f"exprans sizes ({version}, {report['date']}): share of the original file\n")
print("| file | dtype | original bytes | exprans | exprans --fast | bound: exponent only | "
      "bound: every plane | bound: joint 16-bit |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for r in files:
    b = r["bounds"]
    print(f"| {r['label']} | {r['dtype']} | {r['original_bytes']:,} | **{pct(r['default']['ratio'])}** "
          f"| {pct(r['fast']['ratio'])} | {pct(b['exponent_only'])} | {pct(b['all_planes'])} "
          f"| {pct(b['joint16'])} |")
print(f"sizes.sh: wrote {out}", file=sys.stderr)
PY
