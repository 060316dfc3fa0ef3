"""Primitive 3 on GEMM tiles: the lazy head loop in one launch for many picks (k a large share of N).

When k is a large share of N (keep half of a pool) the lazy head holds most of
the live rows, and ``head.py`` reads the whole head (M x d) in one launch a
pick. Here a round costs two launches:

1. ``lower_kernel``: the head's pairwise lower bounds ``L = G - coef (n_i + n_j)``
   with ``G = max(n_i + n_j - 2 x_i.x_j, 0)`` the GEMM form on tensor cores
   (``block_min.gemm_tile``, one program a tile pair on or above the diagonal,
   mirrored), so a pick reads one row of M values instead of M x d. ``L[p, i]
   >= h_i`` proves that pick p cannot lower h_i (``head_coef`` below).
2. ``pick_loop_kernel``: ONE program (8 warps) loops over the picks. A pick is
   one pass over the M rows (its row of L and h: 8 bytes a row): rows that
   the bound settles keep their value and feed a running per-lane argmax;
   rows it cannot settle go to a list (a masked atomic counter gives their
   slots) and get their direct value from ``direct.sqdist_tile`` with
   ``step``'s block shape and warp count, so h stays bit for bit what the
   streaming step computes. The best key (lowest position on ties; the head
   is sorted by global index so positions order ties like global indices)
   must beat ``tau`` as in ``head.py``'s gate, else the loop stops.

Why one program: a pick depends on the previous pick's argmax over every
row, so many programs would need a grid-wide barrier a pick. A spin barrier
on global flags deadlocks whenever the programs are not all resident
(another kernel on the device, a MIG slice, an MPS share), unless the launch
is cooperative (Triton 3.6 takes ``launch_cooperative_grid=True``: the launch
then fails rather than run part of the grid; untried here, as is whether a
grid barrier a pick beats one program's pass). One program needs only ``tl.debug_barrier`` (a CTA
barrier, two a pick at most), and its pick costs M x 8 bytes from L2/HBM
(STAGES chunks in flight) plus two block reductions, against a launch that
re-reads M x d a pick in ``head.py`` (an estimate: neither has run on a GPU
yet). The GEMM and the loop are queued back to back; the host reads the pick
count once a round.
The direct tile keeps ``step``'s layout, so its sums are step's: checked on
the compiled kernels (tests/test_triton_compile.py, ``direct-layout`` cases).

Exactness (``head_coef``), u = 2^-24, S = n_i + n_j of the rows the GEMM
sees (centred fp32, or raw fp16/bf16), first-order bounds as in
``cpu_gemm.gemm_coef``: the doubled dot product on tensor cores with fp32
accumulation that may truncate (taken as 2u an add: measured tensor cores
align to the largest term and truncate, Fasi et al. 2021) errs by
<= 2 d u S; the fp32 norms (any order) <= 2 d u S; forming G and clamping,
then L, <= 12 u S; the centring's rounding (fp32 only) <= 4 u S; the direct
form the streaming step computes <= 2 (d + 8) u S. Sum (6 d + 32) u S <=
8 (d + 8) u S = ``4 (d + 8) eps``, the coefficient used for fp16/bf16 and for
fp32 at "ieee". fp32 inputs go through 3xTF32 (``tf32x3``: near-fp32 on
tensor cores): three products a term (3 d adds, 6 d u S) and the split's
residual (<= 2^-20 a product, 2^-20 S on the doubled dot): coefficient
``6 (d + 8) eps + 2^-19``. With the backend's ``tf32`` switch plain TF32
(operands rounded to 11 bits): block_min's ``8 * 2^-11`` on top. torch's
matmul is not used: its TF32 and reduced-precision switches are global
state that a caller may flip, and fp16 inputs would come back in fp16.

Memory: the (M, M) fp32 bounds; ``max_rows`` caps M so that they stay within
``TILE_BYTES`` (1/8 of the device's memory, at most 2 GiB: M <= 23170).
"""
from __future__ import annotations

import numpy as np
import torch
import triton
import triton.language as tl

from ..keys import head_result, tau_key
from .block_min import BLOCK_K, BLOCK_M, GEMM_FUSION, _sqnorms, gemm_tile, gemm_warps
from .direct import EXACT_SUMS, blocks, sqdist_tile
from .head import by_index
from .keys import gate_key, pack, unpack_index

TILE_BYTES = 2 << 30  # the (M, M) fp32 bounds, at most (also <= 1/8 of the device's memory)
BLOCK = 2048  # head rows a chunk of a pick's pass: 8 a thread at 8 warps
STAGES = 3  # chunks of a pass in flight (cp.async prefetch): one program must hide HBM latency alone


