"""Data selection: hminsel.select (exact lazy, and streaming) against the FPS peers.

Work model (same for every method, so rates compare): a streaming FPS reads
x once per pick, (k - 1) * N * d * bytes; GB/s = that / time and "ceiling" is
that rate over the measured read bandwidth. The exact lazy algorithm reads x
only ``passes`` times, so it can pass 100 % of the streaming ceiling: that
excess is the point of it. ``passes`` and ``rounds`` come from ``sel.stats``.
"""
from __future__ import annotations

import numpy as np

import common
import peers
import textdata

import hminsel

# (data kind, N, d, k); each data kind in DATA runs every shape
FULL = [(20_000, 384, 2_000), (100_000, 768, 1_000), (200_000, 1024, 2_000), (1_000_000, 384, 10_000)]
ONLY_CLUSTERED = {(1_000_000, 384, 10_000)}   # i.i.d. Gaussian at 1M: ~7 min of hminsel alone on 2 cores
QUICK = [(4_000, 64, 200)]
# The exact lazy FPS against streaming (issue 3's table): passes over x and peers per case.
LAZY = [(50_000, 384, 2_000), (200_000, 768, 10_000), (200_000, 16, 20_000), (1_000_000, 3, 4_096)]
LAZY_QUICK = [(5_000, 64, 300), (20_000, 3, 256)]
DATA = ["clustered", "gaussian"]
FP16 = {(100_000, 768, 1_000), (4_000, 64, 200)}   # shapes also run with float16 input (hminsel only)
COLUMNS = ["case", "dtype", "method", "time", "spread", "rate", "ceiling", "vs hminsel", "passes",
           "rounds", "agree", "note"]


def _agree(x, ref_sel, k_total):
    """Agreement of a peer's picks with hminsel's on the prefix the peer ran.

    A peer that starts elsewhere (fpsample's bucket FPS) is compared with
    hminsel started at the peer's first pick."""
    def check(result, count):
        got = np.asarray(result).astype(np.int64)[:count]
        ref = np.asarray(ref_sel["indices"])[:count]
        if len(got) and got[0] != ref[0]:
            ref = np.asarray(hminsel.select(x, count, start=int(got[0])).indices)
        return float(np.mean(got == ref))
    return check


def case_rows(label, kind, x, k, ctx):
    n, d = x.shape
    bytes_per_pick = n * d * x.dtype.itemsize
    ref = {}
    xd = peers.on_device(x)

    def lazy(_count):
        sel = hminsel.select(xd, k, algorithm="lazy")  # auto takes the bucket FPS for d <= 8
        ref.setdefault("indices", peers.host(sel.indices))
        return sel

    def stream_check(result, count):
        return float(np.mean(peers.host(result.indices) == ref["indices"][:count]))

    bw_guess = max(1.0, ctx["ceil"]["read_gbs"] / 2) * 1e9
    stream_probe = max(8, min(k, int(ctx["budget"] / 4 * bw_guess / bytes_per_pick)))
    methods = [
        common.Method("hminsel lazy", lazy, k, linear=False,
                      extra=lambda s: {"passes": float(s.stats.passes), "rounds": s.stats.rounds}),
        common.Method("hminsel streaming", lambda c: hminsel.select(xd, c, algorithm="streaming"), k,
                      check=stream_check, probe=stream_probe,
                      extra=lambda s: {"passes": float(k - 1), "rounds": 0}),
    ]
    if d <= 8 and peers.DEVICE == "cpu":  # what algorithm="auto" runs there
        methods.append(common.Method("hminsel bucket", lambda c: hminsel.select(xd, k, algorithm="bucket"), k,
                                     check=lambda s, _c: float(np.mean(peers.host(s.indices) == ref["indices"])),
                                     linear=False))
    fps, notes = peers.fps_peers(d, x.dtype)
    for name, (fn, memfac) in fps.items():
        methods.append(common.Method(name, (lambda f: lambda c: f(x, c))(fn), k,
                                     check=_agree(x, ref, k), probe=min(k, 32),
                                     mem_bytes=int(memfac * x.nbytes)))
    res = common.measure(methods, repeat=ctx["repeat"], budget_s=ctx["budget"])
    base_t = res["hminsel lazy"].get("time")
    rows = []
    for m in methods:
        r = res[m.name]
        row = dict(suite="select", case=label, data=kind, N=n, d=d, k=k, dtype=x.dtype.name,
                   method=m.name, **common.fields(r))
        row["count"] = r["count"]
        if m.name in ("hminsel lazy", "hminsel streaming", "hminsel bucket"):
            row["gate"] = "ok" if r.get("agree", 1.0) in (None, 1.0) else "FAIL"
        elif kind == "gaussian" and r.get("agree") is not None and r["agree"] < 0.9:
            row["gate"] = "FAIL"
        if r["status"] == "ok" and r.get("time"):
            row["work"] = (k - 1) * bytes_per_pick
            row["unit"] = "GB/s"
            row["rate"] = row["work"] / r["time"] / 1e9
            row["ceiling_frac"] = row["rate"] / ctx["ceil"]["read_gbs"]
            row["vs_hminsel"] = r["time"] / base_t if base_t else None
        if r.get("est"):
            row["note"] = (row.get("note") or "") + f" est. from {r['count']} of {k} picks"
        rows.append(row)
    print(common.markdown(rows, COLUMNS), flush=True)
    return rows, notes


def run(ctx) -> tuple[list[dict], list[str]]:
    rows, notes = [], []
    shapes = QUICK if ctx["quick"] else FULL
    for n, d, k in shapes:
        for kind in DATA:
            if kind != "clustered" and (n, d, k) in ONLY_CLUSTERED:
                notes.append(f"{kind} data at N={n}, d={d}, k={k} not run: too slow for the time budget on this machine")
                continue
            x = common.data(kind, n, d)
            dtypes = [np.float32] + ([np.float16] if (n, d, k) in FP16 else [])
            for dt in dtypes:
                xx = x if dt == np.float32 else x.astype(dt)
                label = f"{kind} {n // 1000}k x {d}, k={k} ({k / n:.0%})"
                r, nt = case_rows(label, kind, xx, k, ctx)
                rows += r
                notes += [s for s in nt if s not in notes]
            del x
    emb, why = textdata.embeddings(limit=256 if ctx["quick"] else None)
    notes.append(why)
    if emb is not None:
        k = max(2, len(emb) // 10)
        r, _ = case_rows(f"text (MiniLM) {len(emb)} x {emb.shape[1]}, k={k} (10%)", "text", emb, k, ctx)
        rows += r
    return rows, notes


def run_lazy(ctx) -> tuple[list[dict], list[str]]:
    """The lazy suite: issue 3's shapes on clustered and i.i.d. data (fpsample bucket at d = 3)."""
    rows, notes = [], []
    for n, d, k in (LAZY_QUICK if ctx["quick"] else LAZY):
        for kind in DATA:
            x = common.data(kind, n, d)
            r, nt = case_rows(f"{kind} {n // 1000}k x {d}, k={k}", kind, x, k, ctx)
            rows += r
            notes += [s for s in nt if s not in notes]
            del x
    return rows, notes
