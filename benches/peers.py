#!/usr/bin/env python3
"""Driver of benches/peers.sh (see there): times exprans, ZipNN and cp file to file.

    python3 benches/peers.py bench --exprans BIN --python VENV_PYTHON --runs N --workdir DIR \
        --json OUT.json -- FILE...

Runs under any python3 (standard library only); ZipNN runs under VENV_PYTHON as `python -c CODE`.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import struct
import subprocess
import sys
import time

# How ZipNN is run. ZipNN's package (zipnn 0.5.x) ships the ZipNN class and a Hugging Face loader
# patch; its repository's scripts/ add file tools. Of those, scripts/zipnn_compress_file.py and
# scripts/zipnn_decompress_file.py are the file-to-file round trip: the whole file's bytes through
# ZipNN(bytearray_dtype=..., method="HUFFMAN", threads=...) in one call (byte grouping + Huffman in
# its multi-threaded C core), one read and one write, and the output decodes back to the same bytes
# by construction. scripts/zipnn_compress_safetensors.py instead compresses tensor by tensor through
# torch and re-serialises with safetensors' save_file (more Python and torch work per tensor, and
# not byte-identical in general), so the byte path is ZipNN's fastest faithful round trip; the code
# below is those two scripts' compress/decompress bodies, without their prints and prompts.
# (ZipNN's compress reorders its input buffer in place, even a bytes object, so one process per
# compression, as here and in its scripts, is also the only safe way to call it on a file.)
ZIPNN_COMPRESS = """\
import sys, zipnn
src, dst, threads, dtype = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
znn = zipnn.ZipNN(bytearray_dtype=dtype, method="HUFFMAN", threads=threads)
with open(src, "rb") as f:
    data = f.read()
with open(dst, "wb") as f:
    f.write(znn.compress(data))
"""
ZIPNN_DECOMPRESS = """\
import sys, zipnn
src, dst, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
znn = zipnn.ZipNN(is_streaming=True, threads=threads)
with open(src, "rb") as f:
    data = f.read()
with open(dst, "wb") as f:
    f.write(znn.decompress(data))
"""
ZIPNN_IMPORT = "import zipnn\n"
# Prepended only when the venv has no torch (see peers.sh): zipnn imports torch and
# safetensors.torch at module level, but its byte path never calls into them.
TORCH_STUB = """\
import sys, types
try:
    import torch
