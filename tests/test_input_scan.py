"""The input passes on the C++ pool: the non-finite row scan, float16 widening and
cosine's unit rows agree with NumPy's, and the host API takes them only where they apply."""
from __future__ import annotations

import numpy as np
import pytest

import hminsel
from hminsel import _finite, _inputs, backends

pytestmark = pytest.mark.skipif(backends.why_not("cpu") is not None, reason="cpu backend unavailable")


@pytest.fixture
def native():
    from hminsel.backends import cpu
    return cpu._cpu


def test_widen_half_is_exact_on_every_bit_pattern(native):
    bits = np.arange(1 << 16, dtype=np.uint16)
    want = bits.view(np.float16).astype(np.float32)
    nan = np.isnan(want)
    got = np.empty((1, len(bits)), np.float32)
    native.widen_half(bits.reshape(1, -1), got)  # vector path (F16C where built), one call
    tails = np.empty(len(bits), np.float32)
    for lo in range(0, len(bits), 7):  # calls of < 8 values: the scalar path
        out = np.empty((1, len(bits[lo:lo + 7])), np.float32)
        native.widen_half(bits[lo:lo + 7].reshape(1, -1), out)
        tails[lo:lo + 7] = out[0]
    for values in (got[0], tails):
        np.testing.assert_array_equal(values[~nan].view(np.uint32), want[~nan].view(np.uint32))
        assert np.isnan(values[nan]).all()


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_nonfinite_rows_match_numpy(native, dtype):
    rng = np.random.default_rng(1)
    x = rng.standard_normal((3000, 37)).astype(dtype)  # odd d: no row starts vector-aligned
    assert _finite.finite_rows(x) is None
    for row, col, value in [(0, 0, np.nan), (17, 36, np.inf), (2999, 5, -np.inf), (1500, 20, np.nan)]:
        x[row, col] = value
    x[40, 3] = np.finfo(dtype).max  # large, subnormal and -0.0 values are finite
    x[41, 4] = np.finfo(dtype).smallest_subnormal
    x[42, 5] = -0.0
    mask = _finite.finite_rows(x)
    np.testing.assert_array_equal(mask, np.isfinite(x).all(axis=1))
    bad = np.empty(len(x), np.uint8)
    bits = {2: np.uint16, 4: np.uint32, 8: np.uint64}[x.itemsize]  # the raw bits, any width
    assert native.nonfinite_rows(x.view(bits), bad) == 4


@pytest.mark.parametrize("d", [1, 3, 29])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_nonfinite_rows_over_clean_and_bad_chunks(native, dtype, d):
    """The scan reads a chunk of rows as one run of values and goes row by row only where
    that run holds a NaN or inf: every row's flag is written (over a poisoned buffer), and the
    largest finite magnitude is found in a clean chunk as in a bad one."""
    rng = np.random.default_rng(d)
    x = rng.standard_normal((70_000, d)).astype(dtype)  # several chunks (32768 values each)
    bits = {2: np.uint16, 4: np.uint32, 8: np.uint64}[x.itemsize]
    for big_row, bad_rows in [(60_000, [3, 4]), (5, [69_999]), (40_000, [])]:
        y = x.copy()
        y[big_row, d - 1] = -np.finfo(dtype).max / 4  # the largest, in a chunk of its own
        for r in bad_rows:
            y[r, 0] = np.nan if r % 2 else -np.inf
        bad, top = np.full(len(y), 7, np.uint8), np.zeros(1, bits)
        assert native.nonfinite_rows(y.view(bits), bad, top) == len(bad_rows)
        np.testing.assert_array_equal(bad, ~np.isfinite(y).all(axis=1))
        assert top.view(dtype)[0] == np.finfo(dtype).max / 4


def test_half_input_takes_the_native_passes_and_gives_the_same_picks(monkeypatch):
    x = np.random.default_rng(2).standard_normal((2000, 24)).astype(np.float16)
    for metric in ("l2", "cosine"):
        fast = hminsel.select(x, 50, metric=metric, backend="cpu")
        monkeypatch.setattr(_inputs, "_native_rows", lambda x: None)  # NumPy's passes: prepare's
        monkeypatch.setattr(_finite, "native_rows", lambda x: None)  # and the finite scan's
        slow = hminsel.select(x, 50, metric=metric, backend="cpu")
        monkeypatch.undo()
        np.testing.assert_array_equal(fast.indices, slow.indices)
        np.testing.assert_array_equal(fast.radii, slow.radii)
    wide = _inputs.prepare(x, "l2")
    assert wide.dtype == np.float32 and np.array_equal(wide, x.astype(np.float32))
    view = x[:, ::2]  # not C-contiguous: NumPy's path, same values
    assert _inputs._native_rows(view) is None
    np.testing.assert_array_equal(_inputs.prepare(view, "l2"), view.astype(np.float32))


