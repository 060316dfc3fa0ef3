"""Exact bucket FPS on the GPU (d <= 8): Morton-sorted buckets with boxes and packed-key maxima.

Layout (``bucket_layout.build``): each cloud's live points sorted along a
Morton curve, cut into buckets of ``BUCKET`` points, every cloud padded to
whole chunks of BLOCK_N rows, with ``(BLOCK_N, BLOCK_D) = direct.blocks(d)``.
A chunk is one tile of the streaming step's direct form, read by the same
``sqdist_tile`` from a copy of x in x's dtype and row stride, so every
distance is the step's value. Per bucket and per chunk: its box (fp32,
BLOCK_D columns) and the packed key of its best point, over the point's
ORIGINAL row (ties go to the lowest original row, as in the step).

A pick c skips a chunk whose box bound is not below its best value, and
folds into the others only the buckets whose box bound is below their best
value. The bound is the direct form over the per-axis gaps (|fl(p - c)| >=
gap for every p in the box: rounding is monotone), then shrunk by 2^-16
relative and 2^-100 absolute. That margin covers any summation order or fma
contraction of up to 8 squares (relative error under 2^-20, absolute under
2^-122 with or without flushed subnormals), so the bound is <= the computed
distance of every point in the box whatever order the compiler sums in: a
skipped box could not have changed.

Two launchers: ``steps`` (one large cloud: a grid over chunks a pick, the
best key ``atomic_max``ed into a ring slot as in ``step``, launches replayed
in CUDA graphs) and ``bucket_batched`` (one program a cloud, all its picks).
"""
from __future__ import annotations

import numpy as np
import torch
import triton
import triton.language as tl

from . import graphs
from .bucket_layout import BUCKET, build
from .direct import EXACT_SUMS, blocks, sqdist_tile
from .keys import offer, pack, unpack_index, unpack_value
from ..keys import seed_key, unpack_host


@triton.jit
def box_bound(lo_ptr, hi_ptr, bk, cen, BLOCK_D: tl.constexpr):
    """Lower bounds [NB] of the computed distance of cen [BLOCK_D] to any point of buckets bk [NB].

    Boxes are (buckets, BLOCK_D) fp32; padded columns hold 0 (gap 0), empty
    buckets +inf / -inf (bound +inf).
    """
    offs_d = tl.arange(0, BLOCK_D).to(tl.int64)
    lo = tl.load(lo_ptr + bk[:, None] * BLOCK_D + offs_d[None, :])  # [NB, BLOCK_D]
    hi = tl.load(hi_ptr + bk[:, None] * BLOCK_D + offs_d[None, :])
    gap = tl.maximum(tl.maximum(lo - cen[None, :], cen[None, :] - hi), 0.0)
    # 1 - 2^-16 and 2^-100: the margin of the module docstring
    return tl.sum(gap * gap, axis=1) * 0.9999847412109375 - 7.888609052210118e-31


@triton.jit
def fold_chunk(xs_ptr, ids_ptr, mind_ptr, bkey_ptr, lo_ptr, hi_ptr, ckey_ptr, clo_ptr, chi_ptr,
               row0, c, cen_ptr, cen, D, stride_x,
               BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BUCKET: tl.constexpr):
    """Folds centre c (original row; its row at ``cen_ptr``, widened in ``cen``) into the chunk at row0.

    First the chunk's own box against its best value (one bound: most chunks
    stop here), then its buckets': only buckets whose bound is below their
    best value are read and updated (c's own chunk and bucket always are:
    their bound is < 0). Returns the chunk's best key.
    """
    NB: tl.constexpr = BLOCK_N // BUCKET
    ch = row0 // BLOCK_N
    best = tl.load(ckey_ptr + ch)  # 0: no live point
    if best != 0:
        bound = tl.max(box_bound(clo_ptr, chi_ptr, tl.full((1,), ch, tl.int64), cen, BLOCK_D), axis=0)
        if bound < unpack_value(best):
            bk = ch * NB + tl.arange(0, NB).to(tl.int64)
            key = tl.load(bkey_ptr + bk)  # [NB]
            need = (key != 0) & (box_bound(lo_ptr, hi_ptr, bk, cen, BLOCK_D) < unpack_value(key))
            if tl.max(need.to(tl.int32), axis=0) > 0:
                rows = row0 + tl.arange(0, BLOCK_N).to(tl.int64)
                rneed = tl.reshape(tl.broadcast_to(need[:, None], (NB, BUCKET)), (BLOCK_N,))
                dist = sqdist_tile(xs_ptr, rows, rneed, cen_ptr, D, stride_x, BLOCK_N, BLOCK_D)
                m = tl.load(mind_ptr + rows, mask=rneed, other=-1.0)
                ids = tl.load(ids_ptr + rows, mask=rneed, other=0)
                m = tl.where(ids == c, -1.0, m)
                m = tl.where(m >= 0, tl.minimum(m, dist), m)  # MARK (padding, picked) stays MARK
                tl.store(mind_ptr + rows, m, mask=rneed)
                fresh = tl.max(tl.reshape(pack(m, ids), (NB, BUCKET)), axis=1)
                key = tl.where(need, fresh, key)
                tl.store(bkey_ptr + bk, key, mask=need)
                best = tl.max(key, axis=0)
                tl.store(ckey_ptr + ch, best)
    return best


