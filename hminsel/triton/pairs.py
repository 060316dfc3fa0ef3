"""h_min on the GPU: the tiles on or above the diagonal only, then exact work on the few rows that matter.

``tri_kernel`` runs the GEMM form ``|x_i - mu|^2 + |x_j - mu|^2 - 2 x_i.x_j``
(clamped at 0, ``tl.dot`` with fp32 accumulation) on each unordered pair of
tiles once: about half the N x N work. Its epilogue folds each tile's row minima
and column minima into one packed key per row, ``atomic_min`` of
``(float bits << 32) | index`` (smallest value, then lowest index). With the
GEMM error bound ``eps_i`` (``block_min.gemm_coef``), the smallest direct
value U over every row's candidate bounds the closest pair, so only rows with
``best_i - eps_i <= U`` can hold it; those few get the exact ``block_min``,
whose grid splits the N columns too (``split``), so the pass fills the GPU.
"""
from __future__ import annotations

import torch
import triton
import triton.language as tl

from .block_min import BLOCK_K, GEMM_FUSION, _sqnorms, block_min, gemm_coef, gemm_tile, gemm_warps
from .window import pair_values

BLOCK = 64  # rows and columns of a tile: 64 x 64 fp32 accumulators at 4 warps (8 for fp32)
KEY_MAX = (1 << 63) - 1
WAVES = 4  # programs a multiprocessor, about: enough groups of tile pairs to fill the chip
GRID_Y = 65535  # the grid's second axis at most


@triton.jit(do_not_specialize=["n", "TILES", "HALF", "SPAN"])
def tri_kernel(x_ptr, mu_ptr, xn_ptr, keys_ptr, n, D, stride_x, TILES, HALF, SPAN,
               CENTER: tl.constexpr, PRECISION: tl.constexpr, BLOCK: tl.constexpr,
               BLOCK_K: tl.constexpr):
    """Tiles (I, (I + b) mod TILES) for I = program id 0 and the SPAN values of b from
    SPAN * program id 1, below HALF.

    With HALF = TILES // 2 + 1, every unordered pair of tiles is met at least
    once (a tile pair met twice is harmless: atomic_min). Programs that run
    side by side (consecutive I, one group of b) meet the same column tiles one
    step apart, so a wave reads a column tile from HBM about once and from L2
    after, and each program reads its own row tile again from L2: a launch of one
    program a tile pair read both tiles from HBM, about 32 flop a byte at
    d = 768 fp16, far below the tensor cores (counted, not yet measured on a GPU). The row tile's minima stay in
    registers across its tiles: one atomic_min a row per program.
    x (n, D) rows ``stride_x`` apart; xn (n,) fp32 squared norms (of rows minus
    ``mu`` when CENTER); keys (n,) int64 start at KEY_MAX. A tile is
    ``block_min.gemm_tile`` of x against itself, the diagonal i == j masked;
    it folds its minima into the keys of both its rows and its columns.
    """
    ti = tl.program_id(0).to(tl.int64)
    rows = ti * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
    rmask = rows < n
    xr = tl.load(xn_ptr + rows, mask=rmask, other=0.0)
    row_key = tl.full([BLOCK], 0x7FFFFFFFFFFFFFFF, tl.int64)  # KEY_MAX (no globals in a kernel)
    lo = tl.program_id(1).to(tl.int64) * SPAN
    for b in range(lo, tl.minimum(lo + SPAN, HALF)):
        tj = (ti + b) % TILES
        cols = tj * BLOCK + tl.arange(0, BLOCK).to(tl.int64)
        cmask = cols < n
        dist = gemm_tile(x_ptr, rows, rmask, xr, x_ptr, cols, cmask, xn_ptr, mu_ptr, D, stride_x,
                         stride_x, True, CENTER, PRECISION, BLOCK, BLOCK, BLOCK_K)
        dist = tl.where(rmask[:, None], dist, float("inf"))  # [BLOCK, BLOCK]
        bits = dist.to(tl.int32, bitcast=True).to(tl.int64) << 32  # >= 0: keys order like values
        row_key = tl.minimum(row_key, tl.min(bits | cols[None, :], axis=1))  # value, then column
        col_key = tl.min(bits | rows[:, None], axis=0)
        # relaxed: nothing in the kernel reads the keys (the host does, after it ends), so the
        # default acq_rel's fence on each atomic would buy nothing
        tl.atomic_min(keys_ptr + cols, col_key, mask=cmask, sem="relaxed")
    tl.atomic_min(keys_ptr + rows, row_key, mask=rmask, sem="relaxed")


def tri_grid(tiles: int, half: int, device) -> tuple[int, int, int]:
    """``(tiles, groups, span)``: each program meets ``span`` tile pairs of its row tile, and
    the grid holds about WAVES programs a multiprocessor (every one when tiles alone do)."""
    sms = torch.cuda.get_device_properties(device).multi_processor_count if device.type == "cuda" else 4
    groups = min(half, GRID_Y, max(1, -(-WAVES * sms // tiles)))
    span = -(-half // groups)
    return tiles, -(-half // span), span


def closest_rows(x, tf32: bool = False):
    """``(value, nearest, rows)`` tensors: the exact nearest other row of each row that can
    hold a closest pair (``Backend.closest_rows``). Needs len(x) >= 2."""
    n, d = x.shape
    center = x.dtype == torch.float32
    mu = x.float().mean(0) if center else None
    all_rows = torch.arange(n, device=x.device)
    xn = _sqnorms(x, all_rows, mu)
    keys = torch.full((n,), KEY_MAX, dtype=torch.int64, device=x.device)
    tiles = triton.cdiv(n, BLOCK)
    half = tiles // 2 + 1
    *grid, span = tri_grid(tiles, half, x.device)
    tri_kernel[tuple(grid)](x, mu if center else xn, xn, keys, n, d, x.stride(0), tiles, half, span,
                            CENTER=center, PRECISION="tf32" if tf32 else "ieee", BLOCK=BLOCK,
                            BLOCK_K=BLOCK_K, num_warps=gemm_warps(center), **GEMM_FUSION)
    best = (keys >> 32).to(torch.int32).view(torch.float32)
    cand = keys & 0xFFFFFFFF
    cand = torch.where(cand < n, cand, (all_rows + 1) % n)  # all G overflowed: any other row
    upper = pair_values(x, all_rows, x, cand).min()  # a real pair: the closest is no farther
    eps = gemm_coef(d, tf32) * (xn.double() + xn.max().double())
    live = torch.nonzero(best.double() - eps <= upper.double()).flatten()
    value, nearest = block_min(x, x, live, True, tf32)
    return value, nearest, live
