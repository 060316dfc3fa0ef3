"""The seed workload: keep half of an instruction pool (cosine, k = N/2).

The data-uniformity paper (arXiv 2506.24120) keeps half of 9k and 20k
instruction pools by greedy max-min cosine distance. Cases: those pool sizes
(20k x 1024, 9k x 4096), unit-normalised rows, clustered and Gaussian, k =
N/2, cosine. Yardstick: one float32 ``x @ x.T`` of the pool (NumPy BLAS, all
pairwise dot products), timed in the same run ("vs x@x.T"); the goals are at
most one x @ x.T and at least 25x torch-fps (the peers run a prefix of picks
and are extrapolated, "est."). The peers take the unit rows with L2, which
picks the same sequence as cosine on them.
"""
from __future__ import annotations

import numpy as np

import common
import peers

import hminsel

FULL = [(20_000, 1024), (9_000, 4096)]
QUICK = [(2_000, 128)]
DATA = ["clustered", "gaussian"]
PEERS = ("torch-fps C++", "fpsample vanilla")  # the streaming peers worth a prefix here
COLUMNS = ["case", "method", "time", "spread", "vs hminsel", "vs x@x.T", "passes", "rounds", "agree",
           "note"]


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True).astype(x.dtype)


def case_rows(label, kind, x, ctx):
    n, d = x.shape
    k = n // 2
    ref = {}

    def ours(_count):
        sel = hminsel.select(x, k, metric="cosine")
        ref.setdefault("indices", np.asarray(sel.indices))
        return sel

    def agree(result, count):
        return float(np.mean(np.asarray(result).astype(np.int64)[:count] == ref["indices"][:count]))

    methods = [
        common.Method("hminsel", ours, k, linear=False,
                      extra=lambda s: {"passes": float(s.stats.passes), "rounds": s.stats.rounds}),
        common.Method("x @ x.T (NumPy)", lambda _c: x @ x.T, k, linear=False, mem_bytes=4 * n * n),
    ]
    fps, notes = peers.fps_peers(d, x.dtype)
    for name in PEERS:
        if name in fps:
            fn, memfac = fps[name]
            methods.append(common.Method(name, (lambda f: lambda c: f(x, c))(fn), k, check=agree,
                                         probe=min(k, 32), mem_bytes=int(memfac * x.nbytes)))
    res = common.measure(methods, repeat=ctx["repeat"], budget_s=ctx["budget"])
    base_t = res["hminsel"].get("time")
    gemm_t = res["x @ x.T (NumPy)"].get("time")
    rows = []
    for m in methods:
        r = res[m.name]
        row = dict(suite="seed", case=label, data=kind, N=n, d=d, k=k, dtype=x.dtype.name,
                   method=m.name, **common.fields(r))
        if m.name == "hminsel":
            row["gate"] = "ok" if _is_streaming(x, k, ref) else "FAIL"
        if r["status"] == "ok" and r.get("time"):
            row["vs_hminsel"] = r["time"] / base_t if base_t else None
            row["vs_gemm"] = r["time"] / gemm_t if gemm_t else None
        if r.get("est"):
            row["note"] = (row.get("note") or "") + f" est. from {r['count']} of {k} picks"
        rows.append(row)
    print(common.markdown(rows, COLUMNS), flush=True)
    return rows, notes


def _is_streaming(x, k, ref) -> bool:
    """The correctness gate: the picks are the streaming sequence (on a prefix: streaming
    reads the pool once a pick; tests/test_head_tiled.py checks whole runs on smaller pools)."""
    count = min(k, 1_000)
    stream = hminsel.select(x, count, metric="cosine", algorithm="streaming").indices
    return bool(np.array_equal(np.asarray(stream), ref["indices"][:count]))


def run(ctx) -> tuple[list[dict], list[str]]:
    rows, notes = [], ["goal (issue 14): hminsel <= one x @ x.T and >= 25x torch-fps on both pools"]
    for n, d in (QUICK if ctx["quick"] else FULL):
        for kind in DATA:
            x = _unit(common.data(kind, n, d))
            r, nt = case_rows(f"{kind} {n // 1000}k x {d}, k=N/2, cosine", kind, x, ctx)
            rows += r
            notes += [s for s in nt if s not in notes]
            del x
    return rows, notes
