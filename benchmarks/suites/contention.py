"""Contention: the same calls quiet and beside busy processes, hminsel and its peers.

Users run hminsel next to data loaders and other jobs, so each case runs
twice in one process: quiet (no load of ours; the machine may still be shared,
so each row records the load average), then with ``--busy`` N busy processes
(``load.busy``: pure-Python spin loops, bounded in time, killed at the end).
Every method of a case runs under the same load. ``loaded/quiet`` is a
method's loaded time over its own quiet time; ``vs hminsel`` is a peer's time
over hminsel's under the same load. Goals on 2 cores with 2 busy processes:
loaded/quiet <= 2 for hminsel on every case, and >= 10x torch-fps on clustered
50k x 384, k = 2000. hminsel's loaded result must equal its quiet result (gate).
Each timed run starts after a pause (``SETTLE_S``): the OpenMP threads of a
peer that ran just before spin for tens of milliseconds after its call and
would otherwise be charged to the next method. ``cpu`` (this process's CPU
time, every thread) and ``cores used`` (cpu / time) tell a lost share of the
cores from extra work.
"""
from __future__ import annotations

import os
import time

import numpy as np

import common
import load
import peers

import hminsel

# (call, N, d, k or m or B); select_batched: B clouds of N points, k = N / 8
FULL = [("select", 50_000, 384, 2_000), ("hmin", 20_000, 384, 0), ("nearest", 100_000, 384, 1_000),
        ("select_batched", 2_048, 3, 64)]
QUICK = [("select", 4_000, 64, 200), ("hmin", 2_000, 32, 0), ("nearest", 5_000, 32, 64),
         ("select_batched", 512, 3, 4)]
SHORT_S = 0.05     # a case whose hminsel call (quiet, after its first) takes less than this ...
SHORT_REPEAT = 15  # ... gets this many timed runs a method
SETTLE_S = 0.3  # torch-fps's OpenMP threads spin-wait after each call: let them sleep first
COLUMNS = ["case", "busy", "method", "time", "spread", "cpu", "cores used", "loaded/quiet", "vs hminsel", "agree",
           "note"]


def _case(call, n, d, extra):
    """(label, hminsel run, {peer name: (run(count), total, probe)}, notes)."""
    notes, out = [], {}
    if call == "select_batched":
        b, k = extra, n // 8
        x = common.data("clustered", b * n, d, seed=3)
        ptr = np.arange(b + 1, dtype=np.int64) * n
        ours = lambda _c: np.asarray(hminsel.select_batched(x, k, ptr=ptr).indices)  # noqa: E731
        torch, why = peers._import("torch")
        tfps, why = peers._import("torch_fps") if torch else (None, why)
        if tfps is not None:
            xt = torch.as_tensor(x.reshape(b, n, d))
            mask = torch.ones((b, n), dtype=torch.bool)
            out["torch-fps batched"] = (lambda _c: tfps.farthest_point_sampling(xt, mask, k, random_start=False),
                                        k, None, False)
        else:
            notes.append(f"torch-fps skipped: {why}")
        return f"clouds B={b} x N={n} x 3, k={k}", ours, out, notes
    x = common.data("clustered", n, d, seed=1)
    if call == "select":
        ours = lambda _c: np.asarray(hminsel.select(x, extra).indices)  # noqa: E731
        fps, nt = peers.fps_peers(d)
        notes += nt
        for name in ("torch-fps C++",):
            if name in fps:
                out[name] = ((lambda f: lambda c: f(x, c))(fps[name][0]), extra, min(extra, 32), True)
        return f"select clustered {n // 1000}k x {d}, k={extra}", ours, out, notes
    flat, note = peers.faiss_flat(d)
    notes += [note] if note else []
    if call == "hmin":
        def ours(_c):
            r = hminsel.hmin(x)
            return np.asarray([r.i, r.j])
        if flat is not None:
            index = flat()
            index.add(x)
            out["faiss flat k=2"] = (lambda c: index.search(np.ascontiguousarray(x[:c]), 2), n, min(n, 2000), True)
        return f"hmin clustered {n // 1000}k x {d}", ours, out, notes
    centers = np.ascontiguousarray(x[np.random.default_rng(5).choice(n, extra, replace=False)])
    ours = lambda _c: np.asarray(hminsel.nearest(x, centers)[1])  # noqa: E731
    if flat is not None:
        index = flat()
        index.add(centers)
        out["faiss flat k=1"] = (lambda c: index.search(np.ascontiguousarray(x[:c]), 1), n, min(n, 20_000), True)
    return f"nearest clustered {n // 1000}k x {d}, m={extra}", ours, out, notes


