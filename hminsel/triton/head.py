"""Primitive 3 on the GPU: the lazy algorithm's head loop as gated steps over the whole chip.

Each pick is one launch of ``head_step_kernel``, a grid over the head rows like
``step``: the launch for pick t reads the key in ``ring[t]``, and if that key
beats ``tau`` (value first, then the lower global index) it folds the row into
the head values and ``atomic_max``es the next candidate into ``ring[t + 1]``;
otherwise the launch is a no-op. So the loop needs no host round trip a pick:
launches go in chunks that double (8, 16, ... 1024 picks) with one host read
between chunks to see whether the gate has closed, and a closed gate wastes at
most one chunk of empty launches. On a GPU the chunks are replays of 64
launches captured once in a CUDA graph (``graphs.run_gated``).

The head is first sorted by global index, so a row's position orders ties as
its global index does and the packed key can carry the position. Values come
from ``direct.sqdist_tile`` with ``step``'s block shape, so they equal the
streaming ones bit for bit (the lazy sequence is the streaming sequence).
A head of M rows x d is read from L2 once a pick when it fits there (the
backend sizes M so that it does).
"""
from __future__ import annotations

import numpy as np
import torch
import triton
import triton.language as tl

from ..keys import accepted, first_key, head_result, tau_key
from . import graphs
from .direct import EXACT_SUMS, blocks, sqdist_tile
from .keys import gate_key, offer, pack, unpack_index


@triton.jit(do_not_specialize=["t", "TAU_KEY", "M"])
def head_step_kernel(xh_ptr, h_ptr, hidx_ptr, ring_ptr, base_ptr, t, TAU_KEY, M, D, stride_x,
                     BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    """Pick slot = base[0] + t: accept ring[slot] if it beats TAU_KEY, fold it, argmax into ring[slot + 1].

    xh (M, D) head rows sorted by global index, ``stride_x`` apart; h (M,) fp32
    values (-1 = MARK), updated in place; hidx (M,) int64 global indices, sorted.
    Keys pack the head position. TAU_KEY is ``keys.tau_key``: a key over the
    global index, -1 when nothing is outside the head. One program owns
    BLOCK_N consecutive rows, as in ``step``.
    """
    pid = tl.program_id(0).to(tl.int64)
    slot = tl.load(base_ptr) + t
    key_in = tl.load(ring_ptr + slot)
    live = key_in != 0
    c = tl.where(live, unpack_index(key_in), 0)
    gkey = ((key_in >> 32) << 32) | (0xFFFFFFFF - tl.load(hidx_ptr + c))  # same value, global index
    go = live & (gkey > TAU_KEY)
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64)
    rmask = rows < tl.where(go, M, 0)
    dist = sqdist_tile(xh_ptr, rows, rmask, xh_ptr + c * stride_x, D, stride_x, BLOCK_N, BLOCK_D)
    hv = tl.load(h_ptr + rows, mask=rmask, other=-1.0)
    hv = tl.where(rows == c, -1.0, hv)
    hv = tl.where(hv >= 0, tl.minimum(hv, dist), hv)  # MARK stays MARK
    tl.store(h_ptr + rows, hv, mask=rmask)
    best = tl.max(pack(hv, rows), axis=0)
    offer(ring_ptr + slot + 1, best, go)


def by_index(hidx, *arrays):
    """``(order, arrays sorted by global index)``: a row's position then orders ties as its index does."""
    order = torch.argsort(hidx, stable=True)
    return order, [a.index_select(0, order).contiguous() for a in arrays]


def head_greedy(xh, h, hidx, tau, tau_idx, budget):
    """``(positions int64, values float64)`` NumPy arrays; ``h`` updated in place."""
    m, d = xh.shape
    budget = int(min(budget, m))
    if budget <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    order, (xs, hs, ids) = by_index(hidx, xh, h, hidx)
    ring = torch.zeros(budget + 2, dtype=torch.int64, device=xh.device)  # + 1: a zero slot to warm up on
    ring[0] = first_key(hs)
    taukey = tau_key(tau, tau_idx)
    ids_host = ids.cpu().numpy()
    base = torch.zeros(1, dtype=torch.int64, device=xh.device)
    block_n, block_d, warps = blocks(d)
    grid = (triton.cdiv(m, block_n),)

    def launch(t):
        head_step_kernel[grid](xs, hs, ids, ring, base, t, gate_key(taukey), m, d, xs.stride(0),
                               BLOCK_N=block_n, BLOCK_D=block_d, num_warps=warps, **EXACT_SUMS)
    graphs.run_gated(launch, base, ring, budget, ids_host, taukey, xh.device,
                     warm_up=lambda: launch(budget))  # ring[budget] is still 0: a no-op
    keys = ring[:budget].cpu().numpy()
    h[order] = hs
    return head_result(keys, order.cpu().numpy(), accepted(keys, ids_host, taukey, budget))
