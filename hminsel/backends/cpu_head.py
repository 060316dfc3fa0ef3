"""The CPU head loop on GEMM tiles: keep a large share of N at GEMM speed.

When k is a large share of N the lazy head holds most of the live rows, and
``head_greedy`` streams M x d values a pick (memory-bound). Here the head's
pairwise dot products come from BLAS once a round, and the C++ loop
(``csrc/cpu/head_gemm.cpp``) reads one row of M values a pick. The GEMM-form
value of a pair is within ``gemm_coef (n_i + n_p)`` of the direct-form value
(``cpu_gemm.gemm_coef``); a pick lowers ``h[i]`` only where the GEMM value is
below ``h[i]`` plus that bound, and only those rows get a direct value, so
``h`` and the picks are bit for bit what streaming gives.

Tiles: the head rows are grouped by their nearest of a few anchor rows and cut
into tiles of at most ``TILE`` rows; a tile pair whose bounding balls are farther
apart than any value in either tile (so no pick of one can lower a value of
the other) is neither computed nor read: the C++ loop takes the tile mask.
When most tile pairs are needed (unclustered data) the head is one tile and
its dots the whole upper triangle. Either way the dots are GEMM blocks on or
above the diagonal, each on one thread with OpenBLAS held to one (near the
core's peak; a two-thread syrk of the head reached about half of it on a
2-core machine), handed to hminsel's threads in turn and mirrored in C++.

Memory: the (M, M) tile of the acc dtype; ``CpuBackend.head_rows_tiled`` caps
M so that it stays within ``HEAD_TILE_BYTES`` (256 MiB: M <= 8192 in float32,
5792 in float64), plus up to three (M, d) copies of the head rows (grouped;
centred, when their mean is far from the origin; the fused GEMM's panels).
"""
from __future__ import annotations

import mmap
import threading
import weakref

import numpy as np

from .. import _threads
from .cpu_gemm import PANEL, fused, gemm_coef

HEAD_TILE_BYTES = 256 << 20
TILE = 512     # head rows a tile (and a GEMM block)
STRIP_MIN = 128  # rows of a dense head's GEMM strip at least (see _items)
BLOCK_COLS = 2048  # columns a GEMM block: 512 x 2048 x d runs at the core's peak on one thread
ANCHORS = 32   # rows that group the head before it is cut into tiles
SAMPLE = 2048  # head rows the anchors are chosen from
FLAT_SAMPLE = 256  # head rows of the first, cheap walk: flat there, no grouping
DENSE = 0.5    # needed tile pairs above this share of the head's pairs: one tile, all dots
FLAT = 0.25    # anchor walk: last step / first step above this (squared): no grouping
CENTRE_GAIN = 0.25  # centre the head (a copy) when |mean|^2 is above this share of the mean |x|^2


class Scratch:
    """The dots buffer that the tiled rounds of one run reuse (``Backend.scratch``).

    While one is alive, ``head_greedy`` on the thread that made it takes its
    (M, M) tile from the start of one buffer of ``HEAD_TILE_BYTES`` (virtual
    memory: pages are mapped when first written, and stay mapped for the next
    rounds), where a fresh tile a round page-faults up to 256 MiB anew (a
    kernel-side cost that grows under load: ~0.6 CPU-s over a Gaussian
    20k x 1024 run). Freed with the object.
    """

    def __init__(self):
        self.buf = None
        _mine.scratch = weakref.ref(self)

    def dots(self, m: int, dtype, dense: bool):
        if self.buf is None or self.buf.dtype != dtype or self.buf.size < m * m:
            self.buf = None  # the old one goes before the new one comes
            # The largest tile at once: only the pages a round touches are ever mapped.
            self.buf = Pages(max(m * m, max_rows(np.dtype(dtype).itemsize) ** 2), dtype)
        return self.buf.view(m, dense)


class Pages:
    """An uninitialised buffer of ``count`` values in anonymous memory, small pages until dense.

    NumPy asks for transparent huge pages on every array of 4 MiB and more.
    Where the kernel compacts memory to serve them on the first touch
    (``defrag = madvise``, a common default) that touch can cost milliseconds
    a 2 MiB page, and more under load: 2-40 ms of a 140 ms select of
    clustered 50k x 384, whose head tiles are sparse. Here the pages stay
    small (4 KiB: only the needed tile pairs are ever mapped) until a round
    writes the whole tile (``dense``), which then asks for huge pages (fewer
    faults: about 10% faster on a Gaussian 20k x 1024 seed run). Unmapped
    when the object and its views go.
    """

    def __init__(self, count: int, dtype):
        self.dtype, self.size = np.dtype(dtype), count
        size = max(1, count * self.dtype.itemsize)
        private = {"flags": mmap.MAP_PRIVATE} if hasattr(mmap, "MAP_PRIVATE") else {}  # not shmem
        self.map = mmap.mmap(-1, size, **private)
        self.huge = False

    def view(self, m: int, dense: bool) -> np.ndarray:
        """The first m * m values as an (m, m) array."""
        if dense and not self.huge and hasattr(self.map, "madvise") and hasattr(mmap, "MADV_HUGEPAGE"):
            self.map.madvise(mmap.MADV_HUGEPAGE)  # pages mapped from here on
            self.huge = True
        return np.frombuffer(self.map, self.dtype, m * m).reshape(m, m)


