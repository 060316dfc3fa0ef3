"""The packed 64-bit argmax key: ``(float_bits(value) << 32) | (0xFFFFFFFF - index)``.

Non-negative float32 bit patterns order like integers, so the signed int64
maximum of packed keys is the largest value, and the low half makes the lowest
index win a tie. A value below 0 (``MARK``: selected or excluded) packs to 0,
which loses to every live key (a live key is >= 0xFFFFFFFF - index > 0 for
index < 2**32 - 1) and equals the zero a ring slot starts at: a slot still 0
after a step means "every point is marked".
"""
from __future__ import annotations

import numpy as np
import torch
import triton
import triton.language as tl

LOW = 0xFFFFFFFF
MAX_INDEX = LOW - 1  # indices must stay below this for the low half to be non-zero


@triton.jit
def pack(value, index):
    """Keys of fp32 ``value`` (any shape) and int64 ``index`` (same shape); MARK -> 0."""
    bits = value.to(tl.int32, bitcast=True).to(tl.int64)  # >= 0 for value >= 0
    key = (bits << 32) | (0xFFFFFFFF - index)
    return tl.where(value >= 0, key, 0)


@triton.jit
def unpack_index(key):
    """The index of a key (garbage for key 0: callers test ``key != 0``)."""
    return 0xFFFFFFFF - (key & 0xFFFFFFFF)


@triton.jit
def unpack_value(key):
    """The fp32 value of a key (0.0 for key 0)."""
    return (key >> 32).to(tl.int32).to(tl.float32, bitcast=True)


def pack_host(value: float, index: int) -> int:
    """Host-side ``pack`` for one float32 value (MARK or negative -> 0)."""
    if value < 0:
        return 0
    bits = int(np.array(value, np.float32).view(np.int32))
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


def unpack_host(keys: torch.Tensor):
    """``(index int64, value float64)`` NumPy arrays of int64 ``keys``; key 0 -> (-1, MARK)."""
    keys = keys.to("cpu")
    index = (LOW - (keys & LOW)).numpy().astype(np.int64)
    value = (keys >> 32).to(torch.int32).view(torch.float32).numpy().astype(np.float64)
    dead = (keys == 0).numpy()
    index[dead], value[dead] = -1, -1.0
    return index, value
