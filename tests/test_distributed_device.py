"""hminsel.distributed.select on shards that stay on their device (the triton backend).

Without a GPU the shards are CPU tensors and the Triton kernels run under
``TRITON_INTERPRET=1`` (tiny shapes); with ``HMINSEL_TRITON_GPU=1`` they are
CUDA tensors. The collectives are gloo's either way.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from test_distributed import _split, run_ranks  # skips where torch.distributed with gloo is missing

pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

import hminsel  # noqa: E402
import hminsel.distributed as hdist  # noqa: E402
from conftest import clustered  # noqa: E402

pytestmark = pytest.mark.interpret
GPU = os.environ.get("HMINSEL_TRITON_GPU") == "1"


def _on_device(rank, size, x, k, sizes, dtype, kwargs):
    import torch
    if not GPU:
        os.environ["TRITON_INTERPRET"] = "1"  # before the first kernel is built in this process
    part = _split(np.arange(len(x)), size, sizes)[rank]
    kwargs = dict(kwargs)
    mask = kwargs.pop("mask", None)  # global: each rank passes its rows of it
    shard = torch.from_numpy(x[part]).to(getattr(torch, dtype))
    shard = shard.cuda() if GPU else shard
    sel = hdist.select(shard, k, backend="triton", mask=None if mask is None else mask[part], **kwargs)
    assert isinstance(sel.indices, torch.Tensor) and sel.indices.device == shard.device
    return sel.indices.cpu().tolist(), sel.radii.cpu().tolist(), sel.backend


@pytest.mark.parametrize("size,sizes,dtype,kwargs", [
    (2, None, "float32", {"mask": np.random.default_rng(0).random(90) < 0.5}),
    (2, [90, 0], "float32", {"protocol": "steps"}),
    (3, None, "float16", {"metric": "cosine", "init": [5, 70]}),
    (2, [30, 60], "bfloat16", {"start": 40, "head_size": 8}),
    (2, None, "float32", {"radius": 3.0, "head_size": 4}),  # 7 picks, then one within 3
], ids=["2-rounds-mask", "empty-rank-steps", "3-cosine-fp16-init", "bf16-small-heads", "radius"])
def test_device_shards_equal_single_process(size, sizes, dtype, kwargs):
    import torch
    x = clustered(90, 6, seed=3)
    x = torch.from_numpy(x).to(getattr(torch, dtype)).float().numpy()  # values the dtype holds
    want = hminsel.select(x, 12, backend="cpu", **{k: v for k, v in kwargs.items()
                                                   if k not in ("protocol", "head_size")})
    out = run_ranks(size, _on_device, x, 12, sizes, dtype, kwargs, timeout=300)
    for rank in range(size):
        status, got = out[rank]
        assert status == "ok", got
        indices, radii, backend = got
        assert backend == "triton"
        assert indices == np.asarray(want.indices).tolist()
        np.testing.assert_allclose(radii, want.radii, rtol=2e-3 if dtype != "float32" else 1e-5)


def _labels_on_device(rank, size, x, labels, solo, dtype="float32", metric="l2", k=0.1):
    import torch
    from hminsel.distributed import owners
    if not GPU:
        os.environ["TRITON_INTERPRET"] = "1"
    owners.SOLO_BYTES = solo
    part = _split(np.arange(len(x)), size)[rank]
    shard = torch.from_numpy(x[part]).to(getattr(torch, dtype))
    res = hdist.select_batched(shard.cuda() if GPU else shard, k, groups=labels[part], backend="triton",
                               metric=metric)
    return np.asarray(res.indices.cpu()).tolist(), res.backend


def test_per_label_quotas_on_the_gpu_backend():
    """Small labels on an owner and a large one over the shards, each run by the triton backend."""
    x = clustered(120, 4, seed=5)
    labels = np.where(np.arange(120) < 70, 0, 1 + np.arange(120) % 2)
    want = hminsel.select_batched(x, 0.1, groups=labels, backend="cpu")
    out = run_ranks(2, _labels_on_device, x, labels, 40 * x.shape[1] * x.itemsize, timeout=300)
    for rank in range(2):
        status, got = out[rank]
        assert status == "ok", got
        assert list(got) == [np.asarray(want.indices).tolist(), "triton"]


@pytest.mark.parametrize("solo", [1 << 20, 0], ids=["owners", "over-shards"])
def test_half_labels_run_on_their_stored_values(solo):
    """bfloat16 cosine shards: each label normalises its rows in bfloat16 as one process does on
    the tensor (not on the float32 copies the rows travel in)."""
    import torch
    x = np.random.default_rng(5).standard_normal((120, 5)).astype(np.float32)
    labels = np.where(np.arange(120) < 70, 0, 1 + np.arange(120) % 2)
    t = torch.from_numpy(x).to(torch.bfloat16)
    want = hminsel.select_batched(t.cuda() if GPU else t, 0.2, groups=labels, backend="triton",
                                  metric="cosine")
    out = run_ranks(2, _labels_on_device, t.float().numpy(), labels, solo, "bfloat16", "cosine", 0.2,
                    timeout=300)
    for rank in range(2):
        status, got = out[rank]
        assert status == "ok", got
        assert got[0] == np.asarray(want.indices.cpu()).tolist()


def _hmin_on_device(rank, size, x, sizes, dtype, metric, nonfinite="raise"):
    import torch
    if not GPU:
        os.environ["TRITON_INTERPRET"] = "1"
    part = _split(np.arange(len(x)), size, sizes)[rank]
    shard = torch.from_numpy(x[part]).to(getattr(torch, dtype))
    shard = shard.cuda() if GPU else shard
    if rank == 1 and dtype == "float16":  # column-major on one rank: the same backend all the same
        shard = shard.t().contiguous().t()
    pair = hdist.hmin(shard, metric=metric, backend="triton", nonfinite=nonfinite)
    return pair.value, pair.i, pair.j, pair.backend


@pytest.mark.parametrize("size,sizes,dtype,metric,nonfinite", [
    (2, [0, 70], "bfloat16", "l2", "raise"),
    (2, [25, 45], "float16", "cosine", "raise"),
    (2, [30, 40], "float32", "l2", "skip"),  # NaN rows on both shards, one closer but for it
    (2, [30, 40], "bfloat16", "l2", "skip"),  # received rows travel as float32
])
def test_hmin_of_device_shards(size, sizes, dtype, metric, nonfinite):
    import torch
    x = clustered(70, 5, seed=6)
    x[50] = x[10] + 0.01  # the closest pair lies across shards
    if nonfinite == "skip":
        x[60] = x[11] + 0.001
        x[[3, 60], [1, 4]] = np.nan
    x = torch.from_numpy(x).to(getattr(torch, dtype)).float().numpy()  # values the dtype holds
    want = hminsel.hmin(x, metric=metric, backend="cpu", nonfinite=nonfinite)
    out = run_ranks(size, _hmin_on_device, x, sizes, dtype, metric, nonfinite, timeout=300)
    for rank in range(size):
        status, got = out[rank]
        assert status == "ok", got
        value, i, j, backend = got
        assert (i, j, backend) == (want.i, want.j, "triton")
        assert value == pytest.approx(want.value, rel=2e-2 if dtype != "float32" else 1e-4, abs=1e-6)


def _bad_device(rank, size, x):
    import torch
    if not GPU:
        os.environ["TRITON_INTERPRET"] = "1"
    shard = torch.from_numpy(x.copy())
    if rank == 1:
        shard[3, 0] = float("nan")
    return hdist.select(shard.cuda() if GPU else shard, 3, backend="triton")


def _mixed_paths(rank, size, x):
    import torch
    if not GPU:
        os.environ["TRITON_INTERPRET"] = "1"
    shard = torch.from_numpy(x.copy())
    if rank == 0:  # a GPU shard here, a host array there: one head loop cannot serve both
        return hdist.select(shard.cuda() if GPU else shard, 3, backend="triton")
    return hdist.select(x.copy(), 3, backend="triton" if GPU else "auto")


def test_ranks_on_different_paths_raise_on_every_rank():
    out = run_ranks(2, _mixed_paths, clustered(20, 3, seed=0), timeout=300)
    if GPU:  # backend="triton" moves rank 1's array to its GPU too: both run there
        assert all(s == "ok" for s, _ in out.values()), out
        return
    assert all(s == "error" and "every rank's shard must be on a GPU or every rank's on the host" in r
               for s, r in out.values()), out


def _float64_on_gpu_backend(rank, size, x):
    import torch
    if not GPU:
        os.environ["TRITON_INTERPRET"] = "1"
    shard = torch.from_numpy(x.astype(np.float64))
    return hdist.select(shard.cuda() if GPU else shard, 3, backend="triton")


def test_a_backend_that_cannot_run_raises_on_every_rank():
    out = run_ranks(2, _float64_on_gpu_backend, clustered(20, 3, seed=0), timeout=300)
    assert all(s == "error" and "float64 is not a GPU dtype here" in r for s, r in out.values()), out


def test_a_bad_device_shard_raises_on_every_rank():
    out = run_ranks(2, _bad_device, clustered(20, 3, seed=0), timeout=300)
    assert out[1][0] == "error" and "rank 1: x_shard has NaN or inf in local row 3 (global row 23)" in out[1][1]
    assert out[0][0] == "error" and "rank(s) [1] passed an invalid shard" in out[0][1]


def _host_calls_on_gpu(rank, size, x, labels):
    import torch
    part = _split(np.arange(len(x)), size)[rank]
    shard = torch.from_numpy(x[part]).cuda()
    res = hdist.select_batched(shard, 3, groups=labels[part])
    pair = hdist.hmin(shard)
    assert res.indices.device == shard.device and res.backend in ("triton", "cuda")
    return res.indices.cpu().tolist(), (pair.i, pair.j)


@pytest.mark.gpu_only
def test_per_label_and_hmin_take_cuda_shards():
    """Per-label quotas sort host copies of the shards into labels and select each on the GPU
    backend; h_min runs on the GPU; answers on the device."""
    x = clustered(200, 4, seed=1)
    labels = np.arange(200) % 3
    want = hminsel.select_batched(x, 3, groups=labels)
    pair = hminsel.hmin(x)
    out = run_ranks(2, _host_calls_on_gpu, x, labels, timeout=300)
    for rank in range(2):
        status, got = out[rank]
        assert status == "ok", got
        assert got[0] == np.asarray(want.indices).tolist() and got[1] == (pair.i, pair.j)


def test_command_line_keeps_shards_on_the_gpu_backend(tmp_path):
    from test_distributed import launch
    x = clustered(150, 5, seed=8)
    np.save(tmp_path / "x.npy", x)
    env = {} if GPU else {"TRITON_INTERPRET": "1"}
    cmd = ["select", tmp_path / "x.npy", "--k", "15", "--backend", "triton", "--out", tmp_path / "o.npy"]
    code, _, err = launch(2, cmd, env, timeout=300)
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"), hminsel.select(x, 15, backend="cpu").indices)
    assert '"backend": "triton"' in (tmp_path / "o.json").read_text()
    np.save(tmp_path / "x64.npy", x.astype(np.float64))  # np.save's default dtype: no GPU dtype
    cmd[1], cmd[-1] = tmp_path / "x64.npy", tmp_path / "p.npy"
    code, _, err = launch(2, cmd, env, timeout=300)
    assert code != 0, err  # each rank exits 2 with the reason, no traceback
    assert "hminsel.distributed (rank 1): rank 1: RuntimeError: backend 'triton'" in err
    assert "float64 is not a GPU dtype here" in err and "hminsel/distributed/" not in err
