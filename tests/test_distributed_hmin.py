"""hminsel.distributed.hmin: the closest pair over row shards (gloo, several processes)."""
from __future__ import annotations

import numpy as np
import pytest

from test_distributed import _split, run_ranks  # skips where torch.distributed with gloo is missing

import hminsel  # noqa: E402
import hminsel.distributed as hdist  # noqa: E402
from hminsel.distributed import pairs  # noqa: E402
from conftest import clustered  # noqa: E402


def _hmin_shard(rank, size, x, sizes, kwargs, chunk):
    if chunk:
        pairs.CHUNK_BYTES = chunk  # several exchanges a shard
    res = hdist.hmin(_split(x, size, sizes)[rank], **kwargs)
    return res.value, res.i, res.j


def _case(kind):
    x = clustered(400, 10, seed=6)
    if kind == "across":  # the closest pair spans two shards: rows 10 and 390
        x[390] = x[10] + 1e-3
    elif kind == "ties":  # equal pairs in several shards and across: the lowest pair wins
        x[[50, 250, 350]] = x[[300, 260, 399]]
        x[120] = x[20]
    elif kind == "nan":  # rows with NaN or inf (row 0 too), one of them the closest but for it
        x[390] = x[10] + 1e-3
        x[301] = x[11] + 1e-4
        x[[0, 5, 200, 301, 395], [0, 9, 3, 3, 1]] = [np.nan, np.inf, np.nan, -np.inf, np.nan]
    return x


@pytest.mark.parametrize("size,sizes,kind,kwargs,chunk", [
    (2, None, "across", {}, 0),
    (3, [150, 0, 250], "ties", {}, 0),
    (4, None, "ties", {"metric": "cosine"}, 2000),
    (4, [100, 100, 1, 199], "across", {}, 700),
    (3, None, "plain", {}, 0),
    (3, None, "nan", {"nonfinite": "skip"}, 0),
    (4, [100, 100, 1, 199], "nan", {"nonfinite": "skip", "metric": "cosine"}, 700),
    (2, [1, 399], "nan", {"nonfinite": "skip"}, 2000),  # rank 0's one row has a NaN
])
def test_equals_single_process_hmin(size, sizes, kind, kwargs, chunk):
    x = _case(kind)
    want = hminsel.hmin(x, **kwargs)
    out = run_ranks(size, _hmin_shard, x, sizes, kwargs, chunk)
    for rank in range(size):
        status, got = out[rank]
        assert status == "ok", got
        assert got[1:] == (want.i, want.j) and got[0] == pytest.approx(want.value, rel=1e-6, abs=1e-9)


def test_float16_and_one_row():
    x = _case("across").astype(np.float16)
    want = hminsel.hmin(x)
    out = run_ranks(2, _hmin_shard, x, None, {}, 0)
    assert all(r[0] == "ok" and r[1][1:] == (want.i, want.j) for r in out.values()), out
    out = run_ranks(2, _hmin_shard, x[:1], [1, 0], {}, 0)
    assert all(r[0] == "ok" and r[1] == (np.inf, -1, -1) for r in out.values()), out


def _fortran_shard(rank, size, x, sizes):
    res = hdist.hmin(np.asfortranarray(_split(x, size, sizes)[rank]))
    return res.value, res.i, res.j


def test_shards_in_any_memory_layout():
    """A one-row shard is C- and F-contiguous at once, the other ranks' only F: one backend all the same."""
    x = _case("across")
    want = hminsel.hmin(x)
    out = run_ranks(2, _fortran_shard, x, [1, 399])
    assert all(r[0] == "ok" and r[1][1:] == (want.i, want.j) for r in out.values()), out


@pytest.mark.parametrize("size", range(1, 9))
def test_every_pair_of_rows_searched_once(size):
    sizes = np.random.default_rng(size).integers(0, 7, size)
    sizes[0] = 5
    seen = {}
    for r in range(size):
        for q in range(size):
            plan = pairs._plan(r, q, sizes)
            if plan:
                for a in range(*plan[:2]):
                    for b in range(*plan[2:]):
                        key = frozenset([(q, a), (r, b)])
                        seen[key] = seen.get(key, 0) + 1
    want = {frozenset([(q, a), (r, b)]) for r in range(size) for q in range(r + 1, size)
            for a in range(sizes[q]) for b in range(sizes[r])}
    assert set(seen) == want and set(seen.values()) <= {1}
    even = np.full(size, 10)  # equal shards: every rank searches about as many pairs
    work = [sum((p[1] - p[0]) * (p[3] - p[2]) for q in range(size) if (p := pairs._plan(r, q, even)))
            for r in range(size)]
    assert max(work) - min(work) <= 100 * (size > 1), work


@pytest.mark.parametrize("size", range(1, 9))
def test_ring_stages_send_what_each_rank_searches(size):
    """Every rank searches, in ring stages all ranks run at once, the rows its plan names, each
    chunk sent by the rank that holds it in the same exchange, in as many exchanges a rank."""
    sizes = np.random.default_rng(size + 10).integers(0, 40, size)
    step = 7
    stages = [pairs._stages(r, sizes, step) for r in range(size)]
    assert len({len(s) for s in stages}) == 1 and len(stages[0]) <= size // 2
    for r in range(size):
        searched = {q: pairs._plan(r, q, sizes) for q in range(size) if pairs._plan(r, q, sizes)}
        assert {src: mine for src, mine, _, _, _ in stages[r] if mine} == searched
        for t, (src, mine, dst, give, chunks) in enumerate(stages[r]):
            assert chunks == stages[src][t][4] == stages[dst][t][4]  # one count a stage
            assert stages[src][t][2] == r and stages[src][t][3] == mine  # src sends what r searches
            got = [pairs._piece(mine, c, step) for c in range(chunks)]
            assert all(hi - lo <= step for lo, hi in got)
            rows = [i for lo, hi in got for i in range(lo, hi)]
            assert rows == (list(range(*mine[:2])) if mine else [])


