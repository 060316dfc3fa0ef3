"""The CUDA backend: hand-written kernels from ``csrc/cuda``, compiled at run time by CuPy.

Its point is the persistent cooperative kernel (``fps_run``): all k steps of
a streaming selection, or a whole head loop of the exact lazy FPS, in one
launch, with each block's rows kept in shared memory when they fit. State
lives on the device as torch tensors (``DeviceBackend``), and tensors reach
the kernels zero-copy, as device addresses, on the caller's stream. Storage:
float32, float16 or bfloat16; accumulation fp32, in one summation order
(``warp_sqdist``), so lazy == streaming bit for bit on this backend.

Importing this module imports neither torch nor CuPy.
"""
from __future__ import annotations

import importlib.util

from .device import DeviceBackend, _torch


class CudaBackend(DeviceBackend):
    name = "cuda"

    def unavailable_reason(self):
        if importlib.util.find_spec("torch") is None:
            return "torch is not installed (the CUDA backend keeps its state in torch tensors)"
        from hminsel.cuda import loader
        reason = loader.cupy_reason()
        if reason is not None:
            return reason
        if not _torch().cuda.is_available():
            return "torch sees no CUDA device"
        try:
            loader.source_dir()
        except FileNotFoundError as exc:
            return str(exc)
        return loader.build_reason(_torch().cuda.current_device())

    def notes(self) -> str | None:
        """How the persistent kernel will run here (for ``hminsel info``), or None."""
        from hminsel.cuda import loader
        reason = loader.cooperative_reason(_torch().cuda.current_device())
        return None if reason is None else f"one launch a step ({reason})"

    # -- primitives -------------------------------------------------------------
    def steps(self, x, mind, c, count):
        from hminsel.cuda.kernels import steps
        return steps(x, mind, int(c), int(count))

    def fold(self, x, mind, c):
        from hminsel.cuda.kernels import fold
        fold(x, mind, int(c))

    def block_min(self, x, y, *, rows=None, self_mask=False):
        from hminsel.cuda.block_min import block_min
        torch = _torch()
        ids = torch.arange(len(x), device=x.device) if rows is None else self.index(rows, x).contiguous()
        return block_min(x, y.contiguous(), ids, bool(self_mask))

    def head_greedy(self, xh, h, hidx, tau, tau_idx, budget):
        from hminsel.cuda.kernels import head_greedy
        return head_greedy(xh, h, self.index(hidx, xh), float(tau), int(tau_idx), int(budget))
