"""select_batched: each problem exactly hminsel.select alone, on every CPU backend."""
from __future__ import annotations

import sys

import numpy as np
import pytest

import hminsel
import hminsel.backends
from hminsel import _batched_host, _problems

from conftest import clustered

SIZES = [1, 7, 63, 2, 100, 1, 33]  # ragged, with 1-point problems


def ragged(dtype, d=3, seed=0, sizes=SIZES):
    ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    return clustered(int(ptr[-1]), d, seed=seed, dtype=dtype), ptr


def check_alone(x, res, ptr, counts, starts, backend, metric="l2"):
    """Each problem's picks and radii equal hminsel.select on that problem alone."""
    indices, radii, out = np.asarray(res.indices), np.asarray(res.radii), np.asarray(res.ptr)
    assert out.tolist() == np.concatenate([[0], np.cumsum(counts)]).tolist()
    for p in range(len(ptr) - 1):
        if counts[p] == 0:
            continue
        alone = hminsel.select(x[ptr[p]:ptr[p + 1]], int(counts[p]), start=int(starts[p]),
                               backend=backend, metric=metric)
        got = indices[out[p]:out[p + 1]]
        assert got.tolist() == (alone.indices + ptr[p]).tolist(), f"problem {p}"
        assert np.array_equal(radii[out[p]:out[p + 1]], alone.radii), f"problem {p} radii"


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16], ids=["f32", "f64", "f16"])
@pytest.mark.parametrize("d", [3, 17], ids=["d3", "d17"])
def test_identical_to_select(backend, dtype, d):
    x, ptr = ragged(dtype, d)
    sizes = np.diff(ptr)
    counts = np.minimum(sizes, [1, 7, 20, 2, 50, 1, 5])  # includes k = n_p
    starts = np.array([0, 3, 62, 1, 50, 0, 32])
    res = hminsel.select_batched(x, counts, ptr=ptr, start=starts, backend=backend)
    assert res.backend == backend
    check_alone(x, res, ptr, counts, starts, backend)


def test_cosine(backend):
    x, ptr = ragged(np.float32, 8)
    res = hminsel.select_batched(x, 0.5, ptr=ptr, metric="cosine", backend=backend)
    check_alone(x, res, ptr, np.diff(res.ptr), np.zeros(len(ptr) - 1, int), backend, "cosine")


def test_batch_vector_equals_ptr(backend):
    x, ptr = ragged(np.float32)
    batch = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
    a = hminsel.select_batched(x, 1, ptr=ptr, backend=backend)
    b = hminsel.select_batched(x, 1, batch=batch, backend=backend)
    assert np.array_equal(a.indices, b.indices) and a.indices.tolist() == ptr[:-1].tolist()


def test_ratio_and_single_problem(backend):
    x, ptr = ragged(np.float64)
    res = hminsel.select_batched(x, 0.3, ptr=ptr, backend=backend)
    assert np.diff(res.ptr).tolist() == [max(1, int(np.ceil(0.3 * n - 1e-9))) for n in np.diff(ptr)]
    one = hminsel.select_batched(x, 10, backend=backend)
    assert one.indices.tolist() == hminsel.select(x, 10, backend=backend).indices.tolist()


def test_ties_lowest_index(backend):
    # two problems of a unit square's corners, twice: every step ties
    sq = np.array([[0, 0], [1, 1], [0, 1], [1, 0]], np.float32)
    x = np.concatenate([sq, sq, sq])
    res = hminsel.select_batched(x, 4, ptr=[0, 4, 8, 12], backend=backend)
    assert res.indices.tolist() == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]
    dup = np.zeros((6, 2), np.float32)  # all equal: picks in index order
    assert hminsel.select_batched(dup, 3, ptr=[0, 3, 6], backend=backend).indices.tolist() == [0, 1, 2, 3, 4, 5]


def test_random_start_reproducible(backend):
    x, ptr = ragged(np.float32)
    a = hminsel.select_batched(x, 1, ptr=ptr, start="random", seed=5, backend=backend)
    b = hminsel.select_batched(x, 1, ptr=ptr, start="random", seed=5, backend=backend)
    assert np.array_equal(a.indices, b.indices)
    inside = (a.indices >= ptr[:-1]) & (a.indices < ptr[1:])
    assert inside.all()


