"""hminsel's selections as ``torch.library`` custom ops, for ``torch.compile``.

Importing this module registers the ops (``import hminsel`` never imports
torch; ``hminsel.compat`` imports this). Each op has a fake (meta)
implementation giving its output shape, so ``torch.compile(fn, fullgraph=True)``
traces a function that calls them without a graph break: counts passed as
``int`` are static; ``fps_ratio``'s output length depends on the data and is an
unbacked size. Ops take tensors on the CPU or a GPU (the CUDA kernels run
``select`` / ``select_batched`` on the device, the ``*_on_device`` functions
below), return indices as int64 on the input's device and never take a random
number themselves: random starts are drawn by the caller (traceable).

Ops:
    hminsel::fps(x, k, start, metric) -> (indices (k,), radii (k,) float64)
    hminsel::fps_batched(x, ptr, k, starts, metric) -> (indices (P*k,), radii (P*k,))
    hminsel::fps_masked(points, mask, counts, kmax, starts) -> (B, kmax) row-local
        indices, -1 past counts[b]
    hminsel::fps_ratio(x, ptr, ratio, starts) -> (sum_p ceil(ratio * n_p),) global indices
"""
from __future__ import annotations

import numpy as np
import torch

from . import _finite, _inputs, api, batched

_LIB = "hminsel"


def _via_host(x, backend: str) -> bool:
    """An input the GPU path does not take (float64, no rows) where it would run: the CPU op
    runs it (a GPU tensor, or a GPU backend asked for)."""
    gpu = x.device.type != "cpu" or backend not in ("auto", "cpu", "numpy")
    return gpu and (x.dtype == torch.float64 or x.shape[0] == 0)


