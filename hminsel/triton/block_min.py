"""Primitive 2 on the GPU: exact nearest row of ``y`` for rows of ``x``.

``gemm_kernel`` finds candidates: a program takes BLOCK_M rows
of x, sweeps all of y in BLOCK_N tiles with ``tl.dot`` over BLOCK_K chunks of
d (fp32 accumulation), and keeps per row the best and second-best GEMM-form
value ``|x|^2 + |y|^2 - 2 x.y`` (clamped at 0) and the best's column.
``certify_kernel`` makes the answer exact: with E the GEMM error bound of the
row, ``second - best > 2E`` proves the candidate is the unique direct-form
argmin, so only its one direct value is computed; otherwise the row is settled
by its candidate window (``window``), or redone in the direct form against
every column when the window is too wide. Direct values come from the same
tile as ``step`` (``direct.sqdist_tile``), so they match it bit for bit.
"""
from __future__ import annotations

import numpy as np
import torch
import triton
import triton.language as tl

from .direct import EXACT_SUMS, blocks, sqdist_tile
from .split import column_splits, merge_best_second, merge_min

GEMM_MIN_CENTRES = 64  # fewer centres: the direct form alone is cheaper
GEMM_MIN_DIM = 16
BLOCK_M, BLOCK_N, BLOCK_K = 64, 64, 32  # tensor-core friendly; GPU tuning pending
NORM_CHUNK = 1 << 16  # rows per chunk of the squared-norm pass (bounds its temporaries)
# Launch options of the GEMM-form kernels (gemm, window, tri, lower): fused multiply-adds, as
# their error coefficients allow. Named, not left to Triton's default: 3.9 warns on every
# kernel that leaves it, and 3.10 turns it off. (Direct-form kernels: ``direct.EXACT_SUMS``.)
GEMM_FUSION = {"enable_fp_fusion": True}


def gemm_warps(center: bool) -> int:
    """Warps of a GEMM-tile program: fp32 centring in registers spilled at 4 (ptxas, sm_90)."""
    return 8 if center else 4