def test_native_passes_leave_the_input_untouched():
    x = np.random.default_rng(3).standard_normal((500, 16)).astype(np.float16)
    x.setflags(write=False)  # a read-only array (a memory-mapped file, say) is fine
    before = x.copy()
    hminsel.select(x, 10, metric="cosine", backend="cpu")
    np.testing.assert_array_equal(x, before)


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_unit_rows_match_numpy(native, monkeypatch, dtype):
    rng = np.random.default_rng(4)
    x = (rng.standard_normal((2000, 37)) * rng.uniform(0.01, 100, (2000, 1))).astype(dtype)
    acc = _inputs.compute_dtype(dtype)
    out = np.empty(x.shape, acc)
    norms = np.empty(len(x), acc)
    assert native.unit_rows(x, None, out, norms) == -1
    wide = x.astype(acc)
    want = _inputs.row_norms(wide).astype(acc)  # the same float64 sum order, in NumPy
    np.testing.assert_array_equal(norms, want)
    np.testing.assert_array_equal(out, wide / want[:, None])
    einsum = np.sqrt(np.einsum("ij,ij->i", wide, wide, dtype=np.float64)).astype(acc)
    np.testing.assert_allclose(norms, einsum, rtol=2 * np.finfo(acc).eps, atol=0)  # another order
    np.testing.assert_allclose(np.linalg.norm(out.astype(np.float64), axis=1), 1.0,
                               rtol=8 * np.finfo(acc).eps)
    np.testing.assert_array_equal(_inputs.prepare(x, "cosine"), out)  # prepare's path
    np.testing.assert_array_equal(_inputs.prepare(np.asfortranarray(x), "cosine"), out)  # NumPy's
    monkeypatch.setattr(_inputs, "_native_rows", lambda x: None)  # a build without the extension
    np.testing.assert_array_equal(_inputs.prepare(x, "cosine"), out)


def test_unit_rows_of_float64_beyond_the_squares_range(native, monkeypatch):
    """float64 rows of 1e180s or 1e-180s (squares out of float64's normal range) get their norms
    from rows scaled by a power of two: the unit rows of the same rows at scale 1, in C++ and
    NumPy alike; zero rows are still found."""
    x = np.random.default_rng(5).standard_normal((300, 19))
    x[7] = 0.0
    want = _inputs.prepare(x, "cosine", valid=np.arange(300) != 7)
    for scale in (2.0 ** 600, 2.0 ** -600, 2.0 ** 1000):
        xs = x * scale
        xs[[11, 12]] = x[[11, 12]]  # rows at scale 1 among them
        out, norms = np.empty_like(x), np.empty(len(x))
        assert native.unit_rows(xs, None, out, norms) == 7
        np.testing.assert_array_equal(np.delete(out, 7, 0), np.delete(want, 7, 0))
        np.testing.assert_array_equal(norms[[11, 12]], _inputs.row_norms(x[[11, 12]]))
        np.testing.assert_array_equal(_inputs.row_norms(xs), norms * (norms != 1))  # row 7: 0
        with pytest.raises(ValueError, match="row 7 of x is all zeros"):
            _inputs.prepare(np.asfortranarray(xs), "cosine")  # NumPy's path
        for be in ("cpu", "numpy"):
            got = hminsel.select(np.delete(xs, 7, 0), 9, metric="cosine", backend=be)
            assert got.indices.tolist() == hminsel.select(np.delete(x, 7, 0), 9, metric="cosine",
                                                          backend=be).indices.tolist()


