"""The ``*_on_device`` kernels of ``hminsel.torch_ops`` (the ops' CUDA kernels) against the CPU ops.

``check_ops_on_device(backend, device)`` runs each kernel on tensors on
``device`` through ``backend`` (test_compat: the host path of select_batched on
CPU tensors; test_triton_batched: the triton backend, the interpreter or a GPU)
and compares every answer with the op's CPU kernel, padding, masks, empty
clouds and errors included.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from hminsel import torch_ops


def check_ops_on_device(backend: str, device: str):
    gen = torch.Generator().manual_seed(5)
    points = torch.rand(5, 40, 3, generator=gen)
    mask = torch.rand(5, 40, generator=gen) > 0.3
    mask[3] = False  # a cloud with no valid point: no pick
    points[0, ~mask[0]] = float("nan")  # masked-out slots may hold anything
    counts = torch.tensor([6, 1, 0, 0, 9])
    starts = mask.to(torch.int8).argmax(dim=1)
    on = {"device": device}
    want = torch_ops.fps_masked(points, mask, counts, 9, starts)
    got = torch_ops.fps_masked_on_device(points.to(**on), mask.to(**on), counts.to(**on), 9,
                                         starts.to(**on), backend=backend)
    assert got.device.type == torch.device(device).type
    assert got.cpu().tolist() == want.tolist()
    assert ((want >= 0).sum(dim=1) == counts).all()  # -1 past each cloud's count
    none = torch_ops.fps_masked_on_device(points.to(**on), mask.to(**on), torch.zeros(5, dtype=torch.int64,
                                          **on), 4, starts.to(**on), backend=backend)
    assert (none == -1).all() and none.shape == (5, 4)

    big = points.clone()
    big[~mask] = 1e30  # padding: any value, too large for float32 sums included
    got = torch_ops.fps_masked_on_device(big.to(**on), mask.to(**on), counts.to(**on), 9,
                                         starts.to(**on), backend=backend)
    assert got.cpu().tolist() == want.tolist()
    off = starts.clone()
    off[4] = int(np.flatnonzero(~mask[4].numpy())[0])  # a row with picks must start on a valid slot
    for run in (torch_ops.fps_masked, lambda *a: torch_ops.fps_masked_on_device(*a, backend=backend)):
        with pytest.raises(ValueError, match=rf"starts\[4\] = {int(off[4])} is not a valid slot of row 4"):
            run(points.to(**on), mask.to(**on), counts.to(**on), 9, off.to(**on))

    bad = points.clone()
    bad[1, int(starts[1])] = float("inf")
    with pytest.raises(ValueError, match=rf"points\[1, {int(starts[1])}\] has NaN or inf"):
        torch_ops.fps_masked_on_device(bad.to(**on), mask.to(**on), counts.to(**on), 9,
                                       starts.to(**on), backend=backend)
    with pytest.raises(ValueError, match="counts must hold 5 values"):
        torch_ops.fps_masked_on_device(points.to(**on), mask.to(**on), counts.to(**on), 5,
                                       starts.to(**on), backend=backend)

    src = torch.rand(120, 3, generator=gen)
    ptr = torch.tensor([0, 50, 50, 120])
    ratio = torch.tensor([0.25, 0.5, 0.1])
    first = torch.tensor([3, 0, 69])
    want = torch_ops.fps_ratio(src, ptr, ratio, first)
    got = torch_ops.fps_ratio_on_device(src.to(**on), ptr, ratio, first, backend=backend)
    assert got.cpu().tolist() == want.tolist() and len(want) == 13 + 7
    with pytest.raises(ValueError, match=r"ratio must be in \(0, 1\]"):
        torch_ops.fps_ratio_on_device(src.to(**on), ptr, torch.tensor([0.5, 0.0, 1.0]), first,
                                      backend=backend)

    empty = torch_ops.fps_ratio_on_device(src[:0].to(**on), torch.tensor([0, 0]), ratio[:1], first[:1],
                                          backend=backend)
    assert empty.shape == (0,) and empty.device.type == torch.device(device).type
    wide = torch_ops.fps_on_device(src.double().to(**on), 10, 7, "l2", backend=backend)  # the CPU op's
    assert wide[0].cpu().tolist() == torch_ops.fps(src.double(), 10, 7, "l2")[0].tolist()
    idx, radii = torch_ops.fps_on_device(src.to(**on), 10, 7, "l2", backend=backend)
    ref_idx, ref_radii = torch_ops.fps(src, 10, 7, "l2")
    assert idx.cpu().tolist() == ref_idx.tolist() and radii.dtype == torch.float64
    np.testing.assert_allclose(radii.cpu().numpy(), ref_radii.numpy(), rtol=1e-5)
    idx, radii = torch_ops.fps_batched_on_device(src.to(**on), torch.tensor([0, 60, 120]), 8,
                                                 torch.tensor([0, 59]), "cosine", backend=backend)
    ref_idx, _ = torch_ops.fps_batched(src, torch.tensor([0, 60, 120]), 8, torch.tensor([0, 59]), "cosine")
    assert idx.cpu().tolist() == ref_idx.tolist() and radii.dtype == torch.float64
