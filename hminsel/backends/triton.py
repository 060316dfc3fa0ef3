"""The Triton backend: the primitives as Triton kernels on torch tensors (``hminsel/triton``).

State arrays (``mind``/``ub``/``owner``/head) stay on the tensor's device as
torch tensors; the drivers reach them only through the primitives and the
array helpers of ``Backend`` (``full``, ``index``, ``take``, ``argmax``,
``head_and_tau``, ``to_host``), which this class implements with torch ops.
Storage: float32, float16 or bfloat16; accumulation always fp32. Runs on a
CUDA device, or on CPU tensors under ``TRITON_INTERPRET=1`` (tests).

Importing this module imports neither torch nor triton.
"""
from __future__ import annotations

import importlib.util
import os
import sys

import numpy as np

from .base import MARK, Backend

_TORCH_DTYPES = {np.dtype(np.float32): "float32", np.dtype(np.float64): "float64",
                 np.dtype(np.int64): "int64"}


def interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


def _torch():
    import torch
    return torch


class TritonBackend(Backend):
    name = "triton"
    prunes = False  # refresh is block_min on tensor cores: no center-to-center lists
    tf32 = False  # block_min's GEMM in TF32 for float32 storage (looser bound, more re-checks)

    def unavailable_reason(self):
        for module in ("torch", "triton"):
            if importlib.util.find_spec(module) is None:
                return f"{module} is not installed (pip install {module})"
        if interpreting():
            return None
        if not _torch().cuda.is_available():
            return "no CUDA device (TRITON_INTERPRET=1 runs the kernels on CPU tensors, slowly)"
        return None

    def unsupported_reason(self, x):
        torch = sys.modules.get("torch")  # not imported: x cannot be a tensor
        if torch is None or not isinstance(x, torch.Tensor):
            return f"takes torch tensors (pass backend='triton' to move arrays over), got {type(x).__name__}"
        if x.device.type != "cuda" and not (x.device.type == "cpu" and interpreting()):
            return f"takes CUDA tensors, got a {x.device.type} tensor"
        if x.dtype == torch.float64:
            return "float64 is not a GPU dtype here: pass float32, float16 or bfloat16"
        if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            return f"takes float32/float16/bfloat16 tensors, got {x.dtype}"
        if x.ndim != 2 or x.stride(1) != 1:
            return "takes 2-D tensors with contiguous rows"
        return None

    def acc_dtype(self, dtype):
        return np.dtype(np.float32)

    # -- array helpers on the device -------------------------------------------
    def full(self, x, value, dtype=None):
        torch = _torch()
        dtype = getattr(torch, _TORCH_DTYPES[np.dtype(dtype or np.float32)])
        return torch.full((len(x),), value, dtype=dtype, device=x.device)

    def index(self, idx, like=None):
        torch = _torch()
        device = like.device if like is not None else None
        if isinstance(idx, torch.Tensor):
            return idx.to(device=device or idx.device, dtype=torch.int64)
        return torch.as_tensor(np.array(idx, np.int64), device=device)  # a copy: no negative strides

    def take(self, x, idx):
        return x.index_select(0, self.index(idx, x)).contiguous()

    def to_host(self, a):
        return a.detach().cpu().numpy()

    def argmax(self, values):
        i = int(_torch().argmax(values))  # the first maximal index, as documented
        return i, float(values[i])

    def head_and_tau(self, ub, m):
        torch = _torch()
        n = len(ub)
        want = min(m + 1, n)
        if want < n:
            edge = torch.topk(ub, want, sorted=False).values.min()
            above = torch.nonzero(ub > edge).flatten()
            ties = torch.nonzero(ub == edge).flatten()[: want - len(above)]  # lowest indices
            top = torch.cat([above, ties])
        else:
            top = torch.arange(n, device=ub.device)
        top = top[torch.sort(-ub[top], stable=True).indices]  # top is index-sorted: ties keep it
        top = top[ub[top] != MARK]
        head, rest = top[:m], top[m:]
        if len(rest):
            return head, float(ub[rest[0]]), int(rest[0])
        return head, -np.inf, n

    def cell_radius(self, ub, owner, base):
        torch = _torch()
        live = ub != MARK
        radius2 = torch.zeros(base, dtype=torch.float64, device=ub.device)
        return radius2.scatter_reduce_(0, owner[live], ub[live].double(), "amax").cpu().numpy()

    # -- primitives -------------------------------------------------------------
    def step(self, x, mind, c):
        picks, values = self.steps(x, mind, c, 1)
        return int(picks[0]), float(values[0])

    def steps(self, x, mind, c, count):
        from hminsel.triton.step import steps
        return steps(x, mind, int(c), int(count))

    def block_min(self, x, y, *, rows=None, self_mask=False):
        torch = _torch()
        from hminsel.triton.block_min import block_min
        ids = torch.arange(len(x), device=x.device) if rows is None else self.index(rows, x)
        return block_min(x, y.contiguous(), ids, bool(self_mask), self.tf32)

    def head_greedy(self, xh, h, hidx, tau, tau_idx, budget):
        from hminsel.triton.head import head_greedy
        return head_greedy(xh, h, self.index(hidx, xh), float(tau), int(tau_idx), int(budget))
