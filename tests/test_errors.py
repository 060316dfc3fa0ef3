"""Bad input gets a clear error naming what was expected and what came; input stays untouched."""
from __future__ import annotations

import numpy as np
import pytest

import hminsel

X = np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(k=0), ValueError, r"k must be in \[1, 10\].*got 0"),
    (dict(k=-3), ValueError, r"got -3"),
    (dict(k=11), ValueError, r"k must be in \[1, 10\].*got 11"),
    (dict(k=1.5), ValueError, r"fractional k must be in \(0, 1\]; got 1.5"),
    (dict(k=0.0), ValueError, r"fractional k"),
    (dict(k=True), TypeError, r"k must be an int"),
    (dict(k="3"), TypeError, r"k must be an int"),
    (dict(k=3, metric="cos"), ValueError, r"metric must be one of .*got 'cos'"),
    (dict(k=3, start=10), ValueError, r"start must be in \[0, 9\]; got 10"),
    (dict(k=3, start=-1), ValueError, r"start must be in \[0, 9\]; got -1"),
    (dict(k=3, start="first"), ValueError, r"start must be a row index or 'random'"),
    (dict(k=3, init=[1, 1]), ValueError, r"init has repeated indices"),
    (dict(k=3, init=[1, 12]), ValueError, r"init entries must be in \[0, 9\]; got 12"),
    (dict(k=2, init=[1, 2, 3]), ValueError, r"init has 3 picks but k = 2"),
    (dict(k=3, backend="gpu"), ValueError, r"unknown backend 'gpu'"),
    (dict(k=3, algorithm="fast"), ValueError, r"algorithm must be one of"),
    (dict(k=3, nonfinite="drop"), ValueError, r"nonfinite must be 'raise' or 'skip'"),
], ids=lambda v: str(v)[:40])
def test_select_rejects(kwargs, error, match):
    with pytest.raises(error, match=match):
        hminsel.select(X, **kwargs)


@pytest.mark.parametrize("x,error,match", [
    (np.zeros((3, 4, 5)), ValueError, r"x must be 2-D \(N, d\); got shape \(3, 4, 5\)"),
    (np.zeros(5), ValueError, r"x must be 2-D"),
    (np.zeros((0, 4)), ValueError, r"x is empty"),
    (np.zeros((4, 0)), ValueError, r"x has no columns"),
    (np.zeros((4, 2), complex), TypeError, r"float16, float32 or float64 .* got dtype complex128"),
    (np.array([["a", "b"]]), TypeError, r"got dtype <U1"),
], ids=["3d", "1d", "empty", "no-columns", "complex", "strings"])
def test_bad_arrays(x, error, match):
    with pytest.raises(error, match=match):
        hminsel.select(x, 1)
    with pytest.raises(error, match=match):
        hminsel.hmin(x)


def test_nonfinite_rows_name_the_first_and_leave_input_untouched():
    x = X.copy()
    x[6, 1] = np.nan
    x[8] = np.inf
    before = x.copy()
    with pytest.raises(ValueError, match=r"2 row\(s\) with NaN or inf; the first is row 6"):
        hminsel.select(x, 3)
    with pytest.raises(ValueError, match=r"first is row 6"):
        hminsel.hmin(x)
    np.testing.assert_array_equal(x, before)
    with pytest.raises(ValueError, match=r"k must be in \[1, 8\]"):
        hminsel.select(x, 9, nonfinite="skip")
    with pytest.raises(ValueError, match=r"row 6 is non-finite"):
        hminsel.select(x, 3, start=6, nonfinite="skip")


def test_cosine_zero_row():
    x = X.copy()
    x[4] = 0
    with pytest.raises(ValueError, match=r"cosine.*row 4 is all zeros"):
        hminsel.select(x, 3, metric="cosine")


def test_nearest_mismatched_d():
    with pytest.raises(ValueError, match=r"centers must have the same d as x \(3\); got shape \(2, 4\)"):
        hminsel.nearest(X, np.zeros((2, 4)))


def test_backend_env_var(monkeypatch):
    monkeypatch.setenv("HMINSEL_BACKEND", "nope")
    with pytest.raises(ValueError, match=r"unknown backend 'nope'"):
        hminsel.select(X, 2)
    monkeypatch.setenv("HMINSEL_BACKEND", "numpy")
    assert hminsel.select(X, 2).backend == "numpy"


def test_torch_cuda_tensor_is_refused_clearly():
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA device to build the tensor")
    with pytest.raises(ValueError, match=r"cuda tensor"):
        hminsel.select(torch.zeros(4, 2, device="cuda"), 2)
