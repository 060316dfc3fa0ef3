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


@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_nearest_skips_nonfinite_rows(backend, metric):
    """nonfinite="skip": a NaN/inf row of x gets NaN and -1, a NaN/inf centre is nobody's
    nearest; the rest is the call on the finite rows, with centre indices of ``centers``."""
    rng = np.random.default_rng(3)
    x = rng.standard_normal((200, 6)).astype(np.float32)
    x[[4, 150]] = np.nan
    x[77, 2] = np.inf
    centers = x[[4, 10, 77, 30, 31]]  # two bad centres, 0 and 2
    with pytest.raises(ValueError, match="row 4.*nonfinite='skip'"):
        hminsel.nearest(x, centers, metric=metric, backend=backend)
    dist, idx = hminsel.nearest(x, centers, metric=metric, backend=backend, nonfinite="skip")
    bad = np.zeros(len(x), bool)
    bad[[4, 77, 150]] = True
    assert np.isnan(dist[bad]).all() and (idx[bad] == -1).all() and idx.dtype == np.int64
    want_d, want_i = hminsel.nearest(x[~bad], centers[[1, 3, 4]], metric=metric, backend="numpy")
    np.testing.assert_array_equal(idx[~bad], np.array([1, 3, 4])[want_i])
    np.testing.assert_allclose(dist[~bad], want_d, rtol=1e-5, atol=1e-6)
    assert np.nanmax(dist) == dist[~bad].max()
    with pytest.raises(ValueError, match="every row of centers .2. holds NaN or inf"):
        hminsel.nearest(x, centers[[0, 2]], metric=metric, backend=backend, nonfinite="skip")
    clean, _ = hminsel.nearest(x[~bad], x[:3][~bad[:3]], backend=backend, nonfinite="skip")
    assert not np.isnan(clean).any()


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
    import hminsel.backends.cpu_pair as pair_mod  # hmin's row tiles cut over their columns too
    monkeypatch.setattr(pair_mod, "TILES_PER_ITEM", 3 if request.param == 2 else 1000)


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


def grid_2d(rng):
    """Every point of a 40 x 40 integer grid, shuffled: 3120 pairs tie at the minimum."""
    g = np.stack(np.meshgrid(np.arange(40), np.arange(40)), -1).reshape(-1, 2)
    return g[rng.permutation(len(g))].astype(np.float32)


LOW_D = {  # h_min on the bucket tree (d <= 8) against the direct form
    "gaussian-3": lambda rng: rng.standard_normal((5000, 3)).astype(np.float32),
    "clustered-8": lambda rng: clustered(3000, 8, clusters=4, spread=0.01, seed=2),
    "grid-ties-2": grid_2d,
    "duplicates-2": lambda rng: np.repeat(rng.standard_normal((700, 2)), 3, axis=0).astype(np.float32),
    "line-1": lambda rng: rng.permutation(4000)[:, None].astype(np.float64) * 0.5,
    "float64-5": lambda rng: rng.standard_normal((3000, 5)),
    "float16-3": lambda rng: rng.standard_normal((3000, 3)).astype(np.float16),
    "large-norm-4": lambda rng: (1e4 + rng.standard_normal((3000, 4))).astype(np.float32),
    "many-copies-3": lambda rng: many_copies(rng),
    "all-same-4": lambda rng: np.full((3000, 4), 0.5, np.float32),
}


