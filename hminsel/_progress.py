"""A dependency-free progress bar on stderr for long selections."""
from __future__ import annotations

import sys
import time


class Bar:
    """Call ``bar(done, total)``; draws at most ~10 times a second, ends with a newline."""

    def __init__(self, label: str = "select", stream=None, width: int = 30):
        self.label, self.stream, self.width = label, stream or sys.stderr, width
        self.t0 = time.perf_counter()
        self.last = 0.0

    def __call__(self, done: int, total: int) -> None:
        now = time.perf_counter()
        if done < total and now - self.last < 0.1:
            return
        self.last = now
        frac = done / total if total else 1.0
        fill = int(self.width * frac)
        elapsed = now - self.t0
        eta = elapsed * (1 - frac) / frac if frac > 0 else float("nan")
        self.stream.write(f"\r{self.label} [{'#' * fill}{'.' * (self.width - fill)}] "
                          f"{done}/{total} {elapsed:6.1f}s eta {eta:6.1f}s")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()


def make(progress, label: str = "select"):
    """A callback ``(done, total)`` from ``progress`` (bool or callable), or None.

    ``True`` draws a bar only when stderr is a terminal, so logs stay clean.
    """
    if callable(progress):
        return progress
    return Bar(label) if progress and sys.stderr.isatty() else None
