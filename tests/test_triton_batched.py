"""The triton backend's batched selection end to end: fps_batched, select_batched on the device
(small problems batched, large ones through select, init rows, masks, labels), the torch ops'
device kernels and the drop-ins of torch_cluster, PyTorch3D, torch-fps and torch-quickfps.

Runs under ``TRITON_INTERPRET=1`` on CPU tensors without a GPU (tiny shapes),
compiled on CUDA tensors with one (``HMINSEL_TRITON_GPU=1``), as test_triton_select.py.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the triton backend runs on torch tensors")
pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

import hminsel  # noqa: E402
from conftest import TRITON_DEV as DEV, clustered  # noqa: E402

pytestmark = pytest.mark.interpret


def dev(a, dtype=torch.float32):
    return torch.as_tensor(np.asarray(a)).to(device=DEV, dtype=dtype)


def test_fps_batched_matches_per_problem_select():
    from hminsel.triton.batched import fps_batched
    sizes = [200, 1, 63, 2, 129, 0]  # the empty one last: its row lo is past x's end
    ptr = np.concatenate([[0], np.cumsum(sizes)])
    x = np.random.default_rng(8).standard_normal((ptr[-1], 3)).astype(np.float32)
    idx, dist = fps_batched(dev(x), dev(ptr, torch.int64), 50, 0)
    assert idx.shape == (6, 50)
    for b, n in enumerate(sizes):
        kb = min(50, n)
        if n == 0:
            assert (idx[b] == -1).all()
            continue
        want = hminsel.select(x[ptr[b]:ptr[b + 1]], kb, backend="numpy", algorithm="streaming")
        assert (idx[b, :kb].cpu().numpy() - ptr[b]).tolist() == want.indices.tolist()
        np.testing.assert_allclose(dist[b, :kb].sqrt().cpu().numpy(), want.radii, rtol=1e-5)
        assert (idx[b, kb:] == -1).all()


@pytest.mark.parametrize("d", range(1, 9))
def test_cloud_kernel_sums_in_the_steps_tree(d):
    """cloud_kernel (d <= 8, a vector a coordinate) writes the step's butterfly out by hand:
    its squared radii equal the cpu backend's (which sums in that tree) bit for bit, on
    scaled columns where a left-to-right sum gives other values."""
    _cpu = pytest.importorskip("hminsel._cpu")
    from hminsel.triton import batched
    rng = np.random.default_rng(d)
    x = (rng.standard_normal((300, d)) * np.array([1, 7.3, 0.01, 300, 1.5, 0.2, 40, 3])[:d]).astype(np.float32)
    ptr, counts, starts = np.array([0, 120, 300]), np.array([60, 100]), np.array([3, 0])
    launched = []
    real = batched.cloud_kernel
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(batched, "cloud_kernel", _Recorded(real, "cloud_kernel", launched))
        idx, dist = batched.fps_batched(dev(x), dev(ptr, torch.int64), dev(counts, torch.int64),
                                        dev(starts, torch.int64))
    assert launched == ["cloud_kernel"]
    picks, values, _ = _cpu.fps_batched(x, ptr, counts, starts)
    got = [(idx[b, :n].cpu().numpy(), dist[b, :n].cpu().numpy()) for b, n in enumerate(counts)]
    assert np.concatenate([i for i, _ in got]).tolist() == picks.tolist()
    assert np.concatenate([v for _, v in got]).astype(np.float64).tolist() == values.tolist()
    if d == 3:  # the data tells the orders apart: left to right gives other values
        sq = (x - x[picks[1]]) ** 2
        assert (((sq[:, 0] + sq[:, 1]) + sq[:, 2]) != ((sq[:, 0] + sq[:, 2]) + sq[:, 1])).any()


@pytest.mark.parametrize("cap", [16384, 100, "streamed"], ids=["all-batched", "large-via-select",
                                                             "chunks-streamed"])
def test_select_batched_on_the_device(monkeypatch, cap):
    import hminsel.triton.batched as tb
    d = 3  # point clouds that fit in registers: cloud_kernel
    if cap == "streamed":  # d = 12 (not a cloud), problems over 64 points:
        d = 12             # fps_batched_stream_kernel, 64 points at a time
        monkeypatch.setattr(tb, "ON_CHIP_ELEMENTS", 64 * 16)
    else:
        monkeypatch.setattr(tb, "MAX_ELEMENTS", 4 * cap)  # above the cap: the whole-GPU path
    launched = []  # which of the batched kernels ran
    for name in ("cloud_kernel", "fps_batched_kernel", "fps_batched_stream_kernel"):
        kernel = getattr(tb, name)
        monkeypatch.setattr(tb, name, _Recorded(kernel, name, launched))
    sizes = [200, 1, 63, 0, 129, 40]
    ptr = np.concatenate([[0], np.cumsum(sizes)])
    x = np.random.default_rng(9).standard_normal((ptr[-1], d)).astype(np.float32)
    res = hminsel.select_batched(dev(x), 0.2, ptr=dev(ptr, torch.int64), backend="triton")
    want = hminsel.select_batched(x, 0.2, ptr=ptr, backend="numpy")
    assert res.backend == "triton" and isinstance(res.indices, torch.Tensor)
    assert res.indices.device.type == DEV
    if cap == "streamed":
        assert launched == ["fps_batched_stream_kernel"]
    elif cap == 16384:
        assert launched == ["cloud_kernel"]
    assert res.indices.tolist() == want.indices.tolist() and res.ptr.tolist() == want.ptr.tolist()
    np.testing.assert_allclose(res.radii.cpu().numpy(), want.radii, rtol=1e-5)
    mask = np.random.default_rng(4).random(len(x)) < 0.7  # on the device too: brought over
    got = hminsel.select_batched(dev(x), 0.2, ptr=dev(ptr, torch.int64), mask=dev(mask, torch.bool),
                                 backend="triton")
    ref = hminsel.select_batched(x, 0.2, ptr=ptr, mask=mask, backend="numpy")
    assert got.indices.tolist() == ref.indices.tolist() and got.ptr.tolist() == ref.ptr.tolist()
    z = x.copy()
    z[[0, 7, 250]] = np.nan  # nonfinite='skip': a mask of the finite rows, found on the device
    got = hminsel.select_batched(dev(z), 0.2, ptr=ptr, nonfinite="skip", backend="triton")
    ref = hminsel.select_batched(z, 0.2, ptr=ptr, nonfinite="skip", backend="numpy")
    assert got.indices.tolist() == ref.indices.tolist() and got.ptr.tolist() == ref.ptr.tolist()
    labels = np.random.default_rng(2).integers(0, 3, len(x))
    y = clustered(len(x), 8, seed=3)
    got = hminsel.select_batched(dev(y), {0: 5, 2: 7}, groups=labels, metric="cosine", backend="triton")
    ref = hminsel.select_batched(y, {0: 5, 2: 7}, groups=labels, metric="cosine", backend="numpy")
    assert got.indices.tolist() == ref.indices.tolist() and got.labels.tolist() == [0, 1, 2]
    np.testing.assert_allclose(got.radii.cpu().numpy(), ref.radii, rtol=1e-5, atol=1e-7)


class _Recorded:
    """A Triton kernel whose launches (``kernel[grid](...)``) note its name."""

    def __init__(self, kernel, name, log):
        self.kernel, self.name, self.log = kernel, name, log

    def __getitem__(self, grid):
        self.log.append(self.name)
        return self.kernel[grid]


@pytest.mark.parametrize("host", [True, False], ids=["numpy", "tensor"])
def test_select_batched_without_rows(host):
    """An x of no rows holds only empty problems, as on the host backends (NumPy's empty
    arrays have zero strides); a k that asks for picks still raises."""
    x = np.zeros((0, 3), np.float32) if host else dev(np.zeros((0, 3)))
    for kwargs in (dict(k=0), dict(k=0.5, ptr=[0, 0, 0]), dict(k=0, metric="cosine")):
        res = hminsel.select_batched(x, backend="triton", **kwargs)
        assert len(res.indices) == 0 and res.indices.dtype == (np.int64 if host else torch.int64)
        assert res.ptr.tolist() == [0] * (len(kwargs.get("ptr", [0, 0])))
    with pytest.raises(ValueError, match="problem 0 is empty but k asks for 2 picks"):
        hminsel.select_batched(x, 2, backend="triton")
    with pytest.raises(ValueError, match="x is empty"):
        hminsel.select(x, 1, backend="triton")


def test_select_batched_init_on_the_device():
    """Problems that hold init rows run select(init=) on the device, the others batched."""
    sizes = [60, 1, 40, 0, 70]
    ptr = np.concatenate([[0], np.cumsum(sizes)])
    x = np.random.default_rng(5).standard_normal((ptr[-1], 3)).astype(np.float32)
    init = np.array([140, 62, 3])
    res = hminsel.select_batched(dev(x), 0.2, ptr=ptr, init=dev(init, torch.int64), backend="triton")
    want = hminsel.select_batched(x, 0.2, ptr=ptr, init=init, backend="numpy")
    assert res.indices.device.type == DEV and res.indices[:1].tolist() == [3]
    assert res.indices.tolist() == want.indices.tolist() and res.ptr.tolist() == want.ptr.tolist()
    np.testing.assert_allclose(res.radii.cpu().numpy(), want.radii, rtol=1e-5)
    labels = np.random.default_rng(2).integers(0, 3, len(x))
    mask = np.random.default_rng(4).random(len(x)) < 0.7
    got = hminsel.select_batched(dev(x), 6, groups=labels, mask=mask, init=[int(np.flatnonzero(~mask)[0])],
                                 backend="triton")
    ref = hminsel.select_batched(x, 6, groups=labels, mask=mask, init=[int(np.flatnonzero(~mask)[0])],
                                 backend="numpy")
    assert got.indices.tolist() == ref.indices.tolist()


def test_torch_ops_kernels_on_the_device():
    """The ops' CUDA kernels through the triton backend: the CPU ops' answers."""
    from ops_on_device import check_ops_on_device
    check_ops_on_device("triton", DEV)


def test_drop_ins_on_the_device():
    """torch_cluster, PyTorch3D and torch-fps drop-ins on x's device (on a GPU: the ops' CUDA
    kernels) pick what they pick on the CPU, and answer on that device."""
    from hminsel.compat import pytorch3d, torch_cluster, torch_fps
    x = np.random.default_rng(14).random((4, 150, 3)).astype(np.float32)
    lengths = np.array([150, 20, 0, 99])
    mask = np.arange(150)[None] < lengths[:, None]
    batch = np.repeat(np.arange(4), lengths)
    flat = x[mask]
    got = torch_cluster.fps(dev(flat), dev(batch, torch.int64), 0.25, random_start=False)
    want = torch_cluster.fps(torch.from_numpy(flat), torch.from_numpy(batch), 0.25, random_start=False)
    assert got.device.type == DEV and got.tolist() == want.tolist()
    pts, idx = pytorch3d.sample_farthest_points(dev(x), dev(lengths, torch.int64), K=16)
    ref_pts, ref_idx = pytorch3d.sample_farthest_points(torch.from_numpy(x), torch.from_numpy(lengths), K=16)
    assert idx.device.type == DEV and idx.tolist() == ref_idx.tolist()
    assert torch.equal(pts.cpu(), ref_pts)
    got = torch_fps.farthest_point_sampling(dev(x), dev(mask, torch.bool), 16, random_start=False,
                                            validate=False)
    want = torch_fps.farthest_point_sampling(torch.from_numpy(x), torch.from_numpy(mask), 16,
                                             random_start=False, validate=False)
    assert got.device.type == DEV and got.tolist() == want.tolist()


def test_quickfps_compat_on_the_device():
    """hminsel.compat.torch_quickfps on x's device (on a GPU: select_batched with a mask there)
    picks what it picks on the CPU."""
    from hminsel.compat import torch_quickfps as q
    x = np.random.default_rng(12).random((3, 200, 3)).astype(np.float32)
    mask = np.random.default_rng(13).random((3, 200)) > 0.3
    got = q.sample_idx(dev(x), 24, mask=dev(mask, torch.bool))
    want = q.sample_idx(torch.from_numpy(x), 24, mask=torch.from_numpy(mask))
    assert got.device.type == DEV and got.tolist() == want.tolist()
