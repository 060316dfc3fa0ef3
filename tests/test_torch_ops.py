"""torch.library registration: opcheck, and torch.compile(fullgraph=True) without graph breaks."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import hminsel  # noqa: E402
from hminsel import torch_ops  # noqa: E402
from hminsel.compat.pytorch3d import sample_farthest_points  # noqa: E402
from hminsel.compat.torch_cluster import fps  # noqa: E402
from hminsel.compat.torch_fps import farthest_point_sampling  # noqa: E402


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

    pts = torch.rand(2, 30, 3)
    for fn, args in [(batched, (x, ptr)), (p3d, (pts,)), (cluster, (x,)), (tfps, (pts,))]:
        torch._dynamo.reset()
        eager = fn(*args)
        compiled = torch.compile(fn, fullgraph=True, backend="aot_eager")(*args)
        for a, b in zip(eager if isinstance(eager, tuple) else (eager,),
                        compiled if isinstance(compiled, tuple) else (compiled,)):
            assert torch.equal(a, b), fn.__name__
