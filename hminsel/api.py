"""The public functions: validation, coercion and dispatch; no numerics here."""
from __future__ import annotations

import dataclasses
import time

import numpy as np

from . import _device, _inputs, _nearest, _picks, _progress, _radius, _threads, backends
from .algorithms.bucket import bucket
from .algorithms.lazy import lazy
from .algorithms.pairs import closest_pair
from .algorithms.streaming import streaming
from ._radius import to_metric
from ._rows import UnitRows
from .backends.base import MARK
from .results import HMin, Selection, Stats

ALGORITHMS = ("auto", "lazy", "streaming", "bucket")
STREAM_PICKS = 16  # below this k, "auto" streams: a bucket build or a lazy round costs several passes


def _points(x, metric, nonfinite, backend="auto", name="x", hint=_inputs.SKIP_HINT,
            in_place=False, low_too=True, wide=False):
    """(host array, library, prepared array, finite-row mask or None).

    On the device path (see ``_device.wanted``) the first and third are torch
    tensors on x's device; the mask is always a host array. ``name`` and
    ``hint`` go into the error messages. ``in_place``: when the call runs on
    the cpu backend, host rows it can read where they lie are not copied
    (float16 for l2, cosine's unit rows: ``_inputs.prepare``). ``low_too``: values too
    small for the sums raise (``_finite.check_scale``; too large ones always do). ``wide``:
    float16/float32 host rows are read as float64 (``nearest``'s centres of float64 rows).
    """
    if _device.wanted(x, backend):
        _device.require(backend)
        return _device.points(x, metric, nonfinite, name, hint, low_too)
    _device.refuse_on_host(x, backend, name)
    host, library = _inputs.host_array(x, name)
    host = _inputs.check_points(host, name)
    if wide and host.dtype in (np.float16, np.float32):
        host = host.astype(np.float64)
    _inputs.check_metric(metric)
    in_place = in_place and backends.host_reads_in_place(backend)
    if in_place and not host.flags.c_contiguous and nonfinite in ("raise", "skip"):  # a strided
        host = np.ascontiguousarray(host)  # view (x[:, :256], x[::2]): gathered once as stored
    valid = _inputs.check_finite(host, nonfinite, name, hint, metric, low_too)
    return host, library, _inputs.prepare(host, metric, valid, in_place, name), valid


def _algorithm(name: str, k: int, x, be, head_size=None) -> str:
    if name not in ALGORITHMS:
        raise ValueError(f"algorithm must be one of {ALGORITHMS}; got {name!r}")
    if head_size is not None and name not in ("auto", "lazy"):
        raise ValueError(f"head_size={head_size} only applies to algorithm='lazy' (or 'auto', which "
                         f"it makes lazy); got algorithm={name!r}")
    if name == "auto":
        if head_size is not None:  # a head size asks for the lazy rounds
            return "lazy"
        if k < STREAM_PICKS:  # a few picks: stream them
            return "streaming"
        if be.bucket_reason(x) is None:  # low d on a backend with a bucket kernel
            return "bucket"
        # a round costs about one pass; lazy pays once picks outnumber rounds
        return "lazy" if len(x) >= 256 else "streaming"
    if name == "bucket" and be.bucket_reason(x) is not None:  # the same sequence, streamed
        return "streaming"
    return name


def host_work(xp):
    """The state a call's work runs in (``_threads.host_work``): NumPy's floating-point
    warnings off, and for host arrays OpenBLAS held to one thread.

    hminsel parallelises over its own threads (row tiles, chunks); OpenBLAS's
    own threads would stack on them and, spinning after each call, take the
    cores from them: on 2 cores beside two busy processes, select of
    clustered 50k x 384, k = 2000 took 0.4-1.9 s with them and 0.22 s without
    (0.19 s and 0.15 s quiet). GPU tensors are left alone.
    """
    return _threads.host_work(blas=_on_host(xp))


def _on_host(xp) -> bool:
    """Whether a prepared array is a host one (NumPy, or unit rows of one), not a tensor."""
    return isinstance(xp, (np.ndarray, UnitRows))


