"""hminsel's point-cloud calls beside torch's CPU threads: after a torch op, and the drop-ins.

    python benchmarks/beside_torch.py [--repeat 25] [--out FILE]

A parallel torch op on the CPU (over more than 32k elements) returns with
torch's OpenMP threads spinning for a few milliseconds; then they sleep, and the
next parallel op waits for them to wake. This times, interleaved, each call
after a pause that lets every thread sleep (``PAUSE_S``), as between the
batches of a pipeline:

- ``select_batched`` alone, and right after one parallel torch op (a sum of 1M
  bools, untimed: its threads spin as the timed call starts), in this process
  and in a child started with ``OMP_WAIT_POLICY=PASSIVE`` (its threads sleep at
  once); and that torch op alone, which waits for torch's threads to wake;
- each torch drop-in (``hminsel.compat``) on the same clouds, against
  ``select_batched``: they keep their own bookkeeping off torch's threads on the
  CPU (NumPy), so what remains is the op's own work.

Medians (and the least) of ``--repeat`` calls; the picks are checked equal first.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(__file__))
import common  # noqa: E402

PAUSE_S = 0.1
CASES = [(256, 1024, 128), (32, 4096, 512)]  # B clouds x N points x 3, k picks


def _calls(b: int, n: int, k: int, drop_ins: bool = True):
    """name -> (untimed run before the timed one or None, timed run returning (b, k) local picks)."""
    import torch

    import hminsel
    from hminsel.compat import pytorch3d, torch_cluster, torch_fps, torch_quickfps
    pts = torch.rand(b, n, 3, generator=torch.Generator().manual_seed(0))
    mask = torch.ones(b, n, dtype=torch.bool)
    flat, ptr = pts.reshape(-1, 3).numpy(), np.arange(b + 1) * n
    batch = torch.repeat_interleave(torch.arange(b), n)
    starts = torch.arange(b)[:, None] * n  # torch_cluster's indices are global
    spin = torch.ones(1 << 20, dtype=torch.bool)

    def ours():
        return np.asarray(hminsel.select_batched(flat, k, ptr=ptr).indices).reshape(b, k) - ptr[:-1, None]
    calls = {
        "select_batched": (None, ours),
        # one parallel torch op, untimed: its threads spin as the timed call starts
        "select_batched right after a torch op": (spin.sum, ours),
        "the torch op alone (a sum of 1M bools)": (None, spin.sum),
    }
    if drop_ins:
        calls.update({
            "torch_fps drop-in": (None, lambda: torch_fps.farthest_point_sampling(pts, mask, k, random_start=False)),
            "pytorch3d drop-in": (None, lambda: pytorch3d.sample_farthest_points(pts, K=k)[1]),
            "torch_quickfps drop-in": (None, lambda: torch_quickfps.sample_idx(pts, k, start_idx=0)),
            "torch_cluster drop-in": (None, lambda: torch_cluster.fps(pts.reshape(-1, 3), batch, k / n,
                                                                       random_start=False).reshape(b, k) - starts),
        })
    return calls


def measure(repeat: int, drop_ins: bool = True) -> list[dict]:
    rows = []
    for b, n, k in CASES:
        calls = _calls(b, n, k, drop_ins)
        want = calls["select_batched"][1]()
        for name, (_, fn) in calls.items():  # the gate, and each call's first run outside the timing
            got = fn()
            if "alone" not in name and not np.array_equal(np.asarray(got), want):
                raise AssertionError(f"{name} picks differ from select_batched's")
        times = {name: [] for name in calls}
        for _ in range(repeat):
            for name, (before, fn) in calls.items():
                time.sleep(PAUSE_S)
                if before is not None:
                    before()
                t0 = time.perf_counter()
                fn()
                times[name].append(time.perf_counter() - t0)
        base = float(np.median(times["select_batched"]))
        for name, ts in times.items():
            rows.append(dict(case=f"B={b} x N={n} x 3, k={k}", call=name, median=float(np.median(ts)),
                             least=float(np.min(ts)), ratio=float(np.median(ts)) / base))
    return rows


def table(rows: list[dict], wait: str) -> list[str]:
    return [f"| {r['case']} | {wait} | {r['call']} | {1e3 * r['median']:.1f} ms | {1e3 * r['least']:.1f} ms | "
            f"{r['ratio']:.2f}x |" for r in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=25)
    ap.add_argument("--out", default=None, help="also write the markdown table here")
    ap.add_argument("--rows", action="store_true", help=argparse.SUPPRESS)  # the child's mode
    args = ap.parse_args()
    if args.rows:
        print(json.dumps(measure(args.repeat, drop_ins=False)))
        return
    import torch
    head = common.machine()
    lines = [f"{head['cpu']}, {head['cores']} cores, torch {torch.__version__} ({torch.get_num_threads()} threads), "
             f"commit {head['commit']}, {head['date']}; medians of {args.repeat} calls, each after a {PAUSE_S} s "
             "pause; the last column: against select_batched's median in the same run", "",
             "| case | torch's threads | call | median | least | vs select_batched |", "|---|---|---|---|---|---|"]
    lines += table(measure(args.repeat), "spin (default)")
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    child = subprocess.run([sys.executable, __file__, "--rows", "--repeat", str(args.repeat)], env=env,
                           capture_output=True, text=True, check=True)
    lines += table(json.loads(child.stdout), "OMP_WAIT_POLICY=PASSIVE")
    print("\n".join(lines))
    if args.out:
        with open(args.out, "w") as fh:
            fh.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
