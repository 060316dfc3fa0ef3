"""Deferred refresh for the exact lazy FPS: a row's bound is made exact only when it may enter a head.

The eager refresh (``lazy.fold``) folds every round's picks into every live
row. The next round needs much less: exact values for its head (the M rows
with the largest values) and the row after it (whose value is ``tau``), and
for every other row only an upper bound, which a stale value is. Where the
triangle-inequality pruning does not pay (unclustered, high-d data: every new
pick may lower every value), the eager refresh reads all live rows against all
of a round's picks, and with k = N/2 most of those rows never come near a
head again.

Here each live row keeps its bound ``ub`` and a stamp: how many picks it has
been folded against. The head is chosen on the bounds; the stale rows among
the top ``M + 1`` are refreshed (GEMM-form ``block_min`` against the picks
since their stamp: exact, the direct-form values of streaming), and the choice
repeats until the top ``M + 1`` rows are all exact. Bounds only fall, so this
ends; and since the (M + 1)-th exact value bounds every stale row, the head and
``tau`` are those the eager refresh would give, so rounds accept the same
picks. A refresh takes the stale rows among the top ``M (1 + WIDE)`` at once,
and when the head is still stale after ``GROW_AFTER`` of them, twice as many
each time (up to half the pool): larger GEMMs, fewer passes over the bounds.

With a ``catchup.Catchup`` (lazy gives one for d >= 128 on a backend that
prunes) a refresh first guesses each row's nearest pick on a sketch and skips
the fold for the rows Hamerly's test then proves exact. ``owner`` must then
be exact for every row's ``ub``, so a round whose head loop does not track
owners (not tiled) leaves its head rows stale rather than writing back their
values.

The choice itself runs on a pool of candidates, not on all N bounds: the
top ``POOL`` times the widest refresh, taken in one pass over ``ub``, and
the key (bound, index) of the best row left outside it. Bounds only fall, so
no row outside can overtake that key; while the (M + 1)-th row of the pool
still beats it, the pool's head is the head of all rows, from round to round.
Only when refreshes have lowered the pool below that key is it taken again
(on 4M x 768 rows an argpartition of N bounds took 7 ms, and a round may
need hundreds of choices).

Deferring is right while pruning cannot pay, and data with more clusters than
picks only look that way: each cell still spans several clusters. After each
deferred round ``pair_share`` samples rows, finds their nearest earlier pick
exactly, and asks the pruning lists how many (row, new pick) pairs an eager
fold would keep. When that share falls under ``EAGER_BELOW`` and the work
model of ``eager_pays`` says so, ``exact_all`` makes every live value and owner
exact against every pick, and the driver goes back to eager, pruned folds
(once a run: the recompute is a pass against all picks; a later dense round
may defer again, and the run then stays deferred). Unclustered data keep a
share of 1.
"""
from __future__ import annotations

import numpy as np

from ..backends.base import MARK
from ..backends.lazy_host import head_and_tau
from . import chunked

WIDE = 1 / 4  # extra share of M refreshed with the head: rows that come next when the head's fall
PICK_PAIRS = 64     # (row, pick) distances worth as much as gathering and packing one more pick
CALL_PAIRS = 1 << 16  # (row, pick) distances worth as much as one more block_min call
PROBE_ROWS, PROBE_PICKS = 64, 256  # (row, new pick) pairs sampled to estimate what pruning would keep
EAGER_BELOW = 1 / 16  # share of pairs the lists would keep, under which eager folds pay again
STAYING_OVER = 3  # and the deferred work left must be this many times the eager path's (see eager_pays)
GROW_AFTER = 4  # refreshes of one head choice at the widest-refresh size; then twice as many each
POOL = 8  # the head's candidates: this many times the rows of the widest refresh (at least M + 1)


def _calls(stamps, rows, now: int):
    """``[(s, rows)]``: block_min calls, each folding its rows against ``picks[s:now]``.

    The rows of one stamp miss the same picks. Rows of a later stamp may join
    the call of an earlier one: folding a row against a pick it has already
    seen again changes nothing (the same direct-form value, never below the
    row's bound), and one call gathers and packs the picks once, where a call
    a stamp packs the shared ones again. They join when the distances they
    add cost less than the call and the packing they spare.
    """
    calls = []
    for s in np.unique(stamps):  # ascending
        part = rows[stamps == s]
        if calls:
            s0, parts = calls[-1]
            if len(part) * (s - s0) <= PICK_PAIRS * (now - s) + CALL_PAIRS:
                parts.append(part)
                continue
        calls.append((int(s), [part]))
    return [(s, np.concatenate(parts)) for s, parts in calls]


