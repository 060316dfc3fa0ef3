"""Pruning lists in time near linear in the picks: the earlier picks grouped under pivots.

``prune_lists`` meets each round's m new picks with every earlier pick: k^2 / 2
pick pairs over a run. On clustered rows nearly all of them are far: on 1M x
768 rows of 2000 clusters, k = 100000, the lists kept 0.09% of 4.3e9 pairs,
and building them took over half the run.

Here each earlier pick a belongs to the group of a pivot g (one of the first P
picks: FPS spreads them over the data), with ``reach[a] >= |a - g|``. A new
pick c can matter to a's cell only if ``|a - c| <= 2 r_a``, ``r_a`` the cell's
radius; and ``|a - c| >= |c - g| - reach[a]``. So c meets the members of g only
if ``|c - g| <= max over the group of (reach + 2 r)``, and then only those
members that pass the same test one by one. The round costs m x P pivot
distances (a GEMM with its rounding bound) and the pairs left, each in the
direct form (``Backend.pair_sqdist``) whose value, less its rounding, is the
list's lower bound. The lists hold every pair that can matter (and, but for
the two bounds' rounding, only pairs that ``prune_lists`` would list), so the
refresh and the picks do not change.

P grows (x4, all groups made again) when the pairs left cost more than the
pivots; where the groups leave too many members (unclustered rows) the round
takes ``prune_lists`` and a ``ListPolicy`` skips the next 1, 2, 4 .. 16 rounds.
"""
from __future__ import annotations

import numpy as np

from .. import _threads
from ..backends.cpu_gemm import gemm_coef
from ..backends.lazy_host import LIST_CHUNK, centred, csr
from .prune import ListPolicy, slack

MIN_BASE = 8192  # fewer earlier picks: prune_lists costs little
PIVOTS = 512  # P at the start
GROW = 4  # P grows by this factor (every group made again) ...
BASE_PER_PIVOT = 8  # ... while it stays at most base / this
LEFT = 1 / 16  # a block of centres near groups of more members than this x base a centre: prune_lists
BLOCK = 1 << 20  # (row, pivot) distances a block of rows (memory: a few float64 arrays of it a thread)
PAIR_CHUNK = 1 << 22  # pairs left before they are evaluated (memory)
CUSHION = 1e-12  # relative: covers the float64 square roots and sums of the group test


