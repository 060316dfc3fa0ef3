"""hmin() and nearest() against brute-force float64 oracles, on every backend."""
from __future__ import annotations

import numpy as np
import pytest

import hminsel
from conftest import block_min_path, clustered


def pair_oracle(x):
    x = np.asarray(x, np.float64)
    best = (np.inf, -1, -1)
    for i in range(len(x)):
        d = ((x[i + 1:] - x[i]) ** 2).sum(1)
        if len(d) and d.min() < best[0]:
            j = int(np.argmin(d))
            best = (float(d[j]), i, i + 1 + j)
    return np.sqrt(best[0]), best[1], best[2]


@pytest.mark.parametrize("n,d", [(2, 1), (63, 3), (500, 127), (300, 768)], ids=str)
def test_hmin_matches_oracle(backend, n, d):
    x = np.random.default_rng(n).standard_normal((n, d))
    value, i, j = pair_oracle(x)
    res = hminsel.hmin(x, backend=backend)
    assert (res.i, res.j) == (i, j)
    assert res.value == pytest.approx(value, rel=1e-12)


def test_hmin_near_duplicate_at_large_norm(backend):
    rng = np.random.default_rng(1)
    x = (1e4 + rng.standard_normal((3000, 64))).astype(np.float32)
    x[2999] = x[17]
    x[2999, 5] += np.float32(0.05)  # representable at 1e4: the pair is (17, 2999)
    res = hminsel.hmin(x, backend=backend)
    assert (res.i, res.j) == (17, 2999)
    assert res.value == pytest.approx(float(x[2999, 5]) - float(x[17, 5]), rel=1e-6)


def test_hmin_ties_and_duplicates(backend):
    x = np.array([[5.0, 0], [0, 0], [1, 0], [5, 0], [0, 0]])
    res = hminsel.hmin(x, backend=backend)
    assert (res.value, res.i, res.j) == (0.0, 0, 3)
    single = hminsel.hmin(x[:1], backend=backend)
    assert single.value == np.inf and (single.i, single.j) == (-1, -1)


def test_hmin_cosine_units(backend):
    x = np.array([[1.0, 0], [0, 1], [1, 1e-3], [-1, 0]])
    res = hminsel.hmin(x, metric="cosine", backend=backend)
    assert (res.i, res.j) == (0, 2)
    assert res.value == pytest.approx(1 - 1 / np.sqrt(1 + 1e-6), rel=1e-6)


def test_hmin_equals_selection_hmin(backend):
    x = clustered(800, 9, seed=4)
    sel = hminsel.select(x, 40, backend=backend)
    assert hminsel.hmin(x[sel.indices], backend=backend).value == pytest.approx(sel.hmin, rel=1e-5)


@pytest.mark.parametrize("m", [1, 5, 64, 300])
def test_nearest_matches_oracle(backend, m):
    rng = np.random.default_rng(m)
    x = rng.standard_normal((1000, 40)).astype(np.float32)
    centers = rng.standard_normal((m, 40)).astype(np.float32)
    dist, idx = hminsel.nearest(x, centers, backend=backend)
    full = ((x[:, None, :].astype(np.float64) - centers[None].astype(np.float64)) ** 2).sum(-1)
    np.testing.assert_array_equal(idx, full.argmin(1))
    np.testing.assert_allclose(dist, np.sqrt(full.min(1)), rtol=1e-5)


def test_nearest_duplicate_centers_take_lowest_index(backend):
    x = np.array([[0.0, 0], [2, 2]])
    centers = np.array([[1.0, 1], [3, 3], [1, 1], [2, 2], [2, 2]])
    dist, idx = hminsel.nearest(x, centers, backend=backend)
    assert idx.tolist() == [0, 3] and dist.tolist() == [np.sqrt(2), 0.0]


# -- the cpu backend's GEMM path (candidate windows) equals its direct path -------

@pytest.fixture(params=[2, 4], ids=lambda k: f"top{k}")
def gemm_tiles(monkeypatch, request):
    """Small GEMM tiles (many row/column tiles, ragged edges) on the cpu backend, or skip.

    Top-2 lists send most unsure rows to the second-pass window; top-4 settles
    most of them from the lists: both paths run.
    """
    from hminsel import backends
    if backends.why_not("cpu"):
        pytest.skip(f"cpu backend unavailable: {backends.why_not('cpu')}")
    import hminsel.backends.cpu_gemm as gemm_mod
    monkeypatch.setattr(gemm_mod, "GEMM_ROWS", 70)
    monkeypatch.setattr(gemm_mod, "GEMM_COLS", 45)
    monkeypatch.setattr(gemm_mod, "TOP_K", request.param)
    monkeypatch.setattr(gemm_mod, "SETTLE_ROWS", 250)


def direct_path(monkeypatch):
    block_min_path(monkeypatch, "direct")


CASES = {  # clustered (every row needs a window), duplicates and ties, near-duplicates at large norm
    "clustered": lambda rng: clustered(600, 96, clusters=5, spread=0.05, seed=3),
    "duplicates": lambda rng: np.repeat(rng.standard_normal((150, 40)).astype(np.float32), 3, axis=0),
    "large-norm": lambda rng: (1e4 + rng.standard_normal((400, 64))).astype(np.float32),
    "float64": lambda rng: clustered(300, 48, clusters=3, seed=5, dtype=np.float64),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_cpu_gemm_hmin_and_nearest_equal_direct(gemm_tiles, monkeypatch, case):
    x = CASES[case](np.random.default_rng(9))
    if case == "large-norm":
        x[399] = x[17]
        x[399, 5] += np.float32(0.05)
    centers = x[::7].copy()
    fast = hminsel.hmin(x, backend="cpu")
    fast_d, fast_i = hminsel.nearest(x, centers, backend="cpu")
    direct_path(monkeypatch)
    slow = hminsel.hmin(x, backend="cpu")
    slow_d, slow_i = hminsel.nearest(x, centers, backend="cpu")
    assert (fast.value, fast.i, fast.j) == (slow.value, slow.i, slow.j)
    np.testing.assert_array_equal(fast_i, slow_i)
    np.testing.assert_array_equal(fast_d, slow_d)
    if case == "large-norm":
        assert (fast.i, fast.j) == (17, 399)
    if case == "duplicates":
        assert (fast.value, fast.i, fast.j) == (0.0, 0, 1)