def select(x, k, *, metric="l2", start=0, seed=None, init=None, mask=None, backend="auto",
           algorithm="auto", progress=False, nonfinite="raise", head_size=None,
           radius=None) -> Selection:
    """Greedy farthest-point (max-min) selection of ``k`` rows of ``x``.

    Each pick is the row farthest from all earlier picks, which maximises h_min,
    the smallest pairwise distance of the subset, to within a factor 2 of the
    optimum. The result is exactly the streaming FPS sequence whatever the
    algorithm or backend, with ties going to the lowest index.

    Args:
        x: (N, d) array: NumPy, a torch tensor (CPU or CUDA), a CuPy array, or
            array-like. float16, float32 or float64 on the host (integers are
            taken as float64, a torch bfloat16 tensor as float32); float32, float16 or bfloat16 on a GPU (integers as
            float32, exact up to 2^24: larger ones raise).
        k: number of rows to pick (int in [1, N]) or a fraction in (0, 1] of N,
            rounded up.
        metric: ``"l2"`` (Euclidean, default) or ``"cosine"`` (1 - cos).
        start: the first pick (default 0), or ``"random"`` to draw it with ``seed``.
        seed: seed of the random start: an int, a ``numpy.random.Generator``, or None
            (a draw from NumPy's global state: ``np.random.seed`` repeats it).
        init: indices already chosen (warm start), distinct (a repeat raises). The
            selection continues from them: ``indices`` begins with ``init`` and holds
            ``k`` picks in all. Their distances to every row cost about a
            ``nearest(x, x[init])`` (no pruning there).
        mask: (N,) bool (NumPy, torch or CuPy): the rows that may be picked;
            the others are never picked. A start of 0 (the default) moves to
            the first allowed row. ``init`` rows may lie outside it: they are
            picks already (keep a pool's picks away from rows you hold,
            stacked into x). A fractional ``k`` is then a share of the allowed
            rows and those ``init`` rows.
        backend: ``"auto"`` (default; ``HMINSEL_BACKEND`` overrides), ``"cpu"``,
            ``"numpy"`` (host arrays), ``"triton"`` or ``"cuda"`` (CUDA tensors; auto
            takes triton there). ``hminsel.info()`` says which are available.
        algorithm: ``"auto"`` (default: ``"streaming"`` for k < 16, else
            ``"bucket"`` for d <= 8 on the cpu and triton backends, else ``"lazy"``),
            ``"lazy"`` (exact lazy FPS),
            ``"streaming"`` (one pass over x per pick) or ``"bucket"`` (a tree
            of buckets, for d <= 8; runs as ``"streaming"`` for d > 8 or where
            the backend has no bucket kernel). Same result either way.
        progress: True for a progress bar on stderr (when it is a terminal), or a
            callable(done, total) called as picks are made, inside lazy rounds too.
        nonfinite: ``"raise"`` (default) on rows with NaN/inf, or ``"skip"`` to
            leave them out (they are never picked).
        head_size: a positive int that fixes the lazy head size M instead of
            adapting it (with ``algorithm="auto"`` it selects ``"lazy"``).
        radius: stop early, once the next pick would lie within ``radius`` (in the
            metric's units) of the picks made: every row that may be picked then
            lies within ``radius`` of a pick, and every two picks lie more than
            ``radius`` apart, ``init`` rows aside (an epsilon-net: ``radius=0`` drops
            exact duplicates only). ``k`` is then a cap (``k=1.0``, or a count past the
            rows that may be picked: no cap), and ``stats.radius_reached`` says whether
            the radius ended the run. Default None: exactly ``k`` picks.

    Arguments that would be ignored raise ``ValueError``: ``seed`` without
    ``start="random"``, ``start`` together with ``init``, ``head_size`` with
    ``algorithm="streaming"`` or ``"bucket"``.

    Returns:
        Selection with ``indices`` (k,) int64 in pick order (fewer with ``radius``), ``radii`` (k,)
        float64 (the distance of each pick to the ones before it, in the metric's units: Euclidean,
        not squared, or 1 - cos; ``radii[0] = inf``), ``hmin``
        (= ``min(radii)``: ``radii[-1]`` without ``init``) and ``stats``. Arrays come back in x's library.

    Example:
        >>> sel = hminsel.select(np.random.rand(10000, 64), 100)
        >>> sel.indices[:3], sel.hmin
        >>> net = hminsel.select(emb, 1.0, metric="cosine", radius=0.05)  # near-duplicates out
    """
    return _select(x, k, metric=metric, start=start, seed=seed, init=init, mask=mask,
                   backend=backend, algorithm=algorithm, progress=progress, nonfinite=nonfinite,
                   head_size=head_size, radius=radius)


