"""A GPU backend behind the NumPy-in, NumPy-out interface of the shared primitive bodies.

``OnDevice(backend, device)`` moves the bodies' arrays to torch tensors on
``device`` and copies the state arrays back, casting the bodies' exact float64
hand-built sets to float32 (float64 is not a GPU dtype here). Used by the
triton tests (interpreter or GPU) and the cuda tests (emulated or GPU).
"""
from __future__ import annotations

import numpy as np
import torch

from hminsel.backends.base import Backend


class OnDevice(Backend):
    def __init__(self, be, device):
        self.be, self.device, self.name = be, device, be.name

    def unavailable_reason(self):
        return self.be.unavailable_reason()

    def acc_dtype(self, dtype):
        return np.dtype(np.float32)

    def _in(self, a, dtype=None):
        a = np.asarray(a)
        if dtype is None:
            dtype = np.float32 if a.dtype == np.float64 else a.dtype
        return torch.from_numpy(np.ascontiguousarray(a, dtype=dtype)).to(self.device)

    @staticmethod
    def _back(state, t):
        state[...] = t.cpu().numpy()

    def step(self, x, mind, c):
        tm = self._in(mind, np.float32)
        out = self.be.step(self._in(x), tm, c)
        self._back(mind, tm)
        return out

    def steps(self, x, mind, c, count):
        tm = self._in(mind, np.float32)
        out = self.be.steps(self._in(x), tm, c, count)
        self._back(mind, tm)
        return out

    def block_min(self, x, y, *, rows=None, self_mask=False):
        v, i = self.be.block_min(self._in(x), self._in(y), rows=rows, self_mask=self_mask)
        return v.cpu().numpy(), i.cpu().numpy()

    def head_greedy(self, xh, h, hidx, tau, tau_idx, budget):
        th = self._in(h, np.float32)
        out = self.be.head_greedy(self._in(xh), th, self._in(hidx, np.int64), tau, tau_idx, budget)
        self._back(h, th)
        return out