def test_groups_quotas(backend):
    rng = np.random.default_rng(3)
    x = clustered(200, 5, seed=3)
    groups = rng.choice([7, -2, 40], size=200)
    res = hminsel.select_batched(x, {7: 5, 40: 3}, groups=groups, backend=backend)
    assert res.labels.tolist() == [-2, 7, 40] and np.diff(res.ptr).tolist() == [0, 5, 3]
    for p, lab in enumerate(res.labels.tolist()):
        rows = np.flatnonzero(groups == lab)
        got = res.indices[res.ptr[p]:res.ptr[p + 1]]
        assert (groups[got] == lab).all()
        if len(got):
            alone = hminsel.select(x[rows], len(got), backend=backend)
            assert got.tolist() == rows[alone.indices].tolist()
    ratio = hminsel.select_batched(x, 0.1, groups=groups, backend=backend)
    assert np.diff(ratio.ptr).tolist() == [int(np.ceil(0.1 * (groups == g).sum())) for g in [-2, 7, 40]]


def test_groups_as_objects():
    """A pandas column of strings (object dtype) or of Python ints: the labels they hold."""
    x = clustered(60, 4, seed=5)
    names = np.array(["b", "a", "c"])[np.arange(60) % 3]
    want = hminsel.select_batched(x, {"a": 4, "c": 2}, groups=names)
    got = hminsel.select_batched(x, {"a": 4, "c": 2}, groups=names.astype(object))
    assert got.labels.tolist() == ["a", "b", "c"] and got.indices.tolist() == want.indices.tolist()
    ints = hminsel.select_batched(x, 3, groups=(np.arange(60) % 3).astype(object))
    assert ints.labels.dtype == np.int64 and ints.labels.tolist() == [0, 1, 2]
    none = hminsel.select_batched(x[:0], 1, groups=np.array([], object))  # a rank of no rows
    assert none.indices.tolist() == [] and none.labels.dtype == np.int64
    for bad, match in (([None, 1] * 30, r"got None \(NoneType\)"), (["a", 1] * 30, "both strings and integers"),
                       ([1.5, 1] * 30, r"got 1.5 \(float\)")):
        with pytest.raises(ValueError, match=match):
            hminsel.select_batched(x, 1, groups=np.array(bad, object))


def check_masked(x, res, ptr, mask, starts, backend, metric="l2", nonfinite="raise"):
    """Each problem's picks and radii equal hminsel.select(x[lo:hi], mask=mask[lo:hi])."""
    indices, radii, out = np.asarray(res.indices), np.asarray(res.radii), np.asarray(res.ptr)
    for p in range(len(ptr) - 1):
        got = indices[out[p]:out[p + 1]]
        if len(got) == 0:
            continue
        lo, hi = ptr[p], ptr[p + 1]
        alone = hminsel.select(x[lo:hi], len(got), start=int(starts[p]), mask=mask[lo:hi],
                               backend=backend, metric=metric, nonfinite=nonfinite)
        assert got.tolist() == (alone.indices + lo).tolist(), f"problem {p}"
        assert np.array_equal(radii[out[p]:out[p + 1]], alone.radii), f"problem {p} radii"


