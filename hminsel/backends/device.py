"""What the GPU backends (triton, cuda) share: state as torch tensors on x's device.

The drivers reach state arrays (``mind``/``ub``/``owner``/head) only through
the array helpers of ``Backend``; this class implements them with torch ops,
so a selection never leaves the device between rounds. Storage: float32,
float16 or bfloat16, rows contiguous; accumulation always fp32. Importing this
module imports neither torch nor any kernel library.
"""
from __future__ import annotations

import os
import sys

import numpy as np

from .base import MARK, Backend

_TORCH_DTYPES = {np.dtype(np.float32): "float32", np.dtype(np.float64): "float64",
                 np.dtype(np.int64): "int64"}


def interpreting() -> bool:
    """True under ``TRITON_INTERPRET=1``: Triton kernels run on CPU tensors (tests)."""
    return os.environ.get("TRITON_INTERPRET") == "1"


def _torch():
    import torch
    return torch


class DeviceBackend(Backend):
    """Torch-tensor state and input checks for the backends whose kernels run on a GPU."""

    prunes = False  # the refresh is one GEMM-form block_min: no center-to-center lists
    blocks_host = False  # steps: one launch (or one graph replay a chunk), not host-bound calls
    takes_cpu_tensors = False  # True for triton under the interpreter

    def unsupported_reason(self, x):
        torch = sys.modules.get("torch")  # not imported: x cannot be a tensor
        if torch is None or not isinstance(x, torch.Tensor):
            return (f"takes torch tensors (pass backend={self.name!r} to move arrays over), "
                    f"got {type(x).__name__}")
        if x.device.type != "cuda" and not (x.device.type == "cpu" and self.takes_cpu_tensors):
            return f"takes CUDA tensors, got a {x.device.type} tensor"
        if x.dtype == torch.float64:
            return "float64 is not a GPU dtype here: pass float32, float16 or bfloat16"
        if x.dtype not in (torch.float32, torch.float16, torch.bfloat16):
            return f"takes float32/float16/bfloat16 tensors, got {x.dtype}"
        if x.ndim != 2 or (x.shape[1] > 1 and len(x) and x.stride(1) != 1):  # no rows: any strides
            return "takes 2-D tensors with contiguous rows"
        from ..keys import MAX_INDEX
        if x.shape[0] >= MAX_INDEX:
            return f"holds row indices below {MAX_INDEX} in its 64-bit keys; got {x.shape[0]} rows"
        return None

    def acc_dtype(self, dtype):
        return np.dtype(np.float32)

    def max_head_rows(self, x):
        """Half the L2 cache: each head pick reads the head once, from L2 when it fits."""
        from .lazy_host import M_MAX
        if x.device.type != "cuda":
            return M_MAX
        l2 = getattr(_torch().cuda.get_device_properties(x.device), "L2_cache_size", 0) or (40 << 20)
        return int(min(M_MAX, (l2 // 2) // (x.shape[1] * x.element_size())))

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

    def live_rows(self, ub):
        """``Backend.live_rows`` as a torch index tensor on ub's device (NumPy's fails on CUDA)."""
        return _torch().nonzero(ub != MARK).flatten()

    def cell_radius(self, ub, owner, base):
        torch = _torch()
        live = ub != MARK
        radius2 = torch.zeros(base, dtype=torch.float64, device=ub.device)
        return radius2.scatter_reduce_(0, owner[live], ub[live].double(), "amax").cpu().numpy()

    def step(self, x, mind, c):
        picks, values = self.steps(x, mind, c, 1)
        return int(picks[0]), float(values[0])
