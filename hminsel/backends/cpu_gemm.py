"""The CPU backend's GEMM-form path: a GEMM finds candidates, C++ makes them exact.

The GEMM: float32 on an AVX-512 build, hminsel's own kernel fused with the
scans (csrc/cpu/fused_gemm.h); else NumPy's BLAS on tiles, then C++ scans.
With centred rows, ``G_ij = |x_i - mu|^2 + |y_j - mu|^2 - 2 x_i.y_j`` (clamped
at 0) is within ``err_i`` of the exact distance t_ij, and the direct form D_ij
that the streaming step computes within ``rel * t_ij`` (``gemm_bound``). A
centre that can tie or beat a candidate of direct value D has
``G <= window_thresh(D) ~ D (1 + rel) + err_i``. So:

- ``block_min``: one GEMM pass keeps each row's ``TOP_K`` smallest G (those
  that can fall in the final window); the candidate b is the smallest, and
  every centre of its window gets a direct value (a window of one: certified).
  When the window fits in the row's list that costs no second pass, else a
  second GEMM pass over those rows finds it. On clustered embeddings a window
  holds a few centres instead of all of them.
- ``closest_pair`` (``cpu_pair``, for ``hmin``) runs on the same pieces.

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
from . import gemm_bound

GEMM_ROWS = 1024   # x rows per GEMM tile
MIN_TILE_ROWS = 64  # fewer rows than GEMM_ROWS a thread: tiles this small still run near peak
GEMM_COLS = 4096   # y rows per GEMM tile: a tile is at most 16 MiB of float32
TOP_K = 16         # GEMM values kept a row: most windows of clustered data fit
SETTLE_ROWS = 1 << 18  # rows per top-k pass: 48 MiB of lists
PRECENTRE_BYTES = 64 << 20  # a y this small is centred once, not once a row tile
PANEL = 32         # rows of y a panel of the fused GEMM holds (csrc/cpu/fused_gemm.h)
CENTRE_SAMPLE = 256  # rows of y whose mean centres the GEMM form
GATHER_ROWS = 256  # rows read (float16 widened, unit rows divided) a thread at least


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


def _centred_norms(cpu, y, mu):
    if not len(y):
        return np.zeros(0, acc_dtype(y))
    return np.concatenate([_sqnorms(rows_of(cpu, y, t) - mu) for t in _tiles(len(y))])


def acc_dtype(x) -> np.dtype:
    """The dtype of the sums, tiles and bounds for x: float16 rows are read as float32
    (UnitRows: its dtype already is that of the rows read)."""
    return np.dtype(np.float32) if x.dtype == np.float16 else x.dtype


def stored(x) -> bool:
    """Whether x's rows are its values as stored (float32/float64 array), not read through
    ``cpu.read_rows`` (float16 widened, ``UnitRows`` divided by their norms)."""
    return isinstance(x, np.ndarray) and x.dtype != np.float16


def rows_of(cpu, x, ids):
    """``x[ids]`` (a slice or int64 ids) as values: a view or a gather of a stored x, else
    the rows as the kernels read them (``cpu.read_rows``), a new array."""
    if stored(x):
        return x[ids]
    if isinstance(ids, slice):
        lo, hi, step = ids.indices(len(x))
        if step != 1:
            return rows_of(cpu, x, np.arange(lo, hi, step, dtype=np.int64))
        out = np.empty((max(0, hi - lo), x.shape[1]), acc_dtype(x))
        cpu.read_rows(x, None, lo, out)
        return out
    ids = np.ascontiguousarray(ids, dtype=np.int64)
    out = np.empty((len(ids), x.shape[1]), acc_dtype(x))
    step = max(GATHER_ROWS, -(-len(ids) // cpu.get_threads()))
    if len(ids) <= step:
        cpu.read_rows(x, ids, 0, out)
    else:  # float16 widened or rows divided by their norms: worth the tile threads
        _threads.map_tiles(lambda lo: cpu.read_rows(x, ids[lo:lo + step], 0, out[lo:lo + step]),
                           range(0, len(ids), step), cpu.get_threads())
    return out


def centred_rows(cpu, x, ids, mu, scratch: dict):
    """``x[ids] - mu`` (ids: int64 row ids or a slice) in the calling thread's buffer.

    ``scratch``: one dict per call (thread id -> buffer), dropped when the call
    ends. The buffer is valid until the thread's next tile. Reusing it spares
    each tile the page faults of a fresh 1-3 MiB array. float16 rows and
    unit rows are read as the kernels read them (``cpu.read_rows``, on this
    thread), so the tile holds the bits a prepared copy of x would give.
    """
    nb = len(range(*ids.indices(len(x)))) if isinstance(ids, slice) else len(ids)
    me = threading.get_ident()
    buf = scratch.get(me)
    if buf is None or len(buf) < nb:
        buf = scratch[me] = np.empty((max(nb, GEMM_ROWS), x.shape[1]), acc_dtype(x))
    out = buf[:nb]
    if not stored(x):
        if isinstance(ids, slice):
            cpu.read_rows(x, None, ids.indices(len(x))[0], out)
        else:
            cpu.read_rows(x, ids, 0, out)
        np.subtract(out, mu, out=out)
    elif isinstance(ids, slice):
        np.subtract(x[ids], mu, out=out)
    else:
        np.take(x, ids, axis=0, out=out)
        np.subtract(out, mu, out=out)
    return out


def centre(cpu, y):
    """A centre for the GEMM form: the mean of up to ``CENTRE_SAMPLE`` rows of y, spread out.

    Any centre is exact (the bounds use the norms of the rows centred on it);
    a sample's mean shrinks the norms nearly as much as the full mean, at a
    fraction of a pass over a large y.
    """
    sample = rows_of(cpu, y, slice(None, None, max(1, len(y) // CENTRE_SAMPLE)))
    return sample.mean(axis=0, dtype=np.float64).astype(acc_dtype(y))


def fused(cpu, x) -> bool:
    """Whether the fused float32 GEMM (csrc/cpu/fused_gemm.h, AVX-512) serves x."""
    return acc_dtype(x) == np.float32 and cpu.fused_gemm_available()


class Centred:
    """Centred column tiles of y and their norms: made once when y is small, else per use.

    fused: each tile is ``cpu.pack_panels`` of its rows (the fused GEMM's
    layout) instead of the (mb, d) array ``y[t] - mu`` that BLAS takes.
    ``norms``: |y_j - mu|^2 (m,), from the tiles as they are made when y is
    small (the fused pack sums them from its panels), else a pass of their
    own (never a copy of a big y).
    """

    def __init__(self, cpu, y, mu, fused=False, packed=None):
        self.y, self.mu, self.cpu, self.fused = y, mu, cpu, fused
        self.tiles = _tiles(len(y))
        self.made = None
        if packed is not None:  # panels made before (cpu_picks): a tile is a view of them
            _, panels, self.norms = packed
            d = y.shape[1]
            self.made = [panels[t.start * d:-(-t.stop // PANEL) * PANEL * d] for t in self.tiles]
        elif len(y) * y.shape[1] * acc_dtype(y).itemsize <= PRECENTRE_BYTES:
            self.norms = np.empty(len(y), acc_dtype(y))
            self.made = [self._make(t, self.norms[t]) for t in self.tiles]
        else:
            self.norms = _centred_norms(cpu, y, mu)

    def _make(self, t, norms=None):
        if self.fused:
            if stored(self.y):
                return self.cpu.pack_panels(self.y, t.start, t.stop, self.mu, norms)
            tile = rows_of(self.cpu, self.y, t)  # read as the kernels read it, then packed
            return self.cpu.pack_panels(tile, 0, len(tile), self.mu, norms)
        yc = rows_of(self.cpu, self.y, t) - self.mu
        if norms is not None:
            norms[:] = _sqnorms(yc)
        return yc

    def __iter__(self):
        return self.from_tile(0)

    def from_tile(self, first):
        for k in range(first, len(self.tiles)):
            t = self.tiles[k]
            yield t, (self.made[k] if self.made is not None else self._make(t))


def window(cpu, x, y, mu, yn, rows, xn, thresh, self_mask, value, index, yc) -> int:
    """Fold into value/index (len(rows),) every centre j with ``G_ij <= thresh``; returns candidates.

    ``yc``: the ``Centred`` tiles of y on ``mu`` (the caller's, made once).
    """
    threads, scratch = cpu.get_threads(), {}

    def tile(lo):
        part = slice(lo, lo + GEMM_ROWS)
        xc = centred_rows(cpu, x, rows[part], mu, scratch)
        seen = 0
        for t, ytile in yc:
            if yc.fused:
                seen += cpu.fused_window(xc, xn[part], ytile, yn[t], t.start, rows[part], self_mask,
                                         thresh[part], x, y, value[part], index[part])
                continue
            g = xc @ ytile.T
            seen += cpu.gemm_window(g, xn[part], yn, t.start, rows[part], self_mask,
                                    thresh[part], x, y, value[part], index[part], threads == 1)
        return seen
    with _threads.blas_single_thread():
        return sum(_threads.map_tiles(tile, range(0, len(rows), GEMM_ROWS), threads))


def block_min(cpu, x, y, rows, self_mask, value, index, packed=None) -> int:
    """Exact nearest row of y for x (or x[rows]) into value/index; returns the rows windowed.

    x may hold float16 rows (read as float32); y is float32 then. ``packed``:
    ``(mu, panels, yn)`` of y for the fused GEMM, made before (or None).
    """
    # A large y is re-centred a tile at a time (O(m d) against the GEMM's
    # O(GEMM_ROWS m d)), so block_min(x, x) never holds a copy of a big x.
    fuse = fused(cpu, x)
    packed = packed if fuse else None
    mu = packed[0] if packed is not None else centre(cpu, y)
    yc = Centred(cpu, y, mu, fuse, packed)
    yn = yc.norms
    ids = np.arange(len(x), dtype=np.int64) if rows is None else rows
    ymax = float(yn.max())
    windowed = 0
    for lo in range(0, len(ids), SETTLE_ROWS):  # bounds the top-k lists
        part = slice(lo, lo + SETTLE_ROWS)
        windowed += _block_min_rows(cpu, x, y, mu, yn, yc, ids[part], self_mask, ymax,
                                    value[part], index[part])
    return windowed


def few_bound(d: int) -> tuple[float, float, float]:
    """``(coef, floor, rel)`` of float32 rows of width d: the bounds that make the
    one-pass kernels exact (``gemm_bound``: err_i = coef (xn_i + ymax) + floor)."""
    f32 = np.float32
    return gemm_bound.gemm_err_coef(d, f32), gemm_bound.gemm_err_floor(d, f32), gemm_bound.direct_rel(d, f32)


def block_min_few(cpu, x, y, rows, value, index, packed=None):
    """``block_min`` of x (or x[rows]) against a few centres y in one pass (fused_gemm only).

    Each block of 8 rows is read once: its GEMM form against every centre,
    then the direct form of its window (``csrc/cpu/fused_min.h``). float32
    or float16 rows (or unit rows of them) against float32 y; ``packed``: as
    ``block_min``'s.
    """
    if packed is not None:
        mu, panels, yn = packed
    else:
        mu = centre(cpu, y)
        yn = np.empty(len(y), np.float32)
        panels = cpu.pack_panels(y, 0, len(y), mu, yn)
    cpu.fused_block_min(x, rows, y, mu, panels, yn, *few_bound(x.shape[1]), value, index)


def _row_tile(n: int, threads: int) -> int:
    """Rows a GEMM tile: GEMM_ROWS, or fewer so that a few rows still fill every thread."""
    return min(GEMM_ROWS, max(MIN_TILE_ROWS, -(-n // max(1, threads))))


def _block_min_rows(cpu, x, y, mu, yn, yc, ids, self_mask, ymax, value, index) -> int:
    n, d, acc = len(ids), x.shape[1], acc_dtype(x)
    step = _row_tile(n, cpu.get_threads())
    xn = np.empty(n, acc)                               # |x_i - mu|^2
    err = np.empty(n, np.float64)                       # |G_ij - t_ij| <= err_i
    rel = gemm_bound.direct_rel(d, acc)
    topv = np.full((n, TOP_K), np.inf, acc)
    topi = np.full((n, TOP_K), -1, np.int64)
    run = n > 0 and ids[-1] - ids[0] == n - 1 and bool((np.diff(ids) == 1).all())  # x[a:b]: no gather
    scratch = {}

    def tile(lo):
        part = slice(lo, lo + step)
        xc = centred_rows(cpu, x, slice(ids[lo], ids[lo] + len(xn[part])) if run else ids[part], mu,
                          scratch)
        xn[part] = _sqnorms(xc)
        err[part] = gemm_bound.row_err(xn[part], ymax, d, acc)
        scale, reach = gemm_bound.scan_reach(err[part], rel)  # beyond: outside every window
        for t, ytile in yc:
            if yc.fused:
                cpu.fused_scan(xc, xn[part], ytile, yn[t], t.start, ids[part], self_mask, reach,
                               topv[part], topi[part], scale)
                continue
            g = xc @ ytile.T                            # (nb, mb)
            cpu.gemm_scan(g, xn[part], yn, t.start, ids[part], self_mask, reach, topv[part],
                          topi[part], scale)
    with _threads.blas_single_thread():
        _threads.map_tiles(tile, range(0, n, step), cpu.get_threads())
    sure = np.empty(n, np.uint8)
    cpu.gemm_settle(x, ids, y, topv, topi, err, rel, value, index, sure)
    redo = np.flatnonzero(sure == 0)
    if len(redo):  # more candidates than the lists hold: a second GEMM pass over these rows
        v, i = value[redo], index[redo]  # the candidate: always inside its own window
        thresh = gemm_bound.window_thresh(v, err[redo], rel)
        window(cpu, x, y, mu, yn, ids[redo], xn[redo], thresh, self_mask, v, i, yc)
        value[redo], index[redo] = v, i
    return len(redo)