@pytest.mark.parametrize("large_work", [10**9, 1000], ids=["kernel", "whole-machine"])
@pytest.mark.parametrize("d", [3, 12], ids=["bucket", "fps"])
def test_mask_equals_select_with_mask(backend, monkeypatch, d, large_work):
    """mask=: problem p picks as select(x[lo:hi], mask=mask[lo:hi]); a ratio counts the allowed
    rows, the default start moves to a problem's first allowed row, a problem the mask empties
    gets no pick; the same through batch= and through the whole-machine path."""
    monkeypatch.setattr(_batched_host, "LARGE_WORK", large_work)
    x, ptr = ragged(np.float32, d=d, sizes=[120, 7, 0, 63, 2, 150, 33])
    mask = np.random.default_rng(4).random(len(x)) < 0.6
    mask[ptr[0]] = False  # problem 0's row 0 left out: its start moves
    mask[ptr[4]:ptr[5]] = False  # a problem the mask empties
    res = hminsel.select_batched(x, 0.2, ptr=ptr, mask=mask, backend=backend)
    kept = np.add.reduceat(mask, ptr[:-1])[np.diff(ptr) > 0]
    assert np.diff(res.ptr)[np.diff(ptr) > 0].tolist() == np.where(kept > 0, np.ceil(0.2 * kept), 0).tolist()
    assert mask[np.asarray(res.indices)].all()
    check_masked(x, res, ptr, mask, np.zeros(len(ptr) - 1, int), backend)
    batch = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
    same = hminsel.select_batched(x, 0.2, batch=batch, mask=mask, backend=backend)
    assert np.array_equal(np.asarray(same.indices), np.asarray(res.indices))

    starts = np.array([int(np.flatnonzero(mask[lo:hi])[-1]) if mask[lo:hi].any() else 0
                       for lo, hi in zip(ptr[:-1], ptr[1:])])  # each problem's last allowed row
    counts = np.minimum([5, 3, 0, 4, 0, 9, 2], np.add.reduceat(mask, ptr[:-1]) * (np.diff(ptr) > 0))
    res = hminsel.select_batched(x, counts, ptr=ptr, mask=mask, start=starts, metric="cosine",
                                 backend=backend)
    assert np.diff(res.ptr).tolist() == counts.tolist()
    check_masked(x, res, ptr, mask, starts, backend, "cosine")


@pytest.mark.parametrize("how", ["ptr", "groups"])
def test_a_mask_that_keeps_every_row_is_no_mask(backend, monkeypatch, how):
    """An all-True mask (or nonfinite="skip" on finite rows) runs the problems as they lie
    (no cut, so no gathered copy of the rows): the picks, radii and random starts of no mask."""
    x, ptr = ragged(np.float32, d=3, sizes=[120, 7, 0, 63, 2])
    where = dict(ptr=ptr) if how == "ptr" else dict(groups=np.arange(len(x)) % 3)
    kw = dict(start="random", seed=3, backend=backend, **where)
    want = hminsel.select_batched(x, 0.3, **kw)
    monkeypatch.setattr(_problems, "_cut", None)  # the rows are not cut to the kept ones
    for extra in (dict(mask=np.ones(len(x), bool)), dict(nonfinite="skip")):
        got = hminsel.select_batched(x, 0.3, **kw, **extra)
        np.testing.assert_array_equal(got.indices, want.indices)
        np.testing.assert_array_equal(got.radii, want.radii)


@pytest.mark.skipif(hminsel.backends.why_not("cpu") is not None, reason="the C++ backend did not build")
@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_small_rows_gathered_in_chunks_as_in_one(metric, monkeypatch):
    """The small problems' rows, gathered and prepared a few at a time (float16: widened; cosine:
    unit rows), give the picks and radii of one gather, with labels and a mask."""
    x = clustered(900, 12, seed=5, dtype=np.float16)
    labels = np.random.default_rng(1).integers(0, 7, len(x))
    mask = np.arange(len(x)) % 5 != 0
    want = hminsel.select_batched(x, 0.1, groups=labels, mask=mask, metric=metric, backend="cpu")
    monkeypatch.setattr(_batched_host, "GATHER_ROWS", 7)
    got = hminsel.select_batched(x, 0.1, groups=labels, mask=mask, metric=metric, backend="cpu")
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.radii, want.radii)


def test_mask_with_groups_and_random_start(backend):
    """groups= and mask= together: per-label quotas among the allowed rows; start='random'
    draws an allowed row of each problem, reproducibly."""
    rng = np.random.default_rng(5)
    x = clustered(300, 6, seed=5)
    groups = rng.choice([3, 9, 1], size=300)
    mask = rng.random(300) < 0.5
    res = hminsel.select_batched(x, {3: 6, 9: 4}, groups=groups, mask=mask, backend=backend)
    assert res.labels.tolist() == [1, 3, 9] and np.diff(res.ptr).tolist() == [0, 6, 4]
    for p, lab in enumerate(res.labels.tolist()):
        rows = np.flatnonzero(groups == lab)
        got = res.indices[res.ptr[p]:res.ptr[p + 1]]
        if len(got):
            alone = hminsel.select(x[rows], len(got), mask=mask[rows], backend=backend)
            assert got.tolist() == rows[alone.indices].tolist()
    a = hminsel.select_batched(x, 5, groups=groups, mask=mask, start="random", seed=2, backend=backend)
    b = hminsel.select_batched(x, 5, groups=groups, mask=mask, start="random", seed=2, backend=backend)
    assert np.array_equal(a.indices, b.indices) and mask[a.indices].all()


