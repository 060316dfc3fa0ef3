"""The triton backend end to end (select / hmin / nearest), its keys and dispatch.

Runs under ``TRITON_INTERPRET=1`` on CPU tensors without a GPU (tiny shapes),
compiled on CUDA tensors with one. See test_triton.py for the primitive bodies and
test_triton_batched.py for batched selection and the drop-ins.
"""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the triton backend runs on torch tensors")
pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

import hminsel  # noqa: E402
from conftest import (TRITON_DEV as DEV, TRITON_GPU as GPU, assert_certificate,  # noqa: E402
                      clustered)
from on_device import check_hmin_and_nearest  # noqa: E402
from hminsel import backends  # noqa: E402
from test_radius import check_radius  # noqa: E402
from test_select import fps_oracle  # noqa: E402

pytestmark = pytest.mark.interpret
ALGOS = ["streaming", "lazy", "lazy-tiled"]
TILED = []  # head sizes of the tiled rounds of the current test ("lazy-tiled")


@pytest.fixture(params=ALGOS)
def algorithm(request, monkeypatch):
    """The algorithm; "lazy-tiled": lazy with every round after the first on the tiled head loop."""
    TILED.clear()
    if request.param == "lazy-tiled":
        from hminsel.algorithms import lazy
        from hminsel.backends.triton import TritonBackend
        monkeypatch.setattr(lazy, "TILED_RATE", 0.0)
        monkeypatch.setattr(TritonBackend, "head_rows_tiled", lambda self, x: 4096)  # any d
        orig = TritonBackend.head_greedy_tiled
        monkeypatch.setattr(TritonBackend, "head_greedy_tiled",
                            lambda self, xh, *a: TILED.append(len(xh)) or orig(self, xh, *a))
    return request.param.split("-")[0]


def dev(a, dtype=torch.float32):
    return torch.as_tensor(np.asarray(a)).to(device=DEV, dtype=dtype)


def test_select_exact_sequence_and_lazy_equals_streaming(algorithm, request):
    x = np.random.default_rng(3).standard_normal((200, 33)).astype(np.float32)
    picks, radii = fps_oracle(x, 40, start=3)
    sel = hminsel.select(dev(x), 40, start=3, backend="triton", algorithm=algorithm,
                         head_size=16 if algorithm == "lazy" else None)
    assert sel.backend == "triton" and isinstance(sel.indices, torch.Tensor)
    assert sel.indices.device.type == DEV
    np.testing.assert_array_equal(sel.indices.cpu().numpy(), picks)
    np.testing.assert_allclose(sel.radii.cpu().numpy(), radii, rtol=1e-5)
    assert bool(TILED) == request.node.callspec.params["algorithm"].endswith("tiled")


def test_lazy_equals_streaming_on_clusters():
    x = dev(clustered(300, 16, clusters=6, seed=2))
    a = hminsel.select(x, 60, backend="triton", algorithm="streaming")
    b = hminsel.select(x, 60, backend="triton", algorithm="lazy", head_size=32)
    assert a.indices.tolist() == b.indices.tolist() and b.stats.rounds >= 2
    assert torch.equal(a.radii, b.radii)


def test_ties_lowest_index_and_identical_points(algorithm):
    sq = dev([[0, 0], [1, 0], [0, 1], [1, 1]])
    assert hminsel.select(sq, 4, backend="triton", algorithm=algorithm).indices.tolist() == [0, 3, 1, 2]
    line = dev([[7.0], [0.0], [1.0], [10.0], [4.0]])
    sel = hminsel.select(line, 5, start=1, backend="triton", algorithm=algorithm)
    assert sel.indices.tolist() == [1, 3, 4, 0, 2]
    same = dev(np.ones((7, 5)))
    sel = hminsel.select(same, 7, backend="triton", algorithm=algorithm,
                         head_size=4 if algorithm == "lazy" else None)
    assert sel.indices.tolist() == list(range(7))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_storage(dtype, algorithm):
    x = dev(clustered(200, 64, seed=4), dtype)
    sel = hminsel.select(x, 30, backend="triton", algorithm=algorithm,
                         head_size=16 if algorithm == "lazy" else None)
    assert_certificate(x.float().cpu().numpy(), sel.indices.cpu().numpy(), rtol=1e-5)


