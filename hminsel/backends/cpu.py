"""The C++ CPU backend: OpenMP kernels in ``csrc/cpu`` behind pybind11.

Distances are the direct form ``sum((a - b) ** 2)`` accumulated in float32 for
float32 input and float64 for float64 input, by one C++ function
(``csrc/cpu/common.h: sqdist_k``) with a fixed summation order, so ``step``,
``steps``, ``block_min`` and ``head_greedy`` agree bit for bit.

``block_min`` with many centres finds candidates in the GEMM form (NumPy's
BLAS on row tiles of centred data) and certifies them against a rigorous error
bound; uncertified rows are re-done in the direct form (see ``_gemm_coef``).
"""
from __future__ import annotations

import numpy as np

from .base import Backend

try:  # the compiled part is optional: importing hminsel never needs it
    from hminsel import _cpu
    _IMPORT_ERROR = None
except ImportError as exc:
    _cpu = None
    _IMPORT_ERROR = str(exc)

# block_min takes the GEMM path from this many centres and dimensions on
# (measured on a 2-core AVX-512 machine, benchmarks/bench_step.py --block-min).
GEMM_MIN_CENTRES = 64
GEMM_MIN_DIM = 32
GEMM_ROWS = 1024   # x rows per GEMM tile
GEMM_COLS = 4096   # y rows per GEMM tile: a tile is at most 16 MiB of float32


def _gemm_coef(d: int, dtype) -> float:
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
    eps = float(np.finfo(dtype).eps)  # 2 u
    return 4.0 * (d + 8) * eps


def _sqnorms(a):
    """Squared norms of the rows of ``a`` (n, d), in a's dtype."""
    return np.einsum("ij,ij->i", a, a)


class CpuBackend(Backend):
    name = "cpu"

    def unavailable_reason(self):
        if _cpu is None:
            return f"the C++ extension hminsel._cpu is not built ({_IMPORT_ERROR}); reinstall with a C++ compiler and pybind11"
        return None

    def unsupported_reason(self, x):
        reason = super().unsupported_reason(x)
        if reason is not None:
            return reason
        if x.dtype not in (np.float32, np.float64):
            return f"takes float32 or float64 arrays, got {x.dtype}"
        if not x.flags.c_contiguous:
            return "takes C-contiguous arrays, got a non-contiguous view"
        return None

    def step(self, x, mind, c):
        return _cpu.step(x, mind, int(c))

    def steps(self, x, mind, c, count):
        return _cpu.steps(x, mind, int(c), int(count))

    def block_min(self, x, y, *, rows=None, self_mask=False):
        if rows is not None:
            rows = np.ascontiguousarray(rows, dtype=np.int64)
        n = len(x) if rows is None else len(rows)
        value = np.empty(n, self.acc_dtype(x.dtype))
        index = np.empty(n, np.int64)
        if len(y) >= GEMM_MIN_CENTRES and x.shape[1] >= GEMM_MIN_DIM:
            self._block_min_gemm(x, y, rows, self_mask, value, index)
        else:
            _cpu.block_min(x, y, rows, self_mask, value, index)
        return value, index

    def _block_min_gemm(self, x, y, rows, self_mask, value, index):
        """GEMM-form candidates on centred tiles, then certify or redo in C++.

        The tile loop alternates BLAS and a serial C++ scan; the parallel
        certify/redo pass runs once at the end (OpenMP right after each BLAS
        call would fight BLAS's spinning threads for the cores).
        """
        mu = y.mean(axis=0, dtype=np.float64).astype(y.dtype)
        tiles = [slice(col, col + GEMM_COLS) for col in range(0, len(y), GEMM_COLS)]
        # Centred tiles of y are re-made per row tile (O(m d) against the GEMM's
        # O(GEMM_ROWS m d)) so that block_min(x, x) never holds a copy of x.
        yn = np.concatenate([_sqnorms(y[t] - mu) for t in tiles])    # (m,)
        ids = np.arange(len(x), dtype=np.int64) if rows is None else rows
        n = len(ids)
        xn = np.empty(n, x.dtype)                           # |x_i - mu|^2
        best = np.full(n, np.inf, x.dtype)
        second = np.full(n, np.inf, x.dtype)
        bidx = np.full(n, -1, np.int64)
        for lo in range(0, n, GEMM_ROWS):
            part = slice(lo, lo + GEMM_ROWS)
            xc = x[ids[part]] - mu                          # (nb, d)
            xn[part] = _sqnorms(xc)
            for t in tiles:
                g = xc @ (y[t] - mu).T                      # (nb, mb)
                _cpu.gemm_scan(g, xn[part], yn, t.start, ids[part], self_mask,
                               best[part], second[part], bidx[part])
        coef = _gemm_coef(x.shape[1], x.dtype)
        return _cpu.gemm_finish(x, ids, y, self_mask, best, second, bidx, xn,
                                float(yn.max()), coef, value, index)

    def refresh(self, x, ub, owner, centers, base, ptr, cidx, cval, slack):
        return _cpu.refresh(x, ub, owner, centers, int(base), ptr, cidx, cval, float(slack))

    def cell_radius(self, ub, owner, base):
        return _cpu.cell_radius(ub, owner, int(base))

    def head_greedy(self, xh, h, hidx, tau, tau_idx, budget):
        hidx = np.ascontiguousarray(hidx, dtype=np.int64)
        return _cpu.head_greedy(xh, h, hidx, float(tau), int(tau_idx), int(budget))
