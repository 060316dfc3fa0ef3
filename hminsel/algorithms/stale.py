"""Rows left stale by the tiled lazy rounds: caught up only when they reach the head.

With k a large share of N a tiled round accepts thousands of picks, and an
eager fold would compare every row outside the head with each of them. But a
stale value is still an upper bound, and only the head (and the key just
below it, tau) must be exact. So rows outside the head keep their values and
``fresh[i]``, the number of picks their value accounts for; before a round the
top M + 1 rows by value are caught up (their values can only drop, so rows
from below may move up: repeat until the top is fresh). The head and tau are
then exactly those of the eager fold, and the sequence is unchanged. This pays
where pruning cannot (unclustered data in high d), and rows that never come
near the top again are never compared with the later picks at all.
"""
from __future__ import annotations

import numpy as np


def catch_up(backend, x, ub, owner, fresh, picks, rows) -> int:
    """Fold into ``rows`` the picks they have not seen; returns the rows read."""
    done, read = len(picks), 0
    for f in np.unique(fresh[rows]):
        if f >= done:
            continue
        r = rows[fresh[rows] == f]
        value, index = backend.block_min(x, backend.take(x, np.asarray(picks[f:])), rows=r)
        better = value < ub[r]  # strictly: the owner stays the first pick that attains the minimum
        ub[r[better]] = value[better]
        owner[r[better]] = f + index[better]
        fresh[r] = done
        read += len(r)
    return read


def fresh_head(backend, x, ub, owner, fresh, picks, m):
    """``(head, tau, tau_idx, rows read)`` of ``head_and_tau(ub, m)`` once the top m + 1 are fresh."""
    read = 0
    while True:
        head, tau, tau_idx = backend.head_and_tau(ub, m)
        top = head if tau_idx >= len(ub) else np.append(head, tau_idx)
        stale = top[fresh[top] < len(picks)]
        if len(stale) == 0:
            return head, tau, tau_idx, read
        read += catch_up(backend, x, ub, owner, fresh, picks, stale)


SAMPLE = 256  # picks whose pairwise distances say whether pruning can pay


def pruning_weak(backend, x, ub, picks, dense: float) -> bool:
    """True when pruning lists would keep more than ``dense`` of the (cell, center) pairs.

    A heuristic (it only chooses between two exact folds): the share of pick
    pairs, in a sample, closer than twice the largest live value's distance
    (the pruning test of ``lazy.prune_lists`` for the widest cell).
    """
    live = ub[ub != -1.0]
    if len(live) == 0 or len(picks) < 2:
        return False
    sample = np.asarray(picks)[np.linspace(0, len(picks) - 1, min(len(picks), SAMPLE)).astype(np.int64)]
    s = np.asarray(backend.to_host(backend.take(x, sample)), np.float64)
    norms = np.einsum("ij,ij->i", s, s)
    d2 = norms[:, None] + norms[None, :] - 2.0 * (s @ s.T)
    return float(np.mean(d2 < 4.0 * float(live.max()))) > dense
