"""Memory of a selection beyond x: the rows the cpu backend reads in place.

Each case runs in a process of its own (a process's peak resident set only
grows): it builds x without a large temporary, warms up on a slice, records
the resident set (or the peak so far, if higher), runs one ``hminsel.select``
and prints the peak beyond that, next to x's own size (``+-``: how far the peak so far
already stood above the resident set, memory the call could use unseen). With x read in place
(float16 for l2, unit rows for cosine) the selection adds O(N) of state, not
a copy of x.

    python benchmarks/bench_memory.py            # 1M x 384 float16 l2; 400k x 768 float32 cosine
    python benchmarks/bench_memory.py --quick    # small cases (CI)
    python benchmarks/bench_memory.py --copy     # the same through the prepared copy, to compare
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time

import numpy as np

CASES = [("float16", "l2", 1_000_000, 384, 2000), ("float32", "cosine", 400_000, 768, 2000)]
QUICK = [("float16", "l2", 40_000, 64, 200), ("float32", "cosine", 40_000, 64, 200)]


def _resident() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _peak() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux


def measure(dtype: str, metric: str, n: int, d: int, k: int, copy: bool) -> dict:
    """One case, in this process: the peak memory of one select beyond x and the warm-up."""
    import hminsel
    from hminsel import backends
    if copy:  # the prepared copy, as before rows were read in place
        backends.host_reads_in_place = lambda backend: False
    rng = np.random.default_rng(0)
    x = np.empty((n, d), dtype)
    step = max(1, (4 << 20) // (4 * d))  # 4 MiB float32 chunks: the peak so far stays near x
    for lo in range(0, n, step):
        x[lo:lo + step] = rng.standard_normal((min(step, n - lo), d), dtype=np.float32)
    hminsel.select(x[:5000], 50, metric=metric)
    resident = _resident()
    base = max(resident, _peak())
    t0 = time.perf_counter()  # the whole call: the copy or the norms pass too
    sel = hminsel.select(x, k, metric=metric)
    seconds = time.perf_counter() - t0
    return dict(case=f"{n // 1000}k x {d} {dtype} {metric}, k={k}", x_bytes=x.nbytes,
                extra_bytes=max(0, _peak() - base), blind_bytes=base - resident, seconds=seconds,
                path=("prepared copy" if copy else "in place") + f" ({sel.backend})")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small cases")
    ap.add_argument("--copy", action="store_true", help="go through the prepared copy instead")
    ap.add_argument("--case", help=argparse.SUPPRESS)  # one case, in a child process
    args = ap.parse_args(argv)
    if args.case:
        dtype, metric, n, d, k = args.case.split(",")
        print(json.dumps(measure(dtype, metric, int(n), int(d), int(k), args.copy)))
        return 0
    print("| case | path (backend) | x | peak beyond x | select |")
    print("|---|---|---|---|---|")
    for case in QUICK if args.quick else CASES:
        cmd = [sys.executable, __file__, "--case", ",".join(map(str, case))] + (["--copy"] if args.copy else [])
        row = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        print(f"| {row['case']} | {row['path']} | {row['x_bytes'] / 1e9:.2f} GB | "
              f"{row['extra_bytes'] / 1e9:.2f} GB (+- {row['blind_bytes'] / 1e9:.2f}) | "
              f"{row['seconds']:.2f} s |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
