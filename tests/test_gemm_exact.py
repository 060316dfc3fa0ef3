"""The CPU GEMM path stays exact where the GEMM form alone picks the wrong index.

Two tight clusters far apart: centring at the mean leaves |x - mu| large, so
the float32 GEMM form errs by far more than the gaps between the centres of a
row's own cluster (near-ties). The answers must still be those of the float64
oracle (on rows whose nearest is tie-free in float64 by a margin the float32
direct form cannot blur), and equal to the direct path bit for bit. Tile
shapes that are not multiples of the fused kernel's 8 x 32 blocks run too.
"""
from __future__ import annotations

import numpy as np
import pytest

import hminsel
from conftest import block_min_path
from hminsel import backends

pytestmark = pytest.mark.skipif(backends.why_not("cpu") is not None, reason="cpu backend unavailable")


def _fused_cpu():
    """The C++ module, or a skip where it was built without AVX-512 (no fused GEMM)."""
    from hminsel.backends import cpu as cpu_mod
    if not cpu_mod._cpu.fused_gemm_available():
        pytest.skip("built without AVX-512: no fused GEMM")
    return cpu_mod._cpu


def far_clusters(n, d, *, offset=300.0, spread=0.01, seed=0, dtype=np.float32):
    rng = np.random.default_rng(seed)
    side = np.where(rng.random(n) < 0.5, 1.0, -1.0)[:, None]
    return (side * offset + spread * rng.standard_normal((n, d))).astype(dtype)


def oracle(x, y):
    """(sqdist (n, m), nearest, tie-free rows): float64, relative margin 1e-4 between the two best."""
    full = ((x[:, None, :].astype(np.float64) - y[None].astype(np.float64)) ** 2).sum(-1)
    part = np.sort(full, axis=1)[:, :2]
    free = part[:, 1] - part[:, 0] > 1e-4 * part[:, 1]
    return full, full.argmin(1), free


def gemm_form_argmin(x, y):
    """What a float32 GEMM form on centred rows (no re-check) would answer."""
    mu = y.mean(0, dtype=np.float64).astype(np.float32)
    xc, yc = x - mu, y - mu
    g = (xc * xc).sum(1)[:, None] + (yc * yc).sum(1)[None] - np.float32(2) * (xc @ yc.T)
    return np.maximum(g, 0).argmin(1)


def direct_path(monkeypatch):
    block_min_path(monkeypatch, "direct")


@pytest.fixture(params=["fused", "blas", "few"])
def gemm(monkeypatch, request):
    """The GEMMs of the float32 path: the fused kernel (where built), BLAS tiles, and the
    one-pass kernel for a few centres (every block_min of these tests, whatever m)."""
    import hminsel.backends.cpu as cpu_mod
    import hminsel.backends.cpu_gemm as gemm_mod
    if request.param == "blas":
        monkeypatch.setattr(gemm_mod, "fused", lambda cpu, x: False)
    elif not cpu_mod._cpu.fused_gemm_available():
        pytest.skip("built without AVX-512: no fused GEMM")
    block_min_path(monkeypatch, "few" if request.param == "few" else "gemm")
    return request.param


@pytest.mark.parametrize("n,d,m", [(1000, 96, 200), (333, 127, 65), (257, 40, 33)], ids=str)
def test_nearest_exact_where_gemm_form_is_wrong(gemm, monkeypatch, n, d, m):
    x = far_clusters(n, d, seed=n)
    y = x[np.random.default_rng(1).choice(n, m, replace=False)] + np.float32(0.003)
    y = np.ascontiguousarray(y, np.float32)
    full, want, free = oracle(x, y)
    if n == 1000:  # the case is adversarial: the GEMM form alone gets rows wrong
        assert (gemm_form_argmin(x, y)[free] != want[free]).sum() > 10
    assert free.mean() > 0.9
    dist, idx = hminsel.nearest(x, y, backend="cpu")
    np.testing.assert_array_equal(idx[free], want[free])
    np.testing.assert_allclose(dist.astype(np.float64) ** 2, full[np.arange(n), idx], rtol=1e-5)
    direct_path(monkeypatch)
    slow_d, slow_i = hminsel.nearest(x, y, backend="cpu")
    np.testing.assert_array_equal(idx, slow_i)
    np.testing.assert_array_equal(dist, slow_d)


