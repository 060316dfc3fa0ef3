"""The Triton backend: the primitives as Triton kernels on torch tensors (``hminsel/triton``).

State lives on the device as torch tensors (``DeviceBackend``). Storage:
float32, float16 or bfloat16; accumulation always fp32. Runs on a CUDA device,
or on CPU tensors under ``TRITON_INTERPRET=1`` (the tests). The lazy head
loop has two forms: one gated launch a pick (``triton/head.py``, small heads)
and, once rounds accept a fair share of the head (k a large share of N), one
launch for a round's picks on GEMM bounds (``triton/head_tiled.py``); the
driver's ``HeadPolicy`` chooses, as for the cpu backend.

Importing this module imports neither torch nor triton.
"""
from __future__ import annotations

import functools
import importlib.util

from .device import DeviceBackend, _torch, interpreting


def _on_x_device(method):
    """Run a primitive with x's CUDA device current: Triton launches on the current device."""
    @functools.wraps(method)
    def wrapped(self, x, *args, **kwargs):
        from .._device import on
        with on(x):
            return method(self, x, *args, **kwargs)
    return wrapped


BUCKET_MAX_DIM = 8  # hminsel/triton/bucket.py: the cpu backend's rule (d <= 8)


class TritonBackend(DeviceBackend):
    name = "triton"
    tf32 = False  # block_min's GEMM in TF32 for float32 storage (looser bound, more re-checks)

    @property
    def takes_cpu_tensors(self):
        return interpreting()

    def unavailable_reason(self):
        for module in ("torch", "triton"):
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed (pip install {module})"
        if interpreting():
            return None
        if not _torch().cuda.is_available():
            return "no CUDA device (TRITON_INTERPRET=1 runs the kernels on CPU tensors, slowly)"
        return None

    # -- primitives -------------------------------------------------------------
    @_on_x_device
    def steps(self, x, mind, c, count):
        from hminsel.triton.step import steps
        return steps(x, mind, int(c), int(count))

    @_on_x_device
    def fold(self, x, mind, c):
        from hminsel.triton.step import launch_steps
        launch_steps(x, mind, int(c), 1)  # the ring is not read: no sync

    @_on_x_device
    def block_min(self, x, y, *, rows=None, self_mask=False):
        torch = _torch()
        from hminsel.triton.block_min import block_min
        ids = torch.arange(len(x), device=x.device) if rows is None else self.index(rows, x).contiguous()
        return block_min(x, y.contiguous(), ids, bool(self_mask), self.tf32)

    @_on_x_device
    def closest_rows(self, x, progress=None):  # one launch sequence: no progress inside
        from hminsel.triton import block_min as bm
        if len(x) < bm.GEMM_MIN_CENTRES or x.shape[1] < bm.GEMM_MIN_DIM:
            return super().closest_rows(x)
        from hminsel.triton.pairs import closest_rows
        return closest_rows(x, self.tf32)

    def bucket_reason(self, x):
        if not 1 <= x.shape[1] <= BUCKET_MAX_DIM:
            return f"the bucket FPS kernel takes 1 <= d <= {BUCKET_MAX_DIM}, got d = {x.shape[1]}"
        return None  # rows: unsupported_reason already holds them under the packed key's limit

    @_on_x_device
    def bucket_select(self, x, mind, seeds, k, floor=None):  # no floor: bucket.py's calls
        from hminsel.triton.bucket import steps
        return steps(x, mind, [int(s) for s in seeds], int(k))

    @_on_x_device
    def head_greedy(self, xh, h, hidx, tau, tau_idx, budget):
        from hminsel.triton.head import head_greedy
        return head_greedy(xh, h, self.index(hidx, xh), float(tau), int(tau_idx), int(budget))

    # On a GPU the tiled head lost to the per-pick head on the H200 (2026-12-04, the seed
    # workload, 20k x 1024 fp16 cosine, k = N/2: 158 ms against 119 ms; one program runs a
    # tiled round where the per-pick loop spreads a pick over the chip): off there until it
    # wins (the benchmark turns it on to time it); the interpreter's tests still run it.
    tiled_head_on_gpu = False

    def head_rows_tiled(self, x):
        if x.device.type == "cuda" and not self.tiled_head_on_gpu:
            return 0
        from hminsel.triton import block_min as bm
        if x.shape[1] < bm.GEMM_MIN_DIM:  # low d: a pick's M x d read is cheap, the M x M tile is not
            return 0
        from hminsel.triton.head_tiled import max_rows
        return max_rows(x.device)

    @_on_x_device
    def head_greedy_tiled(self, xh, h, hidx, tau, tau_idx, budget, own):
        from hminsel.triton.head_tiled import head_greedy
        return head_greedy(xh, h, self.index(hidx, xh), float(tau), int(tau_idx), int(budget),
                           own, self.tf32)
