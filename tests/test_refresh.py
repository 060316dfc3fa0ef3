"""The pruned refresh of the exact lazy FPS against the unpruned default (block_min).

The cpu backend runs both of its ways: row by row (direct form), and, with the
fused GEMM (AVX-512 builds, float32 sums), cell by cell where a
cell's list holds 12 or more centres and 4 or more rows (``cpu-cells``).
"""
from __future__ import annotations

import numpy as np
import pytest

from hminsel import backends
from hminsel.algorithms.lazy import prune_lists, slack
from hminsel.backends.base import MARK, Backend
from conftest import backend_params, clustered


@pytest.fixture(params=backend_params() + backend_params(["cpu"]))
def backend(request, monkeypatch):
    """numpy, cpu row by row, cpu as it runs (cell by cell where it can)."""
    if request.param == "cpu" and request.param_index == 1:
        import hminsel.backends.cpu as cpu_mod
        monkeypatch.setattr(cpu_mod, "FEW_CENTRES", (1, 0))  # no fused kernels: row by row
    return backends.get(request.param)


def state(backend, x, picks):
    """ub/owner exact against ``picks`` (via block_min), picks marked."""
    value, index = backend.block_min(x, np.ascontiguousarray(x[picks]))
    ub, owner = value.astype(backend.acc_dtype(x.dtype)), index.astype(np.int64)
    ub[picks] = MARK
    return ub, owner


def check(backend, x, old, new):
    ub, owner = state(backend, x, old)
    ub[new] = MARK
    centers = np.ascontiguousarray(x[new])
    want_ub, want_owner = ub.copy(), owner.copy()
    backend.fold_all(x, want_ub, want_owner, centers, len(old))
    margin = slack(x.shape[1], ub.dtype)
    radius2 = backend.cell_radius(ub, owner, len(old))
    np.testing.assert_array_equal(radius2, Backend.cell_radius(backend, ub, owner, len(old)))
    lists = backend.prune_lists(lambda lo, hi: backend.take(x, np.asarray(old)[lo:hi]), len(old), radius2,
                                backend.take(x, new), margin)  # the backend's own (cpu: the fused GEMM)
    check_lists(x, old, new, radius2, margin, lists)
    rows = backend.refresh(x, ub, owner, centers, len(old), *lists, margin)
    np.testing.assert_array_equal(ub, want_ub)  # bit for bit
    np.testing.assert_array_equal(owner, want_owner)
    assert 0 <= rows <= len(x)
    return rows


def check_lists(x, old, new, radius2, margin, lists):
    """Lists in ascending centre order, each bound at most the exact distance, and every
    centre within 2 sqrt(radius2) of an earlier pick listed for it."""
    ptr, cidx, cval = lists
    xd = x.astype(np.float64)
    exact = ((xd[np.asarray(old)][:, None] - xd[np.asarray(new)][None]) ** 2).sum(-1)  # [base, m]
    for a in range(len(old)):
        cols, vals = cidx[ptr[a]:ptr[a + 1]], cval[ptr[a]:ptr[a + 1]]
        assert (np.diff(cols) > 0).all()
        assert (vals <= exact[a, cols] * (1 + 1e-12)).all()
        need = np.flatnonzero(exact[a] <= 4.0 * radius2[a])
        assert np.isin(need, cols).all(), a
    python = prune_lists(lambda lo, hi: x[np.asarray(old)[lo:hi]].astype(np.float32) if x.dtype == np.float16
                         else x[np.asarray(old)[lo:hi]], len(old), radius2,
                         np.ascontiguousarray(x[new], np.float64 if x.dtype == np.float64 else np.float32), margin)
    assert abs(len(python[1]) - len(cidx)) <= 0.01 * len(cidx) + 2  # as selective as the NumPy lists


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.float16], ids=["float32", "float64", "float16"])
@pytest.mark.parametrize("n,d,old,new", [(2000, 32, 40, 25), (3000, 3, 300, 200),
                                         (500, 127, 1, 60), (800, 768, 50, 7)], ids=str)