def max_rows(device) -> int:
    """The largest head whose (M, M) fp32 bounds fit in TILE_BYTES (and 1/8 of the device)."""
    limit = TILE_BYTES
    device = torch.device(device)
    if device.type == "cuda":
        limit = min(limit, torch.cuda.get_device_properties(device).total_memory // 8)
    return int(np.sqrt(limit / 4))


def head_coef(d: int, precision: str) -> float:
    """``coef``: |GEMM form - direct form| + the rounding of L <= coef (n_i + n_j) (module docstring)."""
    eps = float(np.finfo(np.float32).eps)
    if precision == "tf32x3":
        return 6.0 * (d + 8) * eps + 2.0 ** -19
    coef = 4.0 * (d + 8) * eps
    return coef + (8.0 * 2.0 ** -11 if precision == "tf32" else 0.0)


@triton.jit(do_not_specialize=["M"])
def lower_kernel(x_ptr, mu_ptr, n_ptr, pairs_ptr, low_ptr, coef, M, D, stride_x,
                 CENTER: tl.constexpr, PRECISION: tl.constexpr, BLOCK_M: tl.constexpr,
                 BLOCK_K: tl.constexpr):
    """L[i, j] = G[i, j] - coef (n_i + n_j) of one tile pair (bi <= bj), written at (i, j) and (j, i).

    x (M, D) head rows ``stride_x`` apart; n (M,) fp32 squared norms (of the
    rows minus ``mu`` when CENTER); pairs (P, 2) int32 tile pairs on or above
    the diagonal; low (M, M) fp32. The tile is ``block_min.gemm_tile`` (fp32
    centred in registers at PRECISION; fp16/bf16 as stored) with its block
    shape and warps. A diagonal tile is written once (no mirrored copy).
    """
    pid = tl.program_id(0).to(tl.int64)
    bi = tl.load(pairs_ptr + 2 * pid).to(tl.int64)
    bj = tl.load(pairs_ptr + 2 * pid + 1).to(tl.int64)
    ri = bi * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)
    rj = bj * BLOCK_M + tl.arange(0, BLOCK_M).to(tl.int64)
    imask, jmask = ri < M, rj < M
    ni = tl.load(n_ptr + ri, mask=imask, other=0.0)
    g = gemm_tile(x_ptr, ri, imask, ni, x_ptr, rj, jmask, n_ptr, mu_ptr, D, stride_x, stride_x,
                  False, CENTER, PRECISION, BLOCK_M, BLOCK_M, BLOCK_K)  # [BLOCK_M, BLOCK_M]
    nj = tl.load(n_ptr + rj, mask=jmask, other=0.0)
    low = g - coef * (ni[:, None] + nj[None, :])
    both = imask[:, None] & jmask[None, :]
    tl.store(low_ptr + ri[:, None] * M + rj[None, :], low, mask=both)
    mirror = ri < tl.where(bi != bj, M, 0)  # (a scalar & block mask trips the interpreter)
    tl.store(low_ptr + rj[:, None] * M + ri[None, :], tl.trans(low),
             mask=jmask[:, None] & mirror[None, :])


