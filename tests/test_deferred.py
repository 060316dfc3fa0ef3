"""The deferred refresh (algorithms/deferred.py): heads exact on demand, the streaming sequence."""
from __future__ import annotations

import numpy as np
import pytest

import hminsel
from hminsel import backends
from hminsel.algorithms import deferred, lazy, prune
from hminsel.backends.base import MARK
from conftest import backend_params, clustered

pytestmark = pytest.mark.parametrize("name", backend_params(["cpu", "numpy"]))


@pytest.fixture
def stale_runs(monkeypatch):
    """Every round after the first tiled one defers (lists always 'dense'); counts the Stale made."""
    monkeypatch.setattr(lazy, "TILED_RATE", 0.0)
    monkeypatch.setattr(prune, "DENSE_FRACTION", -1.0)
    made = []
    orig = deferred.Stale.__init__

    def spy(self, *args):
        made.append(args)
        orig(self, *args)
    monkeypatch.setattr(deferred.Stale, "__init__", spy)
    return made


def _data(kind, n, d, dtype, seed):
    rng = np.random.default_rng(seed)
    if kind == "clustered":
        return clustered(n, d, clusters=8, seed=seed, dtype=dtype)
    if kind == "grid":  # exact ties and duplicate rows
        return rng.integers(0, 3, (n, d)).astype(dtype)
    return rng.standard_normal((n, d)).astype(dtype)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kind,n,d,frac", [("gaussian", 2000, 64, 0.5), ("clustered", 1500, 48, 0.6),
                                           ("grid", 1200, 32, 0.5), ("gaussian", 700, 33, 1.0)],
                         ids=str)
@pytest.mark.parametrize("pool", [deferred.POOL, 0], ids=["pool", "pool-m+1"])
def test_deferred_rounds_equal_streaming(name, stale_runs, kind, n, d, frac, dtype, metric, pool,
                                         monkeypatch):
    """Pool 0: the head's candidates are its M + 1 rows, taken again whenever a refresh lowers one."""
    monkeypatch.setattr(deferred, "POOL", pool)
    x = _data(kind, n, d, dtype, seed=n + d)
    k = int(n * frac)
    a = hminsel.select(x, k, metric=metric, backend=name, algorithm="streaming")
    b = hminsel.select(x, k, metric=metric, backend=name, algorithm="lazy")
    if name == "cpu" and b.stats.rounds > 2:  # round 2 is the first tiled one; a fold follows it
        assert stale_runs, "no round deferred its refresh"
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.radii, b.radii)


def test_streaming_tail_after_deferred_rounds(name, stale_runs, monkeypatch):
    monkeypatch.setattr(lazy, "PAY_UNITS", 10**12)  # no round pays: streaming after STREAM_PATIENCE
    monkeypatch.setattr(lazy, "STREAM_PATIENCE", 3)  # rounds 1, 2 (tiled), 3 (deferred)
    monkeypatch.setattr(lazy, "M_START", 128)  # small heads: the picks outlast three rounds
    monkeypatch.setattr(lazy, "M_MIN", 128)
    settled = []
    orig = deferred.Stale.settle
    monkeypatch.setattr(deferred.Stale, "settle", lambda self, *a: settled.append(orig(self, *a)))
    x = _data("gaussian", 1500, 40, np.float32, seed=3)
    a = hminsel.select(x, 700, backend=name, algorithm="streaming")
    b = hminsel.select(x, 700, backend=name, algorithm="lazy")
    if name == "cpu":
        assert stale_runs and settled
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.radii, b.radii)


def test_head_is_the_eager_head(name):
    """Stale bounds, refreshed on demand: the same head and tau as exact values everywhere."""
    be = backends.get(name)
    rng = np.random.default_rng(7)
    x = rng.standard_normal((900, 24)).astype(np.float32)
    picks = rng.permutation(900)[:60].tolist()
    exact = ((x[:, None, :].astype(np.float64) - x[picks][None]) ** 2).sum(-1)  # (900, 60)
    ub = np.empty(900, be.acc_dtype(x.dtype))
    stamp = rng.integers(1, 61, 900)  # each row folded against a prefix of the picks
    for i in range(900):
        value, _ = be.block_min(x[i:i + 1], x[picks[:stamp[i]]])
        ub[i] = value[0]
    ub[picks] = MARK
    stale = deferred.Stale(900, 60)
    stale.stamp[:] = stamp
    owner = np.zeros(900, np.int64)
    head, tau, tau_idx = stale.head(be, x, ub, owner, picks, 100)
    ref = np.full(900, np.inf)
    ref[:] = exact.min(1)
    ref[picks] = MARK
    want = np.lexsort((np.arange(900), -ref))[:101]
    np.testing.assert_array_equal(head, want[:100])
    assert tau_idx == want[100] and tau == pytest.approx(ref[want[100]], rel=1e-5)
    assert (stale.stamp[head] == 60).all() and stale.rows < 900 - 60  # not every row was read
    live = np.flatnonzero(ub != MARK)
    assert (ub[live] >= ref[live].astype(ub.dtype) * (1 - 1e-5)).all()  # still upper bounds


