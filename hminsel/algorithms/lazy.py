"""Algorithm 2: exact lazy farthest-point selection (the default).

A point's min-distance only shrinks as picks are added, so a value computed
against fewer picks is an upper bound ``ub``. Each round:

1. the head H is the M points with the largest ``ub`` (lowest index first on
   ties) and ``tau`` the key of the best point outside it;
2. ``head_greedy`` runs exact FPS steps on H while its best value beats
   ``tau``: every point outside has true value <= ub <= tau, so each accepted
   pick is the global farthest point, exactly as the streaming loop picks it;
3. one ``refresh`` pass folds the round's picks into ``ub`` of every point,
   skipping (point, pick) pairs that the triangle inequality rules out: a
   new pick c cannot lower the value of a point whose nearest pick a has
   ``|c - a| >= 2 sqrt(ub)`` (Elkan's bound for k-means, here per cell of a).

The values in ``ub`` are computed by the same direct-form kernel as the
streaming step, so the sequence is the streaming sequence, index for index.
The data are read once per round instead of once per pick. M adapts to the
acceptance rate; when rounds stop paying, the rest runs as streaming steps.

When k is a large share of N (keep half of a pool) the head holds most of the
live rows and a streaming head pick reads M x d values. Once rounds accept a
fair share of M (``TILED_RATE``) a backend that has one runs the head on GEMM
tiles (``Backend.head_greedy_tiled``: the head's pairwise distances once a
round, a row of M values a pick, exact through a re-check wherever the GEMM
error bound cannot settle a comparison). Its values are then exact for the
whole head, so the round's fold skips the head rows. Once a tiled round's
pruning lists keep most pairs (nothing to prune: unclustered data), later
rounds defer the refresh (``deferred.Stale``): only the rows that reach a
head are brought up to date, and a tiled head then holds ``DEFERRED_SPARE``
rows per pick left (a refresh first catches its rows up on a sketch of the
picks, ``catchup``). A probe after each deferred round returns the run to
eager folds, once, when pruning pays again (clusters that each hold picks); a
later dense round may defer it again, for good.
"""
from __future__ import annotations

import time

import numpy as np

from ..backends.base import MARK
from ..backends.lazy_host import M_MAX, head_and_tau  # noqa: F401  (head_and_tau re-exported)
from ..results import Stats
from . import catchup, chunked, deferred, pivots
from .prune import ListPolicy, fold, prune_lists, slack  # noqa: F401  (re-exported)
from .streaming import fold_rows, seed_values

M_START, M_MIN = 1024, 1024  # M_MAX: lazy_host
GROW_ABOVE = 1 / 4  # accepted / M over this: double M (fewer rounds)
SHRINK_BELOW = 1 / 32  # accepted / M under this: halve M (less head work a pick)
PAY_UNITS = 16  # a round pays when accepted * d >= this (see HeadPolicy)
STREAM_PATIENCE = 32  # rounds in a row that do not pay before streaming takes over (low d warms up slowly)
TILED_RATE = 1 / 16  # accepted / M at least this: the next head runs on GEMM tiles (if the backend has them)
TILED_SPARE = 2  # a tiled head holds at most this many rows per pick left (rounds accept about half)
DEFERRED_SPARE = 1.25  # the same with deferred refreshes: a last round's picks come from its top ~1.2x


