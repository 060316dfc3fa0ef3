"""Host side of the CUDA kernels: sizes each launch and strings launches into the primitives.

- ``steps``: k streaming steps in ONE cooperative launch of ``fps_run``
  (grid = one block an SM; each block keeps as many of its rows in shared
  memory as fit, so a problem of about the chip's shared memory never reads
  HBM after the first step). Without cooperative launches: one launch a step.
- ``head_greedy``: the lazy FPS's whole head loop in one launch of the same
  kernel, gated by tau; the head rows sit in shared memory.

``block_min`` lives in ``hminsel/cuda/block_min.py``. Every launch goes
through ``loader.launch``; tests swap it for an emulator.
"""
from __future__ import annotations

import contextlib

import torch

from .. import keys
from . import loader

MIN_RESIDENT_STEPS = 4  # fewer steps in a launch: copying rows on chip does not pay
SCRATCH = 256  # bytes: 32 int64 of block_max scratch
# fps_run's mode bits for a cooperative launch (csrc/cuda/fps.cu): the step's key by an
# exchange of flagged slots in place of the grid barrier, and the resident rows'
# min-distances in shared memory. 0 (neither) is what ran on the H200 (2026-12-04:
# 8.9 us a step at 20k x 768 fp16); the others are untimed, for the benchmark to compare
# (benchmarks/bench_gpu.py sets this) before one becomes the default.
EXCHANGE, SHARED_MIND = 1, 2
FPS_MODE = 0


@contextlib.contextmanager
def fps_mode(mode: int):
    """``FPS_MODE = mode`` inside the block (the benchmark's and the sanitizer's runs)."""
    global FPS_MODE
    saved, FPS_MODE = FPS_MODE, mode
    try:
        yield
    finally:
        FPS_MODE = saved


def _props(x):
    return loader.device_props(x.device.index if x.device.index is not None else 0)


def _vec(*tensors) -> int:
    """1 when every row of every tensor starts on a 16-byte boundary (16-byte loads)."""
    return int(all(t.data_ptr() % 16 == 0 and (t.stride(0) * t.element_size()) % 16 == 0
                   and (t.shape[1] * t.element_size()) % 16 == 0 for t in tensors))


