"""Shared benchmark plumbing: machine header, timing, data, result files.

Benchmarks are a tool, not a claim: every row says what ran where, with the
median and spread of several runs, and correctness is checked before timing.
"""
from __future__ import annotations

import datetime
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


def machine() -> dict:
    """Where and with what a benchmark ran."""
    cpu = platform.processor() or "?"
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, cwd=Path(__file__).parent).stdout.strip()
    except OSError:
        commit = "?"
    import hminsel
    return {"date": datetime.date.today().isoformat(), "cpu": cpu, "cores": os.cpu_count(),
            "python": platform.python_version(), "numpy": np.__version__,
            "hminsel": hminsel.__version__, "commit": commit or "?",
            "threads": os.environ.get("OMP_NUM_THREADS", "default")}


def timeit(fn, *, repeat=3, warmup=1, budget_s=None):
    """(median seconds, (min, max), last result) over ``repeat`` runs after ``warmup``.

    With ``budget_s``, stops repeating once the runs so far took longer.
    """
    result = None
    for _ in range(warmup):
        result = fn()
    times = []
    t_start = time.perf_counter()
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - t0)
        if budget_s is not None and time.perf_counter() - t_start > budget_s:
            break
    return statistics.median(times), (min(times), max(times)), result


def clustered(n, d, *, clusters=20, spread=0.05, seed=0, dtype=np.float32):
    """Gaussian blobs around ``clusters`` random centers (embedding-like)."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, d)).astype(dtype)
    out = np.empty((n, d), dtype)
    for lo in range(0, n, 1 << 16):
        hi = min(n, lo + (1 << 16))
        labels = rng.integers(clusters, size=hi - lo)
        out[lo:hi] = centers[labels] + dtype(spread) * rng.standard_normal((hi - lo, d), dtype=dtype)
    return out


def gaussian(n, d, *, seed=0, dtype=np.float32):
    """i.i.d. standard normal points."""
    return np.random.default_rng(seed).standard_normal((n, d), dtype=dtype)


def fmt_time(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def write_results(name: str, header: dict, rows: list[dict], table: str) -> Path:
    """Write ``results/<name>.json`` and ``results/<name>.md``; returns the .md path."""
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"machine": header, "rows": rows}, indent=1))
    head = ", ".join(f"{k}={v}" for k, v in header.items())
    md = RESULTS / f"{name}.md"
    md.write_text(f"# {name}\n\n{head}\n\n{table}\n")
    return md


def markdown(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)
