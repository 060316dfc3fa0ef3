"""The catch-up of deferred refreshes (algorithms/catchup.py): a fold against every pick, cheaper."""
from __future__ import annotations

import numpy as np
import pytest

import hminsel
from hminsel import backends
from hminsel.algorithms import catchup, deferred, lazy, prune
from hminsel.backends.base import MARK
from conftest import backend_params, clustered

pytestmark = pytest.mark.parametrize("name", backend_params(["cpu", "numpy"]))


def _state(be, x, picks, stamps):
    """Each row's value and nearest pick against picks[:stamp] (exact owners); the picks' values."""
    ub = np.empty(len(x), be.acc_dtype(x.dtype))
    owner = np.zeros(len(x), np.int64)
    for s in np.unique(stamps):
        rows = np.flatnonzero(stamps == s)
        value, index = be.block_min(x, x[picks[:s]], rows=rows)
        ub[rows], owner[rows] = value, index
    values = [np.inf] + [float(be.block_min(x[p:p + 1], x[picks[:t]])[0][0])
                         for t, p in enumerate(picks) if t]
    ub[picks] = MARK
    return ub, owner, values


def _fps(x, k):
    return hminsel.select(x, k, algorithm="streaming").indices.tolist()


def _folded(be, x, ub, owner, picks, s, rows):
    """The plain fold the catch-up replaces: every row against every pick since s."""
    value, index = be.block_min(x, x[picks[s:]], rows=rows)
    ub, owner = ub.copy(), owner.copy()
    better = value < ub[rows]
    ub[rows[better]] = value[better]
    owner[rows[better]] = s + index[better]
    return ub, owner


