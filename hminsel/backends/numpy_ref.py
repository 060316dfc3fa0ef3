"""The float64 NumPy oracle: every primitive, written to be read.

This is the reference the tests compare against and the fallback that always
works. It favours clarity over speed: distances are the direct form in float64,
computed a chunk of rows at a time so that no N x N (or N x d float64 copy of a
large input) is ever held.
"""
from __future__ import annotations

import numpy as np

from .base import MARK, Backend, best_key_beats

CHUNK = 1 << 14  # rows per chunk: bounds the float64 temporaries


def sqdist(rows, center) -> np.ndarray:
    """Direct-form squared distances of ``rows`` (n, d) to ``center`` (d,), float64."""
    diff = np.asarray(rows, np.float64) - np.asarray(center, np.float64)
    return np.einsum("ij,ij->i", diff, diff)


def argmax_lowest(values) -> int:
    """Index of the largest value, lowest index on ties (np.argmax already is)."""
    return int(np.argmax(values))


class NumpyBackend(Backend):
    name = "numpy"

    def unavailable_reason(self):
        return None

    def acc_dtype(self, dtype):
        return np.dtype(np.float64)

    def step(self, x, mind, c):
        mind[c] = MARK
        for lo in range(0, len(x), CHUNK):
            part = mind[lo:lo + CHUNK]
            live = part != MARK
            part[live] = np.minimum(part[live], sqdist(x[lo:lo + CHUNK][live], x[c]))
        best = argmax_lowest(mind)
        if mind[best] == MARK:
            return -1, MARK
        return best, float(mind[best])

    def block_min(self, x, y, *, rows=None, self_mask=False):
        rows = np.arange(len(x)) if rows is None else np.asarray(rows, np.int64)
        value = np.full(len(rows), np.inf)
        index = np.zeros(len(rows), np.int64)
        for j in range(len(y)):  # one center at a time: strict < keeps the lowest j
            for lo in range(0, len(rows), CHUNK):
                r = rows[lo:lo + CHUNK]
                dist = sqdist(x[r], y[j])
                if self_mask:
                    dist[r == j] = np.inf
                better = dist < value[lo:lo + CHUNK]
                value[lo:lo + CHUNK][better] = dist[better]
                index[lo:lo + CHUNK][better] = j
        return value, index

    def head_greedy(self, xh, h, hidx, tau, tau_idx, budget):
        own = np.full(len(h), -1, np.int64)
        return self.head_greedy_tiled(xh, h, hidx, tau, tau_idx, budget, own)

    def head_greedy_tiled(self, xh, h, hidx, tau, tau_idx, budget, own):
        picks, values = [], []
        while len(picks) < budget:
            order = np.lexsort((hidx, -h))  # largest h first, then lowest index
            best = int(order[0])
            value = float(h[best])
            if value == MARK or not best_key_beats(value, int(hidx[best]), tau, tau_idx):
                break
            picks.append(best)
            values.append(value)
            h[best] = MARK
            live = np.flatnonzero(h != MARK)
            dist = sqdist(xh[live], xh[best])
            lower = dist < h[live]
            h[live[lower]] = dist[lower]
            own[live[lower]] = len(picks) - 1
        return np.asarray(picks, np.int64), np.asarray(values, np.float64)