def _select(x, k, *, metric="l2", start=0, seed=None, init=None, mask=None, backend="auto",
            algorithm="auto", progress=False, nonfinite="raise", head_size=None, radius=None,
            name="x") -> Selection:
    """``select``, whose errors about x's values call it ``name`` (``select_batched``'s
    problems: "problem 3")."""
    _progress.check(progress)
    radius = _radius.check(radius)
    host, library, xp, valid = _points(x, metric, nonfinite, backend, name=name, in_place=True)
    allowed = _picks.resolve_mask(mask, len(host))
    k, seeds, left_out = _picks.resolve_picks(k, start, seed, init, len(host), valid, allowed,
                                              cap=radius is not None)
    head_size = _inputs.check_head_size(head_size)
    be = backends.resolve(backend, xp)
    algorithm = _algorithm(algorithm, k, xp, be, head_size)
    mind = be.full(xp, np.inf)
    if left_out is not None:  # rows with NaN (nonfinite="skip") or outside the mask
        mind[be.index(left_out, xp)] = MARK
    report = _progress.reporter(progress, k, "select")
    floor = _radius.floor(radius, metric)
    t0 = time.perf_counter()
    with host_work(xp):
        if algorithm == "lazy":
            picks, values, stats = lazy(be, xp, mind, seeds, k, head_size=head_size,
                                        progress=report, floor=floor)
        elif algorithm == "bucket":
            picks, values = bucket(be, xp, mind, seeds, k, progress=report, floor=floor)
            stats = Stats(seconds=time.perf_counter() - t0)
        else:
            picks, values = streaming(be, xp, mind, seeds, k, progress=report, floor=floor)
            folds = 1 if 1 < len(seeds) < k else 0  # the first picks in one block_min pass
            stats = Stats(passes=float(len(picks) - len(seeds) + folds),
                          seconds=time.perf_counter() - t0)
    radii = to_metric(values, metric)
    if radius is not None:
        picks, radii = _radius.cut(picks, radii, radius, len(seeds))
        stats = dataclasses.replace(stats, radius_reached=len(picks) < k)
    if report:
        shrunk = len(picks) < report.total  # radius: the picks made are the total
        report.total = min(report.total, len(picks))
        report.finish(again=shrunk)
    device = None if _on_host(xp) else xp.device  # results go back to x's device
    return Selection(indices=_inputs.to_library(picks, library, device),
                     radii=_inputs.to_library(radii, library, device),
                     metric=metric, backend=be.name, algorithm=algorithm, stats=stats)


def hmin(x, *, metric="l2", backend="auto", nonfinite="raise", progress=False) -> HMin:
    """h_min of a set: its closest pair of rows, exactly.

    Candidates may be searched in the GEMM form, but the answer is re-checked in
    the direct form, so near-duplicates at large norms come out right.

    Args:
        x: (N, d) array (see ``select``).
        metric: ``"l2"`` or ``"cosine"``.
        backend: as in ``select``.
        nonfinite: ``"raise"`` or ``"skip"`` rows with NaN/inf.
        progress: True for a bar on stderr (a terminal; large inputs only), or a
            callable(done, total) with done in percent of the pair work.

    Returns:
        HMin with ``value`` (in the metric's units; ``inf``, with ``i = j = -1``, for
        a single row or fewer than two left by ``nonfinite="skip"``; an x of no rows
        raises) and the pair ``i < j`` (lowest pair on ties).

    Example:
        >>> res = hminsel.hmin(np.random.rand(5000, 32)); res.value, res.i, res.j
    """
    return closest(x, metric=metric, backend=backend, nonfinite=nonfinite, progress=progress)


def closest(x, *, metric="l2", backend="auto", nonfinite="raise", progress=False,
            low_too=True, squared=False) -> HMin:
    """``hmin``'s work; ``low_too=False`` skips the check that values are not all too small for
    the sums (``hminsel.distributed.hmin``: checked over all shards, not one); ``squared``:
    the value as the kernels compare it (``nearest_values``'s)."""
    _progress.check(progress)
    host, _, xp, valid = _points(x, metric, nonfinite, backend, in_place=True, low_too=low_too)
    xp, rows = _nearest.finite_part(xp, valid)
    be = backends.resolve(backend, xp)
    report = _progress.reporter(progress, 100, "hmin", unit="%")
    tick = report and (lambda f: report.update(int(100 * f), work=f))
    with host_work(xp):
        value, i, j = closest_pair(be, xp, progress=tick)
    if report:
        report.finish()
    if i >= 0 and rows is not None:
        i, j = rows[i], rows[j]
    return HMin(value=float(value if squared else to_metric(value, metric)), i=int(i), j=int(j),
                metric=metric, backend=be.name)


