"""Drop-in signatures: documented semantics, and the peer's own output where installed."""
from __future__ import annotations

import math

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import hminsel  # noqa: E402
from hminsel.compat.pytorch3d import sample_farthest_points  # noqa: E402
from hminsel.compat.torch_cluster import fps  # noqa: E402
from hminsel.compat.torch_fps import farthest_point_sampling  # noqa: E402


def alone(x, k, start=0):
    return hminsel.select(np.ascontiguousarray(x), k, start=start).indices.tolist()


# -- torch_cluster.fps --------------------------------------------------------

def test_cluster_docstring_example():
    src = torch.tensor([[-1., -1.], [-1., 1.], [1., -1.], [1., 1.]])
    out = fps(src, torch.tensor([0, 0, 0, 0]), ratio=0.5, random_start=False)
    assert out.dtype == torch.long and out.tolist() == [0, 3]


def test_cluster_batch_ratio_ceil_and_ptr():
    g = torch.Generator().manual_seed(0)
    src = torch.rand(30, 3, generator=g)
    batch = torch.tensor([0] * 7 + [1] * 13 + [3] * 10)    # example 2 is empty
    out = fps(src, batch, ratio=0.3, random_start=False)
    counts = [math.ceil(0.3 * n) for n in (7, 13, 0, 10)]  # 3, 4, 0, 3
    assert len(out) == sum(counts)
    expect = alone(src[:7], 3) + [7 + i for i in alone(src[7:20], 4)] + [20 + i for i in alone(src[20:], 3)]
    assert out.tolist() == expect
    via_ptr = fps(src, ratio=0.3, random_start=False, ptr=[0, 7, 20, 20, 30])
    assert via_ptr.tolist() == expect
    more = fps(src, batch, ratio=0.3, random_start=False, batch_size=6)  # trailing empty examples
    assert more.tolist() == expect


def test_cluster_random_start():
    src = torch.rand(40, 2)
    batch = torch.tensor([0] * 20 + [1] * 20)
    torch.manual_seed(1)
    a = fps(src, batch, ratio=0.25)
    torch.manual_seed(1)
    b = fps(src, batch, ratio=0.25)
    assert a.tolist() == b.tolist()
    assert (a[:5] < 20).all() and (a[5:] >= 20).all()
    firsts = {int(fps(src, batch, ratio=0.25)[0]) for _ in range(10)}
    assert len(firsts) > 1


def test_cluster_bad_ratio():
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        fps(torch.rand(5, 2), ratio=0.0)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        fps(torch.rand(5, 2), ratio=torch.tensor([1.5]))


def test_cluster_bad_batch_and_ratio_types():
    src = torch.rand(6, 2)
    with pytest.raises(ValueError, match=r"batch ids must be >= 0; got -1"):
        fps(src, torch.tensor([-1, -1, 0, 0, 1, 1]), 0.5)
    with pytest.raises(ValueError, match=r"batch must be 1-D.* got shape \(6, 1\)"):
        fps(src, torch.zeros(6, 1, dtype=torch.long), 0.5)
    with pytest.raises(TypeError, match="ratio must be a float"):
        fps(src, None, "0.5")
    with pytest.raises(ValueError, match="batch holds ids >= batch_size = 2"):
        fps(src, torch.tensor([0, 0, 1, 1, 2, 2]), 0.5, batch_size=2)


def test_cluster_unsorted_batch():
    """An unsorted batch is an error (select_batched's), not points grouped by position."""
    src = torch.rand(6, 2)
    with pytest.raises(ValueError, match=r"batch must be sorted .* batch\[1\] = 0 < batch\[0\] = 1"):
        fps(src, torch.tensor([1, 0, 1, 0, 2, 2]), 0.5, random_start=False)
    with pytest.raises(ValueError, match="batch must be sorted"):  # batch_size given: checked too
        fps(src, torch.tensor([0, 0, 1, 1, 2, 0]), 0.5, random_start=False, batch_size=3)


