"""Rows read in place: the cpu backend's kernels widen and normalise each row as they read it.

``select`` and ``nearest`` on the cpu backend copy neither a float16 x (l2) nor
any x for cosine: every kernel that reads rows of x widens them exactly and
divides them by their norms (csrc/cpu/rows.h), so picks, radii and distances
are bit for bit those of the prepared copy, on every path (streaming, lazy
rounds, pruned and unpruned folds, GEMM windows, the bucket FPS).
"""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import hminsel
from hminsel import _inputs, backends
from hminsel._rows import UnitRows
from hminsel.backends import cpu_gemm
from conftest import clustered

pytestmark = pytest.mark.skipif(backends.why_not("cpu") is not None, reason="cpu backend unavailable")


def same(a, b):
    np.testing.assert_array_equal(a.indices, b.indices)
    np.testing.assert_array_equal(a.radii, b.radii)


@pytest.mark.parametrize("n,d,k", [(3000, 37, 400), (2000, 128, 2000), (6000, 64, 300), (500, 9, 60)],
                         ids=str)
@pytest.mark.parametrize("algorithm", ["lazy", "streaming"])
def test_select_on_float16_equals_its_float32_copy(n, d, k, algorithm):
    x = clustered(n, d, clusters=15, spread=0.3, seed=d, dtype=np.float16)  # odd d: scalar tails
    wide = x.astype(np.float32)
    got = hminsel.select(x, k, algorithm=algorithm, backend="cpu")
    same(got, hminsel.select(wide, k, algorithm=algorithm, backend="cpu"))
    if algorithm == "lazy":  # small heads: many rounds, pruned and dense folds
        same(hminsel.select(x, k, head_size=16, backend="cpu"),
             hminsel.select(wide, k, head_size=16, backend="cpu"))


def test_warm_start_and_skipped_rows_on_float16():
    x = clustered(4000, 48, seed=1, dtype=np.float16)
    x[[7, 900]] = np.nan
    init = [3, 1500, 2500] + list(range(100, 180))  # many seeds: block_min's GEMM path
    wide = x.astype(np.float32)
    for kw in ({"nonfinite": "skip"}, {"nonfinite": "skip", "init": init}):
        same(hminsel.select(x, 600, backend="cpu", **kw), hminsel.select(wide, 600, backend="cpu", **kw))


@pytest.mark.parametrize("m", [5, 40, 300])  # the direct path, the few-centre kernel, the GEMM path
def test_nearest_on_float16_equals_its_float32_copy(m):
    x = clustered(5000, 96, seed=2, dtype=np.float16)
    centers = clustered(m, 96, seed=3)
    dist, idx = hminsel.nearest(x, centers, backend="cpu")
    want_dist, want_idx = hminsel.nearest(x.astype(np.float32), centers, backend="cpu")
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(dist, want_dist)


@pytest.fixture
def native():
    from hminsel.backends import cpu
    return cpu._cpu


@pytest.mark.parametrize("metric", ["l2", "cosine"])  # float16 rows; unit rows of them
@pytest.mark.parametrize("kernel", ["fused", "blas", "few"])
def test_gemm_windows_read_x_in_place(monkeypatch, native, kernel, metric):
    """Lists of 2: most rows of near-duplicate clusters need a window pass over x
    (few: the one-pass kernel, whose windows hold several centres here)."""
    if kernel != "blas" and not native.fused_gemm_available():
        pytest.skip("no AVX-512 fused GEMM in this build")
    if kernel == "blas":
        monkeypatch.setattr(cpu_gemm, "fused", lambda cpu, x: False)
    monkeypatch.setattr(cpu_gemm, "TOP_K", 2)
    monkeypatch.setattr(cpu_gemm, "GEMM_ROWS", 128)
    monkeypatch.setattr(cpu_gemm, "GEMM_COLS", 64)
    x = clustered(1500, 64, clusters=6, spread=0.01, seed=4, dtype=np.float16)
    rows = _inputs.prepare(x, metric, in_place=True)
    copy = _inputs.prepare(x, metric)
    y = np.ascontiguousarray(copy[::5] if kernel != "few" else copy[::25])
    got = [np.empty(len(x), np.float32), np.empty(len(x), np.int64)]
    want = [np.empty(len(x), np.float32), np.empty(len(x), np.int64)]
    if kernel == "few":
        cpu_gemm.block_min_few(native, rows, y, None, *got)
        native.block_min(copy, y, None, False, *want)  # the direct form
    else:
        assert cpu_gemm.block_min(native, rows, y, None, False, *got) > 0  # the window pass ran
        cpu_gemm.block_min(native, copy, y, None, False, *want)
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_read_rows_is_exact_and_checks_its_arguments(native):
    x = np.random.default_rng(5).standard_normal((50, 21)).astype(np.float16)
    out = np.empty((3, 21), np.float32)
    native.read_rows(x, np.array([4, 0, 49]), 0, out)
    np.testing.assert_array_equal(out, x[[4, 0, 49]].astype(np.float32))
    native.read_rows(x, None, 47, out)
    np.testing.assert_array_equal(out, x[47:].astype(np.float32))
    with pytest.raises(ValueError, match="must lie in x"):
        native.read_rows(x, None, 48, out)
    with pytest.raises(ValueError, match="not a row of x"):
        native.read_rows(x, np.array([0, 1, 50]), 0, out)
    with pytest.raises(ValueError, match="out must be a writable C-contiguous float64"):
        native.read_rows(x.astype(np.float64), None, 0, out)


