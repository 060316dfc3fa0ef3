"""Exact FPS over row shards on torch.distributed (gloo on CPUs, NCCL on GPUs).

Each rank passes its contiguous shard of the rows, in rank order; global index
= the shard's offset + local index. Every rank gets the same global indices,
identical to ``hminsel.select`` on the concatenated rows.

The default ``protocol="rounds"`` follows the exact lazy FPS: per round every
rank ``all_gather``s its local head (top-m bounds, global indices, rows) and
the key of its next-best point; every rank runs the same head loop on the union
with ``tau`` = the best of those keys, so all accept the same picks; then each
rank refreshes its own shard. One collective per round, not per pick.
``protocol="steps"`` is the simple fallback: one ``all_gather`` per pick.

Launch with ``torchrun`` (``python -m hminsel.distributed`` is a command line);
Ray Train's TorchTrainer and Spark's TorchDistributor set up the same process
group, so the same call runs there unchanged.
"""
from __future__ import annotations

import time

import numpy as np

from .. import _device, _finite, _inputs, _picks, backends
from ..algorithms.lazy import HeadPolicy, slack
from ..api import to_metric
from ..backends.base import MARK, best_key_beats
from ..keys import MAX_INDEX
from ..results import Selection, Stats
from . import shard as shard_rows
from ._comm import Comm
from .shard import Shard

RANK_HEAD_MAX = 4096  # a rank's share of the head at most: bounds the bytes gathered each round


def _check_shards(comm, x_shard, metric="l2", backend="auto", on_device=False, nonfinite="raise"):
    """Validate every rank's shard together: all ranks raise, none hangs. Returns ``(x,
    library, sizes, device, finite)``: x on the host, or (``on_device``) a torch tensor where a
    GPU backend takes it; ``device``: where results go back (None: the host). Rows with NaN or
    inf raise, or (``nonfinite="skip"``) are left out: ``finite`` is None when every rank's
    rows all are, else this rank's (n,) bool mask of them (all True where it has no other)."""
    if nonfinite not in ("raise", "skip"):
        raise ValueError(f"nonfinite must be 'raise' or 'skip'; got {nonfinite!r}")
    error, n, d, code, top, x, library, device = "", 0, -1, -1, 0.0, None, "numpy", None
    bad_row, finite = None, None
    try:
        x, library, device, code, top, finite = shard_rows.read(x_shard, backend, on_device,
                                                                 skip=nonfinite == "skip")
        n, d = x.shape
    except shard_rows.NonFiniteRow as exc:  # named below as a global row too: n is known
        error, n, bad_row = _said(exc), exc.n, exc.row
    except Exception as exc:  # noqa: BLE001 - any failure here is every rank's error, or one rank hangs
        error = _said(exc)
    gpu = x is not None and not isinstance(x, np.ndarray)  # this rank's rows stay on its device
    sized = not error or bad_row is not None  # n is the shard's rows
    metas = comm.all_gather(np.array([n, d, code, bool(error), np.float64(top).view(np.int64), gpu,
                                      finite is not None, sized], np.int64))
    if error:
        if bad_row is not None and metas[:comm.rank, 7].all():  # the sizes before it are right
            error += f" (global row {bad_row + int(metas[:comm.rank, 0].sum())})"
        raise ValueError(f"rank {comm.rank}: {error}")
    if metas[:, 3].any():
        raise ValueError(f"rank(s) {np.flatnonzero(metas[:, 3]).tolist()} passed an invalid shard")
    if len(set(metas[:, 1].tolist())) > 1:
        raise ValueError(f"every rank's shard must have the same d; got d = {metas[:, 1].tolist()} "
                         f"by rank")
    if len(set(metas[:, 2].tolist())) > 1:
        raise ValueError("every rank's shard must have the same dtype; got "
                         f"{[shard_rows.NAMES[int(c)] for c in metas[:, 2]]} by rank")
    if len(set(metas[:, 5].tolist())) > 1:  # one head loop on every rank: one kind of backend
        raise ValueError("every rank's shard must be on a GPU or every rank's on the host (the "
                         "same backend runs every rank's head loop); got a GPU shard on rank(s) "
                         f"{np.flatnonzero(metas[:, 5]).tolist()} only")
    stored = shard_rows.CHECKED[int(metas[0, 2])]
    if metric == "l2":  # the largest value of all shards: every rank raises, or none
        top = float(np.ascontiguousarray(metas[:, 4]).view(np.float64).max())
        _finite.check_scale(top, int(metas[0, 1]), stored, "x (all shards)")
    if finite is None and metas[:, 6].any():  # another rank left rows out: say so on every rank
        finite = np.ones(n, bool)
    return x, library, metas[:, 0], device, finite


