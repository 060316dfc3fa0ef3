"""Probes of the GPU run: what a green GPU test run alone would not prove.

- The persistent CUDA kernel really ran as ONE cooperative launch (not the
  one-launch-a-step fallback), with its registers, shared memory and local
  (spill) bytes logged to ``$OUT/probes.jsonl``. Without a GPU: on the emulator.
- A streaming step over more than 2^31 elements (2.2M x 1024 bf16) matches
  torch on the last rows, on both GPU backends: the int64 row offsets.
  GPU only (``HMINSEL_TRITON_GPU=1`` / ``HMINSEL_CUDA_GPU=1``).
"""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the GPU backends keep their state in torch tensors")

from cuda_emulator import Emulator  # noqa: E402
from hminsel import backends  # noqa: E402
from hminsel.cuda import kernels, loader  # noqa: E402

CUDA_GPU = os.environ.get("HMINSEL_CUDA_GPU") == "1"
TRITON_GPU = os.environ.get("HMINSEL_TRITON_GPU") == "1"


def log(**row):
    """One JSON line in $OUT/probes.jsonl (when OUT is set) and on stdout."""
    print("probe:", json.dumps(row))
    if os.environ.get("OUT"):
        with open(os.path.join(os.environ["OUT"], "probes.jsonl"), "a") as f:
            f.write(json.dumps(row) + "\n")


@pytest.fixture
def recorded(monkeypatch):
    """Every ``loader.launch`` as (name, grid, cooperative, shared_mem): the real one on a
    GPU, the emulator's elsewhere."""
    if not CUDA_GPU:
        emu = Emulator(sm_count=4, smem_optin=48 * 1024).install(monkeypatch)
        return emu.launches
    calls, real = [], loader.launch

    def launch(name, grid, args, *, shared_mem=0, cooperative=False):
        calls.append((name, grid, cooperative, shared_mem))
        return real(name, grid, args, shared_mem=shared_mem, cooperative=cooperative)
    monkeypatch.setattr(loader, "launch", launch)
    return calls


def test_persistent_steps_are_one_cooperative_launch(recorded):
    n, d, count = (20_000, 768, 16) if CUDA_GPU else (300, 24, 16)
    dev = "cuda" if CUDA_GPU else "cpu"
    g = torch.Generator(device=dev).manual_seed(0)
    x = torch.randn(n, d, generator=g, device=dev).half()
    mind = torch.full((n,), float("inf"), device=dev)
    picks, _ = kernels.steps(x, mind, 0, count)
    fps = [c for c in recorded if c[0] == "fps_run"]
    why = loader.cooperative_reason(x.device.index or 0) if CUDA_GPU else None
    assert len(fps) == 1 and fps[0][2], f"expected one cooperative fps_run launch; got {fps} ({why})"
    ref = np.full(n, np.inf)
    xs, want = x.float().cpu().double().numpy(), []
    c = 0
    for _ in range(count):  # the float64 streaming oracle (tie-free random data)
        ref = np.minimum(ref, ((xs - xs[c]) ** 2).sum(1))
        ref[c] = -1
        c = int(np.argmax(ref))
        want.append(c)
    assert picks.tolist() == want
    # every row's min-distance, not only the picks: on the H200 each block keeps
    # most of its rows on chip and streams the rest (both loops of fps.cu checked)
    np.testing.assert_allclose(mind.cpu().numpy(), ref, rtol=1e-4)
    row = dict(probe="persistent", n=n, d=d, count=count, grid=fps[0][1], shared_mem=fps[0][3],
               device=torch.cuda.get_device_name() if CUDA_GPU else "emulator")
    if CUDA_GPU:
        fn = loader._module(x.device.index or 0).get_function("fps_run_f16")  # a RawKernel
        attrs = {k: getattr(fn, a, None) for k, a in [("regs", "num_regs"), ("static_smem", "shared_size_bytes"),
                                                      ("local_bytes", "local_size_bytes"),
                                                      ("max_threads", "max_threads_per_block")]}
        row.update(attrs, sm_count=loader.device_props(x.device.index or 0)["sm_count"])
        assert not attrs["local_bytes"], f"fps_run spills: {attrs['local_bytes']} local bytes a thread"
    log(**row)


def _big_step(name, run):
    """Two steps from row 0 over 2.2M x 1024 bf16 (> 2^31 elements; two, so the CUDA
    backend runs its persistent launch); the planted farthest row is the last, so a
    wrapped 32-bit offset cannot find it; the last rows' min-distances match torch."""
    n, d = 2_200_000, 1024
    assert n * d > 1 << 31
    g = torch.Generator(device="cuda").manual_seed(1)
    x = torch.randn(n, d, generator=g, device="cuda", dtype=torch.bfloat16)
    x[-1] = x[0] + 8  # far from row 0 in every coordinate
    mind = torch.full((n,), float("inf"), device="cuda")
    picks, values = run(x, mind)
    tail = slice(n - 4096, n - 1)  # row n - 1 is picked (marked)
    want = torch.minimum(((x[tail].float() - x[0].float()) ** 2).sum(1),
                         ((x[tail].float() - x[-1].float()) ** 2).sum(1))
    got = mind[tail]
    err = float(((got - want).abs() / want.clamp_min(1e-30)).max())
    log(probe="step > 2^31 elements", backend=name, n=n, d=d, pick=int(picks[0]),
        value=float(values[0]), max_rel_err_last_rows=err)
    assert int(picks[0]) == n - 1, f"{name}: the step picked row {picks[0]}, not the last row {n - 1}"
    assert err < 1e-5, f"{name}: the last rows' distances differ from torch by {err:.3g} (relative)"
    del x, mind
    torch.cuda.empty_cache()


@pytest.mark.gpu_only
def test_triton_step_beyond_2_31_elements():
    if not TRITON_GPU:
        pytest.skip("HMINSEL_TRITON_GPU is not set")
    _big_step("triton", lambda x, mind: backends.get("triton").steps(x, mind, 0, 2))


@pytest.mark.gpu_only
def test_cuda_step_beyond_2_31_elements():
    if not CUDA_GPU:
        pytest.skip("HMINSEL_CUDA_GPU is not set")
    _big_step("cuda", lambda x, mind: kernels.steps(x, mind, 0, 2))
