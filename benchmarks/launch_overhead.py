"""Launch overhead a pick of the Triton pick loop: plain launches against CUDA graph replays.

    python benchmarks/launch_overhead.py                  # on a CUDA device
    TRITON_INTERPRET=1 python benchmarks/launch_overhead.py --tiny   # the logic, on CPU

On a problem whose step takes a few microseconds on the GPU (4096 x 64 fp16:
512 KiB a step), the time a pick is the launch path: Python and the driver
for plain launches, one replay a CHUNK picks with graphs. ``pick_overhead``
returns one dict (a JSON row) that benchmarks/bench_gpu.py can append to its
rows; the picks of both modes are checked equal before anything is timed.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

import numpy as np
import torch


def _sync(device):
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize(device)


def _steps(x, picks: int, graphs_on: bool):
    """``(ring, host seconds to queue, total seconds)`` of ``picks`` chained steps from row 0."""
    from hminsel.triton.step import launch_steps
    os.environ["HMINSEL_CUDA_GRAPHS"] = "1" if graphs_on else "0"
    mind = torch.full((len(x),), float("inf"), device=x.device)
    _sync(x.device)
    t0 = time.perf_counter()
    ring = launch_steps(x, mind, 0, picks)
    queued = time.perf_counter() - t0
    _sync(x.device)
    return ring, queued, time.perf_counter() - t0


def pick_overhead(n: int = 4096, d: int = 64, picks: int = 2048, dtype=torch.float16,
                  device: str | None = None, repeat: int = 5) -> dict:
    """Median microseconds a pick of ``launch_steps`` with plain launches and with graph replays.

    Keys: ``us_per_pick_plain`` / ``us_per_pick_graph`` (wall time a pick,
    synchronised), ``host_us_per_pick_plain`` / ``host_us_per_pick_graph``
    (time to queue them: the host's share), ``graph_speedup``, ``graphs``
    (whether the graph path ran, else why not), sizes, device and the spread.
    """
    from hminsel.triton import graphs
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    x = torch.randn(n, d, generator=torch.Generator().manual_seed(0)).to(device=device, dtype=dtype)
    saved = os.environ.get("HMINSEL_CUDA_GRAPHS")
    try:
        plain, graph = _steps(x, picks, False)[0], _steps(x, picks, True)[0]  # warm-up and check
        if not torch.equal(plain, graph):
            raise AssertionError("graph replays picked other rows than plain launches")
        on = graphs.enabled(x.device)
        times = {mode: [_steps(x, picks, mode == "graph")[1:] for _ in range(repeat)]
                 for mode in ("plain", "graph")}
    finally:
        if saved is None:
            os.environ.pop("HMINSEL_CUDA_GRAPHS", None)
        else:
            os.environ["HMINSEL_CUDA_GRAPHS"] = saved
    row = {"name": "pick_overhead", "n": n, "d": d, "dtype": str(dtype).removeprefix("torch."),
           "picks": picks, "device": torch.cuda.get_device_name(device) if device.startswith("cuda")
           else "cpu (interpreter)", "chunk": graphs.CHUNK,
           "graphs": True if on else graphs.FAILED.get(str(x.device), "not enabled here")}
    for mode, runs in times.items():
        total = [t for _, t in runs]
        row[f"us_per_pick_{mode}"] = 1e6 * statistics.median(total) / picks
        row[f"host_us_per_pick_{mode}"] = 1e6 * statistics.median(q for q, _ in runs) / picks
        row[f"spread_{mode}"] = (max(total) - min(total)) / max(statistics.median(total), 1e-12)
    row["graph_speedup"] = row["us_per_pick_plain"] / max(row["us_per_pick_graph"], 1e-12)
    return row


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tiny", action="store_true", help="a small run (the interpreter on CPU)")
    p.add_argument("--json", help="write the row here too")
    args = p.parse_args(argv)
    size = dict(n=64, d=8, picks=130, repeat=1) if args.tiny else {}
    row = pick_overhead(dtype=torch.float32 if args.tiny else torch.float16, **size)
    text = json.dumps(row, indent=1, default=float)
    print(text)
    if args.json:
        with open(args.json, "w") as f:
            f.write(text)
    return 0 if np.isfinite(row["us_per_pick_plain"]) else 1


if __name__ == "__main__":
    raise SystemExit(main())
