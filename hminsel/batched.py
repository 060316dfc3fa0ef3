"""Algorithm 3: batched / ragged selection, many independent problems in one call.

Problems are row ranges of one array, given as CSR offsets ``ptr`` or a sorted
``batch`` vector (torch_cluster style), or as the labels of ``groups`` (per-label
quotas for data selection). Each problem's picks are exactly what
``hminsel.select`` returns on that problem alone: same indices, same radii.

On the ``cpu`` backend small problems run in one C++ call, one thread per
problem: the exact bucket FPS for d <= 8 (``csrc/cpu/bucket.cpp``, point
clouds), else a sequential streaming FPS (``csrc/cpu/batched.cpp``); problems
larger than ``LARGE_WORK`` elements, or (above d = 8) whose streaming passes
would cost more than the lazy FPS's (``_picks_work``), go through
``hminsel.select`` (whole machine, exact lazy algorithm). GPU tensors take the device path
(``_batched_device``: one batched Triton launch for the small problems, the
whole GPU for each large one). Any other backend runs ``hminsel.select`` per
problem (the NumPy oracle does).

With ``radius`` the cpu backend's kernels end each small problem where ``select``
would, before its first pick past the start within the radius (the exact floor
of ``_radius.floor``), in one call; above d = 8 a problem whose cap's streaming
work passes ``_picks_work`` stops there in the kernel, and ``select`` goes on
from its picks. ``python benchmarks/bench_batched.py --radius
R``, quiet 2-vCPU AMD EPYC, uniform float32 clouds, k = 1.0 (select_batched /
one ``select`` a problem / select_batched of every pick, no radius): 2000 x 100
x 3, radius 0.2 (90k picks): 9.4 / 285 / 17 ms; 256 x 4096 x 3, radius 0.05
(530k picks): 0.23 / 0.50 / 0.40 s; 500 x 200 x 16, radius 0.8 (96k picks):
53 / 223 / 55 ms.
"""
from __future__ import annotations

import dataclasses
from typing import Any

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


@dataclasses.dataclass(frozen=True, eq=False)  # arrays inside: equal and hashed as objects
class BatchedSelection:
    """What ``hminsel.select_batched`` returns.

    Attributes:
        indices: (total,) int64 global row indices, problem by problem, each
            problem's in selection order (caller's array library).
        ptr: (P + 1,) int64 offsets: problem p's picks are
            ``indices[ptr[p]:ptr[p + 1]]``.
        radii: (total,) distances in the metric's units, same layout;
            ``radii[ptr[p]] = inf`` for every non-empty problem.
        labels: with ``groups``, the (P,) label of each problem (sorted;
            string labels come back as a NumPy array); else None.
        metric, backend: what ran.
        caps: with ``radius``, the (P,) int64 NumPy count each problem's k
            resolved to (its init rows counted), the most it could make: fewer
            picks mean the radius ended it (``radius_reached``); else None.
    """

    indices: Any
    ptr: Any
    radii: Any
    labels: Any
    metric: str
    backend: str
    caps: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.ptr) - 1

    def problem(self, p: int):
        """(indices, radii) of problem ``p``."""
        lo, hi = int(self.ptr[p]), int(self.ptr[p + 1])
        return self.indices[lo:hi], self.radii[lo:hi]

    def __iter__(self):
        """Each problem's ``(indices, radii)``, in order."""
        return (self.problem(p) for p in range(len(self)))

    @property
    def radius_reached(self) -> np.ndarray | None:
        """(P,) bool NumPy: whether the radius ended each problem (fewer picks than its cap);
        None without a radius."""
        if self.caps is None:
            return None
        from ._picks import small_host
        return np.diff(np.asarray(small_host(self.ptr, "ptr"), np.int64)) < self.caps

    @property
    def hmins(self) -> np.ndarray:
        """(P,) float64 NumPy: each problem's h_min, the smallest radius of its picks (as
        ``Selection.hmin``); ``inf`` for a problem of fewer than two picks."""
        from ._picks import small_host
        radii = np.asarray(small_host(self.radii, "radii"), np.float64)
        ptr = np.asarray(small_host(self.ptr, "ptr"), np.int64)
        out = np.full(len(ptr) - 1, np.inf)
        some = np.flatnonzero(np.diff(ptr) > 0)
        if len(some):
            out[some] = np.minimum.reduceat(radii, ptr[some])
        return out