def _repeats(seconds: float, ctx) -> int:
    """Timed runs a method, from the seconds of one quiet hminsel call: more for short calls.

    A waking thread may wait a time slice (~3 ms) for a core held by a busy
    process, so three runs of a 3 ms call under load are mostly noise.
    """
    return max(ctx["repeat"], SHORT_REPEAT) if seconds < SHORT_S and not ctx["quick"] else ctx["repeat"]


def run(ctx) -> tuple[list[dict], list[str]]:
    busy = ctx.get("busy", 2)
    rows, notes = [], [f"{busy} busy processes ({ctx.get('busy_kind', 'python')} spin loops) in the loaded "
                       f"rows; {os.cpu_count()} cores"]
    for call, n, d, extra in (QUICK if ctx["quick"] else FULL):
        label, ours, others, nt = _case(call, n, d, extra)
        notes += [s for s in nt if s not in notes]
        quiet, ref = {}, {}

        def check(result, _count):
            ref.setdefault("r", result)
            return float(np.array_equal(np.asarray(result), ref["r"]))
        methods = [common.Method("hminsel", ours, 1, check=check, linear=False)]
        for name, (fn, total, probe, linear) in others.items():
            methods.append(common.Method(name, fn, total, probe=probe, linear=linear))
        for m in methods:  # first calls (JIT builds, thread pools) outside every timing
            try:
                m.run(min(m.total, m.probe or m.total))
            except Exception:  # noqa: BLE001 - measure() records the error as a row
                pass
        t0 = time.perf_counter()
        try:
            ours(1)  # a second call: how long one takes, for the number of timed runs
        except Exception:  # noqa: BLE001 - measure() records the error as a row
            pass
        repeat = _repeats(time.perf_counter() - t0, ctx)
        for level in (0, busy):
            seconds = 60 + 40 * ctx["budget"] * len(methods)  # a bound: killed when the case ends
            with load.busy(level, seconds, ctx.get("busy_kind", "python")) as pids:
                la0 = os.getloadavg()[0]
                res = common.measure(methods, repeat=repeat, budget_s=ctx["budget"], settle_s=SETTLE_S)
                alive = load.running(pids)
            base = res["hminsel"].get("time")
            for m in methods:
                r = res[m.name]
                row = dict(suite="contention", case=label, N=n, d=d, method=m.name, busy=level,
                           **common.fields(r))
                row["note"] = (r.get("note") or "") + f" load avg {la0:.1f}" + \
                    (f"; {alive}/{level} busy processes lasted" if level else "")
                if m.name == "hminsel":
                    row["gate"] = "ok" if r.get("agree") in (None, 1.0) else "FAIL"
                if r.get("time"):
                    if level == 0:
                        quiet[m.name] = r["time"]
                    elif quiet.get(m.name):
                        row["ratio"] = r["time"] / quiet[m.name]
                    row["vs_hminsel"] = r["time"] / base if base else None
                if r.get("est"):
                    row["note"] += f"; est. from {r['count']} of {m.total}"
                rows.append(row)
        print(common.markdown(rows[-2 * len(methods):], COLUMNS), flush=True)
    return rows, notes
