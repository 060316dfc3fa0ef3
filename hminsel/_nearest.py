"""``nearest``'s work below the public function: the scale check of x against the centres,
the block_min passes on the host and on a device, and the results of a call that left
NaN/inf rows out (``nonfinite="skip"``) spread back over every row."""
from __future__ import annotations

import numpy as np

from . import _device, _finite, _inputs, _progress
from ._rows import UnitRows
from .algorithms import chunked


def finite_part(xp, valid: np.ndarray | None):
    """``(xp's finite rows, their row numbers)``: xp itself and None when every row is finite
    (``valid`` None); a copy of the kept rows otherwise (unit rows: ``UnitRows.take``)."""
    if valid is None:
        return xp, None
    rows = np.flatnonzero(valid)
    return (xp.take(rows) if isinstance(xp, UnitRows) else _device.take_rows(xp, rows)), rows


def check_pair_scale(x, centers, acc):
    """The l2 sums run in ``acc``, x's compute dtype: the centres' values must fit them
    (float64 centres of 1e20 do not fit float32 sums), and x and the centres may not both be
    too small for them (each alone was checked in its own dtype, for overflow only)."""
    d, top = x.shape[1], _top(centers)
    high, low = _finite.high_magnitude(acc, d), _finite.low_magnitude(acc)
    wider = " (or pass x as float64)" if acc == np.float32 else ""
    if top > high:
        raise ValueError(f"centers holds values up to {top:.3g} in magnitude: their squared "
                         f"distances overflow the {acc} sums of x's dtype (d = {d}: at most "
                         f"{high:.3g}); scale x and centers down{wider}")
    if top < low and 0.0 < max(top, _top(x)) < low:  # all zeros: exact distances
        raise ValueError(f"x's and centers' values are all below {low:.3g} in magnitude: their "
                         f"squared distances underflow {acc} sums; scale both up{wider}")


def _top(a) -> float:
    """The largest finite magnitude of an array or tensor (a cheap pass: centres, or x rarely)."""
    return _finite.scan_rows(a)[1] if isinstance(a, np.ndarray) else _device.scan(a)[1]


def on_host(be, xp, cp, progress, rows=None):
    """``(squared distances, centre indices)`` of host rows ``xp`` (or of its rows ``rows``,
    read where they lie: NaN rows left out without a copy of the others) against ``cp``."""
    if cp.dtype != _inputs.compute_dtype(xp.dtype):  # float16 x is read as float32
        cp = cp.astype(_inputs.compute_dtype(xp.dtype))
    n = len(xp) if rows is None else len(rows)
    value = np.empty(n, be.acc_dtype(xp.dtype))
    index = np.empty(n, np.int64)

    def run(s):
        if rows is None:
            value[s], index[s] = be.block_min(xp[s], cp)
        else:
            value[s], index[s] = be.block_min(xp, cp, rows=rows[s])
        return 0
    report = _progress.reporter(progress, n, "nearest", unit=" rows")
    chunked.rows(n, run, report, note="", units=True)  # one call without a report
    if report:
        report.finish()
    return value, index


def on_device(be, xp, cp, rows=None):
    """``(squared distances, centre indices)`` of torch rows (``rows``: of those rows only,
    not copied): the centres in x's storage dtype where it holds them exactly, else (float32
    centres, float16 x) x widened a chunk at a time."""
    import torch
    cq = cp.to(device=xp.device, dtype=xp.dtype).contiguous()
    if cp.dtype == xp.dtype or torch.equal(cq.to(cp.dtype), cp.to(xp.device)):
        return be.block_min(xp, cq, rows=rows)
    c32 = cp.to(device=xp.device, dtype=torch.float32).contiguous()
    return _device.block_min_widened(be, xp, c32, rows)


def spread(dist, index, rows: np.ndarray | None, centre_rows: np.ndarray | None, n: int):
    """Distances and indices of the finite rows (``rows``; None: all n) against the finite
    centres (``centre_rows``; None: all) as (n,) arrays over every row: NaN and -1 for a row
    left out, centre indices as rows of the caller's ``centers``. NumPy or torch, as given."""
    if centre_rows is not None:
        index = _take(centre_rows, index)
    if rows is None:
        return dist, index
    if isinstance(dist, np.ndarray):
        full, where = np.full(n, np.nan), np.full(n, -1, np.int64)
        full[rows], where[rows] = dist, index
        return full, where
    import torch
    at = torch.as_tensor(rows, device=dist.device)
    full = torch.full((n,), float("nan"), dtype=dist.dtype, device=dist.device).index_copy_(0, at, dist)
    where = torch.full((n,), -1, dtype=torch.int64, device=dist.device)
    return full, where.index_copy_(0, at, index)


def _take(rows: np.ndarray, index):
    """``rows[index]`` for a NumPy or torch index array."""
    if isinstance(index, np.ndarray):
        return rows[index]
    import torch
    return torch.as_tensor(rows, device=index.device)[index]
