"""The pruning lists through pivots (algorithms/pivots.py): every pair that can matter, far fewer computed."""
from __future__ import annotations

import numpy as np
import pytest

import hminsel
from hminsel import _inputs, backends
from hminsel.algorithms import pivots, prune
from hminsel.backends.base import MARK
from conftest import backend_params, clustered

pytestmark = pytest.mark.parametrize("name", backend_params(["cpu", "numpy"]))


def _round(be, x, k, base):
    """The state after ``base`` picks of FPS (values exact, owners their nearest pick) and the
    next ``k - base`` picks as a round's centres."""
    picks = hminsel.select(x, k, algorithm="streaming").indices.tolist()
    value, owner = be.block_min(x, x[picks[:base]])
    ub = value.astype(be.acc_dtype(x.dtype))
    ub[picks[:base]] = MARK
    ub[picks[base:]] = MARK
    return picks, ub, owner


def _small(monkeypatch, pivots_first=16):
    monkeypatch.setattr(pivots, "MIN_BASE", 1)
    monkeypatch.setattr(pivots, "PIVOTS", pivots_first)


def _check_lists(be, x, picks, base, radius2, margin, lists):
    """Every (a, c) within 2 sqrt(radius2[a]) (exactly, float64, on the rows the kernels read) is
    listed with a lower bound on |a - c|^2; each list ascending; about as many as prune_lists'."""
    ptr, cidx, cval = lists
    xa = be.take(x, picks[:base]).astype(np.float64)
    xc = be.take(x, picks[base:]).astype(np.float64)
    exact = ((xa[:, None, :] - xc[None, :, :]) ** 2).sum(-1)
    need = exact <= 4.0 * radius2[:base, None]
    listed = np.zeros_like(need)
    for a in range(base):
        cs = cidx[ptr[a]:ptr[a + 1]]
        assert np.all(np.diff(cs) > 0), "a list is not in ascending centre order"
        listed[a, cs] = True
        assert np.all(cval[ptr[a]:ptr[a + 1]] <= exact[a, cs]), "a listed value is not a lower bound"
    assert np.all(listed[need]), "a pair that can matter is missing"
    _, full, _ = prune.prune_lists(lambda lo, hi: be.take(x, picks[lo:hi]), base, radius2,
                                   be.take(x, picks[base:]), margin)
    assert listed.sum() <= len(full)  # a tighter lower bound than the GEMM form's
    return int(listed.sum()), int(need.sum())


def _assert_refresh_is_the_fold(be, x, ub, owner, picks, base, lists, margin):
    """The refresh through ``lists`` gives the unpruned fold's values and owners, bit for bit."""
    centres = be.take(x, picks[base:])
    got_ub, got_owner = ub.copy(), owner.copy()
    be.refresh(x, got_ub, got_owner, centres, base, *lists, margin)
    want_ub, want_owner = ub.copy(), owner.copy()
    be.fold_all(x, want_ub, want_owner, centres, base)
    np.testing.assert_array_equal(got_ub, want_ub)
    np.testing.assert_array_equal(got_owner, want_owner)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_lists_hold_every_pair_that_can_matter(name, monkeypatch, dtype):
    """Clustered rows, a pivot for each cluster: the groups leave a few pairs a centre, and
    those hold every pair within reach; the refresh through them is the fold against every
    centre, bit for bit."""
    _small(monkeypatch, 64)
    be = backends.get(name)
    x = clustered(3000, 48, clusters=60, spread=0.05, seed=3, dtype=dtype)
    base, k = 400, 520
    picks, ub, owner = _round(be, x, k, base)
    margin = prune.slack(48, be.acc_dtype(x.dtype))
    radius2 = be.cell_radius(ub, owner, base)
    groups = pivots.Pivots(x, picks)
    lists = groups.lists(be, base, radius2, be.take(x, picks[base:]), margin)
    assert lists is not None and groups.rounds == 1 and groups.fallbacks == 0
    listed, needed = _check_lists(be, x, picks, base, radius2, margin, lists)
    assert listed < base * (k - base) // 10  # the groups kept the lists short
    assert len(groups.group) == k  # the centres joined groups for the next rounds
    _assert_refresh_is_the_fold(be, x, ub, owner, picks, base, lists, margin)


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_duplicates_zero_radii_and_small_blocks(name, monkeypatch, metric):
    """Rows repeated (cells of radius 0, picks on top of each other), float16 rows read widened
    (and, for cosine, divided by their norms where they lie), blocks of a few rows and pair
    chunks of a few pairs: still every pair that can matter, and the fold's values."""
    _small(monkeypatch, 32)
    monkeypatch.setattr(pivots, "BLOCK", 32 * 5)  # 5 rows a block
    monkeypatch.setattr(pivots, "PAIR_CHUNK", 7)
    be = backends.get(name)
    raw = clustered(1500, 24, clusters=30, spread=0.05, seed=9, dtype=np.float16)
    raw = np.concatenate([raw, raw[:200], raw[:50]])
    x = _inputs.prepare(raw, metric, in_place=name == "cpu")
    base, k = 300, 420
    picks = hminsel.select(raw, k, metric=metric, backend=name, algorithm="streaming").indices.tolist()
    value, owner = be.block_min(x, be.take(x, picks[:base]))
    ub = value.astype(np.float32)
    ub[picks] = MARK
    radius2 = be.cell_radius(ub, owner, base)
    assert (radius2 == 0).any()
    margin = prune.slack(24, np.float32)
    groups = pivots.Pivots(x, picks)
    lists = groups.lists(be, base, radius2, be.take(x, picks[base:]), margin)
    assert lists is not None
    _check_lists(be, x, picks, base, radius2, margin, lists)
    _assert_refresh_is_the_fold(be, x, ub, owner, picks, base, lists, margin)


