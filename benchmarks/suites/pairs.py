"""h_min of a set and nearest-center assignment against FAISS flat and KeOps.

hmin: hminsel.hmin (exact closest pair) vs FAISS IndexFlatL2 search with k = 2
(the nearest other row of every row; the minimum is h_min) and KeOps
Kmin_argKmin(2). Work model: N (N - 1) / 2 pairs x 2d flops (the least any
method must do; FAISS searches all N^2 pairs, so in this model its hardware
rate is twice what the table shows). nearest: hminsel.nearest vs FAISS k = 1
and KeOps argmin, N x m pairs x 2d flops. GFLOP/s over the measured sgemm ceiling.
Peers that would run too long search a prefix of the query rows ("est.").
"""
from __future__ import annotations

import numpy as np

import common
import peers

import hminsel

HMIN_FULL = [(20_000, 384), (20_000, 768), (40_000, 384), (50_000, 16), (1_000_000, 3)]
HMIN_QUICK = [(2_000, 32)]
NEAREST_FULL = [(100_000, 384, 1_000), (200_000, 768, 2_000), (1_000_000, 384, 256)]
NEAREST_QUICK = [(5_000, 32, 64)]
DATA = ["clustered", "gaussian"]
COLUMNS = ["case", "method", "time", "spread", "rate", "ceiling", "vs hminsel", "agree", "note"]


def _keops_rows(x, y, k, ctx, notes):
    """run(count) for KeOps (count query rows of x against y), or None."""
    if ctx["quick"]:
        notes.append("KeOps skipped in --quick (it compiles a kernel per shape, ~40 s each)")
        return None
    lazy, why = peers.keops_lazy()
    if lazy is None:
        notes.append(why)
        return None
    yj = lazy(np.ascontiguousarray(y[None, :, :]))

    def run(count):
        xi = lazy(np.ascontiguousarray(x[:count, None, :]))
        dist = ((xi - yj) ** 2).sum(-1)
        return dist.Kmin_argKmin(k, dim=1) if k > 1 else (None, dist.argmin(dim=1))
    try:
        run(8)   # compile outside the timing (KeOps caches the kernel on disk)
    except Exception as exc:  # noqa: BLE001
        notes.append(f"KeOps failed to compile or run here: {type(exc).__name__}: {str(exc)[:120]}")
        return None
    return run


def _rows(suite, label, kind, n, d, methods, res, work, ctx, extra=None):
    base = res[methods[0].name].get("time")
    rows = []
    for m in methods:
        r = res[m.name]
        row = dict(suite=suite, case=label, data=kind, N=n, d=d, dtype="float32", method=m.name,
                   **common.fields(r), **(extra or {}))
        if r.get("agree") is not None and r["agree"] < 1 and suite == "hmin":
            row["gate"] = "FAIL"
        if r.get("time"):
            row.update(work=work, unit="GFLOP/s", rate=work / r["time"] / 1e9)
            row["ceiling_frac"] = row["rate"] / ctx["ceil"]["sgemm_gflops"]
            row["vs_hminsel"] = r["time"] / base if base else None
        if r.get("est"):
            row["note"] = (row.get("note") or "") + f" est. from {r['count']} of {m.total} query rows"
        rows.append(row)
    print(common.markdown(rows, COLUMNS), flush=True)
    return rows