@pytest.mark.parametrize("large_work", [10**9, 200], ids=["kernel", "whole-machine"])
def test_lazy_sized_problem(monkeypatch, large_work):
    """A problem where select runs the exact lazy algorithm (n >= 256, k >= 16): the
    batched kernel (or the whole-machine path, when the problem counts as large)
    gives the same indices and radii."""
    monkeypatch.setattr(_batched_host, "LARGE_WORK", large_work)
    x, ptr = ragged(np.float32, d=5, sizes=[300, 5, 1])
    counts = np.array([40, 3, 1])
    res = hminsel.select_batched(x, counts, ptr=ptr)
    check_alone(x, res, ptr, counts, np.zeros(3, int), "auto")


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("d", [5, 12], ids=["bucket", "fps"])
def test_large_problems_between_small_ones(monkeypatch, d, metric):
    """Large problems first, between and last: the C++ call reads only the small ones' rows,
    their picks come back as rows of x, with their own starts."""
    monkeypatch.setattr(_batched_host, "LARGE_WORK", 1000)
    prepared = []
    real = _batched_host._inputs.prepare
    monkeypatch.setattr(_batched_host._inputs, "prepare",
                        lambda a, *r, **kw: prepared.append(len(a)) or real(a, *r, **kw))
    x, ptr = ragged(np.float32, d=d, sizes=[260, 40, 300, 7, 250, 3, 9])
    counts = np.array([20, 11, 30, 7, 0, 2, 4])
    starts = np.array([5, 3, 17, 6, 0, 2, 8])
    res = hminsel.select_batched(x, counts, ptr=ptr, start=starts, metric=metric)
    zero_check = [len(x)] if metric == "cosine" else []  # norms of every row, no copy
    assert prepared == zero_check + [40 + 7 + 3 + 9, 260, 300]  # small rows, then each large one (k > 0)
    check_alone(x, res, ptr, counts, starts, "auto", metric)


def test_non_contiguous_view(backend):
    x, ptr = ragged(np.float64, d=6)
    view = x[:, ::2]
    res = hminsel.select_batched(view, 1.0, ptr=ptr, backend=backend)
    check_alone(np.ascontiguousarray(view), res, ptr, np.diff(ptr), np.zeros(len(ptr) - 1, int), backend)


def test_torch_in_torch_out():
    torch = pytest.importorskip("torch")
    x, ptr = ragged(np.float32)
    res = hminsel.select_batched(torch.from_numpy(x), 1, ptr=torch.from_numpy(ptr))
    assert isinstance(res.indices, torch.Tensor) and res.indices.dtype == torch.int64
    assert isinstance(res.ptr, torch.Tensor) and isinstance(res.radii, torch.Tensor)