@triton.jit(do_not_specialize=["t"])
def bucket_step_kernel(x_ptr, xs_ptr, ids_ptr, mind_ptr, bkey_ptr, lo_ptr, hi_ptr, ckey_ptr,
                       clo_ptr, chi_ptr, ring_ptr,
                       base_ptr, t, D, stride_x, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
                       BUCKET: tl.constexpr):
    """One pick of one cloud, slot = base[0] + t: ring[slot] names the centre, ring[slot + 1] gets the winner.

    x (N, D) the caller's rows (the centre's coordinates); xs/ids/mind (R,)
    the sorted, padded layout (R = chunks x BLOCK_N); bkey (R / BUCKET,);
    lo/hi (R / BUCKET, BLOCK_D); ckey (chunks,), clo/chi (chunks, BLOCK_D) the
    same a chunk (``bucket_layout.Layout``). One program a chunk; a zero key
    in ring[slot] makes it a no-op (as in ``step``).
    """
    pid = tl.program_id(0).to(tl.int64)
    slot = tl.load(base_ptr) + t
    key_in = tl.load(ring_ptr + slot)
    if key_in != 0:
        c = unpack_index(key_in)
        offs_d = tl.arange(0, BLOCK_D).to(tl.int64)
        cen = tl.load(x_ptr + c * stride_x + offs_d, mask=offs_d < D, other=0.0).to(tl.float32)
        best = fold_chunk(xs_ptr, ids_ptr, mind_ptr, bkey_ptr, lo_ptr, hi_ptr, ckey_ptr, clo_ptr,
                          chi_ptr, pid * BLOCK_N, c, x_ptr + c * stride_x, cen, D, stride_x,
                          BLOCK_N, BLOCK_D, BUCKET)
        offer(ring_ptr + slot + 1, best, best > 0)


@triton.jit(do_not_specialize=["K", "FLOOR"])
def bucket_batched_kernel(x_ptr, xs_ptr, ids_ptr, mind_ptr, bkey_ptr, lo_ptr, hi_ptr, ckey_ptr,
                          clo_ptr, chi_ptr, row0_ptr, nch_ptr, k_ptr, start_ptr, idx_ptr, dist_ptr,
                          D, stride_x, K, FLOOR,
                          BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr, BUCKET: tl.constexpr):
    """Cloud b = program id: its nch[b] chunks from row row0[b] of the layout, k[b] picks from start[b].

    start holds global rows of x. Writes ``idx[b, t]`` (global row of pick t)
    and ``dist[b, t]`` (squared distance to the picks before; inf at t = 0)
    for t < k[b]. Ties: the lowest row. A pick t > 0 whose value is at most
    ``FLOOR`` (fp32; -inf: none) ends the cloud: neither it nor any after it is
    written, and no more folds run (the radius's cut).
    """
    b = tl.program_id(0).to(tl.int64)
    row0 = tl.load(row0_ptr + b)
    nch = tl.load(nch_ptr + b)
    kb = tl.load(k_ptr + b)
    c = tl.load(start_ptr + b)
    val = tl.full((), float("inf"), tl.float32)
    offs_d = tl.arange(0, BLOCK_D).to(tl.int64)
    for t in range(0, kb):
        live = (t == 0) | (val > FLOOR)  # FPS's values only fall: once cut, every later one is
        tl.store(idx_ptr + b * K + t, c, mask=live)
        tl.store(dist_ptr + b * K + t, val, mask=live)
        if (t + 1 < kb) & live:
            # The last pick's stores (mind, keys) may have come from other threads of
            # this program than the loads below: a CTA barrier orders them.
            tl.debug_barrier()
            cen = tl.load(x_ptr + c * stride_x + offs_d, mask=offs_d < D, other=0.0).to(tl.float32)
            best = tl.zeros((), tl.int64)
            for ch in range(0, nch):
                best = tl.maximum(best, fold_chunk(
                    xs_ptr, ids_ptr, mind_ptr, bkey_ptr, lo_ptr, hi_ptr, ckey_ptr, clo_ptr, chi_ptr,
                    row0 + ch * BLOCK_N, c,
                    x_ptr + c * stride_x, cen, D, stride_x, BLOCK_N, BLOCK_D, BUCKET))
            c = tl.where(best != 0, unpack_index(best), c)
            val = unpack_value(best)


