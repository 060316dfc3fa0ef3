"""The Triton bucket FPS (d <= 8): the triton streaming sequence, index for index, bit for bit.

Runs under ``TRITON_INTERPRET=1`` on CPU tensors (tiny shapes), compiled on
CUDA tensors with ``HMINSEL_TRITON_GPU=1``. The clouds are test_bucket.py's.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the triton backend runs on torch tensors")
pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

import hminsel  # noqa: E402
from conftest import TRITON_DEV as DEV, assert_certificate  # noqa: E402
from test_bucket import cloud  # noqa: E402

pytestmark = pytest.mark.interpret


def dev(a, dtype=torch.float32):
    return torch.as_tensor(np.asarray(a)).to(device=DEV, dtype=dtype)


def same(x, k, **kw):
    """bucket == streaming on the triton backend (indices and radii, bitwise)."""
    a = hminsel.select(x, k, backend="triton", algorithm="streaming", **kw)
    b = hminsel.select(x, k, backend="triton", algorithm="bucket", **kw)
    assert b.algorithm == "bucket" and b.backend == "triton"
    assert b.indices.tolist() == a.indices.tolist()
    assert torch.equal(b.radii, a.radii)
    return b


KINDS = ["gauss", "dups", "collinear", "coplanar", "equal", "grid", "outliers", "torus"]
CASES = [(kind, 3) for kind in KINDS] + [(kind, d) for d in (1, 2, 5, 8)
                                         for kind in ("gauss", "dups", "grid", "outliers")]


@pytest.mark.parametrize("kind,d", CASES, ids=[f"{k}-d{d}" for k, d in CASES])
def test_identical_to_streaming(kind, d):
    if kind in ("dups", "equal"):  # every row, the ties of the last ones too
        same(dev(cloud(kind, 120, d, seed=d)), 120, start=d * 37 % 120)
    else:
        same(dev(cloud(kind, 300, d, seed=d)), 90, start=d * 37)


def test_many_chunks_and_certificate():
    """Several programs a pick (2500 rows: 3 chunks of 1024 at d = 3)."""
    x = cloud("torus", 2500, 3, seed=5)
    sel = same(dev(x), 120, start=2499)
    assert_certificate(x, sel.indices.cpu().numpy())


@pytest.mark.parametrize("n", [1, 2, 63], ids=lambda n: f"N{n}")
def test_sizes_and_k(n):
    x = dev(cloud("dups", n, 3))
    same(x, 1)
    same(x, n, start=n - 1)


def test_hand_built_ties():
    line = dev([[7.0], [0.0], [1.0], [10.0], [4.0]])
    sel = hminsel.select(line, 5, start=1, backend="triton", algorithm="bucket")
    assert sel.indices.tolist() == [1, 3, 4, 0, 2]
    np.testing.assert_allclose(sel.radii.cpu().numpy(), [np.inf, 10, 4, 3, 1])
    square = dev([[0, 0], [1, 0], [0, 1], [1, 1]])  # ties to the lowest index
    assert hminsel.select(square, 4, backend="triton", algorithm="bucket").indices.tolist() == [0, 3, 1, 2]


def test_init_and_skip():
    x = cloud("torus", 200, 3, seed=1)
    same(dev(x), 60, init=[3, 199, 100])
    same(dev(x), 3, init=[3, 199, 100])  # k == len(init)
    bad = x.copy()
    bad[[0, 10, 150]] = np.nan
    bad[7, 1] = np.inf
    sel = same(dev(bad), 80, start=4, nonfinite="skip")
    assert not set(sel.indices.tolist()) & {0, 7, 10, 150}
    same(dev(bad), 196, start=4, nonfinite="skip")  # every finite row


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_half_precision_storage(dtype):
    same(dev(cloud("outliers", 300, 3, seed=3), dtype), 80)


def test_cosine_random_start_and_extremes(monkeypatch):
    from hminsel import _finite
    monkeypatch.setattr(_finite, "check_scale", lambda *args: None)  # the kernels at extremes
    same(dev(cloud("gauss", 300, 4, seed=9)), 50, metric="cosine")
    same(dev(cloud("gauss", 300, 4, seed=9)), 50, start="random", seed=3)
    big = cloud("gauss", 300, 3, seed=4).astype(np.float64) * 1e30
    big[::5] *= 1e5  # squares overflow to inf
    with np.errstate(over="ignore"):  # the interpreter's NumPy says so
        same(dev(big), 80)
    same(dev(cloud("gauss", 300, 3, seed=4).astype(np.float64) * 1e-42), 80)  # subnormal or 0


def test_auto_dispatch():
    x = dev(cloud("gauss", 300, 8))
    assert hminsel.select(x, 20, backend="triton").algorithm == "bucket"
    assert hminsel.select(x, 15, backend="triton").algorithm == "streaming"  # a few picks: no build
    assert hminsel.select(dev(cloud("gauss", 300, 9)), 20, backend="triton").algorithm == "lazy"


@pytest.mark.parametrize("kernel", ["cloud", "bucket"])
@pytest.mark.parametrize("kind,d", [("grid", 3), ("torus", 3), ("dups", 8), ("gauss", 1)])
def test_batched_identical_to_per_cloud_streaming(kind, d, kernel, monkeypatch):
    """select_batched's clouds (in registers: cloud_kernel; or, as if too large for them, the
    bucket kernel) pick as select does on each cloud alone."""
    if kernel == "bucket":
        from hminsel.triton import batched
        monkeypatch.setattr(batched, "on_chip", lambda points, d: False)
    sizes = [1, 2, 63, 1100, 0, 257]  # 1100: two chunks of one program
    ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    x = dev(cloud(kind, int(ptr[-1]), d, seed=d))
    counts = [1, 2, 40, 70, 0, 100]
    starts = [0, 1, 62, 1099, 0, 3]
    res = hminsel.select_batched(x, counts, ptr=ptr, start=starts, backend="triton")
    for p, (lo, hi) in enumerate(zip(ptr[:-1], ptr[1:])):
        if counts[p] == 0:
            continue
        want = hminsel.select(x[lo:hi], counts[p], start=starts[p], backend="triton",
                              algorithm="streaming")
        idx, radii = res.problem(p)
        assert (idx - int(lo)).tolist() == want.indices.tolist(), p
        # on a GPU the same fp32 values (torch's float64 sqrt, _device.metric_units, may round
        # differently from NumPy's, api.to_metric, in the last bit). Under the interpreter the
        # step's tl.sum adds a row left to right (NumPy's order), where cloud_kernel (these
        # clouds fit in registers) writes out the GPU's butterfly, (s0 + s2) + (s1 + s3):
        # an fp32 rounding apart
        rtol = 1e-15 if DEV == "cuda" or kernel == "bucket" else 2.4e-7
        np.testing.assert_allclose(radii.cpu().numpy(), want.radii.cpu().numpy(), rtol=rtol)


def test_bucket_batched_launcher_layout():
    """Some problems of a batch, in the launcher's own order; poison past k."""
    from hminsel.triton.bucket import bucket_batched
    sizes = [5, 40, 30]
    ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    x = dev(cloud("gauss", int(ptr[-1]), 2, seed=1))
    idx, dist = bucket_batched(x, ptr, np.array([10, 3]), np.array([2, 0]), np.array([1, 2]))
    assert idx.shape == (2, 10) and (idx[1, 3:] == -1).all() and torch.isnan(dist[1, 3:]).all()
    for row, (p, k, s) in enumerate([(1, 10, 2), (2, 3, 0)]):
        want = hminsel.select(x[ptr[p]:ptr[p + 1]], k, start=s, backend="triton", algorithm="streaming")
        assert (idx[row, :k] - int(ptr[p])).tolist() == want.indices.tolist()
        sq = want.radii.cpu().numpy() ** 2
        np.testing.assert_allclose(dist[row, 1:k].cpu().numpy(), sq[1:], rtol=1e-6)
        assert np.array_equal(dist[row, 1:k].cpu().numpy(), sq[1:].astype(np.float32))


@pytest.mark.parametrize("cols", [slice(None, None, 2), slice(0, 3)], ids=["column-strided", "row-strided"])
def test_launchers_take_strided_views(cols):
    """Views of a wider cloud (columns 2 apart; rows 6 apart): the launchers read them as copies."""
    from hminsel.triton.bucket import bucket_batched, steps
    x = dev(cloud("gauss", 200, 6, seed=2))[:, cols]
    assert not x.is_contiguous()
    want = hminsel.select(x.contiguous(), 40, start=7, backend="triton", algorithm="streaming")
    mind = torch.full((200,), float("inf"), dtype=torch.float32, device=DEV)
    picks, _ = steps(x, mind, [7], 40)
    assert picks.tolist() == want.indices.tolist()
    idx, _ = bucket_batched(x, np.array([0, 200], np.int64), np.array([40]), np.array([7]), np.array([0]))
    assert idx[0].tolist() == want.indices.tolist()
