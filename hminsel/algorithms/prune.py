"""The refresh of the exact lazy FPS: pruning lists and the fold of a round's picks.

A new pick c cannot lower the value of a point whose nearest pick a has
``|c - a| >= 2 sqrt(ub)`` (Elkan's bound for k-means, here per cell of a).
``prune_lists`` lists, per earlier pick a, the new picks that may reach a's
cell; ``fold`` hands them to the backend's ``refresh``, or folds every live
row through ``block_min`` when the lists would prune too little.
"""
from __future__ import annotations

import numpy as np

from ..backends.base import MARK
from ..backends.lazy_host import LIST_CHUNK, prune_lists  # noqa: F401  (re-exported)
from . import chunked

DENSE_FRACTION = 0.25  # pruning lists keeping more of the N x m pairs: fold through block_min


def slack(d: int, dtype) -> float:
    """Relative margin that covers rounding in the pruning test (see ``Backend.refresh``).

    A direct-form value errs by at most gamma_(d+2) ~ (d + 2) u relatively; the
    test needs twice that on each side. ``4 (d + 8) eps`` = ``8 (d + 8) u``.
    """
    return 4.0 * (d + 8) * float(np.finfo(dtype).eps)


class ListPolicy:
    """When to build pruning lists: after lists that pruned too little, skip 1, 2, 4 .. 16 rounds.

    Used for the folds after tiled rounds (k a large share of N), where one
    round's lists cost about as much as the fold itself.
    """

    def __init__(self):
        self.wait, self.backoff = 0, 1

    def skip(self) -> bool:
        self.wait -= 1
        return self.wait >= 0

    def record(self, dense: bool):
        self.wait, self.backoff = (self.backoff, min(2 * self.backoff, 16)) if dense else (0, 1)


def fold(backend, x, ub, owner, centers, prev_rows, base, margin, report=None, lists=None,
         pivots=None) -> int:
    """Fold new centers into ``ub``/``owner``: pruned, or through block_min when pruning is weak.

    ``lists`` (a ListPolicy) remembers rounds whose lists pruned too little.
    ``pivots`` (a ``pivots.Pivots`` of the run) builds the lists when it can.
    Returns the rows read. With a progress ``report`` the pass runs in row chunks.
    """
    def fold_all(s):
        return backend.fold_all(x[s], ub[s], owner[s], centers, base)
    if not backend.prunes:
        return chunked.rows(len(x), fold_all, report)
    live = ub != MARK
    n_live = int(live.sum())
    if base >= n_live or (lists is not None and lists.skip()):  # lists would cost more than they save
        return chunked.rows(len(x), fold_all, report)
    radius2 = backend.cell_radius(ub, owner, base)
    made = None if pivots is None else pivots.lists(backend, base, radius2, centers, margin)
    ptr, cidx, cval = made if made is not None else backend.prune_lists(prev_rows, base, radius2, centers,
                                                                          margin)
    sizes = np.bincount(owner[live], minlength=base)
    pairs = int((sizes * np.diff(ptr)).sum())  # (row, center) pairs the lists leave
    dense = pairs > DENSE_FRACTION * len(centers) * n_live
    if lists is not None:
        lists.record(dense)
    if dense:
        return chunked.rows(len(x), fold_all, report)
    return chunked.rows(len(x), lambda s: backend.refresh(x[s], ub[s], owner[s], centers, base,
                                                          ptr, cidx, cval, margin), report)
