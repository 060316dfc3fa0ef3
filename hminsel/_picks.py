"""What a selection starts from and may pick: k, the first picks and the row mask.

``resolve_picks`` turns the user's ``k``, ``start``, ``seed``, ``init`` and
``mask`` into a count, the seed rows and the rows to leave out, with errors that
name what came. Small arguments (indices, masks) may live on a GPU: they are
copied to the host here (``small_host``); x itself is never read.
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from ._inputs import _torch, host_array, item_of, optional_int, plain_tensor


def resolve_k(k, n: int, empty: str | None = None, rows: str = "the selectable rows") -> int:
    """A count in [1, n], or a fraction in (0, 1] of n (rounded up); ``empty``: why n is 0,
    when a mask may have made it so (``empty_mask``); ``rows``: what n counts, for the error."""
    if n == 0:
        raise ValueError(empty or "every row of x holds NaN or inf: nonfinite='skip' left no row "
                         "to select")
    if isinstance(k, (bool, np.bool_)) or not isinstance(k, numbers.Real):
        raise TypeError(f"k must be an int count or a float fraction in (0, 1]; got {k!r}")
    if isinstance(k, numbers.Integral):
        if not 1 <= k <= n:
            raise ValueError(f"k must be in [1, {n}] ({rows}); got {k}")
        return int(k)
    if not (0.0 < k <= 1.0):
        count = (f" (a count is an int: k = int({k}) = {int(k)})"
                 if k > 1 and math.isfinite(k) and float(k).is_integer() and k <= n else "")
        raise ValueError(f"a fractional k must be in (0, 1]; got {k}{count}")
    return max(1, min(n, math.ceil(k * n - 1e-9)))


def capped(k, n: int):
    """``k`` as a cap on n rows (``radius``): an int count past them is n (any other k as given)."""
    k = item_of(k)
    if isinstance(k, numbers.Integral) and not isinstance(k, (bool, np.bool_)) and k > n >= 1:
        return n
    return k


def _check_index(i, n: int, what: str) -> int:
    if isinstance(i, (bool, np.bool_)) or not isinstance(i, numbers.Integral):
        raise TypeError(f"{what} must be an integer row index; got {i!r}")
    if not 0 <= i < n:
        raise ValueError(f"{what} must be in [0, {n - 1}]; got {i}")
    return int(i)


def _repeated(rows: list) -> str:
    """Where the first repeated row of ``rows`` stands: "row R at positions i and j"."""
    first = {}
    for pos, row in enumerate(rows):
        if row in first:
            more = len(rows) - len(set(rows))
            return (f"row {row} at positions {first[row]} and {pos}"
                    + (f" ({more} repeats in all)" if more > 1 else ""))
        first[row] = pos
    return "none"


def check_seed(seed):
    """None, a non-negative integer seed for ``numpy.random.default_rng``, or a
    ``numpy.random.Generator`` (drawn from, as given)."""
    if isinstance(seed, np.random.Generator):
        return seed
    return optional_int(seed, "seed", 0, "a non-negative integer, a numpy.random.Generator")


def rng(seed) -> np.random.Generator:
    """What a random start draws from: ``default_rng(seed)`` for an int seed, the Generator
    given, or for None one seeded by a draw from NumPy's global state, so ``np.random.seed``
    (as Lightning's ``seed_everything`` calls it) makes unseeded runs repeat too."""
    return np.random.default_rng(global_seed() if seed is None else seed)


def global_seed() -> int:
    """The seed ``rng(None)`` takes: one draw from NumPy's global state (it advances it)."""
    return int(np.random.randint(0, 2**31 - 1))


def small_host(a, name: str) -> np.ndarray:
    """A NumPy copy of a small array argument (indices, a mask), from the CPU or a GPU."""
    torch = _torch()
    if torch is not None and isinstance(a, torch.Tensor):
        a = plain_tensor(a, name).cpu()
        return (a.float() if a.dtype == torch.bfloat16 else a).numpy()  # NumPy has no bfloat16
    if type(a).__module__.split(".")[0] == "cupy":
        return a.get()
    return np.array(host_array(a, name)[0])


def init_rows_host(init) -> np.ndarray:
    """``init`` on the host, refused with a hint where it is a bool mask or a set (no order)."""
    if isinstance(init, (set, frozenset)):
        raise TypeError("init must be a sequence of row indices in the order they were picked; "
                        "got a set, which has no order: pass sorted(init) or a list")
    rows = small_host(init, "init")
    if rows.dtype == np.bool_ and rows.ndim == 1 and rows.size:
        raise TypeError("init must be row indices; got a boolean array (np.flatnonzero(mask) "
                        "gives its rows, in index order)")
    return rows


def resolve_mask(mask, n: int) -> np.ndarray | None:
    """None, or ``mask`` as an (n,) bool host array: the rows ``select`` may pick."""
    if mask is None:
        return None
    m = small_host(mask, "mask")
    if m.dtype != np.bool_ or m.shape != (n,):
        hint = (" (rows given by index: np.isin(np.arange(N), rows) makes the mask)"
                if m.dtype.kind in "iu" else "")
        raise ValueError(f"mask must be a boolean array with one entry per row of x, shape ({n},); "
                         f"got shape {m.shape}, dtype {m.dtype}{hint}")
    return m


def both(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    """The rows two optional (N,) bool masks both allow (None: every row)."""
    if a is None or b is None:
        return b if a is None else a
    return a & b


def resolve_picks(k, start, seed, init, n: int, valid: np.ndarray | None,
                  allowed: np.ndarray | None, cap: bool = False):
    """``(k, seeds, left_out)`` of a selection over n rows: k resolved against the rows that
    can be picked (``valid`` and ``allowed``, and ``init`` rows outside them, picks already),
    the first picks (``resolve_seeds``), and the rows to mark as never picked (None: none).
    ``cap``: k is a cap (a ``radius`` ends the run): a count past those rows takes them all."""
    k, start = item_of(k), item_of(start)
    if init is not None:
        init = init_rows_host(init)  # once: on the host from here on
        if init.size == 0:
            init = None  # nothing picked yet: the selection starts from start
    pickable = both(valid, allowed)
    n_in = n if pickable is None else int(pickable.sum())
    outside = picked_outside(init, n, pickable)
    rows = _rows_said(n_in, outside, valid, allowed)
    given, k = k, resolve_k(capped(k, n_in + outside) if cap else k, n_in + outside,
                            empty_mask(allowed), rows)
    said = f"k = {given!r} ({k} of {rows})" if isinstance(given, float) else f"k = {k}"
    seeds = resolve_seeds(start, seed, init, n, k, valid, allowed, said)
    if pickable is None:
        return k, seeds, None
    out = ~pickable
    out[seeds] = False  # init rows outside a mask: picks, folded (and marked) as such
    return k, seeds, np.flatnonzero(out)


def _rows_said(n_in: int, outside: int, valid, allowed) -> str:
    """What k counts, for its errors: the rows that may be picked, and init rows outside
    them (picked already)."""
    if valid is None and allowed is None:
        return f"the {n_in} rows of x"
    said = f"{n_in} {'finite ' if valid is not None else ''}rows" + (
        " the mask allows" if allowed is not None else "")
    return said + (f" and {outside} init row{'s' * (outside != 1)} outside them" if outside else "")


def empty_mask(allowed: np.ndarray | None) -> str | None:
    """What to say when a mask leaves no row to select (None: no mask)."""
    if allowed is None:
        return None
    if not allowed.any():
        return "mask allows no row: every entry is False"
    return "every row mask allows holds NaN or inf, and nonfinite='skip' leaves them out"


def picked_outside(init, n: int, pickable: np.ndarray | None) -> int:
    """How many distinct rows of ``init`` lie outside ``pickable`` (they count toward k too)."""
    if init is None or pickable is None:
        return 0
    rows = np.unique(np.ravel(small_host(init, "init")))
    if rows.dtype.kind not in "iu":
        return 0  # resolve_seeds says what is wrong with it
    rows = rows[(rows >= 0) & (rows < n)]
    return int((~pickable[rows]).sum())


def _is_default_start(start) -> bool:
    return not isinstance(start, (str, bool, np.bool_)) and isinstance(start, numbers.Integral) \
        and start == 0


def resolve_seeds(start, seed, init, n: int, k: int, valid: np.ndarray | None,
                  allowed: np.ndarray | None = None, k_said: str | None = None) -> list[int]:
    """The first picks: ``init`` if given, else ``[start]`` (``"random"`` draws one).

    Arguments that would be ignored raise: ``seed`` without ``start="random"``,
    ``start`` (other than the default 0) together with ``init``. ``allowed``:
    the rows a mask lets ``select`` pick; the start must be one (the default 0
    moves to the first row that can be picked: allowed, and finite under
    ``nonfinite="skip"``), ``init`` rows need not (they are picked already).
    """
    seed = check_seed(seed)
    if isinstance(start, str) and start != "random":  # a misspelt "random": said before the seed
        raise ValueError(f"start must be a row index or 'random'; got {start!r}")
    if init is not None and not _is_default_start(start):
        raise ValueError(f"start and init were both given (start={start!r}); the selection "
                         "continues from init, whose first entry is the start: drop start")
    if seed is not None and (init is not None or start != "random"):
        raise ValueError(f"seed={seed} only applies to start='random'; got "
                         + ("init" if init is not None else f"start={start!r}")
                         + ". Pass start='random', or drop seed")
    if init is not None:
        init_host = init_rows_host(init)
        if init_host.ndim > 1:  # as select_batched's init: a (1, m) array is not taken as m rows
            raise ValueError(f"init must be a 1-D sequence of row indices; got shape "
                             f"{tuple(init_host.shape)}")
        seeds = [_check_index(i, n, "init entries") for i in np.ravel(init_host).tolist()]
        if len(set(seeds)) != len(seeds):
            raise ValueError(f"init has repeated indices: {_repeated(seeds)}; pass each row "
                             "once, e.g. list(dict.fromkeys(init)) (first places kept)")
        if len(seeds) > k:
            raise ValueError(f"init has {len(seeds)} picks but {k_said or f'k = {k}'}; need "
                             "len(init) <= k")
    elif isinstance(start, str):
        ok = both(valid, allowed)
        choices = np.arange(n) if ok is None else np.flatnonzero(ok)
        seeds = [int(rng(seed).choice(choices))]
    else:
        seeds = [_check_index(start, n, "start")]
        ok = both(valid, allowed)
        if ok is not None and not ok[seeds[0]] and _is_default_start(start):
            seeds = [int(np.flatnonzero(ok)[0])]  # the default start: the first row to pick
        elif allowed is not None and not allowed[seeds[0]]:
            raise ValueError(f"start row {seeds[0]} is one mask leaves out: pass a row it "
                             f"allows, such as start={int(np.flatnonzero(ok)[0])}, or "
                             "start='random'")
    if valid is not None:
        bad = [s for s in seeds if not valid[s]]
        if bad:
            what = "init entry" if init is not None else "start row"
            ok = both(valid, allowed)
            fix = ("drop it from init" if init is not None else
                   f"pass start='random' (draws a finite row) or a finite row such as "
                   f"start={int(np.flatnonzero(ok)[0])}")
            raise ValueError(f"{what} {bad[0]} holds NaN or inf, and nonfinite='skip' leaves "
                             f"such rows out: {fix}")
    return seeds
