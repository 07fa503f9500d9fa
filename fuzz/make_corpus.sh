#!/usr/bin/env bash
# Builds the fuzz corpora from real files (fuzz/README.md).
#
#   fuzz/make_corpus.sh          small seeds into fuzz/seeds/TARGET (committed, a few KB each)
#                                and larger ones into fuzz/corpus/TARGET (not committed)
#
# The small seeds are cut from the bundled sample (samples/minilm-slice.bf16.safetensors: real
# BF16 weights, and F16/F32 conversions of them) and from the frozen test vectors; the larger
# ones are the sample and the frozen files themselves, compressed with the CLI's option sets
# (default, --fast, --block-size 4096, --rows-per-block 1). Needs python3 and builds
# target/release/exprans when missing. The seeds are deterministic: rerunning rewrites the same
# bytes.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
exprans=$root/target/release/exprans
[ -x "$exprans" ] || cargo build --release -p exprans-cli
seeds=$root/fuzz/seeds
corpus=$root/fuzz/corpus
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$seeds"/{container,source_header,coded_entry,gpu_plan} \
  "$corpus"/{container,source_header,coded_entry,gpu_plan}

# Small safetensors files cut from the sample.
python3 - "$root/samples/minilm-slice.bf16.safetensors" "$work" <<'EOF'
import json, struct, sys

sample, out = sys.argv[1], sys.argv[2]
blob = open(sample, "rb").read()
n = struct.unpack("<Q", blob[:8])[0]
header = json.loads(blob[8:8 + n])
data = blob[8 + n:]

def tensor(name, count=None):
    t = header[name]
    b, e = t["data_offsets"]
    raw = data[b:e]
    return raw if count is None else raw[:2 * count]

def to_f32(bf16):
    return b"".join(b"\0\0" + bf16[i:i + 2] for i in range(0, len(bf16), 2))

def to_f16(bf16):
    out = []
    for i in range(0, len(bf16), 2):
        f = struct.unpack("<f", b"\0\0" + bf16[i:i + 2])[0]
        out.append(struct.pack("<e", f))
    return b"".join(out)

def write(path, tensors, metadata=None, padding=0, order=None, compact=True):
    """tensors: list of (name, dtype, shape, bytes) in data order."""
    entries, off = [], 0
    for name, dtype, shape, raw in tensors:
        entries.append((name, {"dtype": dtype, "shape": shape,
                               "data_offsets": [off, off + len(raw)]}))
        off += len(raw)
    if metadata is not None:
        entries.insert(0 if order is None else order, ("__metadata__", metadata))
    sep = (",", ":") if compact else (", ", ": ")
    text = "{" + sep[0].join(json.dumps(k) + sep[1] + json.dumps(v, separators=sep)
                             for k, v in entries) + "}" + " " * padding
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text.encode())
        for t in tensors:
            f.write(t[3])

w = tensor("encoder.layer.0.attention.self.query.weight")
bias = tensor("embeddings.LayerNorm.bias")
ids = tensor("embeddings.position_ids")[:64]
meta = {"format": "pt"}
# Real BF16 weights: 1536 values (24 rows of 64), a bias, ids, an unknown dtype.
write(f"{out}/mixed.safetensors", [
    ("w", "BF16", [24, 64], w[:3072]),
    ("b", "BF16", [384], bias),
    ("ids", "I64", [8], ids),
    ("x", "X_FUTURE", [3], b"abc"),
], metadata=meta, padding=5)
# F16 and F32 conversions, metadata last, two blocks' worth at --block-size 4096.
write(f"{out}/floats.safetensors", [
    ("h", "F16", [1024], to_f16(w[:2048])),
    ("f", "F32", [32, 32], to_f32(w[2048:4096])),
    ("one", "F32", [1], to_f32(w[:2])),
], metadata={"a": "1", "b": "2"}, order=3)
# Zero-element and odd shapes, no metadata.
write(f"{out}/edges.safetensors", [
    ("empty", "BF16", [0], b""),
    ("zero", "F32", [4, 0, 9], b""),
    ("odd", "BF16", [1001], w[:2002]),
    ("flag", "BOOL", [2], b"\x01\x00"),
])
# A header no canonical rendering gives (spaces after separators): stored verbatim.
write(f"{out}/verbatim.safetensors", [("w", "BF16", [768], w[:1536])],
      metadata={"k": "v"}, compact=False)
