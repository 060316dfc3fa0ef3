"""Busy background processes for the contention benchmark: local, bounded, always reaped.

``busy(n, seconds)`` starts ``n`` child processes that each keep one core
busy (a pure-Python loop, or small single-threaded NumPy products), each
ending by itself after ``seconds`` even if this process dies, and kills them
when the block ends. Nothing leaves the machine.
"""
from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import time

SPIN = {
    "python": "import time\nend = time.time() + {s}\nwhile time.time() < end:\n    sum(range(10000))\n",
    "numpy": ("import time, numpy as np\na = np.ones((64, 64))\nend = time.time() + {s}\n"
              "while time.time() < end:\n    a = (a @ a) * 1e-3 + 1.0\n"),
}


@contextlib.contextmanager
def busy(n: int, seconds: float = 600.0, kind: str = "python"):
    """``n`` busy processes for at most ``seconds``; yields their pids."""
    if kind not in SPIN:
        raise ValueError(f"kind must be one of {sorted(SPIN)}; got {kind!r}")
    env = dict(os.environ, OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    procs = [subprocess.Popen([sys.executable, "-c", SPIN[kind].format(s=float(seconds))], env=env,
                              stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL) for _ in range(n)]
    try:
        time.sleep(0.3 if n else 0)  # let them start (and numpy import) before timing
        yield [p.pid for p in procs]
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


def running(pids) -> int:
    """How many of ``pids`` are still alive (a check that the load lasted the whole timing)."""
    alive = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as fh:
                alive += fh.read().split()[2] not in ("Z", "X")
        except OSError:
            pass
    return alive
