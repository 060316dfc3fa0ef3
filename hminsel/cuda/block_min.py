"""``block_min`` on the CUDA backend: cuBLAS finds candidates, the CUDA kernels make them exact.

GEMM-form values ``G = |x_i - mu|^2 + |y_j - mu|^2 - 2 x_i.y_j`` come from
``torch.mm`` on centred fp32 tiles (full fp32 whatever torch's matmul
precision says: ``gemm_coef`` bounds an fp32 product). A row whose best and
second best are more than ``2 eps_i`` apart is certified; any other row is
settled by its window: every column with ``G_ij <= D_ib + eps_i`` (b its
candidate) gets a direct value from ``pair_dist``, which shares the steps'
summation order, and the smallest wins, then the lowest column. Few centres:
``direct_min`` over every centre.
"""
from __future__ import annotations

import contextlib

import torch

from . import loader
from .kernels import _props, _vec

GEMM_MIN_CENTRES = 64  # fewer centres: the direct form alone is cheaper
GEMM_MIN_DIM = 16
GEMM_ROWS, GEMM_COLS = 4096, 8192  # a GEMM tile: 128 MiB of fp32; with its temporaries ~0.7 GiB


def gemm_coef(d: int) -> float:
    """|GEMM form - direct form| <= coef (|x_i - mu|^2 + max_j |y_j - mu|^2) in fp32 (cpu_gemm.gemm_coef)."""
    return 4.0 * (d + 8) * float(torch.finfo(torch.float32).eps)