def _failing_rank(rank, size, x, where):
    if rank == 1:  # rank 1 fails in its own pair, or making a chunk to send (out of memory)
        def fail(*args, **kwargs):
            raise MemoryError("no room")
        setattr(pairs, where, fail)
    return hdist.hmin(_split(x, size)[rank], metric="cosine")


@pytest.mark.parametrize("where", ["closest", "host_rows"])
def test_a_failing_rank_is_named_by_every_rank(where):
    """Any error of one rank, out of memory too, raises on every rank, naming that rank only
    (the others search the rows it still sends, and do not fail on them)."""
    out = run_ranks(3, _failing_rank, clustered(90, 4, seed=1), where)
    assert out[1][0] == "error" and "rank 1: MemoryError: no room" in out[1][1], out
    for rank in (0, 2):
        assert out[rank][0] == "error" and "rank(s) [1] could not search" in out[rank][1], out


def _zero_row_on_one_rank(rank, size, x):
    shard = _split(x, size)[rank].copy()
    if rank == 1:
        shard[3] = 0.0
    return hdist.hmin(shard, metric="cosine")


def test_an_error_on_one_rank_raises_on_every_rank():
    out = run_ranks(2, _zero_row_on_one_rank, clustered(60, 4, seed=0))
    assert out[1][0] == "error" and "rank 1: metric='cosine' needs non-zero rows; row 3" in out[1][1]
    assert out[0][0] == "error" and "rank(s) [1] passed a shard that cannot be prepared" in out[0][1]


def test_command_line_hmin_on_launched_ranks(tmp_path):
    import json
    from test_distributed import launch
    x = _case("across")
    np.save(tmp_path / "x.npy", x)
    code, out, err = launch(2, ["hmin", tmp_path / "x.npy", "--json"])
    assert code == 0, err
    got = json.loads(out.strip().splitlines()[-1])
    want = hminsel.hmin(x)
    assert (got["i"], got["j"]) == (want.i, want.j) == (10, 390) and got["world_size"] == 2
    assert got["h_min"] == pytest.approx(want.value, rel=1e-6)
    np.save(tmp_path / "nan.npy", _case("nan"))
    code, out, err = launch(2, ["hmin", tmp_path / "nan.npy", "--nonfinite", "skip"])
    assert code == 0, err
    assert "between rows 10 and 390" in out and "left out 5 rows with NaN or inf (the first: row 0)" in out
    code, out, err = launch(2, ["hmin", tmp_path / "nan.npy", "--nonfinite", "skip", "--json"])
    assert code == 0, err
    got = json.loads(out.strip().splitlines()[-1])  # the keys of one process's hmin --json
    assert got["nonfinite"] == "skip"
    assert got["nonfinite_skipped"] == {"count": 5, "first_rows": [0, 5, 200, 301, 395]}


def _tiny_shard(rank, size, x):
    res = hdist.hmin(_split(x, size, [2, 8])[rank])
    return res.value, res.i, res.j, res.backend


def test_values_range_checked_over_all_shards_and_one_backend_name():
    """A shard of tiny values is fine when all shards together are (as in one process), and
    every rank names the same backend."""
    x = np.random.default_rng(0).standard_normal((10, 4)).astype(np.float32)
    x[:2] = np.float32(1e-20) * np.array([[1, 2, 3, 4], [4, 3, 2, 1]], np.float32)
    want = hminsel.hmin(x)
    out = run_ranks(2, _tiny_shard, x)
    assert all(s == "ok" and r[:3] == (want.value, want.i, want.j) for s, r in out.values()), out
    assert out[0][1][3] == out[1][1][3] == want.backend


def _init_on_one_rank(rank, size, x):
    return hdist.select_batched(x, 3, groups=np.zeros(len(x), int), init=[0] if rank else [10**6])


def test_init_differing_across_ranks_raises_on_every_rank():
    out = run_ranks(2, _init_on_one_rank, clustered(20, 3, seed=0))
    for rank in (0, 1):  # (before the arguments were compared: rank 0 named its bad row)
        assert out[rank][0] == "error" and "every rank must pass the same init" in out[rank][1]


def _hmin_of(rank, size, x, sizes, metric):
    res = hdist.hmin(_split(x, size, sizes)[rank], metric=metric)
    return res.value, res.i, res.j


def test_pairs_compare_by_squared_values_as_one_process():
    """Two pairs whose float64 squared distances differ by one unit in the last place share
    one square root: the closer one wins, as in one process, not the lower pair by index."""
    x = np.array([[0.0, 0.0], [1.5170208486235808, 2.0256727798869863e-08],
                  [20.0, 0.0], [21.51702084862358, 0.0]])
    d, e = x[1] - x[0], x[3] - x[2]
    assert d @ d > e @ e and np.sqrt(d @ d) == np.sqrt(e @ e)  # the case itself
    want = hminsel.hmin(x)
    assert (want.i, want.j) == (2, 3)
    for sizes in ([2, 2], [4, 0]):
        out = run_ranks(2, _hmin_of, x, sizes, "l2")
        assert all(r == ("ok", (want.value, 2, 3)) for r in out.values()), out


def test_a_bad_metric_raises_on_every_rank():
    out = run_ranks(2, _hmin_of, clustered(20, 3, seed=1), [1, 19], "cos")
    for status, got in out.values():
        assert status == "error" and "metric must be one of" in got, got