def test_cluster_ratio_per_example_count():
    src, batch = torch.rand(6, 2), torch.tensor([0, 0, 1, 1, 2, 2])
    with pytest.raises(ValueError, match="ratio must hold one value per example or one value; "
                                         "got 2 for 3 examples"):
        fps(src, batch, torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match="got 2 for 1 examples"):
        fps(src, None, torch.tensor([0.5, 0.5]))
    one = fps(src, batch, torch.tensor([0.5]), random_start=False)
    assert one.tolist() == fps(src, batch, torch.tensor([0.5, 0.5, 0.5]), random_start=False).tolist()


# -- pytorch3d.sample_farthest_points ------------------------------------------

def test_p3d_padding_lengths():
    pts = torch.rand(3, 10, 3)
    sel, idx = sample_farthest_points(pts, lengths=torch.tensor([10, 2, 0]), K=4)
    assert sel.shape == (3, 4, 3) and idx.shape == (3, 4) and idx.dtype == torch.int64
    assert idx[0].tolist() == alone(pts[0], 4)
    assert idx[1].tolist() == [0, 1, -1, -1] and idx[2].tolist() == [-1] * 4
    assert torch.equal(sel[0], pts[0, idx[0]])
    assert (sel[1, 2:] == 0).all() and (sel[2] == 0).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float16])
def test_p3d_points_are_float32_as_pytorch3d(dtype):
    """PyTorch3D casts points to float32 before its masked_gather: so do we, whatever the input."""
    pts = torch.rand(2, 10, 3).to(dtype)
    sel, idx = sample_farthest_points(pts, lengths=torch.tensor([10, 2]), K=4)
    assert sel.dtype == torch.float32 and sel.device == pts.device
    assert torch.equal(sel[0], pts[0, idx[0]].float()) and (sel[1, 2:] == 0).all()


def test_p3d_per_cloud_k():
    pts = torch.rand(3, 12, 2)
    sel, idx = sample_farthest_points(pts, K=[1, 5, 3])
    assert idx.shape == (3, 5) and sel.shape == (3, 5, 2)
    assert idx[1].tolist() == alone(pts[1], 5)
    assert idx[0, 1:].tolist() == [-1] * 4 and idx[2, 3:].tolist() == [-1] * 2
    _, idx_t = sample_farthest_points(pts, K=torch.tensor([1, 5, 3]))
    assert torch.equal(idx, idx_t)


def test_p3d_random_start_within_lengths():
    pts = torch.rand(4, 20, 3)
    lengths = torch.tensor([20, 5, 1, 9])
    torch.manual_seed(0)
    _, idx = sample_farthest_points(pts, lengths=lengths, K=3, random_start_point=True)
    for b, n in enumerate(lengths.tolist()):
        live = idx[b][idx[b] >= 0]
        assert len(live) == min(3, n) and (live < n).all()
        assert idx[b].tolist()[:len(live)] == alone(pts[b, :n], len(live), start=int(live[0]))


def test_p3d_random_start_is_pytorch3d_draw():
    """PyTorch3D draws torch.randint(high=length) a cloud on the default generator: a seed
    gives its starts (a cloud of no points draws nothing)."""
    pts = torch.rand(5, 30, 3)
    lengths = torch.tensor([30, 7, 0, 1, 19])
    torch.manual_seed(3)
    theirs = [int(torch.randint(high=n, size=(1,))) for n in lengths.tolist() if n]
    torch.manual_seed(3)
    _, idx = sample_farthest_points(pts, lengths=lengths, K=2, random_start_point=True)
    assert [int(idx[b, 0]) for b in (0, 1, 3, 4)] == theirs and idx[2].tolist() == [-1, -1]


