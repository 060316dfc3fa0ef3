"""hminsel benchmark suite: one command, every suite, against the peers, in one run.

    python benchmarks/run.py                       # the full CPU suite (about 30 min on 2 cores)
    python benchmarks/run.py --quick               # tiny cases of every suite (CI, < 1 min),
                                                   # into benchmarks/results/quick/ (not tracked)
    python benchmarks/run.py --only select hmin --out /tmp/bench
    python benchmarks/run.py --device cuda         # the same cases on GPU tensors
    python benchmarks/run.py --only contention --busy 2   # quiet vs 2 busy processes

Per suite it writes <out>/<suite>.json (machine header, notes, rows),
<out>/<suite>.md (a markdown table) and PNG plots. Correctness is checked
before timing; a peer that is not installed is a skip note; out-of-memory is a
row, not a crash. Exit status 1 when a correctness gate failed.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import ceilings  # noqa: E402
import common  # noqa: E402
import peers  # noqa: E402
import plots  # noqa: E402
import summary as summary_md  # noqa: E402
from suites import bigcloud, clouds, contention, labels, pairs, seed, select  # noqa: E402

SUITES = {
    "select": (select.run, select.COLUMNS, "Data selection: hminsel.select vs FPS peers"),
    "lazy": (select.run_lazy, select.COLUMNS, "Exact lazy FPS vs streaming: passes over x, and the FPS peers"),
    "seed": (seed.run, seed.COLUMNS, "The seed workload: keep half of a pool (cosine, k = N/2) vs one x @ x.T"),
    "clouds": (clouds.run, clouds.COLUMNS, "Point clouds: B x N x 3, k = N/8"),
    "labels": (labels.run, labels.COLUMNS, "Per-label quotas: B labels x N rows x d (64-768), k = N/10 a label"),
    "bigcloud": (bigcloud.run, bigcloud.COLUMNS, "Large point clouds: one 200k / 1M x 3 cloud, 64 x 4096 x 3 (bucket FPS)"),
    "hmin": (pairs.run_hmin, pairs.COLUMNS, "h_min of a set: hminsel.hmin vs FAISS flat k=2"),
    "nearest": (pairs.run_nearest, pairs.COLUMNS, "Nearest center: hminsel.nearest vs FAISS flat k=1"),
    "contention": (contention.run, contention.COLUMNS, "Under load: quiet vs busy background processes"),
}
ROW_KEYS = ["suite", "case", "data", "B", "N", "d", "k", "m", "dtype", "method", "status", "time", "t_min",
            "t_max", "t_q1", "t_q3", "repeats", "est", "count", "unit", "work", "rate", "ceiling_frac",
            "vs_hminsel", "vs_gemm", "passes", "rounds", "agree", "gate", "busy", "ratio", "cpu", "note"]


def _cuda_missing() -> str | None:
    try:
        import torch
    except ImportError:
        return "torch is not installed, so there is no CUDA device to run on"
    if not torch.cuda.is_available():
        return "no CUDA device here (torch.cuda.is_available() is False): GPU suites not run"
    return None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="tiny cases of every suite (CI)")
    ap.add_argument("--only", nargs="+", choices=list(SUITES), help="run these suites only")
    ap.add_argument("--out", type=Path, default=None,
                    help="result folder (default benchmarks/results; with --quick benchmarks/results/quick, "
                         "which git ignores, so a trial run leaves the committed results alone)")
    ap.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    ap.add_argument("--repeat", type=int, default=None, help="timed runs per method (default 3; 2 with --quick)")
    ap.add_argument("--budget", type=float, default=None,
                    help="seconds a method may take per case before it runs a prefix and is extrapolated "
                         "(default 12; 2 with --quick)")
    ap.add_argument("--busy", type=int, default=2, help="busy background processes in the contention suite")
    ap.add_argument("--busy-kind", choices=["python", "numpy"], default="python",
                    help="what the busy processes run (pure-Python loop or 1-thread NumPy products)")
    ap.add_argument("--no-plots", action="store_true")
    args = ap.parse_args(argv)
    if args.out is None:
        args.out = common.RESULTS / "quick" if args.quick else common.RESULTS
    started = time.perf_counter()
    peers.DEVICE = args.device
    header = common.machine()
    header["device"] = args.device
    names = args.only or list(SUITES)
    notes0 = ["timings: median of interleaved runs (methods take turns); spread = min-max; "
              "this machine is shared, so expect noise of tens of percent"]
    if args.device == "cuda":
        why = _cuda_missing()
        if why:
            print(why)
            for name in names:
                common.write_results(args.out, name, header, [], notes0 + [why], SUITES[name][1], SUITES[name][2])
            return 0
    print("measuring ceilings ...", flush=True)
    header.update(ceilings.measure(args.quick))
    print(", ".join(f"{k}={v}" for k, v in header.items()), flush=True)
    ctx = {"quick": args.quick, "repeat": args.repeat or (2 if args.quick else 3),
           "budget": args.budget or (2.0 if args.quick else 12.0), "ceil": header,
           "busy": args.busy, "busy_kind": args.busy_kind}
    failed = []
    seconds = {}
    for name in names:
        fn, columns, title = SUITES[name]
        t0 = time.perf_counter()
        print(f"\n== {name} ==", flush=True)
        rows, notes = fn(ctx)
        rows = [{key: r.get(key) for key in ROW_KEYS if r.get(key) is not None} for r in rows]
        bad = [r for r in rows if r.get("gate") == "FAIL"]
        failed += bad
        notes = notes0 + notes + [f"correctness gate FAILED: {r['case']} / {r['method']} (agree {r.get('agree')})"
                                  for r in bad]
        header_s = dict(header, suite_seconds=round(time.perf_counter() - t0, 1))
        md = common.write_results(args.out, name, header_s, rows, notes, columns, title)
        if not args.no_plots:
            try:
                written = plots.plot_suite(args.out, name, rows)
                if written:
                    with md.open("a") as fh:
                        fh.write("\n" + "\n".join(f"![{w}]({w})" for w in written) + "\n")
            except ImportError as exc:
                notes.append(f"plots skipped: {exc}")
                print(f"note: plots skipped ({exc})")
        seconds[name] = round(time.perf_counter() - t0, 1)
        print(f"wrote {md} ({seconds[name]} s)", flush=True)
    seconds["total"] = round(time.perf_counter() - started, 1)
    print(f"wrote {summary_md.write(args.out)}")
    (args.out / "run.json").write_text(json.dumps({"argv": sys.argv[1:] if argv is None else argv,
                                                   "seconds": seconds, "machine": header}, indent=1))
    print(f"done in {seconds['total']} s: {seconds}")
    for r in failed:
        print(f"GATE FAILED: {r['case']} / {r['method']}: agree {r.get('agree')}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
