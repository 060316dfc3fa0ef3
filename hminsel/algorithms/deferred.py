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
picks. A refresh takes the stale rows among the top ``M (1 + WIDE)`` at once:
larger GEMMs, fewer passes over the bounds.
"""
from __future__ import annotations

import numpy as np

from ..backends.base import MARK

WIDE = 1 / 4  # extra share of M refreshed with the head: rows that come next when the head's fall
PICK_PAIRS = 64     # (row, pick) distances worth as much as gathering and packing one more pick
CALL_PAIRS = 1 << 16  # (row, pick) distances worth as much as one more block_min call


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

    def __init__(self, n: int, done: int):
        self.stamp = np.full(n, done, np.int64)
        self.rows = 0  # rows refreshed, for the pass count
        self.picked = None  # backend.pick_rows(x): the picks' rows, kept from call to call

    def refresh(self, backend, x, ub, owner, picks, rows) -> int:
        """Make ``ub[rows]`` exact against every pick in ``picks``; returns the rows folded."""
        now = len(picks)
        rows = np.asarray(rows, np.int64)
        rows = rows[(self.stamp[rows] < now) & (ub[rows] != MARK)]
        if self.picked is None:
            self.picked = backend.pick_rows(x)
        for s, part in _calls(self.stamp[rows], rows, now):
            value, index, first = self.picked.block_min(picks, s, part)
            better = value < ub[part]
            ub[part[better]] = value[better]
            owner[part[better]] = first + index[better]
        self.stamp[rows] = now
        self.rows += len(rows)
        return len(rows)

    def head(self, backend, x, ub, owner, picks, m: int):
        """``head_and_tau(ub, m)`` with the head and the row after it exact."""
        now = len(picks)
        while True:
            head, tau, tau_idx = backend.head_and_tau(ub, m)
            top = head if tau_idx >= len(ub) else np.append(head, tau_idx)
            if (self.stamp[top] == now).all():
                return head, tau, tau_idx
            wide, _, _ = backend.head_and_tau(ub, m + 1 + int(m * WIDE))
            self.refresh(backend, x, ub, owner, picks, wide)

    def settle(self, backend, x, ub, owner, picks) -> int:
        """Every live row exact (before streaming steps take over)."""
        return self.refresh(backend, x, ub, owner, picks, np.flatnonzero(ub != MARK))

    def exact(self, rows, now: int):
        """Rows whose values were updated against every pick by a head loop."""
        self.stamp[rows] = now
