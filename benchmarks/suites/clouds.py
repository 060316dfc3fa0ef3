"""Point clouds: B clouds of N points in 3-D, k = N/8 picks each.

hminsel.select_batched (one call, CSR offsets) against torch-fps batched,
torch-quickfps batched, fpsample per cloud and hminsel.select per cloud.
Work model: B * (k - 1) * N point updates of 3d = 9 flops (3 subtractions,
3 products, 2 additions, 1 min); GFLOP/s over the measured sgemm ceiling, which
a compare-and-select loop cannot reach (it has no fused multiply-adds to
spare), so read the ceiling column as a relative, not an absolute, score.
"""
from __future__ import annotations

import numpy as np

import common
import peers

import hminsel

FULL = [(32, 1024), (64, 2048), (256, 1024), (32, 4096), (128, 4096)]
QUICK = [(4, 512)]
DATA = ["clustered", "gaussian"]
SETTLE_S = 0.1  # torch's OpenMP threads spin for milliseconds after a peer's call: not charged to the next
COLUMNS = ["case", "method", "time", "spread", "rate", "ceiling", "vs hminsel", "agree", "note"]


def _methods(x, k, ref, each="cloud"):
    """name -> run(count) returning (B, k) local indices; skip notes. The bucket peers run
    for d <= 8 only (their kd-trees are for point clouds); ``each`` names a problem."""
    b, n, d = x.shape
    flat = np.ascontiguousarray(x.reshape(b * n, d))
    ptr = np.arange(b + 1, dtype=np.int64) * n
    flat_d = peers.on_device(flat)
    out, notes = {}, []
    if hasattr(hminsel, "select_batched"):
        def batched(_c):
            res = hminsel.select_batched(flat_d, k, ptr=ptr)
            return peers.host(res.indices).reshape(b, k) - ptr[:-1, None]
        out["hminsel select_batched"] = batched
    else:
        notes.append("hminsel.select_batched not present in this hminsel: batched row skipped")
    out[f"hminsel select per {each}"] = lambda _c: np.stack([np.asarray(hminsel.select(c, k).indices) for c in x])
    torch, why = peers._import("torch")
    if torch is not None:  # what a torch-fps user's code calls after swapping one import
        from hminsel.compat import torch_fps as drop_in
        xt = torch.as_tensor(x).to(peers.DEVICE)
        mask = torch.ones((b, n), dtype=torch.bool, device=xt.device)

        def run_drop_in(_c):
            r = drop_in.farthest_point_sampling(xt, mask, k, random_start=False)
            peers._sync()
            return r.cpu().numpy()
        out["hminsel drop-in torch_fps"] = run_drop_in
    tfps, why2 = peers._import("torch_fps") if torch else (None, why)
    if tfps is not None:

        def run_tfps(_c):
            r = tfps.farthest_point_sampling(xt, mask, k, random_start=False)
            peers._sync()
            return r.cpu().numpy()
        out["torch-fps batched"] = run_tfps
    else:
        notes.append(f"torch-fps skipped: {why2}")
    qfps, why3 = peers._import("torch_quickfps") if torch else (None, why)
    if qfps is not None:
        xt = torch.as_tensor(x).to(peers.DEVICE)
        for name, fn in [("torch-quickfps bucket batched", qfps.sample_idx),
                         ("torch-quickfps vanilla batched", qfps.sample_idx_baseline)][d > 8:]:
            def run_q(_c, fn=fn):
                r = fn(xt, k, start_idx=0)
                peers._sync()
                return r.cpu().numpy()
            out[name] = run_q
    else:
        notes.append(f"torch-quickfps skipped: {why3}")
    fps, why4 = peers._import("fpsample")
    if fps is not None and peers.DEVICE == "cpu":
        out[f"fpsample vanilla per {each}"] = lambda _c: np.stack([fps.fps_sampling(c, k, start_idx=0) for c in x])
        if d <= 8:
            out["fpsample bucket per cloud"] = lambda _c: np.stack(
                [fps.bucket_fps_kdline_sampling(c, k, h=7, start_idx=0) for c in x])
    elif fps is None:
        notes.append(f"fpsample skipped: {why4}")
    return out, notes


def _check(x, ref, k):
    def check(result, _count):
        got = np.asarray(result).astype(np.int64)
        want = ref["idx"]
        agree = []
        for p in range(len(got)):
            w = want[p]
            if got[p, 0] != w[0]:   # a peer that picks its own start: compare from that start
                w = np.asarray(hminsel.select(x[p], k, start=int(got[p, 0])).indices)
            agree.append(np.mean(got[p] == w))
        return float(np.mean(agree))
    return check


def case_table(suite, case, data, b, n, k, methods, res, base, ctx, d=3) -> list[dict]:
    """One row a method of a B x N x d case: time, the hminsel gate, GFLOP/s of the
    3d flops a point and pick, and the time against ``base`` (hminsel's)."""
    rows = []
    for m in methods:
        r = res[m.name]
        row = dict(suite=suite, case=case, data=data, B=b, N=n, d=d, k=k, dtype="float32",
                   method=m.name, **common.fields(r))
        if m.name.startswith("hminsel"):
            row["gate"] = "ok" if r.get("agree") == 1.0 else "FAIL"
        if r.get("time"):
            row.update(work=b * (k - 1) * n * 3 * d, unit="GFLOP/s")
            row["rate"] = row["work"] / r["time"] / 1e9
            row["ceiling_frac"] = row["rate"] / ctx["ceil"]["sgemm_gflops"]
            row["vs_hminsel"] = r["time"] / base if base else None
        rows.append(row)
    return rows


def run(ctx) -> tuple[list[dict], list[str]]:
    rows, notes = [], []
    for b, n in (QUICK if ctx["quick"] else FULL):
        k = n // 8
        for kind in DATA:
            x = common.data(kind, b * n, 3, seed=3).reshape(b, n, 3)
            ref = {"idx": np.stack([np.asarray(hminsel.select(c, k, algorithm="streaming").indices) for c in x])}
            fns, nt = _methods(x, k, ref)
            notes += [s for s in nt if s not in notes]
            check = _check(x, ref, k)
            methods = [common.Method(name, fn, k, check=check, linear=False) for name, fn in fns.items()]
            res = common.measure(methods, repeat=ctx["repeat"], budget_s=ctx["budget"], settle_s=SETTLE_S,
                                  lead_run=True)
            base = next((res[m]["time"] for m in ("hminsel select_batched", "hminsel select per cloud")
                         if res.get(m, {}).get("time")), None)
            case_rows = case_table("clouds", f"{kind} B={b} x N={n} x 3, k={k}", kind, b, n, k,
                                   methods, res, base, ctx)
            print(common.markdown(case_rows, COLUMNS), flush=True)
            rows += case_rows
    return rows, notes