def _global_rows(comm, local, offset: int, total: int):
    """Every rank's (n_r,) bool ``local`` (the same on every rank: None, or an array) as one
    (total,) bool array on every rank: one all_reduce of N bytes."""
    if local is None:
        return None
    together = np.zeros(total, np.uint8)
    together[offset:offset + len(local)] = local
    return comm.all_reduce_sum(together) > 0


def _global_mask(comm, mask, n: int, offset: int, total: int):
    """Every rank's ``mask`` (its rows that may be picked) as one (total,) bool array on every
    rank, or None when no rank passed one (a rank without one allows all its rows). One
    all_reduce of N bytes; a bad mask raises on every rank, none hangs."""
    error, local = "", None
    if mask is not None:
        try:
            local = _picks.resolve_mask(mask, n)
        except Exception as exc:  # noqa: BLE001 - every rank's error, or one rank hangs
            error = str(exc) if isinstance(exc, (ValueError, TypeError)) else f"{type(exc).__name__}: {exc}"
    flags = comm.all_reduce_sum(np.array([mask is not None, bool(error)], np.int64))
    if error:
        raise ValueError(f"rank {comm.rank}: {error} (x being this rank's shard)")
    if flags[1]:
        raise ValueError("another rank passed an invalid mask")
    if flags[0] == 0:
        return None
    return _global_rows(comm, np.ones(n, bool) if local is None else local, offset, total)


def _said(exc: Exception) -> str:
    """An error's message as every rank repeats it (its type named unless a ValueError/TypeError)."""
    return str(exc) if isinstance(exc, (ValueError, TypeError)) else f"{type(exc).__name__}: {exc}"


def _backend_together(comm, backend, x, probe):
    """The backend that runs this rank's shard, the same on every rank: a rank where it cannot
    run (or one that would run another) makes every rank raise."""
    error, be = "", None
    try:
        be = backends.resolve(backend, x if len(x) else probe)
    except Exception as exc:  # noqa: BLE001 - every rank's error, or one rank hangs
        error = _said(exc)
    names = list(backends.REGISTRY)
    codes = comm.all_gather(np.array([names.index(be.name) if be is not None else -1], np.int64))[:, 0]
    if error:
        raise RuntimeError(f"rank {comm.rank}: {error}")
    if (codes < 0).any():
        raise RuntimeError(f"rank(s) {np.flatnonzero(codes < 0).tolist()} cannot run backend {backend!r}")
    if len(set(codes.tolist())) > 1:
        raise RuntimeError(f"the ranks would run different backends ({[names[c] for c in codes]} by "
                           "rank): pass backend= by name")
    return be


def _prepare_together(comm, host, metric, backend, dtype, finite=None):
    """This rank's prepared shard (a host array, or a tensor on the device path); a rank whose
    shard cannot be prepared (cosine: an all-zero row) makes every rank raise, so none waits
    in a collective. ``finite``: None, or the rows to prepare (the others are left out)."""
    error, x = "", None
    try:
        if not isinstance(host, np.ndarray):
            x = _device.prepare(host, metric, finite, "x_shard")
        elif len(host):
            x = _inputs.prepare(host, metric, finite, in_place=backends.host_reads_in_place(backend),
                                name="x_shard")
        else:
            x = host.astype(dtype)
    except Exception as exc:  # noqa: BLE001 - out of memory too: every rank's error, or one rank hangs
        error = _said(exc)
    failed = comm.all_gather(np.array([bool(error)], np.int64))[:, 0]
    if error:
        raise ValueError(f"rank {comm.rank}: {error} (a local row of its shard)")
    if failed.any():
        raise ValueError(f"rank(s) {np.flatnonzero(failed).tolist()} passed a shard that cannot "
                         f"be prepared for metric={metric!r}")
    return x


def _gather_rows(comm, shard, gidx, d):
    """The rows of global indices ``gidx`` on every rank (one all_reduce)."""
    rows = np.zeros((len(gidx), d), np.float64)
    gidx = np.asarray(gidx, np.int64)
    ours = np.flatnonzero((gidx >= shard.offset) & (gidx < shard.offset + len(shard.x)))
    if len(ours):
        rows[ours] = shard.rows(gidx[ours] - shard.offset)
    return comm.all_reduce_sum(rows).astype(shard.dtype)  # x + 0 == x: exact