def test_p3d_and_quickfps_scale_errors_name_points():
    """Both read points as float32, so the error does not say "pass float64"."""
    from hminsel.compat import torch_quickfps as q
    big = torch.rand(2, 50, 3, dtype=torch.float64) * 1e19
    for call in (lambda: sample_farthest_points(big, K=3), lambda: q.sample_idx(big, 3)):
        with pytest.raises(ValueError, match=r"^points holds values up to .* scale points down$"):
            call()
    with pytest.raises(ValueError, match="K must be an int"):
        sample_farthest_points(big, K=2.0)


# -- torch_fps.farthest_point_sampling -----------------------------------------

def test_torch_fps_semantics():
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(4, 30, 3, generator=g)
    mask = torch.rand(4, 30, generator=g) > 0.3
    mask[:, 0] = False  # first valid index is not 0
    idx = farthest_point_sampling(pts, mask, 5, random_start=False)
    assert idx.shape == (4, 5) and idx.dtype == torch.long
    for b in range(4):
        rows = torch.nonzero(mask[b]).flatten()
        assert idx[b].tolist() == rows[alone(pts[b, rows], 5)].tolist()
    start = torch.tensor([0, 3, 3, 99])  # slot 0 is invalid: repaired; 99 out of range: as torch-fps,
    with pytest.raises(ValueError, match=r"start_idx values must be within \[0, N\)"):  # an error
        farthest_point_sampling(pts, mask, 5, start_idx=start)
    fixed = farthest_point_sampling(pts, mask, 5, start_idx=start, validate=False)  # repaired too
    for b in range(4):
        ok = 0 <= int(start[b]) < 30 and bool(mask[b, int(start[b])])
        expect_first = int(start[b]) if ok else int(torch.nonzero(mask[b])[0])
        assert int(fixed[b, 0]) == expect_first


def test_torch_fps_errors_and_padding():
    pts = torch.rand(2, 6, 2)
    mask = torch.ones(2, 6, dtype=torch.bool)
    mask[1, 3:] = False
    with pytest.raises(ValueError, match=r"row 1 has 3 valid point\(s\) but 4 picks"):
        farthest_point_sampling(pts, mask, 4)
    mask[0] = False  # no valid point: the row is named, not its start slot
    with pytest.raises(ValueError, match=r"row 0 has 0 valid point\(s\) but 4 picks"):
        farthest_point_sampling(pts, mask, 4, random_start=False)
    mask[0] = True
    pad = farthest_point_sampling(pts, mask, 4, validate=False, random_start=False)
    assert pad[1, 3] == pad[1, 2]  # a short row repeats its last pick
    nan = pts.clone(); nan[0, 0, 0] = float("nan")  # non-finite points are invalid
    assert 0 not in farthest_point_sampling(nan, torch.ones(2, 6, dtype=torch.bool), 3)[0].tolist()
    assert farthest_point_sampling(pts, mask, 0).shape == (2, 0)
    with pytest.raises(ValueError, match=r"precision must be float16, float32 or float64 .* got torch.bfloat16"):
        farthest_point_sampling(pts, mask, 2, precision=torch.bfloat16)


@pytest.mark.parametrize("random_start", [False, True])
def test_torch_fps_matches_peer(monkeypatch, random_start):
    """Against torch-fps's own public function on tie-free data (its pure-PyTorch
    path: its C++ path JIT-compiles for minutes on first use)."""
    peer = pytest.importorskip("torch_fps")
    from torch_fps import _cpu
    monkeypatch.setattr(_cpu, "get_module", lambda: None)
    g = torch.Generator().manual_seed(0)
    pts = torch.rand(3, 200, 3, generator=g)
    mask = torch.rand(3, 200, generator=g) > 0.2
    kw = dict(random_start=random_start)
    ours = farthest_point_sampling(pts, mask, 20, generator=torch.Generator().manual_seed(4), **kw)
    theirs = peer.farthest_point_sampling(pts, mask, 20, generator=torch.Generator().manual_seed(4), **kw)
    assert torch.equal(ours, theirs)


# -- fpsample (NumPy) -----------------------------------------------------------

