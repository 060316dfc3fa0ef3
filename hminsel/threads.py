"""How many threads the CPU backend's kernels use, set from Python.

    >>> hminsel.set_num_threads(4)        # every later call on the CPU backend
    >>> with hminsel.num_threads(1):      # one block (a data loader's worker, say)
    ...     sel = hminsel.select(x, 1000)

The default is ``HMINSEL_NUM_THREADS``, else ``OMP_NUM_THREADS``, else the
cores this process may use (its CPU affinity capped by the cgroup CPU quota);
``set_num_threads(None)`` goes back to it. The count is process-wide, as
``torch.set_num_threads``'s is, and does not change any answer (README,
"Threads on a shared machine"). GPU backends ignore it.
"""
from __future__ import annotations

import contextlib
import numbers

MAX_THREADS = 4096  # far past any machine's cores; the C++ pool takes an int


def _cpu():
    from .backends import cpu
    return cpu


def get_num_threads() -> int:
    """The threads of the CPU backend's kernels (1 without the C++ extension)."""
    cpu = _cpu()
    return 1 if cpu._cpu is None else int(cpu._cpu.get_threads())


def set_num_threads(n: int | None) -> int:
    """Use ``n`` threads (an int >= 1) in the CPU backend's kernels from now on, or the
    default again for None. Returns the count now in force."""
    if n is not None and (isinstance(n, bool) or not isinstance(n, numbers.Integral)):
        raise TypeError(f"the thread count must be an int >= 1, or None for the default; got {n!r}")
    if n is not None and not 1 <= n <= MAX_THREADS:
        raise ValueError(f"the thread count must be an int >= 1 (at most {MAX_THREADS}), or None "
                         f"for the default; got {n!r}")
    return _cpu().set_num_threads(n)  # 1 without the C++ extension


@contextlib.contextmanager
def num_threads(n: int | None):
    """``set_num_threads(n)`` inside the block, the count before it afterwards (even when the
    block raises). Not meant to nest across Python threads: the count is process-wide."""
    before = get_num_threads()
    set_num_threads(n)
    try:
        yield get_num_threads()
    finally:
        set_num_threads(before)