def many_copies(rng):
    """Thousands of copies of a few points (+0.0 and -0.0 alike), near-copies and noise, shuffled:
    nodes of one repeated point answer at once (bucket_pairs.cpp: Flat)."""
    base = rng.standard_normal((3, 3)).astype(np.float32)
    base[2] = 0.0
    x = np.concatenate([np.repeat(base, [2500, 1500, 1200], axis=0),
                        base[:1] + np.float32(1e-3) * rng.standard_normal((40, 3)).astype(np.float32),
                        rng.standard_normal((1000, 3)).astype(np.float32)])
    x = x[rng.permutation(len(x))]
    zeros = np.flatnonzero((x == 0).all(axis=1))
    x[zeros[::2]] = -0.0
    return x


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("case", sorted(LOW_D))
def test_cpu_tree_hmin_equals_direct(monkeypatch, case, metric):
    from hminsel import backends
    if backends.why_not("cpu"):
        pytest.skip(f"cpu backend unavailable: {backends.why_not('cpu')}")
    import hminsel.backends.cpu as cpu_mod
    x = LOW_D[case](np.random.default_rng(10))
    if case == "large-norm-4":
        x[2999] = x[17]
        x[2999, 1] += np.float32(0.01)
    if metric == "cosine" and case in ("line-1", "grid-ties-2", "many-copies-3"):
        x = x + 1  # no zero rows
    monkeypatch.setattr(cpu_mod, "PAIRS_TREE_MIN_ROWS", 2)
    cpu = backends.get("cpu")
    assert cpu.bucket_reason(x) is None
    tree = hminsel.hmin(x, metric=metric, backend="cpu")
    value, nearest, rows = cpu.closest_rows(np.asarray(x, np.float32) if x.dtype == np.float16 else x)
    direct_path(monkeypatch)
    monkeypatch.setattr(cpu_mod, "PAIRS_TREE_MIN_ROWS", 1 << 40)
    slow = hminsel.hmin(x, metric=metric, backend="cpu")
    assert (tree.value, tree.i, tree.j) == (slow.value, slow.i, slow.j)
    # every row the tree returns has its exact nearest, lowest index on ties
    xr = np.asarray(x, np.float32) if x.dtype == np.float16 else x
    ref_v, ref_i = cpu.block_min(xr, xr, rows=rows, self_mask=True)
    np.testing.assert_array_equal(value, ref_v)
    np.testing.assert_array_equal(nearest, ref_i)
    if case == "large-norm-4" and metric == "l2":
        assert (tree.i, tree.j) == (17, 2999)
    if case == "duplicates-2" and metric == "l2":
        assert (tree.value, tree.i, tree.j) == (0.0, 0, 1)


@pytest.mark.parametrize("leaf", [1, 2, 7, 64, 256])
def test_cpu_tree_hmin_any_leaf(leaf):
    from hminsel import backends
    if backends.why_not("cpu"):
        pytest.skip(f"cpu backend unavailable: {backends.why_not('cpu')}")
    from hminsel import _cpu
    x = grid_2d(np.random.default_rng(leaf))
    value, nearest = _cpu.bucket_closest(x, leaf)
    best = value == value.min()
    assert value.min() == 1.0 and best.sum() == len(x)  # every grid point has a neighbour at 1
    d = ((x[best] - x[nearest[best]]) ** 2).sum(1)
    assert (d == 1.0).all()
    # the lowest-index neighbour at distance 1
    for r in np.flatnonzero(best)[:50]:
        assert nearest[r] == np.flatnonzero(((x - x[r]) ** 2).sum(1) == 1.0).min()


def test_cpu_tree_hmin_rejects_bad_arguments():
    from hminsel import backends
    if backends.why_not("cpu"):
        pytest.skip(f"cpu backend unavailable: {backends.why_not('cpu')}")
    from hminsel import _cpu
    with pytest.raises(ValueError, match="1 <= d <= 8"):
        _cpu.bucket_closest(np.zeros((10, 9), np.float32))
    with pytest.raises(ValueError, match="2 <= N"):
        _cpu.bucket_closest(np.zeros((1, 3), np.float32))
    with pytest.raises(ValueError, match="leaf"):
        _cpu.bucket_closest(np.zeros((10, 3), np.float32), 300)


@pytest.mark.parametrize("be", ["numpy", "cpu"])
def test_float32_centres_of_float64_rows_are_normalised_in_float64(be):
    """Cosine centres take x's compute dtype before they are normalised: float32 centres give
    what the same values as float64 give (normalised in float32, a near tie flipped)."""
    if hminsel.backends.why_not(be):
        pytest.skip(hminsel.backends.why_not(be))
    x = np.array([[-0.6114677914578697, -0.6693993904644358, -0.1710328369412502,
                   -0.5057847888867341]])
    c = np.array([[-0.6116912364959717, -0.669567346572876, -0.1711105853319168, -0.5058289766311646],
                  [-0.6116122007369995, -0.6695324182510376, -0.17097607254981995, -0.5059579014778137]],
                 np.float32)
    got = hminsel.nearest(x, c, metric="cosine", backend=be)
    wide = hminsel.nearest(x, c.astype(np.float64), metric="cosine", backend=be)
    np.testing.assert_array_equal(got[0], wide[0])
    assert got[1].tolist() == wide[1].tolist() == [1]  # float64 truth: centre 1
