"""The problems of ``select_batched``, resolved on the host: rows, picks and starts.

``layout`` turns ``ptr`` (CSR offsets), a sorted ``batch`` vector or the
labels of ``groups``, with ``k``, ``start`` and a row ``mask``, into the
problems both paths run (``batched`` on the host, ``_batched_device`` on a
GPU): an optional order of the rows (grouped by label, kept by the mask),
offsets into it, the picks and the local start of each problem. Errors name
the problem or label and what came.
"""
from __future__ import annotations

import dataclasses
import numbers

import numpy as np

from . import _finite, _inputs, _picks
from ._labels import _group_problems, label_counts


def problem_name(labels=None):
    """How errors name problem p: ``problem p``, or ``label L`` of per-label quotas (a string
    label quoted, so that spaces and digits in it read as its own)."""
    if labels is None:
        return lambda p: f"problem {p}"
    return lambda p: f"label {str(labels[p])!r}" if isinstance(labels[p], str) else f"label {labels[p]}"


def _int_vector(v, name: str) -> np.ndarray:
    arr, _ = _inputs.host_array(v, name)
    arr = np.asarray(arr)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iu"):
        raise ValueError(f"{name} must be a 1-D integer array; got {arr.dtype} of shape {tuple(arr.shape)}")
    return arr.astype(np.int64)


def resolve_ptr(n: int, ptr=None, batch=None) -> np.ndarray:
    """CSR offsets (P + 1,) int64 from ``ptr``, a sorted ``batch`` vector, or neither."""
    if ptr is not None and batch is not None:
        raise ValueError("pass ptr or batch, not both")
    if ptr is not None:
        ptr = _int_vector(ptr, "ptr")
        if len(ptr) < 1 or ptr[0] != 0 or ptr[-1] != n:
            raise ValueError(f"ptr must start at 0 and end at N = {n}; got {ptr[:1].tolist()} .. {ptr[-1:].tolist()}")
        step = np.diff(ptr)
        if (step < 0).any():
            p = int(np.flatnonzero(step < 0)[0])
            raise ValueError(f"ptr must be non-decreasing; ptr[{p + 1}] = {ptr[p + 1]} < ptr[{p}] = {ptr[p]}")
        return ptr
    if batch is not None:
        batch = _int_vector(batch, "batch")
        if len(batch) != n:
            raise ValueError(f"batch must have one entry per row of x ({n}); got {len(batch)}")
        if n and batch[0] < 0:
            raise ValueError(f"batch ids must be >= 0; got {batch[0]}")
        down = np.flatnonzero(np.diff(batch) < 0)
        if len(down):
            i = int(down[0])
            raise ValueError(f"batch must be sorted (rows of a problem contiguous); batch[{i + 1}] = "
                             f"{batch[i + 1]} < batch[{i}] = {batch[i]}. Sort x and batch (stable argsort), "
                             "or use groups= for unsorted labels")
        size = int(batch[-1]) + 1 if n else 0
        return np.concatenate([[0], np.cumsum(np.bincount(batch, minlength=size))]).astype(np.int64)
    return np.array([0, n], np.int64)


