"""hminsel.distributed.select_batched: per-label quotas over row shards (gloo, several processes)."""
from __future__ import annotations

import numpy as np
import pytest

from test_distributed import _split, run_ranks  # skips where torch.distributed with gloo is missing

import hminsel  # noqa: E402
import hminsel.distributed as hdist  # noqa: E402
from hminsel.distributed import owners  # noqa: E402
from conftest import clustered  # noqa: E402


def _select_groups(rank, size, x, labels, mask, k, sizes, kwargs, solo=None, batch=None):
    if solo is not None:  # labels with more bytes of rows than this run over the shards
        owners.SOLO_BYTES = solo
    if batch is not None:
        owners.BATCH_BYTES = batch
    part = _split(np.arange(len(x)), size, sizes)[rank]
    res = hdist.select_batched(x[part], k, groups=labels[part],
                               mask=None if mask is None else mask[part], **kwargs)
    return (np.asarray(res.indices).tolist(), np.asarray(res.ptr).tolist(),
            np.asarray(res.radii).tolist(), np.asarray(res.labels).tolist(),
            None if res.caps is None else res.caps.tolist())


@pytest.mark.parametrize("size,sizes,kind,masked,k,kwargs", [
    (2, None, "int", False, 0.1, {}),
    (3, [300, 0, 300], "str", True, 0.2, {"metric": "cosine"}),
    (2, [550, 50], "int", True, 6, {"start": "random", "seed": 3}),
    (3, None, "str", False, {"b": 12, "c": 3}, {}),
    (3, [250, 100, 250], "int", True, 0.05, {"init": [590, 5, 301, 44], "start": "random", "seed": 1}),
    (2, None, "str", True, 9, {"init": [1, 2, 599]}),
])
def test_equals_single_process_select_batched(size, sizes, kind, masked, k, kwargs):
    x = clustered(600, 12, seed=4)
    rng = np.random.default_rng(1)
    names = np.array(["a", "b", "c", "d"]) if kind == "str" else np.array([40, -2, 7, 13])
    labels = names[rng.integers(0, 4, 600)]
    labels[:50] = names[0]  # rank 1 of [550, 50] sees one label only
    mask = rng.random(600) < 0.6 if masked else None
    want = hminsel.select_batched(x, k, groups=labels, mask=mask, **kwargs)
    taken = np.ones(600, bool) if mask is None else mask.copy()
    taken[kwargs.get("init", [])] = True  # a label's rows: those allowed and its init rows
    largest = max(int(np.sum(taken & (labels == name))) for name in names)
    solo = (largest - 1) * x.shape[1] * x.itemsize  # the largest label over the shards, the rest on owners
    out = run_ranks(size, _select_groups, x, labels, mask, k, sizes, kwargs, solo)
    for rank in range(size):
        status, got = out[rank]
        assert status == "ok", got
        indices, ptr, radii, got_labels, caps = got
        assert caps is None
        assert indices == np.asarray(want.indices).tolist() and ptr == np.asarray(want.ptr).tolist()
        assert got_labels == np.asarray(want.labels).tolist()
        np.testing.assert_allclose(radii, want.radii, rtol=1e-6)


@pytest.mark.parametrize("spread", ["by-rank", "mixed"])
def test_many_small_labels_on_owners(spread):
    """60 labels over 3 ranks, most of them small, in several exchanges; labels kept on the rank
    that holds them (data sharded by source) or spread over all."""
    x = clustered(900, 6, seed=7)
    rng = np.random.default_rng(2)
    labels = np.sort(rng.integers(0, 60, 900)) if spread == "by-rank" else rng.integers(0, 60, 900)
    labels[rng.random(900) < 0.2] = 99  # one label large enough to run over the shards
    mask = rng.random(900) < 0.9
    kwargs = {"init": [int(np.flatnonzero(labels == 99)[3]), int(np.flatnonzero(labels == 5)[0])],
              "start": "random", "seed": 4}
    want = hminsel.select_batched(x, 0.3, groups=labels, mask=mask, **kwargs)
    row = x.shape[1] * x.itemsize
    out = run_ranks(3, _select_groups, x, labels, mask, 0.3, None, kwargs, 40 * row, 120 * row)
    for rank in range(3):
        status, got = out[rank]
        assert status == "ok", got
        assert got[0] == np.asarray(want.indices).tolist() and got[1] == np.asarray(want.ptr).tolist()
        np.testing.assert_allclose(got[2], want.radii, rtol=1e-6)


