"""Checks every rank makes together, so that a bad shard, mask or backend on one rank makes
all of them raise (one collective each) instead of leaving the others waiting in the next one.

Each returns what it checked (a shard read, a mask over all rows, a backend, a prepared
shard); each error names the rank whose input is at fault.
"""
from __future__ import annotations

import hashlib
import numbers

import numpy as np

from .. import _device, _finite, _inputs, _picks, backends
from . import shard as shard_rows


def same_arguments(comm, **named) -> None:
    """Raise on every rank where the ranks passed different values of these arguments: a
    call's first collective, before any check that one rank could fail alone (it raised,
    the others waited in its next collective) and for what no later check compares (one
    rank's k or metric: each rank returned its own answer, or all a wrong one). A
    numpy Generator seed is rank 0's to draw from (``_one_seed``): any compares equal."""
    mine = np.array([_digest(value) for value in named.values()], np.int64)
    every = comm.all_gather(mine)
    for j, name in enumerate(named):
        differ = np.flatnonzero(every[:, j] != every[0, j]).tolist()
        if differ:
            raise ValueError(f"every rank must pass the same {name}; rank(s) {differ} passed "
                             f"another than rank 0's (this rank, {comm.rank}: {_shown(named[name])})")


def seed_used(start, seed):
    """The seed as ``same_arguments`` compares it: only a random start draws from it."""
    return seed if isinstance(start, str) and start == "random" else None


def _digest(value) -> int:
    """A 64-bit digest of an argument's value, alike for equal values of other kinds (a numpy
    int or str, a 0-d tensor, an int32 array and a list; an empty list and None; a Generator
    and None, both rank 0's draw), unlike for other values or meanings (k=1 and k=1.0).
    Never raises: an unreadable value digests its type, and its own check raises after."""
    try:
        data = b""
        if value is None or isinstance(value, np.random.Generator):
            text = "None"
        elif isinstance(value, str):  # np.str_ too
            text = "str " + str(value)
        elif isinstance(value, bool):
            text = f"bool {value}"
        elif isinstance(value, numbers.Integral):
            text = f"int {int(value)}"
        elif isinstance(value, numbers.Real):
            text = f"float {float(value)!r}"
        elif isinstance(value, dict):
            text = "dict " + repr(sorted((_digest(key), _digest(v)) for key, v in value.items()))
        else:  # arrays, tensors, lists
            a = _picks.small_host(value, "argument")
            if a.dtype.kind == "O":  # Python objects: numbers, where they all are
                numeric = np.asarray(a.tolist())
                a = a if numeric.dtype.kind == "O" else numeric
            if a.size == 0:
                text = "None"  # no rows: as no init
            elif a.ndim == 0 or a.dtype.kind == "O":  # a scalar; Python objects: each as above
                items = a.ravel().tolist()
                text = f"items {a.shape} {[_digest(v) for v in items]}" if a.ndim else ""
                if not a.ndim:
                    return _digest(items[0])
            else:
                wide = {"i": np.int64, "u": np.int64, "f": np.float64}.get(a.dtype.kind)
                a = np.ascontiguousarray(a if wide is None else a.astype(wide))
                text, data = f"{a.dtype.str} {a.shape}", a.tobytes()
    except Exception:  # noqa: BLE001 - the argument's own check raises on every rank after
        text, data = f"unreadable {type(value).__name__}", b""
    return int.from_bytes(hashlib.blake2b(text.encode() + data, digest_size=8).digest(), "little",
                          signed=True)


def _shown(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _check_shards(comm, x_shard, metric="l2", backend="auto", on_device=False, nonfinite="raise",
                  scale=("x (all shards)", True)):
    """Validate every rank's shard together: all ranks raise, none hangs. Returns ``(x,
    library, sizes, device, finite)``: x on the host, or (``on_device``) a torch tensor where a
    GPU backend takes it; ``device``: where results go back (None: the host). Rows with NaN or
    inf raise, or (``nonfinite="skip"``) are left out: ``finite`` is None when every rank's
    rows all are, else this rank's (n,) bool mask of them (all True where it has no other).
    ``scale``: the name of the rows for ``_finite.check_scale``, and whether values too small
    raise too (a label of one pick has no distance to lose)."""
    error, n, d, code, top, x, library, device = "", 0, -1, -1, 0.0, None, "numpy", None
    bad_row, finite = None, None
    modes = ("raise", "skip")
    try:
        if nonfinite not in modes:  # this rank's error, as a bad shard: every rank raises
            raise ValueError(f"nonfinite must be 'raise' or 'skip'; got {nonfinite!r}")
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
                                      finite is not None, sized,
                                      modes.index(nonfinite) if nonfinite in modes else -1], np.int64))
    if error:
        if bad_row is not None and metas[:comm.rank, 7].all():  # the sizes before it are right
            error += f" (global row {bad_row + int(metas[:comm.rank, 0].sum())})"
        raise ValueError(f"rank {comm.rank}: {error}")
    if metas[:, 3].any():
        raise ValueError(f"rank(s) {np.flatnonzero(metas[:, 3]).tolist()} passed an invalid shard")
    if len(set(metas[:, 8].tolist())) > 1:  # one rank's "raise" must not pass for "skip"
        raise ValueError("every rank must pass the same nonfinite; got "
                         f"{[modes[int(m)] for m in metas[:, 8]]} by rank")
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
        _finite.check_scale(top, int(metas[0, 1]), stored, *scale)
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


def _one_seed(comm, start, seed):
    """The seed of random starts, the same on every rank: an int as given; for None, rank 0's
    draw from NumPy's global state (the one ``hminsel.select`` takes, so the same starts), and
    for a numpy Generator an int rank 0 draws from it; one all_reduce shares it."""
    if not (isinstance(start, str) and start == "random"):
        return seed
    if seed is not None and not isinstance(seed, np.random.Generator):
        return seed
    mine = 0
    if comm.rank == 0:
        mine = _picks.global_seed() if seed is None else int(seed.integers(2**31 - 1))
    return int(comm.all_reduce_sum(np.array([mine], np.int64))[0])


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
            in_place = backends.host_reads_in_place(backend)
            if in_place and not host.flags.c_contiguous:  # a strided view: gathered once as
                host = np.ascontiguousarray(host)  # stored, then read in place (api._points)
            x = _inputs.prepare(host, metric, finite, in_place=in_place, name="x_shard")
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
