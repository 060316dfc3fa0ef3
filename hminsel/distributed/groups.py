"""Per-label quotas over row shards: ``hminsel.distributed.select_batched(x_shard, k, groups=labels)``.

Every rank passes its shard's labels. The labels of all ranks are gathered into
one sorted set (integers or strings); each label is then one exact distributed
selection (``hminsel.distributed.select``) over the rows of that label that
the masks allow, each rank's part of it cut from its shard, so a label reads
only its own rows. A label's picks are global rows of x, and every rank gets
the same result as ``hminsel.select_batched(x, k, groups=labels, mask=mask)``
on the rows of all ranks in rank order.
"""
from __future__ import annotations

import numpy as np

from .. import _inputs, _picks, _radius, backends
from .._labels import label_vector
from .._problems import counts_with_init, resolve_init, resolve_starts
from ..batched import BatchedSelection
from . import Comm, _select, owners
from .shard import like, on_host
from .together import _check_shards, _one_seed, _said, same_arguments, seed_used


def _agreed(comm, fn, what: str, failed: str = "passed invalid"):
    """``fn()`` on this rank, or its error raised on every rank (none waits in a collective);
    the others say ``another rank {failed} {what}``."""
    error, out = "", None
    try:
        out = fn()
    except Exception as exc:  # noqa: BLE001 - any failure is every rank's error, or one rank hangs
        error = _said(exc)
    count = comm.all_reduce_sum(np.array([bool(error)], np.int64))[0]
    if error:
        raise ValueError(f"rank {comm.rank}: {error}")
    if count:
        raise ValueError(f"another rank {failed} {what}")
    return out


def _as_bytes(labels: np.ndarray) -> tuple[np.ndarray, int]:
    """(count, width) uint8 rows, one a distinct label, and the kind (0 integers, 1 text)."""
    if labels.dtype.kind in "US":
        text = [s.encode("utf-8") if isinstance(s, str) else bytes(s) for s in labels.tolist()]
        width = max([len(t) for t in text], default=0)
        return np.array([list(t.ljust(width, b"\0")) for t in text], np.uint8).reshape(len(text), width), 1
    return np.ascontiguousarray(labels.astype(">i8")).view(np.uint8).reshape(-1, 8), 0


def _all_labels(comm, local: np.ndarray) -> np.ndarray:
    """The sorted labels of every rank (integers, or text where any rank has text)."""
    rows, kind = _as_bytes(np.unique(local))
    meta = comm.all_gather(np.array([len(rows), rows.shape[1], kind if len(rows) else -1], np.int64))
    kinds = set(meta[:, 2].tolist()) - {-1}
    if len(kinds) > 1:
        raise ValueError("groups must hold integer labels on every rank or text labels on every "
                         f"rank; got {['text' if k == 1 else 'integers' for k in meta[:, 2] if k >= 0]}")
    count, width = int(meta[:, 0].max()), int(meta[:, 1].max())
    padded = np.zeros((count + 1, width), np.uint8)  # + 1: a row even where no rank has labels
    padded[:len(rows), :rows.shape[1]] = rows
    every = comm.all_gather(padded)
    items = [every[r, :meta[r, 0]] for r in range(comm.size)]
    if kinds == {1}:
        return np.array(sorted({bytes(t).rstrip(b"\0").decode("utf-8") for part in items for t in part}))
    joined = np.concatenate(items).reshape(-1) if items else np.zeros(0, np.uint8)
    return np.unique(np.ascontiguousarray(joined).view(">i8").astype(np.int64))