def test_owner_plan_balances_and_keeps_labels_where_they_are():
    held = np.array([[30, 0, 10, 5, 5],
                     [0, 30, 10, 5, 5]])  # rows of 5 labels on 2 ranks
    owner, batch = owners.plan(held, np.array([3, 3, 2, 1, 0]), row_bytes=8)
    assert owner.tolist() == [0, 1, 0, 1, -1]  # each where its rows are; then the load; no picks: none
    assert batch.tolist() == [0, 0, 0, 0, -1]
    owners_before = owners.SOLO_BYTES, owners.BATCH_BYTES
    try:
        owners.SOLO_BYTES, owners.BATCH_BYTES = 25 * 8, 15 * 8
        owner, batch = owners.plan(held, np.array([3, 3, 2, 1, 1]), row_bytes=8)
        assert owner.tolist() == [-1, -1, 0, 1, 1]  # 30 rows: over the shards; rank 1 less loaded
        assert batch.tolist() == [-1, -1, 0, 0, 1]  # rank 1 would receive 20 rows: a second exchange
        sources = np.array([[6, 6, 6, 0], [0, 0, 0, 6]])  # 3 labels all on rank 0: it sends them
        owner, batch = owners.plan(sources, np.ones(4, int), row_bytes=8)
        assert owner.tolist() == [0, 0, 1, 1]  # the third would unbalance rank 0: it moves
        assert batch.tolist() == [0, 0, 1, 1]  # rank 0 would send 18 rows: a second exchange
    finally:
        owners.SOLO_BYTES, owners.BATCH_BYTES = owners_before


def _tiny_owned(rank, size, x, labels, solo=None, backend="auto"):
    if solo is not None:
        owners.SOLO_BYTES = solo
    part = _split(np.arange(len(x)), size, [20, 40])[rank]
    return hdist.select_batched(x[part], 3, groups=labels[part], backend=backend)


def test_an_owner_that_cannot_select_raises_on_every_rank():
    x = clustered(60, 3, seed=0).astype(np.float32)
    x[:20] *= np.float32(1e-30)  # label 0, rank 0's rows: their squared distances underflow
    labels = np.repeat([0, 1], [20, 40])
    row = x.shape[1] * x.itemsize
    for solo in (30 * row,):  # label 1 over the shards: rank 1 owns nothing, and waits for none
        out = run_ranks(2, _tiny_owned, x, labels, solo)
        assert out[0][0] == "error" and "rank 0: label 0's values are all below" in out[0][1], out
        assert out[1][0] == "error" and "another rank could not select its labels" in out[1][1]
    out = run_ranks(2, _tiny_owned, clustered(60, 3, seed=0), labels, None, "cuda")  # refused on every rank
    assert all(s == "error" and "RuntimeError: backend 'cuda' cannot run this call" in r
               for s, r in out.values()), out


def _zero_left_out(rank, size, x):
    mask = np.ones(len(x), bool)
    mask[2] = False
    return hdist.select_batched(x, 2, groups=np.zeros(len(x), int), mask=mask, metric="cosine")


def test_cosine_zero_row_raises_where_the_mask_leaves_it_out():
    x = clustered(40, 3, seed=0)
    x[2] = 0  # on every rank: local row 2
    out = run_ranks(2, _zero_left_out, x)
    assert all(s == "error" and "local row 2 of x_shard is all zeros" in r for s, r in out.values())
    with pytest.raises(ValueError, match="row 2 of x is all zeros"):  # as in one process
        hminsel.select_batched(x, 2, groups=np.zeros(40, int), mask=np.arange(40) != 2, metric="cosine")


