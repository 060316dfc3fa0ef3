"""The C++ CPU backend: threaded kernels in ``csrc/cpu`` behind pybind11.

Distances are the direct form ``sum((a - b) ** 2)`` accumulated in float32 for
float32 input and float64 for float64 input, by one C++ function
(``csrc/cpu/common.h: sqdist_k``) with a fixed summation order, so ``step``,
``steps``, ``block_min`` and ``head_greedy`` agree bit for bit.

``block_min`` with more than a few centres, and ``closest_rows`` (h_min), find
candidates in the GEMM form (float32: hminsel's AVX-512 GEMM fused with the
scan, in one pass over x for up to ``FEW_CENTRES[1]`` centres; else NumPy's
BLAS on tiles of centred data) and make them exact against rigorous
error bounds (``cpu_gemm``, ``gemm_bound``); so does the lazy head loop when
k is a large share of N (``head_greedy_tiled``, ``cpu_head``).
"""
from __future__ import annotations

import numpy as np

from .. import _threads
from .._rows import UnitRows
from . import cpu_gemm, cpu_head, cpu_pair, cpu_picks
from .base import Backend
from .lazy_host import LIST_CHUNK, csr

try:  # the compiled part is optional: importing hminsel never needs it
    with _threads.openmp_env():  # passive OpenMP waiting, read when the runtime loads
        from hminsel import _cpu
    _IMPORT_ERROR = None
except ImportError as exc:
    _cpu = None
    _IMPORT_ERROR = str(exc)


def set_num_threads(n: int | None = None) -> int:
    """Threads of the C++ kernels and of the GEMM tile loop; None: ``_threads.num_threads()``."""
    if _cpu is None:
        return 1
    if n is None:
        n = _threads.num_threads()[0]
    if int(n) < 1:
        raise ValueError(f"the thread count must be >= 1; got {n}")
    _cpu.set_threads(int(n))
    return int(n)


set_num_threads()

# block_min takes the GEMM path from this many centres and dimensions on
# (measured on a 2-core AVX-512 machine, benchmarks/bench_block_min.py).
# With the fused float32 GEMM (AVX-512), FEW_CENTRES centres take its one-pass
# kernel instead (cpu_gemm.block_min_few): below, the direct form is as fast;
# above, the tiled GEMM path with its top-k lists. The GEMM forms win at every
# d, down to d = 2 (and with NumPy's BLAS on builds without AVX-512): h_min of
# 20k rows was 8-13x faster at d = 3..24, block_min against 1024 centres 4x
# at d = 16. GEMM_MIN_DIM stays as the switch the tests and benchmarks turn.
# float64 sums take NumPy's dgemm, and below GEMM_MIN_DIM_F64 the direct form
# was as fast (nearest against 500 centres 1.3x faster at d = 8 and 16).
GEMM_MIN_CENTRES = 64
GEMM_MIN_DIM = 1
GEMM_MIN_DIM_F64 = 24
FEW_CENTRES = (12, 192)
# The lazy head runs as GEMM tiles from this d on (cpu_head): below, a pick's
# M x d stream is cheap and the tiles are not (at d = 8 and 12, k = 2000 of
# 200k Gaussian rows, the plain loop was 10-30% faster; at d = 16, k = 20000,
# the tiles 3x).
HEAD_TILED_MIN_DIM = 12
BUCKET_MAX_DIM = 8  # csrc/cpu/bucket.cpp: one kernel per d in 1..8
# h_min takes the bucket tree (d <= BUCKET_MAX_DIM) from this many rows on
PAIRS_TREE_MIN_ROWS = 4096  # below, at d = 8, the GEMM path was as fast (at d <= 3 the tree won from 100 rows)