def resolve_counts(k, sizes: np.ndarray, labels=None, whole=None, kept: str = "rows",
                   held=None, cap: bool = False) -> np.ndarray:
    """Picks per problem (P,) int64: one int, a ratio in [0, 1], or one int per problem
    (``sizes``: the rows each problem may pick, ``kept`` what they are called; ``whole``: its
    rows before a mask or ``nonfinite="skip"`` cut them; ``held``: how many of ``sizes`` are
    init rows outside them, for the errors). ``cap``: counts are caps (a ``radius`` ends
    the runs): a count past a problem's rows takes them all."""
    num, name = len(sizes), problem_name(labels)
    k = _inputs.item_of(k)
    if isinstance(k, (bool, np.bool_)) or isinstance(k, (str, bytes)):
        raise TypeError(f"k must be an int, a float ratio in [0, 1] or one int or ratio per "
                        f"problem; got {k!r}")
    if isinstance(k, numbers.Integral):
        counts = np.full(num, int(k), np.int64)
    elif isinstance(k, numbers.Real):
        if not 0.0 <= k <= 1.0:  # 0.0 picks none, as the int 0 and a per-problem 0.0 do
            raise ValueError(f"a ratio k must be in [0, 1]; got {k}")
        return _of_ratios(np.full(num, float(k)), sizes)
    else:
        _refuse_mixed(k)
        arr = np.asarray(_picks.small_host(k, "k"))
        if arr.ndim == 1 and arr.dtype.kind == "f":  # one ratio per problem
            arr = _inputs.decimal_values(arr)
            if len(arr) != num:
                raise ValueError(f"k must have one ratio per problem ({num}); got {len(arr)}")
            bad = np.flatnonzero(~((arr >= 0.0) & (arr <= 1.0)))
            if len(bad):
                raise ValueError(f"ratios in k must be in [0, 1]; {name(int(bad[0]))} has "
                                 f"{arr[bad[0]]}")
            return _of_ratios(arr, sizes)
        counts = _int_vector(arr, "k")
        if len(counts) != num:
            raise ValueError(f"k must have one count per problem ({num}); got {len(counts)}")
    if cap:
        counts = np.where(counts > sizes, sizes, counts)
    for p in np.flatnonzero((counts < 0) | (counts > sizes)).tolist():
        if counts[p] < 0:
            raise ValueError(f"k must be >= 0; {name(p)} asks for {counts[p]}")
        fit = ("; to take every row of the smaller problems pass one count per problem, "
               "k = np.minimum(k, np.diff(ptr))" if kept == "rows" and labels is None else
               "; to take every row of the smaller labels, pass radius=0 (CLI: --radius 0): k "
               "then caps each label, and only rows at distance 0 from a pick are left out"
               if labels is not None and not cap else "")
        if sizes[p] == 0:
            empty = "is empty" if whole is None or whole[p] == 0 else f"has 0 {kept}"
            raise ValueError(f"{name(p)} {empty} but k asks for {counts[p]} picks{fit}")
        extra = int(held[p]) if held is not None else 0
        rows = sizes[p] - extra
        has = f"{rows} {kept.replace('rows', 'row') if rows == 1 else kept}" + (  # "finite rows", ...
            f" and {extra} init rows outside them" if extra else "")
        raise ValueError(f"k = {counts[p]} is larger than {name(p)}, which has {has}{fit}")
    return counts


def _refuse_mixed(k) -> None:
    """A list or tuple ``k`` of counts (ints) and ratios (floats) together: NumPy would read
    every one as a ratio (``[1, 0.5]`` taking all rows of the first problem)."""
    if not isinstance(k, (list, tuple)):
        return
    values = [_inputs.item_of(v) for v in k]  # 0-d arrays and tensors as their scalars
    if any(isinstance(v, (bool, np.bool_)) for v in values):
        raise TypeError(f"k holds one count (int) or one ratio (float) per problem; got a bool in "
                        f"{k!r}")
    ints = [isinstance(v, numbers.Integral) for v in values]
    if any(ints) and not all(ints):
        raise TypeError(f"k holds one count (int) or one ratio (float) per problem, not both; "
                        f"got {k!r}")


def _of_ratios(ratios: np.ndarray, sizes: np.ndarray) -> np.ndarray:
    """Picks per problem for ratios of its rows, rounded up: at least one of a problem that
    has rows and a ratio above 0 (torch_cluster's rule)."""
    counts = np.where((sizes > 0) & (ratios > 0), np.maximum(1, np.ceil(ratios * sizes - 1e-9)), 0)
    return np.minimum(counts.astype(np.int64), sizes)