def test_input_not_modified():
    x, ptr = ragged(np.float32)
    before, ptr0 = x.copy(), ptr.copy()
    hminsel.select_batched(x, 1, ptr=ptr, metric="cosine")
    assert np.array_equal(x, before) and np.array_equal(ptr, ptr0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(k=1, ptr=[1, 5, 10]), "start at 0"),
    (dict(k=1, ptr=[0, 6, 5, 10]), "non-decreasing"),
    (dict(k=1, ptr=[0, 5, 9]), "end at N = 10"),
    (dict(k=1, batch=[0, 0, 1, 1, 0, 1, 1, 1, 2, 2]), "must be sorted"),
    (dict(k=1, batch=[0, 0, 1]), "one entry per row"),
    (dict(k=6, ptr=[0, 5, 10]), "larger than problem 0, which has 5 rows"),
    (dict(k=1, ptr=[0, 5, 5, 10]), "problem 1 is empty"),
    (dict(k=[1, 2], ptr=[0, 5, 8, 10]), "one count per problem"),
    (dict(k=1.5, ptr=[0, 10]), r"\[0, 1\]"),
    (dict(k=[1, 0.5], ptr=[0, 5, 10]), r"one count \(int\) or one ratio \(float\) per problem, not both"),
    (dict(k=[np.array(1), 0.5], ptr=[0, 5, 10]), r"per problem, not both"),
    (dict(k=[True, 1], ptr=[0, 5, 10]), r"got a bool in"),
    (dict(k=1, ptr=[0, 10], batch=[0] * 10), "not both"),
    (dict(k=1, ptr=[0, 4, 10], start=[0, 6]), "start of problem 1"),
    (dict(k={1: 2}, groups=[0] * 10), "not in groups"),
    (dict(k={0: 11}, groups=[0] * 10), "larger than label 0"),
    (dict(k={0: "5"}, groups=[0] * 10), "label 0 has '5'"),
    (dict(k={0: 2, 1: 0.5}, groups=[0] * 5 + [1] * 5), "counts .ints. or to ratios .floats., not both"),
    (dict(k={0: 1.5}, groups=[0] * 10), r"ratios in k must be in \[0, 1\]; label 0 has 1.5"),
    (dict(k=[0.5, -0.1], ptr=[0, 5, 10]), r"ratios in k must be in \[0, 1\]; problem 1 has -0.1"),
    (dict(k=[0.5, 0.5, 0.5], ptr=[0, 5, 10]), r"one ratio per problem \(2\); got 3"),
    (dict(k=2, start=1.0), r"start must be an int, 'random' or one int per problem; got 1.0"),
    (dict(k=2, start=None), r"start must be an int, 'random' or one int per problem; got None"),
    (dict(k=2, start="Random", seed=1), r"start must be an int, 'random' or one int per problem; got 'Random'"),
    (dict(k={0: "3"}, groups=[0] * 10), "maps each label to a count of picks"),
    (dict(k={0: True}, groups=[0] * 10), "label 0 has True"),
    (dict(k={0: 1}), "needs groups"),
    (dict(k=1, ptr=[0, 10], seed=3), r"seed=3 only applies to start='random'"),
    (dict(k=1, ptr=[0, 10], start="random", seed=-2), "seed must be a non-negative integer"),
    (dict(k=1, ptr=[0, 5, 10], mask=[True] * 9), r"shape \(10,\)"),
    (dict(k=1, ptr=[0, 5, 10], mask=np.arange(10)), "np.isin"),
    (dict(k=1, ptr=[0, 5, 10], mask=np.arange(10) >= 5), "problem 0 has 0 rows mask allows"),
    (dict(k=5, ptr=[0, 5, 10], mask=np.arange(10) != 7), "problem 1, which has 4 rows mask allows"),
    (dict(k=1, ptr=[0, 5, 10], mask=np.arange(10) != 7, start=2),
     r"start of problem 1 \(local row 2\) is not one of its rows mask allows"),
    (dict(k=1, ptr=[0, 5, 5, 10], mask=np.arange(10) != 7), "problem 1 is empty"),
    (dict(k=1, groups=[4] * 5 + [9] * 5, start=[0, 7]), r"start of label 9 must be a local row in \[0, 4\]"),
    (dict(k=1, groups=[4] * 5 + [9] * 5, start=[0, 2], mask=np.arange(10) != 7),
     r"start of label 9 \(local row 2\)"),
])
def test_errors(kwargs, match):
    x = np.random.default_rng(0).random((10, 2))
    with pytest.raises((ValueError, TypeError), match=match):
        hminsel.select_batched(x, **kwargs)


def test_float_labels_that_are_whole_numbers_are_integers():
    """A pandas column of ids that once held NaN comes as floats: whole ones are read as ints;
    a missing label (NaN) or a fraction raises, naming its row."""
    x = np.random.default_rng(0).random((6, 2))
    res = hminsel.select_batched(x, 1, groups=np.array([2.0, 2.0, 7.0, 7.0, 2.0, 7.0]))
    assert np.asarray(res.labels).tolist() == [2, 7] and np.asarray(res.indices).tolist() == [0, 2]
    with pytest.raises(ValueError, match=r"groups has no label \(NaN\) at row 3 \(1 rows in all\)"):
        hminsel.select_batched(x, 1, groups=np.array([2.0, 2.0, 7.0, np.nan, 2.0, 7.0]))
    with pytest.raises(ValueError, match=r"whole-number floats read as integers\); got 0.5 at row 0"):
        hminsel.select_batched(x, 1, groups=np.full(6, 0.5))


