"""The labels of per-label quotas (``select_batched(groups=...)``): one vector of integer or
text labels, the problems they make (rows grouped by label), and a dict ``k`` as one count
per label.
"""
from __future__ import annotations

import numbers

import numpy as np

from . import _inputs


def label_vector(groups) -> np.ndarray:
    """``groups`` as a host vector of integer (int64) or string labels."""
    arr = np.asarray(_inputs.host_array(groups, "groups")[0])
    if arr.dtype.kind == "O" and arr.ndim == 1:  # pandas' strings, a list of mixed ints
        arr = _object_labels(arr)
    if arr.dtype.kind == "f" and arr.ndim == 1:  # a pandas column of ids that once held NaN
        arr = _float_labels(arr)
    if arr.ndim != 1 or (arr.size and arr.dtype.kind not in "iuUS"):
        raise ValueError(f"groups must be a 1-D array of integer or string labels; got {arr.dtype} "
                         f"of shape {tuple(arr.shape)}")
    if arr.dtype.kind == "u" and arr.size and arr.max() > np.iinfo(np.int64).max:
        raise ValueError(f"groups label {arr.max()} does not fit in int64")
    return arr if arr.dtype.kind in "US" else arr.astype(np.int64)


def _float_labels(arr: np.ndarray) -> np.ndarray:
    """Float labels that are whole numbers (1.0, 2.0) as int64; a missing (NaN) or fractional
    label raises, naming its row."""
    arr = arr.astype(np.float64)  # float16 too, without overflow in the bounds below
    missing = np.flatnonzero(np.isnan(arr))
    if len(missing):
        raise ValueError(f"groups has no label (NaN) at row {int(missing[0])} ({len(missing)} rows "
                         "in all): fill those labels, or leave the rows out of x and groups")
    whole = np.isfinite(arr) & (arr == np.round(arr)) & (arr >= -2.0 ** 63) & (arr < 2.0 ** 63)
    if not whole.all():
        row = int(np.flatnonzero(~whole)[0])
        raise ValueError(f"groups must hold integer or string labels (whole-number floats read as "
                         f"integers); got {float(arr[row])!r} at row {row}")
    return arr.astype(np.int64)


def _object_labels(arr: np.ndarray) -> np.ndarray:
    """An object array of labels (a pandas column of strings) as text or int64 labels."""
    values = arr.tolist()
    if all(isinstance(v, str) for v in values):  # an empty one too: a rank of no rows
        return arr.astype(str) if values else arr.astype(np.int64)
    ints = [isinstance(v, numbers.Integral) and not isinstance(v, (bool, np.bool_)) for v in values]
    if all(ints):
        try:
            return arr.astype(np.int64)
        except OverflowError:
            raise ValueError("groups holds an integer label that does not fit in int64") from None
    bad = [v for v, ok in zip(values, ints) if not ok and not isinstance(v, str)][:1]
    got = f"{bad[0]!r} ({type(bad[0]).__name__})" if bad else "both strings and integers"
    raise ValueError(f"groups must be a 1-D array of integer or string labels, all of one kind; got {got}")


def _group_problems(groups, n: int, k):
    """(order, ptr, labels, k as counts or ratio) for per-label quotas."""
    labels_in = label_vector(groups)
    if len(labels_in) != n:
        raise ValueError(f"groups must have one label per row of x ({n}); got {len(labels_in)}")
    labels, inverse = np.unique(labels_in, return_inverse=True)
    order = np.argsort(inverse, kind="stable")  # rows grouped by label, original order inside
    ptr = np.concatenate([[0], np.cumsum(np.bincount(inverse, minlength=len(labels)))]).astype(np.int64)
    return order, ptr, labels, k  # a dict k: counts_with_init reads it against the labels


def label_counts(k, labels: np.ndarray):
    """``k`` as a dict: ``{label: count}`` gives one count per (sorted) label, 0 for those it
    does not name; ``{label: ratio}`` one ratio of its rows per label, 0.0 for those it does
    not name. Any other ``k`` as it came."""
    if not isinstance(k, dict):
        return k
    unknown = sorted(set(k) - set(labels.tolist()), key=repr)
    if unknown:
        raise ValueError(f"k names labels that are not in groups: {unknown[:10]}")
    values = {label: _inputs.item_of(v) for label, v in k.items()}
    kinds = set()
    for label, value in values.items():
        if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
            raise TypeError(f"k as a dict maps each label to a count of picks (an int) or a ratio "
                            f"of its rows (a float); label {label!r} has {value!r}")
        kinds.add(isinstance(value, numbers.Integral))
    if len(kinds) > 1:
        raise TypeError("k as a dict maps labels to counts (ints) or to ratios (floats), not "
                        f"both; got {k!r}")
    if kinds == {False}:
        return np.array([float(values.get(lab, 0.0)) for lab in labels.tolist()], np.float64)
    return np.array([int(values.get(lab, 0)) for lab in labels.tolist()], np.int64)
