#!/usr/bin/env bash
# Regenerates the README's measured numbers and the plots in one run, and prints a markdown block
# to paste into README.md (also saved to benches/report-out/report.md):
#
#   1. build      cargo build --release -p exprans-cli
#   2. sizes      benches/sizes.sh: ratios and bounds per file (BF16, F32, F16, FP8 MiniLM;
#                 SmolLM2 BF16) -> benches/sizes-out/sizes.json
#   3. bench      exprans bench MiniLM-BF16 --json --repeat 5 (in memory, CPU) ->
#                 benches/report-out/bench.json
#   4. peers      benches/peers.sh --runs 5 on the BF16 files: exprans vs ZipNN vs cp, file to
#                 file -> benches/peers-out/peers.json
#   5. generate   benches/generate.sh TOKENS: SmolLM2 text generation per weight mode, fresh
#                 (models recompressed by this build) -> GENERATE_DIR/p<i>-<mode>.json
#   6. plots      benches/plots.py -> docs/plots/{ratios,speed,tokens}.png and the tables
#
#   bash benches/report.sh [--tokens N] [--runs N] [--generate-dir DIR] [--generate-from DIR]
#
#   --tokens N           new tokens per prompt for generate.sh (default 8; lavapipe runs about
#                        0.1 tokens/s per mode and ~0.5 tokens/s of prefill: 8 tokens is
#                        ~40 minutes for 3 prompts x 5 modes on 2 cores)
#   --runs N             peers.sh rounds (default 5)
#   --generate-dir DIR   where generate.sh writes (default target/report-generate; emptied first)
#   --generate-from DIR  don't run generate.sh; plot an existing output of it instead (e.g.
#                        generate-out from `bash benches/generate.sh 32`); the report says so
#
# Each step's output goes to benches/report-out/<step>.log. SmolLM2-135M-Instruct is fetched into
# target/models/ when absent (../shared/tools/fetch-smollm2.sh). A failing step is reported and the
# rest still run; the exit status is then 1.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
tokens=8
runs=5
gendir=""
genfrom=""
usage() { sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; }
abspath() { case $1 in /*) printf '%s\n' "$1" ;; *) printf '%s/%s\n' "$PWD" "$1" ;; esac; }
while [ $# -gt 0 ]; do
  case $1 in
    --tokens) tokens=$2; shift 2 ;;
    --tokens=*) tokens=${1#*=}; shift ;;
    --runs) runs=$2; shift 2 ;;
    --runs=*) runs=${1#*=}; shift ;;
    --generate-dir) gendir=$(abspath "$2"); shift 2 ;;
    --generate-dir=*) gendir=$(abspath "${1#*=}"); shift ;;
    --generate-from) genfrom=$(abspath "$2"); shift 2 ;;
    --generate-from=*) genfrom=$(abspath "${1#*=}"); shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "report.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
for v in tokens runs; do
  case ${!v} in ''|*[!0-9]*|0) echo "report.sh: --$v wants a positive integer" >&2; exit 2 ;; esac
done
cd "$repo"
rel() { case $1 in "$repo"/*) printf '%s\n' "${1#"$repo"/}" ;; *) printf '%s\n' "$1" ;; esac; }
gendir=${gendir:-$repo/target/report-generate}
out=$repo/benches/report-out
mkdir -p "$out"
steps=$out/steps.tsv   # name, seconds, exit status, command
: >"$steps"
failed=0
t_all=$(date +%s.%N)

elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f\n", b - a }'; }
# step NAME COMMAND...: runs it with output to $out/NAME.log (stderr too), records time and status
step() {
  local name=$1; shift
  local t0 t1 rc=0
  local shown=${SHOWN:-$*}   # the command as reported (SHOWN=... step NAME ...)
  echo "report.sh: [$name] $shown" >&2
  t0=$(date +%s.%N)
  "$@" >"$out/$name.log" 2>&1 || rc=$?
  t1=$(date +%s.%N)
  printf '%s\t%s\t%s\t%s\n' "$name" "$(elapsed "$t0" "$t1")" "$rc" "$shown" >>"$steps"
  if [ $rc -ne 0 ]; then
    failed=1
    echo "report.sh: [$name] FAILED (exit $rc); last lines of $(rel "$out/$name.log"):" >&2
    tail -n 15 "$out/$name.log" >&2
  else
    echo "report.sh: [$name] done in $(printf '%.0f' "$(elapsed "$t0" "$t1")") s" >&2
  fi
  return 0
}

bin=target/release/exprans
smol=target/models/SmolLM2-135M-Instruct
bf16=../shared/models/all-MiniLM-L6-v2.bf16.safetensors

[ -f "$smol/model.safetensors" ] || step fetch bash ../shared/tools/fetch-smollm2.sh "$smol"
step build cargo build --release -p exprans-cli
[ -x "$bin" ] || { echo "report.sh: no $bin after the build; stopping" >&2; exit 1; }
step sizes bash benches/sizes.sh --exprans "$bin"
run_bench() { "$bin" bench "$bf16" --json --repeat 5 >benches/report-out/bench.json; }
SHOWN="$bin bench $bf16 --json --repeat 5 >benches/report-out/bench.json" step bench run_bench
peer_files=("$bf16")
[ -f "$smol/model.safetensors" ] && peer_files+=("$smol/model.safetensors")
step peers bash benches/peers.sh --runs "$runs" --exprans "$bin" "${peer_files[@]}"

if [ -n "$genfrom" ]; then
  gensrc=$genfrom
  printf '%s\t%s\t%s\t%s\n' generate 0 0 "(not run: --generate-from $(rel "$genfrom"))" >>"$steps"
else
  gensrc=$gendir
  rm -rf "$gendir"
  mkdir -p "$gendir"
  g0=$(date -Iseconds)
  step generate env OUT="$(rel "$gendir")" bash benches/generate.sh "$tokens"
  python3 - "$gendir/report-meta.json" "$tokens" "$g0" "$(date -Iseconds)" "$(rel "$gendir")" <<'PY'
import json, sys
p, tokens, start, end, d = sys.argv[1:6]
json.dump({"max_new_tokens": int(tokens), "start": start, "end": end,
           "command": f"OUT={d} bash benches/generate.sh {tokens}"}, open(p, "w"), indent=2)
PY
fi

step plots python3 benches/plots.py --sizes benches/sizes-out/sizes.json \
  --peers benches/peers-out/peers.json --generate "$(rel "$gensrc")" \
  --bench benches/report-out/bench.json --outdir docs/plots --markdown benches/report-out/tables.md
t_end=$(date +%s.%N)

# --- the markdown block ------------------------------------------------------------------------
python3 - "$out" "$steps" "$(elapsed "$t_all" "$t_end")" "$tokens" "$runs" "$(rel "$gensrc")" \
  "$(rel "${genfrom:-}")" "$("$bin" --version 2>/dev/null || echo exprans)" \
  "$(git rev-parse --short HEAD 2>/dev/null || echo unknown)" \
  "$(git status --porcelain --untracked-files=no 2>/dev/null | grep -q . && echo ' + uncommitted changes' || true)" \
  "$t_all" >"$out/report.md" <<'PY'
import datetime, os, sys
out, steps, total, tokens, runs, gensrc, genfrom, version, commit, dirty, t0 = sys.argv[1:12]
cpu = "unknown CPU"
try:
    cpu = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
except (OSError, StopIteration):
    pass
rows = [l.rstrip("\n").split("\t") for l in open(steps)]
now = datetime.datetime.now().astimezone().isoformat(timespec="minutes")
args = f"--generate-from {genfrom}" if genfrom else f"--tokens {tokens}"
args += f" --runs {runs}"
print(f"<!-- generated by `bash benches/report.sh {args}` on {now} -->")
print(f"## Measured\n")
print(f"{version} at {commit}{dirty}, {now}; {cpu}, {os.cpu_count()} logical CPUs. "
      f"Regenerate everything with `bash benches/report.sh` (this run: `{args}`).\n")
for png, alt in (("ratios", "compressed size per file"), ("speed", "file-to-file speed"),
                 ("tokens", "text generation tokens/s")):
    p = f"docs/plots/{png}.png"
    if os.path.exists(p) and os.path.getmtime(p) >= float(t0):
        print(f"![{alt}]({p})\n")
    else:
        print(f"<!-- {p} was NOT redrawn by this run (its input is missing or failed) -->\n")
tables = os.path.join(out, "tables.md")
if os.path.exists(tables):
    print(open(tables).read())
print("### How these were measured\n")
print("| step | command | seconds | status |")
print("|---|---|---:|---|")
for name, secs, rc, cmd in rows:
    status = "ok" if rc == "0" else f"FAILED (exit {rc})"
    if cmd.startswith("(not run"):
        status, secs = cmd, "-"
        cmd = "bash benches/generate.sh N"
    else:
        secs = f"{float(secs):.0f}"
    print(f"| {name} | `{cmd.replace('|', '&#124;')}` | {secs} | {status} |")
print(f"| all | `bash benches/report.sh {args}` | {float(total):.0f} | |")
if genfrom:
    print(f"\nThe text-generation numbers come from an earlier run in `{gensrc}` "
          "(report.sh --generate-from), not from this run.")
PY
cat "$out/report.md"
echo "report.sh: wrote $(rel "$out/report.md"), docs/plots/{ratios,speed,tokens}.png; logs in $(rel "$out")/" >&2
exit $failed
