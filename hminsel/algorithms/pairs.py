"""h_min: the exact closest pair of a set, over ``block_min``."""
from __future__ import annotations

import numpy as np


def closest_pair(backend, x) -> tuple[float, int, int]:
    """``(squared distance, i, j)`` of the closest pair, ``i < j``, lowest pair on ties.

    ``block_min`` with the self-match masked gives each row's exact nearest
    other row (lowest index on ties); the global minimum's lowest pair is then
    among the rows that reach it: if (a, b) is the lowest pair, row a's own
    nearest is b, since a nearer-or-equal j < a would make (j, a) lower.
    """
    if len(x) < 2:
        return np.inf, -1, -1
    value, nearest = map(backend.to_host, backend.block_min(x, x, self_mask=True))
    best = value.min()
    rows = np.flatnonzero(value == best)
    pairs = np.stack([np.minimum(rows, nearest[rows]), np.maximum(rows, nearest[rows])], 1)
    i, j = pairs[np.lexsort((pairs[:, 1], pairs[:, 0]))[0]]
    return float(best), int(i), int(j)