def select(x_shard, k, *, group=None, metric="l2", start=0, seed=None, init=None, mask=None,
           backend="auto", protocol="rounds", head_size=None, nonfinite="raise") -> Selection:
    """Exact farthest-point selection over the row shards of all ranks.

    Args:
        x_shard: this rank's (n_r, d) rows (n_r may be 0); shards in rank order.
        k: picks in all (a count, or a fraction of the global N; with masks, of the rows they
            allow and the init rows outside them).
        group: torch.distributed process group (default: the world).
        metric, start, seed, init, backend: as in ``hminsel.select``;
            ``start``/``init`` are global indices.
        mask: this rank's (n_r,) bool, its rows that may be picked (``hminsel.select``'s
            ``mask``, shard by shard; a rank that passes None allows all its rows).
        protocol: ``"rounds"`` (exact lazy rounds, default) or ``"steps"`` (then
            ``head_size`` raises: it has no head).
        head_size: M of the rounds' union head, fixed (None: adapted as in one process);
            each rank offers its top rows in proportion to its rows (at most 4096).
        nonfinite: ``"raise"`` (default) on a row with NaN or inf, naming its global
            row; ``"skip"`` leaves such rows out, as ``hminsel.select`` does.

    Returns:
        The same ``Selection`` on every rank, global indices; ``stats.collectives``
        counts the collectives of the selection loop.
    """
    t0 = time.perf_counter()
    if protocol not in ("rounds", "steps"):
        raise ValueError(f"protocol must be 'rounds' or 'steps'; got {protocol!r}")
    if protocol == "steps" and head_size is not None:
        raise ValueError(f"head_size={head_size} only applies to protocol='rounds'; got 'steps'")
    comm = Comm(group)
    host, library, sizes, device, finite = _check_shards(comm, x_shard, metric, backend,
                                                         on_device=True, nonfinite=nonfinite)
    n_total = int(sizes.sum())
    if n_total == 0:
        raise ValueError("every rank's shard is empty")
    offset = int(sizes[:comm.rank].sum())
    allowed = _global_mask(comm, mask, len(host), offset, n_total)
    valid = _global_rows(comm, finite, offset, n_total)  # None unless rows were left out
    if start == "random" and seed is None:  # one draw for all ranks
        seed = int(comm.all_reduce_sum(np.array(
            [np.random.default_rng().integers(2**31) if comm.rank == 0 else 0]))[0])
    k, seeds, left_out = _picks.resolve_picks(k, start, seed, init, n_total, valid, allowed)
    head_size = _inputs.check_head_size(head_size)
    _inputs.check_metric(metric)
    on_host = isinstance(host, np.ndarray)  # else a tensor on its device (shard_rows.read)
    dtype = _inputs.compute_dtype(host.dtype) if on_host else np.dtype(np.float32)
    x = _prepare_together(comm, host, metric, backend, dtype, finite)
    if not on_host and n_total >= MAX_INDEX:  # the head's 64-bit keys hold global row indices
        raise ValueError(f"GPU shards hold at most {MAX_INDEX - 1} rows in all; got {n_total}")
    probe = np.zeros((1, x.shape[1]), dtype) if on_host else x.new_zeros((1, x.shape[1]))
    be = _backend_together(comm, backend, x, probe)  # an empty shard: its kind of array
    shard = Shard(be, x, offset, dtype)
    d = x.shape[1]
    start_collectives = comm.collectives
    rows = [_gather_rows(comm, shard, seeds, d)]
    first = shard.put(rows[0])  # their values as lazy.fold_seeds gives them in one process
    values = [np.inf] + [float(be.block_min(first, first[:t], rows=[t])[0][0])
                         for t in range(1, len(seeds))]
    picks = list(seeds)
    margin = slack(d, be.acc_dtype(dtype))
    shard.mark(seeds)
    if left_out is not None:  # rows the masks leave out (init rows are picks, not among them)
        shard.mark(left_out)
    passes = shard.fold(rows[0], 0, None, margin) / max(1, len(x))
    run = _rounds if protocol == "rounds" else _steps
    rounds = run(comm, shard, picks, values, rows, k, margin, head_size, sizes)
    radii = to_metric(values[:k], metric)
    stats = Stats(passes=passes, rounds=rounds, seconds=time.perf_counter() - t0,
                  collectives=comm.collectives - start_collectives)
    return Selection(indices=_inputs.to_library(np.asarray(picks[:k], np.int64), library, device),
                     radii=_inputs.to_library(radii, library, device), metric=metric, backend=be.name,
                     algorithm=f"distributed-{protocol}", stats=stats)


def _rows_of(rows):
    """Rows lo .. hi of the picks so far, stacked on the first call only (a fold that prunes
    asks; one that does not, as on a GPU, never copies them)."""
    stacked = []

    def rows_of(lo, hi):
        if not stacked:
            stacked.append(np.concatenate(rows))
        return stacked[0][lo:hi]
    return rows_of


