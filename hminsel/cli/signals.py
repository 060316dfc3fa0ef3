"""SIGTERM and SIGHUP end a command as Ctrl-C does: an exception where Python next runs (the
kernels hand control back about every quarter second), so temporary files are removed and
no output is left half written. Batch schedulers, ``timeout`` and torchrun stop a job with
SIGTERM; by default Python would die at once and leave them behind."""
from __future__ import annotations

import contextlib
import signal
import threading

CAUGHT = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Stopped(KeyboardInterrupt):
    """A signal that asks the process to end (``signum``); a KeyboardInterrupt, so every
    clean-up that Ctrl-C runs runs for it too."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum

    def __str__(self) -> str:
        return signal.Signals(self.signum).name


def _raise(signum, frame):
    """The first such signal stops the command cleanly (as soon as Python runs: a long read or
    collective first ends); a second one, as schedulers send, ends the process at once."""
    signal.signal(signum, signal.SIG_DFL)
    raise Stopped(signum)


def exit_status(exc: KeyboardInterrupt) -> tuple[int, str]:
    """``(status, word)`` of a command ended by ``exc``: 128 + the signal's number, as a shell
    reports a process the signal killed (130 for Ctrl-C)."""
    if isinstance(exc, Stopped):
        return 128 + exc.signum, f"terminated ({exc})"
    return 130, "interrupted"


@contextlib.contextmanager
def stop_cleanly():
    """Within: SIGTERM and SIGHUP raise ``Stopped``, unless another handler than the default
    was set (a host program's) or this is not the main thread (Python runs handlers only
    there)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    before = {}
    for signum in CAUGHT:
        if signal.getsignal(signum) is signal.SIG_DFL:
            before[signum] = signal.signal(signum, _raise)
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
