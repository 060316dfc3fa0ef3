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

import dataclasses
import time

import numpy as np

from .. import _inputs, _picks, _radius, _threads
from ..algorithms.lazy import HeadPolicy, slack
from .._radius import to_metric
from ..backends.base import MARK, best_key_beats
from ..keys import MAX_INDEX
from ..results import Selection, Stats
from . import shard as shard_rows
from ._comm import Comm
from .shard import Shard
from .together import (_backend_together, _check_shards, _global_mask, _global_rows,
                       _one_seed, _prepare_together, same_arguments, seed_used)

RANK_HEAD_MAX = 4096  # a rank's share of the head at most: bounds the bytes gathered each round


def _gather_rows(comm, shard, gidx, d):
    """The rows of global indices ``gidx`` on every rank (one all_reduce)."""
    rows = np.zeros((len(gidx), d), np.float64)
    gidx = np.asarray(gidx, np.int64)
    ours = np.flatnonzero((gidx >= shard.offset) & (gidx < shard.offset + len(shard.x)))
    if len(ours):
        rows[ours] = shard.rows(gidx[ours] - shard.offset)
    return comm.all_reduce_sum(rows).astype(shard.dtype)  # x + 0 == x: exact


def select(x_shard, k, *, group=None, metric="l2", start=0, seed=None, init=None, mask=None,
           backend="auto", protocol="rounds", head_size=None, nonfinite="raise",
           radius=None) -> Selection:
    """Exact farthest-point selection over the row shards of all ranks.

    Args:
        x_shard: this rank's (n_r, d) rows (n_r may be 0); shards in rank order.
        k: picks in all (a count, or a fraction of the global N; with masks, of the rows they
            allow and the init rows outside them).
        group: torch.distributed process group (default: the world).
        metric, start, seed, init, backend: as in ``hminsel.select``;
            ``start``/``init`` are global indices. A random start's seed of None is rank 0's
            draw from NumPy's global state, for all ranks (a Generator: an int rank 0 draws
            from it).
        mask: this rank's (n_r,) bool, its rows that may be picked (``hminsel.select``'s
            ``mask``, shard by shard; a rank that passes None allows all its rows).
        protocol: ``"rounds"`` (exact lazy rounds, default) or ``"steps"`` (then
            ``head_size`` raises: it has no head).
        head_size: M of the rounds' union head, fixed (None: adapted as in one process);
            each rank offers its top rows in proportion to its rows (at most 4096).
        nonfinite: ``"raise"`` (default) on a row with NaN or inf, naming its global
            row; ``"skip"`` leaves such rows out, as ``hminsel.select`` does.
        radius: ``hminsel.select``'s: ``k`` becomes a cap, and the picks end before the
            first (past ``start`` or the ``init`` rows) within ``radius`` of the picks
            made; ``stats.radius_reached`` says which ended them.

    Returns:
        The same ``Selection`` on every rank, global indices (``stats.seconds`` aside);
        ``stats.collectives`` counts the collectives of the selection loop, and
        ``stats.passes`` the rows all ranks' folds read over N (as one process
        counts its passes over x).
    """
    # first, so that a check below that fails fails on every rank
    same_arguments(Comm(group), k=k, metric=metric, start=start, seed=seed_used(start, seed),
                   init=init, protocol=protocol, head_size=head_size, radius=radius)
    return _select(x_shard, k, group=group, metric=metric, start=start, seed=seed, init=init,
                   mask=mask, backend=backend, protocol=protocol, head_size=head_size,
                   nonfinite=nonfinite, radius=radius)


