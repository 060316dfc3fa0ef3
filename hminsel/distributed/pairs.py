"""h_min over row shards: ``hminsel.distributed.hmin(x_shard)``, the closest pair of all ranks' rows.

Each rank finds the closest pair inside its own shard (``hminsel.hmin``). The
pairs across shards are split so that each is searched once, by one of its two
ranks: rank r searches shard q's rows against its own (``hminsel.nearest``,
exact) when q lies 1 .. P/2 ranks behind it in the ring (two ranks P/2 apart
split their block in halves, ``_plan``), so every rank searches about half of
the other shards' pairs, two ranks alike.
The shards travel round the ring in P/2 stages (``_stages``): in stage s every
rank sends the rank s ahead of it the rows that rank searches, in row chunks
(``all_to_all``), and searches the chunk it got from the rank s behind it, all
ranks at once. (Broadcasting each shard in turn made the ranks take turns: a
rank could send its rows only once it had searched the ones before them, and
2 ranks took the time of their two searches in a row.) Traffic: each rank
receives the rows it searches, about half of the other shards. One
``all_gather`` of every rank's best pair ends it, ties to the lowest pair
``(i, j)``, as ``hminsel.hmin``; pairs are compared by their squared values, as the
kernels compare them (two of those may round to one distance).
"""
from __future__ import annotations

import numpy as np

from .._device import take_rows
from .._inputs import check_metric
from ..api import closest, nearest_values, to_metric
from ..results import HMin
from ._comm import Comm
from .shard import host_rows, like, on_host
from .together import _backend_together, _check_shards, _prepare_together, _said, same_arguments

CHUNK_BYTES = 64 << 20  # rows of a shard sent in one exchange (bounds the memory of a chunk)


