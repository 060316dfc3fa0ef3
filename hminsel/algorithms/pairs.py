"""h_min: the exact closest pair of a set, over the backend's ``closest_rows``."""
from __future__ import annotations

import numpy as np


def closest_pair(backend, x, progress=None) -> tuple[float, int, int]:
    """``(squared distance, i, j)`` of the closest pair, ``i < j``, lowest pair on ties.

    ``backend.closest_rows`` gives the exact nearest other row (lowest index on
    ties) of a set of rows that holds every row of a closest pair (by default
    all rows, through ``block_min``). The global minimum's lowest pair is then
    among the rows that reach it: if (a, b) is the lowest pair, row a's own
    nearest is b, since a nearer-or-equal j < a would make (j, a) lower.
    ``progress``: None or a callable(fraction of the work done) for the backend.
    """
    if len(x) < 2:
        return np.inf, -1, -1
    value, nearest, rows = (backend.closest_rows(x) if progress is None
                            else backend.closest_rows(x, progress=progress))
    value, nearest = backend.to_host(value), backend.to_host(nearest)
    rows = np.arange(len(value)) if rows is None else backend.to_host(rows)
    best = value.min()
    hit = np.flatnonzero(value == best)
    a, b = rows[hit], nearest[hit]
    pairs = np.stack([np.minimum(a, b), np.maximum(a, b)], 1)
    i, j = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))[0]]
    return float(best), int(i), int(j)
