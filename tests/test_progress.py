"""Progress inside lazy rounds, in hmin and nearest; the bar's ETA; chunked calls change nothing."""
from __future__ import annotations

import io
import os
import signal
import threading
import time

import numpy as np
import pytest

import hminsel
from conftest import clustered
from hminsel import _progress
from hminsel.algorithms import chunked


def FIXED(report, kind, size, seconds, cap):
    return size


class Recorder(_progress.Bar):
    """A bar that records what it is told instead of drawing."""

    def __init__(self):
        super().__init__("test", stream=io.StringIO(), delay=0.0)
        self.calls = []

    def __call__(self, done, total, work=None, note="", estimate=True):
        self.calls.append((done, total, estimate, note))


@pytest.mark.parametrize("algorithm", ["lazy", "streaming"])
def test_chunked_progress_gives_the_same_selection(backend, algorithm, monkeypatch):
    monkeypatch.setattr(chunked, "_adapt", FIXED)  # chunks keep their first size
    monkeypatch.setattr(chunked, "ROW_CHUNK", 97)
    x = clustered(1500, 12, seed=4)
    want = hminsel.select(x, 300, backend=backend, algorithm=algorithm)
    seen = []
    got = hminsel.select(x, 300, backend=backend, algorithm=algorithm,
                         progress=lambda done, total: seen.append((done, total)))
    np.testing.assert_array_equal(got.indices, want.indices)
    np.testing.assert_array_equal(got.radii, want.radii)
    assert got.stats.picks_per_round == want.stats.picks_per_round
    done = [d for d, _ in seen]
    assert done == sorted(done) and seen[-1] == (300, 300) and {t for _, t in seen} == {300}
    if algorithm == "lazy":  # updates inside rounds, not only at their ends
        ends = set(np.cumsum(got.stats.picks_per_round) + 1)
        assert len(set(done) - ends) >= 10


