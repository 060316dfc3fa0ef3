"""The tiled head loop (k a large share of N): the streaming sequence, index for index."""
from __future__ import annotations

import weakref

import numpy as np
import pytest

import hminsel
from hminsel import backends
from hminsel.algorithms import lazy
from hminsel.backends import cpu_head
from conftest import backend_params, clustered

pytestmark = pytest.mark.parametrize("name", backend_params(["cpu"]))


def _unit(x):
    return x / np.linalg.norm(x, axis=1, keepdims=True).astype(x.dtype)


def _data(kind, n, d, dtype, seed=0):
    rng = np.random.default_rng(seed)
    if kind == "clustered":
        return clustered(n, d, clusters=8, seed=seed, dtype=dtype)
    if kind == "gaussian":
        return rng.standard_normal((n, d)).astype(dtype)
    if kind == "grid":  # many exact ties and duplicate rows
        return rng.integers(0, 3, (n, d)).astype(dtype)
    raise ValueError(kind)


@pytest.fixture(autouse=True)
def poisoned_dots(monkeypatch):
    """Unwritten dots are NaN: a read of one skips a re-check, and the picks go wrong."""
    empty = np.empty

    def poisoned(*args, **kwargs):
        out = empty(*args, **kwargs)
        if out.dtype.kind == "f":
            out.fill(np.nan)
        return out
    monkeypatch.setattr(cpu_head.np, "empty", poisoned)
    monkeypatch.setattr(cpu_head, "_dots_buffer", lambda m, dtype, dense=False: poisoned((m, m), dtype))  # no reuse


@pytest.fixture
def tiled_calls(monkeypatch):
    """Counts the tiled head rounds; every round after the first runs tiled."""
    monkeypatch.setattr(lazy, "TILED_RATE", 0.0)
    calls = []
    cls = type(backends.get("cpu"))
    orig = cls.head_greedy_tiled

    def spy(self, xh, *args):
        calls.append(len(xh))
        return orig(self, xh, *args)
    monkeypatch.setattr(cls, "head_greedy_tiled", spy)
    return calls