@triton.jit
def gemm_tile(x_ptr, ids, mmask, xn, y_ptr, cols, cmask, yn_ptr, mu_ptr, D, stride_x, stride_y,
              SELF_MASK: tl.constexpr, CENTER: tl.constexpr, PRECISION: tl.constexpr,
              BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """GEMM-form values ``max(xn + yn - 2 x.y, 0)`` of rows ``x[ids]`` against rows ``y[cols]``.

    [BLOCK_M, BLOCK_N] fp32, +inf where a column is masked out (or is the row
    itself with SELF_MASK). fp16/bf16 feed ``tl.dot`` as stored (exact
    products, fp32 sums); fp32 is centred on ``mu`` in registers, then
    multiplied at PRECISION ("ieee" or "tf32").
    """
    acc = tl.zeros([BLOCK_M, BLOCK_N], tl.float32)
    for k0 in range(0, D, BLOCK_K):
        offs_k = k0 + tl.arange(0, BLOCK_K).to(tl.int64)
        kmask = offs_k < D
        a = tl.load(x_ptr + ids[:, None] * stride_x + offs_k[None, :],
                    mask=mmask[:, None] & kmask[None, :], other=0.0)  # [BLOCK_M, BLOCK_K]
        b = tl.load(y_ptr + cols[None, :] * stride_y + offs_k[:, None],
                    mask=kmask[:, None] & cmask[None, :], other=0.0)  # [BLOCK_K, BLOCK_N]
        if CENTER:
            mu = tl.load(mu_ptr + offs_k, mask=kmask, other=0.0)
            a = tl.where(kmask[None, :], a - mu[None, :], 0.0)
            b = tl.where(kmask[:, None], b - mu[:, None], 0.0)
            acc = tl.dot(a, b, acc, input_precision=PRECISION)
        else:  # fp16/bf16 products are exact in fp32: no input_precision to choose
            tl.static_assert(a.dtype == b.dtype, "block_min: x and y must share a 16-bit dtype")
            acc = tl.dot(a, b, acc)
    yn = tl.load(yn_ptr + cols, mask=cmask, other=0.0)
    dist = tl.maximum(xn[:, None] + yn[None, :] - 2.0 * acc, 0.0)  # [BLOCK_M, BLOCK_N]
    drop = ~cmask[None, :]
    if SELF_MASK:
        drop = drop | (cols[None, :] == ids[:, None])
    return tl.where(drop, float("inf"), dist)


@triton.jit(do_not_specialize=["n", "m", "SPAN"])
def gemm_kernel(x_ptr, rows_ptr, y_ptr, mu_ptr, xn_ptr, yn_ptr, best_ptr, second_ptr, bidx_ptr,
                n, m, D, stride_x, stride_y, SPAN, SELF_MASK: tl.constexpr, CENTER: tl.constexpr,
                PRECISION: tl.constexpr, BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr,
                BLOCK_K: tl.constexpr):
    """GEMM-form best/second/argmin of BLOCK_M rows ``x[rows]`` against rows of y.

    Program (r, s) takes rows block r and columns [s SPAN, (s + 1) SPAN) of
    the m (SPAN a multiple of BLOCK_N; ``split``) and writes slot s of the
    (splits, n) outputs.

    x, y row-major with strides ``stride_x``/``stride_y``; rows (n,) int64;
    xn (n,), yn (m,) fp32 squared norms (of rows minus ``mu`` when CENTER);
    operands as in ``gemm_tile``. BLOCK_M x BLOCK_N accumulators: 64 x 64
    fp32 is 32 registers a thread at 4 warps, leaving room for two pipelined
    operand stages.
    """
    pid = tl.program_id(0).to(tl.int64)
    j_lo = tl.program_id(1).to(tl.int64) * SPAN
    offs_m = pid * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)
    mmask = offs_m < n
    ids = tl.load(rows_ptr + offs_m, mask=mmask, other=0)
    xn = tl.load(xn_ptr + offs_m, mask=mmask, other=0.0)
    best = tl.full([BLOCK_M], float("inf"), tl.float32)
    second = tl.full([BLOCK_M], float("inf"), tl.float32)
    bidx = tl.zeros([BLOCK_M], tl.int64)
    for j0 in range(j_lo, tl.minimum(j_lo + SPAN, m), BLOCK_N):
        cols = j0 + tl.arange(0, BLOCK_N).to(tl.int64)
        cmask = cols < m
        dist = gemm_tile(x_ptr, ids, mmask, xn, y_ptr, cols, cmask, yn_ptr, mu_ptr, D, stride_x,
                         stride_y, SELF_MASK, CENTER, PRECISION, BLOCK_M, BLOCK_N, BLOCK_K)
        m1 = tl.min(dist, axis=1)
        a1 = tl.min(tl.where(dist == m1[:, None], cols[None, :], m), axis=1)  # lowest column
        m2 = tl.min(tl.where(cols[None, :] == a1[:, None], float("inf"), dist), axis=1)
        second = tl.minimum(tl.minimum(second, m2), tl.maximum(best, m1))
        bidx = tl.where(m1 < best, a1, bidx)  # strict: earlier tiles keep ties
        best = tl.minimum(best, m1)
    out = tl.program_id(1).to(tl.int64) * n + offs_m
    tl.store(best_ptr + out, best, mask=mmask)
    tl.store(second_ptr + out, second, mask=mmask)
    tl.store(bidx_ptr + out, bidx, mask=mmask)


