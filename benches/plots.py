#!/usr/bin/env python3
"""Draws the README's plots from the benchmark outputs, and writes the numbers behind them as
markdown tables.

    python3 benches/plots.py [--sizes benches/sizes-out/sizes.json]
        [--peers benches/peers-out/peers.json] [--generate generate-out]
        [--bench FILE.json] [--notes ../shared/notes/peers.md] [--outdir docs/plots]
        [--markdown OUT.md]

Writes, into --outdir:
  ratios.png  per file: exprans default and --fast ratios beside the order-0 bounds from
              `exprans info` and the peers (ZipNN measured by benches/peers.sh; lmz and DFloat11
              on MiniLM BF16 from ../shared/notes/peers.md, labelled "from notes")
  speed.png   file-to-file MB/s, compress and decompress, of exprans (default, --fast), ZipNN and
              cp, 1 and 2 threads (benches/peers.sh's JSON)
  tokens.png  decode and prefill tokens/s per weight mode (plain, decoded, fused, fused --fast,
              CPU reference), means over the prompts of a benches/generate.sh run (its per-run
              JSON files, p<i>-<mode>.json)
Inputs that are missing are skipped (with a note). --bench adds a table for `exprans bench --json`.
--markdown writes the tables (also printed to stdout).

Needs matplotlib: when this python lacks it, the script creates (or reuses) target/plots-venv,
installs matplotlib there with pip, and runs itself again with that venv's python.
"""
import argparse
import datetime
import glob
import json
import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def ensure_matplotlib():
    try:
        import matplotlib  # noqa: F401
        return
    except ImportError:
        pass
    venv = os.path.join(REPO, "target", "plots-venv")
    py = os.path.join(venv, "bin", "python")
    if os.path.realpath(sys.prefix) == os.path.realpath(venv):
        sys.exit("plots.py: matplotlib is missing from target/plots-venv and could not be installed")
    if not os.path.exists(py):
        print(f"plots.py: creating {venv}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", venv], check=True)
    if subprocess.run([py, "-c", "import matplotlib"], capture_output=True).returncode != 0:
        print("plots.py: installing matplotlib into target/plots-venv", file=sys.stderr)
        subprocess.run([py, "-m", "pip", "--disable-pip-version-check", "install", "-q",
                        "matplotlib"], check=True, stdout=sys.stderr)
    os.execv(py, [py, os.path.abspath(__file__)] + sys.argv[1:])


# ---------------------------------------------------------------------------------------------
# inputs

def load_json(path, what):
    if path and os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    print(f"plots.py: no {what} ({path}); skipped", file=sys.stderr)
    return None


# Fallbacks for ../shared/notes/peers.md (its "Measured here" table, all-MiniLM-L6-v2 BF16)
NOTES_FALLBACK = {"lmz 1.3.0": 66.31, "DFloat11 0.5.0": 68.2}


def notes_peers(path):
    """lmz and DFloat11 ratios (% of the original) on MiniLM BF16 from the notes' table."""
    found = {}
    try:
        text = open(path).read()
    except OSError:
        print(f"plots.py: {path} not readable; lmz/DFloat11 from the values built in here",
              file=sys.stderr)
        return dict(NOTES_FALLBACK), "values built into benches/plots.py"
    for line in text.splitlines():
        m = re.match(r"\|\s*(DFloat11 [\d.]+|lmz \(lmzip ([\d.]+)\))[^|]*\|\s*([\d.]+)%", line)
        if m:
            name = m.group(1)
            if name.startswith("lmz"):
                name = f"lmz {m.group(2)}"
            found[name] = float(m.group(3))
    if len(found) < 2:
        print(f"plots.py: lmz/DFloat11 not both found in {path}; using built-in values",
              file=sys.stderr)
        return dict(NOTES_FALLBACK), "values built into benches/plots.py"
    return found, os.path.relpath(path, REPO)


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


GEN_MODES = [("plain", "plain"), ("decoded", "decoded once"), ("fused", "fused"),
             ("fused-fast", "fused, --fast file"), ("cpu", "CPU f32 reference")]


