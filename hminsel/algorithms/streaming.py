"""Algorithm 1: streaming farthest-point selection, one full pass over x per pick."""
from __future__ import annotations

import numpy as np

from ..backends.base import MARK
from . import chunked


SEED_LEAF = 256  # first picks whose mutual distances steps fill in (one step a row: microseconds)


def fold_seeds(backend, x, mind, seeds, need_next: bool):
    """Fold the given first picks into ``mind``: all but the last in one ``block_min`` pass
    (the min of the same direct-form distances the steps would fold one by one), the last by
    a step when the next point is needed.

    Returns each seed's value (squared distance to the seeds before it; +inf
    for the first: ``seed_values``) and, if ``need_next``, the next farthest
    point and its value.
    """
    xs = backend.take(x, seeds)
    values = seed_values(backend, xs)
    if len(seeds) > 1 and need_next:
        fold_rows(backend, x, mind, xs[:-1], seeds[:-1])
    nxt, value = backend.step(x, mind, seeds[-1]) if need_next else (-1, MARK)
    return values, nxt, value


def fold_rows(backend, x, mind, xs, rows):
    """Mark ``rows`` (whose values are ``xs``) and give every live row of ``mind`` (+inf there:
    nothing folded yet) its squared distance to the nearest of them, in one ``block_min`` pass;
    returns ``(index of that nearest for every row, live mask)``."""
    value, index = backend.block_min(x, xs)
    mind[rows] = MARK
    live = mind != MARK
    mind[live] = value[live]
    return index, live


def seed_values(backend, xs) -> list[float]:
    """Each row of ``xs`` (the first picks, in order): its squared distance to the rows before
    it, as streaming's steps give it; +inf for the first. Blocked, O(len(xs)^2 d) work in few
    calls: each leaf of ``SEED_LEAF`` rows against all rows before it in one ``block_min``,
    then its own triangle by steps over the leaf, each value read before its row is marked."""
    out = []
    for lo in range(0, len(xs), SEED_LEAF):
        leaf = xs[lo:lo + SEED_LEAF]
        mind = backend.full(leaf, np.inf)
        if lo:
            mind[:], _ = backend.block_min(leaf, xs[:lo])
        got = backend.full(leaf, np.inf)
        got[0] = mind[0]
        for t in range(len(leaf) - 1):
            backend.fold(leaf, mind, t)  # marks row t, folds it into the rows after
            got[t + 1] = mind[t + 1]
        out.extend(float(v) for v in backend.to_host(got))
    return out


def streaming(backend, x, mind, seeds, k, progress=None, floor=None):
    """Streaming FPS: ``(picks, values)``, k of each, values squared distances.

    ``mind`` (+inf, or MARK for rows left out) is updated in place. The first
    picks are ``seeds``; each later pick is the point farthest from all before.
    ``progress``: None or a ``_progress.Reporter``, told of the picks as they come.
    ``floor``: a squared value; the run may end early, after the first pick past the
    seeds whose value is at most it (``select``'s ``radius``).
    """
    values, nxt, value = fold_seeds(backend, x, mind, seeds, len(seeds) < k)
    picks = list(seeds)
    if len(picks) < k:
        picks.append(nxt)
        values.append(value)
    if len(picks) < k and not (floor is not None and value <= floor):
        more, vals = chunked.steps(backend, x, mind, picks[-1], k - len(picks), progress,
                                   len(picks), floor)
        picks.extend(more.tolist())
        values.extend(vals.tolist())
    picks = np.asarray(picks, np.int64)
    if (picks < 0).any() or np.any(np.asarray(values) == MARK):
        raise RuntimeError("internal error: a step found no selectable point")
    return picks, np.asarray(values, np.float64)