def test_fpsample_functions_are_the_exact_fps():
    from hminsel.compat import fpsample
    pc = np.random.default_rng(5).random((300, 3))
    want = alone(pc.astype(np.float32), 20, start=7)
    for fn in (fpsample.fps_sampling, fpsample.bucket_fps_kdtree_sampling,
               fpsample.fps_npdu_sampling, fpsample.fps_npdu_kdtree_sampling):
        out = fn(pc, 20, start_idx=7)
        assert out.dtype == np.uint64 and out.tolist() == want, fn.__name__
    assert fpsample.bucket_fps_kdline_sampling(pc, 20, 5, start_idx=7).tolist() == want
    seeded = fpsample.fps_sampling(pc, 9, start_idx=[40, 3])  # a start set, kept first in order
    assert seeded.tolist() == hminsel.select(pc.astype(np.float32), 9, init=[40, 3]).indices.tolist()
    np.random.seed(3)
    a = fpsample.fps_sampling(pc, 5)
    np.random.seed(3)
    assert fpsample.fps_sampling(pc, 5).tolist() == a.tolist() == alone(
        pc.astype(np.float32), 5, start=int(np.random.RandomState(3).randint(0, 300)))


@pytest.mark.parametrize("call, match", [
    (lambda f, pc: f.fps_sampling(pc, 0), r"n_samples must be an int in \[1, n_pts = 40\]"),
    (lambda f, pc: f.fps_sampling(pc, 41), r"n_samples must be an int in \[1, n_pts = 40\]"),
    (lambda f, pc: f.fps_sampling(pc[0], 1), "2-D point cloud"),
    (lambda f, pc: f.fps_sampling(pc, 3, start_idx=40), r"start_idx must be None.*\[0, n_pts = 40\); got 40"),
    (lambda f, pc: f.fps_sampling(pc, 3, start_idx=[1, -1]), r"\[0, n_pts = 40\); got \[1, -1\]"),
    (lambda f, pc: f.fps_sampling(pc, 2, start_idx=[1, 2, 3]), "1 to n_samples = 2 distinct"),
    (lambda f, pc: f.fps_sampling(pc, 3, start_idx=[4, 4]), "distinct indices; got \\[4, 4\\]"),
    (lambda f, pc: f.fps_sampling(np.where(np.arange(40)[:, None] == 3, np.nan, pc), 3),
     r"pc row 3 holds NaN"),
    (lambda f, pc: f.bucket_fps_kdline_sampling(pc, 3, 6), r"2\*\*h <= n_pts = 40"),
    (lambda f, pc: f.bucket_fps_kdline_sampling(pc, 3, 0), "1 <= h"),
    (lambda f, pc: f.fps_npdu_sampling(pc, 3, w=0), "w must be a positive int"),
])
def test_fpsample_errors(call, match):
    from hminsel.compat import fpsample
    with pytest.raises(ValueError, match=match):
        call(fpsample, np.random.default_rng(0).random((40, 3)))


def test_fpsample_matches_peer():
    peer = pytest.importorskip("fpsample")
    from hminsel.compat import fpsample
    pc = np.random.default_rng(6).random((2000, 3)).astype(np.float32)
    assert fpsample.fps_sampling(pc, 64, start_idx=0).tolist() == peer.fps_sampling(pc, 64, start_idx=0).tolist()
    theirs = peer.bucket_fps_kdline_sampling(pc, 64, 5, start_idx=0)
    # fpsample 1.0's kd-line FPS reads start_idx in its tree's order (0 gave row 1101): compare
    # from the row it started at
    assert fpsample.bucket_fps_kdline_sampling(pc, 64, 5, start_idx=int(theirs[0])).tolist() == \
        theirs.tolist()


# -- torch-quickfps ----------------------------------------------------------------