def _select(x_shard, k, *, group=None, metric="l2", start=0, seed=None, init=None, mask=None,
            backend="auto", protocol="rounds", head_size=None, nonfinite="raise", radius=None,
            scale=("x (all shards)", True)) -> Selection:
    """``select``; ``scale``: ``_check_shards``'s (``select_batched``'s labels name theirs)."""
    t0 = time.perf_counter()
    comm = Comm(group)  # the arguments agree: select compared them, select_batched derived them
    _inputs.check_metric(metric)
    if protocol not in ("rounds", "steps"):
        raise ValueError(f"protocol must be 'rounds' or 'steps'; got {protocol!r}")
    if protocol == "steps" and head_size is not None:
        raise ValueError(f"head_size={head_size} only applies to protocol='rounds'; got 'steps'")
    radius = _radius.check(radius)
    host, library, sizes, device, finite = _check_shards(comm, x_shard, metric, backend,
                                                         on_device=True, nonfinite=nonfinite,
                                                         scale=scale)
    n_total = int(sizes.sum())
    if n_total == 0:
        raise ValueError("every rank's shard is empty")
    offset = int(sizes[:comm.rank].sum())
    allowed = _global_mask(comm, mask, len(host), offset, n_total)
    valid = _global_rows(comm, finite, offset, n_total)  # None unless rows were left out
    seed = _one_seed(comm, start, seed)  # one draw for all ranks (None, a Generator)
    k, seeds, left_out = _picks.resolve_picks(k, start, seed, init, n_total, valid, allowed,
                                              cap=radius is not None)
    head_size = _inputs.check_head_size(head_size)
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
    with _threads.host_work(blas=on_host):  # as one process's select
        first = shard.put(rows[0])  # their values as lazy.fold_seeds gives them in one process
        values = [np.inf] + [float(be.block_min(first, first[:t], rows=[t])[0][0])
                             for t in range(1, len(seeds))]
        picks = list(seeds)
        margin = slack(d, be.acc_dtype(dtype))
        shard.mark(seeds)
        if left_out is not None:  # rows the masks leave out (init rows are picks, not among them)
            shard.mark(left_out)
        shard.fold(rows[0], 0, None, margin)
        run = _rounds if protocol == "rounds" else _steps
        floor = _radius.floor(radius, metric)
        per_round, head = run(comm, shard, picks, values, rows, k, margin, head_size, sizes, floor)
    picks, radii = np.asarray(picks[:k], np.int64), to_metric(values[:k], metric)
    collectives = comm.collectives - start_collectives
    passes = float(comm.all_reduce_sum(np.array([shard.read], np.int64))[0]) / n_total  # all ranks'
    stats = Stats(passes=passes, rounds=len(per_round), picks_per_round=tuple(per_round),
                  head_size=head, seconds=time.perf_counter() - t0, collectives=collectives)
    if radius is not None:
        picks, radii = _radius.cut(picks, radii, radius, len(seeds))
        stats = dataclasses.replace(stats, radius_reached=len(picks) < k)
    return Selection(indices=_inputs.to_library(picks, library, device),
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


def _rounds(comm, shard, picks, values, rows, k, margin, head_size, sizes, floor=None):
    """Exact lazy rounds: one all_gather each (of bytes: float64 bounds and indices, then the head
    rows in the shard's compute dtype). Returns the number of rounds. ``floor``: a squared
    value (``radius``); a round whose ``tau`` is at most it runs its head against the floor
    instead, and is the last, as in ``hminsel.algorithms.lazy``. Returns each round's picks and
    the union head's size M (``Stats.picks_per_round``, ``head_size``, as in one process)."""
    d, be = shard.x.shape[1], shard.backend
    tiled_rows = int(comm.all_gather(np.array([be.head_rows_tiled(shard.x)], np.int64)).min())
    policy = HeadPolicy(int(sizes.sum()), d, head_size, RANK_HEAD_MAX * comm.size, tiled_rows)  # same on every rank
    per_round = []
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
        last = floor is not None and floor >= tau  # every row outside the head is within the radius
        if last:  # the head takes only picks above the floor; where it stops, the run ends
            tau, tau_idx = floor, -1
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
        if len(pos) == 0 and not last:  # every rank alike (the same union): none waits
            raise RuntimeError("internal error: a distributed round accepted no pick")
        new = hidx[pos]
        picks.extend(new.tolist())
        values.extend(shard_rows.on_host(vals).astype(np.float64).tolist())
        rows.append(np.ascontiguousarray(xh[pos]))
        shard.mark(new)
        per_round.append(len(new))
        if last:
            break
        if len(picks) < k:
            shard.fold(rows[-1], len(picks) - len(new), _rows_of(rows[:-1]), margin)
        policy.update(len(pos), max(1, len(hidx)))  # the rows offered; rounds are the protocol: no streaming tail
    return per_round, policy.m if per_round else 0  # as one process: no round, no head


def _shares(m: int, sizes) -> np.ndarray:
    """Each rank's rows of a union head of ``m``: in proportion to its rows (largest remainders,
    then the lower rank, take the rest), at least one of a rank that has rows, at most its rows
    and ``RANK_HEAD_MAX``; they sum to at most m plus the ranks. The one each: every rank's best
    row is in the union, so its best row beats every rank's next key and the round accepts it (a
    rank left out could hold the best next key, above every row offered: a round of no picks)."""
    sizes = np.asarray(sizes, np.int64)
    raw = m * sizes / max(1, int(sizes.sum()))
    share = np.floor(raw).astype(np.int64)
    extra = m - int(share.sum())
    if extra > 0:
        share[np.lexsort((np.arange(len(sizes)), -(raw - share)))[:extra]] += 1
    return np.minimum(np.minimum(np.maximum(share, 1), sizes), RANK_HEAD_MAX)


def _steps(comm, shard, picks, values, rows, k, margin, head_size, sizes, floor=None):
    """One all_gather per pick: each rank offers its farthest point and its row; ``floor``
    (``radius``): the steps end at the first winner at most it."""
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
        if floor is not None and every[win, 0] <= floor:  # within the radius (or none left: -inf)
            break
        picks.append(g)
        values.append(float(every[win, 0]))
        rows.append(every[win, 2:].astype(shard.dtype)[None])
        shard.mark([g])
        if len(picks) < k and len(shard.x):
            shard.fold_one(rows[-1][0])
    return (), 0


from .groups import select_batched  # noqa: E402  (it builds on select)
from .pairs import hmin  # noqa: E402
__all__ = ["select", "select_batched", "hmin"]
