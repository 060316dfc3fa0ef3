"""The CPU backend's exact closest pair (``hmin``) on the GEMM form of ``cpu_gemm``.

Tiles on or above the diagonal only (half the GEMM), each updating the best G
of its rows and of its columns; U = the smallest direct value over each row's
candidate; only rows with ``best_i <= window_thresh(U)`` can hold a closer
pair, and each of them is settled by that window (``cpu_gemm.window``).
Threads as in ``cpu_gemm``: row tiles on hminsel's threads, BLAS held to one.
"""
from __future__ import annotations

import itertools
import threading

import numpy as np

from .. import _threads
from . import cpu_gemm, gemm_bound  # its tile sizes and fused() read at call time: tests tune them
from .cpu_gemm import Centred, acc_dtype, centre, centred_rows, rows_of, window

# Column tiles one work item sweeps for a row tile: a row tile against every column after it
# was one item, 1.6e12 flop (27 s on a 2-core AVX2 VM) at N = 2M, d = 384, so progress moved and
# Ctrl-C took effect that rarely; 64 tiles (262144 columns) keep an item to seconds there.
TILES_PER_ITEM = 64


def closest_pair(cpu, x, progress=None):
    """``(value, index, rows)``: exact nearest of the rows that can hold the closest pair.

    ``progress``: None or a callable(fraction of the upper-triangle tiles done).
    """
    n, acc = len(x), acc_dtype(x)
    mu = centre(cpu, x)
    cols = Centred(cpu, x, mu, cpu_gemm.fused(cpu, x))  # panels of the columns, made once when x is small
    norms = cols.norms
    mine = threading.local()  # each thread scans into its own (best, bidx): tiles share columns
    held, scratch = [], {}

    def first_tile(r0):  # the column tiles on or above the diagonal of row tile r0 start here
        return r0 // cpu_gemm.GEMM_COLS if cols.fused else 0

    def tile(item):
        r0, j = item  # row tile r0 against its column tiles j .. j + TILES_PER_ITEM
        if not hasattr(mine, "acc"):
            mine.acc = (np.full(n, np.inf, acc), np.full(n, -1, np.int64))
            held.append(mine.acc)
        xr = centred_rows(cpu, x, slice(r0, r0 + cpu_gemm.GEMM_ROWS), mu, scratch)
        swept = 0
        if cols.fused:  # columns from r0's own tile on: on or above the diagonal, each pair once
            for t, panels in itertools.islice(cols.from_tile(first_tile(r0) + j), TILES_PER_ITEM):
                # a tile that starts below r0: its panels from the one holding r0 on
                lo = t.start + max(0, r0 - t.start) // cpu_gemm.PANEL * cpu_gemm.PANEL
                cpu.fused_sym(xr, norms, panels[(lo - t.start) * x.shape[1]:], t.stop - lo, r0, lo,
                              *mine.acc)
                swept += t.stop - lo
        else:  # on or above the diagonal: each pair once
            for c0 in range(r0 + j * cpu_gemm.GEMM_COLS,
                            min(n, r0 + (j + TILES_PER_ITEM) * cpu_gemm.GEMM_COLS), cpu_gemm.GEMM_COLS):
                cols_c = rows_of(cpu, x, slice(c0, c0 + cpu_gemm.GEMM_COLS)) - mu
                cpu.gemm_scan_sym(xr @ cols_c.T, norms, r0, c0, *mine.acc)
                swept += len(cols_c)
        if progress:  # items finish in any order: the share of the triangle's work done
            with lock:
                done[0] += swept
                progress(min(1.0, done[0] / total))

    def items():
        for r0 in range(0, n, cpu_gemm.GEMM_ROWS):
            tiles = (len(cols.tiles) - first_tile(r0) if cols.fused
                     else -(-(n - r0) // cpu_gemm.GEMM_COLS))
            yield from ((r0, j) for j in range(0, tiles, TILES_PER_ITEM))
    done, lock = [0], threading.Lock()
    total = sum(n - r0 for r0 in range(0, n, cpu_gemm.GEMM_ROWS)) or 1
    with _threads.blas_single_thread():
        _threads.map_tiles(tile, items(), cpu.get_threads())
    best, bidx = held[0]
    for b, i in held[1:]:  # smallest value, then the lowest index: whatever the split
        better = (b < best) | ((b == best) & (i < bidx))
        best[better], bidx[better] = b[better], i[better]
    value = np.empty(n, acc)
    cpu.pair_sqdist(x, np.arange(n, dtype=np.int64), x, bidx, value)  # each candidate, exact
    # A pair (i, j) with D_ij <= U (the smallest candidate value) has G_ij <= window_thresh(U, err_i).
    upper, d = float(value.min()), x.shape[1]
    err = gemm_bound.row_err(norms, float(norms.max()), d, acc)
    thresh = gemm_bound.window_thresh(upper, err, gemm_bound.direct_rel(d, acc))
    live = np.flatnonzero(best.astype(np.float64) <= thresh)
    v, i = value[live], bidx[live]
    window(cpu, x, x, mu, norms, live, norms[live], thresh[live], True, v, i, cols)
    return v, i, live
