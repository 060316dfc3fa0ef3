"""Progress of long calls: a dependency-free bar on stderr, and what the drivers report to it.

The drivers talk to a ``Reporter``: ``update(done)`` as units complete (picks,
rows) and ``passing(fraction)`` inside a long pass that completes none (the
lazy refresh). A user's ``progress=callable`` gets ``(done, total)`` whenever
``done`` changes; the bar also gets a work estimate for its ETA and a note
saying what runs now.
"""
from __future__ import annotations

import collections
import sys
import time

import numpy as np

# ETA model of the lazy FPS: a pick costs some time in the head loop that
# accepts it and some in the refresh pass that folds it into every row. A pick
# the head accepted counts as done by the head's share of the last rounds'
# time (HEAD_SHARE before the first round ends) until its refresh ends.
HEAD_SHARE = 0.5
SHARE_MEMORY = 0.5  # weight of the newest round in the head-share average


class Bar:
    """``bar(done, total, work=None, note="")``: draws at most ~10 times a second, then a newline.

    ``work`` (default ``done / total``) is the fraction of the whole job done.
    The ETA is the work left over the recent rate (work done in the last
    quarter of the run so far, at least ``WINDOW`` seconds), so it follows a
    lazy selection as its rounds speed up, and grows while work stands still.
    Nothing is drawn during the first ``delay`` seconds: calls that end sooner
    print nothing at all. The ETA shows ``?`` until ``SETTLE_WORK`` of the work is
    done or ``SETTLE_SECONDS`` have passed: the lazy FPS's first rounds accept a few
    picks each, and their rate put a 200k x 384 run of 16 s at 340 s.
    """

    WINDOW = 1.0
    SETTLE_WORK, SETTLE_SECONDS = 0.05, 30.0

    def __init__(self, label: str = "select", stream=None, width: int = 30,
                 delay: float = 0.5, unit: str = ""):
        self.label, self.stream, self.width = label, stream or sys.stderr, width
        self.delay, self.unit = delay, unit
        self.t0 = time.perf_counter()
        self.samples = collections.deque([(self.t0, 0.0)])  # (time, work) over the window
        self.last = 0.0
        self.drawn = self.closed = False

    def __call__(self, done: int, total: int, work=None, note: str = "") -> None:
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
        eta = "" if finished else (f" eta {(1 - work) / rate:6.1f}s" if rate > 0 and settled
                                   else " eta     ?")
        note = f"  {note}" if note and not finished else ""
        count = f"{done}%" if self.unit == "%" else f"{done}/{total}{self.unit}"
        self.stream.write(f"\r{self.label} [{'#' * fill}{'.' * (self.width - fill)}] "
                          f"{count} {elapsed:6.1f}s{eta}{note}\033[K")
        if finished:
            self.stream.write("\n")
            self.closed = True
        self.stream.flush()

    def _rate(self, now: float, work: float, elapsed: float) -> float:
        """Work per second since the oldest sample of the window (kept one older than it)."""
        window = max(self.WINDOW, 0.25 * elapsed)
        self.samples.append((now, work))
        while len(self.samples) > 2 and now - self.samples[1][0] >= window:
            self.samples.popleft()
        t_then, w_then = self.samples[0]
        return (work - w_then) / (now - t_then) if now > t_then else 0.0


class Reporter:
    """One call's progress, as the drivers report it (see the module docstring).

    ``pending``: of the ``done`` picks, how many the current round's refresh
    has not folded in yet; they count ``head_share`` done until it runs, the
    share of the recent rounds' time spent before their refresh.
    """

    def __init__(self, sink, total: int):
        self.sink, self.total = sink, total
        self.done = self.pending = 0
        self.fraction, self.note, self.sent = 0.0, "", None
        self.chunks = {}  # chunk sizes the drivers keep between calls (algorithms.chunked)
        self.head_share = HEAD_SHARE
        self.t_round, self.t_pass = time.perf_counter(), None

    def update(self, done: int, pending: int = 0, note: str = "", work=None) -> None:
        """``done`` units complete; ``work`` overrides the work estimate (a fraction)."""
        now = time.perf_counter()
        if self.pending and not pending:  # a round ended: learn its head's share of the time
            if self.t_pass is not None and now > self.t_round:
                share = (self.t_pass - self.t_round) / (now - self.t_round)
                self.head_share += SHARE_MEMORY * (share - self.head_share)
        if pending:
            self.t_pass = now  # the head's latest report: the refresh starts after it
        else:
            self.t_round, self.t_pass = now, None
        self.done, self.pending, self.fraction, self.note = done, pending, 0.0, note
        self._send(work)

    def passing(self, fraction: float, note: str = "refresh") -> None:
        """The current pass (which completes no unit) is ``fraction`` done; told on to a sink
        that takes it (``Tally.part``'s: a part's pass, shown on the whole call's bar)."""
        self.fraction, self.note = fraction, f"{note} {fraction:.0%}"
        if isinstance(self.sink, _Part):
            self.sink.passing(fraction, note)
        self._send(None)

    def finish(self, again: bool = False) -> None:
        """The end: ``done = total``; ``again`` tells a callable even a ``done`` it heard
        (a total that shrank to the picks made: ``select``'s ``radius``)."""
        if again:
            self.sent = None
        self.update(self.total)

    def work(self) -> float:
        if not self.total:
            return 1.0
        lag = self.pending * (1 - self.head_share) * (1 - self.fraction)
        return max(0.0, (self.done - lag) / self.total)

    def _send(self, work) -> None:
        if isinstance(self.sink, Bar):
            self.sink(self.done, self.total, work=self.work() if work is None else work,
                      note=self.note)
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
