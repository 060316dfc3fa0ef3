"""Primitive calls split into chunks so that a progress ``Reporter`` hears from inside them.

Without a reporter each helper is the one backend call, except ``steps`` on a
host backend, which ends a call about every ``TICK`` seconds all the same (Ctrl-C
is handled between calls). With one, the work is cut where the primitives' contracts make the
pieces add up to the same result:

- ``head_greedy`` with a smaller budget stops with ``h`` exact against every
  pick it accepted, so the next call continues the same sequence;
- ``steps`` chains from the last pick;
- the refresh (``refresh``/``fold_all``) and ``block_min`` work row by row, so
  they run on row slices (views: the state arrays update in place).

Chunks grow or shrink towards about ``TICK`` seconds each, and the reporter
keeps each kind's size from one call to the next (a lazy round to the next),
so the extra calls cost little; the result is index for index the same
(tests/test_progress.py).
"""
from __future__ import annotations

import time

import numpy as np

from ..backends.base import MARK

TICK = 0.25        # seconds a chunk aims at
FIRST_PICKS = 8    # picks in the first head or step chunk
ROW_CHUNK = 1 << 14  # rows in the first row chunk
# Row chunks start at multiples of 16 rows, so a slice of a 16-byte aligned array is
# 16-byte aligned too (16 rows are a multiple of 16 bytes whatever d and dtype): Triton
# specialises its kernels on a pointer's alignment, and another vector width would sum
# in another order
ALIGN_ROWS = 16


def _size(report, kind: str, first: int) -> int:
    return report.chunks.get(kind, first)


def _adapt(report, kind: str, size: int, seconds: float, cap: int) -> int:
    """The next chunk size: doubled when this one was quick, halved when slow; remembered."""
    if seconds < TICK / 2:
        size = min(cap, size * 2)
    elif seconds > 2 * TICK:
        size = max(1, size // 2)
    report.chunks[kind] = size
    return size


def head_greedy(backend, xh, h, hidx, tau, tau_idx, budget, report=None, done=0):
    """``backend.head_greedy`` in budget chunks; reports ``done`` + the picks accepted so far."""
    if report is None:
        return backend.head_greedy(xh, h, hidx, tau, tau_idx, budget)
    pos, vals, size = [], [], _size(report, "head", FIRST_PICKS)
    while budget > 0:
        want = min(size, budget)
        t0 = time.perf_counter()
        p, v = backend.head_greedy(xh, h, hidx, tau, tau_idx, want)
        pos.append(np.asarray(p, np.int64))
        vals.append(np.asarray(v, np.float64))
        accepted = sum(len(a) for a in pos)
        report.update(done + accepted, pending=accepted, note="head")
        if len(p) < want:  # the head stopped on its own: its best is no longer global
            break
        budget -= len(p)
        size = _adapt(report, "head", size, time.perf_counter() - t0, 1 << 16)
    return np.concatenate(pos), np.concatenate(vals)


class _Quiet:
    """A reporter that tells no one: ``steps`` without a reporter still ends a native call
    about every TICK seconds, so a Ctrl-C (Python handles signals between calls) stops a
    long streaming run instead of waiting for its last pick."""

    def __init__(self):
        self.chunks = {}

    def update(self, *args, **kwargs):
        pass


def steps(backend, x, mind, c, count, report=None, done=0, floor=None):
    """``backend.steps`` in chunks; reports ``done`` + the steps made so far.

    ``floor``: a squared value; the steps end (``mind`` left as that chunk left it)
    once one picks a point whose value is at most it, that pick the last returned.
    """
    if report is None:
        if count <= FIRST_PICKS or (not backend.blocks_host and floor is None):
            return _cut(*backend.steps(x, mind, c, count), floor)
        report = _Quiet()
    picks, vals, size, made = [], [], _size(report, "steps", FIRST_PICKS), 0
    while made < count:
        want = min(size, count - made)
        t0 = time.perf_counter()
        p, v = backend.steps(x, mind, c, want)
        picks.append(np.asarray(p, np.int64))
        vals.append(np.asarray(v, np.float64))
        made += want
        c = int(picks[-1][-1])
        if floor is not None and vals[-1].min() <= floor:
            picks[-1], vals[-1] = _cut(picks[-1], vals[-1], floor)
            break
        if c < 0:  # every point is marked: the rest stay (-1, MARK), as in one call
            picks.append(np.full(count - made, -1, np.int64))
            vals.append(np.full(count - made, MARK, np.float64))
            break
        report.update(done + made, note="streaming steps")
        size = _adapt(report, "steps", size, time.perf_counter() - t0, 1 << 20)
    return np.concatenate(picks), np.concatenate(vals)


def _cut(picks, vals, floor):
    """``(picks, vals)`` up to and with the first value at most ``floor`` (all without one)."""
    if floor is None:
        return picks, vals
    vals = np.asarray(vals, np.float64)
    low = np.flatnonzero(vals <= floor)
    end = int(low[0]) + 1 if len(low) else len(vals)
    return np.asarray(picks)[:end], vals[:end]


def rows(n: int, run, report=None, note: str = "refresh", units: bool = False):
    """``run(slice)`` over rows ``0 .. n`` (one call without a reporter); the sum of its results.

    Reports the fraction of rows done through ``report.passing`` (a pass inside
    a selection), or with ``units`` the rows done through ``report.update``.
    Chunks start at multiples of ALIGN_ROWS rows.
    """
    if report is None:
        return run(slice(0, n))
    total, lo, size = 0, 0, _size(report, "rows " + note, ROW_CHUNK)
    while lo < n:
        t0 = time.perf_counter()
        hi = min(n, -(-(lo + size) // ALIGN_ROWS) * ALIGN_ROWS)
        total += run(slice(lo, hi))
        lo = hi
        if units:
            report.update(lo, note=note)
        else:
            report.passing(lo / n, note)
        size = _adapt(report, "rows " + note, size, time.perf_counter() - t0, 1 << 30)
    return total
