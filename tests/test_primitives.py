"""Every primitive of every available backend against the float64 NumPy oracle.

One test body per primitive, parametrised over backends (ids by name). The cpu
backend is skipped, with the reason, when its extension is not built.
Tolerances: float32 inputs 1e-5 relative, float64 inputs 1e-12. float16 rows
(step and block_min: the kernels that read a big x) sum in float32: 1e-5.
"""
from __future__ import annotations

import numpy as np
import pytest

from conftest import block_min_path
from hminsel.backends import MARK, get, why_not
from hminsel.backends.numpy_ref import NumpyBackend

ORACLE = NumpyBackend()
DTYPES = [np.float32, np.float64]
ROW_DTYPES = DTYPES + [np.float16]  # x that the row-reading primitives take in place
SHAPES = [(1, 1), (2, 3), (63, 127), (1000, 768), (1000, 3), (63, 1)]


def backend_params():
    params = []
    for name in ("numpy", "cpu"):
        reason = why_not(name)
        marks = [pytest.mark.skip(reason=f"{name} backend unavailable: {reason}")] if reason else []
        params.append(pytest.param(name, marks=marks, id=name))
    return params


@pytest.fixture(params=backend_params())
def backend(request):
    return get(request.param)


@pytest.fixture
def cpu():
    reason = why_not("cpu")
    if reason:
        pytest.skip(f"cpu backend unavailable: {reason}")
    return get("cpu")


def rtol(dtype):
    return 1e-12 if np.dtype(dtype) == np.float64 else 1e-5


def exact(a, b):
    """Squared distances of rows a (n, d) to row b (d,), float64."""
    diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
    return np.einsum("ij,ij->i", diff, diff)


def fresh_mind(backend, x):
    return np.full(len(x), np.inf, backend.acc_dtype(x.dtype))


def shape_id(shape):
    return f"N{shape[0]}-d{shape[1]}"


# -- primitive 1: step / steps -----------------------------------------------