def test_cosine_nonfinite_and_host_input():
    x = clustered(100, 8, seed=5)
    want = hminsel.select(x, 12, metric="cosine", backend="numpy").indices
    got = hminsel.select(x, 12, metric="cosine", backend="triton")  # NumPy in, NumPy out
    assert isinstance(got.indices, np.ndarray) and got.indices.tolist() == want.tolist()
    x[[4, 50]] = np.nan
    with pytest.raises(ValueError, match="first is row 4"):
        hminsel.select(dev(x), 5, backend="triton")
    sel = hminsel.select(dev(x), 10, backend="triton", nonfinite="skip")
    assert 4 not in sel.indices.tolist() and 50 not in sel.indices.tolist()
    with pytest.raises(RuntimeError, match="float64 is not a GPU dtype"):
        hminsel.select(dev(np.eye(3), torch.float64), 2, backend="triton")


@pytest.mark.parametrize("scale", [2.0 ** 122, 2.0 ** -90], ids=["huge", "tiny"])
def test_cosine_is_scale_free(scale):
    """Rows of 1e36s or 1e-27s: their float32 norms would overflow or underflow (every pick
    inf, or "all zeros"); scaled by a power of two they normalise to the same bits."""
    x = clustered(60, 8, seed=6)
    want = hminsel.select(x, 12, metric="cosine", backend="triton")
    pair = hminsel.hmin(x, metric="cosine", backend="triton")
    near = hminsel.nearest(x, x[[3, 30]], metric="cosine", backend="triton")
    xs = x * np.float32(scale)
    got = hminsel.select(dev(xs), 12, metric="cosine", backend="triton")
    assert got.indices.tolist() == want.indices.tolist()
    np.testing.assert_array_equal(got.radii.cpu().numpy(), want.radii)
    got_pair = hminsel.hmin(dev(xs), metric="cosine", backend="triton")
    assert (got_pair.value, got_pair.i, got_pair.j) == (pair.value, pair.i, pair.j)
    dist, idx = hminsel.nearest(dev(xs), dev(xs[[3, 30]]), metric="cosine", backend="triton")
    np.testing.assert_array_equal(idx.cpu().numpy(), near[1])
    np.testing.assert_array_equal(dist.cpu().numpy(), near[0])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_nearest_centres_finer_than_x(dtype):
    """float32 centres that x's half storage cannot hold (above 65504, or rounded) are not
    cast to it: x is widened instead, and the answer is the cpu backend's."""
    x = dev([[0.0, 0.0], [1e4, 0.0], [6e4, 0.0]], dtype)
    for c in ([[1e5, 0.0], [7e4, 0.0]], [[2e5, 0.0], [1e5, 0.0], [1e-3, 0.0]],
              [[1.0, 0.0], [3e4 + 1.0, 0.0]]):
        want = hminsel.nearest(x.float().cpu().numpy(), np.asarray(c, np.float32), backend="cpu")
        dist, idx = hminsel.nearest(x, dev(c), backend="triton")
        assert idx.dtype == torch.int64 and idx.cpu().tolist() == want[1].tolist()
        np.testing.assert_allclose(dist.cpu().numpy(), want[0], rtol=1e-6)
    exact = hminsel.nearest(x, dev([[1.0, 0.0], [3e4, 0.0]]), backend="triton")  # float16 holds 3e4
    assert exact[1].cpu().tolist() == [0, 0, 1]


def test_nearest_of_views_of_one_array():
    """nearest(X[:5], X[:3]) with NumPy views of one buffer (the interpreter writes every
    argument back: views must not be handed to it as one storage)."""
    x = np.random.default_rng(7).standard_normal((24, 3)).astype(np.float32)
    want = hminsel.nearest(x[:5], x[:3], backend="numpy")
    got = hminsel.nearest(x[:5], x[:3], backend="triton")
    assert got[1].tolist() == want[1].tolist()
    np.testing.assert_allclose(got[0], want[0], rtol=1e-6)


