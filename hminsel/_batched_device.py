"""``select_batched`` on a GPU: small problems in one batched Triton launch, large ones on the whole chip.

Problems with at most ``max_points(d)`` rows (d <= 16: point clouds) run in one
launch, one program a problem: the exact bucket FPS for d <= 8
(``hminsel.triton.bucket``, as the cpu backend), else ``hminsel.triton.batched``
(its points on chip). Larger problems, or every problem on the cuda backend or for d > 16,
go through ``hminsel.select`` one at a time, each on the whole GPU. The
problem layout (ptr, counts, starts) is small and resolved on the host; the
points, picks and radii stay on x's device.
"""
from __future__ import annotations

import numpy as np

from . import _device, backends
from ._problems import layout, problems_in
from .api import select

BUCKET_MAX_DIM = 8  # up to this d the small problems run the exact bucket FPS (triton/bucket.py)


def _host_vector(v):
    """Index vectors (ptr, batch, groups, k, start) may come as device tensors: bring them over."""
    import torch
    return v.detach().cpu() if isinstance(v, torch.Tensor) else v


def _scatter(picks, radii, ids, counts, idx, dist):
    """Problem ``ids[r]``'s picks and radii: the first ``counts[r]`` of row r of (rows, K)
    ``idx``/``dist``. One gather for all problems (positions made on the host: no sync),
    then views, so that a batch of hundreds of clouds costs no launch a cloud."""
    import torch
    counts = np.asarray(counts, np.int64)
    shift = np.arange(len(counts), dtype=np.int64) * idx.shape[1] - (np.cumsum(counts) - counts)
    pos = torch.as_tensor(np.repeat(shift, counts) + np.arange(counts.sum()), device=idx.device)
    sizes = counts.tolist()
    flat_idx, flat_dist = idx.reshape(-1)[pos], dist.reshape(-1)[pos]
    for p, a, b in zip(ids.tolist(), flat_idx.split(sizes), flat_dist.split(sizes)):
        picks[p], radii[p] = a, b


def _run_warm(t, warm: dict, counts, metric, backend, nonfinite) -> dict:
    """``select`` with ``init`` on each problem that continues from init rows, on the whole
    GPU (its rows a view when they are a range of x): ``{p: (rows of x, radii)}``."""
    import torch
    out = {}
    for p, w in warm.items():
        lo, hi = int(w.rows[0]), int(w.rows[-1]) + 1
        rows = torch.as_tensor(w.rows, device=t.device)
        sel = select(t[lo:hi] if hi - lo == len(w.rows) else t.index_select(0, rows), int(counts[p]),
                     init=w.init, mask=w.mask, metric=metric, backend=backend, nonfinite=nonfinite)
        out[p] = rows[sel.indices.to(t.device)], sel.radii.to(t.device)
    return out


def _splice(indices, values, counts, done: dict):
    """All problems' picks: ``indices``/``values`` of the others around ``done``'s."""
    import torch
    out_ptr = np.concatenate([[0], np.cumsum(counts)]).tolist()
    rest = torch.as_tensor(np.repeat(~problems_in(done, len(counts)), counts),
                           device=indices.device)
    all_indices = torch.empty(len(rest), dtype=torch.int64, device=indices.device)
    all_values = torch.empty(len(rest), dtype=values.dtype, device=indices.device)
    all_indices[rest], all_values[rest] = indices, values
    for p, (rows, radii) in done.items():
        all_indices[out_ptr[p]:out_ptr[p + 1]] = rows
        all_values[out_ptr[p]:out_ptr[p + 1]] = radii.to(values.dtype)
    return all_indices, all_values


def select_batched_device(x, k, ptr, batch, start, metric, seed, backend, groups, mask, nonfinite,
                          init=None):
    """The device path of ``batched.select_batched`` (the problems resolved on the host by
    ``_problems.layout``)."""
    import torch
    _device.require(backend)
    t, library, xp, valid = _device.points(x, metric, nonfinite)
    ptr, batch, groups, start = map(_host_vector, (ptr, batch, groups, start))
    k = _host_vector(k) if isinstance(k, torch.Tensor) else k
    order, ptr, counts, starts, labels, warm = layout(len(xp), k, ptr, batch, start, seed, groups,
                                                      mask, valid, init)
    total, counts = counts, np.where(problems_in(warm, len(counts)), 0, counts)
    x_in = t  # the caller's rows, for the problems that continue from init rows
    if order is not None:  # problems of labels, or cut by a mask: their rows made contiguous
        rows = torch.as_tensor(order, device=xp.device)
        t, xp = t.index_select(0, rows), xp.index_select(0, rows)
    be = backends.resolve(backend, xp)
    sizes = np.diff(ptr)
    picks = [torch.empty(0, dtype=torch.int64, device=xp.device)] * len(counts)
    radii = [torch.empty(0, dtype=torch.float64, device=xp.device)] * len(counts)
    small = np.zeros(len(counts), bool)
    if be.name == "triton" and xp.shape[1] <= 16:
        from .triton.batched import fps_batched, max_points
        small = (counts > 0) & (sizes <= max_points(xp.shape[1]))
    if small.any():
        ids = np.flatnonzero(small)
        with _device.on(xp):
            if xp.shape[1] <= BUCKET_MAX_DIM:  # point clouds: the exact bucket FPS, as on the cpu
                from .triton.bucket import bucket_batched
                idx, dist = bucket_batched(xp, ptr, counts[ids], starts[ids], ids)
            else:
                idx, dist = fps_batched(xp, torch.as_tensor(ptr, device=xp.device), torch.as_tensor(
                    counts[ids], device=xp.device), torch.as_tensor(starts[ids], device=xp.device),
                    problems=torch.as_tensor(ids, device=xp.device))
        _scatter(picks, radii, ids, counts[ids], idx, _device.metric_units(dist, metric))
    for p in np.flatnonzero((counts > 0) & ~small).tolist():
        sel = select(t[ptr[p]:ptr[p + 1]], int(counts[p]), metric=metric, start=int(starts[p]),
                     backend=be.name)
        picks[p] = sel.indices.to(xp.device) + int(ptr[p])
        radii[p] = sel.radii.to(xp.device)
    indices = torch.cat(picks) if picks else torch.empty(0, dtype=torch.int64, device=xp.device)
    if order is not None:
        indices = torch.as_tensor(order, device=xp.device)[indices]
    values = torch.cat(radii) if radii else torch.empty(0, dtype=torch.float64, device=xp.device)
    if warm:
        done = _run_warm(x_in, warm, total, metric, be.name, nonfinite)
        indices, values = _splice(indices, values, total, done)
    out_ptr = torch.as_tensor(np.concatenate([[0], np.cumsum(total)]).astype(np.int64),
                              device=xp.device)
    label_out = labels if labels is None or labels.dtype.kind in "US" else _device.out(
        torch.as_tensor(labels, device=xp.device), library)  # strings stay NumPy
    return (_device.out(indices, library), _device.out(out_ptr, library), _device.out(values, library),
            label_out, be.name)