@torch.library.custom_op(f"{_LIB}::fps", mutates_args=(), device_types="cpu")
def fps(x: torch.Tensor, k: int, start: int, metric: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``hminsel.select(x, k, start=start, metric=metric)`` as an op: (indices, radii)."""
    sel = api.select(x.detach(), k, start=start, metric=metric, backend="auto")  # bfloat16: as float32
    return (torch.as_tensor(np.asarray(sel.indices), dtype=torch.int64),
            torch.as_tensor(np.asarray(sel.radii, np.float64)))


def fps_on_device(x, k: int, start: int, metric: str, backend: str = "auto"):
    """``fps`` where x lies (a CUDA tensor: the triton backend): (indices, radii float64)."""
    if _via_host(x, backend):
        return tuple(t.to(x.device) for t in fps(x.cpu(), k, start, metric))
    sel = api.select(x.detach(), k, start=start, metric=metric, backend=backend)
    return sel.indices, sel.radii.to(torch.float64)


fps.register_kernel("cuda")(fps_on_device)


@fps.register_fake
def _(x, k, start, metric):
    return x.new_empty((k,), dtype=torch.int64), x.new_empty((k,), dtype=torch.float64)


def _constant_outputs(ctx, inputs, output):
    """The radii are measured, not a function to differentiate (as ``select``'s): an input that
    requires grad gives outputs that do not, and a compiled function may return them."""
    ctx.mark_non_differentiable(*output)
    ctx.inputs = len(inputs)


def _no_gradient(ctx, *grads):
    return (None,) * ctx.inputs


fps.register_autograd(_no_gradient, setup_context=_constant_outputs)


@torch.library.custom_op(f"{_LIB}::fps_batched", mutates_args=(), device_types="cpu")
def fps_batched(x: torch.Tensor, ptr: torch.Tensor, k: int, starts: torch.Tensor,
                metric: str) -> tuple[torch.Tensor, torch.Tensor]:
    """``hminsel.select_batched(x, k, ptr=ptr, start=starts)`` with one k for every problem."""
    res = batched.select_batched(x, k, ptr=ptr, start=starts, metric=metric)
    return res.indices, res.radii.to(torch.float64)


def fps_batched_on_device(x, ptr, k: int, starts, metric: str, backend: str = "auto"):
    """``fps_batched`` where x lies (ptr and starts are read on the host)."""
    if _via_host(x, backend):
        return tuple(t.to(x.device) for t in fps_batched(x.cpu(), ptr.cpu(), k, starts.cpu(), metric))
    res = batched.select_batched(x.detach(), k, ptr=ptr.cpu(), start=starts.cpu(), metric=metric,
                                 backend=backend)
    return res.indices, res.radii.to(torch.float64)


fps_batched.register_kernel("cuda")(fps_batched_on_device)


@fps_batched.register_fake
def _(x, ptr, k, starts, metric):
    total = (ptr.shape[0] - 1) * k
    return x.new_empty((total,), dtype=torch.int64), x.new_empty((total,), dtype=torch.float64)


fps_batched.register_autograd(_no_gradient, setup_context=_constant_outputs)


def uniform_starts(sizes: torch.Tensor) -> torch.Tensor:
    """A uniform random slot of each of ``sizes`` (0 for an empty one), one ``torch.rand``
    draw on their device: torch_cluster's start (traceable by ``torch.compile``)."""
    return (torch.rand(sizes.shape, device=sizes.device) * sizes).long().clamp(
        max=(sizes - 1).clamp(min=0))


def _select_batched(name: str, x, *args, float32_only: bool = False, **kwargs):
    """``batched.select_batched`` with its scale errors said of the op's argument ``name``
    (not x); ``float32_only``: the drop-ins that take this op read their points as float32, so
    "pass float64" is no way out (scale them instead)."""
    try:
        return batched.select_batched(x, *args, **kwargs)
    except ValueError as exc:
        said = _finite.scale_error_of(exc, name, "" if float32_only else None)
        if said is None:
            raise
        raise said from None


def _check_starts(mask: np.ndarray | None, counts: np.ndarray, starts: np.ndarray, n: int) -> None:
    """Every row has as many valid slots as picks, and a row with picks starts on one of its
    valid slots (rows without picks: any start). ``mask`` None: all n slots are valid."""
    have = np.full(len(counts), n) if mask is None else mask.sum(axis=1)
    short = np.flatnonzero(counts > have)
    if len(short):
        b = int(short[0])
        raise ValueError(f"row {b} has {int(have[b])} valid point(s) but {int(counts[b])} picks "
                         "were asked of it")
    safe = np.clip(starts, 0, max(n - 1, 0))
    valid = True if mask is None else mask[np.arange(len(counts)), safe]
    ok = (counts == 0) | ((starts == safe) & valid if n else False)
    if not np.all(ok):
        b = int(np.flatnonzero(~ok)[0])
        raise ValueError(f"starts[{b}] = {starts[b]} is not a valid slot of row {b} (of N = {n}); "
                         "a row with picks must start on one of its valid slots")


def _masked_numpy(points: np.ndarray, mask: np.ndarray, counts: np.ndarray, kmax: int,
                  starts: np.ndarray) -> np.ndarray:
    """Row-local indices (B, kmax), -1 padded, of FPS over each row's valid points."""
    num = points.shape[0]
    if len(counts) != num or (counts < 0).any() or (counts > kmax).any():
        raise ValueError(f"counts must hold {num} values (one per row of points) in 0 .. kmax = {kmax}; "
                         f"got {counts.tolist()}")
    if points.shape[1] == 0 or not counts.any():  # no slots, or no picks: all padding
        return np.full((num, kmax), -1, np.int64)
    n = points.shape[1]
    every = bool(mask.all())
    _check_starts(None if every else mask, counts, starts, n)
    if every:  # every slot valid (clouds of one size): the points as they lie, no gather
        rows_b, rows_i, valid = None, None, points.reshape(num * n, -1)
        ptr = np.arange(num + 1, dtype=np.int64) * n
        local = np.where(counts > 0, starts, 0)
    else:
        rows_b, rows_i = np.nonzero(mask)                  # valid slots, row-major order
        valid = points[rows_b, rows_i]
        ptr = np.concatenate([[0], np.cumsum(mask.sum(axis=1))]).astype(np.int64)
        rank = np.cumsum(mask, axis=1) - 1                 # slot -> position among valid
        local = rank[np.arange(num), np.clip(starts, 0, max(n - 1, 0))]
        local[counts == 0] = 0  # no pick: the start is not read (and need not be a valid slot)
    try:  # select_batched's own scan finds non-finite rows: named here as slots of points
        res = _select_batched("points", valid, counts, ptr=ptr, start=local, float32_only=True)
    except _finite.NonfiniteRows as exc:
        first = int(exc.rows[0])
        b, i = divmod(first, n) if rows_b is None else (rows_b[first], rows_i[first])
        raise ValueError(f"points[{b}, {i}] has NaN or inf ({len(exc.rows)} valid "
                         "point(s) do); FPS needs finite points: mask them out") from None
    sizes = res.ptr[1:] - res.ptr[:-1]
    if rows_i is None and (sizes == kmax).all():  # every row full: one subtraction
        return res.indices.reshape(num, kmax) - ptr[:-1, None]
    out = np.full((num, kmax), -1, np.int64)
    problem = np.repeat(np.arange(num), sizes)
    picked = res.indices - ptr[problem] if rows_i is None else rows_i[res.indices]
    out[problem, np.arange(len(res.indices)) - res.ptr[problem]] = picked
    return out


@torch.library.custom_op(f"{_LIB}::fps_masked", mutates_args=(), device_types="cpu")
def fps_masked(points: torch.Tensor, mask: torch.Tensor, counts: torch.Tensor, kmax: int,
               starts: torch.Tensor) -> torch.Tensor:
    """FPS over the valid slots of each row of points (B, N, D); (B, kmax) int64, -1 padded.

    ``counts[b] <= valid slots of row b`` picks start at slot ``starts[b]``
    (which must be valid when counts[b] > 0).
    """
    out = _masked_numpy(_inputs.plain_tensor(points, "points").contiguous().numpy(), mask.numpy().astype(bool),
                        counts.numpy().astype(np.int64), kmax, starts.numpy().astype(np.int64))
    return torch.from_numpy(out)


def fps_masked_on_device(points, mask, counts, kmax: int, starts, backend: str = "auto"):
    """``fps_masked`` where the points lie: the rows as the problems of one ``select_batched``
    with the slots as its mask (counts, starts and the checks' answers come to the host)."""
    if _via_host(points, backend):
        return fps_masked(points.cpu(), mask.cpu(), counts.cpu(), kmax, starts.cpu()).to(points.device)
    num, n, dim = points.shape
    counts_h, starts_h = counts.cpu().numpy().astype(np.int64), starts.cpu().numpy().astype(np.int64)
    if len(counts_h) != num or (counts_h < 0).any() or (counts_h > kmax).any():
        raise ValueError(f"counts must hold {num} values (one per row of points) in 0 .. kmax = {kmax}; "
                         f"got {counts_h.tolist()}")
    out = torch.full((num, kmax), -1, dtype=torch.int64, device=points.device)
    if n == 0 or not counts_h.any():  # no slots, or no picks: all padding
        return out
    mask = mask.to(device=points.device, dtype=torch.bool)
    _check_starts(mask.cpu().numpy(), counts_h, starts_h, n)
    ptr = np.arange(num + 1, dtype=np.int64) * n
    flat = torch.where(mask[..., None], points.detach(), 0).reshape(num * n, dim)  # padding: any value
    try:  # select_batched's own scan finds the valid slots' NaN and inf (the padding is 0 here)
        res = _select_batched("points", flat, counts_h, ptr=ptr, mask=mask.reshape(-1),
                              start=np.where(counts_h > 0, starts_h, 0), backend=backend,
                              float32_only=True)
    except _finite.NonfiniteRows as exc:
        b, i = divmod(int(exc.rows[0]), n)
        raise ValueError(f"points[{b}, {i}] has NaN or inf ({len(exc.rows)} valid "
                         "point(s) do); FPS needs finite points: mask them out") from None
    row = torch.div(res.indices, n, rounding_mode="floor")
    slot = torch.arange(len(res.indices), device=points.device) - res.ptr.to(points.device)[row]
    out[row, slot] = res.indices - row * n
    return out


fps_masked.register_kernel("cuda")(fps_masked_on_device)


@fps_masked.register_fake
def _(points, mask, counts, kmax, starts):
    return points.new_empty((points.shape[0], kmax), dtype=torch.int64)


def ratio_counts(sizes: np.ndarray, ratio: np.ndarray) -> np.ndarray:
    """torch_cluster's rule: ceil(float32(n_p) * float32(ratio)), computed in float32."""
    return np.ceil(sizes.astype(np.float32) * ratio.astype(np.float32)).astype(np.int64)


def fps_ratio_on_device(x, ptr, ratio, starts, backend: str = "auto"):
    """``fps_ratio`` where x lies (ptr, ratio and starts are read on the host)."""
    if _via_host(x, backend):
        return fps_ratio(x.cpu(), ptr.cpu(), ratio.cpu(), starts.cpu()).to(x.device)
    sizes = np.diff(ptr.cpu().numpy().astype(np.int64))
    r = ratio.cpu().numpy()
    if not ((r > 0) & (r <= 1)).all():
        raise ValueError(f"ratio must be in (0, 1]; got {r.tolist()}")
    counts = np.minimum(ratio_counts(sizes, r), sizes)
    try:  # select_batched's own scan finds non-finite rows: said in torch_cluster's terms
        return _select_batched("src", x.detach(), counts, ptr=ptr.cpu(), start=starts.cpu(),
                               backend=backend).indices
    except _finite.NonfiniteRows as exc:
        raise ValueError(f"src row {int(exc.rows[0])} has NaN or inf ({len(exc.rows)} row(s) do); FPS "
                         "needs finite points: drop them first, e.g. src[src.isfinite().all(dim=1)]"
                         ) from None


@torch.library.custom_op(f"{_LIB}::fps_ratio", mutates_args=(), device_types="cpu")
def fps_ratio(x: torch.Tensor, ptr: torch.Tensor, ratio: torch.Tensor,
              starts: torch.Tensor) -> torch.Tensor:
    """Global indices of FPS on each problem with ``ceil(ratio * n_p)`` picks (data-dependent size)."""
    return fps_ratio_on_device(x, ptr, ratio, starts)


fps_ratio.register_kernel("cuda")(fps_ratio_on_device)


@fps_ratio.register_fake
def _(x, ptr, ratio, starts):
    total = torch.library.get_ctx().new_dynamic_size()
    return x.new_empty((total,), dtype=torch.int64)