@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_lazily_negated_and_conjugated_tensors_are_read_as_their_numbers(backend):
    """A tensor with torch's negation bit (``_neg_view``, what ``x.conj()`` of a real view can
    leave) holds -x in storage order: the device path read its storage as x, so paths that
    mixed it with resolved rows (init, lazy rounds, batched, nearest) picked wrongly. A
    complex one (conjugated too) is refused with the dtype error of every backend."""
    where = "cpu" if backend == "cpu" else DEV  # the host backend takes host tensors
    x = torch.randn(20, 3, generator=torch.Generator().manual_seed(0)).to(where)
    neg, c = x._neg_view(), torch.randn(4, 3, generator=torch.Generator().manual_seed(1)).to(where)
    assert neg.is_neg()
    host = lambda t: t.cpu()  # noqa: E731  the oracle reads host copies
    for got, want in [
            (hminsel.select_batched(neg, 3, ptr=[0, 10, 20], backend=backend).indices,
             hminsel.select_batched(host(-x), 3, ptr=[0, 10, 20], backend="numpy").indices),
            (hminsel.select(neg, 6, init=torch.tensor([-3, -5])._neg_view(), backend=backend).indices,
             hminsel.select(host(-x), 6, init=[3, 5], backend="numpy").indices),
            (hminsel.nearest(neg, c, backend=backend)[1],
             hminsel.nearest(host(-x), host(c), backend="numpy")[1]),
            (hminsel.nearest(x, c._neg_view(), backend=backend)[1],
             hminsel.nearest(host(x), host(-c), backend="numpy")[1])]:
        assert np.asarray(got.cpu()).tolist() == np.asarray(want.cpu()).tolist()
    z = torch.randn(5, 3, dtype=torch.complex64, device=where)
    for a in (z, z.conj()):
        with pytest.raises(TypeError, match="must hold float16, float32 or float64 values"):
            hminsel.select(a, 2, backend=backend)


def test_integers_read_as_float32_only_where_exact():
    """The host reads integers as float64; the GPU as float32, exact up to 2^24: above it
    they raise instead of merging 16777216 and 16777217."""
    x = np.array([[1 << 24], [(1 << 24) - 6], [0], [5]], np.int64)
    want = hminsel.select(x, 4, start=2, backend="cpu").indices
    assert hminsel.select(x, 4, start=2, backend="triton").indices.tolist() == want.tolist()
    assert hminsel.select(dev(x, torch.int32), 4, start=2, backend="triton").indices.tolist() == \
        want.tolist()
    x[1] = (1 << 24) + 1
    with pytest.raises(ValueError, match=r"x holds integers up to 16777217 .* read as float32"):
        hminsel.hmin(x, backend="triton")
    flags = torch.tensor([[True, False], [False, True], [True, True]], device=DEV)
    assert hminsel.select(flags, 3, backend="triton").indices.tolist() == [0, 1, 2]


def test_mask_on_the_device(algorithm):
    """A mask on x's device: the allowed rows' picks, as on the host oracle."""
    x = clustered(300, 12, seed=9)
    allowed = np.random.default_rng(5).random(len(x)) < 0.5
    want = hminsel.select(x, 40, mask=allowed, backend="numpy").indices
    got = hminsel.select(dev(x), 40, mask=torch.from_numpy(allowed).to(DEV), backend="triton",
                         algorithm="lazy" if algorithm.startswith("lazy") else algorithm)
    assert got.indices.device.type == DEV and got.indices.cpu().tolist() == want.tolist()


def test_radius_ends_the_run(algorithm):
    x, metric = clustered(200, 8, clusters=6, seed=2), "cosine" if algorithm == "lazy" else "l2"
    radius = float(hminsel.select(x, 60, metric=metric, backend="numpy").radii[-1])
    sel = check_radius(lambda a, k, **kw: hminsel.select(dev(a), k, backend="triton",
                                                         algorithm=algorithm, **kw),
                       x, radius, metric=metric, past=80)
    assert 40 < len(sel.indices) < 80 and sel.indices.device.type == DEV


