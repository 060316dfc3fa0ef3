"""Many small FPS problems in one launch: one program per problem, its points on chip.

For point clouds (B x N x 3, N up to a few thousand, k up to 512): a program
loads its problem's points once into registers, keeps the min-distances there
too, and runs all of its k steps without touching global memory except to read
the center row (an L1 hit) and write each pick: ``cloud_kernel`` for d <= 8
(a vector a coordinate), ``fps_batched_kernel`` above ([BLOCK_P, BLOCK_D]). Problems
too large for registers (``ON_CHIP_ELEMENTS``) run ``fps_batched_stream_kernel``:
still one program each, its points read from L1/L2 a chunk at a time every
step and its min-distances in a global scratch row. Problems larger than
``max_points(d)`` belong to the whole-GPU path (``step``).
"""
from __future__ import annotations

import numpy as np
import torch
import triton
import triton.language as tl

from .direct import EXACT_SUMS
from .keys import pack, unpack_index, unpack_value

# BLOCK_P x BLOCK_D fp32 in registers: 4k x 4 at 16 warps is 32 a thread and fits in
# 128 registers; 8k x 4 spilled at 16 and 32 warps, 16k x 4 (all points in registers,
# 128 values a thread) spilled kilobytes. Larger problems stream chunks of that size.
ON_CHIP_ELEMENTS = 4096 * 4
MAX_POINTS = 16384  # for d <= 4; one program streams 16k x 4 fp32 (256 KB) from L2 a step
MAX_ELEMENTS = MAX_POINTS * 4  # larger d: fewer points
CLOUD_MAX_DIM = 8  # up to this d, problems on chip run cloud_kernel (a vector a coordinate)
ELEMENTS_PER_WARP = 1024  # num_warps = BLOCK_P x BLOCK_D / this, 4 to 16: <= 32 values a thread