@pytest.mark.parametrize("dtype, scale, match", [
    (np.float32, 2e38, r"a norm beyond float32's range; scale x down"),
    (np.float64, 1e308, r"a norm beyond float64's range; scale x down"),
    (np.float32, 1e-45, r"a norm of .*, below float32's normal range.*scale x up"),
    (np.float32, 1e-39, r"a norm of .*, below float32's normal range.*scale x up"),
    (np.float64, 1e-320, r"a norm of .*, below float64's normal range.*scale x up"),
], ids=["f32-huge", "f64-huge", "f32-1e-45", "f32-1e-39", "f64-1e-320"])
def test_cosine_rows_of_a_norm_outside_the_normal_range_raise(monkeypatch, dtype, scale, match):
    """A unit row divided by an infinite norm would be all zeros, and by a subnormal one (a norm
    that has lost digits) would point elsewhere (radii 0.2778 for 0.2929 at 1e-45): named
    instead, on the C++ path (copied or read in place) and NumPy's."""
    x = np.random.default_rng(0).standard_normal((40, 8)).astype(dtype)
    x[10] = scale  # finite values, whose norm leaves the range
    match = "row 10 of x has " + match
    for in_place in (False, True):
        with pytest.raises(ValueError, match=match):
            _inputs.prepare(x, "cosine", in_place=in_place)
    valid = np.arange(40) != 10  # a row left out (nonfinite="skip" or a mask) is not divided
    assert _inputs.prepare(x, "cosine", valid=valid).shape == x.shape
    monkeypatch.setattr(_inputs, "_native_rows", lambda x: None)
    with pytest.raises(ValueError, match=match):
        _inputs.prepare(x, "cosine")


def test_unit_rows_do_not_depend_on_the_thread_count(native):
    from hminsel.backends import cpu
    x = np.random.default_rng(5).standard_normal((50_000, 20)).astype(np.float32)
    runs = []
    try:
        for threads in (1, 2, 3):
            cpu.set_num_threads(threads)
            out = np.empty_like(x)
            native.unit_rows(x, None, out)
            runs.append(out)
    finally:
        cpu.set_num_threads()
    for out in runs[1:]:
        np.testing.assert_array_equal(out, runs[0])


def test_unit_rows_report_the_first_live_zero_row_and_copy_the_rest(native):
    x = np.random.default_rng(6).standard_normal((300, 8)).astype(np.float32)
    x[[250, 40, 120]] = 0.0
    x[7, 3] = np.nan
    out = np.empty_like(x)
    live = np.ones(len(x), np.uint8)
    live[[7, 40]] = 0  # skipped rows: NaN or zero, copied as they are
    assert native.unit_rows(x, live, out) == 120
    np.testing.assert_array_equal(out[[7, 40]], x[[7, 40]])
    with pytest.raises(ValueError, match="row 40 of x is all zeros"):
        _inputs.prepare(x[:200].copy(), "cosine", live[:200].astype(bool) | True)
    with pytest.raises(ValueError, match="valid must have 300 entries"):
        native.unit_rows(x, live[:10], out)
    with pytest.raises(ValueError, match="out must have x's shape"):
        native.unit_rows(x, None, out[:10])


@pytest.mark.parametrize("native_pass", [True, False], ids=["native", "numpy"])
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_scan_rows_gives_the_largest_finite_magnitude(monkeypatch, native_pass, dtype):
    if not native_pass:
        monkeypatch.setattr(_finite, "native_rows", lambda x: None)
    rng = np.random.default_rng(6)
    x = (rng.standard_normal((3000, 29)) * 7).astype(dtype)
    mask, top = _finite.scan_rows(x)
    assert mask is None and top == float(np.abs(x).max())
    x[5, 2], x[6, 3] = np.inf, np.nan  # not finite: not the largest magnitude
    x[9, 4] = -np.finfo(dtype).max / 2
    mask, top = _finite.scan_rows(x)
    np.testing.assert_array_equal(mask, np.isfinite(x).all(axis=1))
    assert top == float(np.finfo(dtype).max / 2)
    assert _finite.scan_rows(np.full((4, 3), np.nan, dtype))[1] == 0.0


