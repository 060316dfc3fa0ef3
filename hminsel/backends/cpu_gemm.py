"""The CPU backend's GEMM-form path: NumPy's BLAS finds candidates, C++ makes them exact.

With centred rows, ``G_ij = |x_i - mu|^2 + |y_j - mu|^2 - 2 x_i.y_j`` (clamped
at 0) is within ``eps_i = coef (|x_i - mu|^2 + max_j |y_j - mu|^2)`` of the
direct-form value ``D_ij`` the streaming step computes (``_gemm_coef``). So:

- ``block_min``: one GEMM pass keeps each row's ``TOP_K`` smallest G; a row
  whose gap between the first two exceeds ``2 eps_i`` is certified (its
  candidate is the exact nearest). Any other row is settled by its window:
  every centre j with ``G_ij <= D_ib + eps_i`` (b its candidate) gets a direct
  value; when the window fits in the row's list that costs no second pass,
  else a second GEMM pass over those rows finds it. On clustered embeddings
  the gap is often below eps for every row, and a window holds a few centres
  instead of all of them.
- ``closest_pair``: tiles on or above the diagonal only (half the GEMM), each
  updating the best G of its rows and of its columns; U = the smallest direct
  value over each row's candidate; only rows with ``best_i - eps_i <= U`` can
  hold a closer pair, and each of them is settled by a window ``U + eps_i``.

Threads: one side at a time, never an OpenMP team stacked on BLAS threads.
Row tiles are handed to hminsel's threads (``_threads.map_tiles``, one tile
at a time, so a descheduled thread delays one tile, not a pass); each runs
its GEMMs with OpenBLAS held to one thread (``_threads.blas_single_thread``)
and its C++ scans, both without the GIL. The C++ regions between the tile
loops (``gemm_settle``, ``pair_sqdist``) then find no BLAS threads spinning
on the cores. On a quiet machine this is as fast as BLAS's own threads (each
tile is a large GEMM) and the scans, serial before, now run in parallel.
"""
from __future__ import annotations

import threading

import numpy as np

from .. import _threads

GEMM_ROWS = 1024   # x rows per GEMM tile
MIN_TILE_ROWS = 128  # fewer rows than GEMM_ROWS a thread: tiles this small still run near peak
GEMM_COLS = 4096   # y rows per GEMM tile: a tile is at most 16 MiB of float32
TOP_K = 16         # GEMM values kept a row: most windows of clustered data fit
SETTLE_ROWS = 1 << 18  # rows per top-k pass: 48 MiB of lists
PRECENTRE_BYTES = 64 << 20  # a y this small is centred once, not once a row tile


def gemm_coef(d: int, dtype) -> float:
    """``c`` with |GEMM-form - direct-form| <= c * (|x_i - mu|^2 + max_j |y_j - mu|^2).

    With unit roundoff u and S = |a|^2 + |b|^2 of the centred rows, first-order
    bounds (Higham, *Accuracy and Stability of Numerical Algorithms*, 3.1 and
    3.5: a d-term dot product or sum errs by at most gamma_d = d u / (1 - d u)
    times the sum of magnitudes, in any summation order): dot product, doubled,
    <= gamma_d S; the two norms <= gamma_d S; the final add/subtract <= 4 u S;
    rounding of the centring x - mu <= 4 u S; the direct form itself (sum of
    non-negative terms, each with 3 roundings, depth <= d + 5) <= 2 (d + 8) u S.
    Total about (4 d + 24) u S. We use 8 (d + 8) u S (= 4 (d + 8) eps), twice that.
    """
    return 4.0 * (d + 8) * float(np.finfo(dtype).eps)


def _sqnorms(a):
    """Squared norms of the rows of ``a`` (n, d), in a's dtype."""
    return np.einsum("ij,ij->i", a, a)


def _tiles(m: int):
    return [slice(col, min(m, col + GEMM_COLS)) for col in range(0, m, GEMM_COLS)]


def _centred_norms(y, mu):
    return np.concatenate([_sqnorms(y[t] - mu) for t in _tiles(len(y))]) if len(y) else np.zeros(0, y.dtype)


class Centred:
    """Centred column tiles of y: made once when y is small, else per use (never a copy of x)."""

    def __init__(self, y, mu):
        self.y, self.mu = y, mu
        self.tiles = _tiles(len(y))
        small = y.nbytes <= PRECENTRE_BYTES
        self.made = [y[t] - mu for t in self.tiles] if small else None

    def norms(self):
        """|y_j - mu|^2 (from the centred tiles when they are made: one pass over y, not two)."""
        if self.made is None:
            return _centred_norms(self.y, self.mu)
        return np.concatenate([_sqnorms(t) for t in self.made]) if self.made else np.zeros(0, self.y.dtype)

    def __iter__(self):
        for k, t in enumerate(self.tiles):
            yield t, (self.made[k] if self.made is not None else self.y[t] - self.mu)


def window(cpu, x, y, mu, yn, rows, xn, thresh, self_mask, value, index, yc=None) -> int:
    """Fold into value/index (len(rows),) every centre j with ``G_ij <= thresh``; returns candidates."""
    yc = yc or Centred(y, mu)
    threads = cpu.get_threads()

    def tile(lo):
        part = slice(lo, lo + GEMM_ROWS)
        xc = x[rows[part]] - mu
        seen = 0
        for t, ytile in yc:
            g = xc @ ytile.T
            seen += cpu.gemm_window(g, xn[part], yn, t.start, rows[part], self_mask,
                                    thresh[part], x, y, value[part], index[part], threads == 1)
        return seen
    with _threads.blas_single_thread():
        return sum(_threads.map_tiles(tile, range(0, len(rows), GEMM_ROWS), threads))