class HeadPolicy:
    """Adapts the head size M to the acceptance rate; says when rounds stop paying.

    A round costs about one pass over x (the refresh) plus a few operations a
    row outside the distance work (head selection, cell radii): about
    ``PAY_UNITS / d`` passes more. A streaming step costs one pass a pick. So
    a round pays when it accepts at least ``PAY_UNITS / d`` picks: always for
    embeddings, not always for point clouds. The rule counts work, not time,
    so a run's path does not depend on the machine's load.

    The tiled head (``Backend.head_greedy_tiled``: the head's pairwise
    distances as GEMM tiles, then a row read a pick) costs about M / 2 picks
    of the streaming head, so it runs once the last round accepted at least
    ``TILED_RATE`` of M, with M capped at ``tiled_rows`` (its tile memory).
    """

    def __init__(self, n: int, d: int, head_size=None, m_max: int = M_MAX, tiled_rows: int = 0):
        self.n, self.d, self.fixed = n, d, head_size is not None
        self.m_max = max(M_MIN, m_max)
        self.m = min(head_size or min(M_START, self.m_max), n)
        self.unpaid = 0
        self.tiled_rows, self.tiled = tiled_rows, False

    def size(self, remaining: int, deferred: bool = False) -> int:
        """M for the next round: a tiled head costs M^2, so not much more than the picks left.

        With deferred refreshes (``deferred.Stale``) one more round costs only
        the refresh of its new head rows, not a pass: the head may be tighter.
        """
        if self.tiled and not self.fixed:
            spare = DEFERRED_SPARE if deferred else TILED_SPARE
            return min(self.m, max(M_MIN, int(spare * remaining)))
        return self.m

    def update(self, accepted: int, m=None) -> bool:
        """Record a round (of head size m, default M); True when the rest should run as streaming."""
        rate = accepted / (m or self.m)
        self.tiled = self.tiled_rows > 0 and rate >= TILED_RATE and (
            not self.fixed or self.m <= self.tiled_rows)
        if self.fixed:
            return False
        m_max = self.tiled_rows if self.tiled else self.m_max  # tiled: its tile memory, not L2
        if rate > GROW_ABOVE:
            self.m = min(2 * self.m, m_max, self.n)
        elif rate < SHRINK_BELOW:
            self.m = max(min(M_MIN, self.n), self.m // 2)
        self.m = min(self.m, m_max)
        self.unpaid = self.unpaid + 1 if accepted * self.d < PAY_UNITS else 0
        return self.unpaid >= STREAM_PATIENCE


def fold_seeds(backend, x, ub, owner, seeds):
    """Fold the first picks into ``ub``/``owner`` in one pass; their values as streaming gives them."""
    xs = backend.take(x, seeds)
    index, live = fold_rows(backend, x, ub, xs, seeds)
    owner[live] = index[live]
    return seed_values(backend, xs)


def lazy(backend, x, ub, seeds, k, *, head_size=None, progress=None, floor=None):
    """Exact lazy FPS: ``(picks, values, stats)``; the same picks as ``streaming``.

    ``ub`` (N,) starts as +inf (MARK for rows left out) and is updated in place.
    ``head_size`` fixes M (no adaptation), for tests and benchmarks.
    ``progress``: None or a ``_progress.Reporter``, told of picks and refresh chunks.
    ``floor``: a squared value; the run ends before the first pick past the seeds whose
    value is at most it (``select``'s ``radius``): a round whose ``tau`` is at most the
    floor runs its head against the floor instead, and is the last (a streaming tail
    may still run past it by a chunk of steps).
    """
    t0 = time.perf_counter()
    if len(seeds) >= k:  # nothing left to pick: the seed values alone, x not read
        values = seed_values(backend, backend.take(x, seeds[:k]))
        return (np.asarray(seeds[:k], np.int64), np.asarray(values, np.float64),
                Stats(passes=0.0, seconds=time.perf_counter() - t0))
    picks = list(seeds)
    owner = backend.full(x, 0, np.int64)
    values = fold_seeds(backend, x, ub, owner, seeds)
    policy = HeadPolicy(len(x), x.shape[1], head_size, backend.max_head_rows(x),
                        backend.head_rows_tiled(x))
    margin = slack(x.shape[1], backend.acc_dtype(x.dtype))
    kept_memory = backend.scratch()  # noqa: F841 - buffers the rounds reuse, freed with it
    passes, per_round, lists = 1.0, [], ListPolicy()
    stale = None  # a deferred.Stale once tiled folds stop pruning: rows refreshed near a head only
    undeferred = False  # back to eager folds once (deferred.EAGER_BELOW): not again
    own = None  # a tiled round's owners (read only after tiled rounds)
    groups = pivots.Pivots(x, picks) if backend.prunes else None  # the eager folds' lists, grouped
    while len(picks) < k:
        m = policy.size(k - len(picks), stale is not None)
        if stale is None:
            head, tau, tau_idx = backend.head_and_tau(ub, m)
        else:
            head, tau, tau_idx = stale.head(backend, x, ub, owner, picks, m)
        h = ub[head]  # a copy, exact: every head row was refreshed after the last round
        last = floor is not None and floor >= tau  # every row outside is within the radius
        if last:  # the head takes only picks above the floor; where it stops, the run ends
            tau, tau_idx = floor, -1
        tiled = policy.tiled and len(head) <= policy.tiled_rows
        if tiled:  # one call: a row of M values a pick, no chunks to report
            own = backend.full(head, -1, np.int64)  # on the head's device
            pos, vals = backend.head_greedy_tiled(backend.take(x, head), h, head, tau, tau_idx,
                                                  k - len(picks), own)
            if progress:
                progress.update(len(picks) + len(pos), pending=len(pos), note="head")
        else:
            pos, vals = chunked.head_greedy(backend, backend.take(x, head), h, head, tau, tau_idx,
                                            k - len(picks), progress, len(picks))
        if len(pos) == 0:
            if last:
                break
            raise RuntimeError("internal error: a lazy round accepted no pick")
        new = head[backend.index(pos, head)]
        picks.extend(new.tolist())
        values.extend(vals.tolist())
        per_round.append(len(pos))
        ub[new] = MARK
        if len(picks) >= k or last:
            break
        base = len(picks) - len(new)
        if stale is not None:  # the head's values are exact against every pick; the rest wait
            if tiled or stale.catchup is None:  # else owners untracked: the catch-up needs them, rows wait
                kept = h != MARK
                ub[head[kept]] = h[kept]
                if tiled:
                    moved = (own >= 0) & kept
                    owner[head[moved]] = base + own[moved]
                stale.exact(head[kept], len(picks))
            if not undeferred and stale.eager_pays(backend, x, ub, picks, base, k, margin):
                passes += (stale.rows + stale.exact_all(backend, x, ub, owner, picks, progress)) / len(x)
                stale, lists, undeferred = None, ListPolicy(), True  # pruned eager folds from here
        else:
            passes += _fold_round(backend, x, ub, owner, picks, new, head, h, own, tiled, margin,
                                  progress, lists, groups)
            if tiled and lists.backoff > 1 and isinstance(ub, np.ndarray):  # pruning did not pay
                stale = deferred.Stale(len(x), len(picks), _catchup(backend, x, margin, values))
        if progress:
            progress.update(len(picks))
        if policy.update(len(pos), len(head)):
            if stale is not None:
                stale.settle(backend, x, ub, owner, picks)
            rest, rest_vals = streaming_tail(backend, x, ub, k - len(picks), progress, len(picks),
                                             floor)
            picks.extend(rest.tolist())
            values.extend(rest_vals.tolist())
            passes += len(rest)
            break
    if stale is not None:
        passes += stale.rows / len(x)
    stats = Stats(passes=passes, rounds=len(per_round), picks_per_round=tuple(per_round),
                  head_size=policy.m, seconds=time.perf_counter() - t0)
    return np.asarray(picks, np.int64), np.asarray(values, np.float64), stats


def _fold_round(backend, x, ub, owner, picks, new, head, h, own, tiled, margin, progress, lists, groups):
    """The eager refresh after a round: its picks into every live row; returns the passes."""
    base = len(picks) - len(new)
    centers = backend.take(x, new)
    made = np.asarray(picks[:base])
    if tiled:  # the head's values are exact against this round's picks: fold only the rest
        kept = h != MARK
        moved = (own >= 0) & kept
        owner[head[moved]] = base + own[moved]
        ub[head[kept]] = MARK  # hidden from the fold
    rows = fold(backend, x, ub, owner, centers, lambda lo, hi: backend.take(x, made[lo:hi]),
                base, margin, progress, lists if tiled else None, groups)
    if tiled:
        ub[head[kept]] = h[kept]
    return rows / len(x)


def _catchup(backend, x, margin, values):
    """The catch-up for deferred refreshes (a backend with pruned folds, rows of many dimensions)."""
    if backend.prunes and x.shape[1] >= catchup.MIN_DIM:
        return catchup.Catchup(x.shape[1], margin, values)
    return None


def streaming_tail(backend, x, mind, count, progress=None, done=0, floor=None):
    """Continue with streaming steps from a ``mind`` exact against every pick so far."""
    best, first_val = backend.argmax(mind)
    if count == 1 or (floor is not None and first_val <= floor):
        return np.asarray([best]), np.asarray([first_val])
    more, vals = chunked.steps(backend, x, mind, best, count - 1, progress, done + 1, floor)
    return np.concatenate([[best], more]), np.concatenate([[first_val], vals])
