"""Read the small row lists a selection takes from files: its warm start, its mask, its labels.

Both come as ``.npy`` files (an earlier selection's ``--out``, or one written
with ``np.save``), read whole and never unpickled. Errors name the file, what
was expected and what came.
"""
from __future__ import annotations

import os

import numpy as np

from .loaders import LoadError, _load_npy

__all__ = ["check_indices", "load_indices", "load_labels", "load_mask"]


def load_indices(path) -> np.ndarray:
    """Row indices from a ``.npy`` file (an earlier selection's ``--out``): (k,) int64.

    Raises FileNotFoundError, or LoadError when the file is not a ``.npy`` of
    a 1-D integer array (the range is the caller's to check: it knows N).
    """
    path, idx = _small_npy(path, "a .npy of row indices (an earlier selection's --out)")
    if idx.ndim != 1 or idx.dtype.kind not in "iu":
        hint = ("; for a bool mask of the rows, save np.flatnonzero(mask)" if idx.dtype == bool
                else "")
        raise LoadError(f"{path}: expected a 1-D array of integer row indices; got shape "
                        f"{idx.shape}, dtype {idx.dtype}{hint}")
    if idx.dtype.kind == "u" and idx.size and idx.max() > np.iinfo(np.int64).max:
        raise LoadError(f"{path}: index {idx.max()} does not fit in int64")
    return idx.astype(np.int64)


def check_indices(path, idx: np.ndarray, n: int) -> np.ndarray:
    """``idx`` (from ``path``) as rows of an n-row x: in [0, n) and distinct, else LoadError."""
    if idx.size and (idx.min() < 0 or idx.max() >= n):
        raise LoadError(f"{path}: row indices must lie in [0, {n - 1}] ({n} rows); got "
                        f"{idx.min()} .. {idx.max()}")
    if len(np.unique(idx)) != len(idx):
        raise LoadError(f"{path}: row indices repeat; each row can be picked once")
    return idx


def load_mask(path, n: int) -> np.ndarray:
    """The rows a selection may pick, from a ``.npy``: one bool per row, or their row indices.

    Returns an (n,) bool array. Raises FileNotFoundError, or LoadError naming
    the shape and dtype found, indices out of [0, n), or indices that repeat
    (a mask saved as 0s and 1s: save it as bool).
    """
    path, a = _small_npy(path, "a .npy of one bool per row, or of row indices")
    if a.dtype == np.bool_ and a.shape == (n,):
        return a
    if a.ndim == 1 and a.dtype.kind in "iu":
        if a.size and (a.min() < 0 or a.max() >= n):
            raise LoadError(f"{path}: row indices must lie in [0, {n - 1}] (x has {n} rows); got "
                            f"{a.min()} .. {a.max()}")
        if len(np.unique(a)) != len(a):
            raise LoadError(f"{path}: row indices repeat (a mask of 0s and 1s? Save one bool per "
                            "row: np.save(path, m.astype(bool)))")
        mask = np.zeros(n, bool)
        mask[a] = True
        return mask
    raise LoadError(f"{path}: expected one bool per row of x (shape ({n},)) or a 1-D array of row "
                    f"indices; got shape {a.shape}, dtype {a.dtype}")


def load_labels(path, n: int) -> np.ndarray:
    """One label per row (per-label quotas), from a ``.npy`` of integers or strings: (n,).

    Raises FileNotFoundError, or LoadError naming the shape and dtype found
    (bools, objects and other lengths are refused; floats are read as integers where
    every one is a whole number).
    """
    try:
        path, a = _small_npy(path, "a .npy of one integer or string label per row")
    except LoadError as exc:
        if "dtype=object" not in str(exc):
            raise
        raise LoadError(f"{os.fspath(path)}: holds Python objects (dtype=object), which hminsel never "
                        "unpickles; expected integer or string labels. Save string labels as a "
                        "fixed-width array: np.save(path, np.asarray(labels, dtype=str))") from None
    if a.shape == (n,) and a.dtype.kind == "f":  # ids that went through a float column
        from .._labels import _float_labels
        try:
            return _float_labels(a)
        except ValueError as exc:
            raise LoadError(f"{path}: {exc}") from None
    if a.shape != (n,) or a.dtype.kind not in "iuUS":
        raise LoadError(f"{path}: expected one integer or string label per row of x (shape ({n},)); "
                        f"got shape {a.shape}, dtype {a.dtype}")
    if a.dtype.kind == "S":  # bytes: as text (a JSON manifest holds no bytes)
        try:
            return np.char.decode(a, "utf-8")
        except UnicodeDecodeError as exc:
            raise LoadError(f"{path}: byte-string labels that are not UTF-8 ({exc})") from None
    return a  # integers as stored: select_batched checks they fit in int64


def _small_npy(path, what: str):
    """``(path, array)`` of a small ``.npy`` read whole (indices, masks): no pickle."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such file: {path}")
    if os.path.splitext(path)[1].lower() != ".npy":
        raise LoadError(f"{path}: expected {what}")
    return path, _load_npy(path, mmap=False)