def test_the_cpu_backend_takes_rows_out_widened():
    cpu = backends.get("cpu")
    x = np.random.default_rng(6).standard_normal((100, 16)).astype(np.float16)
    rows = cpu.take(x, np.array([5, 2, 99]))
    assert rows.dtype == np.float32 and rows.flags.c_contiguous
    np.testing.assert_array_equal(rows, x[[5, 2, 99]].astype(np.float32))


def test_select_holds_no_float32_copy_of_float16_rows():
    """The selection's memory beyond x is O(N + M d), not a widened x (2x its bytes)."""
    x = clustered(40_000, 256, seed=7, dtype=np.float16)  # 20 MB
    hminsel.select(x[:2000], 50, backend="cpu")  # imports and first-call buffers
    for algorithm, k in [("streaming", 20), ("lazy", 400)]:
        tracemalloc.start()
        try:
            hminsel.select(x, k, algorithm=algorithm, backend="cpu")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 0.5 * x.nbytes, (algorithm, peak, x.nbytes)
    assert _inputs.prepare(x, "l2", in_place=True) is x
    assert _inputs.prepare(x[:, ::2], "l2", in_place=True).dtype == np.float32  # a strided view


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32])
def test_strided_views_are_gathered_as_stored(metric, dtype):
    """A strided view (embeddings cut to their first dimensions, every other row) is gathered
    once in its own dtype and then read in place: its contiguous copy's picks, and float16
    rows are not widened into a float32 copy (twice their bytes)."""
    big = clustered(20_000, 256, seed=8, dtype=dtype)
    for view in (big[:, :96], big[::2]):
        want = hminsel.select(np.ascontiguousarray(view), 300, metric=metric, backend="cpu")
        same(hminsel.select(view, 300, metric=metric, backend="cpu"), want)
    view = big[:, :128]
    res = hminsel.hmin(view, metric=metric, backend="cpu")
    assert res == hminsel.hmin(np.ascontiguousarray(view), metric=metric, backend="cpu")
    dist, idx = hminsel.nearest(view, view[:50], metric=metric, backend="cpu")
    want_dist, want_idx = hminsel.nearest(np.ascontiguousarray(view), view[:50], metric=metric, backend="cpu")
    assert np.array_equal(dist, want_dist) and np.array_equal(idx, want_idx)
    hminsel.select(view[:2000], 20, metric=metric, backend="cpu")  # first-call buffers
    tracemalloc.start()
    try:
        hminsel.select(view, 20, metric=metric, algorithm="streaming", backend="cpu")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1.5 * view.size * view.itemsize, (peak, view.size * view.itemsize)


@pytest.fixture
def copied(monkeypatch):
    """Run a call the way it ran before rows were read in place: through the prepared copy."""
    def run(fn, *args, **kwargs):
        with monkeypatch.context() as m:
            m.setattr(backends, "host_reads_in_place", lambda backend: False)
            return fn(*args, **kwargs)
    return run


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
@pytest.mark.parametrize("algorithm", ["lazy", "streaming"])
def test_cosine_select_reads_unit_rows_in_place(copied, dtype, algorithm):
    x = clustered(3000, 37, clusters=15, spread=0.3, seed=8, dtype=dtype)
    for kw in ({}, {"head_size": 16} if algorithm == "lazy" else {}):
        got = hminsel.select(x, 500, metric="cosine", algorithm=algorithm, backend="cpu", **kw)
        same(got, copied(hminsel.select, x, 500, metric="cosine", algorithm=algorithm, backend="cpu", **kw))