def _shape(d: int):
    """The step's tile (``direct.blocks``): the same distances as ``step``, bit for bit."""
    block_n, block_d, warps = blocks(d)
    return dict(BLOCK_N=block_n, BLOCK_D=block_d, BUCKET=BUCKET), warps


def steps(x, mind, seeds, k: int):
    """Bucket FPS of one cloud: ``(picks, values)`` NumPy int64/float64, k of each (one host read).

    x (N, d) on the device, d <= 8; mind (N,) fp32: +inf, or MARK for rows
    left out (read only). The first picks are ``seeds`` (live rows).
    """
    x = x.contiguous()  # the kernels read rows d apart, columns at stride 1
    n, d = x.shape
    seeds = [int(s) for s in seeds]
    consts, warps = _shape(d)
    lay = build(x, np.array([0, n], np.int64), mind, consts["BLOCK_N"], consts["BLOCK_D"])
    grid = (lay.chunks,)
    base = torch.zeros(1, dtype=torch.int64, device=x.device)

    def launch(ring, t):
        bucket_step_kernel[grid](x, *lay.arrays(), ring, base, t, d,
                                 d, num_warps=warps, **consts, **EXACT_SUMS)  # row stride d: x contiguous
    ns = min(len(seeds), k)
    values = torch.full((ns,), float("inf"), dtype=torch.float32, device=x.device)
    if ns > 1:  # fold the seeds in turn; each one's value is its min-distance just before
        sring = torch.zeros(2 * ns, dtype=torch.int64, device=x.device)
        sring[0::2] = torch.as_tensor([seed_key(s, n) for s in seeds[:ns]], device=x.device)
        where = lay.where[torch.as_tensor(seeds[:ns], device=x.device)]
        for t in range(1, ns):
            launch(sring, 2 * (t - 1))
            values[t:t + 1] = lay.mind.index_select(0, where[t:t + 1])  # no host read: [where[t]] syncs
    picks, vals = np.asarray(seeds[:ns], np.int64), values.double().cpu().numpy()
    count = k - ns
    if count <= 0:
        return picks, vals
    ring = torch.zeros(count + 2, dtype=torch.int64, device=x.device)  # + 1: a zero slot to warm up on
    ring[0] = seed_key(seeds[ns - 1], n)
    graphs.run(lambda t: launch(ring, t), base, x.device, count, warm_up=lambda: launch(ring, count))
    more, more_vals = unpack_host(ring[1:count + 1])
    return np.concatenate([picks, more]), np.concatenate([vals, more_vals])


def bucket_batched(x, ptr, k, start, problems, floor=None):
    """Bucket FPS in the clouds ``problems`` of a CSR batch, one program each.

    x (total, d) tensor, d <= 8; ptr (P + 1,) int64 NumPy offsets; k, start
    (B,) int64 NumPy (start local to each cloud, k <= its size); problems (B,)
    int64 NumPy ids; floor: as ``batched.fps_batched``'s. Returns ``(idx, dist)``
    as ``batched.fps_batched``: (B, K) int64 global rows (-1 past k or the cut)
    and (B, K) fp32 squared radii (nan past them).
    """
    from .batched import fp32_floor
    x = x.contiguous()  # the kernels read rows d apart, columns at stride 1
    d = x.shape[1]
    consts, warps = _shape(d)
    dev = x.device
    problems = np.asarray(problems, np.int64)
    nb, kmax = len(problems), int(max(k, default=0))
    idx = torch.full((nb, kmax), -1, dtype=torch.int64, device=dev)
    dist = torch.full((nb, kmax), float("nan"), dtype=torch.float32, device=dev)
    if nb == 0 or kmax == 0:
        return idx, dist
    sizes = ptr[problems + 1] - ptr[problems]
    sub = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    shift = torch.repeat_interleave(torch.as_tensor(ptr[problems] - sub[:-1], device=dev),
                                    torch.as_tensor(sizes, device=dev), output_size=int(sub[-1]))
    rows = torch.arange(int(sub[-1]), device=dev) + shift  # the problems' rows of x, in order
    lay = build(x, sub, None, consts["BLOCK_N"], consts["BLOCK_D"], rows=rows)
    first = torch.as_tensor(ptr[problems] + np.asarray(start, np.int64), device=dev)
    kk = torch.as_tensor(np.asarray(k, np.int64), device=dev)
    bucket_batched_kernel[(nb,)](x, *lay.arrays(), lay.row0, lay.nch, kk, first, idx, dist, d,
                                 d, kmax, fp32_floor(floor),  # row stride d: x contiguous
                                 num_warps=warps, **consts, **EXACT_SUMS)
    return idx, dist
