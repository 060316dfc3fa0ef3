"""Selection at scale: millions of float16 embeddings memory-mapped from disk.

What a data-selection user runs: an ``.npy`` of N x d float16 rows on disk,
read in place (``np.load(mmap_mode="r")``), ``hminsel.select(..., metric=
"cosine")``. The rows are clustered (2000 Gaussian clusters, noise 0.3 of the
centre spread: the scale of text-embedding neighbourhoods), written once in
chunks to ``--dir`` and reused. Each case runs in a process of its own and
reports the time, the passes over x, the rounds, and the peak resident set
(``VmHWM``: the mapped file's pages count; they are x, not a copy).

The exact lazy FPS is checked against itself, not against a peer: at this
scale every FPS peer needs hours (see the ``select`` suite for ratios). Each
row records the indices' md5, so runs of two commits compare index for index.

    python benchmarks/bench_scale.py                 # 4M x 768 k=10k; 1M x 768 k=100k (~6 GB on disk)
    python benchmarks/bench_scale.py --quick         # 200k x 64 (CI)
    python benchmarks/bench_scale.py --dir /data/tmp --out benchmarks/results/scale.md
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

import common

CLUSTERS, NOISE = 2000, 0.3
CASES = [(4_000_000, 768, 10_000), (1_000_000, 768, 100_000)]  # (N, d, k): 1M = the 4M file's first rows
QUICK = [(200_000, 64, 2_000)]
CHUNK = 200_000


def data_file(folder: Path, n: int, d: int) -> Path:
    """The clustered float16 file of at least n x d rows (made once; its prefix serves smaller N)."""
    for path in sorted(folder.glob(f"scale_*x{d}_f16.npy")):
        if int(path.name.split("_")[1].split("x")[0]) >= n:
            return path
    path = folder / f"scale_{n}x{d}_f16.npy"
    tmp = path.with_suffix(".tmp.npy")
    out = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float16, shape=(n, d))
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((CLUSTERS, d)).astype(np.float32)
    for lo in range(0, n, CHUNK):
        m = min(CHUNK, n - lo)
        noise = NOISE * rng.standard_normal((m, d), dtype=np.float32)
        out[lo:lo + m] = (centres[rng.integers(0, CLUSTERS, m)] + noise).astype(np.float16)
    out.flush()
    del out
    os.replace(tmp, path)
    return path


def measure(path: str, n: int, k: int) -> dict:
    """One case, in this process: select k of the first n rows of the file, cosine."""
    import hminsel
    x = np.load(path, mmap_mode="r")[:n]
    t0 = time.perf_counter()
    cpu0 = time.process_time()
    sel = hminsel.select(x, k, metric="cosine")
    seconds = time.perf_counter() - t0
    return dict(case=f"{n // 1000}k x {x.shape[1]} float16 cosine, k={k}", seconds=seconds,
                cores=(time.process_time() - cpu0) / seconds, passes=sel.stats.passes,
                rounds=sel.stats.rounds, hmin=float(sel.hmin), backend=sel.backend,
                algorithm=sel.algorithm, x_gb=x.nbytes / 1e9,
                peak_gb=_peak_bytes() / 1e9,
                md5=hashlib.md5(np.asarray(sel.indices).tobytes()).hexdigest()[:12])


def _peak_bytes() -> int:
    """This process's peak resident set. Not ru_maxrss: Linux carries that over fork and exec,
    so a case would inherit the peak of the parent that wrote the data file."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one small case")
    ap.add_argument("--dir", default=os.environ.get("HMINSEL_BENCH_CACHE", "/tmp/hminsel-bench"),
                    help="where the data file is made (and kept for the next run; 6.1 GB for the "
                         "default case); default $HMINSEL_BENCH_CACHE, else /tmp/hminsel-bench")
    ap.add_argument("--out", help="also write the table (markdown) here")
    ap.add_argument("--case", help=argparse.SUPPRESS)  # path,n,k: one case, in a child process
    args = ap.parse_args(argv)
    if args.case:
        path, n, k = args.case.split(",")
        print(json.dumps(measure(path, int(n), int(k))))
        return 0
    folder = Path(args.dir)
    folder.mkdir(parents=True, exist_ok=True)
    cases = QUICK if args.quick else CASES
    head = common.machine()
    lines = [", ".join(f"{key}={head[key]}" for key in ("date", "cpu", "cores", "ram_gib", "numpy", "commit"))
             + f"; data: {CLUSTERS} clusters, noise {NOISE}",
             "", "| case | time | cores used | passes | rounds | x | peak RSS | h_min | indices md5 |",
             "|---|---|---|---|---|---|---|---|---|"]
    print("\n".join(lines), flush=True)
    for n, d, k in cases:
        path = data_file(folder, max(c[0] for c in cases if c[1] == d), d)
        cmd = [sys.executable, __file__, "--case", f"{path},{n},{k}"]
        row = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        line = (f"| {row['case']} | {row['seconds']:.2f} s | {row['cores']:.2f} | {row['passes']:.1f} | "
                f"{row['rounds']} | {row['x_gb']:.2f} GB | {row['peak_gb']:.2f} GB | {row['hmin']:.4f} | "
                f"`{row['md5']}` |")
        print(line, flush=True)
        lines.append(line)
    if args.out:
        Path(args.out).write_text("# Selection at scale: float16 embeddings memory-mapped from disk\n\n"
                                  + "\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
