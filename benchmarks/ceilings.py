"""The machine's measured ceilings: read bandwidth (GB/s) and float32 GEMM (GFLOP/s).

Read bandwidth comes from ``bench_step.read_bandwidth`` (the best of a threaded
NumPy sum and a BLAS sgemv over a buffer much larger than the last-level
cache); the GEMM ceiling is the best of a few NumPy float32 matrix products
(``n x n @ n x n``, 2 n^3 flops). Both use every core, like the kernels.
"""
from __future__ import annotations

import os
import time

import numpy as np

from bench_step import read_bandwidth


def sgemm_gflops(n: int, reps: int = 3) -> float:
    rng = np.random.default_rng(0)
    a = rng.standard_normal((n, n), dtype=np.float32)
    b = rng.standard_normal((n, n), dtype=np.float32)
    a @ b
    best = float("inf")
    for _ in range(reps):
        t0 = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - t0)
    return 2 * n**3 / best / 1e9


def measure(quick: bool = False) -> dict:
    threads = os.cpu_count() or 1
    nbytes = (256 << 20) if quick else (1 << 30)
    bw, how = read_bandwidth(nbytes, threads)
    n = 1024 if quick else 4096
    return {"read_gbs": round(bw, 2), "read_how": f"{how}, {nbytes >> 20} MiB buffer, best of 5",
            "sgemm_gflops": round(sgemm_gflops(n), 1), "sgemm_how": f"numpy float32 {n}x{n} matmul, best of 3"}
