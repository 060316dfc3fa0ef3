"""Shared benchmark plumbing: machine header, interleaved timing, data, result files.

Benchmarks are a tool, not a claim: every row says what ran where, with the
median and spread of several runs, and correctness is checked before timing.
"""
from __future__ import annotations

import dataclasses
import datetime
import importlib
import json
import os
import platform
import statistics
import subprocess
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"
LIBS = ["torch", "faiss", "torch_fps", "torch_quickfps", "fpsample", "pykeops", "matplotlib",
        "sentence_transformers"]


def _version(name: str) -> str:
    try:
        mod = importlib.import_module(name)
    except Exception as exc:  # noqa: BLE001 - a broken install is "not installed" here
        return f"not installed ({type(exc).__name__})"
    ver = getattr(mod, "__version__", None)
    if ver is None:
        try:
            from importlib.metadata import version
            ver = version(name.replace("_", "-"))
        except Exception:  # noqa: BLE001
            ver = "?"
    return str(ver)


def ram_gib() -> float:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError):
        return float("nan")


def available_bytes() -> int:
    try:
        for line in open("/proc/meminfo"):
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(ram_gib() * 2**30)


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
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, cwd=Path(__file__).parent).stdout
        commit = (commit or "?") + ("+dirty" if dirty.strip() else "")
    except OSError:
        commit = "?"
    import hminsel
    head = {"date": datetime.datetime.now().isoformat(timespec="seconds"), "cpu": cpu,
            "cores": os.cpu_count(), "threads": os.environ.get("OMP_NUM_THREADS", "default"),
            "ram_gib": round(ram_gib(), 1), "python": platform.python_version(),
            "numpy": np.__version__, "hminsel": hminsel.__version__, "commit": commit}
    head.update({lib: _version(lib) for lib in LIBS})
    return head


@dataclasses.dataclass
class Method:
    """One method of a case. ``run(count)`` does ``count`` units of work (picks or
    query rows) and returns a result; ``check(result, count)`` -> agreement in
    [0, 1] (or None); ``work(count)`` -> bytes or flops of ``count`` units."""
    name: str
    run: Callable[[int], Any]
    total: int
    check: Callable[[Any, int], float | None] | None = None
    probe: int | None = None        # units of the first (gate) run; None = total
    linear: bool = True             # time ~ count, so a prefix can be extrapolated
    mem_bytes: int = 0              # predicted extra memory; above what is free = OOM
    extra: Callable[[Any], dict] | None = None   # more row fields from the gate result
    skip: str | None = None         # a reason not to run at all


def measure(methods: list[Method], *, repeat: int = 3, budget_s: float = 20.0,
            settle_s: float = 0.0, lead_run: bool = False) -> dict[str, dict]:
    """Gate every method, then time them interleaved (round robin), ``repeat`` rounds.

    ``settle_s``: a pause before each timed run, so that threads a previous
    method left spin-waiting (OpenMP and OpenBLAS runtimes spin for tens of
    milliseconds after a parallel call) sleep before the next one starts.
    ``lead_run``: one untimed run of the same method right before each timed
    one (after the pause), for calls of milliseconds: the timed call then
    starts as the next call of a loop over batches would, its own threads
    awake. Without it a short call after a pause also times waking them (on
    the benchmark VM a parallel torch op took 1.4-8.9 ms after 0.1 s idle,
    0.5 ms in a loop).

    A linear method whose full run would exceed ``budget_s`` runs a prefix of
    ``count`` units sized to about budget_s / 4 and is extrapolated (``est``).
    A method stops repeating once its timed runs add up to ``budget_s``.
    Returns name -> dict(times, count, est, agree, status, note, ...).
    """
    out: dict[str, dict] = {}
    for m in methods:
        rec = out[m.name] = {"times": [], "cpu_times": [], "count": m.total, "est": False,
                             "agree": None, "status": "ok", "note": ""}
        if m.skip:
            rec.update(status="skip", note=m.skip)
            continue
        if m.mem_bytes and m.mem_bytes > 0.8 * available_bytes():
            rec.update(status="OOM", note=f"needs ~{m.mem_bytes / 2**30:.1f} GiB, "
                       f"{available_bytes() / 2**30:.1f} GiB free (size guard)")
            continue
        probe = min(m.total, m.probe or m.total)
        try:
            if probe < m.total:
                m.run(probe)   # warm-up (JIT, first-call set-up), so the probe predicts the rest
            t0 = time.perf_counter()
            result = m.run(probe)
            t_probe = time.perf_counter() - t0
            rec["agree"] = m.check(result, probe) if m.check else None
            if m.extra:
                rec.update(m.extra(result))
        except MemoryError:
            rec.update(status="OOM", note="MemoryError")
            continue
        except Exception as exc:  # noqa: BLE001 - a failing peer is a row, not a crash
            rec.update(status="error", note=f"{type(exc).__name__}: {str(exc)[:200]}")
            continue
        per_unit = t_probe / max(probe, 1)
        if m.linear and per_unit * m.total > budget_s:
            rec["count"] = max(min(probe, m.total), min(m.total, int(budget_s / 4 / per_unit)))
            rec["est"] = rec["count"] < m.total
        elif probe == m.total and t_probe > budget_s:
            rec["times"].append(t_probe)          # too slow to repeat: the gate run is the sample
            rec["note"] = (rec["note"] + "; " if rec["note"] else "") + "one run (the gate run)"
    last: dict[str, Any] = {}
    for _ in range(repeat):
        for m in methods:
            rec = out[m.name]
            times = rec["times"]
            if rec["status"] != "ok" or len(times) >= repeat or (times and sum(times) > budget_s):
                continue
            try:
                time.sleep(settle_s)
                if lead_run:
                    m.run(rec["count"])
                t0, c0 = time.perf_counter(), time.process_time()
                last[m.name] = m.run(rec["count"])
                times.append(time.perf_counter() - t0)
                rec["cpu_times"].append(time.process_time() - c0)
            except MemoryError:
                rec.update(status="OOM", note="MemoryError")
    for m in methods:
        rec = out[m.name]
        if m.check and m.name in last and rec["count"] > min(m.total, m.probe or m.total):
            rec["agree"] = m.check(last[m.name], rec["count"])   # agreement on the longest prefix run
        if rec["times"]:
            ts = sorted(rec["times"])
            scale = m.total / rec["count"]
            rec.update(time=statistics.median(ts) * scale, t_min=ts[0] * scale, t_max=ts[-1] * scale,
                       t_q1=float(np.percentile(ts, 25)) * scale,
                       t_q3=float(np.percentile(ts, 75)) * scale, repeats=len(ts))
        if rec["cpu_times"]:  # this process's CPU time (every thread): work done, whatever the load
            rec["cpu"] = statistics.median(rec["cpu_times"]) * m.total / rec["count"]
    return out


