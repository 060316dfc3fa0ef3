"""Per-label quotas of embeddings: B labels of N rows each in d = 64-768, k = N/10 a label.

The data-selection case of ``hminsel select --groups``: a uniform subset of every
task, source or class. hminsel.select_batched (one call over CSR offsets: the C++
batched FPS, a thread a label, or the lazy FPS for a label large enough to pay for
it) against torch-fps batched, torch-quickfps vanilla batched, fpsample per label
and hminsel.select per label (the bucket peers are for point clouds, d <= 8, and
are left out). Every label has N rows, so the peers' padded batches hold no
padding. Work model: B * (k - 1) * N row updates of 3d flops (d subtractions,
d products, d - 1 additions and a min); GFLOP/s over the measured sgemm ceiling.
"""
from __future__ import annotations

import numpy as np

import common
from suites.clouds import SETTLE_S, _check, _methods, case_table

import hminsel

FULL = [(64, 1000, 768), (16, 2000, 384), (32, 4000, 64), (8, 10_000, 384)]
QUICK = [(4, 300, 64)]
DATA = ["clustered", "gaussian"]
COLUMNS = ["case", "method", "time", "spread", "rate", "ceiling", "vs hminsel", "agree", "note"]


def run(ctx) -> tuple[list[dict], list[str]]:
    rows, notes = [], []
    for b, n, d in (QUICK if ctx["quick"] else FULL):
        k = n // 10
        for kind in DATA:
            x = common.data(kind, b * n, d, seed=5).reshape(b, n, d)
            ref = {"idx": np.stack([np.asarray(hminsel.select(c, k, algorithm="streaming").indices) for c in x])}
            fns, nt = _methods(x, k, ref, each="label")
            notes += [s for s in nt if s not in notes]
            methods = [common.Method(name, fn, k, check=_check(x, ref, k), linear=False)
                       for name, fn in fns.items()]
            res = common.measure(methods, repeat=ctx["repeat"], budget_s=ctx["budget"], settle_s=SETTLE_S)
            base = next((res[m]["time"] for m in ("hminsel select_batched", "hminsel select per label")
                         if res.get(m, {}).get("time")), None)
            case_rows = case_table("labels", f"{kind} B={b} x N={n} x {d}, k={k}", kind, b, n, k,
                                   methods, res, base, ctx, d=d)
            print(common.markdown(case_rows, COLUMNS), flush=True)
            rows += case_rows
    return rows, notes