@triton.jit(do_not_specialize=["n", "m", "SPAN"])
def direct_kernel(x_ptr, rows_ptr, y_ptr, value_ptr, index_ptr, n, m, D, stride_x, stride_y, SPAN,
                  SELF_MASK: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    """Direct-form min/argmin of BLOCK_N rows ``x[rows]`` over rows of y, one at a time.

    Program (r, s) takes rows block r against rows [s SPAN, (s + 1) SPAN) of
    y and writes slot s of the (splits, n) outputs (``split``). The tile is
    ``step``'s (rows of x against one center row), so every value equals the
    one a streaming step computes; strict ``<`` keeps the lowest j.
    """
    pid = tl.program_id(0).to(tl.int64)
    j_lo = tl.program_id(1).to(tl.int64) * SPAN
    offs = pid * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64)
    rmask = offs < n
    ids = tl.load(rows_ptr + offs, mask=rmask, other=0)
    best = tl.full([BLOCK_N], float("inf"), tl.float32)
    bidx = tl.zeros([BLOCK_N], tl.int64)
    for j in range(j_lo, tl.minimum(j_lo + SPAN, m)):
        yrow = y_ptr + (tl.zeros((), tl.int64) + j) * stride_y  # int64: j * stride_y passes 2^31
        dist = sqdist_tile(x_ptr, ids, rmask, yrow, D, stride_x, BLOCK_N, BLOCK_D)
        if SELF_MASK:
            dist = tl.where(ids == j, float("inf"), dist)
        bidx = tl.where(dist < best, j, bidx)
        best = tl.minimum(best, dist)
    out = tl.program_id(1).to(tl.int64) * n + offs
    tl.store(value_ptr + out, best, mask=rmask)
    tl.store(index_ptr + out, bidx, mask=rmask)