@pytest.mark.parametrize("d", [3, 12], ids=["bucket_batched", "fps_batched"])
def test_select_batched_radius_cuts_each_problem(d, monkeypatch):
    """The small problems run the batched kernels to their caps, the picks past each cut
    cleared; the warm one (init) runs select: each as select on its problem alone. (Clouds
    that fit in registers run fps_batched: d = 3 takes the bucket kernel as if they did not.)"""
    from hminsel.triton import batched, bucket
    if d <= 8:
        monkeypatch.setattr(batched, "on_chip", lambda points, d: False)
    launched = []
    for module, name in ((batched, "fps_batched"), (bucket, "bucket_batched")):
        real = getattr(module, name)
        monkeypatch.setattr(module, name, lambda *a, _n=name, _r=real, **kw: launched.append(_n) or _r(
            *a, **kw))
    x = clustered(120, d, clusters=5, seed=3)
    ptr = [0, 50, 120]
    seen = []
    res = hminsel.select_batched(dev(x), 1.0, ptr=ptr, radius=0.3, backend="triton",
                                 init=[100], progress=lambda done, total: seen.append((done, total)))
    assert res.indices.device.type == DEV
    assert seen[-1] == (len(res.indices), len(res.indices))  # the total shrank to the picks made
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    for p, (lo, hi) in enumerate(zip(ptr[:-1], ptr[1:])):
        want = hminsel.select(dev(x[lo:hi]), 1.0, radius=0.3, backend="triton",
                              init=[100 - lo] if lo <= 100 < hi else None)
        idx, radii = res.problem(p)
        assert (idx - lo).tolist() == want.indices.tolist() and torch.equal(radii, want.radii)
        assert len(idx) < hi - lo
    assert res.caps.tolist() == [50, 70] and res.radius_reached.tolist() == [True, True]
    assert launched[:1] == (["bucket_batched"] if d <= 8 else ["fps_batched"])
    res = hminsel.select_batched(dev(x), 1.0, ptr=ptr, radius=0.3, backend="triton")  # no warm one
    want = hminsel.select_batched(x, 1.0, ptr=ptr, radius=0.3, backend="numpy")
    assert res.indices.tolist() == want.indices.tolist() and res.ptr.tolist() == want.ptr.tolist()


def test_hmin_and_nearest():
    check_hmin_and_nearest("triton", DEV)


def test_outputs_are_all_written(monkeypatch):
    """Poison every buffer the launchers allocate: an unwritten element shows up."""
    import hminsel.triton.block_min as bm
    import hminsel.triton.head as hd
    import hminsel.triton.head_tiled as ht

    class Poisoned:
        def __getattr__(self, name):
            return getattr(torch, name)

        @staticmethod
        def empty(*args, **kwargs):
            t = torch.empty(*args, **kwargs)
            return t.fill_(float("nan") if t.is_floating_point() else -7)

        def empty_like(self, t, **kwargs):
            return self.empty(t.shape, dtype=kwargs.get("dtype", t.dtype), device=t.device)

    for mod in (bm, hd, ht):
        monkeypatch.setattr(mod, "torch", Poisoned())
    be = backends.get("triton")
    x = dev(np.random.default_rng(7).standard_normal((130, 20)))
    for centres, gemm in [(x[:3], False), (x, True)]:
        monkeypatch.setattr(bm, "GEMM_MIN_CENTRES", 1 if gemm else 1 << 40)
        value, index = be.block_min(x, centres.contiguous(), self_mask=gemm)
        assert not torch.isnan(value).any() and (index >= 0).all()
    h = torch.full((130,), float("inf"), device=DEV)
    pos, vals = be.head_greedy(x, h, torch.arange(130, device=DEV), -np.inf, -1, 20)
    assert len(pos) == 20 and not np.isnan(vals).any()
    h = torch.full((130,), float("inf"), device=DEV)
    own = torch.full((130,), -1, dtype=torch.int64, device=DEV)
    tiled = be.head_greedy_tiled(x, h, torch.arange(130, device=DEV), -np.inf, -1, 20, own)
    assert np.array_equal(tiled[0], pos) and np.array_equal(tiled[1], vals)