def _rounds(comm, shard, picks, values, rows, k, margin, head_size, sizes):
    """Exact lazy rounds: one all_gather each (of bytes: float64 bounds and indices, then the head
    rows in the shard's compute dtype). Returns the number of rounds."""
    d, be = shard.x.shape[1], shard.backend
    tiled_rows = int(comm.all_gather(np.array([be.head_rows_tiled(shard.x)], np.int64)).min())
    policy = HeadPolicy(int(sizes.sum()), d, head_size, RANK_HEAD_MAX * comm.size, tiled_rows)  # same on every rank
    rounds = 0
    while len(picks) < k:
        shares = _shares(policy.size(k - len(picks)), sizes)
        m = int(shares.max())  # every rank's pack holds this many rows; this one offers its share
        head, head_ub, tau, tau_local = shard.head(int(shares[comm.rank]))
        meta = np.zeros(2 * m + 2)  # float64: bounds, global indices (exact below 2^53), next key
        meta[:m], meta[m:2 * m] = -np.inf, -1.0
        meta[:len(head)] = head_ub
        meta[m:m + len(head)] = head + shard.offset
        meta[2 * m] = tau
        meta[2 * m + 1] = tau_local + shard.offset if np.isfinite(tau) else 2.0**62
        head_rows = np.zeros((m, d), shard.dtype)  # the rows in the dtype the kernels compute in
        head_rows[:len(head)] = shard.rows(head)
        every = comm.all_gather(np.concatenate([meta.view(np.uint8), head_rows.reshape(-1).view(np.uint8)]))
        split = meta.nbytes
        every, xs = (np.ascontiguousarray(every[:, :split]).view(np.float64),
                     np.ascontiguousarray(every[:, split:]).view(shard.dtype).reshape(comm.size, m, d))
        tau, tau_idx = -np.inf, 1 << 62
        for r in range(comm.size):  # the best next key over ranks
            if best_key_beats(every[r, 2 * m], int(every[r, 2 * m + 1]), tau, tau_idx):
                tau, tau_idx = float(every[r, 2 * m]), int(every[r, 2 * m + 1])
        live = every[:, m:2 * m] >= 0
        hidx = every[:, m:2 * m][live].astype(np.int64)
        h = every[:, :m][live]
        xh = xs[live]
        xh_in, h_in = shard.put(xh), shard.put(h, state=True)
        if policy.tiled and len(hidx) <= policy.tiled_rows:  # a GEMM of the head, then a row a pick
            pos, vals = be.head_greedy_tiled(xh_in, h_in, hidx, tau, tau_idx, k - len(picks),
                                             be.full(xh_in, -1, np.int64))  # owners: the fold's
        else:
            pos, vals = be.head_greedy(xh_in, h_in, hidx, tau, tau_idx, k - len(picks))
        pos = shard_rows.on_host(pos).astype(np.int64)
        new = hidx[pos]
        picks.extend(new.tolist())
        values.extend(shard_rows.on_host(vals).astype(np.float64).tolist())
        rows.append(np.ascontiguousarray(xh[pos]))
        shard.mark(new)
        rounds += 1
        if len(picks) < k:
            shard.fold(rows[-1], len(picks) - len(new), _rows_of(rows[:-1]), margin)
        policy.update(len(pos), max(1, len(hidx)))  # the rows offered; rounds are the protocol: no streaming tail
    return rounds


def _shares(m: int, sizes) -> np.ndarray:
    """Each rank's rows of a union head of ``m``: in proportion to its rows (largest remainders,
    then the lower rank, take the rest), at most its rows and ``RANK_HEAD_MAX``; they sum to at
    most m."""
    sizes = np.asarray(sizes, np.int64)
    raw = m * sizes / max(1, int(sizes.sum()))
    share = np.floor(raw).astype(np.int64)
    extra = m - int(share.sum())
    if extra > 0:
        share[np.lexsort((np.arange(len(sizes)), -(raw - share)))[:extra]] += 1
    return np.minimum(np.minimum(share, sizes), RANK_HEAD_MAX)


def _steps(comm, shard, picks, values, rows, k, margin, head_size, sizes):
    """One all_gather per pick: each rank offers its farthest point and its row."""
    d = shard.x.shape[1]
    while len(picks) < k:
        pack = np.full(2 + d, 0.0)
        pack[0], pack[1] = -np.inf, -1
        best, value = shard.best()
        if value != MARK:
            pack[0], pack[1] = value, best + shard.offset
            pack[2:] = shard.rows(best)
        every = comm.all_gather(pack)
        win = max(range(comm.size), key=lambda r: (every[r, 0], -every[r, 1]))
        g = int(every[win, 1])
        picks.append(g)
        values.append(float(every[win, 0]))
        rows.append(every[win, 2:].astype(shard.dtype)[None])
        shard.mark([g])
        if len(picks) < k and len(shard.x):
            shard.fold_one(rows[-1][0])
    return 0


from .groups import select_batched  # noqa: E402  (it builds on select)
from .pairs import hmin  # noqa: E402
__all__ = ["select", "select_batched", "hmin"]