@pytest.mark.parametrize("dtype", ROW_DTYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
def test_step_matches_oracle(backend, shape, dtype):
    x = np.random.default_rng(1).standard_normal(shape).astype(dtype)
    mind, ref = fresh_mind(backend, x), np.full(len(x), np.inf)
    c = 0
    for _ in range(min(len(x), 6)):
        got, value = backend.step(x, mind, c)
        ORACLE.step(x, ref, c)  # the oracle folds the same centre
        np.testing.assert_allclose(mind, ref, rtol=rtol(dtype))
        if got < 0:
            assert value == MARK and (ref == MARK).all()
            break
        assert value == mind[got]  # the reported value is the stored one
        assert ref[got] >= ref.max() * (1 - 4 * rtol(dtype))  # tie-aware argmax
        c = got
    assert ((mind == MARK) == (ref == MARK)).all()


@pytest.mark.parametrize("shape", [(63, 127), (3, 2), (1, 4)], ids=shape_id)
def test_steps_equal_chained_steps(backend, shape):
    x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
    k = len(x)  # the last step finds every point marked
    m1, m2 = fresh_mind(backend, x), fresh_mind(backend, x)
    picks, values = backend.steps(x, m1, 0, k)
    c, chained = 0, []
    for _ in range(k):
        c, v = backend.step(x, m2, c)
        chained.append((c, v))
    assert picks.dtype == np.int64 and values.dtype == np.float64
    assert [(int(p), float(v)) for p, v in zip(picks, values)] == chained
    assert np.array_equal(m1, m2)
    assert picks[-1] == -1 and values[-1] == MARK


@pytest.mark.parametrize("shape", [(63, 127), (3, 2), (1, 4)], ids=shape_id)
def test_fold_is_step_without_its_answer(backend, shape):
    """``fold`` leaves mind as ``step`` does (the first picks' radii: no answer read)."""
    x = np.random.default_rng(3).standard_normal(shape).astype(np.float32)
    m1, m2 = fresh_mind(backend, x), fresh_mind(backend, x)
    for c in range(min(3, len(x))):
        assert backend.fold(x, m1, c) is None
        backend.step(x, m2, c)
        assert np.array_equal(m1, m2)
    assert (m1[:min(3, len(x))] == MARK).all()


def test_step_crafted_ties(backend):
    x = np.array([[0.0], [-1.0], [1.0], [-1.0], [1.0]], np.float32)
    picks, values = backend.steps(x, fresh_mind(backend, x), 0, 4)
    assert picks.tolist() == [1, 2, 3, 4]  # every step is a tie: lowest index
    assert values.tolist() == [1.0, 1.0, 0.0, 0.0]


def test_step_tie_across_threads(backend):
    x = np.zeros((70_000, 1), np.float32)  # large enough for the parallel path
    x[[10, 69_000, 35_000]] = 5.0
    got, value = backend.step(x, fresh_mind(backend, x), 0)
    assert (got, value) == (10, 25.0)


def test_step_all_equal_and_marked(backend):
    x = np.ones((63, 3), np.float64)
    mind = fresh_mind(backend, x)
    mind[1] = MARK  # excluded: never updated nor picked
    picks, values = backend.steps(x, mind, 0, 3)
    assert picks.tolist() == [2, 3, 4] and values.tolist() == [0.0, 0.0, 0.0]
    assert mind[1] == MARK and (mind[5:] == 0).all()


# -- primitive 2: block_min --------------------------------------------------

@pytest.fixture(params=["direct", "gemm", "few"])
def path(request, monkeypatch):
    """Force block_min of the cpu backend down one path (numpy: direct only)."""
    if request.param != "direct" and request.node.callspec.params.get("backend") == "numpy":
        pytest.skip(f"the {request.param} path exists on cpu only")
    import hminsel.backends.cpu_gemm as gemm_mod
    block_min_path(monkeypatch, request.param)
    monkeypatch.setattr(gemm_mod, "GEMM_ROWS", 100)  # several row and column tiles
    monkeypatch.setattr(gemm_mod, "GEMM_COLS", 16)
    return request.param


def check_block_min(backend, x, y, rows=None, self_mask=False):
    value, index = backend.block_min(x, y, rows=rows, self_mask=self_mask)
    ref_value, _ = ORACLE.block_min(x, y, rows=rows, self_mask=self_mask)
    ids = np.arange(len(x)) if rows is None else np.asarray(rows)
    assert value.dtype == backend.acc_dtype(x.dtype) and index.dtype == np.int64
    assert value.shape == index.shape == (len(ids),)
    np.testing.assert_allclose(value, ref_value, rtol=rtol(x.dtype), atol=0)
    chosen = np.einsum("ij,ij->i", *(2 * [x[ids].astype(np.float64) - y[index].astype(np.float64)]))
    np.testing.assert_allclose(chosen, ref_value, rtol=4 * rtol(x.dtype), atol=0)  # tie-aware
    if self_mask:
        assert (index != ids).all()
    return value, index


@pytest.mark.parametrize("dtype", ROW_DTYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_id)
@pytest.mark.parametrize("m", [1, 5, 40])
def test_block_min_matches_oracle(backend, path, shape, dtype, m):
    rng = np.random.default_rng(3)
    x = rng.standard_normal(shape).astype(dtype)
    y = rng.standard_normal((m, shape[1])).astype(dtype)
    check_block_min(backend, x, y)
    check_block_min(backend, x, y, rows=rng.integers(0, len(x), 7))
    if len(x) >= 2:
        xs = x[:200]  # the oracle is O(N^2 d) here
        check_block_min(backend, xs, xs, self_mask=True)
        check_block_min(backend, xs, xs, rows=np.arange(len(xs))[::-2], self_mask=True)


def test_block_min_ties_and_duplicates(backend, path):
    x = np.array([[0, 0], [1, 0], [0, 0], [1, 0], [0.5, 0]], np.float32)
    y = np.array([[1, 0], [0, 0], [1, 0], [0, 0]], np.float32)
    _, index = check_block_min(backend, x, y)
    assert index.tolist() == [1, 0, 1, 0, 0]  # duplicates in y and the 0.5 tie
    _, index = check_block_min(backend, x, x, self_mask=True)
    assert index.tolist() == [2, 3, 0, 1, 0]
    same = np.ones((40, 50), np.float64)  # all equal: everything ties at 0
    value, index = check_block_min(backend, same, same, self_mask=True)
    assert (value == 0).all() and index.tolist() == [1] + [0] * 39


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
def test_block_min_near_duplicates_at_large_norm(backend, path, dtype, per=50):
    """``per`` rows a cluster (fewer under the Triton interpreter: its launches are slow)."""
    rng = np.random.default_rng(4)
    centres = 1e4 * rng.standard_normal((8, 64))
    x = (np.repeat(centres, per, axis=0) + 1e-2 * rng.standard_normal((8 * per, 64))).astype(dtype)
    value, index = check_block_min(backend, x, x, self_mask=True)
    assert (index // per == np.arange(8 * per) // per).all()  # the neighbour is in the same cluster
    assert value.max() < 1.0  # GEMM-form cancellation would give O(1e8 eps) garbage
    check_block_min(backend, x, x[::3].copy())


def test_block_min_values_equal_step_bitwise(cpu, path):
    """What makes the lazy algorithm give exactly the streaming sequence."""
    rng = np.random.default_rng(5)
    for dtype, d in [(np.float32, 384), (np.float32, 3), (np.float64, 127), (np.float32, 2),
                     (np.float64, 3), (np.float32, 4), (np.float64, 1)]:
        x = rng.standard_normal((300, d)).astype(dtype)
        y = rng.standard_normal((40, d)).astype(dtype)
        value, index = cpu.block_min(x, y)
        z = np.concatenate([x, y])
        for j in range(len(y)):
            mind = fresh_mind(cpu, z)
            cpu.step(z, mind, len(x) + j)  # mind[:300] = step's distances to y[j]
            hit = index == j
            assert np.array_equal(value[hit], mind[:len(x)][hit])
            assert (mind[:len(x)][~hit] >= value[~hit]).all()


def lanes_sqdist(a, b):
    """The cpu backend's one summation order in NumPy, in a's dtype: element j of
    (a - b)^2 into lane j % L (32 float32 lanes, 16 float64), the lanes summed
    in order, then a halving tree over the lanes (a level whose upper half is
    past d is skipped). a (n, d) against b (d,)."""
    t = a - b
    sq = t * t
    n, d = sq.shape
    lanes = 32 if a.dtype == np.float32 else 16
    acc = np.zeros((n, lanes), a.dtype)
    for j in range(0, d, lanes):
        block = sq[:, j:j + lanes]
        acc[:, :block.shape[1]] += block
    used, h = min(d, lanes), lanes // 2
    while h >= 1:
        if h < used:
            acc[:, :h] += acc[:, h:2 * h]
        h //= 2
    return acc[:, 0]


@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
def test_cpu_summation_order(cpu, path, dtype):
    """Every direct-form value of the cpu backend is the written-out lane order bit
    for bit, for every tail length (d % lanes) and every d below the lane count
    (the SIMD kernels and the portable loop must agree with it)."""
    rng = np.random.default_rng(11)
    for d in [1, 2, 3, 5, 7, 8, 9, 15, 16, 17, 23, 24, 31, 32, 33, 47, 48, 63, 64, 65, 100, 300]:
        x = (rng.standard_normal((40, d)) * rng.uniform(0.5, 50, (40, 1))).astype(dtype)
        y = rng.standard_normal((13, d)).astype(dtype)  # tiles of 4 centres and single ones
        ref = np.stack([lanes_sqdist(x, c) for c in y], axis=1)
        value, index = cpu.block_min(x, y)
        assert np.array_equal(index, ref.argmin(axis=1)), d
        assert np.array_equal(value, ref.min(axis=1)), d
        mind = fresh_mind(cpu, x)
        cpu.step(x, mind, 7)
        assert np.array_equal(mind, np.where(np.arange(40) == 7, mind[7], lanes_sqdist(x, x[7]))), d


def test_block_min_writes_every_output(cpu):
    from hminsel import _cpu
    x = np.random.default_rng(6).standard_normal((100, 7)).astype(np.float32)
    value, index = np.full(50, np.nan, np.float32), np.full(50, -7, np.int64)
    _cpu.block_min(x, x, np.arange(0, 100, 2, dtype=np.int64), True, value, index)
    ref, _ = ORACLE.block_min(x, x, rows=np.arange(0, 100, 2), self_mask=True)
    assert not np.isnan(value).any() and (index >= 0).all()
    np.testing.assert_allclose(value, ref, rtol=1e-5)


# -- primitive 3: head_greedy -------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=lambda t: np.dtype(t).name)
@pytest.mark.parametrize("shape", [(63, 127), (1000, 768), (2, 3), (1, 1)], ids=shape_id)
def test_head_greedy_matches_oracle(backend, shape, dtype):
    rng = np.random.default_rng(7)
    xh = rng.standard_normal(shape).astype(dtype)
    hidx = rng.permutation(10 * len(xh))[: len(xh)].astype(np.int64)
    ref_h = np.full(len(xh), np.inf)
    ref_picks, ref_values = ORACLE.head_greedy(xh, ref_h.copy(), hidx, -np.inf, -1, 12)
    assert ref_picks[0] == np.argmin(hidx)  # all +inf: a tie, lowest global index
    cut = min(len(ref_values) - 1, 6)  # stop mid-way: tau between two picks
    tau = (ref_values[cut] + ref_values[cut - 1]) / 2 if cut >= 2 else -np.inf
    h = np.full(len(xh), np.inf, backend.acc_dtype(dtype))
    picks, values = backend.head_greedy(xh, h, hidx, tau, 0, 12)
    ref_picks, ref_values = ORACLE.head_greedy(xh, ref_h, hidx, tau, 0, 12)
    assert picks.dtype == np.int64 and values.dtype == np.float64
    assert picks.tolist() == ref_picks.tolist()
    np.testing.assert_allclose(values, ref_values, rtol=rtol(dtype))
    np.testing.assert_allclose(h, ref_h, rtol=rtol(dtype))


def test_head_greedy_tau_ties_and_budget(backend):
    xh = np.array([[0.0], [3.0], [-3.0], [1.0]], np.float64)
    hidx = np.array([40, 7, 9, 3], np.int64)
    h = np.array([9.0, 9.0, 9.0, MARK])
    # tau = (9, idx 8): id 7 beats it on the tie, id 9 does not.
    picks, values = backend.head_greedy(xh, h, hidx, 9.0, 8, 10)
    assert picks.tolist() == [1] and values.tolist() == [9.0]
    assert h.tolist() == [9.0, MARK, 9.0, MARK]
    picks, _ = backend.head_greedy(xh, h, hidx, -np.inf, -1, 1)  # budget 1
    assert picks.tolist() == [2]
    picks, values = backend.head_greedy(xh, h, hidx, -np.inf, -1, 5)
    assert picks.tolist() == [0] and values.tolist() == [9.0]  # then all MARK: stop


def test_head_greedy_values_equal_steps_bitwise(cpu):
    rng = np.random.default_rng(8)
    for dtype, d in [(np.float32, 384), (np.float32, 3), (np.float64, 127), (np.float32, 2),
                     (np.float64, 3), (np.float32, 4), (np.float64, 1)]:
        x = rng.standard_normal((500, d)).astype(dtype)
        h = fresh_mind(cpu, x)
        picks, values = cpu.head_greedy(x, h, np.arange(500, dtype=np.int64), -np.inf, -1, 40)
        mind = fresh_mind(cpu, x)
        sp, sv = cpu.steps(x, mind, 0, 39)
        cpu.step(x, mind, sp[-1])  # the head loop folds its last pick too
        assert picks[0] == 0 and picks[1:].tolist() == sp.tolist()
        assert np.array_equal(values[1:], sv) and np.array_equal(h, mind)


# -- argument checks -----------------------------------------------------------

def test_cpu_unsupported_reason(cpu):
    x = np.zeros((10, 4), np.float32)
    assert cpu.unsupported_reason(x) is None
    assert "C-contiguous" in cpu.unsupported_reason(x[:, ::2])
    assert cpu.unsupported_reason(x.astype(np.float16)) is None  # read widened, in place
    assert "int32" in cpu.unsupported_reason(x.astype(np.int32))
    assert ">f2" in cpu.unsupported_reason(x.astype(">f2"))
    assert "list" in cpu.unsupported_reason(x.tolist())


def test_cpu_rejects_bad_arguments(cpu):
    from hminsel import _cpu
    x = np.zeros((10, 4), np.float32)
    with pytest.raises(ValueError, match="mind must be a writable C-contiguous float32"):
        _cpu.step(x, np.zeros(10, np.float64), 0)
    with pytest.raises(ValueError, match="x must be a C-contiguous float32 .* not C-contiguous"):
        _cpu.step(np.asfortranarray(x), np.zeros(10, np.float32), 0)
    with pytest.raises(ValueError, match=r"c must be a row of x in \[0, 10\); got 10"):
        _cpu.step(x, np.zeros(10, np.float32), 10)
    with pytest.raises(ValueError, match="mind must have 10 entries"):
        _cpu.step(x, np.zeros(9, np.float32), 0)
    with pytest.raises(ValueError, match="x must be a float16, float32 or float64 array; got int64"):
        _cpu.step(np.zeros((3, 2), np.int64), np.zeros(3), 0)
    half = np.zeros((10, 4), np.float16)
    with pytest.raises(ValueError, match="mind must be a writable C-contiguous float32"):
        _cpu.step(half, np.zeros(10, np.float16), 0)  # float16 rows sum in float32
    with pytest.raises(ValueError, match="x must be a C-contiguous float16 .* not C-contiguous"):
        _cpu.step(np.asfortranarray(half), np.zeros(10, np.float32), 0)
    with pytest.raises(ValueError, match="x must be a float16, float32 or float64 array; got >f2"):
        _cpu.step(half.astype(">f2"), np.zeros(10, np.float32), 0)
    with pytest.raises(ValueError, match="y must have 4 columns"):
        cpu.block_min(x, np.zeros((3, 5), np.float32))
    with pytest.raises(ValueError, match="not a row of x"):
        cpu.block_min(x, x, rows=[3, 10])
