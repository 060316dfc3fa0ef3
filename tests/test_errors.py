"""Bad input gets a clear error naming what was expected and what came; input stays untouched."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

import hminsel

X = np.random.default_rng(0).standard_normal((10, 3)).astype(np.float32)


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(k=0), ValueError, r"k must be in \[1, 10\].*got 0"),
    (dict(k=-3), ValueError, r"got -3"),
    (dict(k=11), ValueError, r"k must be in \[1, 10\].*got 11"),
    (dict(k=1.5), ValueError, r"fractional k must be in \(0, 1\]; got 1.5$"),  # no int hint
    (dict(k=0.0), ValueError, r"fractional k"),
    (dict(k=True), TypeError, r"k must be an int"),
    (dict(k="3"), TypeError, r"k must be an int"),
    (dict(k=3, metric="cos"), ValueError, r"metric must be one of .*got 'cos'"),
    (dict(k=3, start=10), ValueError, r"start must be in \[0, 9\]; got 10"),
    (dict(k=3, start=-1), ValueError, r"start must be in \[0, 9\]; got -1"),
    (dict(k=3, start="first"), ValueError, r"start must be a row index or 'random'"),
    (dict(k=3, start="Random", seed=0), ValueError,  # the misspelt start, not the seed's error
     r"start must be a row index or 'random'; got 'Random'"),
    (dict(k=3, init=[1, 1]), ValueError, r"init has repeated indices"),
    (dict(k=5, init=[7, 3, 8, 2, 3]), ValueError, r"repeated indices: row 3 at positions 1 and 4; pass each row once"),
    (dict(k=5.0), ValueError, r"got 5.0 \(a count is an int: k = int\(5.0\) = 5\)"),
    (dict(k=1e30), ValueError, r"got 1e\+30$"),  # nor past N
    (dict(k=3, init=[1, 12]), ValueError, r"init entries must be in \[0, 9\]; got 12"),
    (dict(k=2, init=[1, 2, 3]), ValueError, r"init has 3 picks but k = 2"),
    (dict(k=0.2, init=[1, 2, 3], mask=np.arange(10) >= 5), ValueError,
     r"init has 3 picks but k = 0.2 \(2 of 5 rows the mask allows and 3 init rows outside them\)"),
    (dict(k=3, init=[1], mask=np.zeros(10, bool)), ValueError,
     r"k must be in \[1, 1\] \(0 rows the mask allows and 1 init row outside them\); got 3"),
    (dict(k=3, init=np.array([[5, 1]])), ValueError,
     r"init must be a 1-D sequence of row indices; got shape \(1, 2\)"),
    (dict(k=3, backend="gpu"), ValueError, r"unknown backend 'gpu'"),
    (dict(k=3, algorithm="fast"), ValueError, r"algorithm must be one of"),
    (dict(k=3, nonfinite="drop"), ValueError, r"nonfinite must be 'raise' or 'skip'"),
], ids=lambda v: str(v)[:40])
def test_select_rejects(kwargs, error, match):
    with pytest.raises(error, match=match):
        hminsel.select(X, **kwargs)


@pytest.mark.parametrize("progress", ["yes", 1, 0.5], ids=repr)
def test_progress_that_is_not_a_bool_or_callable_raises(progress):
    match = r"progress must be True, False or a callable\(done, total\); got "
    for call in (lambda: hminsel.select(X, 3, progress=progress),
                 lambda: hminsel.hmin(X, progress=progress),
                 lambda: hminsel.nearest(X, X[:2], progress=progress)):
        with pytest.raises(TypeError, match=match):
            call()


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


def test_sparse_inputs_say_how_to_make_them_dense():
    torch = pytest.importorskip("torch")
    dense = torch.arange(40.0).reshape(10, 4)
    with pytest.raises(TypeError, match=r"x must be a dense tensor; got a sparse_coo tensor of "
                                        r"shape \(10, 4\): pass x.to_dense\(\)"):
        hminsel.select(dense.to_sparse(), 3)
    with pytest.raises(TypeError, match=r"centers must be a dense tensor"):
        hminsel.nearest(dense, dense[:2].to_sparse())
    sparse = pytest.importorskip("scipy.sparse")
    with pytest.raises(TypeError, match=r"x must be a dense array; got a scipy.sparse csr_matrix "
                                        r"of shape \(10, 4\): pass x.toarray\(\)"):
        hminsel.hmin(sparse.csr_matrix(dense.numpy()))


def test_nonfinite_rows_name_the_first_and_leave_input_untouched():
    x = X.copy()
    x[6, 1] = np.nan
    x[8] = np.inf
    before = x.copy()
    with pytest.raises(hminsel.NonfiniteRows, match=r"2 row\(s\) with NaN or inf; the first is row 6") as err:
        hminsel.select(x, 3)
    assert isinstance(err.value, ValueError) and err.value.rows.tolist() == [6, 8]
    assert err.value.rows.dtype == np.int64 and type(err.value).__module__ == "hminsel"
    with pytest.raises(hminsel.NonfiniteRows, match=r"first is row 6"):
        hminsel.hmin(x)
    with pytest.raises(hminsel.NonfiniteRows, match=r"centers has 2 row\(s\)"):
        hminsel.nearest(X, x)
    again = pickle.loads(pickle.dumps(err.value))  # a worker process's error reaches its parent
    assert type(again) is hminsel.NonfiniteRows and str(again) == str(err.value)
    assert again.rows.tolist() == [6, 8]
    with pytest.raises(hminsel.NonfiniteRows, match="first is row 6"):  # before the scale's error
        hminsel.select(x * 1e30, 3)
    np.testing.assert_array_equal(x, before)
    with pytest.raises(ValueError, match=r"k must be in \[1, 8\]"):
        hminsel.select(x, 9, nonfinite="skip")
    with pytest.raises(ValueError, match=r"start row 6 holds NaN or inf.*start='random'.*start=0"):
        hminsel.select(x, 3, start=6, nonfinite="skip")


def test_cosine_zero_row():
    x = X.copy()
    x[4] = 0
    with pytest.raises(ValueError, match=r"cosine.*row 4 of x is all zeros"):
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


def test_gpu_arrays_on_a_host_backend_are_refused_clearly(monkeypatch):
    """A GPU array with a host backend named (x, or centres beside host x): a clear error, not
    a copy behind the user's back. Faked: on_gpu says so of one marked array."""
    from hminsel import _device
    gpu = X.copy()
    monkeypatch.setattr(_device, "on_gpu", lambda a: a is gpu)
    for call in (lambda: hminsel.select(gpu, 2, backend="cpu"),
                 lambda: hminsel.hmin(gpu, backend="numpy"),
                 lambda: hminsel.select_batched(gpu, 2, backend="cpu")):
        with pytest.raises(ValueError, match=r"x is on a GPU, but backend='(cpu|numpy)' runs on "
                                             r"the host: pass a host copy \(x\.cpu\(\)"):
            call()
    with pytest.raises(ValueError, match="centers is on a GPU, but x is on the host"):
        hminsel.nearest(X, gpu, backend="cpu")


