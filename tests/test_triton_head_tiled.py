"""The Triton tiled head loop (one launch for a round's picks): the streaming sequence, bit for bit.

Runs under ``TRITON_INTERPRET=1`` on CPU tensors (tiny shapes), compiled on
CUDA tensors with ``HMINSEL_TRITON_GPU=1``. The shared primitive bodies run
through it in test_triton.py (``tiled_backend``), the select-level bodies in
test_triton_select.py (``lazy-tiled``).
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the triton backend runs on torch tensors")
pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

import hminsel  # noqa: E402
from conftest import TRITON_DEV as DEV, TRITON_GPU as GPU, clustered  # noqa: E402
from hminsel import backends  # noqa: E402
from hminsel.algorithms import lazy  # noqa: E402

pytestmark = pytest.mark.interpret
DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if GPU else [])  # bf16 tl.dot: GPU only


@pytest.fixture
def ht(monkeypatch):
    """The module, with small chunks: several chunks a pass, several tiles a bound matrix."""
    from hminsel.triton import head_tiled
    monkeypatch.setattr(head_tiled, "BLOCK", 64)
    return head_tiled


def spy_tiled(monkeypatch) -> list:
    """The head sizes of the triton backend's tiled rounds, as they run (on a GPU too, where
    the backend leaves the tiled head off by default: ``tiled_head_on_gpu``)."""
    calls = []
    cls = type(backends.get("triton"))
    monkeypatch.setattr(cls, "tiled_head_on_gpu", True)
    orig = cls.head_greedy_tiled
    monkeypatch.setattr(cls, "head_greedy_tiled",
                        lambda self, xh, *a: calls.append(len(xh)) or orig(self, xh, *a))
    return calls


@pytest.fixture
def tiled_calls(monkeypatch):
    """Head sizes of the tiled rounds; every round after the first runs tiled."""
    monkeypatch.setattr(lazy, "TILED_RATE", 0.0)
    return spy_tiled(monkeypatch)


def t(a, dtype=None):
    return torch.tensor(np.asarray(a)).to(DEV, dtype)  # a copy: kernels update state in place


def run_tiled(xh, h, hidx, tau, tau_idx, budget, dtype=torch.float32):
    """``head_greedy_tiled`` on tensors: (positions, values, h, own) as NumPy."""
    be = backends.get("triton")
    th, own = t(h, torch.float32), torch.full((len(h),), -1, dtype=torch.int64, device=DEV)
    pos, vals = be.head_greedy_tiled(t(xh, dtype), th, t(hidx, torch.int64), tau, tau_idx, budget, own)
    return pos, vals, th.cpu().numpy(), own.cpu().numpy()


def _data(kind, n, d, seed):
    rng = np.random.default_rng(seed)
    if kind == "clustered":
        return clustered(n, d, clusters=5, seed=seed)
    if kind == "gaussian":
        return rng.standard_normal((n, d)).astype(np.float32)
    return rng.integers(0, 3, (n, d)).astype(np.float32)  # grid: ties and duplicate rows


def test_hand_built_line_exact_indices(ht):
    pos = np.array([0.0, 9.0, 4.0, 6.5, 1.0, 2.0])
    xh = np.zeros((6, 16), np.float32)
    xh[:, 3] = pos  # a line in 16 dimensions: each FPS step worked out by hand
    h = (pos ** 2).astype(np.float32)
    h[0] = -1.0  # row 0 was the last pick
    hidx = np.array([50, 3, 17, 8, 40, 9])
    p, v, hv, own = run_tiled(xh, h, hidx, -np.inf, 6, 10)
    assert p.tolist() == [1, 2, 3, 5, 4] and v.tolist() == [81.0, 16.0, 6.25, 4.0, 1.0]
    assert (hv == -1).all() and own.tolist() == [-1, -1, -1, 0, -1, -1]  # 6.5: 42.25 -> 6.25 by pick 0
    p, v, hv, _ = run_tiled(xh, h, hidx, 6.25, 8, 10)  # tau (6.25, id 8): row 3 (id 8) ties, not beats
    assert p.tolist() == [1, 2] and hv.tolist() == [-1, -1, -1, 6.25, 1.0, 4.0]


@pytest.mark.parametrize("kind", ["clustered", "gaussian", "grid"])
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_primitive_equals_per_pick_loop_bitwise(ht, kind, dtype):
    """Picks, values and every head value equal head.py's loop (step's arithmetic) bit for bit."""
    xh = _data(kind, 150, 40, seed=3)
    hidx = np.random.default_rng(1).permutation(5000)[:150]
    ref = t(xh, dtype).double().cpu().numpy()  # the stored values
    h0 = ((ref - ref[0]) ** 2).sum(1).astype(np.float32)  # as if row 0 were the only pick
    h0[0] = -1.0
    tau = float(np.sort(h0)[8]) if kind != "grid" else -np.inf  # stops mid-way
    pa, va, ha, own = run_tiled(xh, h0, hidx, tau, 10**9, 10**6, dtype)
    hb = t(h0, torch.float32)
    pb, vb = backends.get("triton").head_greedy(t(xh, dtype), hb, t(hidx, torch.int64), tau, 10**9, 10**6)
    assert len(pa) > 5
    np.testing.assert_array_equal(pa, pb)
    np.testing.assert_array_equal(va, vb)
    np.testing.assert_array_equal(ha, hb.cpu().numpy())
    if kind == "gaussian" and dtype == torch.float32:  # tie-free: the float64 oracle's picks and owners
        c, own_ref = h0.astype(np.float64), np.full(150, -1, np.int64)
        pc, _ = backends.get("numpy").head_greedy_tiled(xh, c, hidx, tau, 10**9, 10**6, own_ref)
        np.testing.assert_array_equal(pa, pc)
        np.testing.assert_array_equal(own, own_ref)


def test_near_duplicates_need_the_direct_form(ht, monkeypatch):
    """Two tight clusters far apart: the GEMM form's error dwarfs the values. With the bound the
    picks are the streaming ones; with the bound taken away (coef 0) the GEMM form alone
    settles rows it must not, and the sequence goes wrong."""
    rng = np.random.default_rng(11)
    base = np.zeros((2, 24), np.float32)
    base[1, 0] = 2000.0
    x = (base[rng.integers(0, 2, 160)] + 1e-3 * rng.standard_normal((160, 24))).astype(np.float32)
    x[7] = x[3]  # an exact duplicate: value 0 once 3 is picked
    h0 = ((x.astype(np.float64) - x[0]) ** 2).sum(1).astype(np.float32)
    h0[0] = -1.0
    ids = np.arange(160)
    hb = t(h0, torch.float32)
    want, wv = backends.get("triton").head_greedy(t(x), hb, t(ids, torch.int64), -np.inf, -1, 159)
    got, gv, hv, _ = run_tiled(x, h0, ids, -np.inf, -1, 159)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(gv, wv)
    np.testing.assert_array_equal(hv, hb.cpu().numpy())
    monkeypatch.setattr(ht, "head_coef", lambda d, precision: 0.0)
    bad, _, _, _ = run_tiled(x, h0, ids, -np.inf, -1, 159)
    assert bad.tolist() != want.tolist()


def test_bounds_are_all_written_and_valid(ht, monkeypatch):
    """Every entry of the (M, M) bounds is written (poisoned memory) and is <= the direct value."""
    class Poisoned:  # head_tiled's torch, with NaN-filled empty tensors
        def __getattr__(self, name):
            return getattr(torch, name)

        @staticmethod
        def empty(*args, **kwargs):
            return torch.empty(*args, **kwargs).fill_(float("nan"))
    monkeypatch.setattr(ht, "torch", Poisoned())
    x = (5.0 + np.random.default_rng(2).standard_normal((130, 36))).astype(np.float32)  # 3 tiles a side
    for dtype in DTYPES:
        xs = t(x, dtype)
        low = ht.lower_bounds(xs, "tf32x3" if dtype == torch.float32 else "ieee").cpu().numpy()
        assert not np.isnan(low).any()
        xf = xs.float().cpu().numpy()
        exact = ((xf[:, None, :] - xf[None, :, :]) ** 2).sum(-1)  # float32, like the direct form
        tile = np.arange(130) // ht.BLOCK_M
        off = tile[:, None] != tile[None, :]  # mirrored tiles: exactly symmetric
        assert (low <= exact).all() and np.array_equal(low[off], low.T[off])


@pytest.mark.parametrize("metric", ["cosine", "l2"])
@pytest.mark.parametrize("kind,frac", [("gaussian", 0.5), ("clustered", 1.0), ("grid", 0.5)])
def test_select_equals_streaming(tiled_calls, kind, frac, metric):
    x = t(_data(kind, 240, 33, seed=240))
    k = int(240 * frac)
    a = hminsel.select(x, k, metric=metric, backend="triton", algorithm="streaming")
    b = hminsel.select(x, k, metric=metric, backend="triton", algorithm="lazy", head_size=48)
    assert tiled_calls, "the tiled head never ran"
    assert torch.equal(a.indices, b.indices) and torch.equal(a.radii, b.radii)


def test_tf32_switch_keeps_the_sequence(tiled_calls, monkeypatch):
    """The backend's tf32 switch: plain TF32 dots, a looser bound, the same picks."""
    from hminsel.triton import head_tiled
    seen = []
    coef = head_tiled.head_coef
    monkeypatch.setattr(head_tiled, "head_coef", lambda d, p: seen.append(p) or coef(d, p))
    monkeypatch.setattr(backends.get("triton"), "tf32", True)
    x = t(_data("gaussian", 200, 40, seed=6))
    a = hminsel.select(x, 100, metric="cosine", backend="triton", algorithm="streaming")
    b = hminsel.select(x, 100, metric="cosine", backend="triton", algorithm="lazy", head_size=40)
    assert tiled_calls and set(seen) == {"tf32"}
    assert torch.equal(a.indices, b.indices) and torch.equal(a.radii, b.radii)


def test_auto_policy_takes_the_tiled_head(monkeypatch):
    """The adaptive policy (small M_START) on a keep-half workload: tiled rounds, streaming picks."""
    monkeypatch.setattr(lazy, "M_START", 64)
    monkeypatch.setattr(lazy, "M_MIN", 64)
    calls = spy_tiled(monkeypatch)
    x = t(_data("gaussian", 400, 32, seed=4))
    sel = hminsel.select(x, 0.5, metric="cosine", backend="triton")
    assert sel.algorithm == "lazy" and calls and max(calls) > 64  # M grew past the start
    # the backend's own streaming sequence (the float64 oracle's can differ on a GPU here:
    # the closest call is a relative gap of 2e-6, within fp32 summation orders)
    want = hminsel.select(x, 0.5, metric="cosine", backend="triton", algorithm="streaming")
    assert sel.indices.tolist() == want.indices.tolist()