def run_hmin(ctx) -> tuple[list[dict], list[str]]:
    rows, notes = [], []
    for n, d in (HMIN_QUICK if ctx["quick"] else HMIN_FULL):
        for kind in DATA:
            x = common.data(kind, n, d, seed=2)
            sq = np.einsum("ij,ij->i", x, x, dtype=np.float64)
            ref, xd = {}, peers.on_device(x)

            def ours(_c):
                res = hminsel.hmin(xd)
                ref.update(value=res.value, i=res.i, j=res.j)
                return res

            def check_nn(dist_sq, idx, count):
                """The peer's nearest other row: nothing closer than hminsel's pair in the
                prefix, and the pair's own distance matches within GEMM rounding."""
                rows_ = np.arange(count)
                other = np.where(idx[:, 0] == rows_, dist_sq[:, 1], dist_sq[:, 0])
                tol = 4e-6 * (sq[:count] + sq.max()) + 1e-6
                ok = other >= ref["value"] ** 2 - tol
                if ref["i"] < count:
                    ok &= ~((rows_ == ref["i"]) & (np.abs(other - ref["value"] ** 2) > tol))
                return float(np.mean(ok))
            methods = [common.Method("hminsel hmin", ours, n, linear=False,
                                     extra=lambda r: {"note": f"pair ({r.i}, {r.j}), h_min {r.value:.6g}"})]
            flat, note = peers.faiss_flat(d)
            notes += [note] if note and note not in notes else []
            if flat is not None:
                index = flat()
                index.add(x)

                def faiss_k2(count):
                    return index.search(np.ascontiguousarray(x[:count]), 2)
                methods.append(common.Method("faiss flat k=2", faiss_k2, n, probe=min(n, 2000),
                                             check=lambda r, c: check_nn(r[0], r[1], c)))
            if d <= 8:  # point clouds: the k-d tree users reach for (built inside the call)
                def kdtree_k2(count):
                    from scipy.spatial import cKDTree
                    dist, idx = cKDTree(x).query(x[:count], k=2, workers=-1)
                    return dist ** 2, idx
                methods.append(common.Method("scipy cKDTree k=2", kdtree_k2, n, probe=n,
                                             check=lambda r, c: check_nn(r[0], r[1], c)))
            keops = _keops_rows(x, x, 2, ctx, notes)
            if keops is not None:
                methods.append(common.Method("keops Kmin_argKmin(2)", keops, n, probe=min(n, 500),
                                             check=lambda r, c: check_nn(r[0], r[1], c)))
            res = common.measure(methods, repeat=ctx["repeat"], budget_s=ctx["budget"])
            label = f"{kind} {n // 1000}k x {d}"
            rows += _rows("hmin", label, kind, n, d, methods, res, n * (n - 1) / 2 * 2 * d, ctx)
    return rows, notes


def run_nearest(ctx) -> tuple[list[dict], list[str]]:
    rows, notes = [], []
    for n, d, m in (NEAREST_QUICK if ctx["quick"] else NEAREST_FULL):
        for kind in DATA:
            x = common.data(kind, n, d, seed=4)
            centers = np.ascontiguousarray(x[np.random.default_rng(5).choice(n, m, replace=False)])
            ref, xd, cd = {}, peers.on_device(x), peers.on_device(centers)

            def ours(_c):
                dist, idx = hminsel.nearest(xd, cd)
                ref.update(dist=peers.host(dist), idx=peers.host(idx))
                return dist

            def check(result, count):
                dist_sq, idx = result[0], result[1]
                d_ = np.sqrt(np.maximum(np.asarray(dist_sq, np.float64)[:, 0], 0))
                same = np.asarray(idx)[:, 0] == ref["idx"][:count]
                close = np.abs(d_ - ref["dist"][:count]) <= 1e-3 * (1 + ref["dist"][:count])
                return float(np.mean(same | close))
            methods = [common.Method("hminsel nearest", ours, n, linear=False)]
            flat, note = peers.faiss_flat(d)
            notes += [note] if note and note not in notes else []
            if flat is not None:
                index = flat()
                index.add(centers)
                methods.append(common.Method(
                    "faiss flat k=1", lambda c: index.search(np.ascontiguousarray(x[:c]), 1), n,
                    probe=min(n, 20_000), check=check))
            keops = _keops_rows(x, centers, 1, ctx, notes)
            if keops is not None:
                def run_k(c):
                    _, idx = keops(c)
                    i = np.asarray(idx)[:, :1]
                    diff = x[:c] - centers[i[:, 0]]
                    return np.einsum("ij,ij->i", diff, diff)[:, None], i
                methods.append(common.Method("keops argmin", run_k, n, probe=min(n, 5000), check=check))
            res = common.measure(methods, repeat=ctx["repeat"], budget_s=ctx["budget"])
            label = f"{kind} {n // 1000}k x {d}, m={m}"
            rows += _rows("nearest", label, kind, n, d, methods, res, n * m * 2 * d, ctx, {"m": m})
    return rows, notes
