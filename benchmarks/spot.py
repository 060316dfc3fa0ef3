"""The CPU headline ratios in about two minutes, on the machine at hand: what to expect here.

    python benchmarks/spot.py [--out benchmarks/results/spot.md]

Four cases, Gaussian float32, each hminsel call the median of 3 after a warm-up:
select 20k x 384 (k = 2000) and 100k x 768 (k = 1000) against torch-fps's C++
FPS (timed on a prefix of the picks, which must agree, and extrapolated: its
cost is linear in k), and hmin of 20k x 384 and the seed workload (keep half of
20k x 1024, cosine) against one NumPy ``x @ x.T`` of the same rows. The full
suites (``run.py``) take tens of minutes; this is their quick look, e.g. on a
CPU without AVX-512, where the GEMM forms run on NumPy's BLAS.
"""
from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import hminsel  # noqa: E402
import peers  # noqa: E402


SELECT_CASES = [(20_000, 384, 2000, 200), (100_000, 768, 1000, 100)]  # n, d, k, peer's prefix
GEMM_CASES = [(20_000, 384), (20_000, 1024)]  # hmin; keep half, cosine


def median(fn, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return float(np.median(times))


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            info = f.read()
        model = next(line.split(":", 1)[1].strip() for line in info.splitlines()
                     if line.startswith("model name"))
        simd = "AVX-512" if "avx512f" in info else "AVX2" if "avx2" in info else "no AVX2"
    except (OSError, StopIteration):
        simd = "?"
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                            cwd=os.path.dirname(__file__)).stdout.strip() or "unknown"
    return (f"{model} ({simd}), {len(os.sched_getaffinity(0))} cores, load "
            f"{os.getloadavg()[0]:.1f}; hminsel {hminsel.__version__} at {commit}, "
            f"numpy {np.__version__}; {time.strftime('%Y-%m-%d')}")


def select_rows(rng, fps):
    for n, d, k, prefix in SELECT_CASES:
        x = rng.standard_normal((n, d)).astype(np.float32)
        sel = hminsel.select(x, k)  # warm-up, and the picks the peer's prefix must match
        t = median(lambda: hminsel.select(x, k))
        if fps is None:
            yield f"| select {n} x {d}, k = {k} | {t * 1e3:.0f} ms | torch-fps not installed | |"
            continue
        fps(x, 8)  # its JIT build
        agree = np.array_equal(fps(x, prefix), sel.indices[:prefix])
        est = median(lambda: fps(x, prefix)) * (k - 1) / (prefix - 1)
        yield (f"| select {n} x {d}, k = {k} | {t * 1e3:.0f} ms | torch-fps C++ est. {est:.1f} s "
               f"(first {prefix} picks {'agree' if agree else 'DIFFER'}) | {est / t:.1f}x |")


def gemm_rows(rng):
    calls = [("hmin", lambda x: hminsel.hmin(x)),
             ("keep half, cosine", lambda x: hminsel.select(x, len(x) // 2, metric="cosine"))]
    for (what, call), (n, d) in zip(calls, GEMM_CASES):
        x = rng.standard_normal((n, d)).astype(np.float32)
        call(x)
        t = median(lambda: call(x))
        floor = median(lambda: x @ x.T, 2)
        yield (f"| {what} {n} x {d} | {t * 1e3:.0f} ms | one x @ x.T (NumPy) {floor * 1e3:.0f} ms "
               f"| {floor / t:.2f}x |")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="also write the table to this Markdown file")
    args = ap.parse_args(argv)
    found = peers.fps_peers(384)[0].get("torch-fps C++")
    rng = np.random.default_rng(0)
    lines = [f"Spot check: {machine()}", "", "| case | hminsel | against | speed-up |",
             "|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for row in [*select_rows(rng, found and found[0]), *gemm_rows(rng)]:
        print(row, flush=True)
        lines.append(row)
    if args.out:
        with open(args.out, "w") as f:
            f.write("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