def test_big_endian_input_is_converted_not_modified():
    x = X.astype(">f4")
    before = x.copy()
    sel = hminsel.select(x, 4)
    np.testing.assert_array_equal(sel.indices, hminsel.select(X, 4).indices)
    assert hminsel.hmin(x) == hminsel.hmin(X)
    np.testing.assert_array_equal(hminsel.nearest(x, x[:2].astype(">f8"))[1],
                                  hminsel.nearest(X, X[:2])[1])
    assert x.dtype == np.dtype(">f4") and np.array_equal(x, before)


def test_nearest_messages_name_centers_and_the_skip_option():
    x = X.copy()
    x[2, 0] = np.nan
    with pytest.raises(ValueError, match=r"x has 1 row\(s\).*row 2\. Clean them, or leave them out "
                                         r"with nonfinite='skip'$"):
        hminsel.nearest(x, X[:2])
    with pytest.raises(ValueError, match=r"centers has 1 row\(s\).*row 2\..*nonfinite='skip'"):
        hminsel.nearest(X, x[:3])
    with pytest.raises(ValueError, match=r"nonfinite must be .raise. or .skip.; got 'drop'"):
        hminsel.nearest(X, X[:2], nonfinite="drop")
    with pytest.raises(ValueError, match=r"centers is empty: got shape \(0, 3\)"):
        hminsel.nearest(X, X[:0])