def block_min(cpu, x, y, rows, self_mask, value, index) -> int:
    """Exact nearest row of y for x (or x[rows]) into value/index; returns the rows windowed."""
    mu = y.mean(axis=0, dtype=np.float64).astype(y.dtype)
    # A large y is re-centred a tile at a time (O(m d) against the GEMM's
    # O(GEMM_ROWS m d)), so block_min(x, x) never holds a copy of a big x.
    yc = Centred(y, mu)
    yn = yc.norms()
    ids = np.arange(len(x), dtype=np.int64) if rows is None else rows
    coef, ymax = gemm_coef(x.shape[1], x.dtype), float(yn.max())
    windowed = 0
    for lo in range(0, len(ids), SETTLE_ROWS):  # bounds the top-k lists
        part = slice(lo, lo + SETTLE_ROWS)
        windowed += _block_min_rows(cpu, x, y, mu, yn, yc, ids[part], self_mask, coef, ymax,
                                    value[part], index[part])
    return windowed


def _row_tile(n: int, threads: int) -> int:
    """Rows a GEMM tile: GEMM_ROWS, or fewer so that a few rows still fill every thread."""
    return min(GEMM_ROWS, max(MIN_TILE_ROWS, -(-n // max(1, threads))))


def _block_min_rows(cpu, x, y, mu, yn, yc, ids, self_mask, coef, ymax, value, index) -> int:
    n = len(ids)
    step = _row_tile(n, cpu.get_threads())
    xn = np.empty(n, x.dtype)                           # |x_i - mu|^2
    topv = np.full((n, TOP_K), np.inf, x.dtype)
    topi = np.full((n, TOP_K), -1, np.int64)

    def tile(lo):
        part = slice(lo, lo + step)
        xc = x[ids[part]] - mu                          # (nb, d)
        xn[part] = _sqnorms(xc)
        reach = 2.0 * coef * (xn[part].astype(np.float64) + ymax)  # 2 eps: the widest window
        for t, ytile in yc:
            g = xc @ ytile.T                            # (nb, mb)
            cpu.gemm_scan(g, xn[part], yn, t.start, ids[part], self_mask, reach, topv[part],
                          topi[part])
    with _threads.blas_single_thread():
        _threads.map_tiles(tile, range(0, n, step), cpu.get_threads())
    sure = np.empty(n, np.uint8)
    cpu.gemm_settle(x, ids, y, topv, topi, xn, ymax, coef, value, index, sure)
    redo = np.flatnonzero(sure == 0)
    if len(redo):  # more candidates than the lists hold: a second GEMM pass over these rows
        v, i = value[redo], index[redo]  # the candidate: always inside its own window
        thresh = v.astype(np.float64) + coef * (xn[redo].astype(np.float64) + ymax)
        window(cpu, x, y, mu, yn, ids[redo], xn[redo], thresh, self_mask, v, i, yc)
        value[redo], index[redo] = v, i
    return len(redo)


def closest_pair(cpu, x, progress=None):
    """``(value, index, rows)``: exact nearest of the rows that can hold the closest pair.

    ``progress``: None or a callable(fraction of the upper-triangle tiles done).
    """
    n = len(x)
    mu = x.mean(axis=0, dtype=np.float64).astype(x.dtype)
    norms = _centred_norms(x, mu)
    mine = threading.local()  # each thread scans into its own (best, bidx): tiles share columns
    held = []

    def tile(r0):
        if not hasattr(mine, "acc"):
            mine.acc = (np.full(n, np.inf, x.dtype), np.full(n, -1, np.int64))
            held.append(mine.acc)
        xr = x[r0:r0 + GEMM_ROWS] - mu
        for c0 in range(r0, n, GEMM_COLS):  # on or above the diagonal: each pair once
            cpu.gemm_scan_sym(xr @ (x[c0:c0 + GEMM_COLS] - mu).T, norms, r0, c0, *mine.acc)
        if progress:  # tiles finish in any order: the share of the triangle's work done
            with lock:
                done[0] += n - r0
                progress(done[0] / total)
    done, lock = [0], threading.Lock()
    total = sum(n - r0 for r0 in range(0, n, GEMM_ROWS)) or 1
    with _threads.blas_single_thread():
        _threads.map_tiles(tile, range(0, n, GEMM_ROWS), cpu.get_threads())
    best, bidx = held[0]
    for b, i in held[1:]:  # smallest value, then the lowest index: whatever the split
        better = (b < best) | ((b == best) & (i < bidx))
        best[better], bidx[better] = b[better], i[better]
    value = np.empty(n, x.dtype)
    cpu.pair_sqdist(x, np.arange(n, dtype=np.int64), x, bidx, value)  # each candidate, exact
    upper = float(value.min())
    coef, ymax = gemm_coef(x.shape[1], x.dtype), float(norms.max())
    eps = coef * (norms.astype(np.float64) + ymax)
    live = np.flatnonzero(best.astype(np.float64) - eps <= upper)
    v, i = value[live], bidx[live]
    window(cpu, x, x, mu, norms, live, norms[live], upper + eps[live], True, v, i)
    return v, i, live