@pytest.mark.parametrize("kind", ["clustered", "gaussian", "grid"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_primitive_matches_head_greedy(name, kind, dtype):
    be = backends.get(name)
    xh = _data(kind, 700, 40, dtype, seed=3)
    hidx = np.random.default_rng(1).permutation(5000)[:700].astype(np.int64)
    h0 = np.full(700, np.inf, be.acc_dtype(dtype))
    h0[:] = ((xh.astype(np.float64) - xh[0]) ** 2).sum(1)  # as if row 0 were the only pick
    h0[0] = -1.0
    tau = float(np.sort(h0)[len(h0) // 3]) if kind != "grid" else -np.inf
    a, b = h0.copy(), h0.copy()
    own = np.full(700, -1, np.int64)
    pa, va = be.head_greedy(xh, a, hidx, tau, 10**9, 10**6)
    pb, vb = be.head_greedy_tiled(xh, b, hidx, tau, 10**9, 10**6, own)
    np.testing.assert_array_equal(pa, pb)
    np.testing.assert_array_equal(va, vb)
    np.testing.assert_array_equal(a, b)  # bit for bit
    ref = backends.get("numpy")
    c, own_ref = h0.astype(np.float64), np.full(700, -1, np.int64)
    pc, _ = ref.head_greedy_tiled(xh, c, hidx, tau, 10**9, 10**6, own_ref)
    if kind == "gaussian":  # tie-free: the float64 oracle agrees on picks and owners
        np.testing.assert_array_equal(pb, pc)
        np.testing.assert_array_equal(own, own_ref)


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("kind,n,d,frac", [("clustered", 3000, 64, 0.5), ("gaussian", 2500, 96, 0.5),
                                           ("gaussian", 1200, 40, 1.0), ("grid", 1500, 32, 0.5),
                                           ("clustered", 1100, 33, 1.0)], ids=str)
def test_select_equals_streaming(name, tiled_calls, kind, n, d, frac, dtype, metric):
    x = _data(kind, n, d, dtype, seed=n)
    k = int(n * frac)
    a = hminsel.select(x, k, metric=metric, backend=name, algorithm="streaming")
    b = hminsel.select(x, k, metric=metric, backend=name, algorithm="lazy")
    assert tiled_calls, "the tiled head never ran"
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.radii, b.radii)


def test_capped_head_takes_many_rounds(name, tiled_calls, monkeypatch):
    monkeypatch.setattr(cpu_head, "HEAD_TILE_BYTES", 400 * 400 * 4)  # M <= 400: rounds refresh the rest
    x = _unit(_data("clustered", 4000, 48, np.float32, seed=5))
    a = hminsel.select(x, 2000, backend=name, algorithm="streaming")
    b = hminsel.select(x, 2000, backend=name, algorithm="lazy")
    assert len(tiled_calls) >= 5 and max(tiled_calls) <= 400
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.radii, b.radii)


def test_numpy_oracle_agrees_on_float64(name, tiled_calls):
    x = _data("gaussian", 1500, 64, np.float64, seed=9)
    a = hminsel.select(x, 750, metric="cosine", backend="numpy", algorithm="streaming")
    b = hminsel.select(x, 750, metric="cosine", backend=name)
    assert tiled_calls
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_allclose(a.radii, b.radii, rtol=1e-12)


def test_auto_takes_the_tiled_head_on_the_seed_workload(name, monkeypatch):
    calls = []
    cls = type(backends.get("cpu"))
    orig = cls.head_greedy_tiled
    monkeypatch.setattr(cls, "head_greedy_tiled", lambda self, xh, *a: calls.append(1) or orig(self, xh, *a))
    x = _data("gaussian", 4000, 128, np.float32, seed=2)
    sel = hminsel.select(x, 0.5, metric="cosine", backend=name)
    assert sel.algorithm == "lazy" and calls
    np.testing.assert_array_equal(
        sel.indices, hminsel.select(x, 0.5, metric="cosine", backend=name, algorithm="streaming").indices)


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("metric", ["cosine", "l2"])
def test_far_tiles_are_skipped(name, tiled_calls, monkeypatch, dtype, metric):
    monkeypatch.setattr(cpu_head, "TILE", 64)
    monkeypatch.setattr(cpu_head, "SAMPLE", 256)
    seen = []
    orig = cpu_head._needed
    monkeypatch.setattr(cpu_head, "_needed", lambda *a: seen.append(orig(*a)) or seen[-1])
    x = clustered(3000, 48, clusters=12, spread=0.02, seed=4, dtype=dtype)
    x[1500:1600] = x[1400:1500]  # duplicate rows: zero values
    a = hminsel.select(x, 1500, metric=metric, backend=name, algorithm="streaming")
    b = hminsel.select(x, 1500, metric=metric, backend=name, algorithm="lazy")
    assert any(not need.all() for need in seen), "no tile pair was skipped"
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.radii, b.radii)




@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_dots_blocks_cover_the_needed_pairs(name, dtype, monkeypatch):
    """Small blocks: the upper triangle in many GEMMs, mirrored; skipped tile pairs stay unwritten."""
    monkeypatch.setattr(cpu_head, "TILE", 48)
    monkeypatch.setattr(cpu_head, "BLOCK_COLS", 40)
    cpu = backends.get(name)
    from hminsel.backends.cpu import _cpu
    xc = _data("gaussian", 301, 17, dtype, seed=4)
    ref = xc.astype(np.float64) @ xc.astype(np.float64).T
    tol = 1e-4 if dtype == np.float32 else 1e-12
    starts, need, blocks = cpu_head._items(301, [(0, 301)], np.ones((1, 1), bool))
    assert len(blocks) > 10 and need.shape == (1, 1)
    np.testing.assert_allclose(cpu_head._dots(_cpu, xc, blocks), ref, rtol=tol, atol=tol)
    bounds = [(0, 100), (100, 180), (180, 240), (240, 301)]
    mask = np.eye(4, dtype=bool)
    mask[0, 2] = mask[2, 0] = True  # row 0: two runs of needed tiles
    starts, need, blocks = cpu_head._items(301, bounds, mask)
    np.testing.assert_array_equal(starts, [0, 100, 180, 240, 301])
    np.testing.assert_array_equal(need, mask)
    got = cpu_head._dots(_cpu, xc, blocks)
    for s, (a, b) in enumerate(bounds):
        for t, (c, e) in enumerate(bounds):
            if mask[s, t]:
                np.testing.assert_allclose(got[a:b, c:e], ref[a:b, c:e], rtol=tol, atol=tol)
            else:
                assert np.isnan(got[a:b, c:e]).all()  # never written (poisoned_dots)
    assert cpu.name == name


@pytest.mark.parametrize("m,threads", [(1024, 2), (1500, 2), (1024, 4), (4096, 2), (200, 2), (1024, 1)])
def test_dense_head_strips_keep_every_thread_busy(name, m, threads):
    """A dense head's triangle in at least two row strips a thread (TILE rows at most,
    STRIP_MIN at least), covering it once; handed out largest first, no thread idles long."""
    _, _, blocks = cpu_head._items(m, [(0, m)], np.ones((1, 1), bool), threads)
    covered = np.zeros((m, m), np.int64)
    for r0, r1, c0, c1 in blocks:
        assert c0 >= r0 and r1 - r0 <= cpu_head.TILE and c1 - c0 <= cpu_head.BLOCK_COLS
        covered[r0:r1, c0:c1] += 1
    np.testing.assert_array_equal(np.triu(covered), np.triu(np.ones((m, m), np.int64)))
    strips = {b[0] for b in blocks}
    assert len(strips) >= min(2 * threads, -(-m // cpu_head.STRIP_MIN))
    load = np.zeros(threads)
    for r0, r1, c0, c1 in sorted(blocks, key=lambda b: -(b[1] - b[0]) * (b[3] - b[2])):
        load[np.argmin(load)] += (r1 - r0) * (c1 - c0)
    assert load.max() <= 1.2 * load.mean() or m < 2 * threads * cpu_head.STRIP_MIN


def test_mirror_dots_checks_its_block(name):
    from hminsel.backends.cpu import _cpu
    dots = np.arange(36, dtype=np.float32).reshape(6, 6)
    _cpu.mirror_dots(dots, 0, 2, 3, 6)
    np.testing.assert_array_equal(dots[3:6, 0:2], dots[0:2, 3:6].T)
    with pytest.raises(ValueError, match="r0 <= r1 <= c0"):
        _cpu.mirror_dots(dots, 0, 4, 3, 6)  # the block would cross the diagonal
    with pytest.raises(ValueError, match="square"):
        _cpu.mirror_dots(np.zeros((3, 4), np.float32), 0, 1, 1, 3)


def test_scratch_reuses_one_buffer_while_alive(name, monkeypatch):
    monkeypatch.undo()  # the real _dots_buffer
    keep = cpu_head.Scratch()
    a = cpu_head._dots_buffer(300, np.float32)
    b = cpu_head._dots_buffer(200, np.float32)
    assert a.shape == (300, 300) and b.shape == (200, 200) and np.shares_memory(a, b)
    assert not np.shares_memory(cpu_head._dots_buffer(10, np.float64), a)  # another dtype: another
    del keep, a, b
    assert not np.shares_memory(cpu_head._dots_buffer(50, np.float32), cpu_head._dots_buffer(50, np.float32))


def test_dots_pages(name):
    """The dots buffer: small pages until a dense round asks for huge ones; writable, freed with its views."""
    import gc
    import mmap
    pages = cpu_head.Pages(1000, np.float32)
    a = pages.view(20, dense=False)
    a[:] = 1.5
    assert not pages.huge and a.flags.writeable and a.shape == (20, 20)
    b = pages.view(30, dense=True)
    assert np.shares_memory(a, b) and (b.ravel()[:400] == 1.5).all()
    assert pages.huge == hasattr(mmap, "MADV_HUGEPAGE")
    ref = weakref.ref(pages)
    del pages
    gc.collect()
    assert ref() is None and (a == 1.5).all()  # the views keep the mapping
