"""A CPU stand-in for the CUDA kernels, so the CUDA backend's host code runs in CI.

``Emulator.launch`` replaces ``hminsel.cuda.loader.launch``: it checks the
arguments with the loader's own ``check_args`` (CPU tensors allowed), checks
the launch shape against a small fake device (a cooperative grid no larger
than its SM count, shared memory within its opt-in limit, the resident rows
of the persistent kernel within what a block owns), and then does what the
kernel's comment in csrc/cuda promises, with torch on CPU tensors. Distances
are taken in float64 and rounded to float32 once, so every emulated kernel
gives a pair the same value, as the real kernels do with one summation order.
What this cannot check is the device code itself: that is nvcc's compile in
test_cuda.py, and the GPU run in benchmarks/gpu_check.sh.
"""
from __future__ import annotations

import torch

from hminsel.cuda import loader

LOW = 0xFFFFFFFF


def sqdist(a, b):
    """float32 of the float64 squared distances of rows ``a`` to row(s) ``b``."""
    return ((a.double() - b.double()) ** 2).sum(-1).float()


class Emulator:
    def __init__(self, sm_count=3, smem_optin=4096, cooperative=True, refuse=False):
        """``refuse``: the device says it runs cooperative launches, but the driver refuses
        each one at launch (as under MPS limits), which ``loader.launch`` reports as a
        ``CooperativeLaunchError`` with nothing run."""
        self.props = {"sm_count": sm_count, "smem_optin": smem_optin,
                      "cooperative": cooperative, "l2": 1 << 20}
        self.cooperative = cooperative
        self.refuse = refuse
        self.launches = []  # (name, grid, cooperative, shared_mem, res or None)

    def install(self, monkeypatch):
        monkeypatch.setattr(loader, "launch", self.launch)
        monkeypatch.setattr(loader, "device_props", lambda device: self.props)
        monkeypatch.setattr(loader, "cooperative_reason",
                            lambda device: None if self.cooperative else "emulated: no cooperative launch")
        return self

    def launch(self, name, grid, args, *, shared_mem=0, cooperative=False):
        loader.check_args(name, args, allow_cpu=True)
        assert grid >= 1 and shared_mem <= self.props["smem_optin"], (grid, shared_mem)
        if cooperative:
            assert self.cooperative and grid <= self.props["sm_count"], "grid too large to be resident"
            if self.refuse:
                self.launches.append((name, grid, "refused", shared_mem, None))
                raise loader.CooperativeLaunchError("emulated: the driver refused the launch")
        getattr(self, name)(grid, cooperative, shared_mem, *args)

    def fps_run(self, grid, cooperative, shared_mem, x, n, d, stride, mind, gidx, use_gidx, ring,
                count, tau_key, res, vec, bar, mode, flags, slots):
        assert count == 1 or cooperative, "many steps in one launch need a cooperative launch"
        rpb = -(-n // grid)
        item = x.element_size()  # fps.cu's layout: the center row (T, to 16 bytes), scratch,
        minds = -(-res * 4 // 16) * 16 if mode & 2 else 0  # the rows' min-distances, rows
        assert 0 <= res <= rpb and shared_mem == -(-d * item // 16) * 16 + 256 + minds + res * d * item
        if mode & 1:  # the exchange's flags start at zero; two slots a block
            assert count > 1 and len(flags) == grid and not flags.any() and len(slots) == 2 * grid
        self.launches.append(("fps_run", grid, cooperative, shared_mem, res))
        rows = torch.arange(n)
        for t in range(count):
            key = int(ring[t])
            if key == 0:
                break
            c = LOW - (key & LOW)
            gid = int(gidx[c]) if use_gidx else c
            if (((key >> 32) << 32) | (LOW - gid)) <= tau_key:
                break
            dist = sqdist(x[:n], x[c])
            m = mind[:n]
            m[c] = -1.0
            live = m >= 0
            m[live] = torch.minimum(m[live], dist[live])
            bits = m.view(torch.int32).to(torch.int64)
            keys = torch.where(m >= 0, (bits << 32) | (LOW - rows), torch.zeros_like(rows))
            ring[t + 1] = max(int(ring[t + 1]), int(keys.max()))

    def direct_min(self, grid, cooperative, shared_mem, x, ids, n, y, m, d, sx, sy, self_mask, vec,
                   value, index):
        self.launches.append(("direct_min", grid, cooperative, shared_mem, None))
        for i in range(n):
            dist = sqdist(y[:m], x[ids[i]])
            if self_mask:
                dist[int(ids[i])] = float("inf")
            j = int(torch.argmin(dist))  # the first minimum: the lowest index
            value[i], index[i] = (dist[j], j) if torch.isfinite(dist[j]) else (float("inf"), -1)

    def pair_dist(self, grid, cooperative, shared_mem, x, ids, y, cand, n, d, sx, sy, vec, value):
        self.launches.append(("pair_dist", grid, cooperative, shared_mem, None))
        if n:
            value[:n] = sqdist(x[ids[:n]], y[cand[:n]])
