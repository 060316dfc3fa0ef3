"""Property tests (Hypothesis): every algorithm and backend gives the oracle's exact indices on
small integer points, where every distance is exact in float32 and ties abound (duplicates,
equal distances), so only the lowest-index rule can make them agree; a mask equals selecting
from the allowed rows; batched problems equal their selections alone."""
from __future__ import annotations

import numpy as np
import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import given, settings, strategies as st  # noqa: E402
from hypothesis.extra import numpy as hnp  # noqa: E402

import hminsel  # noqa: E402
from hminsel import backends  # noqa: E402

pytestmark = pytest.mark.skipif(backends.why_not("cpu") is not None, reason="cpu backend not built")
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True)


@st.composite
def integer_points(draw, max_rows=120, max_dim=6):
    """(x, k, start): rows of small integers (exact squared distances, many ties)."""
    n = draw(st.integers(1, max_rows))
    d = draw(st.integers(1, max_dim))
    x = draw(hnp.arrays(np.float32, (n, d), elements=st.integers(-4, 4).map(float)))
    k = draw(st.integers(1, n))
    start = draw(st.integers(0, n - 1))
    return x, k, start


def labels_and_mask(data, n: int, top: int):
    """(n,) int labels in 0 .. top and an (n,) bool mask, drawn."""
    return (data.draw(hnp.arrays(np.int64, n, elements=st.integers(0, top))),
            data.draw(hnp.arrays(np.bool_, n)))


@SETTINGS
@given(integer_points())
def test_every_algorithm_gives_the_oracle_indices(case):
    x, k, start = case
    want = hminsel.select(x.astype(np.float64), k, start=start, backend="numpy",
                          algorithm="streaming")
    for algorithm in ("streaming", "lazy", "bucket", "auto"):
        got = hminsel.select(x, k, start=start, backend="cpu", algorithm=algorithm)
        assert got.indices.tolist() == want.indices.tolist(), algorithm
        np.testing.assert_array_equal(got.radii, want.radii)


@SETTINGS
@given(integer_points(), st.data())
def test_mask_is_selecting_from_the_allowed_rows(case, data):
    x, k, _ = case
    mask = data.draw(hnp.arrays(np.bool_, len(x)))
    rows = np.flatnonzero(mask)
    if len(rows) == 0:
        with pytest.raises(ValueError, match="mask allows no row"):
            hminsel.select(x, 1, mask=mask)
        return
    k = min(k, len(rows))
    got = hminsel.select(x, k, mask=mask, backend="cpu")
    alone = hminsel.select(x[rows], k, backend="cpu")
    assert got.indices.tolist() == rows[alone.indices].tolist()
    np.testing.assert_array_equal(got.radii, alone.radii)


@SETTINGS
@given(integer_points(max_rows=200, max_dim=4), st.data())
def test_batched_groups_and_mask_equal_each_label_alone(case, data):
    x, _, _ = case
    labels, mask = labels_and_mask(data, len(x), 3)
    ratio = data.draw(st.floats(0.05, 1.0))
    res = hminsel.select_batched(x, ratio, groups=labels, mask=mask, backend="cpu")
    for p, label in enumerate(res.labels.tolist()):
        rows = np.flatnonzero((labels == label) & mask)
        got = res.indices[res.ptr[p]:res.ptr[p + 1]]
        assert len(got) == (np.ceil(ratio * len(rows) - 1e-9) if len(rows) else 0)
        if len(got):
            alone = hminsel.select(x[rows], len(got), backend="cpu")
            assert got.tolist() == rows[alone.indices].tolist()


@SETTINGS
@given(integer_points(max_rows=150, max_dim=4), st.data())
def test_batched_init_equals_select_with_init_on_each_label(case, data):
    x, _, _ = case
    labels, mask = labels_and_mask(data, len(x), 2)
    init = data.draw(st.lists(st.integers(0, len(x) - 1), max_size=6, unique=True))
    quota = {}
    for lab in np.unique(labels).tolist():  # from its init rows to all it may hold
        held = [i for i in init if labels[i] == lab]
        most = int(((labels == lab) & mask).sum()) + sum(not mask[i] for i in held)
        quota[lab] = data.draw(st.integers(len(held), most))
    res = hminsel.select_batched(x, quota, groups=labels, mask=mask, init=init, backend="cpu")
    for p, label in enumerate(res.labels.tolist()):
        rows = np.flatnonzero(labels == label)
        got = res.indices[res.ptr[p]:res.ptr[p + 1]]
        if not len(got):
            continue
        local = [int(np.flatnonzero(rows == i)[0]) for i in init if labels[i] == label]
        alone = hminsel.select(x[rows], len(got), init=local or None, mask=mask[rows], backend="cpu")
        assert got.tolist() == rows[alone.indices].tolist()
