"""Algorithm 4: exact bucket FPS in low dimensions (point clouds, d <= 8).

The points sit in buckets of a tree; each node keeps its bounding box and the
largest min-distance below it (lowest index on ties). A new pick updates only
the buckets its ball can reach (box distance < the bucket's largest value);
the root names the next pick. Every distance is the streaming step's, and the
box bound is computed in the same arithmetic, so the sequence is the streaming
FPS sequence, index for index (QuickFPS, Han et al. 2023, made exact).

Backends with a bucket kernel say so through ``Backend.bucket_reason``; the
public API runs ``streaming`` (the same sequence) on the others, e.g. on the
NumPy oracle.
"""
from __future__ import annotations

import numpy as np

from ..backends.base import MARK


FIRST_PICKS = 4096  # a floor on a backend whose kernel takes none: the first call's picks,
GROW = 4            # then GROW times more a call


def bucket(backend, x, mind, seeds, k, progress=None, floor=None):
    """Bucket FPS: ``(picks, values)``, k of each, values squared distances.

    ``mind`` (+inf, or MARK for rows left out) is the starting state (read
    only); the first picks are ``seeds``. One native call: ``progress`` hears
    only the end. ``floor``: a squared value (``select``'s ``radius``); the run
    may end early, at the first pick past the seeds whose value is at most it
    (the caller cuts before it). A backend whose kernel takes the floor
    (``bucket_floor``) ends there in one call, before that pick; on others calls
    of ``FIRST_PICKS``, then ``GROW`` times more picks each, every call
    continuing from the picks before (the same sequence; a call refolds them,
    cheap next to its new picks) until one passes the floor or reaches k.
    """
    seeds = np.asarray(seeds, np.int64)
    one_call = floor is None or backend.bucket_floor
    want = k if one_call else min(k, len(seeds) + FIRST_PICKS)
    while True:
        picks, values = backend.bucket_select(x, mind, seeds, want, floor)
        if (picks < 0).any() or np.any(values == MARK):
            raise RuntimeError("internal error: the bucket FPS found no selectable point")
        if progress and want > len(seeds):  # a _progress.Reporter; the API reports k == len(seeds) itself
            progress.update(_before(values, len(seeds), floor))
        if one_call or len(picks) < want or want == k or (values[len(seeds):] <= floor).any():
            return picks, values
        seeds, want = picks, min(k, len(picks) * GROW)


def _before(values, seeds: int, floor) -> int:
    """The picks before the first past the seeds whose value is at most ``floor`` (all, for
    no floor): what a call made that the cut keeps."""
    if floor is None:
        return len(values)
    near = np.flatnonzero(values[seeds:] <= floor)
    return seeds + int(near[0]) if len(near) else len(values)