def _grid(x, n: int) -> int:
    return max(1, min(-(-n // (loader.THREADS // 32)), 4 * _props(x)["sm_count"]))


def _direct(x, y, ids, self_mask: bool):
    n, (m, d) = len(ids), y.shape
    value = torch.empty(n, dtype=torch.float32, device=x.device)
    index = torch.empty(n, dtype=torch.int64, device=x.device)
    if n:
        loader.launch("direct_min", _grid(x, n), (x, ids, n, y, m, d, x.stride(0), y.stride(0),
                                                  int(self_mask), _vec(x, y), value, index))
    return value, index


def _pair_dist(x, ids, y, cols):
    n, d = len(ids), x.shape[1]
    value = torch.empty(n, dtype=torch.float32, device=x.device)
    if n:
        loader.launch("pair_dist", _grid(x, n), (x, ids, y, cols, n, d, x.stride(0), y.stride(0),
                                                 _vec(x, y), value))
    return value


def _matmul_precision():
    """The caller's fp32 matmul settings: the legacy one (None where torch refuses to read a
    mix of the two APIs) and the per-backend ``fp32_precision`` knobs this torch has (2.9+)."""
    try:
        legacy = torch.get_float32_matmul_precision()
    except RuntimeError:
        legacy = None
    knobs = [torch.backends.cuda.matmul, getattr(getattr(torch.backends, "mkldnn", None), "matmul", None)]
    return legacy, [(k, k.fp32_precision) for k in knobs if hasattr(k, "fp32_precision")]


@contextlib.contextmanager
def full_fp32_matmul():
    """cuBLAS fp32 GEMMs in full fp32 (no TF32) inside the block; the caller's settings after.

    torch 2.9+ keeps the legacy ``float32_matmul_precision`` beside the new ``fp32_precision``
    knobs, and cuBLAS refuses a GEMM while the two disagree ("mix of the legacy and new APIs"):
    the new knob alone would break every GEMM after a user's
    ``torch.set_float32_matmul_precision("high")``. ``set_float32_matmul_precision("highest")``
    sets the legacy setting and the knobs it governs (cuda's and mkldnn's) alike. On the way
    out the legacy setting comes back first (it writes the knobs too), then the knobs as they
    were.
    """
    legacy, knobs = _matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        yield
    finally:
        if legacy is not None:
            torch.set_float32_matmul_precision(legacy)
        for knob, value in knobs:
            knob.fp32_precision = value


class _Tiles:
    """The GEMM-form tiles of rows ``x[ids]`` against y, centred on y's mean, in fp32."""

    def __init__(self, x, y, ids, self_mask: bool):
        self.x, self.y, self.self_mask = x, y, self_mask
        self.mu = y.float().mean(0)
        self.cols = [(lo, min(len(y), lo + GEMM_COLS)) for lo in range(0, len(y), GEMM_COLS)]
        self.yn = torch.cat([((y[lo:hi].float() - self.mu) ** 2).sum(1) for lo, hi in self.cols])
        self.xn = torch.cat([((x.index_select(0, ids[r:r + GEMM_ROWS]).float() - self.mu) ** 2).sum(1)
                             for r in range(0, len(ids), GEMM_ROWS)]) if len(ids) else self.yn[:0]

    def __call__(self, ids):
        """Yield ``(r0, rid, col, g)``: rows ``ids[r0:r0 + len(rid)]`` against columns ``col``."""
        with full_fp32_matmul():
            for r0 in range(0, len(ids), GEMM_ROWS):
                rid = ids[r0:r0 + GEMM_ROWS]
                xc = self.x.index_select(0, rid).float() - self.mu
                xn = (xc * xc).sum(1)
                for lo, hi in self.cols:
                    g = xn[:, None] + self.yn[None, lo:hi] - 2.0 * (xc @ (self.y[lo:hi].float() - self.mu).T)
                    g.clamp_min_(0.0)
                    col = torch.arange(lo, hi, device=self.x.device)
                    if self.self_mask:
                        g.masked_fill_(col[None, :] == rid[:, None], float("inf"))
                    yield r0, rid, col, g


def _candidates(tiles, ids):
    """GEMM-form ``(best, second, argmin)`` of rows ``x[ids]``; lowest column on ties."""
    n = len(ids)
    dev = tiles.x.device
    best = torch.full((n,), float("inf"), device=dev)
    second = torch.full((n,), float("inf"), device=dev)
    arg = torch.zeros(n, dtype=torch.int64, device=dev)
    past = len(tiles.y)  # above every column (a host int: no sync a tile)
    for r0, rid, col, g in tiles(ids):
        b, s, a = best[r0:r0 + len(rid)], second[r0:r0 + len(rid)], arg[r0:r0 + len(rid)]
        m1 = g.min(1).values
        a1 = torch.where(g == m1[:, None], col[None, :], past).min(1).values  # lowest column
        m2 = torch.where(col[None, :] == a1[:, None], float("inf"), g).min(1).values
        torch.minimum(torch.minimum(s, m2), torch.maximum(b, m1), out=s)
        torch.where(m1 < b, a1, a, out=a)  # strict: earlier tiles keep ties
        torch.minimum(b, m1, out=b)
    return best, second, arg


def _window(tiles, ids, thresh, value, index):
    """Fold into value/index every column with ``G <= thresh`` (direct values, lowest on ties)."""
    key = (value.view(torch.int32).to(torch.int64) << 32) | index  # the candidate itself
    for r0, rid, col, g in tiles(ids):
        r, c = torch.nonzero(g <= thresh[r0:r0 + len(rid), None], as_tuple=True)
        if len(r):
            dist = _pair_dist(tiles.x, rid[r], tiles.y, col[c])
            keys = (dist.view(torch.int32).to(torch.int64) << 32) | col[c]
            key.scatter_reduce_(0, r0 + r, keys, "amin")  # smallest value, then lowest column
    value.copy_((key >> 32).to(torch.int32).view(torch.float32))
    index.copy_(key & 0xFFFFFFFF)


def block_min(x, y, ids, self_mask: bool):
    """``(value fp32, index int64)`` tensors: the exact nearest row of y for rows ``x[ids]``."""
    n, (m, d) = len(ids), y.shape
    if n == 0 or m < GEMM_MIN_CENTRES or d < GEMM_MIN_DIM:
        return _direct(x, y, ids, self_mask)
    tiles = _Tiles(x, y, ids, self_mask)
    best, second, arg = _candidates(tiles, ids)
    eps = gemm_coef(d) * (tiles.xn.double() + tiles.yn.max().double())
    value = _pair_dist(x, ids, y, arg)
    redo = torch.nonzero((second - best).double() <= 2.0 * eps).flatten()
    if len(redo):  # not certified: the candidate window
        v, i = value[redo], arg[redo]
        _window(tiles, ids.index_select(0, redo), v.double() + eps[redo], v, i)
        value[redo], arg[redo] = v, i
    return value, arg
