"""The passes over the user's rows before any kernel: which rows are finite, and whether
their values fit the sums (``check_scale``); a lower floor of ``_inputs``.

Both come from one scan: C-contiguous float16/32/64 rows are read as raw bits on the
C++ pool (``nonfinite_rows``: an exponent of all ones is NaN or inf, and the largest
finite magnitude is an integer max of the bits without the sign); other rows take
NumPy's, chunk by chunk.
"""
from __future__ import annotations

import re

import numpy as np

FLOAT_KINDS = {np.dtype(np.float16), np.dtype(np.float32), np.dtype(np.float64)}
CHECK_CHUNK = 1 << 16  # rows per chunk of the non-finite scan


def native_rows(x: np.ndarray):
    """The C++ extension for the input passes over ``x`` when x is C-contiguous 2-D
    float16/32/64 in native order, else None. Its threads are the cpu backend's (set on
    its import)."""
    if x.ndim != 2 or not x.flags.c_contiguous or x.dtype not in FLOAT_KINDS or not x.dtype.isnative:
        return None
    from .backends import cpu
    return cpu._cpu


def compute_dtype(dtype) -> np.dtype:
    """The dtype ``prepare`` computes in: float64 stays, everything else is float32."""
    return np.dtype(np.float64 if np.dtype(dtype) == np.float64 else np.float32)


def scan_rows(x: np.ndarray) -> tuple[np.ndarray | None, float]:
    """``(mask, top)``: the finite rows (None when all are, the usual case) and the largest
    magnitude among the finite values (0.0 when there are none)."""
    native = native_rows(x)
    if native is not None:  # one pass on the pool's threads, over the raw bits
        bits = np.dtype(f"u{x.itemsize}")
        bad, top = np.empty(len(x), np.uint8), np.zeros(1, bits)
        count = native.nonfinite_rows(x.view(bits), bad, top)
        return (None if count == 0 else bad == 0), float(top.view(x.dtype)[0])
    mask, top = None, 0.0
    for lo in range(0, len(x), CHECK_CHUNK):
        part = x[lo:lo + CHECK_CHUNK]
        bad = ~np.isfinite(part)
        if bad.any():  # the rare case; a flat reduce is ~100x faster than .all(axis=1) at d = 3
            ok = ~bad.any(axis=1)
            if mask is None:
                mask = np.ones(len(x), bool)
            mask[lo:lo + CHECK_CHUNK] = ok
            part = np.where(bad, 0, part)
        if part.size:
            top = max(top, float(part.max()), -float(part.min()))
    return mask, top


def finite_rows(x: np.ndarray) -> np.ndarray | None:
    """Boolean mask of finite rows, or None when all rows are finite (the usual case)."""
    return scan_rows(x)[0]


def check_scale(top: float, d: int, dtype, name: str = "x", low_too: bool = True):
    """Raise when values of magnitude up to ``top`` make L2 sums in the compute dtype overflow
    (or vanish below its normal range): results would be silently wrong, not slow.

    The GEMM forms add two centred squared norms of up to ``4 d top^2`` each, so
    ``16 d top^2`` must be finite; float16 storage (at most 65504, summed in
    float32) never reaches that. The squared difference of the largest values,
    ``4 top^2``, must stay a normal number with all its digits (``low_too``:
    not for one of two arrays, as ``nearest``'s, whose other one may be larger).
    """
    if np.dtype(dtype) == np.float16 or top == 0.0:
        return
    acc = compute_dtype(dtype)
    high, low = high_magnitude(dtype, d), low_magnitude(dtype)
    wider = " or pass float64" if acc == np.float32 else ""
    if top > high:
        raise ValueError(f"{name} holds values up to {top:.3g} in magnitude: their squared distances "
                         f"overflow {acc} sums (d = {d}: at most {high:.3g}); scale {name} down{wider}")
    if low_too and top < low:
        raise ValueError(f"{name}'s values are all below {top:.3g} in magnitude: their squared "
                         f"distances underflow {acc} sums (at least {low:.3g}); scale {name} up{wider}")


def scale_error_of(exc: ValueError, name: str, instead: str | None = None) -> ValueError | None:
    """``check_scale``'s error (None for any other) said of a caller's argument ``name``, not
    x; ``instead``, where given, replaces its " or pass float64" (a drop-in that reads its
    points as float32 has no such way out)."""
    text = str(exc)
    if "in magnitude" not in text:
        return None
    text = re.sub(r"\bx\b", name, text.replace("x's values", f"the values of {name}"))
    return ValueError(text if instead is None else text.replace(" or pass float64", instead))


def high_magnitude(dtype, d: int) -> float:
    """The largest magnitude ``check_scale`` takes at width ``d``: ``16 d top^2`` stays finite
    in the compute dtype."""
    return float(np.sqrt(float(np.finfo(compute_dtype(dtype)).max) / (16.0 * d)))


def low_magnitude(dtype) -> float:
    """The least largest magnitude ``check_scale`` takes (``low_too``): below it the squared
    difference of two values is not a normal number with all its digits in the compute dtype."""
    fi = np.finfo(compute_dtype(dtype))
    return 0.5 * float(np.sqrt(float(fi.tiny) / float(fi.eps)))


SKIP_HINT = "Clean them, or leave them out with nonfinite='skip' (CLI: --nonfinite skip)"


class NonfiniteRows(ValueError):
    """Rows with NaN or inf in an input (``select``, ``hmin``, ``nearest``, ``select_batched``
    without ``nonfinite="skip"``): ``rows`` holds their indices, int64, ascending. A
    ``ValueError``; a caller that gathered x from its own argument names them there."""

    def __init__(self, message: str, rows: np.ndarray):
        super().__init__(message)
        self.rows = rows

    def __reduce__(self):  # pickled whole (a worker process's error reaches its parent)
        return type(self), (str(self), self.rows)


NonfiniteRows.__module__ = "hminsel"  # raised and exported as hminsel.NonfiniteRows


def nonfinite_error(name: str, bad: np.ndarray, hint: str = SKIP_HINT) -> NonfiniteRows:
    """The error for rows with NaN/inf: how many, the first, and what to do about it."""
    return NonfiniteRows(f"{name} has {len(bad)} row(s) with NaN or inf; the first is row "
                         f"{bad[0]}. {hint}", np.asarray(bad, np.int64))


def check_finite(x: np.ndarray, nonfinite: str, name: str = "x",
                 hint: str = SKIP_HINT, metric: str = "l2", low_too: bool = True) -> np.ndarray | None:
    """None if all rows are finite; else raise, or return the finite-row mask for "skip".

    For ``metric="l2"``, values too large (or, ``low_too``, too small) for the
    sums raise too (``check_scale``).
    """
    if nonfinite not in ("raise", "skip"):
        raise ValueError(f"nonfinite must be 'raise' or 'skip'; got {nonfinite!r}")
    mask, top = scan_rows(x)
    if mask is not None and nonfinite == "raise":  # named first: the scale of the rest is moot
        raise nonfinite_error(name, np.flatnonzero(~mask), hint)
    if metric == "l2":
        check_scale(top, x.shape[1], x.dtype, name, low_too)
    return mask
