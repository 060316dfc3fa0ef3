"""The pick loops of ``step`` and ``head`` as replays of one captured CUDA graph.

A Triton launch costs tens of microseconds of Python on the host; a step of a
20k x 1024 pool takes a few microseconds on an H200. So one launch a pick
leaves the GPU waiting on the host. The kernels therefore read their ring slot
as ``base[0] + t`` (``base`` a one-element int64 tensor on the device): the
launches t = 0 .. CHUNK - 1 and ``base += CHUNK`` are captured once in a
``torch.cuda.CUDAGraph``, and each replay runs CHUNK picks for one host call.
The ring-of-slots design already needs no host sync between picks, so the
replays queue back to back. The last ``count % CHUNK`` picks are plain launches.

Only on CUDA tensors; under ``TRITON_INTERPRET=1``, with fewer than
``MIN_PICKS`` picks, with ``HMINSEL_CUDA_GRAPHS=0``, or once a capture failed
on a device (the reason is kept in ``FAILED``), the same body runs as plain
launches. Tests replace ``enabled`` and ``capture`` (with ``eager``) to check
the slot arithmetic without a GPU.
"""
from __future__ import annotations

import logging
import os

import torch

from ..keys import accepted, launch_gated

CHUNK = 64  # picks a graph: replays amortise the host cost of the launches
MIN_PICKS = 4 * CHUNK  # fewer: capturing CHUNK launches costs about what it saves
MOST = 1024  # picks between two host reads of a gated loop, at most
FAILED: dict[str, str] = {}  # device -> why a capture failed there (then: plain launches)


def enabled(device) -> bool:
    """Whether pick loops on ``device`` are captured (CUDA, not switched off, no failure yet)."""
    device = torch.device(device)
    return (device.type == "cuda" and os.environ.get("HMINSEL_CUDA_GRAPHS", "1") != "0"
            and str(device) not in FAILED)


def eager(body, device):
    """A stand-in for ``capture`` that records nothing: each replay runs ``body`` again."""
    return body


def capture(body, device):
    """``body`` captured in a CUDA graph on ``device``; its replay, or None if capture failed.

    ``capture_begin``/``capture_end`` on a side stream, not ``torch.cuda.graph``:
    that one synchronises the device, runs the garbage collector and empties
    the cache on every entry, milliseconds a call. Nothing in ``body``
    allocates, so the graph's private pool stays empty.
    """
    graph = torch.cuda.CUDAGraph()
    current = torch.cuda.current_stream(device)
    side = torch.cuda.Stream(device)
    side.wait_stream(current)
    try:
        with torch.cuda.stream(side):
            graph.capture_begin(capture_error_mode="thread_local")  # other threads may use CUDA
            try:
                body()
            finally:
                graph.capture_end()
    except Exception as exc:  # an old driver, a kernel that cannot be captured, a capture mode clash
        FAILED[str(torch.device(device))] = why = f"{type(exc).__name__}: {exc}"[:300]
        logging.getLogger("hminsel").warning(
            "hminsel: CUDA graph capture failed on %s, pick loops launch one kernel a pick from "
            "now on (slower, same picks): %s", device, why)
        return None
    current.wait_stream(side)
    return graph.replay


def _record(launch, base, device):
    """The replay of CHUNK launches ``launch(t)`` and ``base += CHUNK``, or None if capture failed."""
    def body():
        for t in range(CHUNK):
            launch(t)
        base.add_(CHUNK)
    return capture(body, device)


def run(launch, base, device, count: int, warm_up) -> int:
    """Run ``count`` picks ``launch(t)`` (slot ``base + t``, base 0 on entry).

    ``warm_up()`` launches the kernel once as a no-op, and ``base.add_(0)`` the
    in-place add's, so that nothing compiles or loads while the stream captures
    (drivers before CUDA 12.3 cannot load a module then). Returns how many
    picks went through graph replays.
    """
    done = 0
    if count >= MIN_PICKS and enabled(device):
        warm_up()
        base.add_(0)
        replay = _record(launch, base, device)
        if replay is not None:
            for _ in range(count // CHUNK):
                replay()
            done = count // CHUNK * CHUNK
    for t in range(count - done):  # base == done on the device now
        launch(t)
    return done


def run_gated(launch, base, ring, budget: int, ids, taukey: int, device, warm_up) -> int:
    """``keys.launch_gated`` through graph replays: the head loop stops when its gate closes.

    Between host reads of the ring the replays double from 1 to ``MOST // CHUNK``
    (64 to 1024 picks), so a closed gate wastes at most that many no-op
    launches, as ``launch_gated`` does; the picks left after the last full
    replay go through ``launch_gated`` itself. Returns the picks replayed.
    """
    done = 0
    if budget >= MIN_PICKS and enabled(device):
        warm_up()
        base.add_(0)  # the in-place add's kernel too (see run)
        replay = _record(launch, base, device)
        per_check = 1
        while replay is not None and budget - done >= CHUNK:
            n = min(per_check, (budget - done) // CHUNK)
            for _ in range(n):
                replay()
            done += n * CHUNK
            if accepted(ring[done:done + 1].cpu().numpy(), ids, taukey, 1) == 0:
                return done  # the gate closed: the next candidate is not provably global
            per_check = min(2 * per_check, MOST // CHUNK)
    if done < budget:
        launch_gated(launch, ring[done:], budget - done, ids, taukey)
    return done
