"""``select_batched`` on a GPU: small problems in one batched Triton launch, large ones on the whole chip.

Problems with at most ``max_points(d)`` rows (d <= 16: point clouds) run in one
launch, one program a problem: ``hminsel.triton.batched`` with its points in registers
where every problem fits there, else the exact bucket FPS for d <= 8
(``hminsel.triton.bucket``, as the cpu backend) or ``hminsel.triton.batched`` (its
points a chunk at a time from L1/L2). Larger problems, or every problem on the cuda backend or for d > 16,
go through ``hminsel.select`` one at a time, each on the whole GPU. The
problem layout (ptr, counts, starts) is small and resolved on the host; the
points, picks and radii stay on x's device.
"""
from __future__ import annotations

import numpy as np

from . import _device, _progress, _radius, backends
from ._problems import check_small_values, layout, made_with, problems_in
from .api import select

BUCKET_MAX_DIM = 8  # up to this d the small problems run the exact bucket FPS (triton/bucket.py)


def _host_vector(v):
    """Index vectors (ptr, batch, groups, k, start) may come as device tensors: bring them over."""
    import torch
    return v.detach().cpu() if isinstance(v, torch.Tensor) else v


def _flat(idx, dist, counts):
    """The first ``counts[r]`` entries of each row r of (rows, K) ``idx``/``dist``, row after
    row: views where every row is full, else one gather (positions made on the host: no
    sync), so that a batch of hundreds of clouds costs no launch a cloud."""
    import torch
    counts = np.asarray(counts, np.int64)
    if (counts == idx.shape[1]).all():
        return idx.reshape(-1), dist.reshape(-1)
    shift = np.arange(len(counts), dtype=np.int64) * idx.shape[1] - (np.cumsum(counts) - counts)
    pos = torch.as_tensor(np.repeat(shift, counts) + np.arange(counts.sum()), device=idx.device)
    return idx.reshape(-1)[pos], dist.reshape(-1)[pos]


def _run_warm(t, warm: dict, counts, metric, backend, nonfinite, radius, tally) -> dict:
    """``select`` with ``init`` on each problem that continues from init rows, on the whole
    GPU (its rows a view when they are a range of x): ``{p: (rows of x, radii)}``."""
    import torch
    out = {}
    for p, w in warm.items():
        lo, hi = int(w.rows[0]), int(w.rows[-1]) + 1
        rows = torch.as_tensor(w.rows, device=t.device)
        sel = select(t[lo:hi] if hi - lo == len(w.rows) else t.index_select(0, rows), int(counts[p]),
                     init=w.init, mask=w.mask, metric=metric, backend=backend, nonfinite=nonfinite,
                     radius=radius, progress=tally.part())
        tally.add(len(sel.indices))
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


def _problem_rows(t, order, lo: int, hi: int):
    """Problem rows ``lo .. hi`` (positions in problem order) of x: a view where they are a
    range of its rows, else gathered (one problem's copy at a time)."""
    import torch
    if order is None:
        return t[lo:hi]
    rows = order[lo:hi]  # ascending within a problem (layout keeps x's order)
    if len(rows) and rows[-1] - rows[0] + 1 == len(rows):
        return t[int(rows[0]):int(rows[-1]) + 1]
    return t.index_select(0, torch.as_tensor(rows, device=t.device))


def _small_rows(t, order, ptr, small, metric):
    """``(rows, offsets)``: the small problems' rows, prepared for the batched kernels, and
    their CSR offsets there. x itself (offsets ``ptr``) where it is in problem order for l2
    (copied only when its rows are strided or unaligned); else only those rows, gathered."""
    import torch
    sizes = np.diff(ptr)
    if order is None and (metric == "l2" or small[sizes > 0].all()):
        return _device.prepare(t, metric), ptr
    kept = np.where(small, sizes, 0)
    pos = np.flatnonzero(np.repeat(small, sizes))
    rows = pos if order is None else order[pos]
    part = t.index_select(0, torch.as_tensor(rows, device=t.device))
    return _device.prepare(part, metric), np.concatenate([[0], np.cumsum(kept)]).astype(np.int64)


def _check_small_values(t, top_row, order, ptr, counts, labels):
    """``_problems.check_small_values`` on every problem, before any kernel runs: each problem's
    largest magnitude on the device (from ``top_row``, each row's, found by the scan of x for
    non-finite values: no second pass), brought over in one copy (the host path reads them
    only for problems whose radii are all tiny; here that copy would wait for the kernels)."""
    import torch
    stored = _device.stored_dtype(t)
    sizes = np.diff(ptr)
    if top_row is None or stored == np.float16 or not (np.asarray(counts) > 1).any() or len(t) == 0:
        return
    if order is not None:  # the problems' rows only (not the rows a mask or NaN left out)
        top_row = top_row[torch.as_tensor(order, device=t.device)]
    # One segmented max over the problems' row ranges (P lengths to the device), not a
    # scatter of every row's problem id: on the H200 that id vector's copy (8 MB for 1M rows)
    # and the scatter's atomics into 256 slots took 1.6 of select_batched's 3.6 ms.
    lengths = torch.as_tensor(sizes, dtype=torch.int64, device=t.device)
    tops = torch.segment_reduce(top_row.float(), "max", lengths=lengths, unsafe=True).clamp_min(0.0)
    check_small_values(np.arange(len(sizes)), tops.cpu().numpy(), counts, t.shape[1], stored, labels)


