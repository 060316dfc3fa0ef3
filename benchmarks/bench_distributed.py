"""hminsel.distributed on one machine: gloo ranks against one process on the same cores.

Each case runs under ``torchrun`` (gloo, ``--ranks`` processes, one thread each); every
rank builds the same data from a seed and takes its contiguous rows. A first, untimed
call is checked: every rank's answer the same (a hash of each, gathered) and equal to
the one-process call's. Then the distributed call is timed (medians of ``--repeat``
runs), and the one-process call in a process of its own with as many threads. Per-label cases also time the path every label took before
small labels went to owner ranks (``owners.SOLO_BYTES = 0``: each label its own
distributed selection), so the ratio is measured in the same run.

    python benchmarks/bench_distributed.py                 # about 2 minutes on 2 cores
    python benchmarks/bench_distributed.py --quick         # tiny cases (CI)
    python benchmarks/bench_distributed.py --ranks 4 --out benchmarks/results/distributed.md
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
import common  # noqa: E402

CASES = {  # name: (what, N, d, labels (0: none), label sizes, k)
    "select": ("select", 200_000, 768, 0, None, 2000),
    "labels-many": ("select_batched", 40_000, 64, 500, "uniform", 0.1),
    "labels-zipf": ("select_batched", 200_000, 384, 50, "zipf", 0.1),
    "hmin": ("hmin", 50_000, 64, 0, None, 0),
}
QUICK = {  # CI: two torchrun starts
    "select": ("select", 4000, 32, 0, None, 100),
    "labels-many": ("select_batched", 4000, 16, 100, "uniform", 0.1),
}


def _data(n, d, labels, sizes, seed=0):
    rng = np.random.default_rng(seed)
    x = common.clustered(n, d, clusters=50, spread=0.3, seed=seed)
    if not labels:
        return x, None
    if sizes == "zipf":
        w = 1.0 / np.arange(1, labels + 1)
        return x, rng.choice(labels, n, p=w / w.sum())
    return x, rng.integers(0, labels, n)


def _timed(fn, repeat, barrier=None):
    times = []
    for _ in range(repeat):
        if barrier:
            barrier()
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return out, times


def worker(name, spec, repeat, path):
    """One case on the ranks torchrun started; rank 0 writes the row to ``path``."""
    import torch.distributed as dist

    import hminsel
    import hminsel.distributed as hd
    from hminsel.distributed import owners
    dist.init_process_group("gloo")
    rank, size = dist.get_rank(), dist.get_world_size()
    what, n, d, labels, sizes, k = spec
    x, groups = _data(n, d, labels, sizes)
    bounds = np.linspace(0, n, size + 1).astype(np.int64)  # contiguous shards, as torchrun users slice
    part = slice(int(bounds[rank]), int(bounds[rank + 1]))  # a view: no copy of x in the timed calls
    calls = {
        "select": (lambda: hd.select(x[part], k), lambda: hminsel.select(x, k)),
        "select_batched": (lambda: hd.select_batched(x[part], k, groups=groups[part]),
                           lambda: hminsel.select_batched(x, k, groups=groups)),
        "hmin": (lambda: hd.hmin(x[part]), lambda: hminsel.hmin(x)),
    }[what]
    got = calls[0]()  # the check first (and a warm-up): every rank's answer against one process
    mine = (got.i, got.j) if what == "hmin" else np.asarray(got.indices).tolist()
    digest = np.frombuffer(hashlib.sha256(repr(mine).encode()).digest()[:8], np.int64).copy()
    every = [None] * size
    dist.all_gather_object(every, int(digest[0]))
    row = {"case": name, "call": what, "N": n, "d": d, "labels": labels or "", "k": k, "ranks": size}
    if rank == 0:
        want = calls[1]()
        same = ((want.i, want.j) == mine if what == "hmin"
                else mine == np.asarray(want.indices).tolist())
        row["same answer"] = bool(same and len(set(every)) == 1)
    _, dist_t = _timed(calls[0], repeat, dist.barrier)
    if what == "select":
        row["rounds"] = got.stats.rounds
    if what == "select_batched":
        solo = owners.SOLO_BYTES
        owners.SOLO_BYTES = 0  # every label over the shards: the path before owner ranks
        before, before_t = _timed(calls[0], repeat, dist.barrier)
        owners.SOLO_BYTES = solo
        row["per-label path"] = float(np.median(before_t))
        row["same as per-label"] = bool(np.array_equal(np.asarray(before.indices), np.asarray(got.indices)))
    dist.barrier()
    if rank == 0:
        row.update({"distributed": float(np.median(dist_t)), "spread": f"{min(dist_t):.3f}-{max(dist_t):.3f} s"})
        Path(path).write_text(json.dumps(row))
    dist.barrier()
    dist.destroy_process_group()


def single(spec, repeat, path):
    """The one-process call, timed (threads: HMINSEL_NUM_THREADS, as the parent set it)."""
    import hminsel
    what, n, d, labels, sizes, k = spec
    x, groups = _data(n, d, labels, sizes)
    call = {"select": lambda: hminsel.select(x, k),
            "select_batched": lambda: hminsel.select_batched(x, k, groups=groups),
            "hmin": lambda: hminsel.hmin(x)}[what]
    _, times = _timed(call, repeat)
    Path(path).write_text(json.dumps(float(np.median(times))))


def run_case(name, spec, ranks, repeat, timeout):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "row.json"
        cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={ranks}",
               f"--master_port={_free_port()}", __file__, "--worker", name, "--spec", json.dumps(spec),
               "--repeat", str(repeat), "--row", str(path)]
        env = dict(os.environ, OMP_NUM_THREADS="1", HMINSEL_NUM_THREADS="1")
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {"case": name, "error": f"the ranks took over {timeout} s"}
        if done.returncode != 0 or not path.exists():
            said = [line for line in done.stderr.splitlines() if line.startswith("[rank")]
            return {"case": name, "error": "\n".join(said[-8:]) or done.stderr[-600:]}
        row = json.loads(path.read_text())
        one = Path(tmp) / "one.json"
        env = dict(os.environ, OMP_NUM_THREADS=str(ranks), HMINSEL_NUM_THREADS=str(ranks))
        try:
            done = subprocess.run([sys.executable, __file__, "--single", json.dumps(spec), "--repeat",
                                   str(repeat), "--row", str(one)], capture_output=True, text=True,
                                  env=env, timeout=timeout)
        except subprocess.TimeoutExpired:
            return {**row, "error": f"one process took over {timeout} s"}
        if not one.exists():
            return {**row, "error": done.stderr[-600:]}
        row["one process"] = json.loads(one.read_text())
        return row


def _free_port():
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--quick", action="store_true")
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--repeat", type=int, default=3)
    p.add_argument("--out", default=None, help="the table (.md; a .json beside it)")
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--spec", help=argparse.SUPPRESS)
    p.add_argument("--row", help=argparse.SUPPRESS)
    p.add_argument("--single", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.single:
        return single(json.loads(args.single), args.repeat, args.row)
    if args.worker:
        return worker(args.worker, json.loads(args.spec), args.repeat, args.row)
    rows = []
    for name, spec in (QUICK if args.quick else CASES).items():
        row = run_case(name, spec, args.ranks, 1 if args.quick else args.repeat, 300 if args.quick else 1800)
        rows.append(row)
        print(json.dumps(row), flush=True)
    columns = ["case", "call", "N", "d", "labels", "k", "ranks", "distributed", "one process",
               "per-label path", "spread", "rounds", "same answer", "same as per-label", "error"]
    notes = [f"gloo, {args.ranks} ranks of one thread each on this machine; one process: the same "
             f"call on all rows, in a process of its own with {args.ranks} threads",
             "per-label path: each label its own hd.select over the shards (owners.SOLO_BYTES = 0), "
             "as every label ran before small labels went to owner ranks"]
    if args.out:
        out, header = Path(args.out), common.machine()
        shown = [{key: f"{v:.3f} s" if key in ("distributed", "one process", "per-label path")
                  and isinstance(v, float) else v for key, v in row.items()} for row in rows]
        common.write_results(out.parent, out.stem, header, shown, notes, columns,
                             "hminsel.distributed on one machine")
        (out.parent / f"{out.stem}.json").write_text(json.dumps(  # the seconds as numbers
            {"machine": header, "notes": notes, "rows": rows}, indent=1, default=str))
    bad = [r for r in rows if "error" in r or not r.get("same answer", False)
           or r.get("same as per-label") is False]
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