@triton.jit(do_not_specialize=["TAU_KEY", "budget", "M"])
def pick_loop_kernel(xh_ptr, low_ptr, h_ptr, hidx_ptr, own_ptr, list_ptr, keys_ptr, count_ptr,
                     TAU_KEY, budget, M, D, stride_x, BLOCK: tl.constexpr,
                     STAGES: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    """Up to ``budget`` head picks in one program: keys[t] the key of pick t, count[0] how many.

    xh (M, D) head rows sorted by global index, ``stride_x`` apart; low (M, M)
    fp32 from ``lower_kernel``; h (M,) fp32 (-1 = MARK) and own (M,) int64
    updated in place; hidx (M,) int64 global indices (sorted); list (M,)
    int64 scratch: a pick's rows that need a direct value, in row order (a
    running count and a scan of each chunk place them: no atomic, whose
    returned value would cost an L2 round trip a chunk).
    TAU_KEY as in ``head.head_step_kernel``. BLOCK rows a chunk of the pass,
    STAGES chunks of it in flight (about 245 registers a thread at 2048 x 3,
    no spills: one program, so occupancy does not matter); BLOCK_N x BLOCK_D
    the direct tile of ``blocks(D)``, with its warps (step's sums).
    """
    offs = tl.arange(0, BLOCK).to(tl.int64)
    lanes = tl.zeros([BLOCK], tl.int64)
    for i0 in range(0, M, BLOCK):  # the first candidate
        rows = i0 + offs
        hv = tl.load(h_ptr + rows, mask=rows < M, other=-1.0)
        lanes = tl.maximum(lanes, pack(hv, rows))
    best = tl.max(lanes, axis=0)
    count = tl.zeros((), tl.int32)
    c = tl.where(best != 0, unpack_index(best), 0)
    gkey = ((best >> 32) << 32) | (0xFFFFFFFF - tl.load(hidx_ptr + c))  # same value, global index
    go = (best != 0) & (gkey > TAU_KEY) & (count < budget)
    while go:
        tl.debug_barrier()  # every thread's h/list writes of the last pick, before this pass reads
        p = unpack_index(best)
        tl.store(keys_ptr + count, best)
        lrow = low_ptr + p * M
        lanes = tl.zeros([BLOCK], tl.int64)
        n_list = tl.zeros((), tl.int32)
        for i0 in tl.range(0, M, BLOCK, num_stages=STAGES):  # settle by the bound; the rest to the list
            rows = i0 + offs
            rmask = rows < M
            hv = tl.load(h_ptr + rows, mask=rmask, other=-1.0)
            tl.store(h_ptr + rows, tl.full([BLOCK], -1.0, tl.float32), mask=rows == p)
            hv = tl.where(rows == p, -1.0, hv)
            live = hv >= 0
            low = tl.load(lrow + rows, mask=rmask, other=0.0)  # not on live: prefetched (STAGES)
            need = live & (low < hv)  # not provably >= hv: a direct value
            taken = tl.cumsum(need.to(tl.int32), axis=0)  # [BLOCK] inclusive
            tl.store(list_ptr + n_list + taken - 1, rows, mask=need)
            n_list += tl.sum(need.to(tl.int32), axis=0)
            lanes = tl.maximum(lanes, pack(tl.where(need, -1.0, hv), rows))
        best = tl.max(lanes, axis=0)
        if n_list > 0:  # uniform across the program: the barrier is safe
            tl.debug_barrier()  # the list, written by other threads
            crow = xh_ptr + p * stride_x
            for j0 in range(0, n_list, BLOCK_N):
                jj = j0 + tl.arange(0, BLOCK_N)
                jmask = jj < n_list
                rows = tl.load(list_ptr + jj, mask=jmask, other=0)
                dist = sqdist_tile(xh_ptr, rows, jmask, crow, D, stride_x, BLOCK_N, BLOCK_D)
                hv = tl.load(h_ptr + rows, mask=jmask, other=-1.0)
                lower = jmask & (dist < hv)
                hv = tl.where(lower, dist, hv)
                tl.store(h_ptr + rows, hv, mask=lower)
                tl.store(own_ptr + rows, count.to(tl.int64) + tl.zeros([BLOCK_N], tl.int64), mask=lower)
                best = tl.maximum(best, tl.max(pack(hv, rows), axis=0))
        count += 1
        c = tl.where(best != 0, unpack_index(best), 0)
        gkey = ((best >> 32) << 32) | (0xFFFFFFFF - tl.load(hidx_ptr + c))
        go = (best != 0) & (gkey > TAU_KEY) & (count < budget)
    tl.store(count_ptr, count.to(tl.int64))


def lower_bounds(xs, precision: str):
    """The (M, M) fp32 lower bounds of the head rows ``xs`` (contiguous); fp32 is centred."""
    m, d = xs.shape
    center = xs.dtype == torch.float32
    mu = xs.float().mean(0) if center else None  # centring shrinks the bound for offset data
    norms = _sqnorms(xs, torch.arange(m, device=xs.device), mu)
    t = triton.cdiv(m, BLOCK_M)
    pairs = torch.triu_indices(t, t, device=xs.device).t().contiguous().to(torch.int32)
    low = torch.empty((m, m), dtype=torch.float32, device=xs.device)
    lower_kernel[(len(pairs),)](
        xs, mu if center else norms, norms, pairs, low, head_coef(d, precision), m, d, xs.stride(0),
        CENTER=center, PRECISION=precision if center else "ieee", BLOCK_M=BLOCK_M, BLOCK_K=BLOCK_K,
        num_warps=gemm_warps(center), **GEMM_FUSION)
    return low


def head_greedy(xh, h, hidx, tau, tau_idx, budget, own, tf32: bool = False):
    """``(positions int64, values float64)`` NumPy arrays; ``h`` and ``own`` updated in place.

    ``xh`` (M, d) head rows, ``h`` (M,) fp32, ``hidx``/``own`` (M,) int64 on one device.
    """
    m, d = xh.shape
    budget = int(min(budget, m))
    if budget <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    order, (xs, hs, ids, os_) = by_index(hidx, xh, h, hidx, own)
    precision = "tf32" if tf32 else "tf32x3"
    low = lower_bounds(xs, precision if xs.dtype == torch.float32 else "ieee")
    keys = torch.empty(budget, dtype=torch.int64, device=xh.device)
    count = torch.empty(1, dtype=torch.int64, device=xh.device)
    scratch = torch.empty(m, dtype=torch.int64, device=xh.device)
    block_n, block_d, warps = blocks(d)  # step's tile and warps: the same sums as step
    pick_loop_kernel[(1,)](xs, low, hs, ids, os_, scratch, keys, count,
                           gate_key(tau_key(tau, tau_idx)), budget, m, d, xs.stride(0), BLOCK=BLOCK,
                           STAGES=STAGES, BLOCK_N=block_n, BLOCK_D=block_d, num_warps=warps,
                           **EXACT_SUMS)
    n = int(count.item())
    h[order] = hs
    own[order] = os_
    return head_result(keys[:n].cpu().numpy(), order.cpu().numpy(), n)