_mine = threading.local()


def _dots_buffer(m: int, dtype, dense: bool = False):
    ref = getattr(_mine, "scratch", None)
    keep = ref() if ref is not None else None
    return keep.dots(m, dtype, dense) if keep is not None else Pages(m * m, dtype).view(m, dense)


def max_rows(itemsize: int) -> int:
    """The largest M whose (M, M) tile of ``itemsize``-byte values fits in HEAD_TILE_BYTES."""
    return int(np.sqrt(HEAD_TILE_BYTES / itemsize))


def _walk(xs, ns):
    """A farthest-point walk of ``ANCHORS`` steps over rows ``xs`` (GEMM form): (rows, step lengths)."""
    far, walk, reach = np.full(len(xs), np.inf), [0], []
    for _ in range(ANCHORS - 1):
        far = np.minimum(far, ns + ns[walk[-1]] - 2.0 * (xs @ xs[walk[-1]]))
        walk.append(int(np.argmax(far)))
        reach.append(float(far[walk[-1]]))
    return walk, reach


def _grouped(xc, norms):  # xc: any rows (the ordering is shift-invariant)
    """(permutation, tile bounds): rows near the same anchor together, tiles of <= TILE rows.

    The anchors are a farthest-point walk of ``ANCHORS`` steps over a sample of
    the head in the GEMM form (ordering only: exactness never depends on it). A tile never
    straddles two anchors' groups, so a tight cluster makes tight tiles. When
    the walk's last step is still longer than ``FLAT`` of its first (no cluster
    structure), every tile pair would be needed: the head is one tile. The walk
    runs on ``FLAT_SAMPLE`` rows first: a sample that already looks flat is
    taken at its word (a larger one only finds more far rows).
    """
    m = len(xc)
    if m <= TILE:
        return np.arange(m), [(0, m)]
    for size in (FLAT_SAMPLE, SAMPLE):  # a flat small sample settles it at 1/8 of the cost
        sample = np.linspace(0, m - 1, min(m, size)).astype(np.int64)
        walk, reach = _walk(xc[sample], norms[sample])
        if reach[-1] > FLAT * reach[0]:  # no cluster structure at this scale: one tile
            return np.arange(m), [(0, m)]
    anchors = sample[walk]
    near = (norms[anchors][None, :] - 2.0 * (xc @ xc[anchors].T)).argmin(axis=1)
    perm = np.argsort(near, kind="stable")
    cuts = np.flatnonzero(np.diff(near[perm])) + 1
    bounds = []
    for s, e in zip(np.concatenate([[0], cuts]), np.concatenate([cuts, [m]])):
        bounds += [(int(b), int(min(e, b + TILE))) for b in range(s, e, TILE)]
    return perm, bounds


def _needed(xc, h, norms, bounds):
    """(T, T) bool: tile pairs that may hold a pair closer than a value of either tile.

    Ball bounds in float64 on the (maybe centred) rows: sqrt D(i, j) >= |c_I - c_J| - r_I - r_J.
    The margin covers the centring's rounding (``u (|xc_i| + |xc_j|)`` on the
    distance) and the direct form's relative error (``rel``), each twice.
    """
    d = xc.shape[1]
    u = float(np.finfo(xc.dtype).eps) / 2
    rel = 4.0 * (d + 8) * u
    cent = np.stack([xc[s:e].mean(axis=0, dtype=np.float64) for s, e in bounds])
    rad = np.array([np.sqrt(((xc[s:e] - cent[t]) ** 2).sum(1).max()) for t, (s, e) in enumerate(bounds)])
    live = np.where(h >= 0, h, 0).astype(np.float64)
    hmax = np.array([live[s:e].max() for s, e in bounds])
    slack = 4.0 * u * np.sqrt(float(norms.max()))
    cn = np.einsum("ij,ij->i", cent, cent)
    gap = np.sqrt(np.maximum(cn[:, None] + cn[None, :] - 2.0 * cent @ cent.T, 0.0))
    gap = gap * (1 - 1e-9) - rad[:, None] - rad[None, :] - slack
    reach = np.maximum(hmax[:, None], hmax[None, :]) * (1.0 + rel)
    need = ~((gap > 0) & (gap * gap >= reach))
    return need | need.T  # symmetric, whatever the rounding of cent @ cent.T: _dots mirrors across


