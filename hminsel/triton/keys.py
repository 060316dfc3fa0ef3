"""Device side of the packed 64-bit argmax key (see ``hminsel.keys`` for the layout).

``pack`` of a value below 0 (MARK) is 0, which loses to every live key and
equals the zero a ring slot starts at.
"""
from __future__ import annotations

import triton
import triton.language as tl

from ..keys import LOW, MAX_INDEX, pack_host, tau_key, unpack_host  # noqa: F401  (re-exported)

NO_TAU = -(1 << 62)  # "no tau" (tau_key's -1) for a kernel: below every key, and an int64


def gate_key(taukey: int) -> int:
    """``taukey`` as a kernel's TAU_KEY. The JIT types a Python int by its range: -1 would be
    an int32 and compile the kernel a second time, every other key is an int64."""
    return taukey if taukey >= 0 else NO_TAU


@triton.jit
def pack(value, index):
    """Keys of fp32 ``value`` (any shape) and int64 ``index`` (same shape); MARK -> 0."""
    # + 0.0 keys -0.0 as +0.0 (as on the host): its sign bit would sort it below MARK
    bits = (value + 0.0).to(tl.int32, bitcast=True).to(tl.int64)
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


@triton.jit
def offer(slot_ptr, key, mask):
    """``atomic_max`` of ``key`` into ``*slot_ptr`` where ``mask``, unless the slot holds as much.

    A slot only grows during a launch, so the value read (from L2: ``.cg``) is a lower
    bound of what it holds: skipping on it is safe, and most programs of a large grid
    (tens of thousands a step, all on one address) then issue no atomic. Relaxed: the
    launch that reads the slot is ordered after this one by the stream.
    """
    held = tl.load(slot_ptr, mask=mask, other=0, cache_modifier=".cg")
    tl.atomic_max(slot_ptr, key, mask=mask & (key > held), sem="relaxed")