def test_zero_picks_as_an_int_or_a_ratio():
    """k = 0 and k = 0.0 alike pick nothing (as a 0 or 0.0 per problem does)."""
    x = np.random.default_rng(0).random((10, 2))
    for k in (0, 0.0, [0, 0], [0.0, 0.0]):
        res = hminsel.select_batched(x, k, ptr=[0, 5, 10])
        assert len(res.indices) == 0 and np.asarray(res.ptr).tolist() == [0, 0, 0], k


def test_ratios_per_problem_and_per_label(backend):
    """k as one ratio per problem (torch_cluster's per-example ratio), or a dict of ratios per
    label: each problem's ratio of its rows, rounded up; 0.0 (or a label the dict does not
    name) picks none. 0-d arrays and tensors are taken as scalars; an init of one row as [row]."""
    x = clustered(300, 3, seed=4)
    ptr, labels = [0, 100, 300], np.repeat(["a", "b", "c"], 100)
    res = hminsel.select_batched(x, [0.02, 0.015], ptr=ptr, backend=backend)
    assert res.ptr.tolist() == [0, 2, 5]
    each = [hminsel.select_batched(x[:100], 2, backend=backend).indices,
            100 + hminsel.select_batched(x[100:], 3, backend=backend).indices]
    assert res.indices.tolist() == np.concatenate(each).tolist()
    assert hminsel.select_batched(x, np.array([0.05, 0.0]), ptr=ptr, backend=backend).ptr.tolist() \
        == [0, 5, 5]
    by_label = hminsel.select_batched(x, {"a": 0.1, "c": 0.05}, groups=labels, backend=backend)
    assert by_label.ptr.tolist() == [0, 10, 10, 15]
    scalar = hminsel.select_batched(x, np.array(3), ptr=ptr, start=np.array(1), backend=backend)
    assert scalar.indices.tolist() == hminsel.select_batched(x, 3, ptr=ptr, start=1,
                                                             backend=backend).indices.tolist()
    torch = sys.modules.get("torch")
    if torch is not None:  # torch_cluster's per-example ratio tensor, a 0-d tensor k
        got = hminsel.select_batched(torch.from_numpy(x), torch.tensor([0.02, 0.015]),
                                     ptr=torch.tensor(ptr), backend=backend)
        assert got.indices.tolist() == res.indices.tolist()
        assert hminsel.select(torch.from_numpy(x), torch.tensor(3), backend=backend
                              ).indices.tolist() == hminsel.select(x, 3, backend=backend).indices.tolist()
        half = torch.tensor([0.5, 0.25], dtype=torch.bfloat16)  # exact in bfloat16
        assert hminsel.select_batched(x, half, ptr=ptr, backend=backend).ptr.tolist() == [0, 50, 100]
    one = hminsel.select_batched(x, 3, ptr=ptr, init=np.int64(5), backend=backend)
    assert one.indices.tolist() == hminsel.select_batched(x, 3, ptr=ptr, init=[5],
                                                          backend=backend).indices.tolist()


def test_result_per_problem_and_cloud_layouts_named():
    """Iterating gives each problem's (indices, radii); hmins each problem's h_min (inf below
    two picks). A (B, N, d) array or a list of clouds raise, saying how to pass them."""
    x = clustered(300, 3, seed=3)
    res = hminsel.select_batched(x, [4, 1, 0], ptr=[0, 100, 200, 300])
    parts = list(res)
    assert [len(i) for i, _ in parts] == [4, 1, 0]
    np.testing.assert_array_equal(parts[0][0], res.indices[:4])
    alone = hminsel.select(x[:100], 4)
    assert res.hmins[0] == alone.hmin and np.isinf(res.hmins[1:]).all()
    with pytest.raises(ValueError, match=r"got shape \(3, 100, 3\)\. For 3 clouds of 100 points: "
                                         r"x\.reshape\(-1, 3\) with ptr = arange\(3 \+ 1\) \* 100"):
        hminsel.select_batched(x.reshape(3, 100, 3), 4)
    with pytest.raises(ValueError, match="got a list of 2 arrays. Concatenate them"):
        hminsel.select_batched([x[:100], x[100:150]], 4)