def num_warps(block_p: int, block_d: int) -> int:
    """Warps of a program holding a [block_p, block_d] tile (checked spill-free by the AOT test)."""
    return min(16, max(4, block_p * block_d // ELEMENTS_PER_WARP))


def cloud_warps(block_p: int, d: int) -> int:
    """Warps of ``cloud_kernel``: 16 points a thread at d <= 4, 8 above (108-126 registers at
    4096 x 3-4 and 2048 x 5-8 under Triton 3.6, 119-127 under 3.9: two programs an SM, no
    spills; tests/test_triton_compile.py holds 4096 x 3 and 2048 x 8 to two)."""
    return min(16, max(4, block_p // (512 if d <= 4 else 256)))


def on_chip(points: int, d: int) -> bool:
    """Whether a problem of ``points`` rows at dimension ``d`` fits in registers
    (``cloud_kernel`` or ``fps_batched_kernel``) rather than the streaming kernel's chunks."""
    block_p, block_d = block_shape(points, d)
    return block_p * block_d <= ON_CHIP_ELEMENTS


def block_shape(points: int, d: int) -> tuple[int, int]:
    """``(BLOCK_P, BLOCK_D)`` of the on-chip tile holding a problem of ``points`` rows."""
    return max(16, triton.next_power_of_2(points)), max(2, triton.next_power_of_2(d))


def max_points(d: int) -> int:
    """The largest problem the on-chip kernel takes at dimension ``d`` (<= 16)."""
    return MAX_ELEMENTS // max(4, triton.next_power_of_2(d))


@triton.jit(do_not_specialize=["K"])
def fps_batched_kernel(x_ptr, lo_ptr, hi_ptr, k_ptr, start_ptr, idx_ptr, dist_ptr, D, stride_x, K,
                       BLOCK_P: tl.constexpr, BLOCK_D: tl.constexpr):
    """Problem b = program id: rows lo[b] .. hi[b] of x (D <= BLOCK_D columns).

    Writes ``idx[b, t]`` (global row of pick t, t < k[b]) and ``dist[b, t]``
    (its squared distance to the picks before it; inf for t = 0); entries
    t >= k[b] are left as the launcher filled them (-1 / nan). Ties: lowest row.
    """
    b = tl.program_id(0).to(tl.int64)
    lo = tl.load(lo_ptr + b)
    n = tl.load(hi_ptr + b) - lo
    kb = tl.load(k_ptr + b)
    offs = tl.arange(0, BLOCK_P).to(tl.int64)
    offs_d = tl.arange(0, BLOCK_D).to(tl.int64)
    pmask = offs < n
    dmask = offs_d < D
    cmask = offs_d < tl.where(n > 0, D, 0)  # an empty problem reads no center (row lo may not exist)
    pts = tl.load(x_ptr + (lo + offs)[:, None] * stride_x + offs_d[None, :],
                  mask=pmask[:, None] & dmask[None, :], other=0.0).to(tl.float32)  # [BLOCK_P, BLOCK_D]
    mind = tl.where(pmask, float("inf"), -1.0)
    c = tl.load(start_ptr + b)
    val = tl.full((), float("inf"), tl.float32)
    for t in range(0, K):
        keep = t < kb
        tl.store(idx_ptr + b * K + t, lo + c, mask=keep)
        tl.store(dist_ptr + b * K + t, val, mask=keep)
        cen = tl.load(x_ptr + (lo + c) * stride_x + offs_d, mask=cmask, other=0.0).to(tl.float32)
        diff = pts - cen[None, :]
        dist = tl.sum(diff * diff, axis=1)  # [BLOCK_P]
        mind = tl.where(offs == c, -1.0, mind)
        mind = tl.where(mind >= 0, tl.minimum(mind, dist), mind)
        key = tl.max(pack(mind, offs), axis=0)
        c = tl.where(key != 0, unpack_index(key), c)
        val = unpack_value(key)


@triton.jit
def coordinate(base, row, pmask, i: tl.constexpr, D: tl.constexpr):
    """Column i of the rows at ``base + row`` [BLOCK_P] as fp32 (zeros past D: never read)."""
    if i < D:
        return tl.load(base + row + i, mask=pmask, other=0.0).to(tl.float32)
    else:
        return tl.zeros(row.shape, tl.float32)


@triton.jit
def square(p, cen_ptr, live, i: tl.constexpr, D: tl.constexpr):
    """fp32 ``(p - cen[i])^2`` for column i's values ``p`` (zeros past D: never read); no
    centre is read unless ``live`` (an empty problem's row lo may not exist)."""
    if i < D:
        v = p - tl.load(cen_ptr + i, mask=live, other=0.0).to(tl.float32)
        return v * v
    else:
        return p


@triton.jit
def plus(a, b, HAS_B: tl.constexpr):
    """``a + b``, or ``a`` where the square b is past D."""
    if HAS_B:
        return a + b
    else:
        return a


@triton.jit(do_not_specialize=["K"])
def cloud_kernel(x_ptr, lo_ptr, hi_ptr, k_ptr, start_ptr, idx_ptr, dist_ptr, stride_x, K,
                 D: tl.constexpr, BLOCK_P: tl.constexpr):
    """``fps_batched_kernel`` for point clouds (D <= 8, a constexpr): a coordinate a vector
    (no padded column and no row spread over 4 or 8 lanes, each lane with its own copy of
    the row's distance and min-distance: about half the registers, two programs an SM
    where the [BLOCK_P, BLOCK_D] tile took 127 registers at 16 warps, one) and each
    distance summed in the streaming step's tree.

    The step's [rows, 4] or [rows, 8] tile sums a row over its lanes by butterfly, far
    half first: ``(s0 + s2) + (s1 + s3)`` at d <= 4, ``((s0 + s4) + (s2 + s6)) + ((s1 +
    s5) + (s3 + s7))`` at d <= 8, each square rounded (no fma: ``EXACT_SUMS``); a square
    past d is an exact zero there and is left out here (s + 0 = s for s >= 0). So every
    distance is the step's (and the cpu backend's) value. The argmax is a (value, index)
    max, ties to the lower index. Same outputs as ``fps_batched_kernel``.
    """
    b = tl.program_id(0).to(tl.int64)
    lo = tl.load(lo_ptr + b)
    n = tl.load(hi_ptr + b) - lo
    kb = tl.load(k_ptr + b)
    offs = tl.arange(0, BLOCK_P)
    pmask = offs < n
    live = n > 0
    base = x_ptr + lo * stride_x
    row = offs.to(tl.int64) * stride_x
    p0, p1 = coordinate(base, row, pmask, 0, D), coordinate(base, row, pmask, 1, D)
    p2, p3 = coordinate(base, row, pmask, 2, D), coordinate(base, row, pmask, 3, D)
    p4, p5 = coordinate(base, row, pmask, 4, D), coordinate(base, row, pmask, 5, D)
    p6, p7 = coordinate(base, row, pmask, 6, D), coordinate(base, row, pmask, 7, D)
    c = tl.load(start_ptr + b).to(tl.int32)
    mind = tl.where(pmask, float("inf"), -1.0)
    val = tl.full((), float("inf"), tl.float32)
    for t in range(0, K):
        keep = t < kb
        tl.store(idx_ptr + b * K + t, lo + c, mask=keep)
        tl.store(dist_ptr + b * K + t, val, mask=keep)
        cen = base + c.to(tl.int64) * stride_x
        s0, s1 = square(p0, cen, live, 0, D), square(p1, cen, live, 1, D)
        s2, s3 = square(p2, cen, live, 2, D), square(p3, cen, live, 3, D)
        if D <= 2:
            dist = plus(s0, s1, D > 1)
        elif D <= 4:
            dist = plus(s0, s2, True) + plus(s1, s3, D > 3)
        else:
            s4, s5 = square(p4, cen, live, 4, D), square(p5, cen, live, 5, D)
            s6, s7 = square(p6, cen, live, 6, D), square(p7, cen, live, 7, D)
            dist = (plus(s0, s4, True) + plus(s2, s6, D > 6)) + \
                (plus(s1, s5, D > 5) + plus(s3, s7, D > 7))
        mind = tl.where(offs == c, -1.0, mind)
        mind = tl.where(mind >= 0, tl.minimum(mind, dist), mind)
        best, at = tl.max(mind, axis=0, return_indices=True, return_indices_tie_break_left=True)
        c = tl.where(best >= 0, at, c)
        val = tl.where(best >= 0, best, 0.0)


@triton.jit(do_not_specialize=["K", "CHUNKS"])
def fps_batched_stream_kernel(x_ptr, lo_ptr, hi_ptr, k_ptr, start_ptr, idx_ptr, dist_ptr, mind_ptr,
                              D, stride_x, K, CHUNKS, BLOCK_P: tl.constexpr, BLOCK_D: tl.constexpr):
    """``fps_batched_kernel`` for problems of up to CHUNKS x BLOCK_P points.

    Each step sweeps the problem in chunks of BLOCK_P points, reading them
    again (L1/L2 hits: the problem's rows stay cached) and its min-distances
    from ``mind`` (B, CHUNKS x BLOCK_P) fp32 scratch, written and read back
    at the same positions, with a CTA barrier a step between the two (the
    threads that store a position need not be those that load it). Same
    outputs and tie rule.
    """
    b = tl.program_id(0).to(tl.int64)
    lo = tl.load(lo_ptr + b)
    n = tl.load(hi_ptr + b) - lo
    kb = tl.load(k_ptr + b)
    offs_d = tl.arange(0, BLOCK_D).to(tl.int64)
    dmask = offs_d < D
    cmask = offs_d < tl.where(n > 0, D, 0)  # an empty problem reads no center (row lo may not exist)
    mrow = mind_ptr + b * CHUNKS * BLOCK_P
    for ch in range(0, CHUNKS):
        offs = ch * BLOCK_P + tl.arange(0, BLOCK_P).to(tl.int64)
        tl.store(mrow + offs, tl.where(offs < n, float("inf"), -1.0))
    c = tl.load(start_ptr + b)
    val = tl.full((), float("inf"), tl.float32)
    for t in range(0, K):
        keep = t < kb
        tl.store(idx_ptr + b * K + t, lo + c, mask=keep)
        tl.store(dist_ptr + b * K + t, val, mask=keep)
        # mind goes through global memory: a CTA barrier orders the last step's stores
        # before this step's loads (the compiler may give the load and the store of a
        # position to different threads; today's TTGIR happens to give both one layout)
        tl.debug_barrier()
        cen = tl.load(x_ptr + (lo + c) * stride_x + offs_d, mask=cmask, other=0.0).to(tl.float32)
        key = tl.zeros((), tl.int64)
        for ch in range(0, CHUNKS):
            offs = ch * BLOCK_P + tl.arange(0, BLOCK_P).to(tl.int64)
            pmask = offs < n
            pts = tl.load(x_ptr + (lo + offs)[:, None] * stride_x + offs_d[None, :],
                          mask=pmask[:, None] & dmask[None, :], other=0.0).to(tl.float32)
            diff = pts - cen[None, :]
            dist = tl.sum(diff * diff, axis=1)  # [BLOCK_P]
            mind = tl.load(mrow + offs)
            mind = tl.where(offs == c, -1.0, mind)
            mind = tl.where(mind >= 0, tl.minimum(mind, dist), mind)
            tl.store(mrow + offs, mind)
            key = tl.maximum(key, tl.max(pack(mind, offs), axis=0))
        c = tl.where(key != 0, unpack_index(key), c)
        val = unpack_value(key)


def fp32_floor(floor) -> float:
    """The largest float32 at most ``floor`` (a float64 squared value, ``_radius.floor``; None:
    -inf): a float32 value is at most ``floor`` exactly when it is at most this one, so the
    kernels' fp32 compare cuts where the host's float64 one does."""
    if floor is None:
        return float("-inf")
    f = np.float32(floor)
    if float(f) > floor:
        f = np.nextafter(f, np.float32(-np.inf))
    return float(f)


def fps_batched(x, ptr, k, start=0, problems=None, floor=None, warps=None):
    """Farthest-point selection in every problem of a CSR batch (or in some of them).

    Args:
        x: (total, d) float32/float16/bfloat16 tensor, d <= 16, on a CUDA device
            (or CPU under TRITON_INTERPRET=1).
        ptr: (P + 1,) int64 offsets: problem p is rows ptr[p] .. ptr[p+1].
        k: picks per problem, an int or a (B,) vector; clipped to each size.
        start: first pick, local to each problem: an int or a (B,) vector.
        problems: (B,) int64 ids of the problems to run (default: all, B = P);
            ``k`` / ``start`` / the outputs follow this order.
            (The vectors: NumPy arrays, lists or tensors; host ones cost no device sync.)
        floor: a squared value (``_radius.floor``) or None: each problem's picks
            end before its first past the start whose value is at most it (the
            kernel runs to k; the picks past the cut are then cleared, as past k).
        warps: the on-chip kernel's num_warps in place of ``num_warps`` (the benchmark's sweep).

    Returns:
        ``(idx, dist)``: (B, K) int64 global rows (-1 past a problem's k or cut)
        and (B, K) float32 squared radii (inf at t = 0, nan past k), K = max k.
    """
    if x.ndim != 2 or x.shape[1] > 16:
        raise ValueError(f"x must be (total, d) with d <= 16; got shape {tuple(x.shape)}")
    dev = x.device
    lo, hi, kk, st = _layout(ptr, k, start, problems)  # on the host: no device sync
    nb, sizes = len(lo), hi - lo
    big = int(sizes.max()) if nb else 0
    if big > max_points(x.shape[1]):
        raise ValueError(f"a problem has {big} points; the on-chip kernel takes up to "
                         f"{max_points(x.shape[1])} at d = {x.shape[1]} (larger problems go through "
                         "the whole-GPU step)")
    if nb and bool(((st < 0) | (st >= np.maximum(sizes, 1))).any()):
        raise ValueError("start must be a row of each problem")
    kmax = int(kk.max()) if nb else 0
    lo, hi, kk, st = torch.as_tensor(np.stack([lo, hi, kk, st]), device=dev)  # one copy over
    idx = torch.full((nb, kmax), -1, dtype=torch.int64, device=dev)
    dist = torch.full((nb, kmax), float("nan"), dtype=torch.float32, device=dev)
    if nb and kmax:
        x = x.contiguous()
        block_p, block_d = block_shape(big, x.shape[1])
        args = (x, lo, hi, kk, st, idx, dist)
        if x.shape[1] <= CLOUD_MAX_DIM and on_chip(big, x.shape[1]):
            cloud_kernel[(nb,)](*args, x.stride(0), kmax, D=x.shape[1], BLOCK_P=block_p,
                                num_warps=warps or cloud_warps(block_p, x.shape[1]), **EXACT_SUMS)
        elif on_chip(big, x.shape[1]):
            fps_batched_kernel[(nb,)](*args, x.shape[1], x.stride(0), kmax, BLOCK_P=block_p,
                                      BLOCK_D=block_d, num_warps=warps or num_warps(block_p, block_d),
                                      **EXACT_SUMS)
        else:  # chunks of what fits in registers; their min-distances in scratch
            chunk = max(16, ON_CHIP_ELEMENTS // block_d)
            mind = torch.empty((nb, block_p), dtype=torch.float32, device=dev)
            fps_batched_stream_kernel[(nb,)](*args, mind, x.shape[1], x.stride(0), kmax,
                                             block_p // chunk, BLOCK_P=chunk, BLOCK_D=block_d,
                                             num_warps=num_warps(chunk, block_d), **EXACT_SUMS)
        if floor is not None:  # FPS's values only fall: the cut clears a suffix of each row
            cut = dist[:, 1:] <= fp32_floor(floor)  # (by torch.where: a mask's index_put syncs)
            idx[:, 1:] = torch.where(cut, -1, idx[:, 1:])
            dist[:, 1:] = torch.where(cut, float("nan"), dist[:, 1:])
    return idx, dist


def _layout(ptr, k, start, problems):
    """``(lo, hi, k, start)``: int64 host arrays, one entry a problem run (k clipped to its
    size). Index vectors given as device tensors are brought over (they are small)."""
    def host(v):
        return np.asarray(v.cpu() if isinstance(v, torch.Tensor) else v, dtype=np.int64)
    ptr = host(ptr)
    ids = np.arange(len(ptr) - 1) if problems is None else host(problems)
    lo, hi = ptr[ids], ptr[ids + 1]
    kk = np.minimum(np.broadcast_to(host(k), lo.shape), hi - lo)
    return lo, hi, kk, np.broadcast_to(host(start), lo.shape).copy()
