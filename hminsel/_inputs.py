"""Coercion and validation of what users pass in; conversion of what goes back.

Everything here reads the user's data and never writes to it. Arrays come in as
NumPy arrays, torch CPU tensors or anything ``np.asarray`` takes; results go
back as the same library (torch in, torch out).
"""
from __future__ import annotations

import numbers

import numpy as np

from ._finite import (CHECK_CHUNK, FLOAT_KINDS, SKIP_HINT, check_finite, check_scale,  # noqa: F401
                      compute_dtype, finite_rows, nonfinite_error, scan_rows)
from ._finite import native_rows as _native_rows
from ._rows import UnitRows

METRICS = ("l2", "cosine")


def _torch():
    import sys
    return sys.modules.get("torch")  # never import torch just to look


def item_of(v):
    """A 0-d array or tensor (NumPy, torch, CuPy: ``torch.tensor(5)``) as its Python scalar, so
    that it is taken where an int or a float is; anything else as it came."""
    if getattr(v, "ndim", None) == 0 and hasattr(v, "item") and not isinstance(v, (str, bytes)):
        item = v.item()
        short = {"float16": "f2", "float32": "f4"}.get(str(v.dtype).replace("torch.", ""))
        if isinstance(item, float) and short:  # not bfloat16: its values are not float16's
            return float(decimal_values(np.array([item], short))[0])
        return item
    return v


def decimal_values(a: np.ndarray) -> np.ndarray:
    """float16/float32 values as float64 at their shortest decimal: a ratio of 0.1 stored in
    float32 (0.100000001) is 0.1, so ``ceil(0.1 * 10)`` is 1, as written and as torch_cluster's
    float32 product gives it; other arrays as float64."""
    if a.dtype in (np.float16, np.float32):
        return a.astype(str).astype(np.float64)
    return np.asarray(a, np.float64)


def plain_tensor(t, name: str = "x"):
    """A torch tensor as the numbers it shows: detached, its lazy negation or conjugation
    (``x.conj()``, torch's ``_neg_view``) resolved; the kernels read its storage. Raises
    TypeError for a sparse (or otherwise non-strided) one: the kernels read dense rows."""
    if t.layout != _torch().strided:
        raise TypeError(f"{name} must be a dense tensor; got a {str(t.layout).replace('torch.', '')} "
                        f"tensor of shape {tuple(t.shape)}: pass {name}.to_dense()")
    t = t.detach()
    if t.is_neg():
        t = t.resolve_neg()
    return t.resolve_conj() if t.is_conj() else t


def host_array(x, name: str = "x"):
    """``(array, library)``: a NumPy view of ``x`` and where it came from.

    library is ``"torch"`` for torch tensors, else ``"numpy"``. torch bfloat16
    becomes float32 (NumPy has no bfloat16); other tensors are zero-copy views.
    """
    torch = _torch()
    if torch is not None and isinstance(x, torch.Tensor):
        x = plain_tensor(x, name)
        if x.device.type != "cpu":
            from .backends import gpu_reasons
            raise ValueError(
                f"{name} is a {x.device.type} tensor, but no GPU backend can run this call "
                f"({gpu_reasons()}); pass a CPU tensor, or install triton or cupy")
        if x.dtype == torch.bfloat16:
            x = x.float()
        return x.numpy(), "torch"
    if type(x).__module__.startswith("scipy.sparse"):  # np.asarray makes it a 0-d object array
        raise TypeError(f"{name} must be a dense array; got a scipy.sparse {type(x).__name__} of "
                        f"shape {x.shape}: pass {name}.toarray()")
    if isinstance(x, np.ma.MaskedArray):  # its masked values would be read as any others
        if np.ma.is_masked(x):
            raise TypeError(f"{name} is a NumPy masked array, whose masked values hminsel would "
                            f"read as any others: pass {name}.data with mask=~np.ma."
                            f"getmaskarray({name}).any(axis=1) (the rows that may be picked), or "
                            "drop the masked rows")
        x = x.data  # nothing masked
    if hasattr(x, "__dlpack__") and not isinstance(x, np.ndarray):
        try:
            return np.from_dlpack(x), "numpy"
        except Exception:
            pass
    try:
        array = np.asarray(x)
    except Exception as exc:
        raise TypeError(f"{name} must be an array (numpy, torch, array-like); "
                        f"got {type(x).__name__}: {exc}") from None
    if not array.dtype.isnative:  # e.g. a big-endian '>f4' .npy: a native copy, x untouched
        array = array.astype(array.dtype.newbyteorder("="))
    return array, "numpy"