except ImportError:
    _stub = {}
    def _torch_attr(name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _stub.setdefault(name, type("torch_stub_" + name, (), {})())
    torch = types.ModuleType("torch")
    torch.__version__ = "stub"
    torch.__getattr__ = _torch_attr
    torch.jit = types.SimpleNamespace(script=lambda f: f)
    sys.modules["torch"] = torch
    try:
        import safetensors
    except ImportError:
        sys.modules["safetensors"] = types.ModuleType("safetensors")
    sys.modules["safetensors.torch"] = types.ModuleType("safetensors.torch")
    sys.modules["safetensors.torch"].safe_open = None
"""

ZIPNN_DTYPES = {"BF16": "bfloat16", "F16": "float16", "F32": "float32",
                "F8_E4M3": "float8_e4m3fn", "F8_E5M2": "float8_e5m2"}


def log(*a):
    print(*a, file=sys.stderr, flush=True)


def run_text(cmd):
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        return (p.stdout or p.stderr).strip()
    except Exception as e:  # noqa: BLE001 (report what we can)
        return f"unavailable ({e})"


def safetensors_dtype(path):
    """The dtype holding most of the file's tensor bytes, as ZipNN's bytearray_dtype."""
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    by = {}
    for name, t in header.items():
        if name == "__metadata__":
            continue
        a, b = t["data_offsets"]
        by[t["dtype"]] = by.get(t["dtype"], 0) + (b - a)
    main = max(by, key=by.get) if by else "BF16"
    return main, ZIPNN_DTYPES.get(main, "bfloat16"), by


def machine_info(workdir):
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = os.cpu_count()
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "cpus_usable": affinity,
        "kernel": platform.release(),
        "workdir_fs": (run_text(["df", "-PT", workdir]).splitlines() or ["", "? ?"])[-1]
        .split()[1],
        "loadavg_start": list(os.getloadavg()),
    }


def venv_info(python):
    code = (
        "import json, sys, platform, importlib.metadata as m\n"
        "def v(p):\n"
        "    try: return m.version(p)\n"
        "    except Exception: return None\n"
        "try:\n"
        "    import torch; t = torch.__version__\n"
        "except Exception: t = None\n"
        "print(json.dumps({'python': platform.python_version(), 'zipnn': v('zipnn'),"
        " 'numpy': v('numpy'), 'torch': t, 'safetensors': v('safetensors')}))\n"
    )
    p = subprocess.run([python, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(p.stdout)


class Cmd:
    def __init__(self, key, label, argv, out=None, check=None, mode=None):
        self.key, self.label, self.argv = key, label, argv
        self.out = out        # output file, removed before each run (not timed)
        self.check = check    # file that `out` must equal (cmp) after each run
        self.mode = mode      # "size" records the output's size
        self.times = []


def run_timed(cmd):
    if cmd.out and os.path.exists(cmd.out):
        os.remove(cmd.out)
    t0 = time.perf_counter()
    p = subprocess.run(cmd.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        sys.exit(f"peers: {cmd.label} failed (exit {p.returncode}):\n"
                 f"  {' '.join(cmd.argv)}\n{p.stderr.decode(errors='replace')}")
    if cmd.check is not None:
        if subprocess.run(["cmp", "-s", cmd.check, cmd.out]).returncode != 0:
            sys.exit(f"peers: {cmd.label}: round trip is NOT byte-identical ({cmd.out} vs {cmd.check})")
    return dt


def bench_file(src_orig, args, zipnn_prefix, workdir):
    base = os.path.basename(src_orig)
    size = os.path.getsize(src_orig)
    st_dtype, zdtype, by_dtype = safetensors_dtype(src_orig)
    d = os.path.join(workdir, "f")
    shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    src = os.path.join(d, base)
    shutil.copyfile(src_orig, src)
    with open(src, "rb") as f:  # warm the page cache
        while f.read(1 << 24):
            pass
    p = lambda name: os.path.join(d, name)  # noqa: E731
    ex, py = args.exprans, args.python
    ex_dec = [ex, "decompress", "-q"]
    if "--device" in run_text([ex, "decompress", "--help"]):
        ex_dec += ["--device", "cpu"]  # CPU decoder, so --threads means what it says

    per_threads = {}
    for t in args.threads:
        ts = str(t)
        cmds = [
            Cmd("cp", "cp", ["cp", src, p("cp.out")], out=p("cp.out"), check=src),
            Cmd("zipnn_startup", "ZipNN start-up only (python -c 'import zipnn')",
                [py, "-c", zipnn_prefix + ZIPNN_IMPORT]),
            Cmd("exprans_compress", "exprans compress",
                [ex, "compress", "-q", "--threads", ts, src, "-o", p("x.exprans")],
                out=p("x.exprans"), mode="size"),
            Cmd("exprans_compress_fast", "exprans compress --fast",
                [ex, "compress", "-q", "--fast", "--threads", ts, src, "-o", p("xf.exprans")],
                out=p("xf.exprans"), mode="size"),
            Cmd("zipnn_compress", "ZipNN compress",
                [py, "-c", zipnn_prefix + ZIPNN_COMPRESS, src, p("z.znn"), ts, zdtype],
                out=p("z.znn"), mode="size"),
            Cmd("exprans_decompress", "exprans decompress (default file)",
                ex_dec + ["--threads", ts, p("x.exprans"), "-o", p("x.out")],
                out=p("x.out"), check=src),
            Cmd("exprans_decompress_fast", "exprans decompress (--fast file)",
                ex_dec + ["--threads", ts, p("xf.exprans"), "-o", p("xf.out")],
                out=p("xf.out"), check=src),
            Cmd("zipnn_decompress", "ZipNN decompress",
                [py, "-c", zipnn_prefix + ZIPNN_DECOMPRESS, p("z.znn"), p("z.out"), ts],
                out=p("z.out"), check=src),
        ]
        per_threads[ts] = {"cmds": cmds, "sizes": {}}

    # one untimed pass (warms binaries, Python modules, and makes the compressed files), then the
    # timed rounds; the thread counts and the commands take turns within each round
    for r in range(args.runs + 1):
        log(f"peers: {base}: {'warm-up' if r == 0 else f'round {r}/{args.runs}'}")
        for ts, pt in per_threads.items():
            for c in pt["cmds"]:
                dt = run_timed(c)
                if r > 0:
                    c.times.append(dt)
                if c.mode == "size":
                    s = os.path.getsize(c.out)
                    prev = pt["sizes"].setdefault(c.key, s)
                    if prev != s:
                        sys.exit(f"peers: {c.label} gave {s} bytes, earlier {prev}")

    res = {"file": src_orig, "bytes": size, "dtype": st_dtype, "bytes_by_dtype": by_dtype,
           "zipnn_bytearray_dtype": zdtype, "round_trips_byte_identical": True,
           "runs": args.runs, "threads": {}}
    for ts, pt in per_threads.items():
        best = {c.key: min(c.times) for c in pt["cmds"]}
        mbs = {k: size / 1e6 / v for k, v in best.items() if k != "zipnn_startup"}
        sizes = {k.replace("_compress", ""): {"bytes": v, "pct_of_original": 100.0 * v / size}
                 for k, v in pt["sizes"].items()}
        b = best
        ratios = {  # speed ratios: the other's time / exprans' time (> 1: exprans is faster)
            "compress_exprans_over_zipnn": b["zipnn_compress"] / b["exprans_compress"],
            "compress_fast_exprans_over_zipnn": b["zipnn_compress"] / b["exprans_compress_fast"],
            "decompress_exprans_over_zipnn": b["zipnn_decompress"] / b["exprans_decompress"],
            "decompress_fast_exprans_over_zipnn":
                b["zipnn_decompress"] / b["exprans_decompress_fast"],
            "compress_exprans_over_cp": b["cp"] / b["exprans_compress"],
            "decompress_exprans_over_cp": b["cp"] / b["exprans_decompress"],
            "decompress_fast_exprans_over_cp": b["cp"] / b["exprans_decompress_fast"],
            "compress_zipnn_over_cp": b["cp"] / b["zipnn_compress"],
            "decompress_zipnn_over_cp": b["cp"] / b["zipnn_decompress"],
        }
        res["threads"][ts] = {
            "sizes": sizes,
            "best_seconds": best,
            "all_seconds": {c.key: c.times for c in pt["cmds"]},
            "mb_per_s": mbs,
            "ratios": ratios,
            "commands": {c.key: {"label": c.label, "argv": [
                a if len(a) < 200 else "<CODE: see zipnn_code>" for a in c.argv]}
                for c in pt["cmds"]},
        }
    shutil.rmtree(d, ignore_errors=True)
    return res


def fmt_md(report):
    L = []
    v, m = report["versions"], report["machine"]
    L.append("## exprans vs ZipNN vs cp (file to file, whole process, best of "
             f"{report['runs']} runs)\n")
    L.append(f"- exprans: `{v['exprans']}` ({v['exprans_path']})")
    torch = v["torch"] or "absent: a stub module stands in for its imports (ZipNN timings " \
        "leave out real torch's import time)"
    L.append(f"- ZipNN: zipnn {v['zipnn']}, numpy {v['numpy']}, torch {torch}, "
             f"Python {v['python']} (driver Python {platform.python_version()})")
    L.append(f"- CPU: {m['cpu']}; {m['logical_cpus']} logical CPUs ({m['cpus_usable']} usable); "
             f"Linux {m['kernel']}; temp dir on {m['workdir_fs']}; load average "
             f"{m['loadavg_start'][0]:.2f} at start, {m['loadavg_end'][0]:.2f} at end")
    L.append(f"- {report['date']}, {report['total_seconds']:.0f} s in all. MB = 10^6 bytes of "
             "the original file per second of wall-clock. Ratios are speed ratios "
             "(the other's time / exprans' time): > 1 means exprans is faster.")
    for f in report["files"]:
        L.append("")
        L.append(f"### {os.path.basename(f['file'])}: {f['bytes'] / 1e6:.2f} MB, {f['dtype']} "
                 f"(ZipNN bytearray_dtype={f['zipnn_bytearray_dtype']})\n")
        tss = list(f["threads"])
        t0 = f["threads"][tss[0]]
        L.append("| output | bytes | % of original |")
        L.append("| --- | ---: | ---: |")
        names = {"exprans": "exprans (default)", "exprans_fast": "exprans --fast",
                 "zipnn": "ZipNN"}
        for k, s in t0["sizes"].items():
            L.append(f"| {names.get(k, k)} | {s['bytes']} | {s['pct_of_original']:.2f} % |")
        L.append("")
        L.append("Round trips checked with cmp after every run: all byte-identical.\n")
        hdr = " | ".join(f"{t} thread{'s' if t != '1' else ''}: MB/s (best s)" for t in tss)
        L.append(f"| command | {hdr} |")
        L.append("| --- |" + " ---: |" * len(tss))
        for key, c in t0["commands"].items():
            cells = []
            for t in tss:
                b = f["threads"][t]["best_seconds"][key]
                mb = f["threads"][t]["mb_per_s"].get(key)
                cells.append(f"{b:.3f} s" if mb is None else f"{mb:.1f} ({b:.3f} s)")
            L.append(f"| {c['label']} | " + " | ".join(cells) + " |")
        L.append("")
        rl = [
            ("compress: exprans / ZipNN", "compress_exprans_over_zipnn"),
            ("compress --fast: exprans / ZipNN", "compress_fast_exprans_over_zipnn"),
            ("decompress (default file): exprans / ZipNN", "decompress_exprans_over_zipnn"),
            ("decompress (--fast file): exprans / ZipNN", "decompress_fast_exprans_over_zipnn"),
            ("compress: exprans / cp", "compress_exprans_over_cp"),
            ("decompress (default file): exprans / cp", "decompress_exprans_over_cp"),
            ("decompress (--fast file): exprans / cp", "decompress_fast_exprans_over_cp"),
            ("compress: ZipNN / cp", "compress_zipnn_over_cp"),
            ("decompress: ZipNN / cp", "decompress_zipnn_over_cp"),
        ]
        L.append("| speed ratio | " + " | ".join(f"{t} thread{'s' if t != '1' else ''}"
                                                 for t in tss) + " |")
        L.append("| --- |" + " ---: |" * len(tss))
        for label, key in rl:
            L.append(f"| {label} | " + " | ".join(f"{f['threads'][t]['ratios'][key]:.2f}x"
                                                  for t in tss) + " |")
    return "\n".join(L) + "\n"


def cmd_bench(args):
    t_start = time.perf_counter()
    ex_version = run_text([args.exprans, "--version"])
    vinfo = venv_info(args.python)
    tsrc = os.path.join(os.path.dirname(os.path.dirname(args.python)), "peers-torch-source")
    if os.path.exists(tsrc):
        with open(tsrc) as f:
            vinfo["torch_source"] = f.read().strip()
    zipnn_prefix = "" if vinfo["torch"] else TORCH_STUB
    if not vinfo["torch"]:
        log("peers: note: no torch in the venv; ZipNN runs with a stub torch module "
            "(its timings leave out the cost of importing real torch)")
    machine = machine_info(args.workdir)
    files = [bench_file(f, args, zipnn_prefix, args.workdir) for f in args.files]
    machine["loadavg_end"] = list(os.getloadavg())
    report = {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "runs": args.runs,
        "versions": {"exprans": ex_version, "exprans_path": args.exprans, **vinfo,
                     "driver_python": platform.python_version()},
        "machine": machine,
        "method": {
            "timing": "wall-clock of the whole process (time.perf_counter around "
                      "subprocess.run), best of runs; outputs removed before each run",
            "io": "input copied into one temp dir and read once (page cache warm); every "
                  "command reads its input file and writes its output file there",
            "zipnn": "python -c CODE (see zipnn_code): the byte path of ZipNN's "
                     "scripts/zipnn_compress_file.py and zipnn_decompress_file.py",
            "exprans_decompress": "--device cpu where the binary has it",
            "mb": "10^6 bytes of the original file per second",
            "ratios": "speed ratios: the other command's best time / exprans' best time",
        },
        "zipnn_code": {"compress": ZIPNN_COMPRESS, "decompress": ZIPNN_DECOMPRESS,
                       "torch_stub_prefix": zipnn_prefix},
        "files": files,
    }
    report["total_seconds"] = time.perf_counter() - t_start
    md = fmt_md(report)
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(report, f, indent=2)
        f.write("\n")
    sys.stdout.write(md)
    log(f"peers: wrote {args.json}")


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench")
    b.add_argument("--exprans", required=True)
    b.add_argument("--python", required=True, help="the ZipNN venv's python")
    b.add_argument("--runs", type=int, default=5)
    b.add_argument("--threads", type=lambda s: [int(x) for x in s.split(",")], default=[1, 2])
    b.add_argument("--workdir", required=True)
    b.add_argument("--json", required=True)
    b.add_argument("files", nargs="+")
    args = ap.parse_args()
    args.exprans = os.path.abspath(args.exprans)
    args.files = [os.path.abspath(f) for f in args.files]
    cmd_bench(args)


if __name__ == "__main__":
    main()
