"""Candidate windows: the exact nearest of rows whose GEMM candidate was not certified.

With ``|G_ij - D_ij| <= eps_i`` (``block_min.gemm_coef``), any column j whose
direct value can reach the candidate's, ``D_ib``, has ``G_ij <= D_ib + eps_i``.
``window_kernel`` re-runs the GEMM tiles of those rows and lists, per row, the
columns inside that window (up to ``WINDOW`` of them, counted exactly); the
direct values of the listed pairs come from ``certify_kernel``'s tile (the
values ``step`` computes), and the smallest wins, then the lowest column. A row
whose window overflows its list is redone in the direct form over every
column. On clustered embeddings, where the nearest and second-nearest centres
are closer than eps, this replaces N x m direct work by a second GEMM pass.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .block_min import (BLOCK_K, BLOCK_M, BLOCK_N, GEMM_FUSION, certify_kernel, gemm_tile,
                        gemm_warps)
from .direct import EXACT_SUMS, blocks
from .split import column_splits

WINDOW = 16  # columns listed a row


def block_k(center: bool) -> int:
    """BLOCK_K of a window program: fp32 centring at block_min's 32 spilled 8 bytes under
    triton 3.6 (sm_90, the JIT's aligned specialisation; 8 warps); at 16 it spills none."""
    return 16 if center else BLOCK_K


@triton.jit(do_not_specialize=["n", "m", "SPAN"])
def window_kernel(x_ptr, rows_ptr, y_ptr, mu_ptr, xn_ptr, yn_ptr, thresh_ptr, cand_ptr, count_ptr,
                  n, m, D, stride_x, stride_y, SPAN, SELF_MASK: tl.constexpr, CENTER: tl.constexpr,
                  PRECISION: tl.constexpr, WINDOW: tl.constexpr, BLOCK_M: tl.constexpr,
                  BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """Columns j with GEMM value <= thresh[p] for BLOCK_M rows p of ``x[rows]`` (as gemm_kernel).

    Program (r, s) sweeps columns [s SPAN, (s + 1) SPAN) and writes
    cand[s, p, :min(count, WINDOW)] in increasing column order and count[s, p],
    its part of the window's true size. One program owns its (split, rows), so
    the list positions come from a running count and a prefix sum, no atomics.
    """
    pid = tl.program_id(0).to(tl.int64)
    j_lo = tl.program_id(1).to(tl.int64) * SPAN
    offs_m = pid * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)
    mmask = offs_m < n
    ids = tl.load(rows_ptr + offs_m, mask=mmask, other=0)
    xn = tl.load(xn_ptr + offs_m, mask=mmask, other=0.0)
    thresh = tl.load(thresh_ptr + offs_m, mask=mmask, other=-1.0)
    out = tl.program_id(1).to(tl.int64) * n + offs_m  # [BLOCK_M] slots of this split
    count = tl.zeros([BLOCK_M], tl.int32)
    for j0 in range(j_lo, tl.minimum(j_lo + SPAN, m), BLOCK_N):
        cols = j0 + tl.arange(0, BLOCK_N).to(tl.int64)
        cmask = cols < m
        dist = gemm_tile(x_ptr, ids, mmask, xn, y_ptr, cols, cmask, yn_ptr, mu_ptr, D, stride_x,
                         stride_y, SELF_MASK, CENTER, PRECISION, BLOCK_M, BLOCK_N, BLOCK_K)
        hit = (dist <= thresh[:, None]) & (dist < float("inf")) & mmask[:, None]  # [BLOCK_M, BLOCK_N]
        slot = count[:, None] + tl.cumsum(hit.to(tl.int32), axis=1) - 1
        tl.store(cand_ptr + out[:, None] * WINDOW + slot, cols[None, :],
                 mask=hit & (slot < WINDOW))
        count += tl.sum(hit.to(tl.int32), axis=1)
    tl.store(count_ptr + out, count, mask=mmask)


def settle(x, y, ids, mu, xn, yn, thresh, self_mask: bool, tf32: bool, value, index):
    """Exact nearest for rows ``x[ids]`` from their windows; returns the rows that overflowed.

    ``thresh`` (n,) float64: the candidate's direct value plus eps. ``value`` /
    ``index`` hold each row's candidate (always inside its own window) and are
    updated in place for the rows settled here.
    """
    n, (m, d) = len(ids), y.shape
    up = thresh.float()
    up = torch.where(up.double() < thresh, torch.nextafter(up, torch.full_like(up, float("inf"))), up)
    splits, span = column_splits(triton.cdiv(n, BLOCK_M), m, BLOCK_N, x.device)
    cand = torch.full((splits, n, WINDOW), -1, dtype=torch.int64, device=x.device)
    count = torch.zeros((splits, n), dtype=torch.int32, device=x.device)
    window_kernel[(triton.cdiv(n, BLOCK_M), splits)](
        x, ids, y, mu if mu is not None else xn, xn, yn, up, cand, count, n, m, d, x.stride(0),
        y.stride(0), span, SELF_MASK=self_mask, CENTER=mu is not None,
        PRECISION="tf32" if tf32 else "ieee", WINDOW=WINDOW, BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N,
        BLOCK_K=block_k(mu is not None), num_warps=gemm_warps(mu is not None),
        **GEMM_FUSION)
    fits = count.sum(0) <= WINDOW  # the window's true size, over every split
    slot = torch.arange(WINDOW, device=x.device)
    pair = fits[None, :, None] & (slot[None, None, :] < count[:, :, None].long())  # [splits, n, WINDOW]
    psplit, prow, pcol = torch.nonzero(pair, as_tuple=True)
    if len(prow):
        cols = cand[psplit, prow, pcol]
        dist = pair_values(x, ids[prow], y, cols)
        keys = (dist.view(torch.int32).to(torch.int64) << 32) | cols
        best = (value.view(torch.int32).to(torch.int64) << 32) | index  # the candidate itself
        best.scatter_reduce_(0, prow, keys, "amin")  # smallest value, then the lowest column
        done = torch.unique(prow)
        value[done] = (best[done] >> 32).to(torch.int32).view(torch.float32)
        index[done] = best[done] & 0xFFFFFFFF
    return torch.nonzero(~fits).flatten()


def pair_values(x, rows, y, cols):
    """Direct-form values of the pairs (x[rows], y[cols]): ``certify_kernel``'s tile, all sure."""
    n, d = len(rows), x.shape[1]
    value = torch.empty(n, dtype=torch.float32, device=x.device)
    index = torch.empty(n, dtype=torch.int64, device=x.device)
    sure = torch.empty(n, dtype=torch.int8, device=x.device)
    zero = torch.zeros(n, dtype=torch.float32, device=x.device)
    inf = torch.full((n,), float("inf"), device=x.device)
    block_n, block_d, warps = blocks(d)
    certify_kernel[(triton.cdiv(n, block_n),)](
        x, rows, y, zero, inf, cols, zero, zero[:1], 0.0, value, index, sure, n, d, x.stride(0),
        y.stride(0), BLOCK_N=block_n, BLOCK_D=block_d, num_warps=warps, **EXACT_SUMS)
    return value
