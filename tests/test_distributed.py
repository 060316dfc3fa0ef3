"""hminsel.distributed on gloo with several processes on one machine."""
from __future__ import annotations

import json
import os
import socket
import traceback

import numpy as np
import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
if not dist.is_available() or not dist.is_gloo_available():
    pytest.skip("torch.distributed with gloo is not available", allow_module_level=True)

import torch.multiprocessing as mp  # noqa: E402

import hminsel  # noqa: E402
import hminsel.distributed as hdist  # noqa: E402
from conftest import clustered  # noqa: E402


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, size, port, fn, args, queue):
    os.environ["OMP_NUM_THREADS"] = "1"
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank,
                            world_size=size)
    try:
        queue.put((rank, "ok", fn(rank, size, *args)))
    except Exception as exc:  # report every rank's error to the test
        queue.put((rank, "error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))
    finally:
        dist.destroy_process_group()


# What a rank imports: the forkserver imports it once, then forks every rank from itself
PRELOAD = ["numpy", "pytest", "torch", "torch.distributed", "hminsel", "hminsel.distributed",
           "conftest", "test_distributed"]
_CONTEXT = []


def _context():
    """The start method of the ranks: forks of one server process that has imported torch
    and hminsel (``PRELOAD``), so a rank starts in milliseconds, not the seconds a fresh
    interpreter takes to import torch (about 12 s on a loaded 2-core machine: half the run
    time of the distributed tests went there). Each rank is still a process of its own, so
    what a test patches in one dies with it. The server keeps the environment it started
    with (that of the first test to start ranks here): a variable the ranks need is set in
    them (as the device tests set TRITON_INTERPRET). "spawn" where there is no forkserver."""
    if not _CONTEXT:
        if "forkserver" not in mp.get_all_start_methods():
            _CONTEXT.append(mp.get_context("spawn"))
            return _CONTEXT[0]
        from multiprocessing import forkserver
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        before = os.environ.get("OMP_NUM_THREADS")
        os.environ["OMP_NUM_THREADS"] = "1"  # read once, as the server loads OpenMP
        try:
            forkserver.ensure_running()
        finally:
            if before is None:
                del os.environ["OMP_NUM_THREADS"]
            else:
                os.environ["OMP_NUM_THREADS"] = before
        _CONTEXT.append(ctx)
    return _CONTEXT[0]


def run_ranks(size, fn, *args, timeout=120):
    """Run fn(rank, size, *args) on `size` gloo processes; {rank: (status, result)}."""
    return _gather(_worker, size, (fn, args), timeout)


def _gather(target, size, args, timeout):
    """Start ``target(rank, size, port, *args, queue)`` on ``size`` ranks; {rank: (status,
    result)}. Ranks still running at the end (one waits in a collective that a failed rank
    never joined, or the wait timed out) are killed, so none outlives its test."""
    ctx = _context()
    queue = ctx.Queue()
    procs = [ctx.Process(target=target, args=(r, size, PORT[0], *args, queue))
             for r in range(size)]
    try:
        for p in procs:
            p.start()
        out = {}
        for _ in range(size):
            rank, status, result = queue.get(timeout=timeout)
            out[rank] = (status, result)
        for p in procs:
            p.join(timeout=30)
        return out
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(timeout=10)
        PORT[0] = _free_port()


PORT = [_free_port()]


def _launched(rank, size, port, argv, env):
    """``python -m hminsel.distributed argv`` as torchrun starts rank ``rank`` of ``size``:
    its environment, then ``main`` (which starts the group); (exit code, stdout, stderr)."""
    import contextlib
    import io
    from hminsel.distributed.__main__ import main
    os.environ.update(env, RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(size),
                      LOCAL_WORLD_SIZE=str(size), MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as exc:  # argparse
            code = exc.code
    return code, out.getvalue(), err.getvalue()


def _launch_worker(rank, size, port, argv, env, queue):
    try:
        queue.put((rank, "ok", _launched(rank, size, port, argv, env)))
    except Exception as exc:
        queue.put((rank, "error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


def launch(size, argv, env=None, timeout=120):
    """``torchrun --nproc_per_node=size -m hminsel.distributed argv`` on forked ranks (see
    ``_context``; one test runs the real torchrun): ``(exit code, stdout, stderr)``, the
    worst code of the ranks and their outputs in rank order."""
    out = _gather(_launch_worker, size, (argv, dict(env or {})), timeout)
    for status, result in out.values():
        assert status == "ok", result
    got = {rank: result for rank, (_, result) in out.items()}
    codes = [got[r][0] for r in range(size)]
    return (max(codes, key=lambda c: c != 0), "".join(got[r][1] for r in range(size)),
            "".join(got[r][2] for r in range(size)))


def _split(x, size, sizes=None):
    bounds = np.cumsum([0] + (sizes or [len(x) * (r + 1) // size - len(x) * r // size
                                        for r in range(size)]))
    return [x[bounds[r]:bounds[r + 1]] for r in range(size)]


def _select_shard(rank, size, x, k, sizes, kwargs):
    sel = hdist.select(_split(x, size, sizes)[rank], k, **kwargs)
    return sel.indices, sel.radii, sel.stats


@pytest.mark.parametrize("size,sizes,protocol,metric,dtype", [
    (2, None, "rounds", "l2", np.float32),
    (3, None, "rounds", "cosine", np.float32),
    (2, None, "steps", "l2", np.float32),
    (3, [500, 0, 700], "rounds", "l2", np.float32),
    (4, [0, 300, 300, 600], "steps", "l2", np.float32),
    (2, None, "rounds", "cosine", np.float16),  # shards read in place: unit rows of float16
    (2, None, "steps", "l2", np.float16),
], ids=["2-rounds", "3-rounds-cosine", "2-steps", "3-empty-rank", "4-empty-first-steps",
        "2-rounds-cosine-f16", "2-steps-f16"])
def test_distributed_equals_single_process(size, sizes, protocol, metric, dtype):
    x = clustered(1200, 16, seed=size, dtype=dtype)
    k = 150
    ref = hminsel.select(x, k, metric=metric, start=5, algorithm="streaming")
    out = run_ranks(size, _select_shard, x, k, sizes,
                    dict(protocol=protocol, metric=metric, start=5,
                         head_size=32 if protocol == "rounds" else None))
    for rank, (status, result) in out.items():
        assert status == "ok", result
        indices, radii, stats = result
        np.testing.assert_array_equal(indices, ref.indices, err_msg=f"rank {rank}")
        np.testing.assert_allclose(radii, ref.radii, rtol=1e-6)
        if protocol == "rounds":
            assert stats.collectives < k / 3  # one per round, not per pick
        else:
            assert stats.collectives == k  # the seed rows, then one a pick
    passes = {result[2].passes for _, result in out.values()}  # all ranks' rows, on every rank
    assert len(passes) == 1 and passes.pop() >= (k - 1 if protocol == "steps" else 1.0)


def _select_strided_shard(rank, size, x, k, metric):
    """A rank's shard as a strided view (its rows' first half of the dimensions), and the
    select's peak allocation beyond imports and first-call buffers."""
    import tracemalloc
    shard = _split(x, size)[rank][:, : x.shape[1] // 2]
    hdist.select(shard, 4, metric=metric)  # first-call buffers
    tracemalloc.start()
    try:
        sel = hdist.select(shard, k, metric=metric, protocol="steps")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return sel.indices, peak, shard.size * shard.itemsize


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_strided_float16_shards_are_gathered_as_stored(metric):
    """A strided float16 shard is gathered once in float16 and read in place, as select does
    with a strided x: the single process's picks, without a float32 copy (twice its bytes)."""
    x = clustered(40_000, 64, seed=3, dtype=np.float16)
    ref = hminsel.select(np.ascontiguousarray(x[:, :32]), 20, metric=metric, algorithm="streaming")
    out = run_ranks(2, _select_strided_shard, x, 20, metric)
    for rank, (status, result) in out.items():
        assert status == "ok", result
        indices, peak, nbytes = result
        np.testing.assert_array_equal(indices, ref.indices, err_msg=f"rank {rank}")
        assert peak < 2.0 * nbytes, (rank, peak, nbytes)  # before: 2.6x (l2), 11x (cosine)


def _select_counting_heads(rank, size, x, k):
    from hminsel.backends.cpu import CpuBackend
    calls = {"tiled": 0, "streaming": 0}
    tiled, streaming = CpuBackend.head_greedy_tiled, CpuBackend.head_greedy

    def count(name, fn):
        def wrapped(*args, **kwargs):
            calls[name] += 1
            return fn(*args, **kwargs)
        return wrapped
    CpuBackend.head_greedy_tiled = count("tiled", tiled)
    CpuBackend.head_greedy = count("streaming", streaming)
    sel = hdist.select(_split(x, size)[rank], k)
    return np.asarray(sel.indices).tolist(), calls, sel.stats.rounds


def test_rounds_adapt_the_union_head_and_take_the_tiled_head_loop():
    """M is the union's (each rank offers ceil(M / ranks) rows); rounds that accept a fair share
    of it run the GEMM-tiled head loop, with the same picks."""
    x = clustered(4000, 32, seed=2)
    want = hminsel.select(x, 1500, algorithm="streaming")
    out = run_ranks(2, _select_counting_heads, x, 1500)
    for status, result in out.values():
        assert status == "ok", result
        indices, calls, rounds = result
        assert indices == np.asarray(want.indices).tolist()
        assert calls["tiled"] >= 1 and calls["tiled"] + calls["streaming"] == rounds, calls


def test_head_shares_follow_the_shards():
    from hminsel.distributed import RANK_HEAD_MAX, _shares
    assert _shares(1024, [100, 100]).tolist() == [100, 100]  # at most a rank's rows
    assert _shares(1024, [8000, 0, 0, 0]).tolist() == [1024, 0, 0, 0]  # all rows on one rank
    assert _shares(10, [5000, 5000, 5000]).tolist() == [4, 3, 3]  # the remainder to the lower rank
    assert _shares(3 * RANK_HEAD_MAX, [10**6, 10**6]).tolist() == [RANK_HEAD_MAX] * 2
    assert _shares(1, [0, 7]).tolist() == [0, 1]
    assert _shares(4, [3000, 1, 0, 1]).tolist() == [4, 1, 0, 1]  # one at least of every rank with rows


def _outliers_on_small_ranks(rank, size, x, sizes, head_size):
    sel = hdist.select(_split(x, size, sizes)[rank], 10, head_size=head_size)
    return np.asarray(sel.indices).tolist()


@pytest.mark.parametrize("sizes,head_size", [([3000, 1, 1, 1], None), ([1001, 1, 1001], 2)],
                         ids=["adapted-head", "head-of-two"])
def test_a_rank_of_few_rows_that_holds_the_best_key(sizes, head_size):
    """A rank whose proportional share of the head is 0 while it holds the farthest row: it
    still offers its best row, so the round accepts picks (it was a round of none: a crash or
    a hang)."""
    x = clustered(sum(sizes), 8, seed=1)
    ends = np.cumsum(sizes) - 1
    x[ends[1:]] += 50.0 * np.eye(8, dtype=x.dtype)[:len(sizes) - 1]  # far rows, on the small ranks
    want = hminsel.select(x, 10).indices.tolist()
    for status, got in run_ranks(len(sizes), _outliers_on_small_ranks, x, sizes, head_size,
                                 timeout=60).values():
        assert status == "ok" and got == want, got


def _uneven_rounds(rank, size, x, k):
    sel = hdist.select(x if rank == 0 else x[:0], k)
    return np.asarray(sel.indices).tolist(), sel.stats


def test_all_rows_on_one_rank_take_as_many_rounds_as_one_process():
    x = clustered(6000, 16, seed=1)
    want = hminsel.select(x, 4000)
    for status, (indices, stats) in run_ranks(3, _uneven_rounds, x, 4000).values():
        assert status == "ok" and indices == np.asarray(want.indices).tolist()
        assert stats.rounds <= want.stats.rounds + 2, (stats.rounds, want.stats.rounds)
        assert len(stats.picks_per_round) == stats.rounds and stats.head_size > 0  # as one process's
        assert sum(stats.picks_per_round) == 4000 - 1  # all but the start
    one = run_ranks(2, _uneven_rounds, x, 1)  # no round: no head, as in one process
    assert all(s == "ok" and st.rounds == st.head_size == 0 for s, (_, st) in one.values()), one


def test_distributed_warm_start_and_fraction():
    x = clustered(600, 8, seed=9)
    ref = hminsel.select(x, 0.1, init=[3, 400], algorithm="streaming")
    out = run_ranks(2, _select_shard, x, 0.1, None, dict(init=[3, 400]))
    for status, (indices, _, _) in out.values():
        assert status == "ok"
        np.testing.assert_array_equal(indices, ref.indices)


def _mismatched_d(rank, size):
    x = np.zeros((10, 4 if rank == 0 else 5), np.float32)
    return hdist.select(x, 3)


def test_mismatched_d_errors_on_every_rank():
    out = run_ranks(2, _mismatched_d, timeout=60)
    for status, message in out.values():
        assert status == "error"
        assert "same d; got d = [4, 5]" in message


def _bad_shard(rank, size):
    x = np.ones((10, 3), np.float32)
    if rank == 1:
        x[4, 0] = np.nan
    return hdist.select(x, 3)


def test_nonfinite_shard_errors_on_every_rank():
    out = run_ranks(2, _bad_shard, timeout=60)
    assert "rank 1: x_shard has NaN or inf in local row 4 (global row 14)" in out[1][1]
    assert "rank(s) [1] passed an invalid shard" in out[0][1]


def _zero_cosine_shard(rank, size):
    x = np.ones((10, 3), np.float32)
    if rank == 0:
        x[6] = 0.0
    return hdist.select(x, 3, metric="cosine")


def test_cosine_zero_row_errors_on_every_rank():
    out = run_ranks(2, _zero_cosine_shard, timeout=60)  # before: rank 1 waited forever
    assert "rank 0: metric='cosine' needs non-zero rows; row 6 of x_shard is all zeros" in out[0][1]
    assert "rank(s) [0] passed a shard that cannot be prepared for metric='cosine'" in out[1][1]


_ARGS_X = np.random.default_rng(2).standard_normal((60, 4))
ARGUMENTS_APART = {  # call(shard, rank): what one rank passes unlike the other
    "protocol": lambda x, r: hdist.select(x, 5, protocol="bogus" if r == 0 else "rounds"),
    "k": lambda x, r: hdist.select(x, 5 + r),
    "init": lambda x, r: hdist.select(x, 5, init=[r, 7]),
    "metric": lambda x, r: hdist.hmin(x, metric="cosine" if r else "l2"),
    "radius": lambda x, r: hdist.select_batched(x, 4, groups=np.arange(len(x)) % 2,
                                                radius=None if r else 0.1),
}


def _arguments_apart(rank, size, name):
    return ARGUMENTS_APART[name](_ARGS_X[rank * 30:(rank + 1) * 30], rank)


@pytest.mark.parametrize("name", list(ARGUMENTS_APART))
def test_arguments_that_differ_between_ranks_raise_on_every_rank(name):
    """Before: a protocol only rank 0 refused left rank 1 waiting in a collective; one
    rank's other k, init or metric raised nothing, and the ranks returned different (or
    wrong) answers."""
    out = run_ranks(2, _arguments_apart, name, timeout=60)
    for rank in (0, 1):
        assert out[rank][0] == "error" and f"every rank must pass the same {name}; rank(s) [1]" \
            in out[rank][1], out[rank]


def _arguments_alike(rank, size):
    k = torch.tensor(5) if rank else 5  # the same values in other kinds
    init = np.array([3, 7], np.int32) if rank else [3, 7]
    return hdist.select(_ARGS_X[rank * 30:(rank + 1) * 30], k, init=init).indices.tolist()


def test_arguments_alike_in_other_kinds_agree():
    out = run_ranks(2, _arguments_alike, timeout=60)
    want = hminsel.select(_ARGS_X, 5, init=[3, 7]).indices.tolist()
    assert out[0] == out[1] == ("ok", want)


ALIKE = [(5, np.int64(5)), (5, torch.tensor(5)), ("l2", np.str_("l2")), (True, np.bool_(True)),
         ([3, 7], np.array([3, 7], np.uint32)), ([3, 7], torch.tensor([3, 7])),
         ([3, 7], np.array([3, 7], dtype=object)), ([], None), (np.zeros(0, int), None),
         ({0: 3, "a": 1}, {np.int64(0): 3, np.str_("a"): 1}), (None, np.random.default_rng(1)),
         (0.5, np.float32(0.5))]
APART = [(1, 1.0), (5, 6), ([3, 7], [7, 3]), ("l2", "cosine"), (None, 0), (True, 1),
         (0.1, np.float32(0.1)), ({0: 3}, {0: 4})]


def test_argument_digests_equal_values_alike_and_others_apart():
    """What ``same_arguments`` compares: a value in another kind (a numpy scalar, a tensor,
    an array of another integer width, Python objects) digests alike; k=1 and k=1.0 (one row,
    every row) do not. An object array digests its items, not their addresses (which differ
    between processes)."""
    from hminsel.distributed.together import _digest
    assert all(_digest(a) == _digest(b) for a, b in ALIKE), [(a, b) for a, b in ALIKE
                                                              if _digest(a) != _digest(b)]
    assert all(_digest(a) != _digest(b) for a, b in APART)
    assert _digest(np.array([3, None], dtype=object)) == _digest([3, None])


class _Unreadable:
    """An array-like whose conversion fails with an error no input check anticipates."""

    def __array__(self, dtype=None, copy=None):
        raise RuntimeError("cannot be read")


def _odd_failure_shard(rank, size):
    x = np.ones((10, 3), np.float32) if rank == 0 else _Unreadable()
    return hdist.select(x, 3)


def test_any_shard_failure_errors_on_every_rank():
    out = run_ranks(2, _odd_failure_shard, timeout=60)  # before: rank 0 waited in all_gather
    assert out[1][0] == "error" and "rank 1: " in out[1][1] and "cannot be read" in out[1][1]
    assert "rank(s) [1] passed an invalid shard" in out[0][1]


def _scaled_shards(rank, size, scales):
    x = np.random.default_rng(rank).standard_normal((10, 3)).astype(np.float32) * scales[rank]
    return hdist.select(x, 3)


def test_value_range_is_checked_over_all_shards():
    out = run_ranks(2, _scaled_shards, [1.0, 1e19], timeout=60)
    for status, message in out.values():
        assert status == "error" and "overflow float32 sums" in message
    out = run_ranks(2, _scaled_shards, [1e-20, 1.0], timeout=60)  # tiny on one rank only: fine
    assert all(status == "ok" for status, _ in out.values())


def _steps_with_head_size(rank, size):
    return hdist.select(np.zeros((4, 2), np.float32), 2, protocol="steps", head_size=8)


def test_head_size_with_steps_raises():
    out = run_ranks(2, _steps_with_head_size)
    for rank in (0, 1):
        assert out[rank][0] == "error" and (
            "head_size=8 only applies to protocol='rounds'" in out[rank][1])


def _select_masked(rank, size, x, k, sizes, kwargs):
    mask = kwargs.pop("mask")
    sel = hdist.select(_split(x, size, sizes)[rank], k, mask=_split(mask, size, sizes)[rank], **kwargs)
    return sel.indices, sel.radii, sel.stats


@pytest.mark.parametrize("size,sizes,protocol,init", [
    (2, None, "rounds", None), (3, [500, 0, 700], "steps", None), (2, None, "rounds", [3, 1100]),
], ids=["2-rounds", "3-empty-rank-steps", "2-rounds-init-outside"])
def test_distributed_mask_equals_single_process(size, sizes, protocol, init):
    """Each rank's mask over its rows: the picks of hminsel.select with the whole mask."""
    x = clustered(1200, 16, seed=7)
    allowed = np.random.default_rng(8).random(len(x)) < 0.5
    allowed[0] = False  # the default start moves to the first allowed row
    ref = hminsel.select(x, 90, mask=allowed, init=init)
    out = run_ranks(size, _select_masked, x, 90, sizes,
                    dict(mask=allowed, init=init, protocol=protocol,
                         head_size=32 if protocol == "rounds" else None))
    for rank, (status, result) in out.items():
        assert status == "ok", result
        np.testing.assert_array_equal(result[0], ref.indices, err_msg=f"rank {rank}")


@pytest.mark.parametrize("size,sizes,metric,mask", [
    (2, None, "l2", False), (3, [500, 0, 700], "cosine", True),
], ids=["2-l2", "3-empty-rank-cosine-mask"])
def test_distributed_skips_nonfinite_rows_as_one_process(size, sizes, metric, mask):
    """nonfinite='skip': the rows with NaN or inf (none on rank 0, the first row among them)
    are left out, as hminsel.select leaves them out; an init row among them raises."""
    x = clustered(1200, 16, seed=9)
    x[[0, 640, 641, 1100], [3, 0, 15, 7]] = [np.nan, np.inf, -np.inf, np.nan]
    if sizes is None:
        x[:600] = np.nan_to_num(x[:600], nan=0.5)  # rank 0's rows all finite
    allowed = np.random.default_rng(8).random(len(x)) < 0.6 if mask else np.ones(len(x), bool)
    ref = hminsel.select(x, 90, metric=metric, mask=allowed, nonfinite="skip")
    out = run_ranks(size, _select_masked, x, 90, sizes,
                    dict(mask=allowed, metric=metric, nonfinite="skip", head_size=32))
    for rank, (status, result) in out.items():
        assert status == "ok", result
        np.testing.assert_array_equal(result[0], ref.indices, err_msg=f"rank {rank}")
        np.testing.assert_allclose(result[1], ref.radii, rtol=1e-6)
    out = run_ranks(size, _select_masked, x, 90, sizes,
                    dict(mask=allowed, metric=metric, nonfinite="skip", init=[5, 640]))
    assert all(s == "error" and "init entry 640 holds NaN or inf" in r for s, r in out.values()), out


def _modes_by_rank(rank, size, modes):
    x = clustered(40, 3, seed=rank)
    if rank == 0:
        x[2, 1] = np.nan
    return hdist.select(x, 5, nonfinite=modes[rank]).indices


def test_nonfinite_must_be_one_mode_on_every_rank():
    """A bad value, or ranks that disagree, raise on every rank (none waits in a collective)."""
    out = run_ranks(2, _modes_by_rank, ["bogus", "skip"], timeout=60)
    assert out[0][0] == "error" and "rank 0: nonfinite must be 'raise' or 'skip'; got 'bogus'" in out[0][1]
    assert out[1][0] == "error" and "rank(s) [0] passed an invalid shard" in out[1][1]
    out = run_ranks(2, _modes_by_rank, ["skip", "raise"], timeout=60)
    assert all(s == "error" and "every rank must pass the same nonfinite; got ['skip', 'raise']" in r
               for s, r in out.values()), out


def _bad_mask_on_rank_0(rank, size):
    x = clustered(100, 4, seed=rank)
    return hdist.select(x, 5, mask=np.ones(3 if rank == 0 else 100, bool)).indices


def test_a_bad_mask_raises_on_every_rank():
    out = run_ranks(2, _bad_mask_on_rank_0, timeout=60)
    assert out[0][0] == "error" and "rank 0: mask must be a boolean array" in out[0][1]
    assert out[1][0] == "error" and "another rank passed an invalid mask" in out[1][1]


def test_needs_a_process_group():
    with pytest.raises(RuntimeError, match="initialised torch.distributed process group"):
        hdist.select(np.zeros((3, 2)), 1)


def test_torchrun_command_line(tmp_path):
    import subprocess
    import sys
    x = clustered(900, 12, seed=11)
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "picked.npy"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
           f"--master_port={_free_port()}", "-m", "hminsel.distributed", "select",
           str(tmp_path / "x.npy"), "--k", "90", "--out", str(out)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=env)
    assert done.returncode == 0, done.stderr[-2000:]
    np.testing.assert_array_equal(np.load(out), hminsel.select(x, 90).indices)
    assert "collectives" in (tmp_path / "picked.json").read_text()


def test_command_line_on_launched_ranks(tmp_path):
    """The command line's options, on ranks started as torchrun starts them (``launch``)."""
    x = clustered(900, 12, seed=11)
    np.save(tmp_path / "x.npy", x)
    cmd = ["select", tmp_path / "x.npy", "--k", "90", "--out", tmp_path / "picked.npy"]
    code, _, err = launch(2, cmd)
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "picked.npy"), hminsel.select(x, 90).indices)
    m = json.loads((tmp_path / "picked.json").read_text())  # the keys a one-process manifest has too
    assert m["hminsel_version"] == hminsel.__version__ and m["dtype"] == "float32" and m["created_utc"]
    assert m["command"].startswith("python -m hminsel.distributed select ") and "--k 90" in m["command"]
    assert m["outputs"] == {"indices": str(tmp_path / "picked.npy"), "manifest": str(tmp_path / "picked.json"),
                            "subset": None, "baseline": None}
    code, _, err = launch(2, cmd)
    assert code != 0 and "picked.json already exist" in err and "--force" in err
    start = cmd[:-2] + ["--start-row", "random", "--out", tmp_path / "s.npy"]  # torchrun takes --start
    code, _, err = launch(2, start)
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"),  # seed 0 unless --seed: every run alike
                                  hminsel.select(x, 90, start="random", seed=0).indices)
    assert '"seed": 0' in (tmp_path / "s.json").read_text()
    np.save(tmp_path / "mine.npy", np.array([5, 800, 3]))  # rows picked by hand: kept first
    allowed = np.arange(900) % 4 != 0  # and a mask (rows 800 and 0 outside it)
    np.save(tmp_path / "allowed.npy", allowed)
    more = cmd[:-4] + ["--k", "40", "--init", tmp_path / "mine.npy", "--mask",
                       tmp_path / "allowed.npy", "--out", tmp_path / "m.npy"]
    code, _, err = launch(2, more)
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "m.npy"),
                                  hminsel.select(x, 40, init=[5, 800, 3], mask=allowed).indices)
    assert '"picks": 3' in (tmp_path / "m.json").read_text() and '"rows": 675' in (tmp_path / "m.json").read_text()
    x[[7, 600]] = np.nan  # rows of the file with NaN: named by their row in it, or left out
    np.save(tmp_path / "nan.npy", x)
    nan = ["select", tmp_path / "nan.npy", "--k", "90", "--out", tmp_path / "n.npy"]
    code, _, err = launch(2, nan)
    assert code != 0 and "local row 150 (global row 600)" in err
    code, _, err = launch(2, nan + ["--nonfinite", "skip", "--k", "5000"])  # every rank's error: said once
    assert code == 2 and err.count("k must be in") == 1 and "(ranks 0, 1): k must be in" in err, err
    code, _, err = launch(2, nan + ["--nonfinite", "skip"])
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "n.npy"), hminsel.select(x, 90, nonfinite="skip").indices)
    m = json.loads((tmp_path / "n.json").read_text())
    assert m["nonfinite_skipped"] == {"count": 2, "first_rows": [7, 600]}


