"""Labels small enough to select on one rank, for ``hminsel.distributed.select_batched``.

A label's distributed selection is a sequence of collectives, a few milliseconds
each on gloo: with hundreds of small labels they, not the arithmetic, take the
time (500 labels of 80 rows: 5 s on two ranks against 18 ms in one process).
So a label whose rows fit ``SOLO_BYTES`` is selected by one rank, its owner:
each rank sends the owner its rows of the label (one ``all_to_all`` of rows and
one of their global indices per batch), the owner runs ``hminsel.select_batched``
on all the labels it owns, and one ``all_reduce`` at the end gives every rank
every small label's picks. The answer is the same: each label's selection is
exact either way.

Owners balance the rows each rank selects over and keep a label where most of
its rows already are when that costs no more than the label itself in balance.
"""
from __future__ import annotations

import numpy as np

from .. import _finite
from .shard import on_host

SOLO_BYTES = 64 << 20  # a label whose rows take at most this is selected on one rank
BATCH_BYTES = 512 << 20  # rows one rank receives in one exchange (beyond one label), at most


def plan(taken_by_rank: np.ndarray, counts: np.ndarray, row_bytes: int):
    """``(owner, batch)`` per label: the rank that selects it and the exchange that brings its
    rows there; both -1 for a label selected over the shards (large, or no picks).

    ``taken_by_rank``: (size, P) rows of each label on each rank (allowed or init rows)."""
    size, count = taken_by_rank.shape
    rows = taken_by_rank.sum(axis=0)
    small = (counts > 0) & (rows * row_bytes <= SOLO_BYTES)
    owner = np.full(count, -1, np.int64)
    load = np.zeros(size, np.int64)
    for p in sorted(np.flatnonzero(small).tolist(), key=lambda p: (-rows[p], p)):  # largest first
        fair = np.flatnonzero(load <= load.min() + rows[p])  # ranks it keeps in balance
        held = taken_by_rank[fair, p]
        best = fair[held == held.max()]  # most of its rows already there, then the least load
        owner[p] = int(best[np.argmin(load[best])])
        load[owner[p]] += rows[p]
    batch = np.full(count, -1, np.int64)
    got, sent, current = np.zeros(size, np.int64), np.zeros(size, np.int64), 0
    for p in np.flatnonzero(small).tolist():  # each rank receives and sends at most BATCH_BYTES
        need, gives = int(rows[p]) * row_bytes, taken_by_rank[:, p] * row_bytes
        if (got[owner[p]] or sent.any()) and (got[owner[p]] + need > BATCH_BYTES
                                              or (sent + gives > BATCH_BYTES).any()):
            got[:], sent[:], current = 0, 0, current + 1
        got[owner[p]] += need
        sent += gives
        batch[p] = current
    return owner, batch


def exchange(comm, host, inverse, take, keep, offset, taken_by_rank, owner, labels):
    """The rows of ``labels`` (a bool per label) that this rank owns, sent to it by every rank:
    ``(rows, gid, allowed, label)``, label by label, each label's rows in global order."""
    local = np.flatnonzero(take & labels[inverse])
    local = local[np.lexsort((local, inverse[local], owner[inverse[local]]))]  # by owner, label
    send = np.bincount(owner[inverse[local]], minlength=comm.size)
    mine = labels & (owner == comm.rank)
    recv = taken_by_rank[:, mine].sum(axis=1)
    gid = (offset + local) * np.where(keep[local], 1, -1) - np.where(keep[local], 0, 1)  # sign: left out
    rows = comm.all_to_all(host[local], send, recv)
    gid = comm.all_to_all(gid.astype(np.int64), send, recv)
    label = np.concatenate([np.repeat(np.flatnonzero(mine), taken_by_rank[r, mine])
                            for r in range(comm.size)] or [np.zeros(0, np.int64)])
    order = np.argsort(label, kind="stable")  # rank by rank within a label: global order
    gid, allowed = gid[order], gid[order] >= 0
    return rows[order], np.where(allowed, gid, -gid - 1), allowed, label[order]


def solve(rows, gid, allowed, label, counts, starts, init_rows, metric, backend, names,
          radius=None, stored=None):
    """This rank's owned labels, selected in one ``hminsel.select_batched``: ``{label: (global
    rows, radii)}``. ``init_rows``: the init rows of these labels, in the order given;
    ``names``: every label's name, for errors; ``radius``: ``select_batched``'s; ``stored``:
    the rows as the shards hold them (a torch half tensor: its dtype and device)."""
    from ..batched import _select_batched
    owned, sizes = np.unique(label, return_counts=True)
    if not len(owned):
        return {}
    ptr = np.concatenate([[0], np.cumsum(sizes)])
    if metric == "l2" and rows.dtype != np.float16:  # each label's range, as over the shards
        top = np.abs(rows).max(axis=1, initial=0.0) if rows.size else np.zeros(len(rows))
        for t, p in enumerate(owned.tolist()):
            _finite.check_scale(float(top[ptr[t]:ptr[t + 1]].max(initial=0.0)), rows.shape[1],
                                rows.dtype, f"label {names[p].item()!r}", bool(counts[p] > 1))
    where = np.argsort(gid)
    init = where[np.searchsorted(gid[where], init_rows)] if len(init_rows) else None
    res = _select_batched(rows if stored is None else stored(rows), counts[owned], ptr=ptr, start=starts[owned],  # checked above
                          mask=None if allowed.all() else allowed, init=init,
                          metric=metric, backend=backend, radius=radius, low_too=False)
    picks, radii, out = on_host(res.indices), on_host(res.radii), on_host(res.ptr)
    return {int(p): (gid[picks[out[t]:out[t + 1]]], radii[out[t]:out[t + 1]])
            for t, p in enumerate(owned.tolist())}