def fields(rec: dict) -> dict:
    """A ``measure`` record without its per-run lists: the fields a result row takes."""
    return {key: v for key, v in rec.items() if key not in ("times", "cpu_times")}


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


def torus(n, d=3, *, seed=0, dtype=np.float32, clutter=0.1, noise=0.01):
    """A noisy torus (radii 1 and 0.3) in 3-D plus uniform clutter: a scanned-object cloud."""
    if d != 3:
        raise ValueError(f"torus is a 3-D cloud; got d = {d}")
    rng = np.random.default_rng(seed)
    m = n - int(clutter * n)
    u, v = rng.uniform(0, 2 * np.pi, (2, m))
    ring = np.stack([(1 + 0.3 * np.cos(v)) * np.cos(u), (1 + 0.3 * np.cos(v)) * np.sin(u), 0.3 * np.sin(v)], 1)
    ring += rng.normal(0, noise, ring.shape)
    out = np.concatenate([ring, rng.uniform(-1.5, 1.5, (n - m, 3))])
    return np.ascontiguousarray(out[rng.permutation(n)], dtype=dtype)


def data(kind: str, n: int, d: int, seed: int = 1) -> np.ndarray:
    return {"clustered": clustered, "gaussian": gaussian, "torus": torus}[kind](n, d, seed=seed)


def fmt_time(s) -> str:
    if s is None:
        return ""
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def fmt_row(row: dict) -> dict:
    """A result row as the strings of the markdown table."""
    out = dict(row)
    if row.get("status") != "ok":
        out["time"] = row.get("status", "")
        return out
    est = "est. " if row.get("est") else ""
    out["time"] = est + fmt_time(row["time"])
    out["spread"] = (f"{fmt_time(row['t_min'])}-{fmt_time(row['t_max'])} (n={row['repeats']})"
                     if row.get("repeats", 0) > 1 else "one run")
    if row.get("rate") is not None:
        out["rate"] = f"{row['rate']:.1f} {row['unit']}"
        out["ceiling"] = f"{row['ceiling_frac']:.0%}"
    if row.get("ratio") is not None:
        out["loaded/quiet"] = f"{row['ratio']:.2f}x"
    if row.get("cpu") is not None:
        out["cpu"] = est + fmt_time(row["cpu"])
        out["cores used"] = f"{row['cpu'] / row['time']:.2f}"
    if row.get("vs_hminsel") is not None:
        out["vs hminsel"] = f"{row['vs_hminsel']:.2f}x"
    if row.get("vs_gemm") is not None:
        out["vs x@x.T"] = f"{row['vs_gemm']:.2f}x"
    out["agree"] = ""
    if row.get("agree") is not None:
        out["agree"] = f"{row['agree']:.1%}" if row["agree"] < 1 else "100%"
    if isinstance(row.get("passes"), float):
        out["passes"] = f"{row['passes']:.1f}"
    return out


def markdown(rows: list[dict], columns: list[str]) -> str:
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        row = fmt_row(row)
        lines.append("| " + " | ".join(str(row.get(c, "")).replace("|", "/") for c in columns) + " |")
    return "\n".join(lines)


def write_results(out: Path, name: str, header: dict, rows: list[dict], notes: list[str],
                  columns: list[str], title: str = "") -> Path:
    """Write ``<out>/<name>.json`` and ``<out>/<name>.md``; returns the .md path."""
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps({"machine": header, "notes": notes, "rows": rows},
                                                 indent=1, default=str))
    head = ", ".join(f"{k}={v}" for k, v in header.items())
    body = "\n".join(f"- {n}" for n in notes)
    md = out / f"{name}.md"
    md.write_text(f"# {title or name}\n\n{head}\n\n{markdown(rows, columns)}\n\n"
                  f"Notes:\n\n{body}\n")
    return md