class Stale:
    """Stamps (picks folded into each row's ``ub``) and the head choice that makes the head exact."""

    def __init__(self, n: int, done: int, catchup=None):
        self.stamp = np.full(n, done, np.int64)
        self.catchup = catchup  # a catchup.Catchup: refreshes pruned (owners must be exact), or None
        self.rows = 0  # rows refreshed, for the pass count
        self.picked = None  # backend.pick_rows(x): the picks' rows, kept from call to call
        self.pool = None  # candidates for the head, ascending (see _choose)
        self.outside = (-np.inf, n)  # the key of the best row outside the pool
        self.pools = 0  # passes over the bounds to take a pool, for tests
        self.start, self.pairs = done, 0  # picks when deferred; (row, pick) pairs refreshed since

    def refresh(self, backend, x, ub, owner, picks, rows) -> int:
        """Make ``ub[rows]`` exact against every pick in ``picks``; returns the rows folded."""
        now = len(picks)
        rows = np.asarray(rows, np.int64)
        rows = rows[(self.stamp[rows] < now) & (ub[rows] != MARK)]
        if self.picked is None:
            self.picked = backend.pick_rows(x)
        for s, part in _calls(self.stamp[rows], rows, now):
            if self.catchup is not None and self.catchup.fold(backend, x, ub, owner, self.picked, picks, s,
                                                              part) is not None:
                self.pairs += len(part) * (now - s)  # as a plain fold: what eager_pays is calibrated on
                continue
            value, index, first = self.picked.block_min(picks, s, part)
            self.pairs += len(part) * (now - first)
            better = value < ub[part]
            ub[part[better]] = value[better]
            owner[part[better]] = first + index[better]
        self.stamp[rows] = now
        self.rows += len(rows)
        return len(rows)

    def head(self, backend, x, ub, owner, picks, m: int):
        """``head_and_tau(ub, m)`` with the head and the row after it exact."""
        now = len(picks)
        wide = m + 1 + int(m * WIDE)
        width, tries = wide, 0
        while True:
            head, tau, tau_idx = self._choose(ub, m, int(POOL * wide))
            top = head if tau_idx >= len(ub) else np.append(head, tau_idx)
            if (self.stamp[top] == now).all():
                return head, tau, tau_idx
            rows, _, _ = head_and_tau(ub[self.pool], width)  # holds the head: it beats the rest
            self.refresh(backend, x, ub, owner, picks, self.pool[rows])
            tries += 1
            if tries >= GROW_AFTER:  # the head still stale after a few: refresh more at once
                width = max(wide, min(2 * width, POOL * wide // 2))

    def _choose(self, ub, m: int, size: int):
        """``head_and_tau(ub, m)`` (host ub) from the pool, taking a new pool when it falls short.

        The pool is ascending, so ties in it go to the lowest index as in
        ``ub``. Its answer holds while its (m + 1)-th key beats the best key
        outside (every row outside has a key at most that one, and only ever
        falls), or when it has no (m + 1)-th live row and nothing is outside.
        A new pool holds the top ``max(size, m + 1)`` live rows, so the call
        on it answers.
        """
        if self.pool is not None:
            head, tau, at = head_and_tau(ub[self.pool], m)
            best, best_idx = self.outside
            if at < len(self.pool):
                idx = int(self.pool[at])
                if tau > best or (tau == best and idx < best_idx):
                    return self.pool[head], tau, idx
            elif best_idx >= len(ub):  # nothing outside: the pool holds every live row
                return self.pool[head], tau, len(ub)
        pool, best, best_idx = head_and_tau(ub, max(size, m + 1))
        self.pool, self.outside, self.pools = np.sort(pool), (best, best_idx), self.pools + 1
        return self._choose(ub, m, size)

    def eager_pays(self, backend, x, ub, picks, base: int, k: int, margin: float) -> bool:
        """Whether going back to eager folds should cost well under staying deferred.

        In (row, pick) pairs: staying costs the pairs refreshed a pick so far
        times the picks left; going back costs ``exact_all`` (every live row
        against every pick), then pruned folds (the rows times the picks left
        times the share the lists keep) and their lists (each pick left
        against the earlier ones). Staying is overestimated (later rounds
        accept more picks for their refreshes): measured 1.6x on 1M x 768,
        k = 100000, and 3x on 4M x 768, k = 10000, where the model gave 2.1x
        for staying and going back took 68 s against 51 s; hence
        ``STAYING_OVER``. On 1M and 250k rows (k = N/10) it gave 4.5x and
        4.8x, and going back took 141 -> 43 s and 9.2 -> 6.7 s.
        """
        now, left = len(picks), k - len(picks)
        if left <= 0 or now <= self.start:
            return False
        rows = np.flatnonzero(ub != MARK)  # the live rows: counted here, sampled by the probe
        live = len(rows)
        staying = self.pairs / (now - self.start) * left
        exact = live * now
        if STAYING_OVER * exact >= staying:  # the probe cannot change the answer
            return False
        share = self.pair_share(backend, x, ub, picks, base, margin, rows)
        eager = live * left * share + now * left + left * left / 2
        return share < EAGER_BELOW and STAYING_OVER * (exact + eager) < staying

    def pair_share(self, backend, x, ub, picks, base: int, margin: float, live=None) -> float:
        """The share of (row, pick) pairs that pruning lists would keep for ``picks[base:]``.

        On up to ``PROBE_ROWS`` live rows and ``PROBE_PICKS`` of those picks
        (drawn with a seed of the pick count: the run's path stays
        deterministic), each row with its exact value and nearest pick among
        ``picks[:base]``: the test of an eager fold, on a row's own value
        rather than its cell's largest (an estimate, for a choice of path; it
        changes no pick). ``live``: the rows of ``ub`` not MARK, if the caller has them.
        """
        live = np.flatnonzero(ub != MARK) if live is None else live
        if base == 0 or len(live) == 0 or len(picks) == base:
            return 1.0
        rng = np.random.default_rng(len(picks))
        rows = np.sort(rng.choice(live, min(PROBE_ROWS, len(live)), replace=False))
        new = np.asarray(picks[base:], np.int64)
        new = np.sort(rng.choice(new, min(PROBE_PICKS, len(new)), replace=False))
        if self.picked is None:
            self.picked = backend.pick_rows(x)
        value, index, first = self.picked.block_min(picks[:base], 0, rows)
        nearest = np.asarray(picks, np.int64)[first + np.asarray(index, np.int64)]
        _, cidx, _ = backend.prune_lists(lambda lo, hi: backend.take(x, nearest[lo:hi]), len(rows),
                                         np.asarray(value, np.float64), backend.take(x, new), margin)
        return len(cidx) / (len(rows) * len(new))

    def exact_all(self, backend, x, ub, owner, picks, report=None) -> int:
        """Every live value and owner exact against every pick; returns the rows read.

        Without a catch-up, every live row against every pick (owners of head
        rows included, which a streaming head loop does not track). With one
        the owners are exact already (such rounds leave their head rows stale),
        so each stale row is caught up from its stamp, through the catch-up.
        """
        if self.picked is None:
            self.picked = backend.pick_rows(x)
        now = len(picks)

        def run(s):
            rows = np.arange(s.start, s.stop)[ub[s] != MARK]
            if self.catchup is not None:
                return self.refresh(backend, x, ub, owner, picks, rows[self.stamp[rows] < now])
            value, index, first = self.picked.block_min(picks, 0, rows)
            ub[rows], owner[rows] = value, first + np.asarray(index, np.int64)
            return len(rows)
        before = self.rows
        rows = chunked.rows(len(ub), run, report, "exact values")
        self.rows = before  # the caller counts the rows read here apart
        self.stamp[:] = len(picks)
        return rows

    def settle(self, backend, x, ub, owner, picks) -> int:
        """Every live row exact (before streaming steps take over)."""
        return self.refresh(backend, x, ub, owner, picks, np.flatnonzero(ub != MARK))

    def exact(self, rows, now: int):
        """Rows whose values were updated against every pick by a head loop."""
        self.stamp[rows] = now
