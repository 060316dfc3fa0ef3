"""Streaming step of the cpu backend against this machine's memory read bandwidth.

    python benchmarks/bench_step.py [--n 200000] [--d 384] [--reps 20]

The ceiling is the best of several streaming reads of a buffer much larger
than the last-level cache: a threaded NumPy sum (one slice per core) and a
BLAS matrix-vector product, best of 5 each. A step reads x (N*d*4 bytes) and
reads and writes mind (2*N*4 bytes). Correctness is checked before timing.
"""
from __future__ import annotations

import argparse
import os
import platform
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from hminsel.backends import get
from hminsel.backends.numpy_ref import NumpyBackend


def best_of(fn, reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def read_bandwidth(nbytes: int, threads: int) -> tuple[float, str]:
    """Best measured read GB/s over a float32 buffer of ``nbytes``, and how."""
    buf = np.ones(nbytes // 4, np.float32)
    parts = np.array_split(buf, threads)
    ones = np.ones(1024, np.float32)
    mat = buf[: len(buf) // 1024 * 1024].reshape(-1, 1024)
    with ThreadPoolExecutor(threads) as pool:
        summed = best_of(lambda: list(pool.map(np.sum, parts)), 5)
    gemv = best_of(lambda: mat @ ones, 5)
    rates = {"threaded np.sum": buf.nbytes / summed, "BLAS sgemv": mat.nbytes / gemv}
    how = max(rates, key=rates.get)
    return rates[how] / 1e9, how


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--d", type=int, default=384)
    ap.add_argument("--reps", type=int, default=20)
    args = ap.parse_args()
    cpu = get("cpu")
    reason = "cannot be imported" if cpu is None else cpu.unavailable_reason()
    if reason:
        raise SystemExit(f"cpu backend not available: {reason}")
    threads = os.cpu_count() or 1
    print(f"machine: {platform.processor() or platform.machine()}, {threads} cores, "
          f"numpy {np.__version__}, OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}")

    bw, how = read_bandwidth(1 << 30, threads)
    print(f"read bandwidth: {bw:.1f} GB/s ({how}, 1 GiB buffer, best of 5)")

    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.n, args.d), dtype=np.float32)
    mind = np.full(args.n, np.inf, np.float32)
    ref = np.full(args.n, np.inf)
    got, want = cpu.step(x, mind, 0), NumpyBackend().step(x, ref, 0)
    if got[0] != want[0] or not np.allclose(mind, ref, rtol=1e-5):
        raise SystemExit(f"step disagrees with the numpy oracle: {got} vs {want}")

    times, c = [], got[0]
    for _ in range(args.reps):
        t0 = time.perf_counter()
        c, _v = cpu.step(x, mind, c)
        times.append(time.perf_counter() - t0)
    med, lo, hi = np.median(times), np.min(times), np.max(times)
    nbytes = x.nbytes + 2 * mind.nbytes
    rate = nbytes / med / 1e9
    print(f"step  N={args.n} d={args.d} float32: median {med * 1e3:.2f} ms "
          f"(min {lo * 1e3:.2f}, max {hi * 1e3:.2f}, {args.reps} steps) "
          f"-> {rate:.1f} GB/s = {rate / bw:.0%} of read bandwidth")

    t0 = time.perf_counter()
    cpu.steps(x, mind, c, args.reps)
    per = (time.perf_counter() - t0) / args.reps
    print(f"steps (one C++ call, {args.reps} steps): {per * 1e3:.2f} ms/step "
          f"-> {nbytes / per / 1e9:.1f} GB/s = {nbytes / per / 1e9 / bw:.0%} of read bandwidth")


if __name__ == "__main__":
    main()