@pytest.mark.parametrize("top_k", [2, 16])
def test_nearest_windows_and_second_pass(gemm, monkeypatch, top_k):
    """Short lists send rows to the second (windowed) pass; long ones settle in the lists."""
    import hminsel.backends.cpu_gemm as gemm_mod
    monkeypatch.setattr(gemm_mod, "TOP_K", top_k)
    monkeypatch.setattr(gemm_mod, "GEMM_ROWS", 70)
    monkeypatch.setattr(gemm_mod, "GEMM_COLS", 100)
    x = far_clusters(600, 64, seed=7, spread=0.02)
    y = np.ascontiguousarray(x[::3] + np.float32(0.001))
    full, want, free = oracle(x, y)
    dist, idx = hminsel.nearest(x, y, backend="cpu")
    np.testing.assert_array_equal(idx[free], want[free])
    direct_path(monkeypatch)
    slow_d, slow_i = hminsel.nearest(x, y, backend="cpu")
    np.testing.assert_array_equal(idx, slow_i)
    np.testing.assert_array_equal(dist, slow_d)


@pytest.mark.parametrize("n,d", [(700, 96), (301, 33)], ids=str)
def test_hmin_exact_on_far_clusters(gemm, monkeypatch, n, d):
    x = far_clusters(n, d, seed=d)
    x[n - 1] = x[5] + np.float32(0.004)  # the closest pair, under the GEMM form's error
    xd = x.astype(np.float64)
    best = (np.inf, -1, -1)
    for i in range(n - 1):
        s = ((xd[i + 1:] - xd[i]) ** 2).sum(1)
        j = int(s.argmin())
        if s[j] < best[0]:
            best = (float(s[j]), i, i + 1 + j)
    res = hminsel.hmin(x, backend="cpu")
    assert (res.i, res.j) == (best[1], best[2]) == (5, n - 1)
    assert res.value ** 2 == pytest.approx(best[0], rel=1e-4)
    direct_path(monkeypatch)
    slow = hminsel.hmin(x, backend="cpu")
    assert (res.value, res.i, res.j) == (slow.value, slow.i, slow.j)


def test_fused_scan_matches_blas_scan():
    """The fused kernel's top-k lists equal those of a BLAS tile within the GEMM bound."""
    from hminsel.backends import gemm_bound
    cpu = _fused_cpu()
    rng = np.random.default_rng(3)
    for nb, mb, d in [(13, 45, 7), (64, 64, 64), (9, 100, 129)]:
        xc = rng.standard_normal((nb, d), dtype=np.float32)
        y = rng.standard_normal((mb, d), dtype=np.float32)
        mu = np.zeros(d, np.float32)
        xn, yn = (xc * xc).sum(1), (y * y).sum(1)
        panels = cpu.pack_panels(y, 0, mb, mu)
        tv, ti = np.full((nb, 4), np.inf, np.float32), np.full((nb, 4), -1, np.int64)
        reach = np.full(nb, np.inf)
        cpu.fused_scan(xc, xn, panels, yn, 0, np.arange(nb, dtype=np.int64), False, reach, tv, ti)
        g = xn[:, None].astype(np.float64) + yn[None] - 2.0 * (xc.astype(np.float64) @ y.T.astype(np.float64))
        err = gemm_bound.row_err(xn, float(yn.max()), d, np.float32)
        np.testing.assert_allclose(tv, np.sort(g, 1)[:, :4], atol=float(err.max()))
        assert (np.abs(np.take_along_axis(g, ti, 1) - tv) <= err[:, None]).all()


