"""Algorithm 2: exact lazy farthest-point selection (the default).

A point's min-distance only shrinks as picks are added, so a value computed
against fewer picks is an upper bound ``ub``. Each round:

1. the head H is the M points with the largest ``ub`` (lowest index first on
   ties) and ``tau`` the key of the best point outside it;
2. ``head_greedy`` runs exact FPS steps on H while its best value beats
   ``tau``: every point outside has true value <= ub <= tau, so each accepted
   pick is the global farthest point, exactly as the streaming loop picks it;
3. one ``block_min`` pass folds the round's picks into ``ub`` of every point.

The values in ``ub`` are computed by the same direct-form kernel as the
streaming step, so the sequence is the streaming sequence, index for index.
The data are read once per round instead of once per pick. M adapts to the
acceptance rate; when rounds stop paying, the rest runs as streaming steps.
"""
from __future__ import annotations

import time

import numpy as np

from ..backends.base import MARK
from ..results import Stats
from .streaming import streaming

M_START = 1024
M_MAX = 1 << 15
GROW_BELOW = 1 / 8  # accepted / M under this: double M
STREAM_BELOW = 4  # picks a round under this with M at its cap: fall back to streaming


def head_and_tau(ub: np.ndarray, m: int):
    """The head (up to m live indices by ub desc, index asc) and the key of the next."""
    n = len(ub)
    want = min(m + 1, n)
    if want < n:
        part = np.argpartition(ub, n - want)[n - want:]  # the `want` largest, ties arbitrary
        edge = ub[part].min()
        above = np.flatnonzero(ub > edge)
        ties = np.flatnonzero(ub == edge)[: want - len(above)]  # lowest indices win ties
        top = np.concatenate([above, ties])
    else:
        top = np.arange(n)
    top = top[np.lexsort((top, -ub[top]))]
    top = top[ub[top] != MARK]
    head, rest = top[:m], top[m:]
    if len(rest):
        return head, float(ub[rest[0]]), int(rest[0])
    return head, -np.inf, n


def fold_seeds(backend, x, ub, seeds):
    """Fold the first picks into ``ub`` in one pass; their values as streaming gives them."""
    xs = np.ascontiguousarray(x[seeds])
    values = [np.inf]
    for t in range(1, len(seeds)):
        value, _ = backend.block_min(xs, xs[:t], rows=[t])
        values.append(float(value[0]))
    refresh(backend, x, ub, xs)
    ub[seeds] = MARK
    return values


def refresh(backend, x, ub, centers) -> None:
    """ub = min(ub, exact distance to ``centers``) for every unmarked row."""
    value, _ = backend.block_min(x, centers)
    live = ub != MARK
    ub[live] = np.minimum(ub[live], value[live].astype(ub.dtype))


def lazy(backend, x, ub, seeds, k, *, head_size=None, progress=None):
    """Exact lazy FPS: ``(picks, values, stats)``; the same picks as ``streaming``.

    ``ub`` (N,) starts as +inf (MARK for rows left out) and is updated in place.
    ``head_size`` fixes M (no adaptation), for tests and benchmarks.
    """
    t0 = time.perf_counter()
    if len(seeds) >= k:  # nothing left to pick: the seed values alone
        picks, values = streaming(backend, x, ub, seeds, k)
        return picks, values, Stats(passes=len(seeds) - 1, seconds=time.perf_counter() - t0)
    picks = list(seeds)
    values = fold_seeds(backend, x, ub, seeds)
    m = min(head_size or M_START, len(x))
    passes, per_round = 1.0, []
    while len(picks) < k:
        head, tau, tau_idx = head_and_tau(ub, m)
        h = ub[head]  # exact: every live row was refreshed after the last round
        pos, vals = backend.head_greedy(np.ascontiguousarray(x[head]), h, head, tau, tau_idx,
                                        k - len(picks))
        if len(pos) == 0:
            raise RuntimeError("internal error: a lazy round accepted no pick")
        new = head[pos]
        picks.extend(new.tolist())
        values.extend(vals.tolist())
        per_round.append(len(pos))
        ub[head] = h  # exact against every pick, accepted ones marked
        if progress:
            progress(len(picks), k)
        if len(picks) >= k:
            break
        refresh(backend, x, ub, np.ascontiguousarray(x[new]))
        passes += 1
        if head_size is None and len(pos) < GROW_BELOW * m:
            if m >= min(M_MAX, len(x)) and len(pos) < STREAM_BELOW:
                rest, rest_vals = streaming_tail(backend, x, ub, k - len(picks))
                picks.extend(rest.tolist())
                values.extend(rest_vals.tolist())
                passes += len(rest)
                break
            m = min(2 * m, M_MAX, len(x))
    stats = Stats(passes=passes, rounds=len(per_round), picks_per_round=tuple(per_round),
                  head_size=m, seconds=time.perf_counter() - t0)
    return np.asarray(picks, np.int64), np.asarray(values, np.float64), stats


def streaming_tail(backend, x, mind, count):
    """Continue with streaming steps from a ``mind`` exact against every pick so far."""
    best = int(np.argmax(mind))  # MARK (-1) is below every live value
    first_val = float(mind[best])
    if count == 1:
        return np.asarray([best]), np.asarray([first_val])
    more, vals = backend.steps(x, mind, best, count - 1)
    return np.concatenate([[best], more]), np.concatenate([[first_val], vals])