def test_row_chunks_start_aligned(monkeypatch):
    """Row chunks start at multiples of ALIGN_ROWS, however the sizes adapt: slices of an
    aligned array stay aligned (Triton specialises on a pointer's alignment)."""
    monkeypatch.setattr(chunked, "_adapt", lambda report, kind, size, seconds, cap: max(1, size // 3))
    monkeypatch.setattr(chunked, "ROW_CHUNK", 97)

    class Report:
        chunks: dict = {}

        def passing(self, fraction, note):
            pass
    seen = []
    assert chunked.rows(1000, lambda s: seen.append(s) or s.stop - s.start, Report()) == 1000
    assert [s.start for s in seen] == [0] + [s.stop for s in seen[:-1]] and seen[-1].stop == 1000
    assert all(s.start % chunked.ALIGN_ROWS == 0 for s in seen) and len(seen) > 5


def test_bar_hears_head_and_refresh_and_picks_only_grow(monkeypatch):
    monkeypatch.setattr(chunked, "_adapt", FIXED)
    monkeypatch.setattr(chunked, "ROW_CHUNK", 500)
    x = clustered(4000, 16, seed=2)
    bar = Recorder()
    sel = hminsel.select(x, 800, backend="cpu" if hminsel.backends.why_not("cpu") is None
                         else "numpy", algorithm="lazy", progress=bar)
    assert sel.stats.rounds >= 2
    notes = {note.split()[0] for _, _, _, note in bar.calls if note}
    assert {"head", "refresh"} <= notes
    assert any(note.startswith("refresh") and "%" in note for *_, note in bar.calls)
    done = [d for d, *_ in bar.calls]
    assert done == sorted(done) and done[-1] == 800
    assert not bar.calls[-1][2]  # lazy rounds: no ETA


class Clock:
    def __init__(self):
        self.now = 100.0

    def perf_counter(self):
        return self.now


def test_bar_eta_only_at_a_steady_rate(monkeypatch):
    clock = Clock()
    monkeypatch.setattr(_progress, "time", clock)
    out = io.StringIO()
    bar = _progress.Bar("select", stream=out, delay=0.0)

    def eta():
        return out.getvalue().rsplit("eta", 1)[1].replace("\033[K", "").split("s")[0].strip()

    for t in range(1, 11):  # 5 % a second for 10 s: 10 s left
        clock.now += 1.0
        bar(5 * t, 100, note="refresh 40%" if t == 10 else "")
    line = out.getvalue().rsplit("\r", 1)[1]
    assert "50/100" in line and "10.0s eta   10.0s" in line and "refresh 40%" in line
    clock.now += 1.0
    bar(75, 100)  # a burst: the rate of the last window is no guide
    assert eta() == "?"
    clock.now += 20.0
    bar(75, 100)  # nothing moved for 20 s
    assert eta() == "?"
    clock.now += 1.0
    bar(76, 100)  # moving again, slowly: still no steady rate
    assert eta() == "?"
    bar(100, 100)
    assert out.getvalue().endswith("\n") and out.getvalue().count("\n") == 1
    bar(100, 100)  # drawn once: a second finish adds nothing
    assert out.getvalue().count("\n") == 1


def test_lazy_rounds_get_no_eta(monkeypatch):
    """A call that has run lazy rounds (picks pending a refresh) shows ``?``: their pace
    changes by orders of magnitude; a plain count (streaming) keeps its ETA."""
    clock = Clock()
    monkeypatch.setattr(_progress, "time", clock)
    for pending, want in ((0, "eta   90.0s"), (3, "eta     ?")):
        out = io.StringIO()
        report = _progress.Reporter(_progress.Bar("select", stream=out, delay=0.0), 100)
        for t in range(1, 11):
            clock.now += 1.0
            report.update(t, pending=pending if t == 5 else 0)
        assert out.getvalue().replace("\033[K", "").endswith(want)


def test_bar_delay_and_percent_unit():
    quiet = io.StringIO()
    fast = _progress.Bar("select", stream=quiet, delay=60.0)
    fast(5, 10)
    fast(10, 10)  # finished before the delay: nothing at all
    assert quiet.getvalue() == ""
    out = io.StringIO()
    _progress.Bar("hmin", stream=out, delay=0.0, unit="%")(40, 100)
    assert "] 40% " in out.getvalue()


def test_hmin_and_nearest_report_progress(backend, monkeypatch):
    monkeypatch.setattr(chunked, "_adapt", FIXED)
    monkeypatch.setattr(chunked, "ROW_CHUNK", 320)  # a multiple of ALIGN_ROWS
    x = clustered(3000, 40, seed=8)
    seen = []
    res = hminsel.hmin(x, backend=backend, progress=lambda d, t: seen.append((d, t)))
    assert res == hminsel.hmin(x, backend=backend)
    assert seen[-1] == (100, 100) and [d for d, _ in seen] == sorted(d for d, _ in seen)
    if backend == "cpu":  # the GEMM tile loop reports as it goes
        assert len(seen) == 3 and seen[0][0] < 100
    seen = []
    dist, idx = hminsel.nearest(x, x[:100], backend=backend,
                                progress=lambda d, t: seen.append((d, t)))
    want_d, want_i = hminsel.nearest(x, x[:100], backend=backend)
    np.testing.assert_array_equal(idx, want_i)
    np.testing.assert_array_equal(dist, want_d)
    assert seen == [(min(320 * i, 3000), 3000) for i in range(1, 11)]


def test_make_and_reporter():
    assert _progress.make(False) is None and _progress.reporter(False, 10) is None
    def callback(d, t):
        calls.append((d, t))
    assert _progress.make(callback) is callback  # the plain callback, as before
    calls = []
    report = _progress.reporter(callback, 10)
    report.update(3, pending=2, note="head")
    report.passing(0.5)  # no new unit: a plain callable hears nothing
    report.update(3)
    report.finish()
    assert calls == [(3, 10), (10, 10)]


def test_chunk_sizes_adapt_and_carry_over(monkeypatch):
    report = _progress.Reporter(lambda d, t: None, 10)
    assert chunked._adapt(report, "head", 8, 0.0, 64) == 16
    assert chunked._adapt(report, "head", 64, 0.0, 64) == 64  # capped
    assert chunked._adapt(report, "head", 64, 10 * chunked.TICK, 64) == 32
    assert chunked._adapt(report, "head", 32, chunked.TICK, 64) == 32
    assert chunked._size(report, "head", 8) == 32 and chunked._size(report, "steps", 8) == 8


class Stop(Exception):
    pass


@pytest.mark.skipif(not hasattr(signal, "SIGUSR1"), reason="needs POSIX signals")
def test_a_signal_stops_a_long_streaming_run_without_a_reporter():
    """Python runs signal handlers (Ctrl-C's KeyboardInterrupt) between native calls: a
    streaming run on the host ends one about every chunked.TICK seconds, reporter or not."""
    x = np.random.default_rng(0).standard_normal((100_000, 64)).astype(np.float32)

    def stop(signum, frame):
        raise Stop
    old = signal.signal(signal.SIGUSR1, stop)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGUSR1))
    t0 = time.perf_counter()
    try:
        timer.start()
        with pytest.raises(Stop):
            hminsel.select(x, 20_000, algorithm="streaming", backend="auto")  # tens of seconds
    finally:
        timer.cancel()
        signal.signal(signal.SIGUSR1, old)
    assert time.perf_counter() - t0 < 10