def resolve_starts(start, seed, sizes: np.ndarray, labels=None, warm=None) -> np.ndarray:
    """First pick of each problem (P,) int64, local to the problem; 0 for the problems
    ``warm`` marks (they continue from their init rows: a start is not theirs to check, but
    ``"random"`` draws for them too, so that the others' draws do not depend on them)."""
    num, name = len(sizes), problem_name(labels)
    start = _inputs.item_of(start)
    seed = _picks.check_seed(seed)
    if isinstance(start, str) and start != "random":  # a misspelt "random": said before the seed
        raise ValueError(f"start must be an int, 'random' or one int per problem; got {start!r}")
    if seed is not None and not (isinstance(start, str) and start == "random"):
        raise ValueError(f"seed={seed} only applies to start='random'; pass start='random', "
                         "or drop seed")
    if isinstance(start, str):
        # one generator, one draw per problem in order: reproducible with seed
        drawn = _picks.rng(seed).integers(0, np.maximum(sizes, 1)).astype(np.int64)
        return drawn if warm is None else np.where(warm, 0, drawn)
    if warm is not None:
        sizes = np.where(warm, 0, sizes)
    if isinstance(start, numbers.Integral) and not isinstance(start, (bool, np.bool_)):
        starts = np.full(num, int(start), np.int64)
    elif start is None or isinstance(start, (bool, np.bool_, numbers.Real)):
        raise TypeError(f"start must be an int, 'random' or one int per problem; got {start!r}")
    else:
        starts = _int_vector(start, "start")
        if len(starts) != num:
            raise ValueError(f"start must have one entry per problem ({num}); got {len(starts)}")
    bad = np.flatnonzero((sizes > 0) & ((starts < 0) | (starts >= sizes)))
    if len(bad):
        p = int(bad[0])
        raise ValueError(f"start of {name(p)} must be a local row in [0, {sizes[p] - 1}]; got {starts[p]}")
    return np.where(sizes > 0, starts, 0)


def problems_in(keys, num: int) -> np.ndarray:
    """(num,) bool: the problems named by ``keys`` (a dict's keys: the warm problems)."""
    named = np.zeros(num, bool)
    named[list(keys)] = True
    return named


def _cut(allowed: np.ndarray, order, ptr, start, seed, kept: str, labels=None, warm=None):
    """``(order, ptr, starts)`` of the problems cut to the rows ``allowed`` (an (N,) bool;
    ``kept``: what they are called): order lists the kept rows of x, problem by problem;
    starts are local to the cut problems.

    A start is a local row of the whole problem and must be a kept one; a start of 0 (the
    default) moves to the problem's first kept row, as in ``select``, and ``"random"``
    draws among them. ``warm`` problems have no start (``resolve_starts``).
    """
    rows = np.arange(len(allowed)) if order is None else order
    keep = allowed[rows]
    before = np.concatenate([[0], np.cumsum(keep)])  # kept rows ahead of each position
    cut = before[ptr]
    if isinstance(start, str):
        return rows[keep], cut, resolve_starts(start, seed, np.diff(cut), labels, warm)
    sizes = np.where(warm, 0, np.diff(ptr)) if warm is not None else np.diff(ptr)
    starts = resolve_starts(start, seed, sizes, labels)  # checked against the whole problems
    at = ptr[:-1] + starts  # at most N: an empty problem's start is 0
    out = (sizes > 0) & ~np.append(keep, False)[at]
    wrong = out & (starts != 0) & (np.diff(cut) > 0)
    if wrong.any():
        p = int(np.flatnonzero(wrong)[0])
        first = int(np.flatnonzero(keep[ptr[p]:ptr[p + 1]])[0])
        raise ValueError(f"start of {problem_name(labels)(p)} (local row {starts[p]}) is not one of "
                         f"its {kept}: pass one that is, such as {first}, or start='random'")
    return rows[keep], cut, np.where(out, 0, before[at] - cut[:-1])


@dataclasses.dataclass(frozen=True)
class Warm:
    """A problem that continues from ``init`` rows: ``select(x[rows], k_p, init=init,
    mask=mask)`` on all its rows (those a mask or ``nonfinite="skip"`` leaves out too: init
    rows may be among them)."""

    rows: np.ndarray  # (n_p,) int64 rows of x, in problem order
    init: np.ndarray  # local indices into rows, in the order given
    mask: np.ndarray | None  # the user's mask over rows


