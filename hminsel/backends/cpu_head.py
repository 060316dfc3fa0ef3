"""The CPU head loop on GEMM tiles: keep a large share of N at GEMM speed.

When k is a large share of N the lazy head holds most of the live rows, and
``head_greedy`` streams M x d values a pick (memory-bound). Here the head's
pairwise dot products are one BLAS call (``xc @ xc.T`` of the centred head
rows: NumPy runs it as a symmetric rank-k update, half the flops of a GEMM),
and the C++ loop (``csrc/cpu/head_gemm.cpp``) reads one row of M values a
pick. The GEMM-form value of a pair is within ``gemm_coef (n_i + n_p)`` of the
direct-form value (``cpu_gemm.gemm_coef``); a pick lowers ``h[i]`` only where
the GEMM value is below ``h[i]`` plus that bound, and only those rows get a
direct value, so ``h`` and the picks are bit for bit what streaming gives.

Memory: the (M, M) tile of the acc dtype; ``CpuBackend.head_rows_tiled`` caps
M so that it stays within ``HEAD_TILE_BYTES`` (256 MiB: M <= 8192 in float32,
5792 in float64), plus the (M, d) centred copy of the head rows.
"""
from __future__ import annotations

import numpy as np

from .cpu_gemm import gemm_coef

HEAD_TILE_BYTES = 256 << 20


def max_rows(itemsize: int) -> int:
    """The largest M whose (M, M) tile of ``itemsize``-byte values fits in HEAD_TILE_BYTES."""
    return int(np.sqrt(HEAD_TILE_BYTES / itemsize))


def head_greedy(cpu, xh, h, hidx, tau, tau_idx, budget, own):
    """``Backend.head_greedy_tiled`` on the CPU: ``(positions, values)``; h, own updated."""
    mu = xh.mean(axis=0, dtype=np.float64).astype(xh.dtype)
    xc = xh - mu
    norms = np.einsum("ij,ij->i", xc, xc)
    dots = xc @ xc.T  # (M, M): NumPy's syrk path for a @ a.T, the triangle mirrored
    del xc
    coef = gemm_coef(xh.shape[1], xh.dtype)
    pos, vals, _ = cpu.head_gemm(xh, dots, norms, coef, h, np.ascontiguousarray(hidx, np.int64),
                                 float(tau), int(tau_idx), int(budget), own)
    return pos, vals
