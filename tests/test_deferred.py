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
    """Rounds of picks with stale bounds: each head is the eager one, the pool taken again only when short."""
    default = pool == deferred.POOL
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


@pytest.mark.parametrize("pool", [0, 1, 3])
def test_pool_choice_is_head_and_tau_with_ties(name, pool):
    """Integer bounds (ties everywhere, at the pool's edge too), MARK rows, bounds falling between
    choices: every choice equals head_and_tau on all rows (host bookkeeping: the same on every backend)."""
    from hminsel.backends.lazy_host import head_and_tau
    rng = np.random.default_rng(pool)
    stale = deferred.Stale(300, 0)
    ub = rng.integers(0, 12, 300).astype(np.float64)
    ub[rng.choice(300, 40, replace=False)] = MARK
    for step in range(200):
        m = int(rng.integers(1, 40))
        got = stale._choose(ub, m, pool * (m + 1))
        want = head_and_tau(ub, m)
        np.testing.assert_array_equal(got[0], want[0])
        assert got[1:] == want[1:], step
        live = np.flatnonzero(ub != MARK)
        if len(live) == 0:
            break
        fall = rng.choice(live, min(len(live), 5), replace=False)
        lower = np.maximum(0, ub[fall] - rng.integers(0, 4, len(fall)))
        ub[fall] = np.where(rng.random(len(fall)) < 0.3, MARK, lower)


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


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_back_to_eager_folds_when_pruning_pays(name, stale_runs, monkeypatch, metric):
    """Deferred at the first tiled round (lists made 'dense'), then the sampled share says pruning
    pays: every value and owner made exact, then eager folds; the streaming picks."""
    calls = []
    orig = deferred.Stale.exact_all
    monkeypatch.setattr(deferred.Stale, "exact_all",
                        lambda self, *a: calls.append(orig(self, *a)) or calls[-1])
    monkeypatch.setattr(deferred.Stale, "eager_pays",  # the share alone: too small a run for the work model
                        lambda self, b, x, ub, picks, base, k, margin:
                        self.pair_share(b, x, ub, picks, base, margin) < deferred.EAGER_BELOW)
    x = clustered(3000, 24, clusters=60, spread=0.05, seed=5)
    a = hminsel.select(x, 900, metric=metric, backend=name, algorithm="streaming")
    b = hminsel.select(x, 900, metric=metric, backend=name, algorithm="lazy")
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.radii, b.radii)
    if name == "cpu":
        assert len(calls) == 1 and calls[0] > 2000  # every live row, once
    assert b.stats.passes < len(b.indices) / 10


@pytest.mark.parametrize("n,k,pairs,share,want", [
    (100_000, 50_000, 10**9, 0.01, True),    # deferred refreshes heavy, many picks left: recompute once
    (4_000_000, 2_500, 10**9, 0.01, False),  # the recompute against every pick outweighs them
    (4_000_000, 6_000, 10**9, 0.01, False),  # 2.4x: within the model's error (STAYING_OVER)
    (100_000, 50_000, 10**9, 0.5, False),    # pruning would keep too much
    (100_000, 1_020, 10**9, 0.01, False),    # a few picks left
])
def test_eager_pays_work_model(name, monkeypatch, n, k, pairs, share, want):
    """Picks 1000 (deferred at 500): staying costs pairs / 500 a pick left; going back costs
    every live row against 1000 picks, then pruned folds and their lists."""
    be = backends.get(name)
    monkeypatch.setattr(deferred.Stale, "pair_share", lambda self, *a: share)
    stale = deferred.Stale(n, 500)
    stale.pairs = pairs
    ub = np.zeros(n, np.float32)
    assert stale.eager_pays(be, None, ub, list(range(1000)), 900, k, 0.0) is want


def test_exact_all_values_and_owners(name):
    be = backends.get(name)
    rng = np.random.default_rng(12)
    x = rng.standard_normal((800, 20)).astype(np.float32)
    picks = rng.permutation(800)[:70].tolist()
    ub = np.full(800, np.inf, be.acc_dtype(x.dtype))  # stale bounds: anything above the values
    ub[picks] = MARK
    owner = np.zeros(800, np.int64)
    stale = deferred.Stale(800, 3)
    rows = stale.exact_all(be, x, ub, owner, picks)
    d2 = ((x[:, None, :].astype(np.float64) - x[picks][None]) ** 2).sum(-1)
    live = np.flatnonzero(ub != MARK)
    assert rows == len(live) == 730 and (stale.stamp == 70).all()
    np.testing.assert_allclose(ub[live], d2[live].min(1), rtol=1e-5)
    np.testing.assert_array_equal(owner[live], d2[live].argmin(1))


def test_pair_share_tells_clusters_from_noise(name):
    """Unclustered high-d rows: every pair kept (1); rows in clusters that all hold picks: few."""
    be = backends.get(name)
    stale = deferred.Stale(4000, 0)
    margin = prune.slack(64, np.float32)
    noise = np.random.default_rng(3).standard_normal((4000, 64)).astype(np.float32)
    picks = list(range(0, 400, 2))
    ub = np.zeros(4000, np.float32)
    ub[picks] = MARK
    assert stale.pair_share(be, noise, ub, picks, 100, margin) == 1.0
    rng = np.random.default_rng(4)
    blobs = (rng.standard_normal((40, 64))[np.arange(4000) % 40]
             + 0.02 * rng.standard_normal((4000, 64))).astype(np.float32)  # row i in cluster i % 40
    picks = [c + 40 * j for j in range(5) for c in range(40)]  # three a cluster first, then two more
    ub[:] = 0
    ub[picks] = MARK
    stale = deferred.Stale(4000, 0)  # one per run: it keeps the rows of its x's picks
    assert stale.pair_share(be, blobs, ub, picks, 120, margin) < deferred.EAGER_BELOW  # 2 of 80 near


def test_back_to_eager_once_a_run(name, stale_runs, monkeypatch):
    """Every probe says 'eager pays': back to eager after the first deferred round,
    deferred again at the next dense round, and then kept deferred; the streaming picks."""
    monkeypatch.setattr(deferred.Stale, "eager_pays", lambda self, *a: True)
    monkeypatch.setattr(lazy, "M_START", 128)  # small heads: rounds enough for both switches
    monkeypatch.setattr(lazy, "M_MIN", 128)
    calls = []
    orig = deferred.Stale.exact_all
    monkeypatch.setattr(deferred.Stale, "exact_all",
                        lambda self, *a: calls.append(orig(self, *a)) or calls[-1])
    x = _data("gaussian", 2000, 40, np.float32, seed=2)
    a = hminsel.select(x, 1500, backend=name, algorithm="streaming")
    b = hminsel.select(x, 1500, backend=name, algorithm="lazy")
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.radii, b.radii)
    if name == "cpu":
        assert len(calls) == 1 and len(stale_runs) == 2