def select_batched(x_shard, k, *, groups, group=None, metric="l2", start=0, seed=None, mask=None,
                   backend="auto", protocol="rounds", init=None, nonfinite="raise",
                   radius=None) -> BatchedSelection:
    """Per-label farthest-point selection over the row shards of all ranks.

    Label L's picks are ``hminsel.distributed.select`` on the rows labelled L
    (those ``mask`` allows), the same on every rank and equal to
    ``hminsel.select_batched(x, k, groups=labels, mask=mask)`` on the rows of
    all ranks in rank order.

    Args:
        x_shard: this rank's (n_r, d) rows (n_r may be 0); shards in rank order.
        k: picks per label: an int (every label), a ratio in [0, 1] of each
            label's allowed rows (all ranks'), one int per label in sorted label
            order, or a dict ``{label: count}`` or ``{label: ratio}`` (a label it leaves out
            gets no new pick but keeps its init rows).
        groups: this rank's (n_r,) labels, integers or strings (all ranks alike;
            byte strings are read as UTF-8 text, and come back as text).
        group: torch.distributed process group (default: the world).
        metric, backend: as in ``hminsel.distributed.select``.
        start: ``0`` (each label's first allowed row) or ``"random"``: one draw a
            label from ``default_rng(seed)``, as ``select_batched`` draws.
        seed: seed of the random starts, as ``hminsel.select``'s (None: rank 0 draws one from
            NumPy's global state for all ranks; a Generator: rank 0 draws an int seed from it).
        mask: this rank's (n_r,) bool, its rows that may be picked (None: all).
        protocol: each label's ``hminsel.distributed.select`` protocol.
        init: global rows already picked (the same on every rank), as
            ``select_batched``'s ``init``: a label that holds some continues
            from them (in the order given; k counts them), the others start
            from ``start``.
        nonfinite: ``"raise"`` (default) on a row with NaN or inf; ``"skip"``
            leaves such rows out (of every label), as ``hminsel.select_batched`` does.
        radius: ``hminsel.select``'s, per label: each label's picks end before the first
            within ``radius`` of its picks, its count a cap; ``ptr`` says how many each made,
            ``caps`` and ``radius_reached`` each label's cap and whether the radius ended it.

    Returns:
        The same ``BatchedSelection`` on every rank: ``indices`` (global rows,
        label by label), ``ptr``, ``radii`` and ``labels`` (the sorted labels of
        all ranks).

    Example:
        >>> res = hminsel.distributed.select_batched(x_shard, 0.1, groups=source_shard)
        >>> res.problem(0)   # the first label's (global rows, radii)
    """
    comm = Comm(group)
    same_arguments(comm, k=k, metric=metric, start=start, seed=seed_used(start, seed), init=init,
                   protocol=protocol, radius=radius)  # then every rank raises alike below
    if not (start == 0 or start == "random") or isinstance(start, bool):
        raise ValueError(f"start must be 0 (each label's first allowed row) or 'random'; got {start!r}")
    if protocol not in ("rounds", "steps"):  # here too: small labels never reach select
        raise ValueError(f"protocol must be 'rounds' or 'steps'; got {protocol!r}")
    _inputs.check_metric(metric)
    radius = _radius.check(radius)
    host, library, sizes, device, finite = _check_shards(comm, x_shard, metric,  # device: host copies
                                                         nonfinite=nonfinite)
    offset = int(sizes[:comm.rank].sum())
    on_gpus = comm.all_reduce_sum(np.array([device is not None], np.int64))[0] == comm.size
    if on_gpus and backends.requested(backend) == "auto":  # every shard on a GPU: labels run there
        backend = next((b for b in backends.DEVICE_BACKENDS if backends.why_not(b) is None), backend)
    if metric == "cosine":  # any row, as in one process: not only the rows a label selects over
        _agreed(comm, lambda: _nonzero_rows(host), "x_shard")
    labels = _agreed(comm, lambda: _shard_labels(groups, len(host)), "groups")
    allowed = _agreed(comm, lambda: _picks.resolve_mask(mask, len(host)), "mask")
    masked = comm.all_reduce_sum(np.array([allowed is not None], np.int64))[0] > 0
    if finite is not None:  # rows with NaN or inf are left out, as rows a mask leaves out
        allowed = finite if allowed is None else allowed & finite
    names = _all_labels(comm, labels)
    inverse = np.searchsorted(names, labels)
    keep = np.ones(len(host), bool) if allowed is None else allowed
    kept_by_rank = comm.all_gather(np.bincount(inverse[keep], minlength=len(names)).astype(np.int64))
    rows_by_rank = comm.all_gather(np.bincount(inverse, minlength=len(names)).astype(np.int64))
    kept_sizes, whole = kept_by_rank.sum(axis=0), rows_by_rank.sum(axis=0)
    kept = ("finite " if finite is not None else "") + ("rows mask allows" if masked else "rows")
    init_rows, label_of, outside = _init_rows(comm, init, int(sizes.sum()), offset, inverse, keep,
                                              finite)
    take = keep.copy()
    mine_init = init_rows[(init_rows >= offset) & (init_rows < offset + len(host))]
    take[mine_init - offset] = True  # init rows, outside the mask too
    taken_by_rank = comm.all_gather(np.bincount(inverse[take], minlength=len(names)).astype(np.int64))
    held = np.bincount(label_of[outside], minlength=len(names))
    warm = np.bincount(label_of, minlength=len(names))  # init rows a label
    counts = counts_with_init(k, kept_sizes, warm, held, names.tolist(), whole, kept,
                              cap=radius is not None)
    seed = _one_seed(comm, start, seed)  # one draw for all ranks (None, a Generator)
    starts = resolve_starts(start, seed, kept_sizes, names.tolist(), warm > 0)
    got = {}  # label -> (global rows, radii): the same on every rank once gathered
    ran = _agreed(comm, lambda: _backend_name(backend, host), "backend",
                  "could not use the")  # on every rank, before any exchange
    owner, batch = owners.plan(taken_by_rank, counts, host.shape[1] * host.itemsize)
    for b in range(int(batch.max(initial=-1)) + 1):  # small labels: each on one rank
        rows, gid, ok, label = owners.exchange(comm, host, inverse, take, keep, offset,
                                               taken_by_rank, owner, batch == b)
        ours = (owner[label_of] == comm.rank) & (batch[label_of] == b)
        solved = _agreed(comm, lambda: owners.solve(rows, gid, ok, label, counts, starts,
                                                    init_rows[ours], metric, backend, names, radius,
                                                    stored=lambda r: _stored(r, x_shard)),
                         "its labels", "could not select")
        got.update(solved)
    if (batch >= 0).any():
        got = _gathered(comm, got, np.flatnonzero(batch >= 0))
    def scale(p):  # as in one process: a label of one pick may hold values too small for sums
        return f"label {names[p].item()!r}", bool(counts[p] > 1)
    for p in np.flatnonzero((counts > 0) & (owner < 0)).tolist():  # large labels: over the shards
        mine = np.flatnonzero((inverse == p) & take)  # this rank's rows of the label, in order
        before = int(taken_by_rank[:comm.rank, p].sum())  # the label's rows on lower ranks
        if warm[p]:  # its init rows as positions in the label's rows of all ranks
            ours = init_rows[label_of == p] - offset
            place = np.where((ours >= 0) & (ours < len(host)), before + np.searchsorted(mine, ours), 0)
            sel = _select(_stored(host[mine], x_shard), int(counts[p]), group=group, metric=metric,
                          init=comm.all_reduce_sum(place), mask=None if allowed is None else keep[mine],
                          backend=backend, protocol=protocol, radius=radius, scale=scale(p))
        else:
            sel = _select(_stored(host[mine], x_shard), int(counts[p]), group=group, metric=metric,
                          start=int(starts[p]),
                          backend=backend, protocol=protocol, radius=radius, scale=scale(p))
        # the picks are positions in the label's rows of all ranks: each rank names its own
        local = on_host(sel.indices).astype(np.int64) - before
        ours = (local >= 0) & (local < len(mine))
        rows = np.zeros(len(local), np.int64)
        rows[ours] = offset + mine[local[ours]]
        got[p] = comm.all_reduce_sum(rows), on_host(sel.radii).astype(np.float64)
    empty = (np.zeros(0, np.int64), np.zeros(0))
    parts = [got.get(p, empty) for p in range(len(counts))]  # label by label (none: no pick)
    out_ptr = np.concatenate([[0], np.cumsum([len(g) for g, _ in parts])]).astype(np.int64)
    indices = np.concatenate([empty[0], *[g for g, _ in parts]]).astype(np.int64)
    values = np.concatenate([empty[1], *[r for _, r in parts]]).astype(np.float64)
    labels_out = names if names.dtype.kind in "US" else _inputs.to_library(names, library, device)
    return BatchedSelection(indices=_inputs.to_library(indices, library, device),
                            ptr=_inputs.to_library(out_ptr, library, device),
                            radii=_inputs.to_library(values, library, device), labels=labels_out,
                            metric=metric, backend=ran,
                            caps=None if radius is None else np.asarray(counts, np.int64))


