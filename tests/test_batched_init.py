"""select_batched(init=): a problem that holds init rows is select(..., init=) on it alone."""
from __future__ import annotations

import numpy as np
import pytest

import hminsel
from hminsel import _batched_host

from conftest import clustered


def alone(x, rows, k, init, mask, backend, metric="l2", nonfinite="raise", start=0):
    """hminsel.select on one problem's rows (global ``rows``), as global rows and radii."""
    local = [int(np.flatnonzero(rows == i)[0]) for i in init if i in rows]
    sel = hminsel.select(x[rows], k, init=local or None, start=0 if local else start,
                         mask=None if mask is None else mask[rows], backend=backend, metric=metric,
                         nonfinite=nonfinite)
    return rows[sel.indices], sel.radii


def check(x, res, problems, counts, init, mask, backend, starts=None, **kwargs):
    out = np.asarray(res.ptr)
    assert out.tolist() == np.concatenate([[0], np.cumsum(counts)]).tolist()
    for p, rows in enumerate(problems):
        if counts[p] == 0:
            continue
        want, radii = alone(x, rows, int(counts[p]), init, mask, backend,
                            start=0 if starts is None else starts[p], **kwargs)
        assert np.asarray(res.indices)[out[p]:out[p + 1]].tolist() == want.tolist(), f"problem {p}"
        np.testing.assert_array_equal(np.asarray(res.radii)[out[p]:out[p + 1]], radii)


@pytest.mark.parametrize("large_work", [10**9, 300], ids=["kernel", "whole-machine"])
@pytest.mark.parametrize("d", [3, 12], ids=["bucket", "fps"])
def test_ptr_problems_continue_from_their_init_rows(backend, monkeypatch, d, large_work):
    monkeypatch.setattr(_batched_host, "LARGE_WORK", large_work)
    sizes = [40, 1, 63, 0, 90, 25]
    ptr = np.concatenate([[0], np.cumsum(sizes)])
    x = clustered(int(ptr[-1]), d, seed=5)
    init = np.array([150, 3, 120, 41, 2])  # problems 4, 0, 2, 1; 5 has none
    counts = [10, 1, 20, 0, 30, 7]
    starts = [0, 0, 5, 0, 9, 24]  # used by the problems without init rows only
    res = hminsel.select_batched(x, counts, ptr=ptr, init=init, start=starts, backend=backend)
    assert res.indices[:2].tolist() == [3, 2]  # init rows first, in the order given
    problems = [np.arange(ptr[p], ptr[p + 1]) for p in range(len(sizes))]
    check(x, res, problems, counts, init, None, backend, starts)
    assert res.problem(5)[0][0] == ptr[5] + 24  # no init rows: its start


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_groups_mask_and_random_starts(backend, metric):
    rng = np.random.default_rng(3)
    x = clustered(400, 8, seed=2)
    labels = rng.choice(["b", "a", "c", "d"], 400)
    mask = rng.random(400) < 0.6
    init = np.flatnonzero((labels == "a") & ~mask)[:2].tolist() + np.flatnonzero(labels == "c")[:3].tolist()
    res = hminsel.select_batched(x, 0.1, groups=labels, mask=mask, init=init, start="random", seed=4,
                                 metric=metric, backend=backend)
    assert res.labels.tolist() == ["a", "b", "c", "d"]
    # a ratio counts the allowed rows and, where a problem holds init rows outside the mask, those too
    kept = [int(mask[labels == g].sum()) for g in res.labels]
    outside = [2, 0, int((~mask[init[2:]]).sum()), 0]
    counts = [int(np.ceil(0.1 * (a + b) - 1e-9)) for a, b in zip(kept, outside)]
    assert np.diff(np.asarray(res.ptr)).tolist() == counts
    problems = [np.flatnonzero(labels == g) for g in res.labels]
    starts = np.random.default_rng(4).integers(0, kept)  # one draw a problem, warm ones too
    for p in (1, 3):  # the problems without init rows start where select_batched drew
        first = np.asarray(res.indices)[np.asarray(res.ptr)[p]]
        assert first == problems[p][mask[problems[p]]][starts[p]]
    out = np.asarray(res.ptr)
    for p in (0, 2):
        want, radii = alone(x, problems[p], counts[p], init, mask, backend, metric)
        assert np.asarray(res.indices)[out[p]:out[p + 1]].tolist() == want.tolist()
        np.testing.assert_array_equal(np.asarray(res.radii)[out[p]:out[p + 1]], radii)