@pytest.mark.parametrize("d,k", [(3, 10), (3, 300), (96, 1900)], ids=str)  # small d: the
def test_cosine_select_on_every_path(copied, d, k):                       # 1-thread fold, bucket
    x = clustered(2000, d, clusters=9, spread=0.2, seed=d, dtype=np.float32)
    x[[5, 77]] = np.nan
    init = list(range(200, 280)) if d > 3 else None  # many seeds: block_min's GEMM path
    kw = dict(metric="cosine", backend="cpu", nonfinite="skip", init=init)
    same(hminsel.select(x, k, **kw), copied(hminsel.select, x, k, **kw))


@pytest.mark.parametrize("m", [5, 40, 300])
def test_cosine_nearest_reads_unit_rows_in_place(copied, m):
    x = clustered(5000, 96, seed=9)
    centers = clustered(m, 96, seed=10)
    dist, idx = hminsel.nearest(x, centers, metric="cosine", backend="cpu")
    want_dist, want_idx = copied(hminsel.nearest, x, centers, metric="cosine", backend="cpu")
    np.testing.assert_array_equal(idx, want_idx)
    np.testing.assert_array_equal(dist, want_dist)


def test_cosine_zero_rows_still_raise_in_place():
    x = clustered(500, 16, seed=11)
    x[321] = 0.0
    with pytest.raises(ValueError, match="row 321 of x is all zeros"):
        hminsel.select(x, 10, metric="cosine", backend="cpu")


def test_unit_rows_are_read_as_the_prepared_copy(native):
    x = clustered(700, 45, seed=12)
    rows = _inputs.prepare(x, "cosine", in_place=True)
    assert isinstance(rows, UnitRows) and rows.raw is x and rows.dtype == np.float32
    assert len(rows) == 700 and rows.shape == (700, 45) and len(rows[100:300]) == 200
    copy = _inputs.prepare(x, "cosine")
    out = np.empty((3, 45), np.float32)
    native.read_rows(rows[100:300], np.array([0, 199, 7]), 0, out)
    np.testing.assert_array_equal(out, copy[[100, 299, 107]])
    np.testing.assert_array_equal(backends.get("cpu").take(rows, [9, 3]), copy[[9, 3]])
    np.testing.assert_array_equal(backends.get("cpu").take(rows, 9), copy[9])  # one row: 1-D
    with pytest.raises(TypeError, match="slices of rows only"):
        rows[[1, 2]]
    mind = np.full(700, np.inf, np.float32)
    want = np.full(700, np.inf, np.float32)
    assert native.step(rows, mind, 4) == native.step(copy, want, 4)
    np.testing.assert_array_equal(mind, want)


def test_cosine_select_holds_no_copy_of_x():
    x = clustered(40_000, 128, seed=13)  # 20 MB of float32
    hminsel.select(x[:2000], 50, metric="cosine", backend="cpu")
    for algorithm, k in [("streaming", 20), ("lazy", 400)]:
        tracemalloc.start()
        try:
            hminsel.select(x, k, metric="cosine", algorithm=algorithm, backend="cpu")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        assert peak < 0.5 * x.nbytes, (algorithm, peak, x.nbytes)


def test_cosine_results_do_not_depend_on_the_layout(copied):
    """float64 squares round: the norms' sum order is fixed on every path."""
    x = clustered(3000, 50, clusters=12, spread=0.2, seed=14, dtype=np.float64)
    want = hminsel.select(x, 400, metric="cosine", backend="cpu")
    same(hminsel.select(np.asfortranarray(x), 400, metric="cosine", backend="cpu"), want)
    same(copied(hminsel.select, x, 400, metric="cosine", backend="cpu"), want)