def _bad_groups(rank, size, x):
    labels = np.arange(len(x)) % 3 if rank == 0 else np.array(["u"] * len(x))
    return hdist.select_batched(x, 2, groups=labels)


def _short_groups(rank, size, x):
    return hdist.select_batched(x, 2, groups=np.zeros(len(x) - rank, int))


def test_bad_groups_raise_on_every_rank():
    x = clustered(40, 3, seed=0)
    out = run_ranks(2, _bad_groups, x)
    assert all(s == "error" and "integer labels on every rank or text labels" in r for s, r in out.values())
    out = run_ranks(2, _short_groups, x)
    assert out[1][0] == "error" and "rank 1: groups must have one label per row of x_shard (40); got 39" in out[1][1]
    assert out[0][0] == "error" and "another rank passed invalid groups" in out[0][1]


def _too_many_init(rank, size, x):
    return hdist.select_batched(x, 2, groups=np.zeros(len(x), int), init=[0, 1, 50])


def test_init_rows_past_k_raise_on_every_rank():
    out = run_ranks(2, _too_many_init, clustered(40, 3, seed=0))
    assert all(s == "error" and "label 0 has 3 init rows but k asks for 2 picks" in r for s, r in out.values())


def _start_five(rank, size):
    return hdist.select_batched(np.zeros((4, 2)), 1, groups=np.zeros(4, int), start=5)


def test_start_must_be_zero_or_random():
    out = run_ranks(2, _start_five)
    for rank in (0, 1):
        assert out[rank][0] == "error" and (
            "start must be 0 (each label's first allowed row) or 'random'; got 5" in out[rank][1])


@pytest.mark.parametrize("solo", [None, 1], ids=["labels-on-owners", "labels-over-the-shards"])
def test_skips_nonfinite_rows_as_one_process(solo):
    """nonfinite='skip': rows with NaN or inf are left out of every label (with a mask too); an
    init row among them raises on every rank."""
    x = clustered(600, 12, seed=4)
    x[[2, 299, 300, 590], [0, 5, 11, 3]] = [np.nan, np.inf, np.nan, -np.inf]
    rng = np.random.default_rng(1)
    labels = np.array(["a", "b", "c"])[rng.integers(0, 3, 600)]
    mask = rng.random(600) < 0.7
    kwargs = {"nonfinite": "skip"}
    want = hminsel.select_batched(x, 0.1, groups=labels, mask=mask, **kwargs)
    out = run_ranks(2, _select_groups, x, labels, mask, 0.1, None, kwargs, solo)
    for rank, (status, got) in out.items():
        assert status == "ok", got
        assert got[0] == np.asarray(want.indices).tolist() and got[1] == np.asarray(want.ptr).tolist()
    out = run_ranks(2, _select_groups, x, labels, None, 0.1, None, dict(kwargs, init=[5, 300]), solo)
    assert all(s == "error" and "init row 300 holds NaN or inf" in r for s, r in out.values()), out


