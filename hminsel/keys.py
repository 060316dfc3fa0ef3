"""Host side of the packed 64-bit argmax key that every GPU kernel uses.

``key = (float_bits(value) << 32) | (0xFFFFFFFF - index)``: non-negative float32
bit patterns order like integers, so the int64 maximum of keys is the largest
value, and the low half makes the lowest index win a tie. A value below 0
(``MARK``: selected or excluded) packs to 0, which loses to every live key and
equals the zero a ring slot starts at: a slot still 0 after a step means
"every point is marked". The device side lives with each backend's kernels
(``hminsel/triton/keys.py``, ``csrc/cuda/hminsel.cuh``). NumPy and torch only.
"""
from __future__ import annotations

import numpy as np

LOW = 0xFFFFFFFF
MAX_INDEX = LOW - 1  # indices must stay below this for the low half to be non-zero


def pack_host(value: float, index: int) -> int:
    """The key of one float32 ``value`` at ``index`` (MARK or negative -> 0)."""
    if value < 0:
        return 0
    bits = int(np.array(value + 0.0, np.float32).view(np.int32))  # -0.0 + 0.0 is +0.0
    return (bits << 32) | (LOW - int(index))


def tau_key(tau: float, tau_idx: int) -> int:
    """The key that ``(value, index)`` must exceed to beat ``(tau, tau_idx)``.

    ``tau`` may be any float64 (tests pass midpoints): for a float32 ``value``,
    ``value > tau`` equals ``value > t32`` with t32 the largest float32 <= tau,
    and no float32 equals a tau that float32 cannot hold, so then the low half
    is all ones (no index wins the tie). -inf or negative tau: -1.
    """
    if tau < 0:
        return -1
    t32 = np.float32(tau)
    if float(t32) > tau:
        t32 = np.nextafter(t32, np.float32(-np.inf))
    bits = int(np.array(t32, np.float32).view(np.int32))
    if float(t32) == tau:
        return (bits << 32) | (LOW - min(max(int(tau_idx), 0), LOW))
    return (bits << 32) | LOW


def unpack_host(keys):
    """``(index int64, value float64)`` NumPy arrays of int64 ``keys``; key 0 -> (-1, MARK)."""
    keys = np.asarray(keys.to("cpu") if hasattr(keys, "to") else keys, dtype=np.int64)
    index = (LOW - (keys & LOW)).astype(np.int64)
    value = (keys >> 32).astype(np.int32).view(np.float32).astype(np.float64)
    dead = keys == 0
    index[dead], value[dead] = -1, -1.0
    return index, value


def seed_key(c: int, n: int) -> int:
    """A live key for row ``c`` of ``n`` (value 0.0): ring[0] of a streaming run from c."""
    if n > MAX_INDEX:
        raise ValueError(f"the packed key holds row indices below {MAX_INDEX}; got N = {n}")
    return LOW - int(c)


def first_key(h):
    """The key of the best entry of the fp32 tensor ``h`` (lowest position on ties), on its device."""
    import torch
    pos = torch.arange(len(h), device=h.device, dtype=torch.int64)
    bits = (h + 0.0).contiguous().view(torch.int32).to(torch.int64)  # -0.0 keys as +0.0
    keys = torch.where(h >= 0, (bits << 32) | (LOW - pos), torch.zeros_like(pos))
    return keys.max()


def accepted(keys, ids, taukey: int, budget: int) -> int:
    """How many leading ``keys`` (over head positions) pass the gate of a head loop.

    A key passes when it is live and, with its low half taken over the global
    index ``ids[position]``, beats ``taukey``: the host side of the kernels' gate.
    """
    for t, key in enumerate(np.asarray(keys)[:budget].tolist()):
        if key == 0 or (((key >> 32) << 32) | (LOW - int(ids[LOW - (key & LOW)]))) <= taukey:
            return t
    return min(budget, len(keys))


def head_result(keys, order, count: int):
    """``(positions int64, values float64)`` of the first ``count`` head keys; ``order`` maps back."""
    keys = np.asarray(keys, np.int64)[:count]
    pos = np.asarray(order)[LOW - (keys & LOW)].astype(np.int64)
    return pos, (keys >> 32).astype(np.int32).view(np.float32).astype(np.float64)


def launch_gated(launch, ring, budget: int, ids, taukey: int, first: int = 8, most: int = 1024):
    """Queue gated head steps ``launch(t)``, t = 0, 1, ..., until the gate closes or the budget ends.

    Launch t accepts ring[t] if it passes the gate (a no-op otherwise) and writes
    the next candidate into ring[t + 1]. Steps go in chunks that double from
    ``first`` to ``most``, with one host read of the ring between chunks, so a
    closed gate wastes at most one chunk of empty launches.
    """
    launched, chunk = 0, first
    while launched < budget:
        for t in range(launched, min(budget, launched + chunk)):
            launch(t)
        launched = min(budget, launched + chunk)
        if accepted(ring[launched:launched + 1].cpu().numpy(), ids, taukey, 1) == 0:
            break  # the gate closed in this chunk: the next candidate is not provably global
        chunk = min(2 * chunk, most)
