"""Profiles of the GPU cases that missed their targets on the H200: where their time goes.

    python3 benchmarks/gpu_profile.py batched      # select_batched at 256 x 4096 x 3, k = 512:
        # torch.profiler's ops (host time, device time, syncs), the on-chip kernel's num_warps
    python3 benchmarks/gpu_profile.py seed         # the seed workload's kernels, by device time
    python3 benchmarks/gpu_profile.py persistent   # the persistent kernel's call (cuda)
    ncu -k regex:fps_run --launch-skip 1 --launch-count 1 --section SpeedOfLight \\
        python3 benchmarks/gpu_profile.py persistent --once   # two calls: ncu takes the second

``gpu_check.sh``'s ``profile`` phase runs all three (ncu where the runtime allows it). The
sizes are those of bench_gpu.py's cases; ``--tiny`` runs them small (CPU tensors under
TRITON_INTERPRET=1: the dry run).
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
import hminsel  # noqa: E402
from hminsel.backends import why_not  # noqa: E402
from bench_gpu import DEV, bench, data  # noqa: E402

FULL = dict(batched=(256, 4096, 3, 512), seed=(20_000, 1024, 10_000), persistent=(20_000, 768, 10_000))
TINY = dict(batched=(4, 64, 3, 16), seed=(400, 32, 200), persistent=(300, 48, 60))
CALLS = {"repeat": 10, "profiled": 3}  # --tiny: 2 and 1 (the interpreter is slow)


def top_ops(fn, rows: int = 18) -> None:
    """torch.profiler over three calls of ``fn`` (after one untimed; --tiny: one): ops by host time, then by
    device time, and the host-device syncs (``aten::item``, ``_local_scalar_dense``, copies)."""
    from torch.profiler import ProfilerActivity, profile
    fn()
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if DEV == "cuda" else [])
    calls = CALLS["profiled"]
    with profile(activities=acts) as prof:
        for _ in range(calls):
            fn()
        if DEV == "cuda":
            torch.cuda.synchronize()
    table = prof.key_averages()
    print(table.table(sort_by="self_cpu_time_total", row_limit=rows, max_name_column_width=60))
    if DEV == "cuda":
        print(table.table(sort_by="self_device_time_total", row_limit=rows, max_name_column_width=60))
    syncs = {e.key: e.count // calls for e in table
             if e.key in ("aten::item", "aten::_local_scalar_dense", "cudaDeviceSynchronize",
                          "cudaStreamSynchronize", "aten::nonzero", "cudaMemcpyAsync")}
    print("per call:", syncs)


def batched(b, n, d, k, once=False):
    from hminsel.triton.batched import fps_batched
    x = data(b * n, d, torch.float32, seed=3)
    ptr = torch.arange(b + 1, device=DEV, dtype=torch.int64) * n
    want, _ = fps_batched(x, ptr, k)
    if once:  # ncu: the second launch
        fps_batched(x, ptr, k)
        return
    for warps in (4, 8, 16, 32):  # the on-chip kernel's num_warps (default: num_warps(4096, 4) = 16)
        idx, _ = fps_batched(x, ptr, k, warps=warps)
        same = torch.equal(idx, want)
        print(f"fps_batched num_warps={warps}: {1e3 * bench(lambda: fps_batched(x, ptr, k, warps=warps), CALLS['repeat'])[0]:.3f} ms"
              f"{'' if same else '  PICKS DIFFER'}")
    api = lambda: hminsel.select_batched(x, k, ptr=ptr, backend="triton")  # noqa: E731
    print(f"select_batched: {1e3 * bench(api, CALLS['repeat'])[0]:.3f} ms")
    top_ops(api)
    try:
        from hminsel.compat import torch_fps
        pts = x.view(b, n, d)
        valid = torch.ones(b, n, dtype=torch.bool, device=DEV)
        drop = lambda: torch_fps.farthest_point_sampling(pts, valid, k)  # noqa: E731
        print(f"drop-in torch_fps: {1e3 * bench(drop, CALLS['repeat'])[0]:.3f} ms")
        top_ops(drop, rows=10)
    except Exception as exc:  # the drop-in's op may be missing on an image: the rest stands
        print(f"drop-in torch_fps: skipped ({type(exc).__name__}: {exc})")


def seed(n, d, k, once=False):
    x = data(n, d, torch.float16, seed=8)
    for backend in ("triton", "cuda"):
        if why_not(backend) is None:
            print(f"== seed, {backend}")
            top_ops(lambda: hminsel.select(x, k, metric="cosine", backend=backend), rows=14)


def persistent(n, d, k, once=False):
    if why_not("cuda") is not None:
        print(f"persistent: skipped ({why_not('cuda')})")
        return
    x = data(n, d, torch.float16, seed=5)
    call = lambda: hminsel.select(x, k, backend="cuda", algorithm="streaming")  # noqa: E731
    if once:  # ncu: a warm call (builds, residency probes), then the one it profiles
        call()
        call()
        return
    top_ops(call, rows=10)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("case", choices=sorted(FULL))
    ap.add_argument("--once", action="store_true",
                    help="batched, persistent: the kernel twice, no profiler (for ncu)")
    ap.add_argument("--tiny", action="store_true", help="small sizes (the dry run)")
    args = ap.parse_args(argv)
    sizes = (TINY if args.tiny else FULL)[args.case]
    if args.tiny:
        CALLS.update(repeat=2, profiled=1)
    {"batched": batched, "seed": seed, "persistent": persistent}[args.case](*sizes, once=args.once)
    return 0


if __name__ == "__main__":
    sys.exit(main())