def test_fused_dots_writes_its_block_only():
    """fused_dots: the float64 dot products within gamma_d, on the block's columns and nowhere else."""
    from hminsel.backends import cpu_gemm
    cpu = _fused_cpu()
    rng = np.random.default_rng(5)
    m, d = 150, 77
    x = rng.standard_normal((m, d), dtype=np.float32)
    panels = cpu.pack_panels(x, 0, m, np.zeros(d, np.float32))
    exact = x.astype(np.float64) @ x.T.astype(np.float64)
    size = np.abs(x).astype(np.float64) @ np.abs(x).T.astype(np.float64)
    gamma = d * np.finfo(np.float32).eps / 2 / (1 - d * np.finfo(np.float32).eps / 2)
    for r0, r1, c0, c1 in [(0, 150, 0, 150), (3, 20, 37, 101), (64, 72, 95, 96), (140, 150, 33, 150)]:
        p0 = c0 // cpu_gemm.PANEL * cpu_gemm.PANEL
        lo, hi = p0 * d, p0 * d + -(-(c1 - p0) // cpu_gemm.PANEL) * cpu_gemm.PANEL * d
        out = np.full((m, m), np.nan, np.float32)
        cpu.fused_dots(x[r0:r1], panels[lo:hi], c1 - p0, c0 - p0, out, r0, p0)
        block = out[r0:r1, c0:c1]
        assert (np.abs(block - exact[r0:r1, c0:c1]) <= gamma * size[r0:r1, c0:c1] * 1.0001).all()
        out[r0:r1, c0:c1] = np.nan
        assert np.isnan(out).all(), "a value outside the block was written"
    with pytest.raises(ValueError, match="must lie inside out"):
        cpu.fused_dots(x[:10], panels[:32 * d], 32, 0, np.zeros((20, 20), np.float32), 15, 0)


def test_half_panels_give_the_full_panels_bits():
    """A last panel of at most 16 columns runs as a half block: each column's dot product is the
    same FMA chain, so its bits equal those of the same column in a full panel; and block_min
    through the few-centre kernel picks the same values and indices for every width."""
    cpu = _fused_cpu()
    rng = np.random.default_rng(6)
    n, d = 21, 70
    x = rng.standard_normal((n, d), dtype=np.float32)
    y = rng.standard_normal((48, d), dtype=np.float32)
    mu = np.zeros(d, np.float32)
    full = np.zeros((n, 48), np.float32)
    cpu.fused_dots(x, cpu.pack_panels(y, 0, 48, mu), 48, 0, full, 0, 0)  # panels of 32 and 16
    for mb in (1, 5, 16, 17, 33, 40):  # the last panel: half for 1, 5, 16, 33, 40
        out = np.zeros((n, mb), np.float32)
        cpu.fused_dots(x, cpu.pack_panels(y, 0, mb, mu), mb, 0, out, 0, 0)
        np.testing.assert_array_equal(out, full[:, :mb])
    from hminsel.backends.cpu import CpuBackend
    backend = CpuBackend()
    xs = rng.standard_normal((300, 96), dtype=np.float32)
    for m in (12, 16, 17, 40, 48, 70):  # FEW_CENTRES: the one-pass kernel
        ys = xs[rng.choice(300, m, replace=False)] + np.float32(0.01)
        value, index = backend.block_min(xs, ys)
        dist = ((xs[:, None, :].astype(np.float64) - ys[None].astype(np.float64)) ** 2).sum(-1)
        np.testing.assert_array_equal(index, dist.argmin(1))
        np.testing.assert_allclose(value, dist.min(1), rtol=1e-5)


def test_pack_panels_norms():
    """pack_panels (threaded above the pool's threshold): NumPy's layout, and |y_j - mu|^2 within gamma_d."""
    cpu = _fused_cpu()
    rng = np.random.default_rng(6)
    for n, d, lo, hi in [(100, 53, 20, 81), (700, 256, 3, 650)]:  # 650 x 256: many panels, the pool's threads
        y = rng.standard_normal((n, d), dtype=np.float32) + 3
        mu = y[::7].mean(0).astype(np.float32)
        norms = np.empty(hi - lo, np.float32)
        panels = cpu.pack_panels(y, lo, hi, mu, norms)
        p = -(-(hi - lo) // 32)
        want = np.zeros((p * 32, d), np.float32)
        want[:hi - lo] = y[lo:hi] - mu
        assert np.array_equal(panels, want.reshape(p, 32, d).transpose(0, 2, 1).ravel())
        assert np.array_equal(panels, cpu.pack_panels(y, lo, hi, mu))
        exact = ((y[lo:hi] - mu).astype(np.float64) ** 2).sum(1)
        np.testing.assert_allclose(norms, exact, rtol=d * np.finfo(np.float32).eps)
    with pytest.raises(ValueError, match="norms"):
        cpu.pack_panels(y, 20, 81, mu, np.empty(60, np.float32))


def test_fused_block_min_checks_its_arguments():
    from hminsel.backends import cpu_gemm
    cpu = _fused_cpu()
    rng = np.random.default_rng(8)
    x = rng.standard_normal((50, 40), dtype=np.float32)
    y = x[:20].copy()
    value, index = np.empty(50, np.float32), np.empty(50, np.int64)
    cpu_gemm.block_min_few(cpu, x, y, None, value, index)
    want = hminsel.backends.get("numpy").block_min(x, y)[1]
    np.testing.assert_array_equal(index, want)
    with pytest.raises(ValueError, match="y must have 40 columns"):
        cpu_gemm.block_min_few(cpu, x, np.ascontiguousarray(y[:, :30]), None, value, index)
    with pytest.raises(ValueError, match="float32 or float16 rows"):
        cpu_gemm.block_min_few(cpu, x.astype(np.float64), y, None, value, index)
    with pytest.raises(ValueError, match="value must have 3 entries"):
        cpu_gemm.block_min_few(cpu, x, y, np.array([1, 2, 3]), value, index)
