"""The host path of ``batched.select_batched``: NumPy arrays (and CPU tensors), the problems
resolved by ``_problems.layout``.

On the ``cpu`` backend the small problems run in one C++ call (``_cpu.bucket_batched`` for
d <= 8, ``_cpu.fps_batched`` above), the large ones through ``select``; any other backend
runs ``select`` a problem. ``_batched_device`` is the same for GPU tensors.
"""
from __future__ import annotations

import numpy as np

from . import _inputs, _progress, _radius, _threads, backends
from ._problems import (check_small_values, layout, made_with, problem_name, problems_in,
                        small_value_suspects)
from .api import STREAM_PICKS, _select, select, to_metric

LARGE_WORK = 10_000_000  # n_p * d above which a problem gets the whole machine
# ... and above BUCKET_MAX_DIM, where k_p streaming passes (k_p * n_p * d) would read more than
# the exact lazy FPS's few passes cost: past ANY_PICKS_WORK, or past LAZY_PICKS_WORK once the
# rows outgrow a thread's caches (LAZY_ROWS). Measured on 2 cores (AVX2), float32, clustered,
# every problem alike (kernel / select time): 4 x 40000 x 16, k 2000 (1280M): 2.5x; 8 x 10000 x
# 32, every row (3200M): 1.7x; 4 x 20000 x 384, k 40 (307M, 7.7M rows x d): 1.4x; 20 x 4000 x 384,
# k 200 (307M, 1.5M): 0.94x; 40 x 1000 x 384, k 300 (115M): 1.0x; 30 x 2500 x 512, k 150: 0.81x;
# 20 x 4000 x 64, k 1000 (256M): 0.72x; 100 x 2000 x 16, every row (64M): 0.50x; 10 x 20000 x
# 128, k 30 (77M, 2.6M): 0.37x. With a radius (k_p a cap) the kernel runs a problem to where
# that work would pass, and select goes on from its picks (init) where the cut lies further.
LAZY_ROWS = 1_500_000
LAZY_PICKS_WORK = 100_000_000
ANY_PICKS_WORK = 300_000_000
BUCKET_MAX_DIM = 8  # up to this d the small problems run the exact bucket FPS (bucket.cpp)


def large_problems(ptr, d: int, counts, capped: bool = False) -> np.ndarray:
    """Problems that get the whole machine (``hminsel.select``) rather than one thread.
    ``capped`` (a radius): counts are caps, which ``kernel_counts`` bounds instead."""
    work = np.diff(ptr) * d
    if d <= BUCKET_MAX_DIM:  # the bucket FPS, one thread in select too, but for a few picks
        return (work > LARGE_WORK) | ((counts > 0) & (counts < STREAM_PICKS) & (work > LAZY_ROWS))
    if capped:
        return work > LARGE_WORK
    return (work > LARGE_WORK) | (counts * work > picks_work(work))


def picks_work(work) -> np.ndarray:
    """Each problem's streaming work (k_p * n_p * d) past which the lazy FPS wins."""
    return np.where(work > LAZY_ROWS, LAZY_PICKS_WORK, ANY_PICKS_WORK)


