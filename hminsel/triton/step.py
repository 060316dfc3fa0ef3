"""Primitive 1 on the GPU: the streaming step, k of them back to back.

Each launch is a grid over row chunks (the whole GPU works on one problem).
A program folds the center into its rows' min-distances and ``atomic_max``es
its best packed key into the step's slot of a ring. The center of step t is
decoded, on the device, from slot t, so k launches queue with no host sync;
the host reads the ring once at the end. The slot is ``base[0] + t``, so that
64 launches captured once in a CUDA graph serve every chunk of 64 picks
(``graphs``: one host call a chunk instead of one a pick).
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from . import graphs
from .direct import EXACT_SUMS, blocks, sqdist_tile
from ..keys import seed_key, unpack_host
from .keys import offer, pack, unpack_index


@triton.jit(do_not_specialize=["t", "N"])
def step_kernel(x_ptr, mind_ptr, ring_ptr, base_ptr, t, N, D, stride_x,
                BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    """One step, slot = base[0] + t: ring[slot] holds the center's key, ring[slot + 1] gets the winner's.

    x (N, D) with row stride ``stride_x``; mind (N,) fp32, +inf or >= 0 live,
    -1 (MARK) dead. One program owns BLOCK_N consecutive rows (its own
    ``mind`` entries, so marking the center needs no cross-program order).
    A zero key in ring[slot] (previous step found every point marked) turns
    the whole program into a no-op, leaving ring[slot + 1] at 0 too.
    """
    pid = tl.program_id(0).to(tl.int64)
    slot = tl.load(base_ptr) + t
    key_in = tl.load(ring_ptr + slot)
    has_c = key_in != 0
    c = unpack_index(key_in)
    c = tl.where(has_c, c, 0)
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N).to(tl.int64)
    rmask = rows < tl.where(has_c, N, 0)  # (a scalar & block mask trips the interpreter)
    dist = sqdist_tile(x_ptr, rows, rmask, x_ptr + c * stride_x, D, stride_x, BLOCK_N, BLOCK_D)
    m = tl.load(mind_ptr + rows, mask=rmask, other=-1.0)
    m = tl.where(rows == c, -1.0, m)
    m = tl.where(m >= 0, tl.minimum(m, dist), m)  # MARK stays MARK
    tl.store(mind_ptr + rows, m, mask=rmask)
    best = tl.max(pack(m, rows), axis=0)  # masked rows carry MARK: key 0
    offer(ring_ptr + slot + 1, best, has_c)


def launch_steps(x: torch.Tensor, mind: torch.Tensor, c: int, count: int) -> torch.Tensor:
    """Queue ``count`` steps from center ``c``; returns the ring (count + 1,) int64 on x's device.

    ring[0] is the seed key (value bits 0, index c); ring[t + 1] the key of pick t.
    Launches go through ``graphs.run`` (CUDA graph replays on a GPU).
    """
    n, d = x.shape
    ring = torch.zeros(count + 2, dtype=torch.int64, device=x.device)  # + 1: a zero slot to warm up on
    ring[0] = seed_key(c, n)
    base = torch.zeros(1, dtype=torch.int64, device=x.device)
    block_n, block_d, warps = blocks(d)
    grid = (triton.cdiv(n, block_n),)

    def launch(t):
        step_kernel[grid](x, mind, ring, base, t, n, d, x.stride(0),
                          BLOCK_N=block_n, BLOCK_D=block_d, num_warps=warps, **EXACT_SUMS)
    graphs.run(launch, base, x.device, count, warm_up=lambda: launch(count))  # ring[count] is 0
    return ring[:count + 1]


def steps(x, mind, c, count):
    """``(picks, values)`` NumPy int64/float64 of ``count`` chained steps (one host read)."""
    ring = launch_steps(x, mind, c, count)
    return unpack_host(ring[1:])