def _stored(rows, x_shard):
    """Host rows of a torch float16/bfloat16 shard (exact float32 copies where NumPy has no
    bfloat16) back in its dtype on its device, so that a label normalises (cosine) and reads
    them as one process does on that tensor; other rows as they are."""
    torch = _inputs._torch()
    if torch is None or not isinstance(x_shard, torch.Tensor) or x_shard.dtype not in (
            torch.float16, torch.bfloat16):
        return rows
    return like(rows, x_shard)


def _gathered(comm, mine: dict, labels) -> dict:
    """Every rank's ``{label: (global rows, radii)}`` of ``labels`` (each solved by one rank,
    ``mine`` this rank's): two all_reduces, of the counts, then of the picks (x + 0 == x)."""
    made = np.zeros(len(labels), np.int64)
    at = {p: t for t, p in enumerate(labels.tolist())}
    for p, (g, _) in mine.items():
        made[at[p]] = len(g)
    made = comm.all_reduce_sum(made)
    ptr = np.concatenate([[0], np.cumsum(made)]).astype(np.int64)
    rows, radii = np.zeros(ptr[-1], np.int64), np.zeros(ptr[-1])
    for p, (g, r) in mine.items():
        rows[ptr[at[p]]:ptr[at[p] + 1]], radii[ptr[at[p]]:ptr[at[p] + 1]] = g, r
    both = comm.all_reduce_sum(np.concatenate([rows, radii.view(np.int64)]))
    rows, radii = both[:ptr[-1]], both[ptr[-1]:].view(np.float64)
    return {p: (rows[ptr[t]:ptr[t + 1]], radii[ptr[t]:ptr[t + 1]]) for t, p in enumerate(labels.tolist())}