def test_select_takes_0d_k_and_start_and_an_empty_init(backend):
    x = clustered(200, 4, seed=1)
    want = hminsel.select(x, 6, start=7, backend=backend).indices.tolist()
    assert hminsel.select(x, np.array(6), start=np.array(7), backend=backend).indices.tolist() == want
    assert hminsel.select(x, 6, start=7, init=[], backend=backend).indices.tolist() == want
    assert hminsel.select(x, 6, start=7, init=np.zeros(0, np.int64), backend=backend
                          ).indices.tolist() == want
    with pytest.raises(TypeError, match="k must be an int count"):
        hminsel.select(x, np.array(True), backend=backend)
    # a float32 ratio of 0.1 (0.100000001) takes 10 % of 10 rows as written: one, not two
    for ratio in (np.float32(0.1), np.array(0.1, np.float32), np.float16(0.1)):
        assert len(hminsel.select(x[:10], ratio, backend=backend).indices) == 1
    for k in (np.array([0.1, 0.1], np.float32), {0: np.float32(0.1), 1: np.float32(0.1)}):
        how = dict(ptr=[0, 10, 20]) if isinstance(k, np.ndarray) else dict(groups=[0] * 10 + [1] * 10)
        assert hminsel.select_batched(x[:20], k, backend=backend, **how).ptr.tolist() == [0, 1, 2]


def test_nonfinite_raises():
    x = np.ones((4, 2)); x[2, 1] = np.nan
    with pytest.raises(ValueError, match=r"row 2.*nonfinite='skip'"):
        hminsel.select_batched(x, 1, ptr=[0, 2, 4])
    with pytest.raises(ValueError, match="nonfinite must be 'raise' or 'skip'"):
        hminsel.select_batched(x, 1, ptr=[0, 2, 4], nonfinite="drop")


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_nonfinite_skip_is_a_mask_of_the_finite_rows(backend, metric):
    """nonfinite='skip' leaves rows with NaN or inf out, as a mask of the finite rows does
    (with a mask too: the rows both keep); errors then name the finite rows."""
    x, ptr = ragged(np.float32, d=4, sizes=[40, 9, 3, 60])
    bad = np.zeros(len(x), bool)
    bad[[0, 5, 41, 49, 50, 51]] = True  # problem 0's row 0, all of problem 2
    x[bad, 1] = np.nan
    x[41, 3] = np.inf
    res = hminsel.select_batched(x, 0.25, ptr=ptr, nonfinite="skip", metric=metric, backend=backend)
    want = hminsel.select_batched(x, 0.25, ptr=ptr, mask=~bad, nonfinite="skip", metric=metric,
                                  backend=backend)
    assert np.array_equal(res.indices, want.indices) and np.array_equal(res.radii, want.radii)
    assert np.diff(res.ptr).tolist() == [10, 2, 0, 15] and not bad[res.indices].any()
    check_masked(x, res, ptr, ~bad, np.zeros(4, int), backend, metric, "skip")
    mask = np.arange(len(x)) % 2 == 0
    both = hminsel.select_batched(x, 0.25, ptr=ptr, mask=mask, nonfinite="skip", backend=backend)
    assert (mask & ~bad)[both.indices].all()
    with pytest.raises(ValueError, match="problem 2 has 0 finite rows but k asks for 1"):
        hminsel.select_batched(x, 1, ptr=ptr, nonfinite="skip", backend=backend)
    with pytest.raises(ValueError, match="problem 3, which has 30 finite rows mask allows"):
        hminsel.select_batched(x, [1, 1, 0, 31], ptr=ptr, mask=mask, nonfinite="skip")
    with pytest.raises(ValueError, match=r"start of problem 0 \(local row 5\) is not one of its finite rows"):
        hminsel.select_batched(x, 1, ptr=[0, 40, 112], start=5, nonfinite="skip")


@pytest.mark.parametrize("row", [105, 200], ids=["small-problem", "large-problem"])
@pytest.mark.parametrize("counts", [[3, 2, 4], [3, 2, 0]], ids=["k", "k0"])
def test_cosine_zero_row_named_as_a_row_of_x(monkeypatch, row, counts):
    """Large problems go through select, small ones through one prepared block: a zero row is
    still named by its row of x, and raises wherever it lies (k = 0 too), as with no large problem."""
    monkeypatch.setattr(_batched_host, "LARGE_WORK", 1000)
    x = np.random.default_rng(0).random((330, 12)).astype(np.float32)
    x[row] = 0
    with pytest.raises(ValueError, match=f"row {row} of x"):
        hminsel.select_batched(x, np.array(counts), ptr=[0, 100, 110, 330], metric="cosine")


