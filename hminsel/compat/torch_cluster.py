"""``torch_cluster.fps`` with hminsel inside: ``from hminsel.compat.torch_cluster import fps``."""
from __future__ import annotations

from typing import Optional, Union

import numpy as np
import torch

from .. import torch_ops
from . import _masks


def _check_sorted(batch: torch.Tensor) -> None:
    """Raise unless ``batch`` is non-decreasing: the op takes each example as one run of rows,
    so an unsorted vector would group points by position, not by id (reads the data: eager only)."""
    if _masks.on_host(batch):
        ids = batch.numpy()
        down = np.flatnonzero(ids[1:] < ids[:-1])
    else:
        down = torch.nonzero(batch[1:] < batch[:-1]).flatten()
    if len(down):
        i = int(down[0])
        raise ValueError(f"batch must be sorted (points of an example contiguous); batch[{i + 1}] = "
                         f"{int(batch[i + 1])} < batch[{i}] = {int(batch[i])}. Sort src and batch "
                         "(stable argsort)")


def _ratio_per_example(r: torch.Tensor, num: int) -> torch.Tensor:
    """``r`` (one value, or one per example) as (num,) ratios; a shape check, so no host sync."""
    if r.numel() not in (1, num):
        raise ValueError(f"ratio must hold one value per example or one value; got {r.numel()} "
                         f"for {num} examples")
    return r.expand(num).contiguous()


def fps(src: torch.Tensor, batch: Optional[torch.Tensor] = None,
        ratio: Union[float, torch.Tensor, None] = 0.5, random_start: bool = True,
        batch_size: Optional[int] = None, ptr=None) -> torch.Tensor:
    """Farthest point sampling per example, torch_cluster's signature and semantics.

    Args:
        src: (N, F) point features (a 1-D tensor is taken as (N, 1)).
        batch: (N,) sorted example id of each point (``None``: one example; an
            unsorted vector is an error, checked in eager mode).
        ratio: sampling ratio in (0, 1], a float or a tensor (one per example
            or a single value). Example b keeps ``ceil(ratio * n_b)`` points, computed
            in float32 as torch_cluster does. ``None`` means 0.5.
        random_start: start each example at a random point (``torch.rand``,
            so ``torch.manual_seed`` makes it reproducible); else at its first.
        batch_size: number of examples B (default ``batch.max() + 1``, a value of
            the data: give it under ``torch.compile(fullgraph=True)``); trailing
            examples may be empty and get no points.
        ptr: (B + 1,) CSR offsets (tensor or list) instead of ``batch``.

    Returns:
        LongTensor of global point indices, example by example, each in
        selection order.

    Example:
        >>> src = torch.tensor([[-1., -1.], [-1., 1.], [1., -1.], [1., 1.]])
        >>> fps(src, torch.tensor([0, 0, 0, 0]), ratio=0.5, random_start=False)
        tensor([0, 3])
    """
    src = src.view(-1, 1) if src.dim() == 1 else src
    if src.dim() != 2:
        raise ValueError(f"src must be (N, F); got shape {tuple(src.shape)}")
    ratio = 0.5 if ratio is None else ratio
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float, torch.Tensor)):
        raise TypeError(f"ratio must be a float in (0, 1] or a tensor of them; got {ratio!r}")
    if isinstance(ratio, (int, float)) and not 0 < ratio <= 1:
        raise ValueError(f"ratio must be in (0, 1]; got {ratio}")
    dev = src.device  # every tensor the op takes lies there (its kernel is that device's)
    r = torch.as_tensor(ratio, dtype=torch.float32).reshape(-1).to(dev)  # tensors are checked in the op
    if ptr is not None:
        ptr_vec = torch.as_tensor(ptr, dtype=torch.long).to(dev)
    elif batch is not None:
        if batch.dim() != 1 or batch.numel() != src.size(0):
            raise ValueError(f"batch must be 1-D, one example id per point ({src.size(0)},); got "
                             f"shape {tuple(batch.shape)}")
        eager = not _masks.traced()
        if eager:  # values of the data: checked when not traced
            _check_sorted(batch)
            if batch.numel() and int(batch[0]) < 0:  # sorted: the first is the least
                raise ValueError(f"batch ids must be >= 0; got {int(batch[0])}")
        if batch_size is None:  # a value of the data: under torch.compile(fullgraph=True) give batch_size
            batch_size = (int(batch[-1]) if eager else int(batch.max())) + 1 if batch.numel() else 0
        elif eager and batch.numel() and int(batch[-1]) >= batch_size:  # sorted: the last is the most
            raise ValueError(f"batch holds ids >= batch_size = {batch_size}")
        deg = _masks.degrees(batch.to(dev).long(), batch_size)  # (B,): a static shape
        ptr_vec = torch.cat([deg.new_zeros(1), deg.cumsum(0)])
    else:
        ptr_vec = torch.tensor([0, src.size(0)], device=dev)
    deg = ptr_vec[1:] - ptr_vec[:-1]
    if random_start:
        starts = torch_ops.uniform_starts(deg)
    else:
        starts = torch.zeros_like(deg)
    return torch_ops.fps_ratio(src.detach(), ptr_vec, _ratio_per_example(r, deg.shape[0]), starts)