# Metadata only, and nothing at all.
write(f"{out}/meta_only.safetensors", [], metadata={"format": "pt"})
write(f"{out}/empty.safetensors", [])
EOF

cp "$work"/*.safetensors "$seeds/container/"

# Compressed with each option set. Small ones are seeds of the file-level targets, the bare
# coded entries cut from them seeds of the entry-level ones.
opts_names=(default fast block4096 rows1 block64)
opts_args=("" "--fast" "--block-size 4096" "--rows-per-block 1" "--block-size 64")
for f in "$work"/mixed.safetensors "$work"/floats.safetensors "$work"/edges.safetensors \
  "$work"/verbatim.safetensors "$work"/meta_only.safetensors; do
  stem=$(basename "$f" .safetensors)
  for i in "${!opts_names[@]}"; do
    out="$work/$stem.${opts_names[$i]}.exprans.safetensors"
    # shellcheck disable=SC2086
    "$exprans" -q compress ${opts_args[$i]} --force -o "$out" "$f"
  done
done
cp "$work"/{mixed,floats,verbatim,meta_only}.default.exprans.safetensors "$work"/mixed.fast.exprans.safetensors \
  "$work"/floats.rows1.exprans.safetensors "$work"/edges.block64.exprans.safetensors "$seeds/source_header/"
for t in coded_entry gpu_plan; do
  cp "$work"/mixed.default.exprans.safetensors "$work"/floats.block4096.exprans.safetensors \
    "$work"/edges.block64.exprans.safetensors "$work"/mixed.fast.exprans.safetensors "$seeds/$t/"
done

# Bare coded entries (inputs starting with XRNS), one per coded tensor of a few files.
python3 - "$work" "$seeds/coded_entry" "$seeds/gpu_plan" <<'EOF'
import json, struct, sys, glob, os

work, *dests = sys.argv[1:]
for path in sorted(glob.glob(f"{work}/*.exprans.safetensors")):
    stem = os.path.basename(path).replace(".exprans.safetensors", "")
    if stem not in ("mixed.default", "floats.block4096", "edges.block64", "floats.fast"):
        continue
    blob = open(path, "rb").read()
    n = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8:8 + n])
    data = blob[8 + n:]
    for name, t in header.items():
        if name == "__metadata__":
            continue
        b, e = t["data_offsets"]
        entry = data[b:e]
        if entry[:4] == b"XRNS" and len(entry) <= 8192:
            for d in dests:
                open(f"{d}/{stem}.{name}.xrns", "wb").write(entry)
EOF

# Larger corpora (not committed): the sample and the frozen files, compressed every way.
cp "$root"/samples/minilm-slice.bf16.safetensors "$root"/crates/exprans/tests/frozen/v1-input.safetensors \
  "$corpus/container/"
for f in "$root"/samples/minilm-slice.bf16.safetensors "$root"/crates/exprans/tests/frozen/v1-input.safetensors; do
  stem=$(basename "$f" .safetensors)
  for i in 0 1 2 3; do
    out="$work/big.$stem.${opts_names[$i]}.exprans.safetensors"
    # shellcheck disable=SC2086
    "$exprans" -q compress ${opts_args[$i]} --force -o "$out" "$f"
    for t in source_header coded_entry gpu_plan; do cp "$out" "$corpus/$t/"; done
  done
done
for t in source_header coded_entry gpu_plan; do
  cp "$root"/crates/exprans/tests/frozen/*.exprans.safetensors "$corpus/$t/"
done

du -sh "$seeds"/* "$corpus"/* | sed "s|$root/||"
