"""fpsample's functions with hminsel inside (NumPy in, NumPy out; no torch needed).

``from hminsel.compat import fpsample`` then ``fpsample.bucket_fps_kdline_sampling(pc, 1024, h=7)``

Every function returns the exact FPS sequence: ``fps_sampling`` and the two
bucket variants are exact in fpsample too (its ``h`` is checked as fpsample
checks it, then left to hminsel's own tree), and the two NPDU variants, a
windowed heuristic there, are exact here (``w`` is checked and otherwise
unused). As in fpsample: ``pc`` is read as float32, ``start_idx=None`` draws
the start with ``np.random.randint`` (seed it with ``np.random.seed``), a list
of start indices is kept first, in its order, and the result is a (n_samples,)
uint64 array. Unlike fpsample, ties go to the lowest index and bad arguments
raise ValueError (fpsample asserts).
"""
from __future__ import annotations

import numbers
from typing import List, Optional, Union

import numpy as np

from .. import _finite
from ..api import select

Start = Optional[Union[int, List[int]]]


def _sample(pc, n_samples, start_idx: Start) -> np.ndarray:
    pc = np.asarray(pc)
    if pc.ndim != 2:
        raise ValueError(f"pc must be a 2-D point cloud (n_pts, D); got shape {pc.shape}")
    n_pts = pc.shape[0]
    if isinstance(n_samples, (bool, np.bool_)) or not isinstance(n_samples, numbers.Integral) \
            or not 1 <= n_samples <= n_pts:
        raise ValueError(f"n_samples must be an int in [1, n_pts = {n_pts}]; got {n_samples!r}")
    if start_idx is None:
        starts = [int(np.random.randint(low=0, high=n_pts))]  # fpsample's draw: NumPy's global RNG
    else:
        many = isinstance(start_idx, (list, tuple, np.ndarray))
        starts = list(np.ravel(start_idx)) if many else [start_idx]
        for i in starts:
            if isinstance(i, (bool, np.bool_)) or not isinstance(i, numbers.Integral) \
                    or not 0 <= i < n_pts:
                raise ValueError(f"start_idx must be None, an int or a list of ints in "
                                 f"[0, n_pts = {n_pts}); got {start_idx!r}")
        if not starts or len(set(starts)) != len(starts) or len(starts) > n_samples:
            raise ValueError(f"a start_idx list must hold 1 to n_samples = {n_samples} distinct "
                             f"indices; got {start_idx!r}")
    x = np.asarray(pc, dtype=np.float32)
    bad = np.flatnonzero(~np.isfinite(x).all(axis=1))
    if len(bad):
        raise ValueError(f"pc row {bad[0]} holds NaN or inf (as float32); FPS needs finite points")
    try:
        sel = select(x, int(n_samples), init=[int(i) for i in starts])
    except ValueError as exc:  # fpsample reads float32: "pass float64" is no way out here
        said = _finite.scale_error_of(exc, "pc", " (fpsample reads points as float32)")
        if said is None:
            raise
        raise said from None
    return np.asarray(sel.indices).astype(np.uint64)


def fps_sampling(pc: np.ndarray, n_samples: int, start_idx: Start = None) -> np.ndarray:
    """Vanilla FPS: (n_samples,) uint64 indices of ``pc`` (n_pts, D), in selection order."""
    return _sample(pc, n_samples, start_idx)


def _check_w(w) -> None:
    if w is not None and (isinstance(w, (bool, np.bool_)) or not isinstance(w, numbers.Integral)
                          or w < 1):
        raise ValueError(f"w must be a positive int or None; got {w!r}")


def fps_npdu_sampling(pc: np.ndarray, n_samples: int, w: Optional[int] = None,
                      start_idx: Start = None) -> np.ndarray:
    """fpsample's windowed (NPDU) FPS heuristic; here the exact FPS (``w`` is unused)."""
    _check_w(w)
    return _sample(pc, n_samples, start_idx)


def fps_npdu_kdtree_sampling(pc: np.ndarray, n_samples: int, w: Optional[int] = None,
                             start_idx: Start = None) -> np.ndarray:
    """fpsample's kd-tree NPDU heuristic; here the exact FPS (``w`` is unused)."""
    _check_w(w)
    return _sample(pc, n_samples, start_idx)


def bucket_fps_kdtree_sampling(pc: np.ndarray, n_samples: int, start_idx: Start = None) -> np.ndarray:
    """Bucket FPS (QuickFPS): the exact FPS; hminsel's bucket tree runs it for D <= 8."""
    return _sample(pc, n_samples, start_idx)


def bucket_fps_kdline_sampling(pc: np.ndarray, n_samples: int, h: int,
                               start_idx: Start = None) -> np.ndarray:
    """Bucket FPS with ``2**h`` points a bucket in fpsample: ``h`` is checked as there
    (``1 <= h``, ``2**h <= n_pts``), then hminsel sizes its own buckets."""
    n_pts = np.shape(pc)[0] if np.ndim(pc) else 0
    if isinstance(h, (bool, np.bool_)) or not isinstance(h, numbers.Integral) or h < 1 \
            or 2 ** h > n_pts:
        raise ValueError(f"h must be an int with 1 <= h and 2**h <= n_pts = {n_pts}; got {h!r}")
    return _sample(pc, n_samples, start_idx)


__all__ = ["fps_sampling", "fps_npdu_sampling", "fps_npdu_kdtree_sampling",
           "bucket_fps_kdtree_sampling", "bucket_fps_kdline_sampling"]
