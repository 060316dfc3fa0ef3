"""The exact lazy FPS: the streaming sequence at scale, its statistics, its fallback."""
from __future__ import annotations

import numpy as np
import pytest

import hminsel
from hminsel.algorithms import lazy
from conftest import clustered


@pytest.mark.parametrize("n,d,k", [(100_000, 3, 2000), (3000, 1024, 400), (8000, 64, 8000)],
                         ids=str)
def test_lazy_equals_streaming_at_scale(n, d, k):
    x = clustered(n, d, clusters=50, seed=d)
    a = hminsel.select(x, k, algorithm="streaming")
    b = hminsel.select(x, k, algorithm="lazy")
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.radii, b.radii)


@pytest.mark.parametrize("n,d,k", [(30_000, 16, 3000), (5000, 128, 800)], ids=str)
def test_lazy_equals_streaming_on_gaussian_float64(n, d, k):
    x = np.random.default_rng(n).standard_normal((n, d))
    a = hminsel.select(x, k, start=17, algorithm="streaming")
    b = hminsel.select(x, k, start=17, algorithm="lazy")
    np.testing.assert_array_equal(a.indices, b.indices)


@pytest.mark.parametrize("backend", ["cpu", "numpy"])
def test_a_large_init_is_folded_in_few_passes(monkeypatch, backend):
    """An active-learning round's labelled rows (here 700, crossing the 256-row leaves) cost one
    block_min a leaf and one pass over x, not one call or pass a row: the same picks and radii
    as the per-row definition (each init row's distance to those before it)."""
    from hminsel.backends import get
    x = clustered(5000, 24, seed=11)
    init = np.random.default_rng(2).choice(len(x), 700, replace=False)
    calls = []
    be = get(backend)
    orig = type(be).block_min
    monkeypatch.setattr(type(be), "block_min", lambda self, *a, **kw: calls.append(1) or orig(self, *a, **kw))
    got = {alg: hminsel.select(x, 760, init=init, algorithm=alg, backend=backend)
           for alg in ("streaming", "lazy")}
    assert len(calls) < 40
    for sel in got.values():
        np.testing.assert_array_equal(sel.indices, got["streaming"].indices)
        np.testing.assert_array_equal(sel.radii, got["streaming"].radii)
    xi = x[init].astype(np.float64)
    want = [np.inf] + [np.sqrt(((xi[:t] - xi[t]) ** 2).sum(1).min()) for t in range(1, len(init))]
    np.testing.assert_allclose(got["lazy"].radii[:700], want, rtol=1e-5)
    assert got["streaming"].stats.passes == 60 + 1
    none = hminsel.select(x, 700, init=init, backend=backend)  # nothing to add: x is not read
    assert none.stats.passes == 0 and none.indices.tolist() == init.tolist()
    np.testing.assert_array_equal(none.radii, got["lazy"].radii[:700])


def test_stats_show_the_work_saved():
    x = clustered(20_000, 32, clusters=10, seed=1)
    sel = hminsel.select(x, 2000, algorithm="lazy")
    s = sel.stats
    assert sel.algorithm == "lazy" and s.rounds == len(s.picks_per_round) >= 1
    assert sum(s.picks_per_round) == 2000 - 1  # every pick after the start came from a round
    assert 1 <= s.passes < 2000 / 5  # far fewer passes over x than streaming's k - 1
    assert s.head_size >= lazy.M_MIN and s.seconds > 0


def test_fallback_to_streaming_keeps_the_sequence(monkeypatch):
    monkeypatch.setattr(lazy, "PAY_UNITS", 10**9)  # no round pays
    monkeypatch.setattr(lazy, "STREAM_PATIENCE", 2)
    x = clustered(5000, 8, seed=2)
    a = hminsel.select(x, 700, algorithm="streaming")
    b = hminsel.select(x, 700, algorithm="lazy")
    np.testing.assert_array_equal(a.indices, b.indices)
    assert b.stats.rounds == 2 and b.stats.passes > 600


def test_head_policy_adapts():
    policy = lazy.HeadPolicy(100_000, 384)
    m0 = policy.m
    policy.update(accepted=m0 // 2)
    assert policy.m == 2 * m0
    assert not any(policy.update(accepted=1) for _ in range(20))  # one pick pays at d = 384
    assert policy.m == lazy.M_MIN
    clouds = lazy.HeadPolicy(100_000, 3)
    assert [clouds.update(accepted=2) for _ in range(lazy.STREAM_PATIENCE)][-1]  # 2 picks do not at d = 3
    fixed = lazy.HeadPolicy(100_000, 384, head_size=77)
    assert not fixed.update(1) and fixed.m == 77


def test_auto_picks_lazy_unless_tiny():
    x = clustered(5000, 9, seed=3)  # d <= 8 on the cpu backend takes the bucket FPS (test_bucket.py)
    assert hminsel.select(x, 100).algorithm == "lazy"
    assert hminsel.select(x, 3).algorithm == "streaming"
