"""torch-quickfps's ``sample`` / ``sample_idx`` with hminsel inside.

``from hminsel.compat import torch_quickfps`` then ``torch_quickfps.sample(x, 1024, start_idx=0)``

As in torch-quickfps: ``x`` is [..., N, C] (any batch dims), read as float32;
``k`` picks per cloud (1 <= k <= N); ``start_idx`` one start for every cloud,
which ``mask`` must allow in each, or None: a ``torch.randint`` draw per cloud
without a mask, each cloud's first allowed point with one; ``mask`` [..., N]
(bool or uint8, True: may be picked) needs k allowed points in every cloud;
``sample`` returns ``(points [..., k, C] in x's dtype, indices [..., k])`` and
``sample_idx`` the indices, int64. ``h`` and ``low_d`` (its bucket tree) are
accepted and unused: hminsel sizes its own buckets, and computes the exact
FPS (ties to the lowest index) for every C. The ``*_baseline`` functions (its
vanilla FPS) return the same picks. Tensors run ``hminsel::fps_masked``
on either device (traceable by ``torch.compile``; on a GPU ``select_batched``
runs there).
"""
from __future__ import annotations

from typing import Optional, Tuple, Union

import torch

from .. import torch_ops
from . import _masks


def _checked(x, k, start_idx, mask):
    """``(points (B, N, C) float32, valid (B, N) bool, starts (B,) int64)`` with the peer's rules."""
    if x.dim() < 2:
        raise ValueError(f"x must have at least 2 dims [..., N, C]; got shape {tuple(x.shape)}")
    n, c = x.shape[-2], x.shape[-1]
    if not 1 <= k <= n:
        raise ValueError(f"k must be in [1, N = {n}]; got {k}")
    points = x.reshape(-1, n, c).to(torch.float32)
    b = points.shape[0]
    if mask is None:
        valid = _masks.all_valid(b, n, x.device)
    else:
        if mask.numel() != b * n or mask.dtype not in (torch.bool, torch.uint8):
            raise ValueError(f"mask must be bool or uint8 of shape [..., N] = {tuple(x.shape[:-1])}; "
                             f"got {mask.dtype} of shape {tuple(mask.shape)}")
        valid = mask.reshape(b, n).to(device=x.device, dtype=torch.bool)
        count, first = _masks.counts_and_first(valid)
        if not _masks.traced():  # values of the data: checked when not traced
            short = (count < k).nonzero()  # (traced, the op's own checks raise)
            if len(short):
                row = int(short[0])
                raise ValueError(f"mask has only {int(count[row])} valid points in batch {row} "
                                 f"but k = {k}")
    if start_idx is not None:
        if not 0 <= start_idx < n:
            raise ValueError(f"start_idx must be in [0, N = {n}); got {start_idx}")
        if not _masks.traced():
            banned = (~valid[:, start_idx]).nonzero()
            if len(banned):
                raise ValueError(f"mask disallows start_idx={start_idx} in batch {int(banned[0])}")
        starts = torch.full((b,), int(start_idx), dtype=torch.int64, device=x.device)
    elif mask is None:
        starts = torch.randint(0, n, (b,), dtype=torch.int64, device=x.device)  # the peer's draw
    else:
        starts = first  # the first allowed point of each cloud
    return points, valid, starts


def _indices(points, valid, starts, k: int) -> torch.Tensor:
    """(B, k) int64 indices into each cloud."""
    if points.shape[0] == 0:  # no cloud: nothing to run, on any device
        return torch.empty((0, k), dtype=torch.int64, device=points.device)
    counts = torch.full((points.shape[0],), k, dtype=torch.int64, device=points.device)
    return torch_ops.fps_masked(points, valid, counts, k, starts)


def sample_idx(x: torch.Tensor, k: int, h: Optional[int] = None, start_idx: Optional[int] = None,
               mask: Optional[torch.Tensor] = None, low_d: Optional[int] = None) -> torch.Tensor:
    """FPS indices [..., k] (int64) of each cloud of ``x`` [..., N, C]."""
    points, valid, starts = _checked(x, k, start_idx, mask)
    return _indices(points, valid, starts, k).reshape(*x.shape[:-2], k)


def sample(x: torch.Tensor, k: int, h: Optional[int] = None, start_idx: Optional[int] = None,
           mask: Optional[torch.Tensor] = None, low_d: Optional[int] = None,
           return_points: bool = True) -> Union[torch.Tensor, Tuple[torch.Tensor, torch.Tensor]]:
    """``(points [..., k, C], indices [..., k])`` of each cloud of ``x`` [..., N, C]; with
    ``return_points=False`` the indices only.

    Example:
        >>> x = torch.rand(64, 2048, 3)
        >>> points, idx = sample(x, 1024, start_idx=0)
    """
    idx = sample_idx(x, k, h, start_idx, mask, low_d)
    if not return_points:
        return idx
    n, c = x.shape[-2], x.shape[-1]
    picked = _masks.gather_points(x.reshape(-1, n, c), idx.reshape(-1, k)).reshape(*idx.shape, c)
    return picked, idx


def sample_baseline(x, k, h=None, start_idx=None, mask=None, low_d=None, return_points=True):
    """torch-quickfps's vanilla FPS: the same picks as ``sample``."""
    return sample(x, k, h, start_idx, mask, low_d, return_points)


def sample_idx_baseline(x, k, h=None, start_idx=None, mask=None, low_d=None):
    """torch-quickfps's vanilla FPS, indices only: the same picks as ``sample_idx``."""
    return sample_idx(x, k, h, start_idx, mask, low_d)


__all__ = ["sample", "sample_idx", "sample_baseline", "sample_idx_baseline"]