class Pivots:
    """The earlier picks' groups; ``lists`` gives a round's pruning lists, or None: use prune_lists."""

    def __init__(self, x, picks):
        self.x, self.picks = x, picks  # picks: the run's list, growing
        self.count = 0  # pivots: picks[:count]
        self.group = np.empty(0, np.int64)  # per pick, as far as assigned: its pivot
        self.reach = np.empty(0)  # per pick: an upper bound on its distance to its pivot
        self.mu = self.centred = self.norms = None  # the pivots, centred on mu, and their norms
        self.coef = 0.0  # gemm_coef of the pivots' dtype
        self.policy = ListPolicy()
        self.grow = False  # the last round's pairs cost more than its pivot distances
        self.rounds = self.fallbacks = 0  # for tests and benchmarks

    def lists(self, backend, base: int, radius2, centers, margin: float):
        """``Backend.prune_lists``' CSR ``(ptr, cidx, cval)`` over picks ``[0, base)``, with
        ``centers`` picks ``base ..``; None when the groups would prune too little."""
        if base < MIN_BASE or self.policy.skip():
            return None
        if self.count == 0 or (self.grow and GROW * self.count * BASE_PER_PIVOT <= base):
            self._build(backend, min(base, PIVOTS if self.count == 0 else GROW * self.count))
        self._assign(backend, base)
        self.group, self.reach = self.group[:base], self.reach[:base]  # the centres' come next
        thr = 4.0 * np.asarray(radius2[:base], np.float64) * (1.0 + margin)
        span = np.sqrt(thr) * (1.0 + CUSHION)  # |a - c| beyond it: c cannot matter to a's cell
        members = np.argsort(self.group, kind="stable")
        sizes = np.bincount(self.group, minlength=self.count)
        start = np.cumsum(sizes) - sizes
        far = np.zeros(self.count)  # per group: the largest span + reach of its members
        full = sizes > 0
        far[full] = np.maximum.reduceat((span + self.reach)[members], start[full])
        m = len(centers)
        blocks = self._blocks(backend, centers, far, sizes, LEFT * base)
        self._extend(blocks)  # the centres are picks base .. base + m - 1
        left = sum(b[2] for b in blocks)
        self.rounds += 1
        self.grow = left > self.count * m
        if any(b[3] is None for b in blocks):  # unclustered rows: the groups leave most pairs
            self.fallbacks += 1
            self.policy.record(True)
            return None
        self.policy.record(False)
        cs, gs, gap = (np.concatenate([b[i] for b in blocks]) for i in (3, 4, 5))
        n = sizes[gs]
        ends = np.cumsum(n)
        rows, parts, lo = np.asarray(self.picks[:base], np.int64), [], 0
        while lo < len(gs):  # blocks of about PAIR_CHUNK pairs
            hi = max(lo + 1, int(np.searchsorted(ends, ends[lo] - n[lo] + PAIR_CHUNK, "right")))
            parts.append(self._pairs(backend, rows, centers, cs[lo:hi], gs[lo:hi], gap[lo:hi], members,
                                     start, sizes, span, thr))
            lo = hi
        a, c, cval = (np.concatenate([p[i] for p in parts] + [np.empty(0, dt)])
                      for i, dt in enumerate((np.int64, np.int64, np.float64)))
        order = np.lexsort((c, a))  # each list in ascending centre order (refresh's tie rule)
        return csr([np.bincount(a, minlength=base)], [c[order]], [cval[order]])

    def _pairs(self, backend, rows, centers, cs, gs, gap, members, start, sizes, span, thr):
        """The pairs (a, c) of groups near centres that pass the test one by one; ``(a, c, cval)``."""
        n = sizes[gs]
        total = int(n.sum())
        a = members[np.repeat(start[gs], n) + np.arange(total) - np.repeat(np.cumsum(n) - n, n)]
        keep = np.repeat(gap, n) - self.reach[a] <= span[a]
        a, c = a[keep], np.repeat(cs, n)[keep]
        value = backend.pair_sqdist(self.x, rows[a], centers, c)
        # the direct form errs by at most gamma_(d+2) ~ (d + 2) u relatively: slack / 2 is 4 (d + 8) u
        lower = value.astype(np.float64) * (1.0 - slack(centers.shape[1], value.dtype) / 2)
        keep = lower <= thr[a]
        return a[keep], c[keep], lower[keep]

    def _build(self, backend, count: int):
        """Pivots ``picks[:count]``, the groups to be made again (``_assign``)."""
        self.count = count
        rows = backend.take(self.x, np.asarray(self.picks[:count], np.int64))
        dtype = np.result_type(rows.dtype, np.float32)
        self.mu = rows.mean(axis=0, dtype=np.float64).astype(dtype)  # any centre: the bound uses it
        self.centred, self.norms = centred(rows, self.mu)
        self.coef = gemm_coef(rows.shape[1], dtype)
        self.group, self.reach = np.empty(0, np.int64), np.empty(0)

    def _assign(self, backend, base: int):
        """Groups for picks ``len(group) .. base - 1`` (all of them after a build; else those of
        rounds that did not reach ``lists``)."""
        step = max(LIST_CHUNK, 4 * backend.threads() * self._rows())
        for lo in range(len(self.group), base, step):
            rows = backend.take(self.x, np.asarray(self.picks[lo:min(base, lo + step)], np.int64))
            self._extend(self._blocks(backend, rows))

    def _extend(self, blocks):
        """Append the groups and reaches of ``_blocks``' rows, in order."""
        self.group = np.concatenate([self.group] + [b[0] for b in blocks])
        self.reach = np.concatenate([self.reach] + [b[1] for b in blocks])

    def _rows(self) -> int:
        return max(16, BLOCK // self.count)

    def _blocks(self, backend, rows, far=None, sizes=None, share=0.0):
        """Per block of rows, on the backend's threads: each row's pivot (the nearest by the upper
        bounds) and its reach. With ``far``, also the members of the groups a row may be near
        (``|row - g| <= far[g]``) and, unless they pass ``share`` a row, the pairs (row, g) of
        those groups with the lower bound on ``|row - g|`` of each (else None, None, None)."""
        def block(lo):
            upper2, lower2 = self._bounds(rows[lo:lo + step])
            group = np.argmin(upper2, axis=1)
            reach = np.sqrt(upper2[np.arange(len(group)), group]) * (1.0 + CUSHION)
            if far is None:
                return group, reach
            near = lower2 <= far2[None, :]  # |row - g| >= gap, and gap <= far (squared: no root a pair)
            left = int(near.sum(axis=0) @ sizes)
            if left > share * len(group):
                return group, reach, left, None, None, None
            cs, gs = np.nonzero(near)
            gap = np.sqrt(np.maximum(lower2[cs, gs], 0.0)) * (1.0 - CUSHION)  # <= |row - g|
            return group, reach, left, cs + lo, gs, gap
        step = self._rows()
        far2 = None if far is None else (far / (1.0 - CUSHION)) ** 2 * (1.0 + CUSHION)  # gap's test, squared
        with _threads.blas_single_thread():  # no BLAS threads left spinning beside the refresh's
            return _threads.map_tiles(block, range(0, len(rows), step), backend.threads())

    def _bounds(self, rows):
        """``(upper2, lower2)`` (rows, P): bounds on the squared distances to the pivots, the GEMM
        form plus or minus its rounding bound (``gemm_coef``, as ``gemm_sqdist``), formed in place:
        ``(|a|^2 + |g|^2)(1 -+ coef) - 2 a.g`` (float64 rounding: far inside coef's factor 2)."""
        a, an = centred(rows, self.mu)
        dot = a @ self.centred.T
        dot *= -2.0  # exact
        upper2 = an[:, None] + self.norms[None, :]
        lower2 = upper2 * (1.0 - self.coef)
        lower2 += dot
        upper2 *= 1.0 + self.coef
        upper2 += dot
        return upper2, lower2
