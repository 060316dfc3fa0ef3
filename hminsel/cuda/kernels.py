"""Host side of the CUDA kernels: sizes each launch and strings launches into the primitives.

- ``steps``: k streaming steps in ONE cooperative launch of ``fps_run``
  (grid = one block an SM; each block keeps as many of its rows in shared
  memory as fit, so a problem of about the chip's shared memory never reads
  HBM after the first step). Without cooperative launches: one launch a step.
- ``head_greedy``: the lazy FPS's whole head loop in one launch of the same
  kernel, gated by tau; the head rows sit in shared memory.
- ``block_min``: GEMM-form candidates from cuBLAS (torch.mm on centred fp32
  tiles), certified against a rigorous rounding bound; exact values come
  from ``pair_dist`` / ``direct_min``, which share the steps' summation order.

Every launch goes through ``loader.launch``; tests swap it for an emulator.
"""
from __future__ import annotations

import torch

from .. import keys
from . import loader

GEMM_MIN_CENTRES = 64  # fewer centres: the direct form alone is cheaper
GEMM_MIN_DIM = 16
GEMM_ROWS, GEMM_COLS = 4096, 8192  # a GEMM tile: 128 MiB of fp32; with its temporaries ~0.7 GiB
MIN_RESIDENT_STEPS = 4  # fewer steps in a launch: copying rows on chip does not pay
SCRATCH = 256  # bytes: 32 int64 of block_max scratch


def _props(x):
    return loader.device_props(x.device.index if x.device.index is not None else 0)


def _vec(*tensors) -> int:
    """1 when every row of every tensor starts on a 16-byte boundary (16-byte loads)."""
    return int(all(t.data_ptr() % 16 == 0 and (t.stride(0) * t.element_size()) % 16 == 0
                   and (t.shape[1] * t.element_size()) % 16 == 0 for t in tensors))