@pytest.mark.parametrize("call", ["select", "hmin", "nearest", "select_batched", "numpy"])
def test_values_out_of_the_sums_range_raise(call):
    def run(x):
        if call == "select":
            return hminsel.select(x, 3)
        if call == "hmin":
            return hminsel.hmin(x)
        if call == "nearest":
            return hminsel.nearest(x, x[:4])
        if call == "numpy":
            return hminsel.select(x, 3, backend="numpy")
        return hminsel.select_batched(x, 3, ptr=[0, 30, len(x)])
    big = np.linspace(-3e19, 3e19, 64, dtype=np.float32)[:, None]  # squares pass float32's max
    with pytest.raises(ValueError, match=r"x holds values up to 3e\+19 .* overflow float32 sums .* "
                                         r"or pass float64"):
        run(big)
    run(big.astype(np.float64))  # float64 sums hold them
    run(big.astype(np.float64) * 1e100)
    with pytest.raises(ValueError, match="overflow float64 sums"):
        run(big.astype(np.float64) * 1e140)
    tiny = np.array([[0.0], [1e-23], [3e-23], [-2e-23]] * 16, np.float32)  # squares vanish
    if call == "nearest":  # x or centres may be the larger: both tiny raise
        hminsel.nearest(tiny, np.ones((2, 1), np.float32))
        hminsel.nearest(np.ones((5, 1), np.float32), tiny)
        with pytest.raises(ValueError, match=r"x's and centers' values are all below .* underflow "
                                             r"float32 sums; scale both up \(or pass x as float64"):
            run(tiny)
    else:
        with pytest.raises(ValueError, match=r"values are all below 3e-23 .* underflow float32 sums"):
            run(tiny)
    run(np.zeros((64, 2), np.float32))  # all zeros: exact distances
    run(big / 1e3)
    hminsel.select(big, 3, metric="cosine")  # unit rows: never out of range
    signs = np.where(np.arange(40) % 2, 1.0, -1.0)[:, None] * np.linspace(0.5, 1, 8)
    hminsel.hmin((signs * 65504).astype(np.float16))  # float16 at its largest: float32 sums hold it


def test_nearest_centres_out_of_range_raise_naming_them(backend):
    x = np.ones((10, 3), np.float32)
    with pytest.raises(ValueError, match="centers holds values up to"):
        hminsel.nearest(x, np.full((2, 3), 1e19, np.float32), backend=backend)
    # float64 centres that fit float64 sums but not x's float32 ones: no inf distances, no -1
    with pytest.raises(ValueError, match=r"centers holds values up to 2e\+20 .* overflow the float32 "
                                         r"sums of x's dtype .* \(or pass x as float64\)"):
        hminsel.nearest(x, np.array([[2e20, 0, 0], [1e20, 0, 0]]), backend=backend)
    hminsel.nearest(x.astype(np.float64), np.array([[2e20, 0, 0], [1e20, 0, 0]]), backend=backend)
    tiny = np.random.default_rng(1).standard_normal((30, 5)) * 1e-170  # float64 squares vanish
    with pytest.raises(ValueError, match=r"x's and centers' values are all below .* float64 sums"):
        hminsel.nearest(tiny, tiny[[5, 10, 15]], backend=backend)
    np.testing.assert_array_equal(hminsel.nearest(tiny * 1e170, tiny[[5, 10, 15]] * 1e170,
                                                  backend=backend)[1][[5, 10, 15]], [0, 1, 2])


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("dtype", [np.float32, np.float16])
def test_skipped_rows_and_radius_zero_raise_no_numpy_warning(metric, dtype):
    """Rows that nonfinite="skip" leaves out still pass through the GEMMs: NumPy's "invalid
    value encountered in matmul" must not reach a program run under -W error or
    np.seterr(all="raise"), nor radius=0's float steps ("underflow in nextafter")."""
    import warnings
    x = np.random.default_rng(0).standard_normal((3000, 40)).astype(dtype)
    x[[7, 2000]] = np.inf
    keep = np.flatnonzero(np.isfinite(x).all(axis=1))
    with warnings.catch_warnings(), np.errstate(all="raise"):
        warnings.simplefilter("error")
        sel = hminsel.select(x, 300, metric=metric, nonfinite="skip", algorithm="lazy")
        hminsel.nearest(x, x[100:150], metric=metric, nonfinite="skip")
        batched = hminsel.select_batched(x, 50, ptr=[0, 1500, 3000], metric=metric,
                                         nonfinite="skip")
        hminsel.select(x[keep], 1.0, metric=metric, radius=0.0)
    expected = hminsel.select(x[keep], 300, metric=metric, algorithm="lazy")
    np.testing.assert_array_equal(sel.indices, keep[expected.indices])
    assert len(batched.indices) == 100