@pytest.mark.parametrize("kwargs,error,match", [
    (dict(head_size=0), ValueError, r"head_size must be a positive integer or None.*got 0"),
    (dict(head_size=-4), ValueError, r"head_size must be a positive integer.*got -4"),
    (dict(head_size=2.5), TypeError, r"head_size must be a positive integer.*got 2.5"),
    (dict(head_size=8, algorithm="streaming"), ValueError,
     r"head_size=8 only applies to algorithm='lazy' .*got algorithm='streaming'"),
    (dict(head_size=8, algorithm="bucket"), ValueError, r"head_size=8 only applies .*'bucket'"),
    (dict(seed=3), ValueError, r"seed=3 only applies to start='random'; got start=0"),
    (dict(start=2, seed=3), ValueError, r"seed=3 only applies to start='random'; got start=2"),
    (dict(init=[1], seed=3), ValueError, r"seed=3 only applies to start='random'; got init"),
    (dict(start="random", seed=-1), ValueError, r"seed must be a non-negative integer.*got -1"),
    (dict(start="random", seed="a"), TypeError, r"seed must be a non-negative integer"),
    (dict(start=4, init=[1]), ValueError, r"start and init were both given \(start=4\)"),
    (dict(start="random", init=[1]), ValueError, r"start and init were both given"),
], ids=lambda v: str(v)[:40])
def test_ignored_arguments_raise(kwargs, error, match):
    with pytest.raises(error, match=match):
        hminsel.select(X, 3, **{"algorithm": "lazy", **kwargs})


def test_nonfinite_skip_messages():
    x = X.copy()
    x[:] = np.nan
    with pytest.raises(ValueError, match=r"every row of x holds NaN or inf: nonfinite='skip' left "
                                         r"no row to select"):
        hminsel.select(x, 3, nonfinite="skip")
    x = X.copy()
    x[0, 1] = np.inf
    x[1] = np.nan
    assert hminsel.select(x, 3, nonfinite="skip").indices[0] == 2  # the default start moves on
    with pytest.raises(ValueError, match=r"start row 1 holds NaN or inf.*pass start='random' "
                                         r".*start=2"):
        hminsel.select(x, 3, start=1, nonfinite="skip")
    with pytest.raises(ValueError, match=r"init entry 1 holds NaN or inf.*drop it from init"):
        hminsel.select(x, 3, init=[4, 1], nonfinite="skip")
    sel = hminsel.select(x, 3, start="random", seed=0, nonfinite="skip")
    assert not {0, 1} & set(sel.indices.tolist())


@pytest.mark.parametrize("init, match", [
    ({5, 17}, r"got a set, which has no order: pass sorted\(init\) or a list"),
    (np.arange(len(X)) < 3, r"got a boolean array \(np\.flatnonzero\(mask\) gives its rows"),
], ids=["set", "bool-mask"])
def test_init_that_is_not_ordered_rows_says_what_to_pass(init, match):
    for call in (lambda: hminsel.select(X, 4, init=init),
                 lambda: hminsel.select_batched(X, 4, init=init)):
        with pytest.raises(TypeError, match=match):
            call()


def test_one_dimensional_input_says_how_to_make_rows():
    column = np.empty(4, object)
    column[:] = [np.ones(3, np.float32) * i for i in range(4)]  # a pandas column of embeddings
    with pytest.raises(ValueError, match=r"got shape \(4,\): one array a row.*np.stack\(x\)"):
        hminsel.select(column, 2)
    with pytest.raises(ValueError, match=r"x\[None, :\].*x\[:, None\]"):
        hminsel.hmin(np.arange(5.0))


def test_masked_arrays_and_object_frames_say_what_to_pass():
    x = np.random.default_rng(0).standard_normal((40, 3))
    masked = np.ma.masked_array(x, mask=np.zeros_like(x, bool))
    masked[:30] = np.ma.masked
    with pytest.raises(TypeError, match=r"masked array.*pass x.data with mask=~np.ma.getmaskarray"):
        hminsel.select(masked, 3)
    assert hminsel.select(np.ma.masked_array(x), 3).indices.tolist() == hminsel.select(x, 3).indices.tolist()
    with pytest.raises(TypeError, match=r"got dtype object; Python objects: .*na_value=np.nan"):
        hminsel.select(np.array([[1.0, None], [2.0, 3.0]], dtype=object), 1)


def test_results_compare_as_objects_and_hmin_indexes():
    import copy
    x = np.random.default_rng(0).standard_normal((40, 3))
    sel = hminsel.select(x, 3)
    assert sel == sel and sel != copy.deepcopy(sel) and hash(sel) == hash(sel)
    batched = hminsel.select_batched(x, 2, ptr=[0, 20, 40])
    assert batched == batched and isinstance(hash(batched), int)
    res = hminsel.hmin(x)
    value, i, j = res
    assert (res[0], res[1], res[2], res[-1], len(res)) == (value, i, j, j, 3)
