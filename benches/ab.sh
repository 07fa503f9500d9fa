#!/usr/bin/env bash
# Compares two exprans binaries on one file in the same run: `exprans bench FILE --json` of each,
# taking turns ROUNDS times (so both see the same background load), best figure of each kept.
# Prints every CPU figure (compress and decode, per thread count) and, with --device gpu, the GPU
# decode / u32-copy kernel ratio, as new/old ratios.
#
#   benches/ab.sh OLD_BIN NEW_BIN FILE [ROUNDS] [--device gpu]
set -euo pipefail
old=$1 new=$2 file=$3 rounds=${4:-5}
shift $(( $# < 4 ? $# : 4 ))
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
for r in $(seq "$rounds"); do
  for side in old new; do
    bin=${!side}
    "$bin" bench "$file" --json --repeat 3 "$@" >"$out/$side.$r.json"
  done
done
python3 - "$out" "$rounds" <<'PY'
import json, sys
out, rounds = sys.argv[1], int(sys.argv[2])
best = {"old": {}, "new": {}}
for side in best:
    for r in range(1, rounds + 1):
        v = json.load(open(f"{out}/{side}.{r}.json"))
        for s in v["speeds"]:
            key = f"{s['what']} ({s['threads']} thread{'s' if s['threads'] > 1 else ''})"
            best[side][key] = max(best[side].get(key, 0), s["bytes_per_second"])
        for mode, g in (v.get("gpu") or {}).items():
            key = f"GPU {mode} file: decode / u32 copy (kernel)"
            best[side][key] = max(best[side].get(key, 0), g["decode_vs_copy_u32"])
print(f"| best of {rounds} rounds | old | new | new / old |")
print("|---|---|---|---|")
for key, o in best["old"].items():
    n = best["new"].get(key)
    if n is None:
        continue
    unit = (lambda x: f"{x:.3f}") if key.startswith("GPU") else (lambda x: f"{x / 1e6:.0f} MB/s")
    print(f"| {key} | {unit(o)} | {unit(n)} | {n / o:.3f} |")
PY