def test_command_line_manifest_as_one_process(tmp_path, capsys):
    """The random baseline (the same draw as ``hminsel select``'s), the radii and the rows
    --nonfinite skip left out, with --mask and --init, as one process's manifest records them."""
    from cli_helpers import run
    x = clustered(700, 6, seed=3)
    x[[10, 500]] = np.inf
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "allowed.npy", np.arange(700) % 3 != 0)
    np.save(tmp_path / "mine.npy", np.array([4, 650]))
    common = [tmp_path / "x.npy", "--k", "60", "--nonfinite", "skip", "--mask", tmp_path / "allowed.npy",
              "--init", tmp_path / "mine.npy", "--seed", "5"]
    code, out, err = launch(2, ["select", *common, "--out", tmp_path / "d.npy"])
    assert code == 0, err
    assert "random subset (seed 5) of 60 rows" in out and "x larger" in out
    assert "left out 2 rows with NaN or inf (the first: row 10)" in out
    assert run(capsys, "select", *common, "--out", tmp_path / "p.npy", "--no-progress")[0] == 0
    d, p = (json.loads((tmp_path / f"{n}.json").read_text()) for n in "dp")
    np.testing.assert_array_equal(np.load(tmp_path / "d.npy"), np.load(tmp_path / "p.npy"))
    for key in ("nonfinite_skipped", "radii", "seed"):
        assert d[key] == p[key], key
    for key in ("size", "seed", "statistic", "method"):
        assert d["random_baseline"][key] == p["random_baseline"][key], key
    assert d["random_baseline"]["h_min"] == pytest.approx(p["random_baseline"]["h_min"], rel=1e-6)
    assert d["h_min_over_random"] == pytest.approx(p["h_min_over_random"], rel=1e-6)
    assert d["stats"]["collectives"] == d["collectives"] and d["timings_s"]["random_baseline"] > 0
    (tmp_path / "r.jsonl").write_text("".join(f'{{"id": {i}}}\n' for i in range(700)))
    records = ["--data", tmp_path / "r.jsonl", "--subset-out", tmp_path / "{}s.jsonl",
               "--baseline-out", tmp_path / "{}b.jsonl", "--out", tmp_path / "{}.npy"]
    code, out, err = launch(2, ["select", *common, *[str(a).format("e") for a in records]])
    assert code == 0 and "random subset " in out, err
    assert run(capsys, "select", *common, *[str(a).format("f") for a in records], "--no-progress")[0] == 0
    for part in ("s", "b"):  # the picked and the random records, as one process writes them
        assert (tmp_path / f"e{part}.jsonl").read_text() == (tmp_path / f"f{part}.jsonl").read_text()
    code, out, err = launch(2, ["select", tmp_path / "x.npy", "--k", "20", "--nonfinite", "skip",
                                "--no-baseline", "--out", tmp_path / "n.npy"])
    assert code == 0, err
    n = json.loads((tmp_path / "n.json").read_text())
    assert n["random_baseline"] is None and n["h_min_over_random"] is None and n["seed"] is None
    assert "random subset" not in out