def test_quickfps_shapes_starts_and_mask():
    from hminsel.compat import torch_quickfps as q
    g = torch.Generator().manual_seed(2)
    x = torch.rand(2, 3, 60, 4, generator=g, dtype=torch.float64)
    points, idx = q.sample(x, 10, start_idx=5)
    assert points.shape == (2, 3, 10, 4) and points.dtype == torch.float64 and idx.dtype == torch.int64
    assert idx[1, 2].tolist() == alone(x[1, 2].float(), 10, start=5)
    assert torch.equal(points, x.gather(-2, idx[..., None].expand(2, 3, 10, 4)))
    assert torch.equal(q.sample_idx(x, 10, start_idx=5), idx)
    assert torch.equal(q.sample_idx_baseline(x, 10, start_idx=5), idx)
    torch.manual_seed(4)
    a = q.sample_idx(x, 6)  # one torch.randint start a cloud
    torch.manual_seed(4)
    starts = torch.randint(0, 60, (6,))
    assert a.reshape(6, 6)[:, 0].tolist() == starts.tolist()
    mask = torch.rand(2, 3, 60, generator=g) > 0.4
    mask[0, 0, 0] = False
    masked = q.sample_idx(x, 8, mask=mask)  # from each cloud's first allowed point
    for b in range(2):
        for c in range(3):
            rows = mask[b, c].nonzero().squeeze(1)
            got = masked[b, c]
            assert mask[b, c, got].all() and int(got[0]) == int(rows[0])
            sel = hminsel.select(x[b, c].float().numpy(), 8, mask=mask[b, c].numpy(), start=int(rows[0]))
            assert got.tolist() == sel.indices.tolist()
    assert q.sample(x[0, 0], 3, start_idx=1, return_points=False).tolist() == alone(x[0, 0].float(), 3, start=1)


def test_ops_device_kernels_glue():
    """The ops' CUDA kernels (select_batched over the clouds as problems, a mask for the
    slots), run here on CPU tensors through the host path."""
    from ops_on_device import check_ops_on_device
    check_ops_on_device("auto", "cpu")


def test_quickfps_errors():
    from hminsel.compat import torch_quickfps as q
    x = torch.rand(2, 10, 3)
    mask = torch.ones(2, 10, dtype=torch.bool)
    mask[1, :8] = False
    for call, match in ((lambda: q.sample(x[0, 0], 1), "at least 2 dims"),
                        (lambda: q.sample(x, 11), r"k must be in \[1, N = 10\]"),
                        (lambda: q.sample(x, 3, mask=mask), "only 2 valid points in batch 1"),
                        (lambda: q.sample(x, 2, start_idx=0, mask=mask), "disallows start_idx=0 in batch 1"),
                        (lambda: q.sample(x, 2, start_idx=10), r"start_idx must be in \[0, N = 10\)"),
                        (lambda: q.sample(x, 2, mask=mask[0]), "mask must be bool or uint8")):
        with pytest.raises(ValueError, match=match):
            call()


def test_quickfps_matches_peer():
    peer = pytest.importorskip("torch_quickfps")
    from hminsel.compat import torch_quickfps as q
    x = torch.rand(4, 1000, 3, generator=torch.Generator().manual_seed(1))
    assert torch.equal(q.sample_idx(x, 64, start_idx=0), peer.sample_idx(x, 64, start_idx=0))


def test_quickfps_no_cloud():
    from hminsel.compat import torch_quickfps as q
    x = torch.rand(0, 20, 3)
    assert q.sample_idx(x, 4, start_idx=0).shape == (0, 4)


def test_fpsample_scale_errors_name_pc_and_float32():
    from hminsel.compat import fpsample
    big = np.arange(10)[:, None] * np.full((10, 3), 1e25)
    with pytest.raises(ValueError, match=r"pc holds values up to .* scale pc down \(fpsample reads points as float32\)$"):
        fpsample.fps_sampling(big, 3)
    with pytest.raises(ValueError, match=r"the values of pc are all below .* \(fpsample reads points as float32\)$"):
        fpsample.fps_sampling(big * 1e-50, 3)
