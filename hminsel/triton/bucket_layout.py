"""The layout of the GPU bucket FPS (``bucket``), built with torch ops on x's device.

Each cloud's live points are sorted along a Morton curve of a grid over its
own bounding box (the order only decides how much a pick skips, never which
point wins), then laid out from row ``row0[p]`` in ``nch[p]`` chunks of
BLOCK_N rows; rows past the cloud's points are padding (min-distance MARK,
coordinates 0, no box). Buckets are BUCKET consecutive rows; each bucket and
each chunk keeps its box and the packed key of its best point.
"""
from __future__ import annotations

import dataclasses

import numpy as np
import torch

from ..keys import LOW

BUCKET = 64  # rows a bucket; divides every BLOCK_N of direct.blocks (d <= 8: 512 or 1024)
MORTON_BITS = 30  # key bits at most: about log2(points) + 2, so a bucket spans a few cells


@dataclasses.dataclass
class Layout:
    xs: torch.Tensor     # (R, d) x's dtype: the points by position (R = chunks x BLOCK_N)
    ids: torch.Tensor    # (R,) int64: original row of each position (0 on padding)
    mind: torch.Tensor   # (R,) fp32: min-distance of each position (MARK on padding)
    bkey: torch.Tensor   # (R / BUCKET,) int64: packed key of each bucket's best point (0: none)
    lo: torch.Tensor     # (R / BUCKET, BLOCK_D) fp32 box (+inf on empty buckets; 0 past d)
    hi: torch.Tensor     # same, -inf on empty buckets
    ckey: torch.Tensor   # (chunks,) int64: the best key of each chunk
    clo: torch.Tensor    # (chunks, BLOCK_D) fp32: each chunk's box
    chi: torch.Tensor
    row0: torch.Tensor   # (P,) int64: first row of each cloud
    nch: torch.Tensor    # (P,) int64: chunks of each cloud
    chunks: int          # R / BLOCK_N
    where: torch.Tensor  # (N,) int64: position of each row of x (-1: not laid out)

    def arrays(self):
        """The kernels' layout arguments, in their order."""
        return (self.xs, self.ids, self.mind, self.bkey, self.lo, self.hi, self.ckey, self.clo,
                self.chi)


def morton_codes(xf: torch.Tensor, cid: torch.Tensor, clouds: int, largest: int) -> torch.Tensor:
    """(n,) int64 Morton keys of float64 points xf (n, d) on the grid of their cloud's box."""
    n, d = xf.shape
    index = cid[:, None].expand(n, d)
    lo = torch.full((clouds, d), np.inf, dtype=xf.dtype, device=xf.device).scatter_reduce(
        0, index, xf, "amin")
    hi = torch.full((clouds, d), -np.inf, dtype=xf.dtype, device=xf.device).scatter_reduce(
        0, index, xf, "amax")
    total = 2
    while total < MORTON_BITS and (1 << (total - 2)) < largest:
        total += 1
    b = max(1, total // d)
    cells = float(1 << b)
    span = hi - lo
    scale = torch.where(span > 0, cells / torch.where(span > 0, span, 1.0), 0.0)
    q = ((xf - lo[cid]) * scale[cid]).clamp(0, cells - 1).to(torch.int64)  # (n, d)
    code = torch.zeros(n, dtype=torch.int64, device=xf.device)
    for i in range(b):
        for j in range(d):
            code |= ((q[:, j] >> i) & 1) << (i * d + j)
    return code


def build(x, ptr, mind, block_n: int, block_d: int, rows=None) -> Layout:
    """The layout of clouds ``ptr`` (P + 1,) int64 NumPy over the rows ``rows`` of x (default: all).

    mind (N,) fp32 tensor over x's rows (+inf, or MARK: left out), or None
    (every row live, +inf).
    """
    dev, (n, d) = x.device, x.shape
    clouds = len(ptr) - 1
    if rows is None:
        rows = torch.arange(n, device=dev)
    cid = torch.repeat_interleave(torch.arange(clouds, device=dev),
                                  torch.as_tensor(np.diff(ptr), device=dev))
    if mind is not None:
        live = mind[rows] >= 0
        rows, cid = rows[live], cid[live]
    cnt = torch.bincount(cid, minlength=clouds)
    largest = int(cnt.max()) if clouds else 0
    code = morton_codes(x[rows].double(), cid, clouds, largest)
    order = torch.argsort((cid << 32) | code, stable=True)  # clouds stay in ptr order
    rows, cid = rows[order], cid[order]
    nch = (cnt + block_n - 1) // block_n
    row0 = (torch.cumsum(nch, 0) - nch) * block_n
    chunks = max(1, int(nch.sum()))
    size = chunks * block_n
    pos = row0[cid] + torch.arange(len(rows), device=dev) - (torch.cumsum(cnt, 0) - cnt)[cid]
    xs = torch.zeros((size, d), dtype=x.dtype, device=dev)
    xs[pos] = x[rows]
    ids = torch.zeros(size, dtype=torch.int64, device=dev)
    ids[pos] = rows
    m = torch.full((size,), -1.0, dtype=torch.float32, device=dev)
    m[pos] = np.inf if mind is None else mind[rows]
    filled = torch.zeros(size, dtype=torch.bool, device=dev)
    filled[pos] = True
    xf, inside = xs.float(), filled[:, None]
    lo = torch.zeros((size // BUCKET, block_d), dtype=torch.float32, device=dev)
    hi = torch.zeros_like(lo)
    lo[:, :d] = torch.where(inside, xf, np.inf).view(-1, BUCKET, d).amin(1)
    hi[:, :d] = torch.where(inside, xf, -np.inf).view(-1, BUCKET, d).amax(1)
    bits = (m + 0.0).view(torch.int32).to(torch.int64)
    key = torch.where(m >= 0, (bits << 32) | (LOW - ids), torch.zeros_like(ids))
    where = torch.full((n,), -1, dtype=torch.int64, device=dev)
    where[rows] = pos
    bkey, nb = key.view(-1, BUCKET).amax(1), block_n // BUCKET
    return Layout(xs=xs, ids=ids, mind=m, bkey=bkey, lo=lo, hi=hi,
                  ckey=bkey.view(chunks, nb).amax(1), clo=lo.view(chunks, nb, block_d).amin(1),
                  chi=hi.view(chunks, nb, block_d).amax(1), row0=row0, nch=nch, chunks=chunks,
                  where=where)