@pytest.mark.parametrize("dtype", [np.float16, np.float64])
def test_cosine_skip_and_nearest_on_other_dtypes(copied, dtype):
    x = clustered(3000, 40, clusters=12, spread=0.2, seed=15, dtype=dtype)
    x[[3, 2000]] = np.nan
    kw = dict(metric="cosine", backend="cpu", nonfinite="skip", head_size=16)
    same(hminsel.select(x, 500, **kw), copied(hminsel.select, x, 500, **kw))
    ok = np.ascontiguousarray(x[np.isfinite(x).all(axis=1)])
    got = hminsel.nearest(ok, ok[::40], metric="cosine", backend="cpu")
    want = copied(hminsel.nearest, ok, ok[::40], metric="cosine", backend="cpu")
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_in_place_picks_do_not_depend_on_the_thread_count():
    from hminsel.backends import cpu
    x = clustered(20_000, 64, clusters=30, spread=0.3, seed=17, dtype=np.float16)
    runs = []
    try:
        for threads in (1, 2, 3):
            cpu.set_num_threads(threads)
            runs.append([hminsel.select(x, 800, metric=m, backend="cpu") for m in ("l2", "cosine")])
    finally:
        cpu.set_num_threads()
    for run in runs[1:]:
        for a, b in zip(run, runs[0]):
            same(a, b)


def test_unit_rows_are_recognised_by_type_only(native):
    class Lookalike:  # raw and norms attributes alone do not make unit rows
        raw = np.zeros((4, 3), np.float32)
        norms = np.ones(4, np.float32)
    with pytest.raises(ValueError, match="float16, float32 or float64 array; got Lookalike"):
        native.step(Lookalike(), np.zeros(4, np.float32), 0)


@pytest.mark.parametrize("dtype,metric", [(np.float16, "l2"), (np.float16, "cosine"),
                                          (np.float32, "cosine"), (np.float64, "cosine")], ids=str)
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "blas"])
def test_hmin_reads_x_in_place(monkeypatch, copied, native, dtype, metric, fused):
    """Column tiles, candidate values and windows of h_min all read x where it lies."""
    if fused and (dtype == np.float64 or not native.fused_gemm_available()):
        pytest.skip("the fused GEMM is float32 on AVX-512 builds")
    if not fused:
        monkeypatch.setattr(cpu_gemm, "fused", lambda cpu, x: False)
    monkeypatch.setattr(cpu_gemm, "GEMM_ROWS", 256)  # several row and column tiles, and
    monkeypatch.setattr(cpu_gemm, "GEMM_COLS", 512)  # columns re-made a tile at a time:
    monkeypatch.setattr(cpu_gemm, "PRECENTRE_BYTES", 0)
    x = clustered(1500, 48, clusters=10, spread=0.05, seed=18, dtype=dtype)
    x[[9, 1000]] = x[[400, 30]]  # duplicates: ties at 0
    x[77] = np.nan
    got = hminsel.hmin(x, metric=metric, backend="cpu", nonfinite="skip")
    want = copied(hminsel.hmin, x, metric=metric, backend="cpu", nonfinite="skip")
    assert (got.value, got.i, got.j) == (want.value, want.i, want.j) == (0.0, 9, 400)
    y = np.delete(x, [9, 1000, 77], axis=0)  # no duplicates left: a positive closest pair
    got, want = (hminsel.hmin(y, metric=metric, backend="cpu"),
                 copied(hminsel.hmin, y, metric=metric, backend="cpu"))
    assert (got.value, got.i, got.j) == (want.value, want.i, want.j) and got.value > 0


@pytest.mark.parametrize("precentre", [True, False], ids=["panels-once", "panels-a-tile-at-a-time"])
@pytest.mark.parametrize("dtype,metric", [(np.float16, "l2"), (np.float32, "cosine")], ids=str)
def test_closest_rows_in_place_equal_the_copy_bitwise(monkeypatch, dtype, metric, precentre):
    """Every candidate value, index and window row of h_min, not only the final pair."""
    monkeypatch.setattr(cpu_gemm, "GEMM_ROWS", 256)
    monkeypatch.setattr(cpu_gemm, "GEMM_COLS", 512)
    if not precentre:
        monkeypatch.setattr(cpu_gemm, "PRECENTRE_BYTES", 0)
    cpu = backends.get("cpu")
    x = clustered(1800, 40, clusters=8, spread=0.05, seed=19, dtype=dtype)
    rows = _inputs.prepare(x, metric, in_place=True)
    assert rows is x if metric == "l2" else isinstance(rows, UnitRows)
    got = cpu.closest_rows(rows)
    want = cpu.closest_rows(_inputs.prepare(x, metric))
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)