def test_packed_key_order():
    from hminsel.triton.keys import LOW, pack_host, tau_key, unpack_host
    keys = [pack_host(v, i) for v, i in [(0.0, 5), (0.0, 3), (1.5, 9), (1.5, 2), (np.inf, 0)]]
    assert sorted(range(5), key=lambda t: keys[t]) == [0, 1, 2, 3, 4]  # value, then lower index
    assert pack_host(-1.0, 0) == 0 < pack_host(0.0, LOW - 2)  # MARK loses to every live key
    idx, val = unpack_host(torch.tensor(keys + [0]))
    assert idx.tolist() == [5, 3, 9, 2, 0, -1] and val.tolist() == [0, 0, 1.5, 1.5, np.inf, -1]
    assert tau_key(-np.inf, 3) == -1
    assert pack_host(1.5, 2) > tau_key(1.5, 3) == pack_host(1.5, 3)  # beating is strict
    up = float(np.nextafter(np.float32(1.5), np.float32(2)))
    t = (1.5 + up) / 2  # between two float32: 1.5 never beats it, the next float32 always does
    assert pack_host(1.5, 0) <= tau_key(t, 0) < pack_host(up, LOW - 2)


def test_dispatch():
    assert "takes torch tensors" in backends.why_not("triton", np.zeros((3, 2), np.float32))
    if GPU:
        assert hminsel.select(dev(np.eye(4)), 2).backend == "triton"  # auto: CUDA -> triton
    else:  # CPU tensors stay on the C++/NumPy backends under auto, interpreter or not
        assert hminsel.select(torch.eye(4), 2).backend in ("cpu", "numpy")
    code = "import hminsel, sys; assert 'triton' not in sys.modules and 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


# bfloat16's tl.dot is wrong under the interpreter: the GEMM kernels' bfloat16 runs on a GPU only
GEMM_DTYPES = [torch.float32, torch.float16] + ([torch.bfloat16] if GPU else [])


@pytest.mark.parametrize("dtype", GEMM_DTYPES, ids=str)
@pytest.mark.parametrize("tile", [16, 64])
def test_hmin_upper_triangle_equals_direct(monkeypatch, tile, dtype):
    """The triangle pass + live rows (GEMM path) gives the direct path's exact pair."""
    import hminsel.triton.block_min as bm
    import hminsel.triton.pairs as tp
    monkeypatch.setattr(tp, "BLOCK", tile)
    monkeypatch.setattr(tp, "GRID_Y", 2)  # two groups of tile pairs a row tile: each loops
    cases = [clustered(180, 24, clusters=4, seed=7),
             np.repeat(np.random.default_rng(3).standard_normal((60, 20)).astype(np.float32), 3, 0)]
    for x in cases:
        fast = hminsel.hmin(dev(x, dtype), backend="triton")
        monkeypatch.setattr(bm, "GEMM_MIN_CENTRES", 1 << 40)
        slow = hminsel.hmin(dev(x, dtype), backend="triton")
        monkeypatch.setattr(bm, "GEMM_MIN_CENTRES", 64)
        assert (fast.value, fast.i, fast.j) == (slow.value, slow.i, slow.j)
    assert (fast.value, fast.i, fast.j) == (0.0, 0, 1)  # duplicates: the lowest pair


@pytest.mark.parametrize("dtype", GEMM_DTYPES, ids=str)
@pytest.mark.parametrize("window", [16, 1], ids=["settled", "overflow"])
def test_block_min_windows_equal_direct(monkeypatch, window, dtype):
    """Rows the certificate cannot settle (far-apart clusters: eps exceeds the gaps) go
    through candidate windows, or the direct form when a window overflows: same answers."""
    import hminsel.triton.block_min as bm
    import hminsel.triton.window as tw
    monkeypatch.setattr(tw, "WINDOW", window)
    calls = []
    settle = tw.settle
    def counted(*args):
        over = settle(*args)
        calls.append((len(args[2]), len(over)))  # (rows windowed, rows overflowed)
        return over
    monkeypatch.setattr(tw, "settle", counted)
    x = dev(100 * clustered(240, 32, clusters=8, spread=0.0005, seed=12), dtype)  # centres 100 apart
    y = torch.cat([x[::3], x[:5]]).contiguous()  # duplicates: ties to the lowest column
    be = backends.get("triton")
    fast = be.block_min(x, y)
    rows, over = calls[0]
    assert rows > 0 and (over < rows if window == 16 else over > 0)  # both paths ran
    monkeypatch.setattr(bm, "GEMM_MIN_CENTRES", 1 << 40)
    slow = be.block_min(x, y)
    assert torch.equal(fast[0], slow[0]) and torch.equal(fast[1], slow[1])
