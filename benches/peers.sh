#!/usr/bin/env bash
# Peer benchmark: exprans against ZipNN (and `cp`, the I/O floor) on the same safetensors file, in
# the same run, file to file. Every command is a whole process timed from the outside (monotonic
# clock around the subprocess, Python start-up included for ZipNN), reads its input file from disk
# and writes its output file to disk; all files live in one temp dir (one filesystem) with the page
# cache warm. Best of --runs rounds, the commands taking turns within each round. Both round trips
# are checked byte for byte with cmp.
#
#   benches/peers.sh [--exprans PATH] [--runs N] [--venv DIR] [--tmpdir DIR] [--torch-index URL]
#                    [--json PATH] [FILE.safetensors ...]
#
#   --exprans PATH    exprans binary to measure (default: `cargo build --release -p exprans-cli`
#                     and use target/release/exprans)
#   --runs N          timed rounds; the best (least wall-clock) of N is kept (default 5)
#   --venv DIR        ZipNN's own virtualenv, created on first use and reused after (default
#                     target/peers-venv); delete it to reinstall
#   --tmpdir DIR      where the temp dir for the copies and outputs goes (default target/; keep it
#                     on a real disk, not tmpfs, for a fair file-I/O figure)
#   --torch-index URL the index ZipNN's torch dependency comes from (default PyTorch's CPU-only
#                     wheel index, so no multi-GB CUDA wheels are pulled)
#   --json PATH       JSON report (default benches/peers-out/peers.json)
#   FILE              safetensors files (default ../shared/models/all-MiniLM-L6-v2.bf16.safetensors;
#                     e.g. also target/models/SmolLM2-135M-Instruct/model.safetensors)
#
# Prints a markdown report to stdout (progress goes to stderr). Needs bash, python3 with venv and
# pip, gcc (ZipNN ships as a source package with a C extension) and cmp.
#
# How ZipNN is installed: its PyPI package `zipnn` requires numpy, safetensors and torch, although
# the byte path measured here runs on numpy and its C extension alone. torch is installed first from
# --torch-index (CPU wheels, ~200 MB), then `pip install zipnn` finds it already satisfied. Where
# that index can't be reached (an offline mirror of PyPI only), plain PyPI would serve the CUDA
# build of torch (several GB with its nvidia-* wheels), so instead zipnn is installed with
# --no-deps next to numpy, and peers.py stands in a stub `torch` module for ZipNN's module-level
# imports; the report then says "torch: absent (stub)" and ZipNN's timings leave out the cost of
# importing real torch (typically 0.5-2 s per process), which favours ZipNN.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)

exprans=""
runs=5
venv=""
tmproot=""
torch_index="https://download.pytorch.org/whl/cpu"
json=""
files=()

usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
abspath() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s/%s\n' "$PWD" "$1" ;; esac; }

while [ $# -gt 0 ]; do
  case $1 in
    --exprans) exprans=$(abspath "$2"); shift 2 ;;
    --exprans=*) exprans=$(abspath "${1#*=}"); shift ;;
    --runs) runs=$2; shift 2 ;;
    --runs=*) runs=${1#*=}; shift ;;
    --venv) venv=$(abspath "$2"); shift 2 ;;
    --venv=*) venv=$(abspath "${1#*=}"); shift ;;
    --tmpdir) tmproot=$(abspath "$2"); shift 2 ;;
    --tmpdir=*) tmproot=$(abspath "${1#*=}"); shift ;;
    --torch-index) torch_index=$2; shift 2 ;;
    --torch-index=*) torch_index=${1#*=}; shift ;;
    --json) json=$(abspath "$2"); shift 2 ;;
    --json=*) json=$(abspath "${1#*=}"); shift ;;
    -h|--help) usage; exit 0 ;;
    --) shift; while [ $# -gt 0 ]; do files+=("$(abspath "$1")"); shift; done ;;
    -*) echo "peers.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) files+=("$(abspath "$1")"); shift ;;
  esac
done
case $runs in ''|*[!0-9]*|0) echo "peers.sh: --runs wants a positive integer" >&2; exit 2 ;; esac

cd "$repo"
[ ${#files[@]} -gt 0 ] || files=("$repo/../shared/models/all-MiniLM-L6-v2.bf16.safetensors")
for f in "${files[@]}"; do
  [ -f "$f" ] || { echo "peers.sh: no such file: $f" >&2; exit 2; }
done
venv=${venv:-$repo/target/peers-venv}
tmproot=${tmproot:-$repo/target}
json=${json:-$repo/benches/peers-out/peers.json}

if [ -z "$exprans" ]; then
  echo "peers.sh: building exprans (cargo build --release -p exprans-cli)" >&2
  cargo build --release -p exprans-cli >&2
  exprans=$repo/target/release/exprans
fi
[ -x "$exprans" ] || { echo "peers.sh: not an executable: $exprans" >&2; exit 2; }

# --- ZipNN's virtualenv ------------------------------------------------------------------------
vpy=$venv/bin/python
pipq() { "$vpy" -m pip --disable-pip-version-check "$@" >&2; }
if [ ! -x "$vpy" ]; then
  echo "peers.sh: creating $venv" >&2
  python3 -m venv "$venv" >&2
fi
if ! "$vpy" -c 'import zipnn_core, numpy' 2>/dev/null; then
  echo "peers.sh: installing ZipNN into $venv" >&2
  if "$vpy" -c 'import torch' 2>/dev/null; then
    pipq install zipnn
  elif pipq install --retries 1 --timeout 30 --index-url "$torch_index" torch; then
    echo "torch from $torch_index" >"$venv/peers-torch-source"
    pipq install zipnn
  else
    echo "peers.sh: torch could not be had from $torch_index; installing zipnn without torch" \
         "(a stub stands in for ZipNN's torch imports, which its byte path does not use)" >&2
    echo "absent: $torch_index unreachable; stub" >"$venv/peers-torch-source"
    pipq install numpy
    pipq install --no-deps zipnn
  fi
fi

# --- the run -------------------------------------------------------------------------------------
mkdir -p "$tmproot" "$(dirname "$json")"
work=$(mktemp -d "$tmproot/peers-tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT
python3 "$here/peers.py" bench --exprans "$exprans" --python "$vpy" --runs "$runs" \
  --workdir "$work" --json "$json" -- "${files[@]}"
