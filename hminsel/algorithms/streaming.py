"""Algorithm 1: streaming farthest-point selection, one full pass over x per pick."""
from __future__ import annotations

import numpy as np

from ..backends.base import MARK
from . import chunked


def fold_seeds(backend, x, mind, seeds, need_next: bool):
    """Fold the given first picks into ``mind``, one streaming step each.

    Returns each seed's value (squared distance to the seeds before it; +inf
    for the first) and, if ``need_next``, the next farthest point and its value.
    The last seed is folded only when the next point is needed.
    """
    values = [np.inf]
    for prev, s in zip(seeds, seeds[1:]):
        backend.step(x, mind, prev)
        values.append(float(mind[s]))
    nxt, value = backend.step(x, mind, seeds[-1]) if need_next else (-1, MARK)
    return values, nxt, value


def streaming(backend, x, mind, seeds, k, progress=None):
    """Streaming FPS: ``(picks, values)``, k of each, values squared distances.

    ``mind`` (+inf, or MARK for rows left out) is updated in place. The first
    picks are ``seeds``; each later pick is the point farthest from all before.
    ``progress``: None or a ``_progress.Reporter``, told of the picks as they come.
    """
    values, nxt, value = fold_seeds(backend, x, mind, seeds, len(seeds) < k)
    picks = list(seeds)
    if len(picks) < k:
        picks.append(nxt)
        values.append(value)
    if len(picks) < k:
        more, vals = chunked.steps(backend, x, mind, picks[-1], k - len(picks), progress,
                                   len(picks))
        picks.extend(more.tolist())
        values.extend(vals.tolist())
    picks = np.asarray(picks, np.int64)
    if (picks < 0).any() or np.any(np.asarray(values) == MARK):
        raise RuntimeError("internal error: a step found no selectable point")
    return picks, np.asarray(values, np.float64)
