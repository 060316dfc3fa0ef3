"""Progress of long calls: a dependency-free bar on stderr, and what the drivers report to it.

The drivers talk to a ``Reporter``: ``update(done)`` as units complete (picks,
rows) and ``passing(fraction)`` inside a long pass that completes none (the
lazy refresh). A user's ``progress=callable`` gets ``(done, total)`` whenever
``done`` changes; the bar also gets a note saying what runs now (and
``hmin``'s share of its work).
"""
from __future__ import annotations

import collections
import sys
import time

import numpy as np


class Bar:
    """``bar(done, total, work=None, note="")``: draws at most ~10 times a second, then a newline.

    ``work`` (default ``done / total``) is the fraction of the whole job done.
    The ETA is the work left over the recent rate (work done in the last
    quarter of the run so far, at least ``WINDOW`` seconds), shown only while
    that rate is steady: within ``STEADY`` times the rate of the window before
    it (a pace that changes is no guide to the time left; the lazy FPS's
    reporter turns the ETA off altogether, see ``Reporter``). Nothing is drawn
    during the first ``delay`` seconds: calls that end sooner print nothing at
    all. The ETA shows ``?`` too until ``SETTLE_WORK`` of the work is done or
    ``SETTLE_SECONDS`` have passed.
    """

    WINDOW = 1.0
    STEADY = 1.5
    SETTLE_WORK, SETTLE_SECONDS = 0.05, 30.0

    def __init__(self, label: str = "select", stream=None, width: int = 30,
                 delay: float = 0.5, unit: str = ""):
        self.label, self.stream, self.width = label, stream or sys.stderr, width
        self.delay, self.unit = delay, unit
        self.t0 = time.perf_counter()
        self.samples = collections.deque([(self.t0, 0.0)])  # (time, work) over two windows
        self.last = 0.0
        self.drawn = self.closed = False

    def __call__(self, done: int, total: int, work=None, note: str = "",
                 estimate: bool = True) -> None:
        """``estimate=False``: no ETA (``?``), the caller knows its pace is no guide."""
        if self.closed:
            return
        now = time.perf_counter()
        elapsed = now - self.t0
        finished = done >= total
        frac = min(1.0, done / total) if total else 1.0
        work = frac if work is None else min(1.0, max(0.0, work))
        rate = self._rate(now, work, elapsed)
        if finished and not self.drawn and elapsed < self.delay:
            return
        if not finished and (elapsed < self.delay or now - self.last < 0.1):
            return
        self.last, self.drawn = now, True
        fill = int(self.width * frac)
        settled = work >= self.SETTLE_WORK or elapsed >= self.SETTLE_SECONDS
        eta = "" if finished else (f" eta {(1 - work) / rate:6.1f}s"
                                   if rate > 0 and settled and estimate else " eta     ?")
        note = f"  {note}" if note and not finished else ""
        count = f"{done}%" if self.unit == "%" else f"{done}/{total}{self.unit}"
        self.stream.write(f"\r{self.label} [{'#' * fill}{'.' * (self.width - fill)}] "
                          f"{count} {elapsed:6.1f}s{eta}{note}\033[K")
        if finished:
            self.stream.write("\n")
            self.closed = True
        self.stream.flush()

    def _rate(self, now: float, work: float, elapsed: float) -> float:
        """Work per second over the last window, or 0.0 (no ETA) when it is not within
        ``STEADY`` times the rate of the window before it (samples kept for two windows)."""
        window = max(self.WINDOW, 0.25 * elapsed)
        self.samples.append((now, work))
        while len(self.samples) > 2 and now - self.samples[1][0] >= 2 * window:
            self.samples.popleft()
        if now <= self.samples[0][0]:
            return 0.0
        w_mid = self._work_at(now - window)
        recent = (work - w_mid) / window
        t_old, w_old = self.samples[0]
        before = (w_mid - w_old) / max(now - window - t_old, 1e-9)
        if now - t_old < 1.5 * window:  # too short a history for two windows: the one rate
            return (work - w_old) / (now - t_old)
        steady = before > 0 and recent > 0 and 1 / self.STEADY <= recent / before <= self.STEADY
        return recent if steady else 0.0

    def _work_at(self, t: float) -> float:
        """The work done at time ``t``, interpolated between the samples around it."""
        t0, w0 = self.samples[0]
        for t1, w1 in self.samples:
            if t1 >= t:
                return w1 if t1 <= t0 else w0 + (w1 - w0) * (t - t0) / (t1 - t0)
            t0, w0 = t1, w1
        return w0