@pytest.mark.parametrize("pool", [deferred.POOL, 1, 0])
def test_head_pool_kept_across_rounds(name, pool, monkeypatch):
    default = pool == deferred.POOL
    """Rounds of picks with stale bounds: each head is the eager one, the pool taken again only when short."""
    monkeypatch.setattr(deferred, "POOL", pool)
    be = backends.get(name)
    rng = np.random.default_rng(11)
    n = 1500
    x = rng.standard_normal((n, 16)).astype(np.float32)
    picks = rng.permutation(n)[:40].tolist()
    stamp = rng.integers(1, 41, n)
    ub = np.empty(n, be.acc_dtype(x.dtype))
    owner = np.zeros(n, np.int64)
    for i in range(n):
        value, index = be.block_min(x[i:i + 1], x[picks[:stamp[i]]])
        ub[i], owner[i] = value[0], index[0]
    ub[picks] = MARK
    stale = deferred.Stale(n, 40)
    stale.stamp[:] = stamp
    for _ in range(6):
        head, tau, tau_idx = stale.head(be, x, ub, owner, picks, 64)
        ref = ((x[:, None, :].astype(np.float64) - x[picks][None]) ** 2).sum(-1).min(1)
        ref[picks] = MARK
        want = np.lexsort((np.arange(n), -ref))[:65]
        np.testing.assert_array_equal(head, want[:64])
        assert tau_idx == want[64] and tau == pytest.approx(ref[tau_idx], rel=1e-5)
        new = head[[0, 5, 9]].tolist()  # a round's picks: their rows marked, the rest left stale
        picks += new
        ub[new] = MARK
    assert stale.pools == 1 if default else stale.pools > 6


def test_merged_refresh_calls_change_nothing(name, monkeypatch):
    """Rows of later stamps folded again against picks they have seen: the same ub and owner, bit for bit."""
    be = backends.get(name)
    rng = np.random.default_rng(8)
    x = rng.integers(0, 4, (700, 12)).astype(np.float32)  # duplicates: exact ties between picks
    picks = rng.permutation(700)[:50].tolist()
    stamp = rng.choice([3, 10, 11, 30, 49], 700)
    ub = np.empty(700, be.acc_dtype(x.dtype))
    owner = np.empty(700, np.int64)
    for i in range(700):
        value, index = be.block_min(x[i:i + 1], x[picks[:stamp[i]]])
        ub[i], owner[i] = value[0], index[0]
    ub[picks] = MARK

    def refreshed(pick_pairs, call_pairs):
        monkeypatch.setattr(deferred, "PICK_PAIRS", pick_pairs)
        monkeypatch.setattr(deferred, "CALL_PAIRS", call_pairs)
        stale = deferred.Stale(700, 50)
        stale.stamp[:] = stamp
        u, o = ub.copy(), owner.copy()
        stale.refresh(be, x, u, o, picks, np.arange(700))
        return u, o
    assert len(deferred._calls(stamp, np.arange(700), 50)) < 5  # the defaults merge some stamps here
    u0, o0 = refreshed(0, -1)  # one call a stamp
    u1, o1 = refreshed(1 << 40, 1 << 40)  # one call from the oldest stamp
    np.testing.assert_array_equal(u0, u1)
    np.testing.assert_array_equal(o0, o1)
    exact = ((x[:, None, :].astype(np.float64) - x[picks][None]) ** 2).sum(-1)
    live = np.flatnonzero(ub != MARK)
    np.testing.assert_allclose(u1[live], exact[live].min(1), rtol=1e-6)
    np.testing.assert_array_equal(o1[live], exact[live].argmin(1))  # the lowest pick of the minimum


@pytest.mark.parametrize("keep", [True, False], ids=["kept", "past-KEEP_BYTES"])
@pytest.mark.parametrize("dtype,metric", [(np.float32, "l2"), (np.float16, "l2"), (np.float32, "cosine"),
                                          (np.float64, "l2")], ids=str)
def test_pick_rows_fold_against_the_picks(name, monkeypatch, dtype, metric, keep):
    """``backend.pick_rows``: block_min against picks[first:], first <= s, as the picks grow unevenly."""
    from hminsel import _inputs
    from hminsel.backends import cpu_picks
    if not keep:
        monkeypatch.setattr(cpu_picks, "KEEP_BYTES", 0)
    be = backends.get(name)
    raw = clustered(900, 40, clusters=6, seed=21).astype(dtype)
    x = _inputs.prepare(raw, metric, in_place=name == "cpu") if name == "cpu" else _inputs.prepare(raw, metric)
    rng = np.random.default_rng(5)
    order = rng.permutation(900)[:400].tolist()
    picked = be.pick_rows(x)
    packs = []
    if name == "cpu":  # kept picks are packed once, as they come, not once a call
        from hminsel.backends.cpu import _cpu
        pack = _cpu.pack_panels
        monkeypatch.setattr(_cpu, "pack_panels", lambda *a: packs.append(a[1:3]) or pack(*a))
    for now, s in [(5, 0), (37, 5), (37, 36), (64, 33), (100, 90), (260, 1), (260, 200), (400, 333)]:
        rows = np.sort(rng.choice(900, 150, replace=False))
        value, index, first = picked.block_min(order[:now], s, rows)
        assert s - 32 < first <= s
        mine = len(packs)
        want_v, want_i = be.block_min(x, be.take(x, order[first:now]), rows=rows)
        del packs[mine:]
        np.testing.assert_array_equal(value, want_v)
        np.testing.assert_array_equal(index, want_i)
    if name == "cpu" and keep and picked.fused:
        assert packs == [(0, 5), (0, 37), (32, 64), (64, 100), (96, 260), (256, 400)]