def _run_small(t, order, ptr, small, counts, starts, metric, radius):
    """The problems marked ``small`` in one batched launch: ``(picks made by each, their picks
    as positions in problem order, their radii)``, problem after problem."""
    import torch
    from .triton.batched import fps_batched, on_chip
    ids = np.flatnonzero(small)
    xs, ptr_s = _small_rows(t, order, ptr, small, metric)
    floor = _radius.floor(radius, metric)  # each problem's cut, as select's
    with _device.on(xs):
        # point clouds: the exact bucket FPS, as on the cpu, unless every problem fits in
        # registers (on the H200 the register kernel took 2.9 ms and the bucket one 11.5 at
        # 256 x 4096 x 3, k = 512: at that size a pick's cost is its reductions, not its reads)
        if xs.shape[1] <= BUCKET_MAX_DIM and not on_chip(int(np.diff(ptr)[ids].max()), xs.shape[1]):
            from .triton.bucket import bucket_batched
            idx, dist = bucket_batched(xs, ptr_s, counts[ids], starts[ids], ids, floor)
        else:
            idx, dist = fps_batched(xs, ptr_s, counts[ids], starts[ids], problems=ids, floor=floor)
    made = counts[ids] if floor is None else (idx >= 0).sum(dim=1).cpu().numpy()
    if ptr_s is not ptr:  # positions in the gathered rows -> positions in problem order
        idx = idx + torch.as_tensor(ptr[ids] - ptr_s[ids], device=idx.device)[:, None]
    flat_idx, flat_dist = _flat(idx, dist, made)
    return made, flat_idx, _device.metric_units(flat_dist, metric)


def select_batched_device(x, k, ptr, batch, start, metric, seed, backend, groups, mask, nonfinite,
                          init=None, radius=None, progress=False):
    """The device path of ``batched.select_batched`` (the problems resolved on the host by
    ``_problems.layout``). The rows are checked once, all of x; each large problem's rows are
    a view of x or gathered when it runs, and the small problems' rows gathered together.
    With ``radius`` each problem ends at its cut (the batched kernels run the small ones to
    their caps and clear the picks past it)."""
    import torch
    _device.require(backend)
    t, library, top_row, valid = _device.points(x, metric, nonfinite, prepared=False)
    ptr, batch, groups, start = map(_host_vector, (ptr, batch, groups, start))
    k = _host_vector(k) if isinstance(k, torch.Tensor) else k
    order, ptr, counts, starts, labels, warm = layout(len(t), k, ptr, batch, start, seed, groups,
                                                      mask, valid, init, cap=radius is not None)
    total, counts = counts, np.where(problems_in(warm, len(counts)), 0, counts)
    if metric == "l2":
        _check_small_values(t, top_row, order, ptr, total, labels)
    be = backends.resolve(backend, t[:1].contiguous())  # a probe of x's dtype and device
    tally = _progress.Tally(_progress.reporter(progress, int(total.sum()), "select_batched"),
                           shrinks=radius is not None)
    small = np.zeros(len(counts), bool)
    if be.name == "triton" and t.shape[1] <= 16:
        from .triton.batched import max_points
        small = (counts > 0) & (np.diff(ptr) <= max_points(t.shape[1]))
    made = np.zeros(len(counts), np.int64)
    indices = torch.empty(0, dtype=torch.int64, device=t.device)
    values = torch.empty(0, dtype=torch.float64, device=t.device)
    if small.any():  # in problem order: the answer itself when no problem is large
        made[small], indices, values = _run_small(t, order, ptr, small, counts, starts, metric, radius)
        tally.add(int(made.sum()))
    large = np.flatnonzero((counts > 0) & ~small).tolist()
    if large:
        picks = list(indices.split(made.tolist()))
        radii = list(values.split(made.tolist()))
        for p in large:
            sel = select(_problem_rows(t, order, int(ptr[p]), int(ptr[p + 1])), int(counts[p]),
                         metric=metric, start=int(starts[p]), backend=be.name, radius=radius,
                         progress=tally.part())
            tally.add(len(sel.indices))
            picks[p] = sel.indices.to(t.device) + int(ptr[p])
            radii[p] = sel.radii.to(t.device)
            made[p] = len(sel.indices)
        indices, values = torch.cat(picks), torch.cat(radii)
    if order is not None:
        indices = torch.as_tensor(order, device=t.device)[indices]
    if warm:
        done = _run_warm(t, warm, total, metric, be.name, nonfinite, radius, tally)
        made = made_with(made, done)
        indices, values = _splice(indices, values, made, done)
    out_ptr = torch.as_tensor(np.concatenate([[0], np.cumsum(made)]).astype(np.int64), device=t.device)
    tally.finish(int(made.sum()))
    label_out = labels if labels is None or labels.dtype.kind in "US" else _device.out(
        torch.as_tensor(labels, device=t.device), library)  # strings stay NumPy
    return (_device.out(indices, library), _device.out(out_ptr, library), _device.out(values, library),
            label_out, be.name, total if radius is not None else None)