@pytest.mark.parametrize("large_work", [10**9, 100], ids=["kernel", "whole-machine"])
def test_groups_cosine_zero_row_named_as_a_row_of_x(monkeypatch, large_work):
    """With groups (rows taken by label) a zero row is still named by its row of x."""
    monkeypatch.setattr(_batched_host, "LARGE_WORK", large_work)
    x = np.random.default_rng(1).random((200, 6))
    x[137] = 0
    groups = np.random.default_rng(2).integers(0, 3, 200)
    with pytest.raises(ValueError, match="row 137 of x"):
        hminsel.select_batched(x, 1, groups=groups, metric="cosine")


def test_mask_zero_starts_move_and_no_rows():
    """A start of 0 moves to a problem's first allowed row, given once or per problem (as
    select's default does); an x without rows takes a mask too."""
    x = clustered(20, 3, seed=8)
    mask = np.ones(20, bool)
    mask[[0, 10]] = False
    once = hminsel.select_batched(x, 3, ptr=[0, 10, 20], mask=mask)
    each = hminsel.select_batched(x, 3, ptr=[0, 10, 20], mask=mask, start=[0, 0])
    assert np.array_equal(once.indices, each.indices) and once.indices[[0, 3]].tolist() == [1, 11]
    empty = hminsel.select_batched(np.empty((0, 3)), 0.5, ptr=[0, 0, 0], mask=np.zeros(0, bool))
    assert empty.ptr.tolist() == [0, 0, 0] and len(empty.indices) == 0


def test_no_problem_on_every_backend(backend):
    """groups on an x without rows, or ptr=[0]: no problem, no pick, on every backend."""
    for kwargs in (dict(groups=np.zeros(0, np.int64)), dict(ptr=[0])):
        res = hminsel.select_batched(np.empty((0, 3)), 0.5, backend=backend, **kwargs)
        assert len(res.indices) == 0 and res.ptr.tolist() == [0]


@pytest.mark.parametrize("how", ["ptr", "groups"])
def test_a_problem_of_too_small_values_raises(backend, how):
    """Values of one problem too small for float32 sums (the others normal, so x passes its
    own check) raise, naming the problem, instead of coming back as silent ties; all-zero and
    duplicate problems (distances exactly 0) still select."""
    x = clustered(300, 3, seed=2).astype(np.float32)
    x[100:200] *= np.float32(1e-20)
    ptr, labels = [0, 100, 200, 300], np.repeat(["a", "b", "c"], 100)
    kwargs = {"ptr": ptr} if how == "ptr" else {"groups": labels}
    named = "problem 1" if how == "ptr" else "label 'b'"
    with pytest.raises(ValueError, match=f"{named}'s values are all below .* underflow float32 "
                                         f"sums .*; scale {named} up"):
        hminsel.select_batched(x, 5, backend=backend, **kwargs)
    for fill in (0.0, 1.0):
        x[100:200] = fill
        res = hminsel.select_batched(x, 5, backend=backend, **kwargs)
        assert np.asarray(res.radii)[6:10].tolist() == [0.0] * 4
    x = clustered(300, 3, seed=2, dtype=np.float64)
    x[100:200] *= 1e-20  # float64 sums hold them
    assert np.asarray(hminsel.select_batched(x, 5, backend=backend, **kwargs).radii)[6] > 0
    # Labels in any order, a mask, several suspects (zeros, duplicates, tiny): the tiny one named
    y = clustered(400, 3, seed=3).astype(np.float32)
    names = np.random.default_rng(0).permutation(np.repeat([5, 6, 7, 8], 100))
    y[names == 6], y[names == 7] = 0.0, 2.0
    y[names == 8] *= np.float32(1e-20)
    mask = np.random.default_rng(1).random(400) < 0.8
    with pytest.raises(ValueError, match="label 8's values are all below"):
        hminsel.select_batched(y, 4, groups=names, mask=mask, backend=backend)
