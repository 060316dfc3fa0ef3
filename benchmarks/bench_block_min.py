"""block_min of the cpu backend on each of its paths, to place the switches between them.

    python benchmarks/bench_block_min.py [--quick] [--d 64 384 1536] [--m 4 8 16 ...]

For each d and number of centres m (random rows of clustered data, the refresh
of a lazy round), times ``CpuBackend.block_min`` forced down each path:
``direct`` (the direct form, register-tiled), ``few`` (one pass: the fused
GEMM then each row's window; AVX-512 builds) and ``gemm`` (GEMM tiles with
top-k lists, then a settle pass). Every path's values and indices are checked
equal to the direct form's, bit for bit, before timing. The last columns name
the fastest path and the one ``backend="auto"`` takes (``cpu.FEW_CENTRES``,
``cpu.GEMM_MIN_CENTRES``): where they differ by more than the noise, move the
switch. Medians of 3 calls after one untimed call (``--quick``: 2).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import numpy as np

from hminsel.backends import cpu as cpu_mod, get

QUICK = {"d": [64], "m": [4, 32], "n": 20_000, "reps": 2}
FULL = {"d": [64, 384, 1536], "m": [4, 8, 12, 16, 32, 64, 128, 256, 512], "n": 0, "reps": 3}
BYTES = 300 << 20  # x of about this size for each d (n = 0: N = BYTES / (4 d))
PATHS = ("direct", "few", "gemm")


def force(path: str) -> dict:
    """The cpu module's switches that send every block_min down ``path``."""
    big = 1 << 40
    return {"GEMM_MIN_CENTRES": 1 if path == "gemm" else big,
            "GEMM_MIN_DIM": big if path == "direct" else 1,
            "GEMM_MIN_DIM_F64": big if path == "direct" else 1,
            "FEW_CENTRES": (1, big) if path == "few" else (1, 0)}


def auto_path(m: int, d: int) -> str:
    if cpu_mod.FEW_CENTRES[0] <= m <= cpu_mod.FEW_CENTRES[1] and d >= cpu_mod.GEMM_MIN_DIM \
            and cpu_mod._cpu.fused_gemm_available():
        return "few"
    return "gemm" if m >= cpu_mod.GEMM_MIN_CENTRES and d >= cpu_mod.GEMM_MIN_DIM else "direct"


def timed(cpu, x, y, path: str, reps: int):
    saved = {k: getattr(cpu_mod, k) for k in force(path)}
    for k, v in force(path).items():
        setattr(cpu_mod, k, v)
    try:
        out = cpu.block_min(x, y)
        times = []
        for _ in range(reps):
            t0 = time.perf_counter()
            cpu.block_min(x, y)
            times.append(time.perf_counter() - t0)
    finally:
        for k, v in saved.items():
            setattr(cpu_mod, k, v)
    return float(np.median(times)), out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one small d, two m (a smoke run)")
    ap.add_argument("--d", type=int, nargs="+")
    ap.add_argument("--m", type=int, nargs="+")
    args = ap.parse_args(argv)
    cpu = get("cpu")
    reason = "cannot be imported" if cpu is None else cpu.unavailable_reason()
    if reason:
        print(f"cpu backend not available: {reason}", file=sys.stderr)
        return 1
    plan = dict(QUICK if args.quick else FULL)
    plan["d"], plan["m"] = args.d or plan["d"], args.m or plan["m"]
    paths = PATHS if cpu_mod._cpu.fused_gemm_available() else ("direct", "gemm")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"{cpu_mod._cpu.get_threads()} threads, fused GEMM: {cpu_mod._cpu.fused_gemm_available()}")
    print("| d | N | m | " + " | ".join(f"{p} ms" for p in paths) + " | fastest | auto |")
    print("|---" * (len(paths) + 5) + "|")
    rng = np.random.default_rng(0)
    for d in plan["d"]:
        n = plan["n"] or BYTES // (4 * d)
        centres = rng.standard_normal((200, d)).astype(np.float32)
        x = centres[rng.integers(0, 200, n)] + 0.3 * rng.standard_normal((n, d), dtype=np.float32)
        for m in plan["m"]:
            y = np.ascontiguousarray(x[rng.choice(n, m, replace=False)])
            got = {p: timed(cpu, x, y, p, plan["reps"]) for p in paths}
            want = got["direct"][1]
            for p, (_, (value, index)) in got.items():
                if not (np.array_equal(value, want[0]) and np.array_equal(index, want[1])):
                    print(f"d={d} m={m}: the {p} path disagrees with the direct form", file=sys.stderr)
                    return 1
            fastest = min(got, key=lambda p: got[p][0])
            cells = " | ".join(f"{got[p][0] * 1e3:.1f}" for p in paths)
            print(f"| {d} | {n} | {m} | {cells} | {fastest} | {auto_path(m, d)} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