@triton.jit(do_not_specialize=["n"])
def certify_kernel(x_ptr, rows_ptr, y_ptr, best_ptr, second_ptr, bidx_ptr, xn_ptr, yn_max_ptr,
                   coef, value_ptr, index_ptr, sure_ptr, n, D, stride_x, stride_y,
                   BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    """Certify GEMM candidates of BLOCK_N rows; write the direct value of each certified one.

    Row i is certified when ``second - best > 2 coef (xn_i + max yn)``: every
    other column's direct value then exceeds the candidate's. The value is
    ``step``'s tile with a gathered center per row (same shape, same sums).
    """
    pid = tl.program_id(0).to(tl.int64)
    offs = pid * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64)
    rmask = offs < n
    ids = tl.load(rows_ptr + offs, mask=rmask, other=0)
    best = tl.load(best_ptr + offs, mask=rmask, other=0.0)
    gap = tl.load(second_ptr + offs, mask=rmask, other=0.0) - best
    bound = 2.0 * coef * (tl.load(xn_ptr + offs, mask=rmask, other=0.0) + tl.load(yn_max_ptr))
    cand = tl.load(bidx_ptr + offs, mask=rmask, other=0)
    sure = (gap > bound) & rmask
    acc = tl.zeros([BLOCK_N], dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        offs_d = d0 + tl.arange(0, BLOCK_D).to(tl.int64)
        lmask = sure[:, None] & (offs_d < D)[None, :]
        c = tl.load(y_ptr + cand[:, None] * stride_y + offs_d[None, :], mask=lmask,
                    other=0.0).to(tl.float32)
        xt = tl.load(x_ptr + ids[:, None] * stride_x + offs_d[None, :], mask=lmask,
                     other=0.0).to(tl.float32)
        diff = xt - c  # [BLOCK_N, BLOCK_D]
        acc += tl.sum(diff * diff, axis=1)
    tl.store(value_ptr + offs, acc, mask=sure)
    tl.store(index_ptr + offs, cand, mask=sure)
    tl.store(sure_ptr + offs, sure.to(tl.int8), mask=rmask)


def _sqnorms(a, ids, mu):
    """fp32 squared norms of ``a[ids] - mu`` (``mu`` None: uncentred), in row chunks."""
    out = torch.empty(len(ids), dtype=torch.float32, device=a.device)
    for lo in range(0, len(ids), NORM_CHUNK):
        part = a[ids[lo:lo + NORM_CHUNK]].float()
        if mu is not None:
            part -= mu
        out[lo:lo + NORM_CHUNK] = (part * part).sum(1)
    return out


def gemm_coef(d: int, tf32: bool) -> float:
    """The CPU backend's bound (``cpu_gemm.gemm_coef``) for fp32 sums, plus TF32's operand rounding."""
    coef = 4.0 * (d + 8) * float(np.finfo(np.float32).eps)
    return coef + (8.0 * 2.0 ** -11 if tf32 else 0.0)  # TF32 truncates operands: 2^-10 each


def _direct(x, y, ids, self_mask, value, index):
    n, (m, d) = len(ids), y.shape
    block_n, block_d, warps = blocks(d)
    splits, span = column_splits(triton.cdiv(n, block_n), m, 1, x.device)
    vals, idxs = value, index
    if splits > 1:  # (splits, n) partial minima, merged below
        vals, idxs = value.new_empty(splits * n), index.new_empty(splits * n)
    direct_kernel[(triton.cdiv(n, block_n), splits)](
        x, ids, y, vals, idxs, n, m, d, x.stride(0), y.stride(0), span, SELF_MASK=self_mask,
        BLOCK_N=block_n, BLOCK_D=block_d, num_warps=warps, **EXACT_SUMS)
    if splits > 1:
        v, i = merge_min(vals, idxs, splits)
        value.copy_(v)
        index.copy_(i)


def block_min(x, y, ids, self_mask: bool, tf32: bool = False):
    """``(value fp32, index int64)`` tensors on x's device for rows ``ids`` (int64 tensor) of x.

    One host sync on the GEMM path (the count of rows to redo in the direct form).
    """
    n, (m, d) = len(ids), y.shape
    value = torch.empty(n, dtype=torch.float32, device=x.device)
    index = torch.empty(n, dtype=torch.int64, device=x.device)
    if n == 0:
        return value, index
    if m < GEMM_MIN_CENTRES or d < GEMM_MIN_DIM:
        _direct(x, y, ids, self_mask, value, index)
        return value, index
    center = x.dtype == torch.float32
    mu = y.float().mean(0) if center else None  # centring shrinks E for offset data
    xn, yn = _sqnorms(x, ids, mu), _sqnorms(y, torch.arange(m, device=y.device), mu)
    splits, span = column_splits(triton.cdiv(n, BLOCK_M), m, BLOCK_N, x.device)
    best, second = xn.new_empty(splits * n), xn.new_empty(splits * n)
    bidx = torch.empty(splits * n, dtype=torch.int64, device=x.device)
    gemm_kernel[(triton.cdiv(n, BLOCK_M), splits)](
        x, ids, y, mu if center else xn, xn, yn, best, second, bidx, n, m, d,
        x.stride(0), y.stride(0), span, SELF_MASK=self_mask, CENTER=center,
        PRECISION="tf32" if tf32 else "ieee", BLOCK_M=BLOCK_M, BLOCK_N=BLOCK_N,
        BLOCK_K=BLOCK_K, num_warps=gemm_warps(center), **GEMM_FUSION)
    best, second, bidx = merge_best_second(best, second, bidx, splits)
    sure = torch.empty(n, dtype=torch.int8, device=x.device)
    block_n, block_d, warps = blocks(d)
    certify_kernel[(triton.cdiv(n, block_n),)](
        x, ids, y, best, second, bidx, xn, yn.max().reshape(1), gemm_coef(d, tf32), value, index,
        sure, n, d, x.stride(0), y.stride(0), BLOCK_N=block_n, BLOCK_D=block_d, num_warps=warps,
        **EXACT_SUMS)
    redo = torch.nonzero(sure == 0).flatten()
    if len(redo):  # not certified: a candidate window, then the direct form where it overflows
        from .window import pair_values, settle
        rid, cand = ids[redo], bidx[redo]
        v = pair_values(x, rid, y, cand)
        thresh = v.double() + gemm_coef(d, tf32) * (xn[redo].double() + yn.max().double())
        over = settle(x, y, rid, mu, xn[redo].contiguous(), yn, thresh, self_mask, tf32, v, cand)
        if len(over):
            ov, oi = torch.empty(len(over), dtype=torch.float32, device=x.device), torch.empty_like(over)
            _direct(x, y, rid[over], self_mask, ov, oi)
            v[over], cand[over] = ov, oi
        value[redo], index[redo] = v, cand
    return value, index
