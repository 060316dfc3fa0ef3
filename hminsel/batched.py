"""Algorithm 3: batched / ragged selection, many independent problems in one call.

Problems are row ranges of one array, given as CSR offsets ``ptr`` or a sorted
``batch`` vector (torch_cluster style), or as the labels of ``groups`` (per-label
quotas for data selection). Each problem's picks are exactly what
``hminsel.select`` returns on that problem alone: same indices, same radii.

On the ``cpu`` backend small problems run in one C++ call, one thread per
problem: the exact bucket FPS for d <= 8 (``csrc/cpu/bucket.cpp``, point
clouds), else a sequential streaming FPS (``csrc/cpu/batched.cpp``); problems
larger than ``LARGE_WORK`` elements, or (above d = 8) whose streaming passes
would cost more than the lazy FPS's (``picks_work``), go through
``hminsel.select`` (whole machine, exact lazy algorithm): ``_batched_host``. GPU tensors take the device path
(``_batched_device``: one batched Triton launch for the small problems, the
whole GPU for each large one). Any other backend runs ``hminsel.select`` per
problem (the NumPy oracle does).

With ``radius`` the cpu backend's kernels end each small problem where ``select``
would, before its first pick past the start within the radius (the exact floor
of ``_radius.floor``), in one call; above d = 8 a problem whose cap's streaming
work passes ``picks_work`` stops there in the kernel, and ``select`` goes on
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

from . import _progress, _radius


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
        parts = select_batched_device(x, k, ptr, batch, start, metric, seed, backend, groups, mask,
                                      nonfinite, init, radius, progress)
    else:
        _device.refuse_on_host(x, backend)
        from ._batched_host import select_batched_host
        parts = select_batched_host(x, k, ptr, batch, start, metric, seed, backend, groups, mask,
                                    nonfinite, init, radius, progress, low_too)
    indices, out_ptr, radii, labels, name, caps = parts
    return BatchedSelection(indices=indices, ptr=out_ptr, radii=radii, labels=labels,
                            metric=metric, backend=name, caps=caps)