def _plan(rank: int, q: int, sizes) -> tuple | None:
    """``(lo, hi, own_lo, own_hi)``: ``rank`` searches rows lo .. hi of shard q against its own
    rows own_lo .. own_hi (None: none of shard q). Every pair of rows of two shards is
    searched exactly once: shard q by rank r when q lies 1 .. (P - 1) / 2 behind r in the
    ring; two ranks P / 2 apart (even P) split their block: the higher one searches the
    lower one's first half of rows against all its own, the lower one all of the higher
    one's rows against its own second half."""
    size, n_q, n_r = len(sizes), int(sizes[q]), int(sizes[rank])
    ahead = (rank - q) % size
    if n_q == 0 or n_r == 0 or ahead == 0:
        return None
    if ahead <= (size - 1) // 2:
        return 0, n_q, 0, n_r
    if 2 * ahead != size:
        return None
    if rank > q:
        return (0, n_q // 2, 0, n_r) if n_q // 2 else None
    return 0, n_q, n_r // 2, n_r


def _stages(rank: int, sizes, step: int) -> list:
    """``[(src, mine, dst, give, chunks)]``, one a ring stage s = 1 .. P // 2: this rank searches
    ``mine = _plan(rank, src)`` of shard ``src`` (s behind it) and sends rank ``dst`` (s ahead)
    the rows ``give = _plan(dst, rank)`` of its own, in ``chunks`` exchanges of at most ``step``
    rows (the most any rank sends in that stage: the same on every rank)."""
    size, stages = len(sizes), []
    for s in range(1, size // 2 + 1):
        sent = [_plan((r + s) % size, r, sizes) for r in range(size)]
        chunks = max(-(-(p[1] - p[0]) // step) if p else 0 for p in sent)
        if chunks:
            src, dst = (rank - s) % size, (rank + s) % size
            stages.append((src, _plan(rank, src, sizes), dst, sent[rank], chunks))
    return stages


def _piece(plan, c: int, step: int) -> tuple:
    """Rows ``lo, hi`` of chunk c of a plan's rows (empty past its end, or without a plan)."""
    if not plan:
        return 0, 0
    lo = plan[0] + c * step
    return lo, max(lo, min(plan[1], lo + step))


def _better(a: tuple, b: tuple) -> bool:
    """Pair a = (value, i, j) beats b: a smaller value, or on a tie the lower (i, j)."""
    return (a[0], a[1], a[2]) < (b[0], b[1], b[2])


def _across(chunk, rows_a, mine, rows_b, metric: str, backend: str) -> tuple:
    """The closest pair between ``chunk`` and this rank's rows ``mine``, its value as the
    kernels compare it (squared); ``rows_a`` and ``rows_b`` give their global rows: an int (the
    first; the others follow it) or an array."""
    dist, idx = nearest_values(chunk, mine, metric=metric, backend=backend, squared=True)
    dist, idx = on_host(dist).astype(np.float64), on_host(idx).astype(np.int64)
    tied = np.flatnonzero(dist == dist.min())
    a = rows_a + tied if np.isscalar(rows_a) else rows_a[tied]
    b = rows_b + idx[tied] if np.isscalar(rows_b) else rows_b[idx[tied]]
    i, j = np.minimum(a, b), np.maximum(a, b)
    low = np.lexsort((j, i))[0]  # ties: the lowest pair
    return float(dist[tied[low]]), int(i[low]), int(j[low])


def _travel_dtype(t) -> np.dtype:
    """The NumPy dtype a tensor's rows travel in (bfloat16 as float32: exact)."""
    import torch
    return np.dtype(np.float16 if t.dtype == torch.float16 else np.float32)


def _finite_only(rows, ids, finite):
    """``(rows, global rows)`` of the ``finite`` ones among ``rows`` (whose global rows start at
    ``ids``); as they are where every row is (``finite`` None or all True)."""
    if finite is None or finite.all():
        return rows, ids
    keep = np.flatnonzero(finite)
    return take_rows(rows, keep), ids + keep


def _search_chunk(chunk, base: int, part, offset: int, finite_chunk, finite_part, metric, backend):
    """The closest pair between a received ``chunk`` (global rows from ``base``) and ``part`` of
    this rank's rows (from ``offset``), each cut to its ``finite_*`` rows (None: all of them);
    None when either side has no row left."""
    chunk, rows_a = _finite_only(chunk, base, finite_chunk)
    part, offset = _finite_only(part, offset, finite_part)
    if len(chunk) == 0 or len(part) == 0:
        return None
    return _across(chunk, rows_a, part, offset, metric, backend)


def hmin(x_shard, *, group=None, metric="l2", backend="auto", nonfinite="raise") -> HMin:
    """h_min of the rows of all ranks: their closest pair, exactly, the same on every rank.

    Args:
        x_shard: this rank's (n_r, d) rows (n_r may be 0); shards in rank order.
        group: torch.distributed process group (default: the world).
        metric, backend: as in ``hminsel.hmin``.
        nonfinite: ``"raise"`` (default) on a row with NaN or inf, naming its global
            row; ``"skip"`` leaves such rows out, as ``hminsel.hmin`` does.

    Returns:
        ``HMin(value, i, j)`` with global rows ``i < j``, as ``hminsel.hmin`` on the
        rows of all ranks gives it (``inf`` and ``(-1, -1)`` for one row in all).

    Example:
        >>> res = hminsel.distributed.hmin(x_shard, metric="cosine")
        >>> res.value, res.i, res.j
    """
    comm = Comm(group)
    same_arguments(comm, metric=metric)
    check_metric(metric)  # every rank alike: a rank with one row or none would not reach it
    host, _, sizes, _, finite = _check_shards(comm, x_shard, metric, backend, on_device=True,
                                              nonfinite=nonfinite)
    if int(sizes.sum()) == 0:
        raise ValueError("every rank's shard is empty")
    skip = finite is not None  # the same on every rank
    host_path = isinstance(host, np.ndarray)  # else a tensor on its device: rows travel as NumPy
    if metric == "cosine":  # a zero row fails on every rank, named by its own (not by a searcher)
        _prepare_together(comm, host, metric, backend, host.dtype if host_path else np.float32,
                          finite)
    starts = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    offset, d = int(starts[comm.rank]), host.shape[1]
    dtype = host.dtype if host_path else _travel_dtype(host)  # the same on every rank (_check_shards)
    probe = np.zeros((1, d), dtype) if host_path else host.new_zeros((1, d))
    strided = not host.flags.c_contiguous if host_path else host.shape[1] > 1 and host.stride(1) != 1
    readable = probe if strided else host  # hmin and nearest copy other layouts: as every rank's
    ran = _backend_together(comm, backend, readable, probe).name  # the same on every rank, or all raise
    best, error = (np.inf, -1, -1), ""
    try:  # an error is every rank's, after the exchanges all ranks take part in
        if len(host) > 1:  # its values' range was checked over all shards (_check_shards)
            own = closest(host, metric=metric, backend=backend, low_too=False,
                          nonfinite="skip" if skip else "raise", squared=True)
            if own.i >= 0:
                best = (own.value, offset + own.i, offset + own.j)
    except Exception as exc:  # noqa: BLE001 - out of memory too: every rank's error, none hangs
        error = _said(exc)
    step = max(1, CHUNK_BYTES // max(1, d * dtype.itemsize))
    for src, mine, dst, give, chunks in _stages(comm.rank, sizes, step):
        send, recv = np.zeros(comm.size, np.int64), np.zeros(comm.size, np.int64)
        for c in range(chunks):
            lo, hi = _piece(give, c, step)  # this rank's rows for dst
            a, b = _piece(mine, c, step)  # src's rows for this rank
            send[dst], recv[src] = hi - lo, b - a
            try:  # sent even when this rank failed before: dst searches them as from a healthy rank
                part = np.ascontiguousarray(host_rows(host[lo:hi], dtype)).reshape(hi - lo, d)
            except Exception as exc:  # noqa: BLE001 - out of memory too: every rank's error, none hangs
                error = error or _said(exc)
                part = np.ones((hi - lo, d), dtype)  # what dst waits for: rows every metric takes
            chunk = comm.all_to_all(part.view(np.uint8), send, recv).view(dtype)  # bytes: any dtype
            if a < b and not error:
                try:
                    # the finite rows as they travelled (bfloat16 as float32: NumPy has no bfloat16)
                    ok = np.isfinite(chunk).all(axis=1) if skip else None
                    chunk = chunk if host_path else like(chunk, host)
                    pair = _search_chunk(chunk, int(starts[src]) + a, host[mine[2]:mine[3]],
                                         offset + mine[2], ok, finite[mine[2]:mine[3]] if skip else None,
                                         metric, backend)
                    best = pair if pair is not None and _better(pair, best) else best
                except Exception as exc:  # noqa: BLE001 - every rank's error, none hangs
                    error = _said(exc)
    every = comm.all_gather(np.array([best[0], best[1], best[2], bool(error)], np.float64))
    if error:
        raise ValueError(f"rank {comm.rank}: {error} (of its shard)")
    if every[:, 3].any():
        raise ValueError(f"rank(s) {np.flatnonzero(every[:, 3]).tolist()} could not search their rows")
    value, i, j = min((float(v), int(a), int(b)) for v, a, b, _ in every)  # as one process: squared
    return HMin(value=float(to_metric(value, metric)), i=i, j=j, metric=metric, backend=ran)