class CpuBackend(Backend):
    name = "cpu"

    def unavailable_reason(self):
        if _cpu is None:
            return f"the C++ extension hminsel._cpu is not built ({_IMPORT_ERROR}); reinstall with a C++ compiler and pybind11"
        return None

    def notes(self):
        if _cpu is None:
            return None
        n, why = _threads.num_threads()
        return f"{_cpu.get_threads()} threads ({why}); kernels: {_cpu.simd()}; BLAS: {_threads.blas_info()}"

    def unsupported_reason(self, x):
        if isinstance(x, UnitRows):  # read in place (csrc/cpu/rows.h)
            x = x.raw
        reason = super().unsupported_reason(x)
        if reason is not None:
            return reason
        if x.dtype not in (np.float16, np.float32, np.float64) or not x.dtype.isnative:
            return f"takes float16, float32 or float64 arrays, got {x.dtype}"
        if not x.flags.c_contiguous:
            return "takes C-contiguous arrays, got a non-contiguous view"
        return None

    # float16 x, and UnitRows (cosine): the kernels that stream x read its
    # rows widened to float32 and divided by their norms (csrc/cpu/rows.h), bit
    # for bit the values of the prepared copy; the rows the drivers take out
    # (heads, centres) are made so here, once.
    def take(self, x, idx):
        if cpu_gemm.stored(x):
            return super().take(x, idx)
        idx = self.index(idx, x)
        rows = cpu_gemm.rows_of(_cpu, x, idx.reshape(-1))
        return rows[0] if idx.ndim == 0 else rows

    def step(self, x, mind, c):
        return _cpu.step(x, mind, int(c))

    def steps(self, x, mind, c, count):
        return _cpu.steps(x, mind, int(c), int(count))

    def block_min(self, x, y, *, rows=None, self_mask=False, packed=None):
        """``Backend.block_min``; ``packed``: ``(mu, panels, yn)`` of y for the fused GEMM, made
        before (``cpu_picks``: ``pack_panels(y, 0, len(y), mu)`` and the centred norms)."""
        y = _readable(y)  # centres (x itself when small: h_min's direct path)
        if rows is not None:
            rows = np.ascontiguousarray(rows, dtype=np.int64)
        n = len(x) if rows is None else len(rows)
        value = np.empty(n, self.acc_dtype(x.dtype))
        index = np.empty(n, np.int64)
        few = FEW_CENTRES[0] <= len(y) <= FEW_CENTRES[1] and not self_mask
        if few and self._few(x):
            cpu_gemm.block_min_few(_cpu, x, y, rows, value, index, packed)
        elif len(y) >= GEMM_MIN_CENTRES and x.shape[1] >= self._gemm_dim(x):
            cpu_gemm.block_min(_cpu, x, y, rows, self_mask, value, index, packed)
        else:
            _cpu.block_min(x, y, rows, self_mask, value, index)
        return value, index

    def _gemm_dim(self, x) -> int:
        """The smallest d at which the GEMM forms serve x."""
        return GEMM_MIN_DIM_F64 if self.acc_dtype(x.dtype) == np.float64 else GEMM_MIN_DIM

    @staticmethod
    def _few(x) -> bool:
        """Whether the one-pass kernels of a few centres (the fused GEMM) serve x."""
        return FEW_CENTRES[0] <= FEW_CENTRES[1] and x.shape[1] >= GEMM_MIN_DIM and cpu_gemm.fused(_cpu, x)

    def pick_rows(self, x):
        return cpu_picks.CpuPickRows(self, x, _cpu)

    def closest_rows(self, x, progress=None):
        if PAIRS_TREE_MIN_ROWS <= len(x) and self.bucket_reason(x) is None:
            # Low d: the bucket FPS's tree, where each row meets only the buckets
            # within the closest distance so far (csrc/cpu/bucket_pairs.cpp).
            value, nearest = _cpu.bucket_closest(_readable(x))  # d <= 8: a small copy
            rows = np.flatnonzero(value == value.min())
            return value[rows], nearest[rows], rows
        if len(x) < GEMM_MIN_CENTRES or x.shape[1] < self._gemm_dim(x):
            return super().closest_rows(x)
        return cpu_pair.closest_pair(_cpu, x, progress)

    def prune_lists(self, prev_rows, base, radius2, centers, margin):
        centers = _readable(centers)
        if not self._few(centers):
            # Its float64 GEMMs on BLAS threads would leave them spinning while
            # refresh's threads start: one side at a time.
            with _threads.blas_single_thread():
                return super().prune_lists(prev_rows, base, radius2, centers, margin)
        mu = centers.mean(axis=0, dtype=np.float64).astype(np.float32)
        cn = np.empty(len(centers), np.float32)
        panels = _cpu.pack_panels(centers, 0, len(centers), mu, cn)
        coef = cpu_gemm.gemm_coef(centers.shape[1], np.float32)
        parts = [_cpu.prune_lists(np.ascontiguousarray(prev_rows(lo, min(base, lo + LIST_CHUNK)), np.float32),
                                  mu, panels, cn, np.ascontiguousarray(radius2[lo:lo + LIST_CHUNK], np.float64),
                                  float(margin), coef)
                 for lo in range(0, base, LIST_CHUNK)]
        return csr(*zip(*parts)) if parts else super().prune_lists(prev_rows, base, radius2, centers, margin)

    def refresh(self, x, ub, owner, centers, base, ptr, cidx, cval, slack):
        centers = _readable(centers)
        few = cpu_gemm.few_bound(x.shape[1]) if self._few(x) else None
        return _cpu.refresh(x, ub, owner, centers, int(base), ptr, cidx, cval, float(slack), few)

    def threads(self):
        return _cpu.get_threads()

    def pair_sqdist(self, x, rows, y, cols):
        out = np.empty(len(rows), self.acc_dtype(x.dtype))
        _cpu.pair_sqdist(x, np.ascontiguousarray(rows, np.int64), _readable(y),
                         np.ascontiguousarray(cols, np.int64), out)
        return out

    def cell_radius(self, ub, owner, base):
        return _cpu.cell_radius(ub, owner, int(base))

    def bucket_reason(self, x):
        if not 1 <= x.shape[1] <= BUCKET_MAX_DIM:
            return f"the bucket FPS kernel takes 1 <= d <= {BUCKET_MAX_DIM}, got d = {x.shape[1]}"
        if len(x) >= 1 << 32:
            return f"the bucket FPS kernel takes fewer than 2^32 rows, got {len(x)}"
        return None

    bucket_floor = True

    def bucket_select(self, x, mind, seeds, k, floor=None):
        x = _readable(x)  # d <= 8: a small copy
        return _cpu.bucket_select(x, mind, np.ascontiguousarray(seeds, dtype=np.int64), int(k),
                                  floor=-np.inf if floor is None else float(floor))

    def head_greedy(self, xh, h, hidx, tau, tau_idx, budget):
        hidx = np.ascontiguousarray(hidx, dtype=np.int64)
        return _cpu.head_greedy(xh, h, hidx, float(tau), int(tau_idx), int(budget))

    def head_rows_tiled(self, x):
        if x.shape[1] < HEAD_TILED_MIN_DIM:
            return 0
        return cpu_head.max_rows(self.acc_dtype(x.dtype).itemsize)  # the head is a widened copy

    def head_greedy_tiled(self, xh, h, hidx, tau, tau_idx, budget, own):
        return cpu_head.head_greedy(_cpu, xh, h, hidx, tau, tau_idx, budget, own)

    def scratch(self):
        return cpu_head.Scratch()


def _readable(x):
    """x as an array of float32/float64 values, for the kernels that take no other (a copy
    unless it is one)."""
    return x if cpu_gemm.stored(x) else cpu_gemm.rows_of(_cpu, x, slice(None))