def test_picks_of_skipped_rounds_join_groups_later(name, monkeypatch):
    """A round that never reached ``lists`` leaves its picks without a group; the next call
    groups them before its test."""
    _small(monkeypatch, 16)
    be = backends.get(name)
    x = clustered(2500, 16, clusters=20, spread=0.05, seed=10)
    picks, ub, owner = _round(be, x, 460, 400)
    margin = prune.slack(16, np.float32)
    groups = pivots.Pivots(x, picks)
    radius2 = be.cell_radius(ub, owner, 400)
    groups.lists(be, 300, radius2[:300], be.take(x, picks[300:330]), margin)
    assert len(groups.group) == 330  # picks 330 .. 399: a skipped round's
    groups.policy = prune.ListPolicy()  # whether or not the first call fell back
    lists = groups.lists(be, 400, radius2, be.take(x, picks[400:]), margin)
    assert len(groups.group) == 460
    if lists is not None:
        _check_lists(be, x, picks, 400, radius2, margin, lists)
    xp = x[picks].astype(np.float64)
    assert np.all(groups.reach >= np.sqrt(((xp - xp[groups.group]) ** 2).sum(1)))


def test_reach_bounds_the_distance_to_the_pivot(name, monkeypatch):
    """Each pick's reach (pivots, earlier picks and the round's centres alike), whether or not the
    round's lists came from the groups."""
    _small(monkeypatch, 8)
    be = backends.get(name)
    x = clustered(2000, 24, clusters=30, seed=4)
    picks, ub, owner = _round(be, x, 300, 250)
    groups = pivots.Pivots(x, picks)
    groups.lists(be, 250, be.cell_radius(ub, owner, 250), x[picks[250:]], prune.slack(24, np.float32))
    assert len(groups.group) == 300
    xp = x[picks].astype(np.float64)
    exact = np.sqrt(((xp - xp[groups.group]) ** 2).sum(1))
    assert np.all(groups.reach >= exact)
    np.testing.assert_array_equal(groups.group[:8], np.arange(8))  # a pivot in its own group


def test_unclustered_rows_fall_back_and_back_off(name, monkeypatch):
    """Gaussian rows: every group is near every centre; the round takes prune_lists (None) and
    the next one skips the pivots."""
    _small(monkeypatch)
    be = backends.get(name)
    x = np.random.default_rng(5).standard_normal((1500, 32)).astype(np.float32)
    picks, ub, owner = _round(be, x, 400, 300)
    groups = pivots.Pivots(x, picks)
    radius2 = be.cell_radius(ub, owner, 300)
    margin = prune.slack(32, np.float32)
    assert groups.lists(be, 300, radius2, x[picks[300:]], margin) is None
    assert (groups.rounds, groups.fallbacks) == (1, 1)
    assert groups.lists(be, 300, radius2, x[picks[300:]], margin) is None
    assert groups.rounds == 1  # skipped: the ListPolicy's backoff


def test_groups_grow_and_are_made_again(name, monkeypatch):
    _small(monkeypatch, 4)
    monkeypatch.setattr(pivots, "BASE_PER_PIVOT", 2)
    be = backends.get(name)
    x = clustered(3000, 32, clusters=80, spread=0.05, seed=6)
    picks, ub, owner = _round(be, x, 560, 400)
    margin = prune.slack(32, np.float32)
    radius2 = be.cell_radius(ub, owner, 400)
    groups = pivots.Pivots(x, picks)
    counts = []
    for _ in range(3):
        lists = groups.lists(be, 400, radius2, x[picks[400:]], margin)
        counts.append(groups.count)
        groups.group, groups.reach = groups.group[:400], groups.reach[:400]  # the same round again
        if lists is not None:
            _check_lists(be, x, picks, 400, radius2, margin, lists)
    assert counts[0] == 4 and counts[-1] > 4  # 4 pivots for 80 clusters: the groups left many pairs


@pytest.mark.parametrize("metric,dtype", [("l2", np.float32), ("cosine", np.float32),
                                          ("l2", np.float64), ("cosine", np.float16)],
                         ids=["l2-f32", "cos-f32", "l2-f64", "cos-f16"])
def test_lazy_runs_with_pivots_keep_the_streaming_picks(name, monkeypatch, metric, dtype):
    monkeypatch.setattr(pivots, "MIN_BASE", 100)
    monkeypatch.setattr(pivots, "PIVOTS", 48)
    used = []
    lists = pivots.Pivots.lists

    def spy(self, *args):
        out = lists(self, *args)
        used.append(out is not None)
        return out
    monkeypatch.setattr(pivots.Pivots, "lists", spy)
    x = clustered(6000, 40, clusters=40, spread=0.05, seed=7, dtype=dtype)
    want = hminsel.select(x, 1500, metric=metric, backend=name, algorithm="streaming").indices
    got = hminsel.select(x, 1500, metric=metric, backend=name, algorithm="lazy").indices
    np.testing.assert_array_equal(got, want)
    assert any(used)


def test_pair_sqdist_is_the_direct_form(name):
    be = backends.get(name)
    rng = np.random.default_rng(8)
    for dtype in (np.float32, np.float64, np.float16):
        x = rng.standard_normal((300, 70)).astype(dtype)
        y = rng.standard_normal((40, 70)).astype(be.acc_dtype(dtype))
        rows, cols = rng.integers(0, 300, 1000), rng.integers(0, 40, 1000)
        got = be.pair_sqdist(x, rows, y, cols)
        assert got.dtype == be.acc_dtype(dtype)
        want = ((x[rows].astype(np.float64) - y[cols].astype(np.float64)) ** 2).sum(1)
        np.testing.assert_allclose(got, want, rtol=80 * np.finfo(got.dtype).eps)