def _init_rows(comm, init, n_total: int, offset: int, inverse, keep, finite=None):
    """``(rows, label, outside)`` of each init row (global rows, the same on every rank): its
    label's index and whether the mask leaves it out, told by the rank that holds it; one
    that ``finite`` leaves out (NaN or inf) raises on every rank."""
    rows = _agreed(comm, lambda: np.zeros(0, np.int64) if init is None else resolve_init(
        init, n_total, None), "init (global rows, the same on every rank)")
    if not len(rows):  # the same on every rank: no collective either way
        return rows, np.zeros(0, np.int64), np.zeros(0, bool)
    local = rows - offset
    ours = (local >= 0) & (local < len(keep))
    said = np.zeros((len(rows), 3), np.int64)
    said[ours, 0] = inverse[local[ours]] + 1
    said[ours, 1] = ~keep[local[ours]]
    if finite is not None:
        said[ours, 2] = ~finite[local[ours]]
    said = comm.all_reduce_sum(said)
    if said[:, 2].any():
        raise ValueError(f"init row {rows[said[:, 2] > 0][0]} holds NaN or inf, and "
                         "nonfinite='skip' leaves such rows out: drop it from init")
    return rows, said[:, 0] - 1, said[:, 1] > 0


def _shard_labels(groups, n: int) -> np.ndarray:
    """This rank's labels, one a row of its shard."""
    labels = label_vector(groups)
    if labels.dtype.kind == "S":  # byte strings as text, as every rank's labels are sent
        labels = np.char.decode(labels, "utf-8")
    if len(labels) != n:
        raise ValueError(f"groups must have one label per row of x_shard ({n}); got {len(labels)}")
    return labels


def _nonzero_rows(host: np.ndarray) -> None:
    """Raise on this shard's first all-zero row (cosine has no direction for it)."""
    for lo in range(0, len(host), _inputs.CHECK_CHUNK):
        zero = np.flatnonzero(~host[lo:lo + _inputs.CHECK_CHUNK].any(axis=1))
        if len(zero):
            raise ValueError(f"metric='cosine' needs non-zero rows; local row {lo + int(zero[0])} "
                             "of x_shard is all zeros" + _inputs.ZERO_ROW_HINT)


def _backend_name(backend, host: np.ndarray) -> str:
    """The backend every label runs on (raises where it cannot run here); a GPU one takes the
    labels' rows to the device (``hminsel.select_batched`` / ``select`` do)."""
    from .. import _device
    name = backends.requested(backend)
    if name in backends.DEVICE_BACKENDS:
        _device.require(name)
        return name
    return backends.resolve(backend, np.zeros((1, host.shape[1]), _inputs.compute_dtype(host.dtype))).name