def _fixed_smem(d: int, itemsize: int) -> int:
    """Bytes of ``fps_run``'s shared memory besides the rows: the center row (T, rounded
    up to 16 bytes) and the scratch."""
    return -(-d * itemsize // 16) * 16 + SCRATCH


def resident_bytes(res: int, d: int, itemsize: int, mode: int) -> int:
    """Shared memory of ``res`` rows on chip: the rows, and with SHARED_MIND their
    min-distances (fp32, to 16 bytes) before them."""
    return res * d * itemsize + (-(-res * 4 // 16) * 16 if mode & SHARED_MIND else 0)


def resident_rows(room: int, d: int, itemsize: int, mode: int) -> int:
    """The most rows whose ``resident_bytes`` fit in ``room`` bytes."""
    per_row = d * itemsize + (4 if mode & SHARED_MIND else 0)
    return max(0, (room - (15 if mode & SHARED_MIND else 0)) // per_row)


def cooperative(x) -> bool:
    """Whether ``fps_run`` may run many steps in one launch on x's device."""
    return loader.cooperative_reason(x.device.index if x.device.index is not None else 0) is None


def fps_run(x, mind, ring, count, *, gidx=None, taukey=-1, fallback=True):
    """Queue ``count`` steps of ``fps_run`` over ``x`` (see csrc/cuda/fps.cu).

    One cooperative launch with on-chip rows when the device allows it; else
    ``count`` one-step launches over ``ring[t:]`` (then the caller bounds
    ``count`` by what it wants, since a closed gate does not stop the launches).
    ``fallback=False``: a refused cooperative launch raises
    ``loader.CooperativeLaunchError`` instead (nothing ran), for a caller with
    a better fallback.
    """
    n, d = x.shape
    props = _props(x)
    # a buffer of its own, not ring: the kernel takes gidx as __restrict__ (it reads it only with
    # use_gidx, but ring is written through atomics meanwhile)
    gid = gidx if gidx is not None else torch.zeros(1, dtype=torch.int64, device=x.device)
    bar = torch.zeros(2, dtype=torch.int32, device=x.device)
    vec = _vec(x)
    fixed = _fixed_smem(d, x.element_size())
    if fixed > props["smem_optin"]:
        raise ValueError(f"the CUDA backend keeps one row (d = {d}) in shared memory, {fixed} bytes; "
                         f"this device allows {props['smem_optin']}: use backend='triton'")
    if count > 1 and cooperative(x):
        grid, mode = props["sm_count"], FPS_MODE
        rpb = -(-n // grid)
        res = resident_rows(props["smem_optin"] - fixed, d, x.element_size(), mode)
        res = min(rpb, res) if count >= MIN_RESIDENT_STEPS else 0
        flags = torch.zeros(grid, dtype=torch.int32, device=x.device) if mode & EXCHANGE else bar
        # (without EXCHANGE no flag or slot is touched: bar and gid stand in)
        slots = torch.empty(2 * grid, dtype=torch.int64, device=x.device) if mode & EXCHANGE else gid
        try:
            loader.launch("fps_run", grid, (x, n, d, x.stride(0), mind, gid, int(gidx is not None),
                                            ring, int(count), int(taukey), int(res), vec, bar,
                                            mode, flags, slots),
                          shared_mem=fixed + resident_bytes(res, d, x.element_size(), mode),
                          cooperative=True)
            return
        except loader.CooperativeLaunchError:
            if not fallback:
                raise
            # nothing ran: one launch a step below
    grid = max(1, min(-(-n // (loader.THREADS // 32)), 4 * props["sm_count"]))
    for t in range(count):
        loader.launch("fps_run", grid, (x, n, d, x.stride(0), mind, gid, int(gidx is not None),
                                        ring[t:], 1, int(taukey), 0, vec, bar, 0, bar, gid),
                      shared_mem=fixed)


def steps(x, mind, c: int, count: int):
    """``(picks, values)`` NumPy int64/float64 of ``count`` chained steps from ``c`` (one host read)."""
    ring = torch.zeros(count + 1, dtype=torch.int64, device=x.device)
    ring[0] = keys.seed_key(c, len(x))
    fps_run(x, mind, ring, count)
    return keys.unpack_host(ring[1:])


def fold(x, mind, c: int):
    """One step from ``c`` queued, its key never read (``Backend.fold``: no host sync)."""
    ring = torch.zeros(2, dtype=torch.int64, device=x.device)
    ring[0] = keys.seed_key(c, len(x))
    fps_run(x, mind, ring, 1)


def head_greedy(xh, h, hidx, tau: float, tau_idx: int, budget: int):
    """``(positions int64, values float64)`` NumPy arrays; ``h`` updated in place."""
    import numpy as np
    m = len(xh)
    budget = int(min(budget, m))
    if budget <= 0:
        return np.zeros(0, np.int64), np.zeros(0, np.float64)
    order = torch.argsort(hidx, stable=True)  # positions then break ties as global indices do
    xs = xh.index_select(0, order).contiguous()
    hs = h.index_select(0, order).contiguous()
    ids = hidx.index_select(0, order).contiguous()
    ring = torch.zeros(budget + 1, dtype=torch.int64, device=xh.device)
    ring[0] = keys.first_key(hs)
    taukey = keys.tau_key(tau, tau_idx)
    ids_host = ids.cpu().numpy()
    one_launch = budget > 1 and cooperative(xs)
    if one_launch:
        try:
            fps_run(xs, hs, ring, budget, gidx=ids, taukey=taukey, fallback=False)
        except loader.CooperativeLaunchError:  # refused, nothing ran: steps that stop at the gate
            one_launch = False
    if not one_launch:
        keys.launch_gated(lambda t: fps_run(xs, hs, ring[t:], 1, gidx=ids, taukey=taukey),
                          ring, budget, ids_host, taukey)
    ring_host = ring[:budget].cpu().numpy()
    h[order] = hs
    return keys.head_result(ring_host, order.cpu().numpy(),
                            keys.accepted(ring_host, ids_host, taukey, budget))
