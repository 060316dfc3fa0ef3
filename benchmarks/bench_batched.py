"""Batched point clouds: hminsel.select_batched vs torch-fps's CPU FPS (B x N x 3).

    python benchmarks/bench_batched.py [--B 256 --N 4096 --k 512 --repeats 5]
    python benchmarks/bench_batched.py --radius 0.05 [--d 3]

Checks that both pick the same indices (random data, tie-free in practice)
before timing; reports medians and the spread. torch-fps is skipped with a
note when it is not installed (its first CPU call JIT-compiles its C++ code).
With ``--radius`` (uniform clouds in [0, 1)^d, every row a cap): select_batched
against one ``hminsel.select`` a cloud (the same picks, checked) and against
select_batched's run of every pick without a radius.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

import numpy as np

import hminsel


def timed(fn, repeats):
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), min(times), max(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--B", type=int, default=256)
    ap.add_argument("--N", type=int, default=4096)
    ap.add_argument("--k", type=int, default=512)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--radius", type=float, help="time select_batched with this radius instead")
    ap.add_argument("--d", type=int, default=3, help="dimension of the --radius clouds")
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    if a.radius is not None:
        return radius_main(a, rng.random((a.B * a.N, a.d), dtype=np.float32))
    pts = rng.random((a.B, a.N, 3), dtype=np.float32)
    flat = pts.reshape(-1, 3)
    ptr = np.arange(a.B + 1, dtype=np.int64) * a.N
    run = lambda: hminsel.select_batched(flat, a.k, ptr=ptr)  # noqa: E731
    ours = run().indices.reshape(a.B, a.k) - ptr[:-1, None]
    print(f"B={a.B} N={a.N} d=3 k={a.k} float32, {os.cpu_count()} cores, hminsel {hminsel.__version__}")
    rows = [("hminsel.select_batched (cpu)", timed(run, a.repeats))]
    try:
        import torch
        import torch_fps
        tp, mask = torch.from_numpy(pts), torch.ones(a.B, a.N, dtype=torch.bool)
        peer = lambda: torch_fps.farthest_point_sampling(tp, mask, a.k, random_start=False)  # noqa: E731
        theirs = peer().numpy()  # (the first call JIT-compiles)
        same = (theirs == ours).all(axis=1)
        # float32 in another summation order: a near-tie can flip a pick, then the rest differ
        first = [int(np.argmax(theirs[b] != ours[b])) for b in np.flatnonzero(~same)]
        print(f"torch-fps {torch_fps.__version__} (torch {torch.__version__}, {torch.get_num_threads()} threads): "
              f"identical clouds {same.sum()}/{a.B}; others first differ at pick {sorted(first)[:8]}")
        rows.append(("torch_fps.farthest_point_sampling (cpu)", timed(peer, a.repeats)))
    except ImportError as exc:
        print(f"torch-fps skipped: {exc}")
    for name, (med, lo, hi) in rows:
        print(f"{name:42s} median {med * 1e3:8.1f} ms  (min {lo * 1e3:.1f}, max {hi * 1e3:.1f})")
    if len(rows) == 2:
        print(f"speed-up over torch-fps: {rows[1][1][0] / rows[0][1][0]:.2f}x")


def radius_main(a, x):
    """select_batched(radius=) against a select a cloud and against every pick, no radius."""
    ptr = np.arange(a.B + 1, dtype=np.int64) * a.N
    run = lambda: hminsel.select_batched(x, 1.0, ptr=ptr, radius=a.radius)  # noqa: E731
    res = run()
    per = lambda: [hminsel.select(x[lo:hi], 1.0, radius=a.radius).indices  # noqa: E731
                   for lo, hi in zip(ptr[:-1], ptr[1:])]
    want = np.concatenate([idx + lo for idx, lo in zip(per(), ptr[:-1])])
    if not np.array_equal(res.indices, want):
        raise AssertionError("select_batched(radius=) differs from one select a cloud")
    print(f"B={a.B} N={a.N} d={a.d} radius={a.radius} float32, {len(want)} picks, "
          f"{os.cpu_count()} cores, hminsel {hminsel.__version__}")
    rows = [("select_batched(1.0, radius)", timed(run, a.repeats)),
            ("select(1.0, radius) a cloud", timed(per, a.repeats)),
            ("select_batched(1.0), no radius", timed(lambda: hminsel.select_batched(x, 1.0, ptr=ptr),
                                                     a.repeats))]
    for name, (med, lo, hi) in rows:
        print(f"{name:42s} median {med * 1e3:8.1f} ms  (min {lo * 1e3:.1f}, max {hi * 1e3:.1f})")


if __name__ == "__main__":
    main()
