"""Primitive 3 on the GPU: the lazy algorithm's head loop, one program, no host round trips.

The head (M rows, M <= 32k) is small enough to stay in L2 between the passes
of one program: per pick, one pass finds the best packed key (value, then the
lowest global index) and one pass folds the accepted row into ``h`` with the
direct-form tile of ``step`` (so the values equal the streaming ones bit for
bit). The loop runs until the best key stops beating ``tau``'s key or the
budget is spent; the host reads the count and the picks once.
"""
from __future__ import annotations

import numpy as np
import torch
import triton
import triton.language as tl

from .direct import blocks, sqdist_tile
from .keys import pack, tau_key, unpack_value

BLOCK_H = 1024  # keys per chunk of the argmax pass


@triton.jit
def head_kernel(xh_ptr, h_ptr, hidx_ptr, picks_ptr, vals_ptr, count_ptr, TAU_KEY, budget, M, D,
                stride_x, BLOCK_H: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    """Greedy steps on the head while provably global; a grid of one program.

    xh (M, D) rows ``stride_x`` apart; h (M,) fp32 current values (MARK -1),
    updated in place; hidx (M,) int64 global indices (the tie-break). Writes
    the accepted head positions to picks, their fp32 values to vals, and how
    many to count[0]. A pick is accepted while its key beats
    ``max(TAU_KEY, 0)`` (key 0 is MARK: never accepted).
    """
    floor = tl.maximum(TAU_KEY.to(tl.int64), 0)
    t = tl.zeros((), tl.int64)
    go = budget > 0
    while go:
        best = tl.zeros((), tl.int64)
        bpos = tl.zeros((), tl.int64)
        for p0 in range(0, M, BLOCK_H):
            offs = p0 + tl.arange(0, BLOCK_H).to(tl.int64)
            hv = tl.load(h_ptr + offs, mask=offs < M, other=-1.0)
            hid = tl.load(hidx_ptr + offs, mask=offs < M, other=0)
            key = pack(hv, hid)  # [BLOCK_H]
            kmax = tl.max(key, axis=0)
            kpos = tl.min(tl.where(key == kmax, offs, M), axis=0)
            bpos = tl.where(kmax > best, kpos, bpos)
            best = tl.maximum(best, kmax)
        accept = best > floor
        tl.store(picks_ptr + t, bpos, mask=accept)
        tl.store(vals_ptr + t, unpack_value(best), mask=accept)
        tl.debug_barrier()  # every thread's reads of h precede the writes below
        limit = tl.where(accept, M, 0)  # not accepted: the fold is a no-op
        for r0 in range(0, M, BLOCK_N):
            rows = r0 + tl.arange(0, BLOCK_N).to(tl.int64)
            rmask = rows < limit
            dist = sqdist_tile(xh_ptr, rows, rmask, xh_ptr + bpos * stride_x, D, stride_x,
                               BLOCK_N, BLOCK_D)
            hv = tl.load(h_ptr + rows, mask=rmask, other=-1.0)
            hv = tl.where(rows == bpos, -1.0, hv)
            hv = tl.where(hv >= 0, tl.minimum(hv, dist), hv)
            tl.store(h_ptr + rows, hv, mask=rmask)
        tl.debug_barrier()
        t += tl.where(accept, 1, 0)
        go = tl.where(accept, t < budget, False)
    tl.store(count_ptr, t)


def head_greedy(xh, h, hidx, tau, tau_idx, budget):
    """``(positions int64, values float64)`` NumPy arrays; ``h`` updated in place."""
    m, d = xh.shape
    budget = int(min(budget, m))
    picks = torch.empty(max(budget, 1), dtype=torch.int64, device=xh.device)
    vals = torch.empty(max(budget, 1), dtype=torch.float32, device=xh.device)
    count = torch.zeros(1, dtype=torch.int64, device=xh.device)
    block_n, block_d, warps = blocks(d)
    head_kernel[(1,)](xh, h, hidx, picks, vals, count, tau_key(tau, tau_idx), budget, m, d,
                      xh.stride(0), BLOCK_H=BLOCK_H, BLOCK_N=block_n, BLOCK_D=block_d,
                      num_warps=warps)
    c = int(count.item())
    return (picks[:c].cpu().numpy().astype(np.int64),
            vals[:c].cpu().numpy().astype(np.float64))