def test_nonfinite_skip_and_empty_init(backend):
    x = clustered(120, 5, seed=1)
    x[[7, 60]] = np.nan
    ptr = [0, 50, 120]
    res = hminsel.select_batched(x, 9, ptr=ptr, init=[61, 8], nonfinite="skip", backend=backend)
    problems = [np.arange(0, 50), np.arange(50, 120)]
    check(x, res, problems, [9, 9], [61, 8], None, backend, nonfinite="skip")
    y = clustered(50, 5, seed=2)
    plain = hminsel.select_batched(y, 4, ptr=[0, 20, 50], backend=backend)
    empty = hminsel.select_batched(y, 4, ptr=[0, 20, 50], init=np.empty(0, np.int64), backend=backend)
    assert np.array_equal(plain.indices, empty.indices)


def test_k_equals_the_init_rows():
    x = clustered(60, 4, seed=0)
    res = hminsel.select_batched(x, [3, 2], ptr=[0, 30, 60], init=[40, 5, 31, 2, 29])
    assert res.indices.tolist() == [5, 2, 29, 40, 31]
    assert np.isinf(res.radii[[0, 3]]).all()


def test_labels_a_dict_leaves_out_keep_their_init_rows(backend):
    """A quota dict that names some labels: the others get no new pick, but a label holding
    init rows keeps them (k counts them: it is not asked for 0 below them)."""
    x = clustered(300, 4, seed=5)
    y = np.repeat([0, 1, 2], 100)
    res = hminsel.select_batched(x, {0: 5, 1: 5}, groups=y, init=[5, 205, 210], backend=backend)
    assert res.ptr.tolist() == [0, 5, 10, 12] and res.indices[10:].tolist() == [205, 210]
    res = hminsel.select_batched(x, {0: 0.05}, groups=y, init=[205], backend=backend)
    assert res.ptr.tolist() == [0, 5, 5, 6]
    with pytest.raises(ValueError, match="label 2 has 2 init rows but k asks for 1"):
        hminsel.select_batched(x, {0: 5, 2: 1}, groups=y, init=[205, 210], backend=backend)


def test_input_not_modified():
    x = clustered(80, 6, seed=2)
    init = np.array([70, 3])
    x0, init0 = x.copy(), init.copy()
    hminsel.select_batched(x, 5, ptr=[0, 40, 80], init=init, metric="cosine")
    assert np.array_equal(x, x0) and np.array_equal(init, init0)


@pytest.mark.parametrize("kwargs, match", [
    (dict(init=[1, 1]), r"init has repeated rows: \[1\]"),
    (dict(init=[0, 100]), r"init entries must be rows of x in \[0, 99\]; got 100"),
    (dict(init=[-1]), r"in \[0, 99\]; got -1"),
    (dict(init=[[1, 2]]), r"init must be a 1-D array of row indices of x; got int64 of shape \(1, 2\)"),
    (dict(init=[0.5]), r"init must be a 1-D array of row indices of x; got float64"),
    (dict(init=[1, 2, 3]), r"problem 0 has 3 init rows but k asks for 2 picks"),
    (dict(init=[60], k=[2, 0]), r"problem 1 has 1 init rows but k asks for 0 picks"),
    (dict(init=[5], groups=np.repeat(["u", "v"], 50)), r"label 'u' has 1 init rows but k asks for"),
])
def test_errors(kwargs, match):
    x = clustered(100, 3, seed=0)
    k = kwargs.pop("k", 2 if "groups" not in kwargs else {"u": 0, "v": 3})
    ptr = None if "groups" in kwargs else [0, 50, 100]
    with pytest.raises(ValueError, match=match):
        hminsel.select_batched(x, k, ptr=ptr, **kwargs)


def test_init_row_with_nan_under_skip():
    x = clustered(40, 3, seed=0)
    x[9] = np.inf
    with pytest.raises(ValueError, match="init row 9 holds NaN or inf"):
        hminsel.select_batched(x, 3, ptr=[0, 20, 40], init=[9], nonfinite="skip")


def test_hmin_counts_init_rows_closer_than_later_picks(backend):
    """With init rows closer to each other than any later pick, radii rise after them and
    h_min is the smallest radius (radii[-1] only without init)."""
    x = clustered(60, 3, seed=1)
    x[1] = x[0] + 1e-3
    sel = hminsel.select(x, 5, init=[0, 1], backend=backend)
    assert sel.radii[2] > sel.radii[1] and sel.hmin == sel.radii[1]
    assert sel.hmin == pytest.approx(hminsel.hmin(x[sel.indices]).value, rel=1e-5)


def test_too_large_k_names_init_rows_outside_the_mask():
    x = np.arange(10, dtype=np.float32)[:, None]
    mask = np.arange(10) >= 8
    with pytest.raises(ValueError, match="which has 2 rows mask allows and 1 init rows outside them"):
        hminsel.select_batched(x, [4], ptr=[0, 10], mask=mask, init=[1])