@pytest.mark.parametrize("metric_l2_dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_fold_is_the_plain_fold(name, metric_l2_dtype):
    """Clustered rows, more clusters than early picks: the guesses find each row's own cluster's
    pick, the test settles most rows, and the values are the plain fold's, bit for bit."""
    be = backends.get(name)
    x = clustered(4000, 160, clusters=300, spread=0.05, seed=1, dtype=metric_l2_dtype)
    picks = _fps(x, 250)
    s = 30
    rows = np.setdiff1d(np.arange(4000), picks)
    ub, owner, values = _state(be, x, picks, np.full(4000, s))
    want_ub, _ = _folded(be, x, ub, owner, picks, s, rows)
    c = catchup.Catchup(160, prune.slack(160, be.acc_dtype(x.dtype)), values)
    work = c.fold(be, x, ub, owner, be.pick_rows(x), picks, s, rows)
    assert work is not None and c.calls == 1 and c.settled > 3 * len(rows) // 4
    assert work < len(rows) * (len(picks) - s)  # less (row, pick) work than the plain fold
    np.testing.assert_array_equal(ub, want_ub)
    xr, xp = x[rows].astype(np.float64), x[picks].astype(np.float64)  # (rows, picks) in GEMM form
    d2 = (xr ** 2).sum(1)[:, None] + (xp ** 2).sum(1)[None, :] - 2.0 * xr @ xp.T
    np.testing.assert_allclose(d2[np.arange(len(rows)), owner[rows]], d2.min(1), rtol=1e-5)


def test_rows_in_chunks_fold_alike(name, monkeypatch):
    """A refresh of more rows than ``CHUNK_BYTES`` holds goes in chunks: the same values."""
    monkeypatch.setattr(catchup, "CHUNK_BYTES", 160 * 4 * 700)  # 700 float32 rows a chunk
    be = backends.get(name)
    x = clustered(4000, 160, clusters=300, spread=0.05, seed=1)
    picks = _fps(x, 250)
    rows = np.setdiff1d(np.arange(4000), picks)
    ub, owner, values = _state(be, x, picks, np.full(4000, 30))
    want_ub, _ = _folded(be, x, ub, owner, picks, 30, rows)
    c = catchup.Catchup(160, prune.slack(160, np.float32), values)
    assert c.fold(be, x, ub, owner, be.pick_rows(x), picks, 30, rows) is not None
    np.testing.assert_array_equal(ub, want_ub)
    step = 700 * 4 // be.acc_dtype(x.dtype).itemsize
    assert c.calls == -(-len(rows) // step) and c.settled > 3 * len(rows) // 4


def test_a_sample_is_tried_until_rows_settle(name, monkeypatch):
    """Before the test has settled a row, a call of many rows tries a sample first (it settles
    here, so the call runs); once rows have settled, calls run without one."""
    be = backends.get(name)
    x = clustered(4000, 160, clusters=300, spread=0.05, seed=1)
    picks = _fps(x, 250)
    rows = np.setdiff1d(np.arange(4000), picks)
    ub, owner, values = _state(be, x, picks, np.full(4000, 30))
    c = catchup.Catchup(160, prune.slack(160, np.float32), values)
    probed = []
    probe = c._probe
    monkeypatch.setattr(c, "_probe", lambda *a: probed.append(probe(*a)) or probed[-1])
    assert c.fold(be, x, ub, owner, be.pick_rows(x), picks, 30, rows[:2000]) is not None
    assert probed == [True] and c.settled > 0
    assert c.fold(be, x, ub, owner, be.pick_rows(x), picks, 30, rows[2000:]) is not None
    assert probed == [True] and c.calls == 2


def test_unclustered_rows_fold_plainly_and_back_off(name):
    """Gaussian rows: the test settles few rows; the fold is still exact, and the next calls
    skip the catch-up (None: the caller folds). A call of many rows finds it out on a sample."""
    be = backends.get(name)
    x = np.random.default_rng(2).standard_normal((2000, 64)).astype(np.float32)
    picks = _fps(x, 200)
    rows = np.setdiff1d(np.arange(2000), picks)
    ub, owner, values = _state(be, x, picks, np.full(2000, 20))
    want_ub, _ = _folded(be, x, ub, owner, picks, 20, rows)
    c = catchup.Catchup(64, prune.slack(64, np.float32), values)
    picked = be.pick_rows(x)
    few = rows[:4 * catchup.PROBE - 1]  # too few rows for a probe: the catch-up runs, and fails
    before = ub.copy()
    assert c.fold(be, x, ub, owner, picked, picks, 20, few) is not None
    np.testing.assert_array_equal(ub[few], want_ub[few])
    assert c.calls == 1 and c.settled < len(few) // 2 and c.lists.backoff == 2
    assert c.fold(be, x, ub, owner, picked, picks, 20, few) is None  # skipped once
    ub[few] = before[few]
    # Many rows: a sample settles too few, so the caller folds them (nothing written here)
    c = catchup.Catchup(64, prune.slack(64, np.float32), values)
    assert c.fold(be, x, ub, owner, picked, picks, 20, rows) is None
    np.testing.assert_array_equal(ub, before)
    assert c.calls == 0 and c.lists.backoff == 2
    assert c.fold(be, x, ub, owner, picked, picks, 20, rows) is None  # skipped once
    assert c.fold(be, x, ub, owner, picked, picks, 20, rows) is None and c.lists.backoff == 4  # probed


def test_few_picks_fold_plainly(name):
    """Fewer than MIN_PICKS picks since the stamp: None (the caller folds); MIN_PICKS: a catch-up."""
    be = backends.get(name)
    x = clustered(600, 16, clusters=10, seed=3)
    picks = _fps(x, 100)
    rows = np.setdiff1d(np.arange(600), picks)[:100]
    ub, owner, values = _state(be, x, picks, np.full(600, 1))
    c = catchup.Catchup(16, prune.slack(16, np.float32), values)
    picked = be.pick_rows(x)
    assert c.fold(be, x, ub, owner, picked, picks, 100 - catchup.MIN_PICKS + 1, rows) is None
    assert c.calls == 0
    assert c.fold(be, x, ub, owner, picked, picks, 100 - catchup.MIN_PICKS, rows) is not None
    assert c.calls == 1


def test_gap_is_the_least_pick_value(name):
    """Any two picks are at least the later one's value apart: the least value bounds them all."""
    be = backends.get(name)
    x = clustered(800, 24, clusters=30, seed=4)
    picks = _fps(x, 60)
    _, _, values = _state(be, x, picks, np.full(800, 1))
    c = catchup.Catchup(24, 1e-3, values)
    d2 = ((x[picks, None, :].astype(np.float64) - x[picks][None]) ** 2).sum(-1)
    for now in (2, 10, 60):
        near = d2[:now, :now] + np.diag(np.full(now, np.inf))
        assert c._gap2(now) <= near.min() and c._gap2(now) >= 0.99 * near.min() * (1 - 1e-3)


@pytest.mark.parametrize("after", ["tiled", "untiled", "eager"])
@pytest.mark.parametrize("metric,dtype", [("l2", np.float32), ("cosine", np.float32),
                                          ("cosine", np.float16), ("l2", np.float16)],
                         ids=["l2-f32", "cosine-f32", "cosine-f16", "l2-f16"])
def test_lazy_runs_with_the_catchup_keep_the_streaming_picks(name, monkeypatch, metric, dtype, after):
    """Deferred from the first tiled round, every refresh through the catch-up (MIN_PICKS 1):
    each row's owner valid on every call (the test needs it), rows settled, the streaming picks.
    ``untiled``: the rounds after the switch run the streaming head loop (which tracks no owners:
    its head rows are left stale). ``eager``: back to eager, pruned folds after the first deferred
    round, every row caught up from its stamp (``exact_all``): the folds need exact owners."""
    monkeypatch.setattr(lazy, "TILED_RATE", 0.0)
    exact = []  # rows checked after exact_all
    if after == "eager":
        monkeypatch.setattr(deferred.Stale, "eager_pays", lambda self, *a: True)
        caught = deferred.Stale.exact_all

        def exact_all(self, be, x, ub, owner, picks, report=None):
            rows = caught(self, be, x, ub, owner, picks, report)
            live = np.flatnonzero(ub != MARK)
            po = np.asarray(self.picked.rows_of(picks, owner[live]), np.float64)
            d2 = ((np.asarray(be.take(x, live), np.float64) - po) ** 2).sum(1)
            np.testing.assert_allclose(d2, ub[live], rtol=1e-4, atol=1e-9)
            exact.append(len(live))
            return rows
        monkeypatch.setattr(deferred.Stale, "exact_all", exact_all)
    streamed = []  # streaming head loops run while deferred
    if after == "untiled":
        made, loop = deferred.Stale.__init__, lazy.chunked.head_greedy

        def untile(self, *args):
            monkeypatch.setattr(lazy, "TILED_RATE", 2.0)  # no later round tiles
            monkeypatch.setattr(lazy.chunked, "head_greedy", lambda *a: streamed.append(1) or loop(*a))
            made(self, *args)
        monkeypatch.setattr(deferred.Stale, "__init__", untile)
    monkeypatch.setattr(prune, "DENSE_FRACTION", -1.0)
    monkeypatch.setattr(lazy, "M_START", 128)
    monkeypatch.setattr(lazy, "M_MIN", 128)
    monkeypatch.setattr(catchup, "MIN_PICKS", 1)
    monkeypatch.setattr(catchup, "MIN_DIM", 1)
    monkeypatch.setattr(catchup, "SETTLED", 0.0)  # never back off
    settled, checked = [], []
    orig = catchup.Catchup.fold

    def fold(self, be, x, ub, owner, picked, picks, s, rows):
        live = rows[ub[rows] != MARK]
        xr = np.asarray(be.take(x, live), np.float64)
        po = np.asarray(picked.rows_of(picks, owner[live]), np.float64)
        np.testing.assert_allclose(((xr - po) ** 2).sum(1), ub[live], rtol=1e-4, atol=1e-9)
        checked.append(len(live))
        work = orig(self, be, x, ub, owner, picked, picks, s, rows)
        settled.append(self.settled)
        return work
    monkeypatch.setattr(catchup.Catchup, "fold", fold)
    x = clustered(6000, 32, clusters=800, spread=0.05, seed=6, dtype=dtype)
    a = hminsel.select(x, 1500, metric=metric, backend=name, algorithm="streaming")
    b = hminsel.select(x, 1500, metric=metric, backend=name, algorithm="lazy")
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.radii, b.radii)
    if name == "cpu":  # the numpy backend has no tiled head, so its runs never defer
        assert sum(checked) > 1000 and settled[-1] > 0
        assert bool(streamed) is (after == "untiled") and bool(exact) is (after == "eager")


def test_stale_refresh_takes_the_catchup(name, monkeypatch):
    """``Stale.refresh`` hands its calls to the catch-up; the same values as the plain fold."""
    be = backends.get(name)
    x = clustered(3000, 160, clusters=120, spread=0.05, seed=1)
    picks = _fps(x, 110)
    ub, owner, values = _state(be, x, picks, np.full(3000, 30))
    c = catchup.Catchup(160, prune.slack(160, np.float32), values)
    stale = deferred.Stale(3000, 30, c)
    rows = np.setdiff1d(np.arange(3000), picks)
    want_ub, _ = _folded(be, x, ub, owner, picks, 30, rows)
    assert stale.refresh(be, x, ub, owner, picks, rows) == len(rows)
    np.testing.assert_array_equal(ub, want_ub)
    assert c.calls == 1 and stale.pairs == len(rows) * 80  # counted as the plain fold (eager_pays)


def test_exact_all_catches_up_from_the_stamps(name, monkeypatch):
    """With a catch-up (owners exact), ``exact_all`` folds each row from its own stamp: the values
    of a fold against every pick, owners that attain them, every stamp now."""
    monkeypatch.setattr(catchup, "MIN_PICKS", 8)
    be = backends.get(name)
    x = clustered(3000, 160, clusters=300, spread=0.05, seed=8)
    picks = _fps(x, 200)
    stamps = np.random.default_rng(9).choice([1, 20, 60, 150, 200], 3000)
    ub, owner, values = _state(be, x, picks, stamps)
    live = np.flatnonzero(ub != MARK)
    want, _ = _folded(be, x, ub, owner, picks, 0, live)
    stale = deferred.Stale(3000, 0, catchup.Catchup(160, prune.slack(160, np.float32), values))
    stale.stamp[:] = stamps
    rows = stale.exact_all(be, x, ub, owner, picks)
    assert rows == (stamps[live] < 200).sum() and stale.rows == 0 and (stale.stamp == 200).all()
    np.testing.assert_array_equal(ub, want)
    xr, xp = x[live].astype(np.float64), x[picks].astype(np.float64)
    d2 = (xr ** 2).sum(1)[:, None] + (xp ** 2).sum(1)[None, :] - 2.0 * xr @ xp.T
    np.testing.assert_allclose(d2[np.arange(len(live)), owner[live]], d2.min(1), rtol=1e-5)
    assert stale.catchup.settled > 0