def test_refresh_equals_unpruned(backend, dtype, n, d, old, new):
    x = clustered(n, d, clusters=12, seed=d, dtype=dtype)
    order = np.random.default_rng(n).permutation(n)
    check(backend, x, order[:old].tolist(), order[old:old + new])


def test_refresh_prunes_far_cells(backend):
    x = clustered(4000, 16, clusters=40, spread=0.01, seed=3)
    order = np.random.default_rng(0).permutation(4000)
    rows = check(backend, x, order[:400].tolist(), order[400:410])
    if backend.name != "numpy":  # the default reads every row
        assert rows < 2000


def test_refresh_near_duplicates_at_large_norm(backend):
    rng = np.random.default_rng(5)
    x = (1e4 + 1e-2 * rng.standard_normal((600, 8))).astype(np.float32)
    x[300:] = x[:300] + np.float32(1e-3) * rng.integers(0, 2, (300, 8))  # on the rounding grid
    check(backend, x, list(range(0, 600, 7)), np.arange(1, 600, 13))


@pytest.mark.parametrize("dtype", [np.float32, np.float16], ids=["float32", "float16"])
def test_refresh_cells_near_duplicates_at_large_norm(backend, dtype):
    """Lists of 12+ centres a cell, windows of near-equal GEMM values: exact all the same."""
    rng = np.random.default_rng(6)
    base = (300 + rng.standard_normal((30, 48)) * 0.5).astype(np.float32)
    x = np.repeat(base, 40, axis=0) + np.float32(0.05) * rng.standard_normal((1200, 48), dtype=np.float32)
    x[600:] = x[:600] + np.float32(2e-3) * rng.integers(0, 2, (600, 48))  # on the rounding grid
    x = x.astype(dtype)
    order = rng.permutation(1200)
    check(backend, x, order[:30].tolist(), order[30:130])


def test_refresh_cells_where_gemm_form_is_wrong(backend):
    """One cell whose list spans two tight clusters far apart: centred between them, the
    float32 GEMM form errs by far more than the gaps, so every answer comes from a window."""
    rng = np.random.default_rng(7)
    side = np.where(rng.random(600) < 0.5, 1.0, -1.0)[:, None]
    x = (side * 300.0 + 0.01 * rng.standard_normal((600, 40))).astype(np.float32)
    check(backend, x, [0], rng.permutation(np.arange(1, 600))[:60])


def test_refresh_all_equal_points(backend):
    x = np.ones((50, 4), np.float32)
    check(backend, x, [0, 1, 2], np.array([3, 4]))


def test_cpu_refresh_checks_its_arguments():
    cpu = backends.get("cpu")
    if backends.why_not("cpu"):
        pytest.skip(backends.why_not("cpu"))
    x = np.zeros((4, 2), np.float32)
    ub = np.ones(4, np.float32)
    owner = np.zeros(4, np.int64)
    c = np.zeros((1, 2), np.float32)
    ok = (np.array([0, 1], np.int64), np.array([0], np.int64), np.array([0.0]))
    with pytest.raises(ValueError, match=r"ptr must have 2 entries \(base \+ 1\)"):
        cpu.refresh(x, ub, owner, c, 1, np.zeros(3, np.int64), *ok[1:], 0.0)
    with pytest.raises(ValueError, match=r"cidx entries must be rows of centers in \[0, 1\)"):
        cpu.refresh(x, ub, owner, c, 1, ok[0], np.array([1], np.int64), ok[2], 0.0)
    with pytest.raises(ValueError, match=r"owner of every live row must be a pick in \[0, base\)"):
        cpu.refresh(x, ub, np.full(4, 5, np.int64), c, 1, *ok, 0.0)
    with pytest.raises(ValueError, match=r"ub must be a writable C-contiguous float32"):
        cpu.refresh(x, ub.astype(np.float64), owner, c, 1, *ok, 0.0)
    from hminsel.backends.cpu import _cpu as native
    with pytest.raises(ValueError, match=r"few must be \(coef >= 0, floor >= 0, 0 <= rel < 1\)"):
        native.refresh(x, ub, owner, c, 1, *ok, 0.0, (1e-6, 0.0, 1.5))