def _items(m, bounds, need, threads: int = 1):
    """(tiles for ``cpu.head_gemm``, GEMM blocks): blocks (r0, r1, c0, c1) on or above the diagonal.

    Mostly needed: the head is one tile for the loop and its dots the upper
    triangle in row strips of ``TILE`` rows, or fewer: at least two strips a
    thread, since the triangle's strips shrink and, handed out largest first,
    two strips on two threads leave one idle a third of the time (a 1024-row
    head). Else, per tile row, each run of needed tiles on or after the
    diagonal. Blocks are cut to at most ``BLOCK_COLS`` columns, so that a
    thread the OS deschedules holds up a small share.
    """
    m, blocks = sum(e - s for s, e in bounds), []
    size = np.array([e - s for s, e in bounds], np.float64)
    if size @ need @ size > DENSE * m * m:
        bounds, need = [(0, m)], np.ones((1, 1), bool)
        strip = max(STRIP_MIN, min(TILE, -(-m // (2 * max(1, threads)))))
        runs = [(r0, min(m, r0 + strip), r0, m) for r0 in range(0, m, strip)]
    else:
        runs = []
        for t, (r0, r1) in enumerate(bounds):
            cols = np.flatnonzero(need[t, t:]) + t
            while len(cols):
                run = 1
                while run < len(cols) and cols[run] == cols[0] + run:
                    run += 1
                runs.append((r0, r1, bounds[cols[0]][0], bounds[cols[run - 1]][1]))
                cols = cols[run:]
    for r0, r1, c0, c1 in runs:
        blocks += [(r0, r1, c, min(c1, c + BLOCK_COLS)) for c in range(c0, c1, BLOCK_COLS)]
    starts = np.array([s for s, _ in bounds] + [m], np.int64)
    return starts, need.astype(np.uint8), blocks


def _dots(cpu, xc, blocks):
    """dots (M, M): ``xc . xc^T`` on the blocks and their mirror images; nothing else written.

    A block is one GEMM on one thread, written in place, then mirrored below
    the diagonal in C++; blocks are handed to hminsel's threads in turn. The
    GEMM: float32 on an AVX-512 build, the fused kernel's plain dot products
    (``cpu.fused_dots``, ~2x OpenBLAS's AVX2 kernel on Zen 5) against panels of
    the head packed once; else BLAS held to one thread. Single-thread GEMM
    tiles run near the core's peak, where a two-thread syrk of the whole head
    reaches about half of it.
    """
    xc = np.ascontiguousarray(xc)  # the fused GEMM reads rows d apart
    m, d = xc.shape
    dense = 2 * sum((r1 - r0) * (c1 - c0) for r0, r1, c0, c1 in blocks) >= m * m  # written, mirrors too
    dots = _dots_buffer(m, xc.dtype, dense)
    panels = None
    if fused(cpu, xc):  # one copy of the head in the kernel's layout, packed on all threads
        panels = cpu.pack_panels(xc, 0, m, np.zeros(d, xc.dtype))

    def block(b):
        r0, r1, c0, c1 = b
        if panels is None:
            np.matmul(xc[r0:r1], xc[c0:c1].T, out=dots[r0:r1, c0:c1])
        else:  # from the panel holding c0; its columns before c0 are not written
            p0 = c0 // PANEL * PANEL
            size = -(-(c1 - p0) // PANEL) * PANEL * d
            cpu.fused_dots(xc[r0:r1], panels[p0 * d:p0 * d + size], c1 - p0, c0 - p0, dots, r0, p0)
        if max(c0, r1) < c1:
            cpu.mirror_dots(dots, r0, r1, max(c0, r1), c1)
    blocks = sorted(blocks, key=lambda b: -(b[1] - b[0]) * (b[3] - b[2]))  # largest first
    with _threads.blas_single_thread():
        _threads.map_tiles(block, blocks, cpu.get_threads())
    return dots


def head_greedy(cpu, xh, h, hidx, tau, tau_idx, budget, own):
    """``Backend.head_greedy_tiled`` on the CPU: ``(positions, values)``; h, own updated."""
    norms = np.einsum("ij,ij->i", xh, xh)
    perm, bounds = _grouped(xh, norms)  # grouping is shift-invariant: the raw rows do
    xp = xh[perm] if len(bounds) > 1 else xh
    norms = norms[perm]
    mu = xp[::max(1, len(xp) // SAMPLE)].mean(axis=0, dtype=np.float64)  # a sample: any mu is exact
    xc = xp
    if mu @ mu > CENTRE_GAIN * norms.mean():  # centring shrinks the GEMM's error bound: worth a copy
        xc = xp - mu.astype(xp.dtype)
        norms = np.einsum("ij,ij->i", xc, xc)
    hp, ip, op = h[perm], np.ascontiguousarray(hidx, np.int64)[perm], own[perm]
    need = _needed(xc, hp, norms, bounds) if len(bounds) > 1 else np.ones((1, 1), bool)
    starts, need, blocks = _items(len(xc), bounds, need, cpu.get_threads())
    dots = _dots(cpu, xc, blocks)
    del xc
    coef = gemm_coef(xh.shape[1], xh.dtype)
    pos, vals, _ = cpu.head_gemm(xp, dots, norms, coef, hp, ip, float(tau), int(tau_idx),
                                 int(budget), op, starts, need)
    h[perm], own[perm] = hp, op
    return perm[pos], vals
