"""CPU benchmark: select and hmin against the peers, in one run, ratios included.

    python benchmarks/bench_cpu.py            # the issue's cases (minutes)
    python benchmarks/bench_cpu.py --quick    # tiny cases (seconds), as CI runs it

Peers (skipped with a note when not installed): a NumPy streaming loop,
torch-fps's C++ FPS, fpsample (vanilla and bucket FPS, d = 3 only) and FAISS's
flat index with k = 2 for h_min. Peers that would run for minutes are timed on
a prefix of the picks and extrapolated; such rows say "est.". Every timed
selection is checked first: hminsel's lazy and streaming paths must agree index
for index, and peers must agree with hminsel on the prefix they ran.
"""
from __future__ import annotations

import argparse
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402
import hminsel  # noqa: E402

FULL = [("clustered", 50_000, 384, 2000), ("gaussian", 50_000, 384, 2000),
        ("clustered", 200_000, 768, 10_000), ("gaussian", 200_000, 768, 10_000),
        ("clustered", 1_000_000, 3, 4096), ("gaussian", 1_000_000, 3, 4096)]
QUICK = [("clustered", 5000, 64, 200), ("gaussian", 20_000, 3, 256)]
PEER_BUDGET_S = 20.0  # a peer that would take longer runs a prefix and is extrapolated


def numpy_streaming(x, k):
    """The loop users write by hand: one full NumPy pass per pick."""
    mind = np.full(len(x), np.inf, np.float32)
    picks = [0]
    for _ in range(k - 1):
        diff = x - x[picks[-1]]
        np.minimum(mind, np.einsum("ij,ij->i", diff, diff), out=mind)
        mind[picks[-1]] = -1
        picks.append(int(np.argmax(mind)))
    return np.asarray(picks)


def peers(d):
    """name -> fn(x, k) -> indices, for the peers installed here."""
    out = {"numpy loop": numpy_streaming}
    try:
        import torch
        import torch_fps
        torch.set_num_threads(os.cpu_count())

        def tfps(x, k):
            xt = torch.from_numpy(x)[None]
            mask = torch.ones(xt.shape[:2], dtype=torch.bool)
            return torch_fps.farthest_point_sampling(xt, mask, k, random_start=False)[0].numpy()
        out["torch-fps C++"] = tfps
    except ImportError as exc:
        print(f"note: torch-fps skipped ({exc})")
    if d == 3:
        try:
            import fpsample
            out["fpsample"] = lambda x, k: fpsample.fps_sampling(x, k, start_idx=0)
            out["fpsample bucket"] = lambda x, k: fpsample.bucket_fps_kdline_sampling(x, k, h=7, start_idx=0)
        except ImportError as exc:
            print(f"note: fpsample skipped ({exc})")
    return out


def time_peer(fn, x, k, ref):
    """Time a peer; a prefix of the picks when the whole run would blow the budget."""
    t0 = time.perf_counter()
    probe = max(2, min(k, 64))
    got = fn(x, probe)
    per_pick = (time.perf_counter() - t0) / probe
    count = k if per_pick * k < PEER_BUDGET_S else max(probe, int(PEER_BUDGET_S / per_pick / 2))
    med, spread, got = common.timeit(lambda: fn(x, count), repeat=1 if count < k else 3, warmup=0)
    agree = float(np.mean(np.asarray(got)[:count] == ref[:count]))
    return med * k / count, count < k, agree


def bench_select(cases):
    rows = []
    for kind, n, d, k in cases:
        x = getattr(common, kind)(n, d, seed=1)
        lazy_t, _, sel = common.timeit(lambda: hminsel.select(x, k), repeat=3)
        stream_count = k if n * d * k < 4e9 else max(64, int(4e9 / (n * d)))
        stream_t, _, stream = common.timeit(
            lambda: hminsel.select(x, stream_count, algorithm="streaming"), repeat=1, warmup=0)
        if not np.array_equal(stream.indices, sel.indices[:stream_count]):
            raise SystemExit(f"lazy and streaming disagree on {kind} {n}x{d}")
        base = dict(case=kind, N=n, d=d, k=k)
        rows.append(dict(base, method="hminsel lazy", time=lazy_t, est=False, agree=1.0,
                         passes=sel.stats.passes, rounds=sel.stats.rounds))
        rows.append(dict(base, method="hminsel streaming", time=stream_t * k / stream_count,
                         est=stream_count < k, agree=1.0, passes=k - 1))
        for name, fn in peers(d).items():
            t, est, agree = time_peer(fn, x, k, sel.indices)
            rows.append(dict(base, method=name, time=t, est=est, agree=agree, passes=k - 1))
        best_peer = min(r["time"] for r in rows if r["N"] == n and r["d"] == d and r["case"] == kind
                        and not r["method"].startswith("hminsel"))
        for r in rows[-(len(peers(d)) + 2):]:
            r["x vs lazy"] = f"{r['time'] / lazy_t:.1f}x"
            r["lazy vs best peer"] = f"{best_peer / lazy_t:.1f}x" if r["method"] == "hminsel lazy" else ""
        print(common.markdown([fmt(r) for r in rows[-(len(peers(d)) + 2):]], COLUMNS), flush=True)
    return rows


def bench_hmin(cases):
    rows = []
    for n, d in cases:
        x = common.clustered(n, d, seed=2)
        t, _, res = common.timeit(lambda: hminsel.hmin(x), repeat=3)
        rows.append(dict(case="clustered", N=n, d=d, k="", method="hminsel hmin", time=t, est=False,
                         agree=1.0, passes="", **{"x vs lazy": "1.0x"}))
        try:
            import faiss

            def flat():
                index = faiss.IndexFlatL2(d)
                index.add(x)
                dist, idx = index.search(x, 2)
                i = int(np.argmin(dist[:, 1]))
                return np.sqrt(max(dist[i, 1], 0)), i, int(idx[i, 1])
            tf, _, (value, i, j) = common.timeit(flat, repeat=3)
            agree = float(abs(value - res.value) <= 1e-4 * res.value + 1e-6)
            rows.append(dict(case="clustered", N=n, d=d, k="", method="faiss flat k=2", time=tf,
                             est=False, agree=agree, passes="", **{"x vs lazy": f"{tf / t:.1f}x"}))
        except ImportError as exc:
            print(f"note: faiss skipped ({exc})")
    print(common.markdown([fmt(r) for r in rows], COLUMNS))
    return rows


COLUMNS = ["case", "N", "d", "k", "method", "time", "x vs lazy", "lazy vs best peer", "passes",
           "rounds", "agree"]


def fmt(row):
    out = dict(row)
    out["time"] = ("est. " if row.get("est") else "") + common.fmt_time(row["time"])
    if isinstance(row.get("passes"), float):
        out["passes"] = f"{row['passes']:.1f}"
    out["agree"] = f"{row['agree']:.0%}"
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="tiny cases, for CI")
    parser.add_argument("--only", choices=["select", "hmin"], help="run one part")
    parser.add_argument("--name", default=None, help="results file name (default cpu or cpu_quick)")
    args = parser.parse_args(argv)
    header = common.machine()
    print(", ".join(f"{k}={v}" for k, v in header.items()))
    print(hminsel.info())
    rows = []
    if args.only in (None, "select"):
        rows += bench_select(QUICK if args.quick else FULL)
    if args.only in (None, "hmin"):
        rows += bench_hmin([(2000, 64)] if args.quick else [(20_000, 384), (50_000, 768)])
    name = args.name or ("cpu_quick" if args.quick else "cpu")
    path = common.write_results(name, header, rows, common.markdown([fmt(r) for r in rows], COLUMNS))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