def to_library(array: np.ndarray, library: str, device=None):
    """Return ``array`` in the caller's library (torch: on ``device`` when given; CuPy: on its GPU)."""
    if library == "cupy":
        import cupy
        with cupy.cuda.Device(device.index if device is not None and device.index is not None else 0):
            return cupy.asarray(array)
    if library == "torch":
        out = _torch().from_numpy(np.ascontiguousarray(array))
        return out if device is None or device.type == "cpu" else out.to(device)
    return array


def _shape_hint(x: np.ndarray) -> str:
    """How to make a 1-D input 2-D: a column of arrays, or one row or one dimension."""
    if x.ndim != 1:
        return ""
    if x.dtype == object:
        return (": one array a row, as a pandas or Arrow column of embeddings holds them; "
                "pass np.stack(x)")
    return ": one point of d values is x[None, :], N values of one dimension x[:, None]"


def check_points(x: np.ndarray, name: str = "x") -> np.ndarray:
    """Validate shape and dtype; integer and bool inputs become float64."""
    if x.ndim != 2:
        raise ValueError(f"{name} must be 2-D (N, d); got shape {tuple(x.shape)}{_shape_hint(x)}")
    if x.shape[0] == 0:
        raise ValueError(f"{name} is empty: got shape {tuple(x.shape)}, need at least one row")
    if x.shape[1] == 0:
        raise ValueError(f"{name} has no columns: got shape {tuple(x.shape)}, need d >= 1")
    if x.dtype in FLOAT_KINDS:
        return x
    if x.dtype.kind in "iub":
        return x.astype(np.float64)
    raise dtype_error(name, x.dtype)


def dtype_error(name: str, dtype) -> TypeError:
    """The error for values that are not real numbers (complex, strings, Python objects)."""
    hint = ("; Python objects: a pandas frame of nullable columns (Float32, Int64) is "
            "df.to_numpy('float32', na_value=np.nan), a column of embeddings np.stack(df[column])"
            if dtype == object else "")
    return TypeError(f"{name} must hold float16, float32 or float64 values (integers and bools are read "
                     f"as float64, a torch bfloat16 tensor as float32); got dtype {dtype}{hint}")


def check_metric(metric: str) -> str:
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}; got {metric!r}")
    return metric


def prepare(x: np.ndarray, metric: str, valid: np.ndarray | None = None,
            in_place: bool = False, name: str = "x"):
    """The array the backends compute on: C-contiguous float32/float64, unit rows for cosine.

    Copies only when it must (float16 storage, a non-contiguous view, cosine).
    ``in_place`` (the cpu backend runs the call): C-contiguous x is not copied.
    float16 stays as it is for ``"l2"``, and cosine gives ``UnitRows(x, norms)``;
    the kernels read such rows widened and divided as they go, the values of
    the copy.
    C-contiguous input takes one pass on the C++ pool (widening, or cosine's
    unit rows: norms summed in float64, divided in the output's dtype); a
    strided view, or a build without the extension, takes NumPy's, with the
    same sums, so the same bits whatever the layout.
    """
    dtype = compute_dtype(x.dtype)
    native = _native_rows(x)
    if metric == "l2":
        if x.dtype != np.float16 or native is None:
            return np.ascontiguousarray(x, dtype=dtype)
        if in_place:
            return x
        out = np.empty(x.shape, np.float32)
        native.widen_half(x.view(np.uint16), out)  # exact, as NumPy's astype
        return out
    if native is not None:
        live = None if valid is None else np.ascontiguousarray(valid, bool).view(np.uint8)
        norms = np.empty(len(x), dtype)
        out = None if in_place else np.empty(x.shape, dtype)
        zero = native.unit_rows(x, live, out, norms)
        if zero >= 0:
            raise _zero_row(zero, name)
        _check_norms(norms, 0, name)
        return UnitRows(x, norms) if in_place else out
    out = np.array(x, dtype=dtype, order="C", copy=True)
    for lo in range(0, len(out), CHECK_CHUNK):
        part = out[lo:lo + CHECK_CHUNK]
        norms = row_norms(part)
        live = np.ones(len(part), bool) if valid is None else valid[lo:lo + CHECK_CHUNK]
        zero = np.flatnonzero((norms == 0) & live)
        if len(zero):
            raise _zero_row(lo + zero[0], name)
        norms[~live | (norms == 0)] = 1.0
        with np.errstate(over="ignore"):  # a norm beyond float32: inf, named next
            _check_norms(norms.astype(dtype), lo, name)
        part /= norms[:, None].astype(dtype)
    return out