def kernel_counts(ptr, d: int, counts, capped: bool) -> np.ndarray:
    """The picks each problem makes in the kernel: all of them, but with a radius above
    ``BUCKET_MAX_DIM`` at most those within ``picks_work`` (select goes on from there)."""
    if not capped or d <= BUCKET_MAX_DIM:
        return counts
    work = np.maximum(np.diff(ptr) * d, 1)
    return np.minimum(counts, np.maximum(picks_work(work) // work, 1))


def rows_of(host, order, which):
    """Rows ``which`` (a slice or a bool over positions) of the problems' rows: x itself, or x
    through ``order`` (grouped by label, kept by a mask): gathered here, when a part runs."""
    return host[which] if order is None else host[order[which]]


GATHER_ROWS = 1 << 16  # rows gathered and prepared at a time (bounds the gathered copy)


def small_rows(host, order, ptr, large, metric):
    """The rows of the small problems, prepared (``_inputs.prepare``) for the one C++ call that
    reads only them: x itself where it is in problem order and none is large; else gathered
    and prepared a chunk at a time into one array, so a float16 or cosine x never holds a
    gathered copy beside the prepared one (per-row work: the same values as one pass)."""
    if not large.any() and order is None:
        return _inputs.prepare(host, metric)
    keep = ~np.repeat(large, np.diff(ptr))
    rows = np.flatnonzero(keep) if order is None else order[keep]
    out = np.empty((len(rows), host.shape[1]), _inputs.compute_dtype(host.dtype))
    for lo in range(0, len(rows), GATHER_ROWS):
        out[lo:lo + GATHER_ROWS] = _inputs.prepare(host[rows[lo:lo + GATHER_ROWS]], metric)
    return out


def run_cpu(xp, host, order, ptr, counts, starts, metric, be, large, labels, radius, tally):
    """The C++ kernel for the small problems (``xp``: their prepared rows); hminsel.select for
    large ones, and for the rest of a problem whose kernel count came before its cut:
    ``(indices, radii, made)`` (positions in problem order, each problem's picks). ``tally``:
    a ``_progress.Tally``, told of the picks as parts end."""
    from ._cpu import bucket_batched, fps_batched  # the cpu backend is available, so this imports
    small_sizes = np.where(large, 0, ptr[1:] - ptr[:-1])
    small_ptr = np.concatenate([[0], np.cumsum(small_sizes)]).astype(np.int64)
    kernel = bucket_batched if xp.shape[1] <= BUCKET_MAX_DIM else fps_batched
    small_counts = np.where(large, 0, kernel_counts(ptr, xp.shape[1], counts, radius is not None))
    small_starts = np.where(large, 0, starts)
    floor = _radius.floor(radius, metric)  # each problem ends where select's cut would
    picks, values, out_ptr = kernel(xp, small_ptr, small_counts, small_starts,
                                    floor=-np.inf if floor is None else floor)
    radii = to_metric(values, metric)
    made = out_ptr[1:] - out_ptr[:-1]
    picks = picks + np.repeat(ptr[:-1] - small_ptr[:-1], made)  # positions in problem order
    tally.add(len(picks))
    more = ~large & (made == small_counts) & (small_counts < counts)  # not cut yet: select goes on
    if not (large | more).any():
        return picks, radii, made
    indices, all_radii = per_problem(host, order, ptr, counts, starts, metric, be.name, tally,
                                     only=large, labels=labels, radius=radius)
    for p in np.flatnonzero(made > 0):
        lo, hi = out_ptr[p], out_ptr[p + 1]
        indices[p], all_radii[p] = picks[lo:hi], radii[lo:hi]
    name = problem_name(None if labels is None else labels.tolist())
    for p in np.flatnonzero(more):
        held = len(indices[p])
        sel = _select(rows_of(host, order, slice(ptr[p], ptr[p + 1])), int(counts[p]), metric=metric,
                      init=indices[p] - ptr[p], backend=be.name, name=name(p), radius=radius,
                      progress=tally.part(held))
        tally.add(len(sel.indices) - held)
        indices[p] = sel.indices + ptr[p]
        all_radii[p] = np.concatenate([all_radii[p], sel.radii[len(all_radii[p]):]])
    made = np.array([len(a) for a in indices], np.int64)
    return np.concatenate([np.empty(0, np.int64), *indices]), np.concatenate([np.empty(0), *all_radii]), made


def per_problem(host, order, ptr, counts, starts, metric, backend, tally, only=None, labels=None,
                radius=None):
    """hminsel.select on each problem (its rows gathered in turn when ``order`` is given: one
    problem's copy at a time): lists of (positions in problem order, radii) per problem.
    ``labels``: the problems' labels, to name them in errors; ``radius``: ``select``'s;
    ``tally``: a ``_progress.Tally``."""
    name = problem_name(None if labels is None else labels.tolist())
    indices, radii = [np.empty(0, np.int64)] * len(counts), [np.empty(0)] * len(counts)
    for p in range(len(counts)):
        if counts[p] == 0 or (only is not None and not only[p]):
            continue
        sel = _select(rows_of(host, order, slice(ptr[p], ptr[p + 1])), int(counts[p]), metric=metric,
                      start=int(starts[p]), backend=backend, name=name(p), radius=radius,
                      progress=tally.part())
        tally.add(len(sel.indices))
        indices[p], radii[p] = sel.indices + ptr[p], sel.radii
    return indices, radii


def run_warm(host, warm: dict, counts, metric, backend, nonfinite, radius, tally) -> dict:
    """``select`` with ``init`` on each problem that continues from init rows (its rows read in
    place when they are a range of x): ``{p: (rows of x, radii)}``."""
    out = {}
    for p, w in warm.items():
        lo, hi = int(w.rows[0]), int(w.rows[-1]) + 1
        rows = host[lo:hi] if hi - lo == len(w.rows) else host[w.rows]
        sel = select(rows, int(counts[p]), init=w.init, mask=w.mask, metric=metric, backend=backend,
                     nonfinite=nonfinite, radius=radius, progress=tally.part())
        tally.add(len(sel.indices))
        out[p] = w.rows[sel.indices], sel.radii
    return out


def splice(indices, radii, counts, done: dict):
    """The picks of all problems: ``indices``/``radii`` of the others, in order, around
    ``done``'s ``{p: (indices, radii)}``."""
    out_ptr = np.concatenate([[0], np.cumsum(counts)])
    rest = np.repeat(~problems_in(done, len(counts)), counts)
    all_indices, all_radii = np.empty(len(rest), np.int64), np.empty(len(rest))
    all_indices[rest], all_radii[rest] = indices, radii
    for p, (rows, values) in done.items():
        all_indices[out_ptr[p]:out_ptr[p + 1]], all_radii[out_ptr[p]:out_ptr[p + 1]] = rows, values
    return all_indices, all_radii


def check_values(host, order, ptr, out_ptr, radii, counts, labels):
    """``_problems.check_small_values`` on the problems whose radii say their values may be too
    small: their rows' largest magnitudes in one gather (none for usual data)."""
    suspects = small_value_suspects(out_ptr, radii, host.shape[1], host.dtype)
    if not len(suspects):
        return
    sizes = np.diff(ptr)[suspects]
    begin = np.cumsum(sizes) - sizes  # each suspect's first position among the gathered rows
    pos = np.arange(int(sizes.sum())) + np.repeat(ptr[suspects] - begin, sizes)
    rows = pos if order is None else order[pos]
    tops = np.zeros(len(suspects))
    if len(rows) and host.shape[1]:  # each suspect's rows, flat: one reduceat over them
        kept = sizes > 0
        tops[kept] = np.maximum.reduceat(np.abs(host[rows]).reshape(-1), begin[kept] * host.shape[1])
    check_small_values(suspects, tops, counts, host.shape[1], host.dtype, labels)


def labels_out(labels, library: str):
    """The problems' labels in x's library; strings stay NumPy (no tensor holds them)."""
    if labels is None or labels.dtype.kind in "US":
        return labels
    return _inputs.to_library(labels, library)


def select_batched_host(x, k, ptr, batch, start, metric, seed, backend, groups, mask, nonfinite,
                        init, radius, progress, low_too):
    """``(indices, ptr, radii, labels, backend name, caps)`` of ``select_batched`` on host rows,
    in x's library (its arguments checked there; ``low_too`` as ``_select_batched``'s)."""
    host, library = _inputs.host_array(x)
    if host.ndim == 2 and len(host) == 0 and host.shape[1] > 0:  # no rows: only empty problems
        host = host.astype(np.float64 if host.dtype == np.float64 else np.float32)
    else:
        host = _inputs.check_points(host)
    _inputs.check_metric(metric)
    valid = _inputs.check_finite(host, nonfinite, metric=metric, low_too=low_too)
    order, ptr, counts, starts, labels, warm = layout(len(host), k, ptr, batch, start, seed, groups,
                                                      mask, valid, init, cap=radius is not None)
    is_warm = problems_in(warm, len(counts))  # these run run_warm, the others here
    total, counts = counts, np.where(is_warm, 0, counts)
    large = large_problems(ptr, host.shape[1], counts, radius is not None) | is_warm
    if metric == "cosine" and (large.any() or order is not None):  # zero rows named as rows of x
        _inputs.prepare(host, metric, valid, in_place=True)  # norms only, on the C++ pool
    xp = small_rows(host, order, ptr, large, metric)  # large ones: select prepares their rows
    be = backends.resolve(backend, xp)
    tally = _progress.Tally(_progress.reporter(progress, int(total.sum()), "select_batched"),
                           shrinks=radius is not None)
    with _threads.host_work():  # as hminsel.api.host_work: host arrays here
        if be.name == "cpu":
            indices, radii, made = run_cpu(xp, host, order, ptr, counts, starts, metric, be, large,
                                           labels, radius, tally)
        else:
            indices, radii = per_problem(host, order, ptr, counts, starts, metric, be.name, tally,
                                         labels=labels, radius=radius)
            made = np.array([len(a) for a in indices], np.int64)
            indices = np.concatenate([np.empty(0, np.int64), *indices]).astype(np.int64)
            radii = np.concatenate([np.empty(0), *radii]).astype(np.float64)
    if order is not None:
        indices = order[indices]
    if warm:
        with _threads.host_work():
            done = run_warm(host, warm, total, metric, be.name, nonfinite, radius, tally)
        made = made_with(made, done)
        indices, radii = splice(indices, radii, made, done)
    out_ptr = np.concatenate([[0], np.cumsum(made)]).astype(np.int64)
    if metric == "l2":
        check_values(host, order, ptr, out_ptr, radii, made, labels)
    tally.finish(int(made.sum()))
    return (_inputs.to_library(indices, library), _inputs.to_library(out_ptr, library),
            _inputs.to_library(radii, library), labels_out(labels, library), be.name,
            None if radius is None else np.asarray(total, np.int64))