def test_host_steps_without_a_reporter_end_often_and_agree(monkeypatch):
    from hminsel import backends
    be = backends.get("numpy")
    x = clustered(300, 5, seed=2)
    one = be.steps(x, be.full(x, np.inf), 0, 120)
    calls = []
    orig = type(be).steps
    monkeypatch.setattr(type(be), "steps", lambda self, *a: calls.append(a[-1]) or orig(self, *a))
    monkeypatch.setattr(chunked, "TICK", 0.0)  # every chunk is slow: they shrink to one step
    got = chunked.steps(be, x, be.full(x, np.inf), 0, 120)
    assert len(calls) > 1 and sum(calls) == 120
    assert np.array_equal(got[0], one[0]) and np.array_equal(got[1], one[1])


@pytest.mark.parametrize("how", ["kernel", "large", "warm-radius"])
def test_select_batched_reports_the_picks_of_all_problems(backend, monkeypatch, how):
    """select_batched(progress=callable): the picks made over all problems, never going back;
    the last call says all were made (with a radius, the total shrinks to them)."""
    from hminsel import _batched_host
    if how != "kernel":  # every problem runs select, which reports as it goes
        monkeypatch.setattr(_batched_host, "LARGE_WORK", 100)
    x = clustered(3000, 12, seed=6)
    ptr = [0, 500, 1000, 3000]
    kw = dict(radius=0.5, init=[2]) if how == "warm-radius" else {}
    seen = []
    res = hminsel.select_batched(x, 1.0 if kw else [50, 0, 400], ptr=ptr, backend=backend,
                                 progress=lambda done, total: seen.append((done, total)), **kw)
    done = [d for d, _ in seen]
    assert seen[-1] == (len(res.indices), len(res.indices)) and done == sorted(done)
    if how != "kernel" and backend == "cpu":
        assert len(seen) > 3  # the large problems' selects report inside
    with pytest.raises(TypeError, match="progress must be"):
        hminsel.select_batched(x, 5, ptr=ptr, progress="yes")


def test_a_part_that_counts_past_its_cut_never_sends_the_tally_back():
    """A select may count picks past its radius's cut (a chunk, or Triton's bucket calls), then
    fewer: the tally holds its count, and stays short of the end until it finishes."""
    seen = []
    tally = _progress.Tally(_progress.reporter(lambda done, total: seen.append((done, total)), 100),
                            shrinks=True)
    tally.add(10)
    hear = tally.part()
    hear(60, 90)
    hear(95, 90)  # past the end of all problems, before the cut
    hear(20, 20)  # the cut: 20 picks
    tally.add(20)
    tally.finish(30)
    assert seen == [(10, 100), (70, 100), (99, 100), (30, 30)]  # (99, 100) held at the add


def test_a_batched_call_without_a_radius_reports_its_end_once():
    """Without a radius the total is exact: the count reaches it once, not total - 1 first."""
    seen = []
    x = np.random.default_rng(0).random((100, 4), np.float32)
    hminsel.select_batched(x, 10, ptr=[0, 50, 100], progress=lambda *a: seen.append(a))
    assert seen == [(20, 20)]


def test_a_parts_passes_show_on_the_whole_calls_bar():
    """A select inside select_batched tells its refresh passes to the whole call's bar."""
    out = io.StringIO()
    tally = _progress.Tally(_progress.Reporter(_progress.Bar("select_batched", stream=out, delay=0.0), 100))
    tally.add(10)
    inner = _progress.reporter(tally.part(), 50)  # what select makes of the part it is given
    time.sleep(0.15)  # the bar draws at most every 0.1 s
    inner.passing(0.4)
    assert "10/100" in out.getvalue() and "refresh 40%" in out.getvalue()
    inner.update(5)
    assert tally.report.done == 15
