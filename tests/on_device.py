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

    def fold(self, x, mind, c):
        tm = self._in(mind, np.float32)
        self.be.fold(self._in(x), tm, c)
        self._back(mind, tm)

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


def force_gemm_path(monkeypatch, module, path: str, **tiles) -> str:
    """Send a GPU backend's block_min down the "direct" or the "gemm" path (``module``'s
    thresholds), with optional small tile sizes, e.g. ``GEMM_ROWS=32``."""
    on = path == "gemm"
    monkeypatch.setattr(module, "GEMM_MIN_CENTRES", 1 if on else 1 << 40)
    monkeypatch.setattr(module, "GEMM_MIN_DIM", 1 if on else 1 << 40)
    for name, value in tiles.items():
        monkeypatch.setattr(module, name, value)
    return path


def check_hmin_and_nearest(backend: str, device: str):
    """h_min finds a near-duplicate pair at a large norm; nearest equals the oracle's."""
    import hminsel
    import pytest
    rng = np.random.default_rng(6)
    x = (1e3 + rng.standard_normal((150, 40))).astype(np.float32)
    x[149] = x[17]
    x[149, 5] += np.float32(0.01)
    dev = lambda a: torch.from_numpy(np.ascontiguousarray(a)).to(device)  # noqa: E731
    res = hminsel.hmin(dev(x), backend=backend)
    assert (res.i, res.j) == (17, 149) and res.backend == backend
    assert res.value == pytest.approx(float(x[149, 5]) - float(x[17, 5]), rel=1e-5)
    dist, idx = hminsel.nearest(dev(x), dev(x[::2]), backend=backend)
    want_d, want_i = hminsel.nearest(x, x[::2], backend="numpy")
    assert idx.tolist() == want_i.tolist()
    np.testing.assert_allclose(dist.cpu().numpy(), want_d, rtol=1e-4, atol=1e-3)
    x[[3, 60]] = np.nan  # nonfinite="skip": NaN and -1 for those rows, centre 30 left out
    dist, idx = hminsel.nearest(dev(x), dev(x[::2]), backend=backend, nonfinite="skip")
    want_d, want_i = hminsel.nearest(x, x[::2], backend="numpy", nonfinite="skip")
    assert idx.device.type == dist.device.type == torch.device(device).type
    assert idx.tolist() == want_i.tolist() and 30 not in want_i.tolist()
    np.testing.assert_allclose(dist.cpu().numpy(), want_d, rtol=1e-4, atol=1e-3)