NORM_LANES = 8  # csrc/cpu/input_scan.cpp unit_rows: the same sum order, so the same norms


def row_norms(part) -> np.ndarray:
    """|row| of each row of ``part`` (n, d) in float64, summed in ``unit_rows``' order:
    squares into 8 lanes (element j to lane j % 8, in order of j), then a halving tree.
    (NumPy's einsum sums in an order of its own, and float64 squares round.) A float64 row
    whose squares leave float64's normal range is summed again scaled by a power of two,
    as ``unit_rows`` does."""
    rows = np.asarray(part, np.float64)
    with np.errstate(over="ignore", under="ignore"):  # such rows are summed again, scaled
        sums = _lane_squares(rows)
    tiny, huge = np.finfo(np.float64).tiny, np.finfo(np.float64).max
    out = (sums >= tiny) & (sums <= huge)
    if out.all():
        return np.sqrt(sums)
    redo = np.flatnonzero(~out)
    top = np.abs(rows[redo]).max(axis=1)
    redo, top = redo[(top > 0) & (top <= huge)], top[(top > 0) & (top <= huge)]
    norms = np.sqrt(sums)
    if len(redo):
        e = np.maximum(np.frexp(top)[1], -1021)
        with np.errstate(over="ignore"):  # a norm beyond float64: inf, which prepare names
            norms[redo] = np.ldexp(np.sqrt(_lane_squares(np.ldexp(rows[redo], -e[:, None]))), e)
    return norms


def _lane_squares(rows) -> np.ndarray:
    """The squares of each row of float64 ``rows`` summed in ``unit_rows``' lane order."""
    sq = rows * rows
    n, d = sq.shape
    acc = np.zeros((n, NORM_LANES))
    full = d - d % NORM_LANES
    for j in range(0, full, NORM_LANES):
        acc += sq[:, j:j + NORM_LANES]
    acc[:, :d - full] += sq[:, full:]
    h = NORM_LANES // 2
    while h >= 1:
        acc[:, :h] += acc[:, h:2 * h]
        h //= 2
    return acc[:, 0]


def _check_norms(norms: np.ndarray, lo: int, name: str) -> None:
    """Raise for a row whose norm leaves the normal range of the dtype it divides in: past it
    (float32 rows of about 1e37 and more, float64 of about 1e308) its unit row would come out
    all zeros; below it (a float32 norm under about 1.2e-38) the norm has lost digits and the
    unit row would be off its direction."""
    big = np.flatnonzero(np.isinf(norms))
    if len(big):
        raise ValueError(f"metric='cosine': row {lo + big[0]} of {name} has a norm beyond "
                         f"{norms.dtype}'s range; scale {name} down (cosine does not change)"
                         + (" or pass float64" if norms.dtype == np.float32 else ""))
    small = np.flatnonzero((norms > 0) & (norms < np.finfo(norms.dtype).tiny))
    if len(small):
        raise ValueError(f"metric='cosine': row {lo + small[0]} of {name} has a norm of "
                         f"{float(norms[small[0]]):.3g}, below {norms.dtype}'s normal range, "
                         f"where its direction loses digits; scale {name} up (cosine does not "
                         "change)" + (" or pass float64" if norms.dtype == np.float32 else ""))


def _zero_row(row: int, name: str = "x") -> ValueError:
    return ValueError(f"metric='cosine' needs non-zero rows; row {row} of {name} is all zeros"
                      + ZERO_ROW_HINT)


ZERO_ROW_HINT = (" (cosine has no direction for it): leave such rows out of the input and map "
                 "the picks back (a mask does not: every row is normalised)")


def optional_int(value, name: str, lowest: int, what: str, none: str = ""):
    """None, or ``value`` as an int of at least ``lowest``; errors say ``name must be {what}
    or None{none}``."""
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be {what} or None; got {value!r}")
    if value < lowest:
        raise ValueError(f"{name} must be {what} or None{none}; got {value}")
    return int(value)


def check_head_size(head_size):
    """None (adapt M), or a positive integer head size."""
    return optional_int(head_size, "head_size", 1, "a positive integer", " (adaptive)")