NEAREST_HINT = "Clean them, or leave them out with nonfinite='skip'"


def nearest(x, centers, *, metric="l2", backend="auto", nonfinite="raise", progress=False):
    """Nearest center of every row of ``x``, exactly (lowest center index on ties).

    Args:
        x: (N, d) array; centers: (m, d) array with the same d.
        metric: ``"l2"`` or ``"cosine"``.
        backend: as in ``select``.
        nonfinite: ``"raise"`` (default) on rows with NaN/inf in x or centers, or
            ``"skip"``: such a row of x gets distance NaN and index -1 (``np.nanmax``
            of the distances is the coverage radius of the finite rows), and such a
            center is never anyone's nearest (a call whose every center is left out
            raises).
        progress: True for a bar on stderr (a terminal; large inputs only), or a
            callable(done, total) counting rows of x.

    Returns:
        ``(dist, idx)``: (N,) distances in the metric's units and (N,) int64
        center indices, in x's array library.

    Example:
        >>> dist, idx = hminsel.nearest(x, x[sel.indices])
    """
    return nearest_values(x, centers, metric=metric, backend=backend, nonfinite=nonfinite,
                          progress=progress)


def nearest_values(x, centers, *, metric="l2", backend="auto", nonfinite="raise", progress=False,
                   squared=False):
    """``nearest``; ``squared``: the distances as the kernels compare them (squared L2, or the
    cosine's squared chord), which ``hminsel.distributed`` compares across ranks as one
    process does (two such values may round to one distance)."""
    _progress.check(progress)
    on_device = _device.wanted(x, backend)
    host, library, xp, valid = _points(x, metric, nonfinite, backend, "x", NEAREST_HINT,
                                       in_place=True, low_too=False)  # large centres: checked below
    if not on_device and _device.on_gpu(centers):
        raise ValueError("centers is on a GPU, but x is on the host: pass both on one device")
    wide = (metric == "cosine" and not on_device  # centres normalised in x's dtype, as x is
            and _inputs.compute_dtype(host.dtype) == np.float64)
    chost, _, cp, cvalid = _points(centers, metric, nonfinite, backend if on_device else "numpy",
                                   "centers", NEAREST_HINT, low_too=False, wide=wide)
    if chost.shape[1] != host.shape[1]:
        raise ValueError(f"centers must have the same d as x ({host.shape[1]}); "
                         f"got shape {tuple(chost.shape)}")
    if cvalid is not None and not cvalid.any():
        raise ValueError(f"every row of centers ({len(cvalid)}) holds NaN or inf: "
                         "nonfinite='skip' left no center")
    if metric == "l2":
        _nearest.check_pair_scale(host, chost, _inputs.compute_dtype(_dtype_of(host)))
    rows = None if valid is None else np.flatnonzero(valid)  # x's finite rows, read in place
    cp, centre_rows = _nearest.finite_part(cp, cvalid)  # the finite centres: a (small) copy
    be = backends.resolve(backend, xp)
    if not _on_host(xp):  # the device path: torch tensors
        value, index = _nearest.on_device(be, xp, cp, rows)
        dist, index = _nearest.spread(value if squared else _device.metric_units(value, metric),
                                      index, rows, centre_rows, len(host))
        return _device.out(dist, library), _device.out(index, library)
    with host_work(xp):
        value, index = _nearest.on_host(be, xp, cp, progress, rows)
    dist, index = _nearest.spread(value if squared else to_metric(value, metric),
                                  index.astype(np.int64), rows, centre_rows, len(host))
    return _inputs.to_library(dist, library), _inputs.to_library(index, library)


def _dtype_of(a) -> np.dtype:
    """The NumPy dtype ``a``'s values are checked in (a tensor's bfloat16: float32)."""
    return np.dtype(a.dtype) if _on_host(a) else _device.stored_dtype(a)


def info() -> str:
    """A multi-line report of the backends: which are available, and why not."""
    lines = ["hminsel backends (auto order: " + ", ".join(backends.AUTO_ORDER) + "):"]
    for name, reason in backends.report():
        note = backends.get(name).notes() if reason is None else None
        state = "available" if reason is None else "unavailable: " + reason
        lines.append(f"  {name:8s} {state}" + (f" ({note})" if note else ""))
    chosen = backends.requested(None)
    lines.append(f"  HMINSEL_BACKEND={chosen}")
    return "\n".join(lines)
