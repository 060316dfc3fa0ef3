"""Large point clouds in 3-D: one cloud of 200k or 1M points, and 64 clouds of 4096.
One 1M-point cloud with few picks (k = 64, keypoints of a scan) is where hminsel streams
over the points instead of building its tree (csrc/cpu/cloud_stream.h).

"hminsel bucket" is hminsel.select / select_batched (the exact bucket FPS,
which ``algorithm="auto"`` takes for d <= 8), measured against
the bucket FPS of fpsample (kd-line, h = 7) and torch-quickfps, and against
hminsel's exact lazy FPS (the default before the bucket FPS). Data: a noisy
torus with 10 % uniform clutter (``common.torus``). Agreement is measured
against hminsel's streaming FPS (the exact sequence), from the peer's own
start where it picks one (fpsample). Work model as the clouds suite: (k - 1) * N
point updates of 9 flops, a relative score only (the bucket FPS skips most).
"""
from __future__ import annotations

import numpy as np

import common
import peers
from suites.clouds import SETTLE_S, case_table

import hminsel

FULL = [(1, 200_000, 2048), (1, 1_000_000, 4096), (1, 1_000_000, 64), (64, 4096, 512)]
QUICK = [(1, 20_000, 256), (4, 1024, 128)]
COLUMNS = ["case", "method", "time", "spread", "rate", "ceiling", "vs hminsel", "agree", "note"]


def _quickfps(out, name, x, k) -> list[str]:
    """Adds torch-quickfps's bucket FPS of x (one cloud or a batch) as out[name]; the notes."""
    torch, why = peers._import("torch")
    qfps, why = peers._import("torch_quickfps") if torch else (None, why)
    if qfps is None:
        return [f"torch-quickfps skipped: {why}"]
    xt = torch.as_tensor(x)
    out[name] = lambda _c: qfps.sample_idx(xt, k, start_idx=0).numpy()
    return []


def _one_cloud(x, k):
    """name -> run(count) returning (k,) indices from row 0."""
    out = {"hminsel bucket": lambda _c: np.asarray(hminsel.select(x, k).indices),
           "hminsel select lazy": lambda _c: np.asarray(hminsel.select(x, k, algorithm="lazy").indices)}
    notes = _quickfps(out, "torch-quickfps bucket", x, k)
    fps, why = peers._import("fpsample")
    if fps is not None:
        out["fpsample bucket kdline"] = lambda _c: np.asarray(fps.bucket_fps_kdline_sampling(x, k, h=7, start_idx=0))
    else:
        notes.append(f"fpsample skipped: {why}")
    return out, notes


def _many_clouds(x, k):
    """name -> run(count) returning (B, k) local indices."""
    b, n, d = x.shape
    flat = np.ascontiguousarray(x.reshape(b * n, d))
    ptr = np.arange(b + 1, dtype=np.int64) * n
    out = {"hminsel bucket":
           lambda _c: np.asarray(hminsel.select_batched(flat, k, ptr=ptr).indices).reshape(b, k) - ptr[:-1, None]}
    notes = _quickfps(out, "torch-quickfps bucket batched", x, k)
    fps, why = peers._import("fpsample")
    if fps is not None:
        out["fpsample bucket kdline per cloud"] = lambda _c: np.stack(
            [fps.bucket_fps_kdline_sampling(c, k, h=7, start_idx=0) for c in x])
    return out, notes


def run(ctx) -> tuple[list[dict], list[str]]:
    rows, notes = [], []
    if peers.DEVICE != "cpu":
        return rows, ["bigcloud is a CPU suite (the bucket FPS runs in C++ on the CPU)"]
    for b, n, k in (QUICK if ctx["quick"] else FULL):
        x = common.torus(b * n, 3, seed=7).reshape(b, n, 3) if b > 1 else common.torus(n, 3, seed=7)
        clouds = x if b > 1 else x[None]
        want = np.stack([np.asarray(hminsel.select(c, k, algorithm="streaming").indices) for c in clouds])
        fns, nt = (_many_clouds(x, k) if b > 1 else _one_cloud(x, k))
        notes += [s for s in nt if s not in notes]

        def check(result, _count):
            got = np.asarray(result).reshape(want.shape)
            agree = []
            for c, g, w in zip(clouds, got, want):
                if g[0] != w[0]:  # fpsample picks its own start: compare from that start
                    w = np.asarray(hminsel.select(c, k, start=int(g[0]), algorithm="streaming").indices)
                agree.append(np.mean(g == w))
            return float(np.mean(agree))
        methods = [common.Method(name, fn, k, check=check, linear=False) for name, fn in fns.items()]
        res = common.measure(methods, repeat=ctx["repeat"], budget_s=ctx["budget"], settle_s=SETTLE_S,
                             lead_run=True)
        ours = next(iter(fns))
        base = res[ours].get("time")
        case = f"torus B={b} x N={n} x 3, k={k}" if b > 1 else f"torus N={n} x 3, k={k}"
        case_rows = case_table("bigcloud", case, "torus", b, n, k, methods, res, base, ctx)
        print(common.markdown(case_rows, COLUMNS), flush=True)
        rows += case_rows
    return rows, notes
