"""The drop-ins' bookkeeping on masks, counts and starts: NumPy for CPU tensors.

A parallel torch op on the CPU (a fill, compare or reduction of more than 32k
elements) returns with torch's OpenMP threads spinning for a few milliseconds;
then they sleep, and the next parallel op waits for them to wake: after 0.1 s
idle, a sum of 1M bools took 1.4-8.9 ms on a 2-vCPU VM, 0.5 ms in a loop
(``benchmarks/beside_torch.py``). The drop-ins ran such ops before and after
each call: the torch-fps drop-in on 256 clouds x 1024 x 3, k = 128, took 1.43x
``select_batched``'s time with its mask work in torch and 1.06x with it in
NumPy; PyTorch3D's, 1.34x and 1.11x once its gather of the picked points
left torch too. So each helper here does its work in NumPy (one thread, on
zero-copy views) for CPU tensors in eager mode, and in torch for GPU tensors,
under ``torch.compile``, ``make_fx`` and ``torch.export`` (traceable) and where
autograd needs it, with the same results (int64 counts and indices, bool masks).
"""
from __future__ import annotations

import functools

import numpy as np
import torch

from .. import _finite, _inputs


def traced() -> bool:
    """Whether the drop-in runs under a tracer: ``torch.compile`` (dynamo), or a tracing
    dispatch mode (``make_fx``, ``torch.export``, fake tensors), whose tensors have no data
    to read or whose graph would keep what was read as constants of this call. Other modes
    (a profiler's FlopCounterMode, a user's own) see real data: eager mode, with its checks
    and draws."""
    if torch.compiler.is_compiling():
        return True
    depth = getattr(torch._C, "_len_torch_dispatch_stack", None)  # private, torch >= 2.0
    if depth is None or depth() == 0:
        return False
    return any(isinstance(mode, _tracing_modes()) for mode in _mode_stack())


def _mode_stack() -> list:
    from torch.utils._python_dispatch import _get_current_dispatch_mode_stack
    return _get_current_dispatch_mode_stack()


@functools.lru_cache(maxsize=None)
def _tracing_modes() -> tuple:
    """The dispatch modes of make_fx, torch.export and fake tensors (those this torch has)."""
    found = []
    for module, name in (("torch._subclasses.fake_tensor", "FakeTensorMode"),
                         ("torch.fx.experimental.proxy_tensor", "ProxyTorchDispatchMode"),
                         ("torch._subclasses.functional_tensor", "FunctionalTensorMode")):
        try:
            found.append(getattr(__import__(module, fromlist=[name]), name))
        except (ImportError, AttributeError):
            pass
    return tuple(found)


def on_host(t: torch.Tensor) -> bool:
    """Whether ``t``'s bookkeeping runs in NumPy: a plain CPU tensor, not traced."""
    return t.device.type == "cpu" and type(t) in _PLAIN and not traced()


_PLAIN = (torch.Tensor, torch.nn.Parameter)  # subclasses (DTensor, ...) have no .numpy()


def all_valid(b: int, n: int, device) -> torch.Tensor:
    """(b, n) True."""
    if torch.device(device).type == "cpu" and not traced():
        return torch.from_numpy(np.ones((b, n), bool))
    return torch.ones((b, n), dtype=torch.bool, device=device)


def prefix_mask(lengths: torch.Tensor, n: int) -> torch.Tensor:
    """(B, n): slot i of row b is valid when ``i < lengths[b]``."""
    if on_host(lengths):
        return torch.from_numpy(np.arange(n) < lengths.numpy()[:, None])
    return torch.arange(n, device=lengths.device).unsqueeze(0) < lengths.unsqueeze(1)


def finite_and(valid: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``valid`` (B, N) without the points (B, N, D) that hold a NaN or inf."""
    if on_host(points) and points.dtype != torch.bfloat16 and points.shape[-1] > 0:
        flat = _inputs.plain_tensor(points, "points").reshape(-1, points.shape[-1]).numpy()
        finite = _finite.finite_rows(flat)  # one native pass; None: every point finite
        return valid if finite is None else torch.from_numpy(valid.numpy() & finite.reshape(valid.shape))
    return valid & points.isfinite().all(dim=-1)


def counts_and_first(valid: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(count, first)``: each row's valid slots and its first valid slot (0 for none)."""
    if on_host(valid):
        v = valid.numpy()
        return torch.from_numpy(v.sum(axis=1, dtype=np.int64)), torch.from_numpy(v.argmax(axis=1).astype(np.int64))
    return valid.sum(dim=1), valid.long().argmax(dim=1)


def best_valid(valid: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
    """Each row's valid slot of the largest score (the first of equal ones)."""
    if on_host(valid):
        s = np.where(valid.numpy(), scores.numpy(), np.float32(-np.inf))
        return torch.from_numpy(s.argmax(axis=1).astype(np.int64))
    return torch.where(valid, scores, float("-inf")).argmax(dim=1)


def degrees(batch: torch.Tensor, size: int) -> torch.Tensor:
    """(size,) int64: how many entries of ``batch`` (int64 ids in [0, size)) hold each id."""
    if on_host(batch):
        return torch.from_numpy(np.bincount(batch.numpy(), minlength=size).astype(np.int64))
    return torch.zeros(size, dtype=torch.long, device=batch.device).index_add_(0, batch, torch.ones_like(batch))


def gather_points(points: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """(B, K, D): ``points[b, idx[b, j]]``, 0.0 where ``idx`` is -1 (padding). Differentiable
    in ``points`` where it requires grad (torch's gather then)."""
    b, n, d = points.shape
    if on_host(points) and not points.requires_grad and points.dtype != torch.bfloat16:
        i = idx.numpy()
        rows = np.take(_inputs.plain_tensor(points, "points").reshape(b * n, d).numpy(),
                       (np.arange(b)[:, None] * n + np.maximum(i, 0)).ravel(), axis=0).reshape(*i.shape, d)
        rows[i < 0] = 0
        return torch.from_numpy(rows)
    picked = torch.gather(points, 1, idx.clamp(min=0).unsqueeze(-1).expand(-1, -1, d))
    return torch.where(idx.unsqueeze(-1) >= 0, picked, picked.new_zeros(()))