def resolve_init(init, n: int, valid) -> np.ndarray:
    """``init`` as distinct int64 rows of x (finite ones under ``nonfinite="skip"``)."""
    rows = np.asarray(_picks.init_rows_host(init))
    rows = rows.reshape(1) if rows.ndim == 0 else rows  # one row, as select takes it
    if rows.ndim != 1 or (rows.size and rows.dtype.kind not in "iu"):
        raise ValueError(f"init must be a 1-D array of row indices of x; got {rows.dtype} of "
                         f"shape {tuple(rows.shape)}")
    if rows.size and n == 0:
        raise ValueError(f"init names rows of x, which has none; got {rows.ravel()[0]}")
    bad = rows[(rows < 0) | (rows >= n)]  # before int64: a uint64 past it stays itself
    if len(bad):
        raise ValueError(f"init entries must be rows of x in [0, {n - 1}]; got {bad[0]}")
    rows = rows.astype(np.int64)
    uniq, seen = np.unique(rows, return_counts=True)
    if (seen > 1).any():
        raise ValueError(f"init has repeated rows: {uniq[seen > 1][:10].tolist()}")
    if valid is not None and not valid[rows].all():
        raise ValueError(f"init row {rows[~valid[rows]][0]} holds NaN or inf, and nonfinite='skip' "
                         "leaves such rows out: drop it from init")
    return rows


def _warm_problems(rows: np.ndarray, order, ptr, user) -> dict:
    """``{p: Warm}`` for every problem that holds one of the init ``rows`` (whole problems:
    before a cut)."""
    where = rows if order is None else np.argsort(order)[rows]  # positions in problem order
    owner = np.searchsorted(ptr, where, side="right") - 1
    by = np.argsort(owner, kind="stable")  # each problem's init rows together, in the order given
    problems, first = np.unique(owner[by], return_index=True)
    warm = {}
    for p, mine in zip(problems.tolist(), np.split(where[by], first[1:])):
        lo, hi = ptr[p], ptr[p + 1]
        members = np.arange(lo, hi) if order is None else order[lo:hi]
        warm[p] = Warm(rows=members, init=mine - lo, mask=None if user is None else user[members])
    return warm


def counts_with_init(k, sizes, init_rows, held, names=None, whole=None, kept="rows", cap=False):
    """``resolve_counts`` where problems hold init rows (``init_rows``, (P,)): they count toward
    k, as in ``select``, and those outside the rows ``sizes`` counts (``held``, (P,): picks
    already) count as rows too; a problem's k must cover its init rows. A label that a dict
    ``k`` leaves out gets no new pick: its init rows alone. ``cap``: ``resolve_counts``'s."""
    unnamed = None
    if isinstance(k, dict) and names is not None:
        unnamed = np.array([lab not in k for lab in names], bool)
        k = label_counts(k, np.asarray(names))
    counts = resolve_counts(k, sizes + held, names, whole, kept, held, cap)
    if unnamed is not None:
        counts = np.where(unnamed, init_rows, counts)
    short = np.flatnonzero(counts < init_rows)
    if len(short):
        p = int(short[0])
        raise ValueError(f"{problem_name(names)(p)} has {init_rows[p]} init rows but k asks for "
                         f"{counts[p]} picks; k counts them too (need k >= its init rows)")
    return counts


def _warm_counts(k, sizes, warm: dict, allowed, names, whole, kept, cap=False):
    """Picks per problem when some continue from init rows (``counts_with_init``)."""
    init_rows, held = np.zeros(len(sizes), np.int64), np.zeros(len(sizes), np.int64)
    for p, w in warm.items():
        init_rows[p] = len(w.init)
        if allowed is not None:
            held[p] = int((~allowed[w.rows[w.init]]).sum())
    return counts_with_init(k, sizes, init_rows, held, names, whole, kept, cap)


