"""torch-fps's ``farthest_point_sampling`` with hminsel inside.

``from hminsel.compat.torch_fps import farthest_point_sampling``
"""
from __future__ import annotations

from typing import Optional

import torch

from .. import torch_ops
from . import _masks


def farthest_point_sampling(points: torch.Tensor, valid_mask: torch.Tensor, k: int, *,
                            start_idx: Optional[torch.Tensor] = None, random_start: bool = True,
                            generator: Optional[torch.Generator] = None,
                            precision: Optional[torch.dtype] = None, validate: bool = True,
                            assume_finite: bool = False) -> torch.Tensor:
    """Select ``k`` maximally spread-out points per batch row, torch-fps's semantics.

    Args:
        points: (B, N, D) float tensor.
        valid_mask: (B, N) bool; False marks padded/invalid points. Points with
            a non-finite coordinate are invalid too (unless ``assume_finite``).
        k: samples per row; must be <= each row's valid count.
        start_idx: optional (B,) first index per row, in [0, N) (checked
            with ``validate``); a slot that is invalid (masked, non-finite)
            or, without ``validate``, out of range is repaired to the row's
            first valid index.
        random_start: without ``start_idx``, draw a uniform valid first index
            (the same draw as torch-fps for the same ``generator``); else the
            first valid index.
        generator: generator of the random start.
        precision: compute dtype (default float32; float64 for double math).
        validate: check ``k <= valid count``; with False a short row repeats
            its last pick to fill the k slots (as torch-fps pads).
        assume_finite: skip the finiteness pass.

    Returns:
        (B, k) int64 indices into each row.

    Example:
        >>> pts = torch.rand(8, 1024, 3); mask = torch.ones(8, 1024, dtype=torch.bool)
        >>> idx = farthest_point_sampling(pts, mask, 128, random_start=False)
    """
    if points.dim() != 3:
        raise ValueError(f"points must have shape [B, N, D]; got {tuple(points.shape)}")
    if valid_mask.dim() != 2 or valid_mask.shape != points.shape[:2]:
        raise ValueError(f"valid_mask must have shape [B, N] = {tuple(points.shape[:2])}; "
                         f"got {tuple(valid_mask.shape)}")
    if k < 0:
        raise ValueError(f"k must be non-negative; got {k}")
    dtype = torch.float32 if precision is None else precision
    if dtype not in (torch.float16, torch.float32, torch.float64) and not (
            dtype == torch.bfloat16 and points.device.type == "cuda"):
        raise ValueError(f"precision must be float16, float32 or float64 (bfloat16 on CUDA); "
                         f"got {dtype} on {points.device.type}")
    points = points.to(dtype)
    b, n, _ = points.shape
    if k == 0:
        return torch.zeros((b, 0), dtype=torch.long, device=points.device)
    if n == 0:
        raise ValueError("FPS with k > 0 requires at least one point (got N = 0)")
    valid = valid_mask.to(device=points.device, dtype=torch.bool)
    if not assume_finite:
        valid = _masks.finite_and(valid, points)
    count, first = _masks.counts_and_first(valid)  # with validate, a row short of k fails in the op
    if start_idx is not None:
        if start_idx.numel() != b:
            raise ValueError(f"start_idx must have shape [B] = [{b}]; got {tuple(start_idx.shape)}")
        start = start_idx.to(device=points.device, dtype=torch.long).reshape(b)
        if validate and not _masks.traced() and bool(((start < 0) | (start >= n)).any()):
            raise ValueError(f"start_idx values must be within [0, N) = [0, {n}); got {start.tolist()}")
        safe = start.clamp(0, n - 1)
        ok = valid.gather(1, safe.unsqueeze(1)).squeeze(1) & (safe == start)
        start = torch.where(ok, start, first)
    elif random_start:
        scores = torch.rand(b, n, generator=generator, device=points.device)  # torch-fps's draw
        start = _masks.best_valid(valid, scores)
    else:
        start = first
    counts = torch.full_like(count, k) if validate else count.clamp(max=k)
    idx = torch_ops.fps_masked(points, valid, counts, k, start)
    if validate:
        return idx
    # rows that ran out repeat their last pick (empty rows: 0)
    last = idx.gather(1, (counts - 1).clamp(min=0).unsqueeze(1)).clamp(min=0)
    return torch.where(idx >= 0, idx, last)
