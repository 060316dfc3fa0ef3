"""float16 rows read in place: the cpu backend's kernels widen each row as they read it.

A float16 x is not copied to float32 for ``select`` and ``nearest`` (l2): every
kernel that reads rows of x widens them exactly (csrc/cpu/rows.h), so picks,
radii and distances are bit for bit those of the float32 copy, on every path
(streaming, lazy rounds, pruned and unpruned folds, GEMM windows).
"""
from __future__ import annotations

import tracemalloc

import numpy as np
import pytest

import hminsel
from hminsel import _inputs, backends
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


@pytest.mark.parametrize("m", [5, 300])  # the direct path, the GEMM path
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


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "blas"])
def test_gemm_windows_read_float16_rows(monkeypatch, native, fused):
    """Lists of 2: most rows of near-duplicate clusters need a window pass over x."""
    if fused and not native.fused_gemm_available():
        pytest.skip("no AVX-512 fused GEMM in this build")
    if not fused:
        monkeypatch.setattr(cpu_gemm, "fused", lambda cpu, x: False)
    monkeypatch.setattr(cpu_gemm, "TOP_K", 2)
    monkeypatch.setattr(cpu_gemm, "GEMM_ROWS", 128)
    monkeypatch.setattr(cpu_gemm, "GEMM_COLS", 64)
    x = clustered(1500, 64, clusters=6, spread=0.01, seed=4, dtype=np.float16)
    y = np.ascontiguousarray(x[::5], np.float32)
    got = [np.empty(len(x), np.float32), np.empty(len(x), np.int64)]
    want = [np.empty(len(x), np.float32), np.empty(len(x), np.int64)]
    windowed = cpu_gemm.block_min(native, x, y, None, False, *got)
    cpu_gemm.block_min(native, x.astype(np.float32), y, None, False, *want)
    assert windowed > 0  # the window pass ran
    np.testing.assert_array_equal(got[0], want[0])
    np.testing.assert_array_equal(got[1], want[1])


def test_widen_rows_is_exact_and_checks_its_arguments(native):
    x = np.random.default_rng(5).standard_normal((50, 21)).astype(np.float16)
    out = np.empty((3, 21), np.float32)
    native.widen_rows(x, np.array([4, 0, 49]), 0, out)
    np.testing.assert_array_equal(out, x[[4, 0, 49]].astype(np.float32))
    native.widen_rows(x, None, 47, out)
    np.testing.assert_array_equal(out, x[47:].astype(np.float32))
    with pytest.raises(ValueError, match="must lie in x"):
        native.widen_rows(x, None, 48, out)
    with pytest.raises(ValueError, match="not a row of x"):
        native.widen_rows(x, np.array([0, 1, 50]), 0, out)
    with pytest.raises(ValueError, match="x must be a C-contiguous float16"):
        native.widen_rows(x.astype(np.float32), None, 0, out)


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
    assert _inputs.prepare(x, "l2", keep_half=True) is x
    assert _inputs.prepare(x, "cosine", keep_half=True).dtype == np.float32  # unit rows: a copy
    assert _inputs.prepare(x[:, ::2], "l2", keep_half=True).dtype == np.float32  # a strided view
