"""The direct-form distance tile: the one place an exact value is computed.

``step``, the re-check of ``block_min`` and the head loop all call
``sqdist_tile`` with the block shape of ``blocks(d)``, so the summation order,
and hence every fp32 value, is the same on every path: the lazy algorithm then
reproduces the streaming sequence index for index.

Every kernel that computes a direct-form value is launched with
``EXACT_SUMS`` (no fused multiply-add). Where a lane holds one element of a
row (small or unaligned d: d = 3 puts a row on 4 lanes), ptxas fused the
lane's own square into the first butterfly add of the row sum, ``fma(a, a,
b * b)`` on one lane and ``fma(b, b, a * a)`` on its partner (seen in the SASS
of ``step`` at d = 3, Triton 3.6, sm_90): lanes holding the same row then
disagreed in the last bit, and which copy a store or a reduction took decided
the value. With every product rounded the butterfly's adds commute, so every
lane, and every kernel of the same layout, computes the same sum.
tests/test_triton_compile.py checks that these kernels' SASS has no FFMA.
"""
from __future__ import annotations

import triton
import triton.language as tl

EXACT_SUMS = {"enable_fp_fusion": False}  # launch options of every direct-form kernel (above)


def blocks(d: int) -> tuple[int, int, int]:
    """``(BLOCK_N, BLOCK_D, num_warps)`` of a direct-form tile for dimension ``d``.

    BLOCK_D covers d up to 128 in one chunk (larger d loops); BLOCK_N x BLOCK_D
    is 4k elements at 8 warps: 16 elements a thread. Each element costs about
    six registers (its 64-bit address, the value, the widened value), so 32 a
    thread (8k at 4 warps, the old shape) spilled under ptxas at d = 3, 33 and
    128; 16 a thread stays at or under 128 registers in every kernel that uses
    the tile except the direct/certify loops (about 180, no spills), checked
    by tests/test_triton_compile.py. d = 3 gets 1024 rows a program. Where d
    is not a multiple of 16 the loads do not vectorise (the JIT cannot assume
    aligned rows), and at BLOCK_D >= 64 Triton 3.6 then took 154-158
    registers (one program of 8 warps an SM, in a memory-bound kernel): the
    tile is halved there, 8 elements a thread, 78-80 registers (three).
    BLOCK_N does not change the order in which a row's elements are summed.
    """
    block_d = min(128, max(4, triton.next_power_of_2(d)))
    elements = 2048 if d % 16 and block_d >= 64 else 4096
    block_n = max(16, min(1024, elements // block_d))
    return block_n, block_d, 8


@triton.jit
def sqdist_tile(x_ptr, rows, rmask, c_ptr, D, stride_x,
                BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr):
    """fp32 ``sum((x[rows] - c) ** 2)`` of a [BLOCK_N] tile of rows to one row ``c_ptr``.

    ``rows`` [BLOCK_N] int64 row ids (masked by ``rmask``); ``c_ptr`` points at
    the first element of a contiguous row; x rows are ``stride_x`` apart.
    Storage may be fp32/fp16/bf16: each element is widened before the subtract.
    """
    acc = tl.zeros([BLOCK_N], dtype=tl.float32)
    for d0 in range(0, D, BLOCK_D):
        offs_d = d0 + tl.arange(0, BLOCK_D).to(tl.int64)
        dmask = offs_d < D
        c = tl.load(c_ptr + offs_d, mask=dmask, other=0.0).to(tl.float32)  # [BLOCK_D]
        xt = tl.load(x_ptr + rows[:, None] * stride_x + offs_d[None, :],
                     mask=rmask[:, None] & dmask[None, :], other=0.0).to(tl.float32)
        diff = xt - c[None, :]  # [BLOCK_N, BLOCK_D]
        acc += tl.sum(diff * diff, axis=1)
    return acc