def test_command_line_refuses_before_starting_a_group(tmp_path, capsys):
    from hminsel.distributed.__main__ import main
    with pytest.raises(SystemExit) as exc:
        main(["select", str(tmp_path / "x.npy"), "--k", "3", "--out", str(tmp_path / "p.json")])
    assert exc.value.code == 2 and "--out must end in .npy" in capsys.readouterr().err
    for bad, said in ((["--init", str(tmp_path / "p.npy")], "different files"),
                      (["--init", str(tmp_path / "i.npy"), "--start-row", "4"], "drop --start-row"),
                      (["--init", str(tmp_path / "i.npy"), "--start-row", "0"], "drop --start-row")):
        with pytest.raises(SystemExit) as exc:
            main(["select", str(tmp_path / "x.npy"), "--k", "3", "--out", str(tmp_path / "p.npy"), *bad])
        assert exc.value.code == 2 and said in capsys.readouterr().err
    for var in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        assert var not in os.environ
    assert main(["select", str(tmp_path / "x.npy"), "--k", "3", "--out", str(tmp_path / "p.npy")]) == 2
    assert "start it with torchrun" in capsys.readouterr().err


def test_nccl_rank_takes_its_local_gpu_before_the_group_starts(monkeypatch):
    """``--group-backend nccl``: GPU LOCAL_RANK becomes current before init_process_group."""
    import torch
    import torch.distributed as dist

    from hminsel.distributed.__main__ import init_group
    calls = []
    monkeypatch.setenv("LOCAL_RANK", "3")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 8)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: calls.append(("set_device", device)))
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "init_process_group", lambda backend: calls.append(("init", backend)))
    assert init_group("nccl") == torch.device("cuda", 3)
    assert calls == [("set_device", torch.device("cuda", 3)), ("init", "nccl")]
    calls.clear()
    assert init_group("gloo") == torch.device("cpu") and calls == [("init", "gloo")]
    calls.clear()  # gloo with shards on GPUs: the GPU is set, the group's tensors stay on the CPU
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)  # each rank sees some GPUs only
    assert init_group("gloo", on_gpu=True) == torch.device("cpu")
    assert calls == [("set_device", torch.device("cuda", 1)), ("init", "gloo")]
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(RuntimeError, match="--group-backend nccl needs CUDA"):
        init_group("nccl")


def _random_starts(rank, size, x, generator):
    np.random.seed(11)  # seed None: rank 0's draw from the global state, as one process draws
    seed = np.random.default_rng(rank) if generator else None  # each rank's own Generator
    lo, hi = len(x) * rank // size, len(x) * (rank + 1) // size
    return np.asarray(hdist.select(x[lo:hi], 8, start="random", seed=seed).indices).tolist()


def test_random_start_seeds_agree_over_ranks():
    """seed None (np.random.seed repeats it, the start one process draws) or a Generator (each
    rank's own: rank 0's draws): every rank gets the same picks."""
    x = clustered(300, 4, seed=2)
    np.random.seed(11)
    want = np.asarray(hminsel.select(x, 8, start="random").indices).tolist()
    for generator in (False, True):
        out = run_ranks(2, _random_starts, x, generator)
        assert out[0][0] == out[1][0] == "ok" and out[0][1] == out[1][1], out
        if not generator:
            assert out[0][1] == want