def _fixed_smem(d: int) -> int:
    return 4 * ((d + 3) // 4 * 4) + SCRATCH


def cooperative(x) -> bool:
    """Whether ``fps_run`` may run many steps in one launch on x's device."""
    return loader.cooperative_reason(x.device.index if x.device.index is not None else 0) is None


def fps_run(x, mind, ring, count, *, gidx=None, taukey=-1):
    """Queue ``count`` steps of ``fps_run`` over ``x`` (see csrc/cuda/fps.cu).

    One cooperative launch with on-chip rows when the device allows it; else
    ``count`` one-step launches over ``ring[t:]`` (then the caller bounds
    ``count`` by what it wants, since a closed gate does not stop the launches).
    """
    n, d = x.shape
    props = _props(x)
    gid = gidx if gidx is not None else ring  # any int64 tensor: the kernel does not read it
    bar = torch.zeros(2, dtype=torch.int32, device=x.device)
    vec = _vec(x)
    fixed = _fixed_smem(d)
    if fixed > props["smem_optin"]:
        raise ValueError(f"the CUDA backend keeps one row (d = {d}) in shared memory, {fixed} bytes; "
                         f"this device allows {props['smem_optin']}: use backend='triton'")
    if count > 1 and cooperative(x):
        grid = props["sm_count"]
        rpb = -(-n // grid)
        fit = max(0, (props["smem_optin"] - fixed) // (d * x.element_size()))
        res = min(rpb, fit) if count >= MIN_RESIDENT_STEPS else 0
        try:
            loader.launch("fps_run", grid, (x, n, d, x.stride(0), mind, gid, int(gidx is not None),
                                            ring, int(count), int(taukey), int(res), vec, bar),
                          shared_mem=fixed + res * d * x.element_size(), cooperative=True)
            return
        except loader.CooperativeLaunchError:
            pass  # nothing ran: one launch a step below
    grid = max(1, min(-(-n // (loader.THREADS // 32)), 4 * props["sm_count"]))
    for t in range(count):
        loader.launch("fps_run", grid, (x, n, d, x.stride(0), mind, gid, int(gidx is not None),
                                        ring[t:], 1, int(taukey), 0, vec, bar), shared_mem=fixed)


def steps(x, mind, c: int, count: int):
    """``(picks, values)`` NumPy int64/float64 of ``count`` chained steps from ``c`` (one host read)."""
    ring = torch.zeros(count + 1, dtype=torch.int64, device=x.device)
    ring[0] = keys.seed_key(c, len(x))
    fps_run(x, mind, ring, count)
    return keys.unpack_host(ring[1:])


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
    if budget > 1 and cooperative(xs):
        fps_run(xs, hs, ring, budget, gidx=ids, taukey=taukey)
    else:
        keys.launch_gated(lambda t: fps_run(xs, hs, ring[t:], 1, gidx=ids, taukey=taukey),
                          ring, budget, ids_host, taukey)
    ring_host = ring[:budget].cpu().numpy()
    h[order] = hs
    return keys.head_result(ring_host, order.cpu().numpy(),
                            keys.accepted(ring_host, ids_host, taukey, budget))


# -- block_min --------------------------------------------------------------------

def gemm_coef(d: int) -> float:
    """|GEMM form - direct form| <= coef (|x_i - mu|^2 + max_j |y_j - mu|^2) in fp32 (cpu_gemm.gemm_coef)."""
    return 4.0 * (d + 8) * float(torch.finfo(torch.float32).eps)


def _direct(x, y, ids, self_mask: bool):
    n, (m, d) = len(ids), y.shape
    value = torch.empty(n, dtype=torch.float32, device=x.device)
    index = torch.empty(n, dtype=torch.int64, device=x.device)
    if n:
        grid = max(1, min(-(-n // (loader.THREADS // 32)), 4 * _props(x)["sm_count"]))
        loader.launch("direct_min", grid, (x, ids, n, y, m, d, x.stride(0), y.stride(0),
                                           int(self_mask), _vec(x, y), value, index))
    return value, index


def _candidates(x, y, ids, self_mask: bool):
    """GEMM-form ``(best, second, argmin, |x_i - mu|^2, max |y_j - mu|^2)`` of rows ``x[ids]``.

    The GEMM runs in full fp32 whatever torch's matmul precision is set to:
    ``gemm_coef`` bounds an fp32 product, not a TF32 or bf16 one.
    """
    previous = torch.get_float32_matmul_precision()
    torch.set_float32_matmul_precision("highest")
    try:
        return _fp32_candidates(x, y, ids, self_mask)
    finally:
        torch.set_float32_matmul_precision(previous)


def _fp32_candidates(x, y, ids, self_mask: bool):
    n, m = len(ids), len(y)
    mu = y.float().mean(0)
    cols = [(lo, min(m, lo + GEMM_COLS)) for lo in range(0, m, GEMM_COLS)]
    yn = torch.cat([((y[lo:hi].float() - mu) ** 2).sum(1) for lo, hi in cols])
    best = torch.full((n,), float("inf"), device=x.device)
    second = torch.full((n,), float("inf"), device=x.device)
    arg = torch.zeros(n, dtype=torch.int64, device=x.device)
    xn = torch.empty(n, device=x.device)
    for r0 in range(0, n, GEMM_ROWS):
        rid = ids[r0:r0 + GEMM_ROWS]
        xc = x.index_select(0, rid).float() - mu
        xn[r0:r0 + len(rid)] = (xc * xc).sum(1)
        b, s, a = best[r0:r0 + len(rid)], second[r0:r0 + len(rid)], arg[r0:r0 + len(rid)]
        for lo, hi in cols:
            g = (xn[r0:r0 + len(rid), None] + yn[None, lo:hi] - 2.0 * (xc @ (y[lo:hi].float() - mu).T))
            g = g.clamp_min_(0.0)
            col = torch.arange(lo, hi, device=x.device)
            if self_mask:
                g.masked_fill_(col[None, :] == rid[:, None], float("inf"))
            m1 = g.min(1).values
            a1 = torch.where(g == m1[:, None], col[None, :], hi).min(1).values  # lowest column
            m2 = torch.where(col[None, :] == a1[:, None], float("inf"), g).min(1).values
            torch.minimum(torch.minimum(s, m2), torch.maximum(b, m1), out=s)
            torch.where(m1 < b, a1, a, out=a)  # strict: earlier tiles keep ties
            torch.minimum(b, m1, out=b)
    return best, second, arg, xn, yn.max()


def block_min(x, y, ids, self_mask: bool):
    """``(value fp32, index int64)`` tensors: the exact nearest row of y for rows ``x[ids]``.

    Direct form for few centres; else GEMM candidates, certified when the gap
    to the second best exceeds twice the bound, with one ``pair_dist`` for the
    certified rows and ``direct_min`` over every centre for the rest.
    """
    n, (m, d) = len(ids), y.shape
    if n == 0 or m < GEMM_MIN_CENTRES or d < GEMM_MIN_DIM:
        return _direct(x, y, ids, self_mask)
    best, second, arg, xn, yn_max = _candidates(x, y, ids, self_mask)
    sure = (second - best) > 2.0 * gemm_coef(d) * (xn + yn_max)
    value = torch.empty(n, dtype=torch.float32, device=x.device)
    grid = max(1, min(-(-n // (loader.THREADS // 32)), 4 * _props(x)["sm_count"]))
    loader.launch("pair_dist", grid, (x, ids, y, arg, n, d, x.stride(0), y.stride(0), _vec(x, y), value))
    redo = torch.nonzero(~sure).flatten()
    if len(redo):
        v, i = _direct(x, y, ids.index_select(0, redo), self_mask)
        value[redo], arg[redo] = v, i
    return value, arg
