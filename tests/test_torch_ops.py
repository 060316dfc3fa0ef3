"""torch.library registration: opcheck, and torch.compile(fullgraph=True) without graph breaks."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import hminsel  # noqa: E402
from hminsel import torch_ops  # noqa: E402
from hminsel.compat import _masks  # noqa: E402
from hminsel.compat.pytorch3d import sample_farthest_points  # noqa: E402
from hminsel.compat.torch_cluster import fps  # noqa: E402
from hminsel.compat.torch_fps import farthest_point_sampling  # noqa: E402
from hminsel.compat.torch_quickfps import sample_idx  # noqa: E402


def test_import_hminsel_does_not_import_torch():
    code = "import sys, hminsel; assert 'torch' not in sys.modules, 'torch was imported'"
    subprocess.run([sys.executable, "-c", code], check=True)


def _cases():
    x = torch.rand(50, 3)
    ptr = torch.tensor([0, 20, 50])
    z = torch.zeros(2, dtype=torch.long)
    return [
        (torch_ops.fps, (x, 5, 0, "l2")),
        (torch_ops.fps_batched, (x, ptr, 4, z, "l2")),
        (torch_ops.fps_masked, (x.view(2, 25, 3), torch.ones(2, 25, dtype=torch.bool), torch.tensor([3, 2]), 3, z)),
        (torch_ops.fps_ratio, (x, ptr, torch.tensor([0.5, 0.25]), z)),
    ]


@pytest.mark.parametrize("case", range(4), ids=["fps", "fps_batched", "fps_masked", "fps_ratio"])
def test_opcheck(case):
    if not hasattr(torch.library, "opcheck"):
        pytest.skip("torch.library.opcheck needs torch >= 2.4")
    op, args = _cases()[case]
    torch.library.opcheck(op, args)


def test_ops_match_python_api():
    x = torch.rand(50, 3)
    idx, radii = torch.ops.hminsel.fps(x, 6, 2, "l2")
    sel = hminsel.select(x.numpy(), 6, start=2)
    assert idx.tolist() == sel.indices.tolist() and np.array_equal(radii.numpy(), sel.radii)
    idx, _ = torch.ops.hminsel.fps_batched(x, torch.tensor([0, 20, 50]), 3, torch.tensor([1, 0]), "l2")
    ref = hminsel.select_batched(x.numpy(), 3, ptr=[0, 20, 50], start=[1, 0])
    assert idx.tolist() == ref.indices.tolist()


def test_compile_fullgraph():
    x = torch.rand(60, 3)
    ptr = torch.tensor([0, 25, 60])

    def batched(x, ptr):
        idx, radii = torch.ops.hminsel.fps_batched(x, ptr, 5, torch.zeros(2, dtype=torch.long), "l2")
        return x[idx].sum(0), radii

    def p3d(points):
        sel, idx = sample_farthest_points(points, K=4)
        return sel.mean(1), idx

    def cluster(x):
        return fps(x, None, 0.25, False)

    def tfps(points):
        return farthest_point_sampling(points, torch.ones(points.shape[:2], dtype=torch.bool), 4,
                                       random_start=False)

    def p3d_list(points):  # per-cloud K as a list of ints: a static output shape
        return sample_farthest_points(points, K=[4, 2])

    def cluster_batch(x, batch):  # with batch_size: no value of the data sets a shape
        return fps(x, batch, 0.25, False, batch_size=2)

    def cluster_random(x, batch):  # the random starts drawn in the graph, from the seed set below
        return fps(x, batch, 0.25, True, batch_size=2)

    def quick_start(points):  # a start and a mask: checks of the data's values left to the op
        return sample_idx(points, 4, start_idx=1)

    def quick_mask(points):
        return sample_idx(points, 4, mask=torch.arange(60).reshape(2, 30) % 3 != 0)

    pts = torch.rand(2, 30, 3)
    batch = torch.repeat_interleave(torch.arange(2), torch.tensor([25, 35]))
    for fn, args in [(batched, (x, ptr)), (p3d, (pts,)), (cluster, (x,)), (tfps, (pts,)),
                     (p3d_list, (pts,)), (cluster_batch, (x, batch)), (cluster_random, (x, batch)),
                     (quick_start, (pts,)), (quick_mask, (pts,))]:
        torch._dynamo.reset()
        torch.manual_seed(3)
        eager = fn(*args)
        torch.manual_seed(3)
        compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")(*args)
        for a, b in zip(eager if isinstance(eager, tuple) else (eager,),
                        compiled if isinstance(compiled, tuple) else (compiled,)):
            assert torch.equal(a, b), fn.__name__


def test_ops_take_bfloat16_and_check_their_arguments():
    x = torch.rand(40, 3)
    idx, _ = torch_ops.fps(x.bfloat16(), 5, 0, "l2")
    assert idx.tolist() == hminsel.select(x.bfloat16(), 5).indices.tolist()
    pts, z = torch.rand(3, 10, 3), torch.zeros(3, dtype=torch.long)
    mask = torch.ones(3, 10, dtype=torch.bool)
    mask[2] = False  # an empty row: count 0, its start slot is not read
    out = torch_ops.fps_masked(pts, mask, torch.tensor([2, 3, 0]), 3, torch.tensor([0, 4, -1]))
    assert out[2].tolist() == [-1, -1, -1] and out[1, 0] == 4
    with pytest.raises(ValueError, match=r"counts must hold 3 values .* in 0 .. kmax = 3; got \[4, 1, 0\]"):
        torch_ops.fps_masked(pts, mask, torch.tensor([4, 1, 0]), 3, z)
    bad = pts.clone()
    bad[1, 6, 2] = float("nan")
    for scale in (1.0, 1e25):  # NaN named first, before the other values' scale
        with pytest.raises(ValueError, match=r"points\[1, 6\] has NaN or inf"):
            torch_ops.fps_masked(bad * scale, mask, torch.tensor([2, 3, 0]), 3, z)
    with pytest.raises(ValueError, match="src row 16 has NaN or inf"):
        fps(bad.reshape(-1, 3), torch.repeat_interleave(torch.arange(3), 10), 0.5)


def test_masked_op_with_every_slot_valid_reads_the_points_in_place():
    """All slots valid (clouds of one size): the points go to select_batched as they lie,
    with the same picks as through the gather of valid slots, NaN named by its slot."""
    pts = torch.rand(4, 30, 3, generator=torch.Generator().manual_seed(3))
    full, counts, starts = torch.ones(4, 30, dtype=torch.bool), torch.tensor([5, 0, 30, 1]), torch.tensor([2, 7, 29, 0])
    got = torch_ops.fps_masked(pts, full, counts, 30, starts)
    for b in range(4):
        want = hminsel.select(pts[b], int(counts[b]), start=int(starts[b])).indices.tolist() if counts[b] else []
        assert got[b].tolist() == want + [-1] * (30 - len(want)), b
    nearly = full.clone()
    nearly[1, 29] = False  # one slot out, in a row without picks: the gather path, same picks
    assert torch.equal(torch_ops.fps_masked(pts, nearly, counts, 30, starts), got)
    bad = pts.clone()
    bad[2, 11, 0] = float("nan")
    with pytest.raises(ValueError, match=r"points\[2, 11\] has NaN or inf"):
        torch_ops.fps_masked(bad, full, counts, 30, starts)
    every = torch.full((4,), 12)  # every row full (counts == kmax): the picks less each row's offset
    got = torch_ops.fps_masked(pts, full, every, 12, starts)
    for b in range(4):
        assert got[b].tolist() == hminsel.select(pts[b], 12, start=int(starts[b])).indices.tolist(), b


def test_compat_edge_shapes_and_lengths():
    sel, idx = sample_farthest_points(torch.zeros(2, 0, 3), None, 5)  # no points at all
    assert sel.shape == (2, 5, 3) and (idx == -1).all() and (sel == 0).all()
    with pytest.raises(ValueError, match="A value in lengths was too large"):
        sample_farthest_points(torch.rand(1, 10, 3), torch.tensor([11]), 3)
    with pytest.raises(ValueError, match="lengths must be >= 0"):
        sample_farthest_points(torch.rand(1, 10, 3), torch.tensor([-1]), 3)
    with pytest.raises(ValueError, match="batch holds ids >= batch_size = 1"):
        fps(torch.rand(8, 2), torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]), 0.5, batch_size=1)


@pytest.mark.parametrize("mode", ["real", "fake", "symbolic"])
def test_make_fx_traces_the_dropins(mode):
    """make_fx (and so torch.export) traces the drop-ins as torch.compile does: the graph of
    one input replays another's picks. In eager mode their bookkeeping reads CPU tensors
    through NumPy, which a tracer's fake tensors cannot give and a real trace would keep as
    constants of the traced input (a mask's first valid slot, a cloud's length)."""
    from torch.fx.experimental.proxy_tensor import make_fx
    g = torch.Generator().manual_seed(0)

    def pts():
        return torch.rand(2, 30, 3, generator=g)

    def mask():
        return torch.rand(2, 30, generator=g) > 0.3

    batch = torch.repeat_interleave(torch.arange(2), torch.tensor([25, 35]))
    cases = [
        (lambda p: sample_farthest_points(p, K=4), lambda: (pts(),)),
        (lambda p, n: sample_farthest_points(p, n, K=[4, 2])[1],
         lambda: (pts(), torch.randint(4, 31, (2,), generator=g))),
        (lambda x: fps(x, None, 0.25, False), lambda: (torch.rand(60, 3, generator=g),)),
        (lambda x, b: fps(x, b, 0.25, False, batch_size=2), lambda: (torch.rand(60, 3, generator=g), batch)),
        (lambda p, m: farthest_point_sampling(p, m, 4, random_start=False), lambda: (pts(), mask())),
        (lambda p: sample_idx(p, 4, start_idx=1), lambda: (pts(),)),
        (lambda p, m: sample_idx(p, 4, mask=m), lambda: (pts(), mask())),
    ]
    for i, (fn, make) in enumerate(cases):
        traced = make_fx(fn, tracing_mode=mode)(*make())
        other = make()
        want, got = fn(*other), traced(*other)
        for a, b in zip(want if isinstance(want, tuple) else (want,), got if isinstance(got, (tuple, list)) else (got,)):
            assert torch.equal(a, b), i


def test_dropins_stay_eager_under_other_dispatch_modes():
    """A dispatch mode that is not a tracer (a profiler's FlopCounterMode) sees real data: the
    drop-ins keep their eager checks and draws (PyTorch3D's random starts from the seed)."""
    from torch.utils.flop_counter import FlopCounterMode
    pts = torch.rand(4, 50, 3, generator=torch.Generator().manual_seed(1))
    torch.manual_seed(0)
    want = sample_farthest_points(pts, K=4, random_start_point=True)[1]
    with FlopCounterMode(display=False):
        assert _masks.traced() is False
        torch.manual_seed(0)
        assert torch.equal(sample_farthest_points(pts, K=4, random_start_point=True)[1], want)
        with pytest.raises(ValueError, match="A value in lengths was too large"):
            sample_farthest_points(pts, torch.tensor([60, 5, 5, 5]), 3)
        with pytest.raises(ValueError, match="sorted"):
            fps(torch.rand(6, 3), torch.tensor([0, 1, 0, 1, 1, 1]), 0.5, False)


def test_radii_are_constants_for_autograd_eager_and_compiled():
    """As ``select``'s: an input that requires grad gives radii that do not (the op had no
    autograd formula, so backward through them raised, and a compiled function that returned
    them failed to compile)."""
    x = torch.randn(500, 3, requires_grad=True)
    idx, r = torch.ops.hminsel.fps(x, 16, 0, "l2")
    bidx, br = torch.ops.hminsel.fps_batched(x, torch.tensor([0, 200, 500]), 8,
                                            torch.tensor([0, 0]), "l2")
    assert not r.requires_grad and not br.requires_grad and not idx.requires_grad

    def fn(x):
        idx, r = torch.ops.hminsel.fps(x, 16, 0, "l2")
        return x[idx], r
    pts, radii = torch.compile(fn, fullgraph=True, backend="aot_eager")(x)
    pts.sum().backward()  # the gradient flows through the gathered rows only
    assert torch.equal(radii, r) and x.grad[idx].eq(1).all() and x.grad.sum() == 16 * 3


def test_a_lazily_negated_tensor_is_read_as_its_numbers():
    x = torch.randn(200, 3)
    neg = x._neg_view()  # what x.conj() of a real view can leave: numpy() refuses it
    assert neg.is_neg()
    np.testing.assert_array_equal(hminsel.select(neg, 9).indices.numpy(),
                                  hminsel.select(-x, 9).indices.numpy())


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
@pytest.mark.parametrize("view", ["plain", "strided", "negated"])
def test_finite_and_is_torchs_isfinite_all(dtype, view):
    """The drop-ins' native pass (NumPy's masks on a CPU tensor) says what ``valid &
    isfinite().all(-1)`` says, on every dtype and layout."""
    x = torch.rand(4, 70, 5, dtype=torch.float64)
    x[1, 3, 2], x[2, 69, 0], x[3, 0, 4] = float("nan"), float("inf"), float("-inf")
    x = x.to(dtype)
    x = {"plain": x, "strided": x[:, ::2, 1:], "negated": x._neg_view()}[view]
    valid = torch.rand(x.shape[:-1], generator=torch.Generator().manual_seed(2)) < 0.8
    for rows in (x, x.nan_to_num(0.0, 0.0, 0.0), x[:, :, :0]):
        got = _masks.finite_and(valid, rows)
        assert got.dtype == torch.bool and torch.equal(got, valid & rows.isfinite().all(dim=-1))


def test_gather_points_pads_with_zeros_and_keeps_gradients():
    """The drop-ins' gather of picked points: NumPy's for a CPU tensor, torch's where the
    points require grad (PyTorch3D's selected points are differentiable), the same values."""
    pts = torch.rand(3, 9, 4, generator=torch.Generator().manual_seed(4))
    idx = torch.tensor([[8, 0, -1], [2, -1, -1], [5, 5, 1]])
    want = torch.stack([torch.stack([pts[b, i] if i >= 0 else torch.zeros(4) for i in row.tolist()])
                        for b, row in enumerate(idx)])
    assert torch.equal(_masks.gather_points(pts, idx), want)
    grad_pts = pts.clone().requires_grad_()
    got = _masks.gather_points(grad_pts, idx)
    assert torch.equal(got.detach(), want)
    got.sum().backward()
    assert grad_pts.grad[2, 5].tolist() == [2.0] * 4 and grad_pts.grad[1, 2].tolist() == [1.0] * 4
    assert _masks.gather_points(pts[:0], idx[:0]).shape == (0, 3, 4)
