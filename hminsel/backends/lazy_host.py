"""The lazy FPS's bookkeeping on host arrays: the head and its key, the pruning lists.

These are the default (NumPy) forms of two steps of ``algorithms.lazy`` that a
backend may replace (``Backend.head_and_tau``, ``Backend.prune_lists``): the
GPU backends keep them on the device, the cpu backend builds its lists with
the fused GEMM. They sit on the backends' floor so that ``base.Backend`` can
offer them without reaching up into the algorithms.
"""
from __future__ import annotations

import numpy as np

from .base import MARK
from .cpu_gemm import gemm_coef

M_MAX = 1 << 15  # the largest head the lazy driver grows to (a backend may cap it lower)
LIST_CHUNK = 2048  # earlier picks per block of center-to-center distances


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


def prune_lists(prev_rows, base, radius2, centers, margin):
    """CSR over earlier picks a: the new centers that may lower some value in a's cell.

    ``prev_rows(lo, hi)`` returns the rows of picks ``lo .. hi - 1`` of the
    ``base`` picks made before ``centers``; ``radius2[a]`` is the largest value
    in a's cell. Center c matters to cell a only if
    ``|x_a - c|^2 <= 4 radius2[a] (1 + margin)``. Center-to-center distances are
    taken in GEMM form on centred rows, in the rows' dtype (float32 BLAS for
    float32 data), and the listed value is a lower bound: the GEMM's rounding
    bound ``gemm_coef (|a - mu|^2 + |c - mu|^2)`` is subtracted. Each list is
    in ascending center order (``refresh`` relies on it for its tie rule).
    """
    dtype = np.result_type(centers.dtype, np.float32)
    mu = centers.mean(axis=0, dtype=np.float64).astype(dtype)
    cc, cn = centred(centers, mu)
    coef = gemm_coef(centers.shape[1], dtype)
    counts, cidx, cval = [], [], []
    for lo in range(0, base, LIST_CHUNK):
        value, err = gemm_sqdist(*centred(prev_rows(lo, min(base, lo + LIST_CHUNK)), mu), cc, cn, coef)
        lower = value - err  # [chunk, m]
        keep = lower <= 4.0 * radius2[lo:lo + LIST_CHUNK, None] * (1.0 + margin)
        rows, cols = np.nonzero(keep)
        counts.append(np.bincount(rows, minlength=len(lower)))
        cidx.append(cols)
        cval.append(lower[rows, cols])
    return csr(counts, cidx, cval)


def centred(rows, mu):
    """``rows - mu`` in mu's dtype, and their squared norms in float64 (for ``gemm_sqdist``)."""
    a = rows.astype(mu.dtype) - mu
    return a, np.einsum("ij,ij->i", a, a).astype(np.float64)


def gemm_sqdist(a, an, b, bn, coef):
    """``(value, err)`` (len(a), len(b)): the GEMM form of the squared distances of rows centred
    on one mu (``centred``) and its rounding bound, ``|value - exact| <= err`` (``gemm_coef``)."""
    sq = an[:, None] + bn[None, :]
    return sq - 2.0 * (a @ b.T), coef * sq


def csr(counts, cidx, cval):
    """``(ptr, cidx, cval)`` from the chunks' per-row counts and entries, in order."""
    ptr = np.concatenate([[0], np.cumsum(np.concatenate(counts))]).astype(np.int64)
    return ptr, np.concatenate(cidx).astype(np.int64), np.concatenate(cval).astype(np.float64)