def _large(ptr, d: int, counts, capped: bool = False) -> np.ndarray:
    """Problems that get the whole machine (``hminsel.select``) rather than one thread.
    ``capped`` (a radius): counts are caps, which ``_kernel_counts`` bounds instead."""
    work = np.diff(ptr) * d
    if d <= BUCKET_MAX_DIM:  # the bucket FPS, one thread in select too, but for a few picks
        return (work > LARGE_WORK) | ((counts > 0) & (counts < STREAM_PICKS) & (work > LAZY_ROWS))
    if capped:
        return work > LARGE_WORK
    return (work > LARGE_WORK) | (counts * work > _picks_work(work))


def _picks_work(work) -> np.ndarray:
    """Each problem's streaming work (k_p * n_p * d) past which the lazy FPS wins."""
    return np.where(work > LAZY_ROWS, LAZY_PICKS_WORK, ANY_PICKS_WORK)


def _kernel_counts(ptr, d: int, counts, capped: bool) -> np.ndarray:
    """The picks each problem makes in the kernel: all of them, but with a radius above
    ``BUCKET_MAX_DIM`` at most those within ``_picks_work`` (select goes on from there)."""
    if not capped or d <= BUCKET_MAX_DIM:
        return counts
    work = np.maximum(np.diff(ptr) * d, 1)
    return np.minimum(counts, np.maximum(_picks_work(work) // work, 1))


def _rows(host, order, which):
    """Rows ``which`` (a slice or a bool over positions) of the problems' rows: x itself, or x
    through ``order`` (grouped by label, kept by a mask): gathered here, when a part runs."""
    return host[which] if order is None else host[order[which]]


GATHER_ROWS = 1 << 16  # rows gathered and prepared at a time (bounds the gathered copy)


def _small_rows(host, order, ptr, large, metric):
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


def _run_cpu(xp, host, order, ptr, counts, starts, metric, be, large, labels, radius, tally):
    """The C++ kernel for the small problems (``xp``: their prepared rows); hminsel.select for
    large ones, and for the rest of a problem whose kernel count came before its cut:
    ``(indices, radii, made)`` (positions in problem order, each problem's picks). ``tally``:
    a ``_progress.Tally``, told of the picks as parts end."""
    from ._cpu import bucket_batched, fps_batched  # the cpu backend is available, so this imports
    small_sizes = np.where(large, 0, np.diff(ptr))
    small_ptr = np.concatenate([[0], np.cumsum(small_sizes)]).astype(np.int64)
    kernel = bucket_batched if xp.shape[1] <= BUCKET_MAX_DIM else fps_batched
    small_counts = np.where(large, 0, _kernel_counts(ptr, xp.shape[1], counts, radius is not None))
    small_starts = np.where(large, 0, starts)
    floor = _radius.floor(radius, metric)  # each problem ends where select's cut would
    picks, values, out_ptr = kernel(xp, small_ptr, small_counts, small_starts,
                                    floor=-np.inf if floor is None else floor)
    radii = to_metric(values, metric)
    picks = picks + np.repeat(ptr[:-1] - small_ptr[:-1], np.diff(out_ptr))  # positions in problem order
    made = np.diff(out_ptr)
    tally.add(len(picks))
    more = ~large & (made == small_counts) & (small_counts < counts)  # not cut yet: select goes on
    if not (large | more).any():
        return picks, radii, made
    indices, all_radii = _per_problem(host, order, ptr, counts, starts, metric, be.name, tally,
                                      only=large, labels=labels, radius=radius)
    for p in np.flatnonzero(made > 0):
        lo, hi = out_ptr[p], out_ptr[p + 1]
        indices[p], all_radii[p] = picks[lo:hi], radii[lo:hi]
    name = problem_name(None if labels is None else labels.tolist())
    for p in np.flatnonzero(more):
        held = len(indices[p])
        sel = _select(_rows(host, order, slice(ptr[p], ptr[p + 1])), int(counts[p]), metric=metric,
                      init=indices[p] - ptr[p], backend=be.name, name=name(p), radius=radius,
                      progress=tally.part(held))
        tally.add(len(sel.indices) - held)
        indices[p] = sel.indices + ptr[p]
        all_radii[p] = np.concatenate([all_radii[p], sel.radii[len(all_radii[p]):]])
    made = np.array([len(a) for a in indices], np.int64)
    return np.concatenate([np.empty(0, np.int64), *indices]), np.concatenate([np.empty(0), *all_radii]), made


def _per_problem(host, order, ptr, counts, starts, metric, backend, tally, only=None, labels=None,
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
        sel = _select(_rows(host, order, slice(ptr[p], ptr[p + 1])), int(counts[p]), metric=metric,
                      start=int(starts[p]), backend=backend, name=name(p), radius=radius,
                      progress=tally.part())
        tally.add(len(sel.indices))
        indices[p], radii[p] = sel.indices + ptr[p], sel.radii
    return indices, radii


def _run_warm(host, warm: dict, counts, metric, backend, nonfinite, radius, tally) -> dict:
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


def _splice(indices, radii, counts, done: dict):
    """The picks of all problems: ``indices``/``radii`` of the others, in order, around
    ``done``'s ``{p: (indices, radii)}``."""
    out_ptr = np.concatenate([[0], np.cumsum(counts)])
    rest = np.repeat(~problems_in(done, len(counts)), counts)
    all_indices, all_radii = np.empty(len(rest), np.int64), np.empty(len(rest))
    all_indices[rest], all_radii[rest] = indices, radii
    for p, (rows, values) in done.items():
        all_indices[out_ptr[p]:out_ptr[p + 1]], all_radii[out_ptr[p]:out_ptr[p + 1]] = rows, values
    return all_indices, all_radii


def _check_small_values(host, order, ptr, out_ptr, radii, counts, labels):
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


def _check_layout(x) -> None:
    """Point-cloud layouts that ``select_batched`` does not take, with the one it does."""
    if getattr(x, "is_nested", False):  # before .shape, which a nested tensor refuses
        raise ValueError("x must be one 2-D (N, d) tensor; got a nested tensor. Pass "
                         "torch.cat(x.unbind()) and ptr, the cumulative sum of the lengths from 0")
    shape = getattr(x, "shape", None)
    if shape is not None and len(shape) == 3:
        b, n, d = (int(v) for v in shape)
        raise ValueError(f"x must be 2-D (N, d), the problems' rows one after another; got shape "
                         f"{tuple(shape)}. For {b} clouds of {n} points: x.reshape(-1, {d}) with "
                         f"ptr = arange({b} + 1) * {n}; or hminsel.compat.pytorch3d."
                         "sample_farthest_points for (B, K) local indices")
    if isinstance(x, (list, tuple)) and x and all(getattr(c, "ndim", 0) == 2 for c in x):
        raise ValueError(f"x must be one 2-D (N, d) array; got a list of {len(x)} arrays. "
                         "Concatenate them (np.concatenate / torch.cat) and pass ptr, the "
                         "cumulative sum of their lengths from 0")


def _labels_out(labels, library: str):
    """The problems' labels in x's library; strings stay NumPy (no tensor holds them)."""
    if labels is None or labels.dtype.kind in "US":
        return labels
    return _inputs.to_library(labels, library)


def select_batched(x, k, *, ptr=None, batch=None, start=0, metric="l2", seed=None,
                   backend="auto", groups=None, mask=None, nonfinite="raise",
                   init=None, radius=None, progress=False) -> BatchedSelection:
    """Farthest-point selection on many independent problems (ragged) in one call.

    Problem p is a range of rows of ``x``; its picks are exactly those of
    ``hminsel.select(x[lo:hi], k_p, start=start_p)`` (same indices, same radii,
    same precision: float32 accumulation for float16/float32, float64 for
    float64; ties to the lowest index), returned as global row indices.

    Args:
        x: (N, d) array (NumPy, torch tensor on the CPU or a GPU, CuPy, array-like),
            as in ``select``.
        k: picks per problem: an int (every problem must have that many rows;
            0 picks none), a ratio in [0, 1] (``ceil(ratio * n_p)``, at least 1
            for a non-empty problem and a ratio above 0; 0.0 picks none), one
            int per problem, or one ratio per problem (floats; a list may not
            mix ints and floats). With ``groups``:
            also a dict ``{label: count}`` or ``{label: ratio}`` (a label it
            leaves out gets no new pick, but keeps its ``init`` rows). 0-d
            arrays and tensors count as scalars.
        ptr: (P + 1,) CSR offsets: problem p is rows ``ptr[p] .. ptr[p + 1]``.
        batch: (N,) problem id of each row, sorted (non-decreasing; an unsorted
            vector is an error: use ``groups`` for unsorted labels). Pass at
            most one of ptr / batch / groups; none means one problem.
        start: first pick, a local row index (all problems), one per problem,
            or ``"random"``: one draw per problem from ``default_rng(seed)``.
            Problems that hold ``init`` rows do not use it.
        metric: ``"l2"`` or ``"cosine"``.
        seed: seed of the random starts, as ``select``'s.
        backend: as in ``select``.
        groups: (N,) labels (ints or strings, any order; floats that are whole
            numbers read as ints): one problem per
            distinct label, in sorted label order, for per-label quotas.
        mask: (N,) bool (NumPy, torch or CuPy): the rows that may be picked.
            Problem p then picks as ``select(x[lo:hi], k_p, start=start_p,
            mask=mask[lo:hi])``: a ratio k counts its allowed rows, an int k
            must fit them, a start must be one (0, the default, moves to the
            problem's first allowed row; ``"random"`` draws among them), and
            a problem the mask empties gets no pick from a ratio k.
            With ``mask`` or ``groups`` the small problems' rows are gathered
            into one copy, each large problem's when it runs.
        nonfinite: ``"raise"`` (rows with NaN or inf raise, naming the first)
            or ``"skip"``: such rows are left out, as rows a mask leaves out.
        init: rows of x already chosen (global indices, distinct; a warm
            start, as ``select``'s ``init``). A problem that holds some of
            them continues from them: its picks are ``select(x[lo:hi], k_p,
            init=its init rows, mask=mask[lo:hi])``, beginning with those rows
            in the order given, and k_p counts them (a ratio counts init rows
            outside the mask as rows too). Other problems start from
            ``start``. Those problems run one ``select`` each.
        radius: ``select``'s, per problem: each problem's picks end before the first
            within ``radius`` of its picks, its k a cap (a count past its rows caps
            nothing, where without a radius it raises: a problem a mask empties
            makes no pick, whatever k); ``ptr`` says how many each
            made (the cpu backend's kernels stop each problem at its cut, the Triton
            ones run the small problems to their caps and drop the picks past it; on
            other backends each problem runs one ``select``).
        progress: True for a bar on stderr (a terminal only), or a callable(done,
            total): picks made over all problems (the small problems' kernel call
            reports at its end, each large or warm problem as its ``select`` goes;
            with ``radius`` the total shrinks to the picks made at the end).

    Returns:
        BatchedSelection with ``indices`` (global rows), ``ptr`` (P + 1,) into
        them, ``radii`` (``inf`` at each problem's first pick) and ``labels``
        (with ``groups``), in x's array library; with ``radius``, ``caps`` and
        ``radius_reached`` (NumPy): each problem's cap and whether the radius
        ended it.

    Example:
        >>> pos = np.random.rand(3000, 3).astype(np.float32)
        >>> res = hminsel.select_batched(pos, 0.25, ptr=[0, 1000, 3000])
        >>> res.indices[res.ptr[1]:res.ptr[2]]   # rows of the second cloud
    """
    return _select_batched(x, k, ptr=ptr, batch=batch, start=start, metric=metric, seed=seed,
                           backend=backend, groups=groups, mask=mask, nonfinite=nonfinite,
                           init=init, radius=radius, progress=progress)


def _select_batched(x, k, *, ptr=None, batch=None, start=0, metric="l2", seed=None,
                    backend="auto", groups=None, mask=None, nonfinite="raise", init=None,
                    radius=None, progress=False, low_too=True) -> BatchedSelection:
    """``select_batched``; ``low_too=False``: host rows whose values are all too small for L2
    sums raise only in a problem of two picks or more (``hminsel.distributed``'s labels, whose
    rows are a part of x: x itself was checked)."""
    from . import _device
    _check_layout(x)
    radius = _radius.check(radius)
    _progress.check(progress)
    if _device.wanted(x, backend):
        from ._batched_device import select_batched_device
        indices, out_ptr, radii, labels, name, caps = select_batched_device(
            x, k, ptr, batch, start, metric, seed, backend, groups, mask, nonfinite, init, radius,
            progress)
        return BatchedSelection(indices=indices, ptr=out_ptr, radii=radii, labels=labels,
                                metric=metric, backend=name, caps=caps)
    _device.refuse_on_host(x, backend)
    host, library = _inputs.host_array(x)
    if host.ndim == 2 and len(host) == 0 and host.shape[1] > 0:  # no rows: only empty problems
        host = host.astype(np.float64 if host.dtype == np.float64 else np.float32)
    else:
        host = _inputs.check_points(host)
    _inputs.check_metric(metric)
    valid = _inputs.check_finite(host, nonfinite, metric=metric, low_too=low_too)
    order, ptr, counts, starts, labels, warm = layout(len(host), k, ptr, batch, start, seed, groups,
                                                      mask, valid, init, cap=radius is not None)
    is_warm = problems_in(warm, len(counts))  # these run _run_warm, the others here
    total, counts = counts, np.where(is_warm, 0, counts)
    large = _large(ptr, host.shape[1], counts, radius is not None) | is_warm
    if metric == "cosine" and (large.any() or order is not None):  # zero rows named as rows of x
        _inputs.prepare(host, metric, valid, in_place=True)  # norms only, on the C++ pool
    xp = _small_rows(host, order, ptr, large, metric)  # large ones: select prepares their rows
    be = backends.resolve(backend, xp)
    tally = _progress.Tally(_progress.reporter(progress, int(total.sum()), "select_batched"),
                           shrinks=radius is not None)
    with _threads.host_work():  # as hminsel.api.host_work: host arrays here
        if be.name == "cpu":
            indices, radii, made = _run_cpu(xp, host, order, ptr, counts, starts, metric, be, large,
                                            labels, radius, tally)
        else:
            indices, radii = _per_problem(host, order, ptr, counts, starts, metric, be.name, tally,
                                          labels=labels, radius=radius)
            made = np.array([len(a) for a in indices], np.int64)
            indices = np.concatenate([np.empty(0, np.int64), *indices]).astype(np.int64)
            radii = np.concatenate([np.empty(0), *radii]).astype(np.float64)
    if order is not None:
        indices = order[indices]
    if warm:
        with _threads.host_work():
            done = _run_warm(host, warm, total, metric, be.name, nonfinite, radius, tally)
        made = made_with(made, done)
        indices, radii = _splice(indices, radii, made, done)
    out_ptr = np.concatenate([[0], np.cumsum(made)]).astype(np.int64)
    if metric == "l2":
        _check_small_values(host, order, ptr, out_ptr, radii, made, labels)
    tally.finish(int(made.sum()))
    return BatchedSelection(indices=_inputs.to_library(indices, library),
                            ptr=_inputs.to_library(out_ptr, library),
                            radii=_inputs.to_library(radii, library),
                            labels=_labels_out(labels, library),
                            metric=metric, backend=be.name,
                            caps=None if radius is None else np.asarray(total, np.int64))