class Reporter:
    """One call's progress, as the drivers report it (see the module docstring).

    ``pending``: of the ``done`` picks, how many a lazy round's head accepted
    before its refresh. A call that has run lazy rounds gets no ETA on the bar:
    their pace changes by orders of magnitude (a few picks a round while the
    head warms up, passes that complete none, then thousands a round), so no
    rate of the past told the time left: a 300k x 384 run with 7.6 s left was
    shown 104 s, a 2M x 384 run with 491 s left 68 million.
    """

    def __init__(self, sink, total: int):
        self.sink, self.total = sink, total
        self.done = 0
        self.note, self.sent = "", None
        self.chunks = {}  # chunk sizes the drivers keep between calls (algorithms.chunked)
        self.rounds = False  # lazy rounds seen: no ETA

    def update(self, done: int, pending: int = 0, note: str = "", work=None) -> None:
        """``done`` units complete; ``work`` overrides the work estimate (a fraction)."""
        self.rounds = self.rounds or bool(pending)
        self.done, self.note = done, note
        self._send(work)

    def passing(self, fraction: float, note: str = "refresh") -> None:
        """The current pass (which completes no unit) is ``fraction`` done; told on to a sink
        that takes it (``Tally.part``'s: a part's pass, shown on the whole call's bar)."""
        self.note = f"{note} {fraction:.0%}"
        if isinstance(self.sink, _Part):
            self.sink.passing(fraction, note)
        self._send(None)

    def finish(self, again: bool = False) -> None:
        """The end: ``done = total``; ``again`` tells a callable even a ``done`` it heard
        (a total that shrank to the picks made: ``select``'s ``radius``)."""
        if again:
            self.sent = None
        self.update(self.total)

    def _send(self, work) -> None:
        if isinstance(self.sink, Bar):
            self.sink(self.done, self.total, work=work, note=self.note,
                      estimate=not self.rounds)
        elif self.done != self.sent:
            self.sent = self.done
            self.sink(self.done, self.total)


class Tally:
    """Progress over many selections (``select_batched``'s problems): their picks, summed.

    ``add(n)`` after a part that made ``n`` picks; ``part(held)`` a progress callable for
    one ``select`` continuing from ``held`` picks already counted (its init rows), which
    counts on from the picks before it. ``report``: a ``Reporter``, or None (no progress);
    ``shrinks``: the total is a cap that the picks made may fall short of (a radius).
    """

    def __init__(self, report, shrinks: bool = False):
        self.report, self.done, self.shrinks = report, 0, shrinks

    def add(self, made: int) -> None:
        self.done += int(made)
        self._send(self.done)

    def part(self, held: int = 0):
        if not self.report:
            return None
        return _Part(self, self.done - held)

    def _send(self, done: int) -> None:
        """A select may count picks past its radius's cut, then fewer: the count never goes
        back, and with a total that shrinks stays short of the end until ``finish``."""
        if self.report:
            report = self.report
            end = max(report.total - 1, 0) if self.shrinks else report.total
            report.update(min(max(report.done, done), end))

    def finish(self, made: int) -> None:
        """The end: the total shrinks to the picks made (a radius) and is reported done."""
        if self.report:
            shrunk = made < self.report.total
            self.report.total = made
            self.report.finish(again=shrunk)


class _Part:
    """One ``select``'s progress within a ``Tally``: a callable(done, total) counting on from
    ``base`` picks, whose passes (``passing``) show on the whole call's bar."""

    def __init__(self, tally: Tally, base: int):
        self.tally, self.base = tally, base

    def __call__(self, done: int, total: int) -> None:
        self.tally._send(self.base + done)

    def passing(self, fraction: float, note: str) -> None:
        self.tally.report.passing(fraction, note)


def make(progress, label: str = "select"):
    """A callback ``(done, total)`` from ``progress`` (bool or callable), or None.

    ``True`` draws a bar only when stderr is a terminal, so logs stay clean.
    """
    if callable(progress):
        return progress
    return Bar(label) if progress and sys.stderr.isatty() else None


def check(progress):
    """``progress`` itself when it is a bool, None or a callable; else a TypeError (before any
    work: a call would otherwise read x first)."""
    if not (callable(progress) or progress is None or isinstance(progress, (bool, np.bool_))):
        raise TypeError(f"progress must be True, False or a callable(done, total); got "
                        f"{progress!r}")
    return progress


def reporter(progress, total: int, label: str = "select", unit: str = ""):
    """A ``Reporter`` for ``progress`` (bool, a callable(done, total) or a Bar), or None.

    ``True`` draws a bar only when stderr is a terminal, so logs stay clean.
    """
    if callable(check(progress)):
        return Reporter(progress, total)
    if progress and sys.stderr.isatty():
        return Reporter(Bar(label, unit=unit), total)
    return None