def load_generate(d):
    """Per mode: the runs of a benches/generate.sh output directory, prompt by prompt."""
    if not d or not os.path.isdir(d):
        print(f"plots.py: no generate directory ({d}); tokens.png skipped", file=sys.stderr)
        return None
    prompts = sorted({int(m.group(1)) for f in os.listdir(d)
                      if (m := re.fullmatch(r"p(\d+)-cpu\.json", f))})
    runs = {m: [] for m, _ in GEN_MODES}
    complete = []
    for i in prompts:
        paths = {m: os.path.join(d, f"p{i}-{m}.json") for m, _ in GEN_MODES}
        if not all(os.path.exists(p) for p in paths.values()):
            print(f"plots.py: prompt {i} of {d} incomplete; left out", file=sys.stderr)
            continue
        for m, p in paths.items():
            with open(p) as f:
                runs[m].append(json.load(f))
        complete.append(i)
    if not complete:
        print(f"plots.py: no complete prompt in {d}; tokens.png skipped", file=sys.stderr)
        return None
    files = [os.path.join(d, f"p{i}-{m}.json") for i in complete for m, _ in GEN_MODES]
    newest = max(os.path.getmtime(f) for f in files)
    mp = os.path.join(d, "report-meta.json")  # written by benches/report.sh
    meta = load_json(mp, "generate metadata") if os.path.exists(mp) else None
    gpu = runs["plain"][0]["device"].rsplit(", weights", 1)[0]
    ids_same = all(all(runs[m][k]["generated_ids"] == runs["plain"][k]["generated_ids"]
                       for m in ("decoded", "fused", "fused-fast")) for k in range(len(complete)))
    cpu_agree = []
    for k in range(len(complete)):
        a, b = runs["plain"][k]["generated_ids"], runs["cpu"][k]["generated_ids"]
        n = next((j for j, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
        cpu_agree.append((n, len(a)))
    return {"dir": d, "prompts": complete, "runs": runs, "gpu": gpu, "meta": meta,
            "date": datetime.datetime.fromtimestamp(newest).astimezone()
            .isoformat(timespec="seconds"),
            "ids_same": ids_same, "cpu_agree": cpu_agree,
            "new_tokens": [len(r["generated_ids"]) for r in runs["plain"]]}


def gen_mean(g, mode, key):
    v = [r["timings"][key] for r in g["runs"][mode] if r["timings"][key] is not None]
    return sum(v) / len(v) if v else float("nan")


def gen_range(g, mode, key):
    v = [r["timings"][key] for r in g["runs"][mode] if r["timings"][key] is not None]
    return (min(v), max(v)) if v else (float("nan"), float("nan"))


# ---------------------------------------------------------------------------------------------
# plots

def label_bars(ax, bars, fmt, rotation=0, fontsize=7):
    for b in bars:
        h = b.get_height()
        if h != h or h == 0:  # NaN or empty
            continue
        ax.annotate(fmt(h), (b.get_x() + b.get_width() / 2, h), xytext=(0, 2),
                    textcoords="offset points", ha="center", va="bottom",
                    rotation=rotation, fontsize=fontsize)


def log_axis(ax, lo, hi):
    """Log y axis from lo to hi with ticks at 1, 2, 5 x 10^k written as plain numbers."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    ax.set_yscale("log")
    ax.set_ylim(lo, hi)
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1, 2, 5)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda y, _: f"{y:g}"))
    ax.yaxis.set_minor_formatter(NullFormatter())


def round_down_125(x):
    """The largest 1, 2 or 5 x 10^k not above x."""
    import math
    k = math.floor(math.log10(x))
    for m in (5, 2, 1):
        if m * 10 ** k <= x:
            return m * 10 ** k
    return 10 ** k


def file_name(path):
    """The file's name, with its directory's for a model directory's model.safetensors."""
    base = os.path.basename(path)
    if base == "model.safetensors":
        return os.path.join(os.path.basename(os.path.dirname(path)), base)
    return base


def peer_file(peers, path):
    if not peers:
        return None
    rp = os.path.realpath(path)
    for f in peers["files"]:
        if os.path.realpath(f["file"]) == rp:
            return f
    return None


def plot_ratios(plt, sizes, peers, notes, notes_src, out):
    files = sizes["files"]
    series = [  # (label, colour, hatch, value(rec) -> % or None)
        ("exprans (default)", "#1f4e9c", None, lambda r: 100 * r["default"]["ratio"]),
        ("exprans --fast", "#6b9bd8", None, lambda r: 100 * r["fast"]["ratio"]),
        ("bound: exponent only", "#bbbbbb", "//", lambda r: 100 * r["bounds"]["exponent_only"]),
        ("bound: every plane", "#999999", "\\\\", lambda r: 100 * r["bounds"]["all_planes"]),
        ("bound: joint 16-bit", "#666666", "xx", lambda r: 100 * r["bounds"]["joint16"]),
        ("ZipNN (measured)", "#d9822b", None, lambda r: r.get("_zipnn")),
    ]
    for name in sorted(notes):
        colour = "#b5b53a" if name.startswith("lmz") else "#a05a9c"
        series.append((f"{name} (from notes)", colour, "..",
                       lambda r, n=name: r.get("_notes", {}).get(n)))
    for r in files:
        pf = peer_file(peers, os.path.join(REPO, r["file"]))
        if pf:
            r["_zipnn"] = pf["threads"][next(iter(pf["threads"]))]["sizes"]["zipnn"][
                "pct_of_original"]
        if os.path.basename(r["file"]) == "all-MiniLM-L6-v2.bf16.safetensors":
            r["_notes"] = notes
    vals = [[s[3](r) for r in files] for s in series]
    flat = [v for row in vals for v in row if v is not None]
    lo = max(0, 5 * int(min(flat) / 5) - 5)
    n = len(series)
    width = 0.8 / n
    fig, ax = plt.subplots(figsize=(15, 6.5))
    for k, (label, colour, hatch, _) in enumerate(series):
        xs = [i - 0.4 + width * (k + 0.5) for i in range(len(files))]
        ys = [v if v is not None else float("nan") for v in vals[k]]
        bars = ax.bar(xs, ys, width, label=label, color=colour, hatch=hatch,
                      edgecolor="white" if hatch is None else "#333333", linewidth=0.5)
        label_bars(ax, bars, lambda h: f"{h:.2f}", rotation=90)
    ax.set_xticks(range(len(files)))
    ax.set_xticklabels([f"{r['label']}\n{r['original_bytes'] / 1e6:.1f} MB" for r in files])
    ax.set_ylim(lo, max(flat) + 5)
    ax.set_ylabel(f"compressed size, % of the original file (lower is better; axis from {lo}%)")
    ax.set_xlabel("file (dtype, original size)")
    zdate = f"ZipNN {peers['versions'].get('zipnn')} measured {peers['date'][:10]}" if peers \
        else "ZipNN not measured"
    ax.set_title(f"Compressed size per file: {sizes['exprans_version']}, {sizes['date'][:10]}\n"
                 f"bounds: order-0 per tensor (exprans info); {zdate} (benches/peers.sh); "
                 f"lmz, DFloat11: MiniLM BF16 only, from {notes_src}", fontsize=10)
    ax.legend(ncol=4, fontsize=8, loc="upper left")
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


SPEED_ROWS = {
    "compress": [("exprans_compress", "exprans"), ("exprans_compress_fast", "exprans --fast"),
                 ("zipnn_compress", "ZipNN"), ("cp", "cp (I/O floor)")],
    "decompress": [("exprans_decompress", "exprans\n(default file)"),
                   ("exprans_decompress_fast", "exprans\n(--fast file)"),
                   ("zipnn_decompress", "ZipNN"), ("cp", "cp (I/O floor)")],
}


def plot_speed(plt, peers, out):
    files = peers["files"]
    fig, axes = plt.subplots(len(files), 2, figsize=(13, 4.8 * len(files)), squeeze=False)
    colours = {"1": "#1f4e9c", "2": "#d9822b"}
    for fi, f in enumerate(files):
        tss = list(f["threads"])
        for ci, op in enumerate(("compress", "decompress")):
            ax = axes[fi][ci]
            rows = SPEED_ROWS[op]
            w = 0.8 / len(tss)
            top = 0
            for k, t in enumerate(tss):
                ys = [f["threads"][t]["mb_per_s"][key] for key, _ in rows]
                top = max(top, max(ys))
                xs = [i - 0.4 + w * (k + 0.5) for i in range(len(rows))]
                bars = ax.bar(xs, ys, w, color=colours.get(t, None),
                              label=f"{t} thread{'s' if t != '1' else ''}")
                label_bars(ax, bars, lambda h: f"{h:.0f}", fontsize=8)
            low = min(f["threads"][t]["mb_per_s"][key] for t in tss for key, _ in rows)
            log_axis(ax, round_down_125(low / 1.5), top * 2.5)
            ax.set_xticks(range(len(rows)))
            ax.set_xticklabels([lab for _, lab in rows], fontsize=9)
            ax.set_ylabel("MB/s of the original file (log scale)")
            ax.set_title(f"{op}: {file_name(f['file'])} ({f['bytes'] / 1e6:.1f} MB, "
                         f"{f['dtype']})", fontsize=10)
            ax.grid(axis="y", alpha=0.3, which="both")
            ax.legend(fontsize=8, loc="upper left")
    m, v = peers["machine"], peers["versions"]
    torch = "" if v.get("torch") else ", torch stubbed"
    fig.suptitle(f"File to file, whole process (start-up and file I/O included), best of "
                 f"{peers['runs']} runs, {peers['date'][:10]}\n"
                 f"{m['cpu']}, {m['cpus_usable']} of {m['logical_cpus']} CPUs usable; "
                 f"{v['exprans']}, ZipNN {v.get('zipnn')} (Python {v.get('python')}{torch}); "
                 f"cp = copy of the same file", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def plot_tokens(plt, g, out):
    fig, axes = plt.subplots(1, 2, figsize=(13, 5.2))
    colours = ["#1f4e9c", "#4a7fc8", "#d9822b", "#f0b27a", "#5a9c5a"]
    labels = [lab.replace(", ", ",\n") for _, lab in GEN_MODES]
    for ax, key, what in ((axes[0], "decode_tokens_per_s", "decode (one token at a time)"),
                          (axes[1], "prefill_tokens_per_s", "prefill (prompt)")):
        ys = [gen_mean(g, m, key) for m, _ in GEN_MODES]
        rng = [gen_range(g, m, key) for m, _ in GEN_MODES]
        err = [[y - r[0] for y, r in zip(ys, rng)], [r[1] - y for y, r in zip(ys, rng)]]
        bars = ax.bar(range(len(ys)), ys, 0.6, color=colours, yerr=err, capsize=3,
                      ecolor="#444444")
        for b, (lo, hi) in zip(bars, rng):
            ax.annotate(f"{b.get_height():.3g}", (b.get_x() + b.get_width() / 2, hi),
                        xytext=(0, 3), textcoords="offset points", ha="center", va="bottom",
                        fontsize=8)
        log_axis(ax, round_down_125(min(r[0] for r in rng) / 1.5), max(r[1] for r in rng) * 3)
        ax.set_xticks(range(len(ys)))
        ax.set_xticklabels(labels, fontsize=8)
        ax.set_xlabel("weights (GPU modes on the adapter above; last bar on the CPU)")
        ax.set_ylabel("tokens/s (log scale; mean over prompts, bars: min-max)")
        ax.set_title(what, fontsize=10)
        ax.grid(axis="y", alpha=0.3, which="both")
    nt = g["new_tokens"]
    fig.suptitle(f"SmolLM2-135M-Instruct text generation (exprans generate --chat, greedy), "
                 f"{len(g['prompts'])} prompts, {min(nt)}-{max(nt)} new tokens, {g['date'][:10]}\n"
                 f"GPU: {g['gpu']}; CPU: {cpu_model()}", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------
# markdown

def md_sizes(sizes, peers, notes, notes_src):
    L = [f"### Size ({sizes['exprans_version']}, {sizes['date'][:10]}; `benches/sizes.sh`)", "",
         "Share of the original file. Bounds: order-0, per tensor, from `exprans info --json` of "
         "the default file.", "",
         "| file | dtype | original bytes | **exprans** | exprans `--fast` | ZipNN | "
         "bound: exponent only | bound: every plane | bound: joint 16-bit |",
         "|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    pct = lambda x: "-" if x is None else f"{x:.2f}%"  # noqa: E731
    for r in sizes["files"]:
        pf = peer_file(peers, os.path.join(REPO, r["file"]))
        z = pf["threads"][next(iter(pf["threads"]))]["sizes"]["zipnn"]["pct_of_original"] \
            if pf else None
        b = r["bounds"]
        L.append(f"| {r['label']} | {r['dtype']} | {r['original_bytes']:,} | "
                 f"**{pct(100 * r['default']['ratio'])}** | {pct(100 * r['fast']['ratio'])} | "
                 f"{pct(z)} | {pct(100 * b['exponent_only'])} | {pct(100 * b['all_planes'])} | "
                 f"{pct(100 * b['joint16'])} |")
    L.append("")
    L.append("On MiniLM BF16, from the notes (" + notes_src + ", not rerun): " +
             ", ".join(f"{k} {v}%" for k, v in sorted(notes.items())) + ".")
    mini = next((r for r in sizes["files"]
                 if os.path.basename(r["file"]) == "all-MiniLM-L6-v2.bf16.safetensors"), None)
    if mini:
        t = mini["default"]["info_totals"]
        o = t["original_bytes"] / 100
        L.append("")
        L.append(f"MiniLM BF16 default file, from `exprans info`: container header "
                 f"{t['container_header_bytes'] / o:.3f} points of the original, frequency tables "
                 f"{t['table_bytes'] / o:.3f}, lane directories {t['directory_bytes'] / o:.3f}, "
                 f"entry headers and padding {t['entry_header_and_padding_bytes'] / o:.3f}, "
                 f"coding loss {t['coding_loss_bytes'] / o:.3f}.")
    return L


def md_speed(peers):
    m, v = peers["machine"], peers["versions"]
    L = [f"### Speed, file to file (`benches/peers.sh`, best of {peers['runs']}, "
         f"{peers['date'][:10]})", "",
         f"{m['cpu']}, {m['cpus_usable']} CPUs usable; {v['exprans']}, ZipNN {v.get('zipnn')}"
         f" (torch: {v.get('torch') or 'stub'}). Whole processes, start-up and file I/O "
         "included; MB/s of the original file; both round trips checked with cmp; "
         "\"vs ZipNN\": exprans MB/s / ZipNN MB/s (> 1: exprans is faster)."]
    for f in peers["files"]:
        tss = list(f["threads"])
        th = lambda t: f"{t} thread{'s' if t != '1' else ''}"  # noqa: E731
        L += ["", f"{file_name(f['file'])} ({f['bytes']:,} bytes, {f['dtype']}):", "",
              "| command | " + " | ".join(f"{th(t)}: MB/s | vs ZipNN" for t in tss) + " |",
              "|---|" + "---:|---:|" * len(tss)]
        for op, rows in SPEED_ROWS.items():
            zkey = "zipnn_" + op
            for key, lab in rows:
                if key == "cp" and op == "decompress":
                    continue
                lab = lab.replace("\n", " ")
                name = f"{op} {lab}" if not key == "cp" else "cp (copy of the file)"
                cells = []
                for t in tss:
                    mb = f["threads"][t]["mb_per_s"]
                    rel = "" if key in (zkey, "cp") else f"{mb[key] / mb[zkey]:.2f}x"
                    cells.append(f"{mb[key]:.0f} | {rel}")
                L.append(f"| {name} | " + " | ".join(cells) + " |")
    return L


def md_bench(bench):
    L = [f"### CPU speed in memory (`exprans bench --json`)", "",
         f"memcpy of the same bytes: {bench['memcpy_bytes_per_second'] / 1e9:.2f} GB/s in the same "
         "run; decoding includes both checksums.", "",
         "| | threads | MB/s | vs memcpy |", "|---|---:|---:|---:|"]
    for s in bench["speeds"]:
        L.append(f"| {s['what']} | {s['threads']} | {s['bytes_per_second'] / 1e6:.0f} | "
                 f"{s['vs_memcpy']:.3f}x |")
    return L


def md_generate(g):
    nt = g["new_tokens"]
    L = [f"### Text generation (`benches/generate.sh`, {g['date'][:10]})", "",
         f"SmolLM2-135M-Instruct, {len(g['prompts'])} chat prompts, {min(nt)}-{max(nt)} new "
         f"tokens, one run each, means over the prompts. GPU: {g['gpu']}; CPU: {cpu_model()}.", "",
         "| weights | GPU memory: weights | activations + KV cache | load s | prefill tokens/s | "
         "decode tokens/s | time per generated token vs plain |",
         "|---|---:|---:|---:|---:|---:|---:|"]
    plain_w = g["runs"]["plain"][0]["timings"]["weight_bytes"]
    plain_d = gen_mean(g, "plain", "decode_tokens_per_s")
    for m, lab in GEN_MODES:
        t = g["runs"][m][0]["timings"]
        w, a = t["weight_bytes"], t["activation_bytes"]
        ws = "(host RAM)" if w is None else f"{w / 1e6:.1f} MB" + (
            f" ({100 * w / plain_w:.1f}%)" if w != plain_w else "")
        rel = "" if m == "cpu" else f"{plain_d / gen_mean(g, m, 'decode_tokens_per_s'):.2f}x"
        L.append(f"| {lab} | {ws} | {'' if a is None else f'{a / 1e6:.1f} MB'} | "
                 f"{gen_mean(g, m, 'load_s'):.2f} | {gen_mean(g, m, 'prefill_tokens_per_s'):.3g} | "
                 f"{gen_mean(g, m, 'decode_tokens_per_s'):.3g} | {rel} |")
    agree = "; ".join(f"{a} of {n}" for a, n in g["cpu_agree"])
    L += ["", f"Greedy tokens identical in the four GPU modes: {'yes' if g['ids_same'] else 'NO'}; "
              f"tokens equal to the CPU reference's, per prompt: {agree}."]
    return L


def main():
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default=os.path.join(REPO, "benches/sizes-out/sizes.json"))
    ap.add_argument("--peers", default=os.path.join(REPO, "benches/peers-out/peers.json"))
    ap.add_argument("--generate", default=os.path.join(REPO, "generate-out"))
    ap.add_argument("--bench", default=None, help="`exprans bench --json` output (optional)")
    ap.add_argument("--notes", default=os.path.join(REPO, "..", "shared", "notes", "peers.md"))
    ap.add_argument("--outdir", default=os.path.join(REPO, "docs", "plots"))
    ap.add_argument("--markdown", default=None, help="also write the tables here")
    args = ap.parse_args()
    ensure_matplotlib()
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    plt.rcParams["hatch.linewidth"] = 0.5

    os.makedirs(args.outdir, exist_ok=True)
    sizes = load_json(args.sizes, "sizes JSON")
    peers = load_json(args.peers, "peers JSON")
    bench = load_json(args.bench, "bench JSON") if args.bench else None
    gen = load_generate(args.generate)
    notes, notes_src = notes_peers(args.notes)
    md, wrote = [], []
    if sizes:
        p = os.path.join(args.outdir, "ratios.png")
        plot_ratios(plt, sizes, peers, notes, notes_src, p)
        wrote.append(p)
        md += md_sizes(sizes, peers, notes, notes_src) + [""]
    if peers:
        p = os.path.join(args.outdir, "speed.png")
        plot_speed(plt, peers, p)
        wrote.append(p)
        md += md_speed(peers) + [""]
    if bench:
        md += md_bench(bench) + [""]
    if gen:
        p = os.path.join(args.outdir, "tokens.png")
        plot_tokens(plt, gen, p)
        wrote.append(p)
        md += md_generate(gen) + [""]
    text = "\n".join(md)
    sys.stdout.write(text)
    if args.markdown:
        os.makedirs(os.path.dirname(os.path.abspath(args.markdown)), exist_ok=True)
        with open(args.markdown, "w") as f:
            f.write(text)
    for p in wrote:
        print(f"plots.py: wrote {os.path.relpath(p)}", file=sys.stderr)


if __name__ == "__main__":
    main()
