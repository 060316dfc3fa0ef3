"""PyTorch3D's ``sample_farthest_points`` with hminsel inside.

``from hminsel.compat.pytorch3d import sample_farthest_points``
"""
from __future__ import annotations

from typing import List, Optional, Tuple, Union

import torch

from .. import torch_ops
from . import _masks


def sample_farthest_points(points: torch.Tensor, lengths: Optional[torch.Tensor] = None,
                           K: Union[int, List, torch.Tensor] = 50,
                           random_start_point: bool = False) -> Tuple[torch.Tensor, torch.Tensor]:
    """Iterative farthest point sampling of K points per cloud, PyTorch3D's semantics.

    Args:
        points: (N, P, D) batch of clouds (computed in float32, as PyTorch3D does).
        lengths: (N,) valid points per cloud (default P); points past a
            cloud's length are ignored.
        K: samples per cloud: an int, or a list / (N,) tensor of per-cloud counts
            (under ``torch.compile(fullgraph=True)``: an int or a list of ints;
            a tensor's max sets the output's shape, a value of the data).
        random_start_point: start each cloud at a random valid point, drawn as
            PyTorch3D draws it (``torch.randint`` a cloud on torch's default
            generator, so ``torch.manual_seed`` gives PyTorch3D's starts); else at point 0.

    Returns:
        ``(selected_points, selected_indices)``: (N, K, D) float32 points whatever
        ``points``' dtype (PyTorch3D gathers them from its float32 copy of ``points``)
        and (N, K) int64 indices into each cloud; K is ``max(K)`` for per-cloud K.
        A cloud with fewer than K points (or a smaller K) is padded with index
        -1 and points 0.0.

    Example:
        >>> pts, idx = sample_farthest_points(torch.rand(4, 1000, 3), K=64)
    """
    if points.dim() != 3:
        raise ValueError(f"points must be (N, P, D); got shape {tuple(points.shape)}")
    n, p, _ = points.shape
    dev = points.device  # every tensor the op takes lies there (its kernel is that device's)
    if lengths is None:
        lengths = torch.full((n,), p, dtype=torch.int64, device=dev)
    if lengths.shape != (n,):
        raise ValueError("points and lengths must have same batch dimension.")
    lengths = lengths.to(device=dev, dtype=torch.int64)
    if not _masks.traced() and n:  # values of the data: checked when not traced
        if bool((lengths > p).any()):
            raise ValueError(f"A value in lengths was too large: got {lengths.tolist()}, P = {p}")
        if bool((lengths < 0).any()):
            raise ValueError(f"lengths must be >= 0; got {lengths.tolist()}")
    if isinstance(K, float) or (isinstance(K, torch.Tensor) and K.is_floating_point()):
        raise ValueError(f"K must be an int, a list of ints or an integer tensor; got {K!r}")
    if isinstance(K, int):
        kmax, k = K, torch.full((n,), K, dtype=torch.int64, device=dev)
    elif isinstance(K, (list, tuple)) and all(isinstance(v, int) for v in K):  # static: traceable
        if len(K) != n:
            raise ValueError("K and points must have the same batch dimension")
        if any(v < 0 for v in K):
            raise ValueError(f"K must be >= 0; got {list(K)}")
        kmax, k = max(K, default=0), torch.tensor(list(K), dtype=torch.int64, device=dev)
    else:
        k = torch.as_tensor(K, dtype=torch.int64).to(dev)
        if k.shape != (n,):
            raise ValueError("K and points must have the same batch dimension")
        kmax = int(k.max()) if n else 0
        if bool((k < 0).any()):
            raise ValueError(f"K must be >= 0; got {k.tolist()}")
    if kmax < 0:
        raise ValueError(f"K must be >= 0; got {K}")
    points = points.to(torch.float32)
    mask = _masks.prefix_mask(lengths, p)
    starts = _random_starts(lengths) if random_start_point else torch.zeros_like(lengths)
    counts = torch.minimum(k, lengths)
    idx = torch_ops.fps_masked(points, mask, counts, kmax, starts)
    if p == 0:  # nothing to gather: all padding
        return points.new_zeros((n, kmax, points.shape[2])), idx
    return _masks.gather_points(points, idx), idx


def _random_starts(lengths: torch.Tensor) -> torch.Tensor:
    """PyTorch3D's draws: ``torch.randint(high=length, size=(1,))`` a cloud, in cloud order,
    on torch's default (CPU) generator whatever the device, so a seed gives its starts (a
    cloud of no points draws nothing; PyTorch3D raises there). Traced by ``torch.compile``,
    one ``torch.rand`` draw on the device instead: a loop of data-sized draws is not traceable."""
    if _masks.traced():
        return torch_ops.uniform_starts(lengths)
    drawn = [int(torch.randint(high=h, size=(1,))) if h > 0 else 0 for h in lengths.tolist()]
    return torch.tensor(drawn, dtype=torch.int64, device=lengths.device)