def test_command_line_groups_on_launched_ranks(tmp_path):
    import json
    from test_distributed import launch
    x = clustered(600, 8, seed=2)
    labels = np.array(["x", "y", "z"])[np.random.default_rng(0).integers(0, 3, 600)]
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "g.npy", labels)
    cmd = ["select", tmp_path / "x.npy", "--fraction", "0.05", "--groups", tmp_path / "g.npy",
           "--start-row", "random", "--out", tmp_path / "o.npy"]
    code, out, err = launch(2, cmd)
    assert code == 0, err
    want = hminsel.select_batched(x, 0.05, groups=labels, start="random", seed=0)
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), want.indices)
    m = json.loads((tmp_path / "o.json").read_text())
    assert [g["label"] for g in m["groups"]["labels"]] == ["x", "y", "z"] and m["k"] == len(want.indices)
    for g, (rows, radii) in zip(m["groups"]["labels"], want):  # rows, picks and h_min as one process's
        assert (g["rows"], g["picks"]) == (int((labels == g["label"]).sum()), len(rows))
        assert g["h_min"] == pytest.approx(float(np.min(radii[1:])))
    assert m["h_min"] == pytest.approx(hminsel.hmin(x[np.sort(want.indices)]).value)
    from hminsel.cli.groups import random_rows_by_label  # the draw of one process's hminsel select
    rows = random_rows_by_label(want, labels, 0)
    assert m["random_baseline"]["size"] == len(rows) == len(want.indices)
    assert m["random_baseline"]["h_min"] == pytest.approx(hminsel.hmin(x[rows]).value, rel=1e-6)
    for g in m["groups"]["labels"]:  # each label's random rows' h_min, as one process's manifest
        part = rows[labels[rows] == g["label"]]
        assert g["random_h_min"] == pytest.approx(hminsel.hmin(x[part]).value, rel=1e-6)
    assert m["algorithm"] == "per label (distributed select_batched)" and m["start_index"] == want.indices[0]
    assert "3 labels" in out
    np.save(tmp_path / "i.npy", np.array([400, 3]))  # --init: labels holding them continue from them
    more = cmd[:-2] + ["--init", tmp_path / "i.npy", "--out", tmp_path / "m.npy"]
    code, _, err = launch(2, more)
    assert code == 0, err
    want = hminsel.select_batched(x, 0.05, groups=labels, start="random", seed=0, init=[400, 3])
    np.testing.assert_array_equal(np.load(tmp_path / "m.npy"), want.indices)
    (tmp_path / "r.jsonl").write_text("".join(json.dumps({"src": str(v)}) + "\n" for v in labels))
    code, _, err = launch(2, ["select", tmp_path / "x.npy", "--k", 5, "--data", tmp_path / "r.jsonl",
                              "--groups-column", "src", "--out", tmp_path / "r.npy"])  # labels only
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "r.npy"),
                                  hminsel.select_batched(x, 5, groups=labels).indices)
    assert json.loads((tmp_path / "r.json").read_text())["data"] == str(tmp_path / "r.jsonl")



def test_command_line_groups_refusals(tmp_path, capsys):
    from hminsel.distributed.__main__ import main
    common = ["select", str(tmp_path / "x.npy"), "--k", "3", "--groups", str(tmp_path / "g.npy")]
    for bad, said in ((["--start-row", "5"], "pass --start-row random (one draw a label"),
                      (["--init", str(tmp_path / "i.npy"), "--start-row", "2"], "or drop --start-row"),
                      (["--init", str(tmp_path / "i.npy"), "--start-row", "0"],
                       "drop --start-row (got --start-row 0)"),
                      (["--start-row", "first"], "--start-row must be a row index or 'random'"),
                      (["--out", str(tmp_path / "g.npy")], "--groups and --out must be different files")):
        out = [] if "--out" in bad else ["--out", str(tmp_path / "p.npy")]
        with pytest.raises(SystemExit) as exc:
            main(common + out + bad)
        assert exc.value.code == 2 and said in capsys.readouterr().err


def _tiny_label(rank, size, solo, protocol="rounds"):
    owners.SOLO_BYTES = solo
    x = np.random.default_rng(0).standard_normal((40, 4)).astype(np.float32)
    x[20:] *= 1e-20  # label 1's values: too small for float32 sums, but k = 1 adds none
    labels = np.repeat([0, 1], 20)
    res = hdist.select_batched(_split(x, size, [20, 20])[rank], 1, groups=_split(labels, size, [20, 20])[rank],
                               protocol=protocol)
    return np.asarray(res.indices).tolist()


@pytest.mark.parametrize("solo", [64 << 20, 0], ids=["owner", "over-shards"])
def test_a_label_of_tiny_values_and_one_pick_as_one_process(solo):
    """The values-too-small check of a label counts only where it makes two picks or more, as
    in one process (which returns [0, 20] here)."""
    out = run_ranks(2, _tiny_label, solo)
    assert all(r == ("ok", [0, 20]) for r in out.values()), out


def test_a_bad_protocol_raises_with_small_labels_only():
    out = run_ranks(2, _tiny_label, 64 << 20, "bogus")
    for status, got in out.values():
        assert status == "error" and "protocol must be 'rounds' or 'steps'" in got, got