def layout(n: int, k, ptr, batch, start, seed, groups, mask=None, valid=None, init=None,
           cap=False):
    """The problems on the host: ``(order or None, ptr, counts, starts, labels or None, warm)``.

    ``order`` (with ``groups``, ``mask`` or ``valid``, the finite rows under
    ``nonfinite="skip"``) lists the rows grouped by label and kept; ptr, counts
    and starts then refer to those rows. ``warm``: ``{p: Warm}``, the problems
    that hold rows of ``init`` (none: {}); they continue from them, so their
    start is 0 (unused). ``cap``: counts are caps (``resolve_counts``).
    """
    user = _picks.resolve_mask(mask, n)
    allowed = _picks.both(user, valid)
    if allowed is not None and allowed.all():  # every row kept: the problems as they lie, no gather
        allowed = None
    kept = " ".join(w for w, on in (("finite", valid is not None), ("rows", True),
                                    ("mask allows", user is not None)) if on)  # for errors
    labels, order = None, None
    if groups is not None:
        if ptr is not None or batch is not None:
            raise ValueError("pass groups, or ptr/batch, not both")
        order, ptr, labels, k = _group_problems(groups, n, k)
    elif isinstance(k, dict):
        raise TypeError("k as a dict {label: count} needs groups=")
    ptr = resolve_ptr(n, ptr, batch)
    whole = None
    names = None if labels is None else labels.tolist()
    warm = {} if init is None else _warm_problems(resolve_init(init, n, valid), order, ptr, user)
    is_warm = problems_in(warm, len(ptr) - 1)
    sizes = ptr[1:] - ptr[:-1]
    if allowed is None:
        starts = resolve_starts(start, seed, sizes, names, is_warm)
    else:
        whole = sizes
        order, ptr, starts = _cut(allowed, order, ptr, start, seed, kept, names, is_warm)
        sizes = ptr[1:] - ptr[:-1]
    counts = _warm_counts(k, sizes, warm, allowed, names, whole, kept, cap)
    return order, ptr, counts, starts, labels, warm


def small_value_suspects(out_ptr, radii, d: int, dtype) -> np.ndarray:
    """The problems whose values may all be too small for L2 sums: those of two picks or more
    whose radii (host, metric units: l2) all lie below ``2 sqrt(d) low``, which such values
    keep every distance under. Usual data: none, and nothing more is read."""
    out_ptr, radii = np.asarray(out_ptr, np.int64), np.asarray(radii, np.float64)
    made = out_ptr[1:] - out_ptr[:-1]
    some = np.flatnonzero(made > 1)
    if np.dtype(dtype) == np.float16 or not len(some):
        return some[:0]
    bound = 2.0 * np.sqrt(d) * _finite.low_magnitude(dtype)
    if not (radii < bound).any():  # every radius above it: no problem's largest below
        return some[:0]
    later = radii.copy()
    later[out_ptr[:-1][made > 0]] = -np.inf  # the first pick's radius is inf
    # Each segment runs to the next listed start: it may take in problems of one pick or
    # none after it, whose only entries are -inf.
    largest = np.maximum.reduceat(later, out_ptr[some])
    return some[largest < bound]


def check_small_values(problems, tops, counts, d: int, dtype, labels):
    """Raise, naming the first, for a problem of ``problems`` (ids) that picks two rows or more
    and whose rows' largest magnitude ``tops`` (one a problem of ``problems``) is non-zero but
    too small for L2 sums, as x's own check does (``_finite.check_scale``, which such a problem
    passes on the other problems' values): its distances vanish, its picks come back as silent
    ties. All-zero problems (distances exactly 0) pass."""
    problems, tops = np.asarray(problems, np.int64), np.asarray(tops, np.float64)
    if np.dtype(dtype) == np.float16 or not len(problems):
        return
    bad = (np.asarray(counts)[problems] > 1) & (tops > 0) & (tops < _finite.low_magnitude(dtype))
    if bad.any():
        first = int(np.argmax(bad))
        _finite.check_scale(float(tops[first]), d, dtype, problem_name(labels)(int(problems[first])))


def made_with(made, done: dict):
    """Each problem's pick count: ``made``, with ``done``'s problems (``{p: (rows, radii)}``) as
    they came (a radius may end them before their k)."""
    made = np.array(made, np.int64)
    for p, (rows, _) in done.items():
        made[p] = len(rows)
    return made
