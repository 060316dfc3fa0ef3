"""Threads: results independent of the thread count, the GIL released, the core count read right."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import hminsel
from hminsel import _threads, backends

from conftest import clustered

cpu_mod = pytest.importorskip("hminsel.backends.cpu")
needs_cpu = pytest.mark.skipif(backends.why_not("cpu") is not None, reason=f"cpu: {backends.why_not('cpu')}")
# 1 thread, the cores, and more threads than cores (helpers get descheduled:
# the lead takes their chunks over)
COUNTS = [1, 2, 3, 8]


@pytest.fixture
def threads():
    """Sets the CPU backend's thread count; puts the default back afterwards."""
    yield cpu_mod.set_num_threads
    cpu_mod.set_num_threads(None)


def _runs(x, k):
    sel = hminsel.select(x, k, backend="cpu")
    stream = hminsel.select(x, k, backend="cpu", algorithm="streaming")
    h = hminsel.hmin(x[:3000], backend="cpu")
    dist, idx = hminsel.nearest(x, x[:300], backend="cpu")
    ptr = np.array([0, 1000, 1700, 4000, len(x)])
    bat = hminsel.select_batched(x, 50, ptr=ptr, backend="cpu")
    return (np.asarray(sel.indices), np.asarray(sel.radii), np.asarray(stream.indices),
            (h.value, h.i, h.j), np.asarray(dist), np.asarray(idx), np.asarray(bat.indices))


@needs_cpu
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["f32", "f64"])
def test_results_independent_of_thread_count(threads, dtype):
    x = clustered(6000, 96, dtype=dtype, seed=3)
    ref = hminsel.select(x, 400, backend="numpy", algorithm="streaming")
    first = None
    for n in COUNTS:
        threads(n)
        got = _runs(x, 400)
        np.testing.assert_array_equal(got[0], ref.indices, err_msg=f"{n} threads vs the numpy oracle")
        if first is None:
            first = got
            continue
        for a, b in zip(first, got):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b), err_msg=f"{n} threads vs 1")


@needs_cpu
def test_head_greedy_and_steps_independent_of_thread_count(threads):
    rng = np.random.default_rng(5)
    xh = rng.standard_normal((2048, 64)).astype(np.float32)
    xh[7] = xh[3]  # a duplicate: ties to the lowest id
    hidx = np.arange(2048, dtype=np.int64)[::-1].copy()
    b = backends.get("cpu")
    outs = []
    for n in COUNTS:
        threads(n)
        h = np.full(2048, np.inf, np.float32)
        pos, vals = b.head_greedy(xh, h, hidx, -np.inf, 2048, 600)
        mind = np.full(2048, np.inf, np.float32)
        picks, svals = b.steps(xh, mind, 0, 2047)
        outs.append((pos, vals, h, picks, svals, mind))
    for n, out in zip(COUNTS[1:], outs[1:]):
        for a, c in zip(outs[0], out):
            np.testing.assert_array_equal(a, c, err_msg=f"{n} threads vs 1")


@needs_cpu
def test_two_python_threads_select_at_once():
    x = clustered(20000, 128, seed=4)
    ks = [700, 900]
    seq = [np.asarray(hminsel.select(x, k, backend="cpu").indices) for k in ks]
    got = [None, None]

    def work(i):
        got[i] = np.asarray(hminsel.select(x, ks[i], backend="cpu").indices)
    ts = [threading.Thread(target=work, args=(i,)) for i in range(2)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    for a, b in zip(seq, got):
        np.testing.assert_array_equal(a, b)


@needs_cpu
def test_long_calls_release_the_gil():
    from hminsel import _cpu
    x = clustered(40000, 256, seed=6)
    done = threading.Event()

    def work():
        mind = np.full(len(x), np.inf, np.float32)
        _cpu.steps(x, mind, 0, 150)
        done.set()
    t = threading.Thread(target=work)
    t.start()
    ticks = 0
    t0 = time.perf_counter()
    while not done.is_set():  # this loop needs the GIL while the kernel runs
        ticks += 1
    t.join()
    if time.perf_counter() - t0 > 0.05:  # long enough to tell
        assert ticks > 1000, f"the main thread ran {ticks} loops in {time.perf_counter() - t0:.2f} s"


def test_cgroup_limits(tmp_path):
    proc = tmp_path / "cgroup"
    v2 = tmp_path / "v2"
    (v2 / "job").mkdir(parents=True)
    (v2 / "job" / "cpu.max").write_text("150000 100000\n")
    (v2 / "cpu.max").write_text("max 100000\n")
    proc.write_text("0::/job\n")
    assert _threads.cgroup_cpu_limit(str(v2), str(proc)) == 1.5
    v1 = tmp_path / "v1"
    (v1 / "cpu,cpuacct").mkdir(parents=True)
    (v1 / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu,cpuacct" / "cpu.cfs_period_us").write_text("100000\n")
    proc.write_text("4:cpu,cpuacct:/host/path/not/mounted\n")  # a container: the root holds it
    assert _threads.cgroup_cpu_limit(str(v1), str(proc)) == 0.5
    (v1 / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("-1\n")
    assert _threads.cgroup_cpu_limit(str(v1), str(proc)) is None
    assert 1 <= _threads.available_cores() <= (os.cpu_count() or 1)


def test_thread_count_from_env(monkeypatch):
    monkeypatch.delenv(_threads.ENV, raising=False)
    monkeypatch.setenv("OMP_NUM_THREADS", "3,2")
    assert _threads.num_threads()[0] == 3
    monkeypatch.setenv(_threads.ENV, "5")
    assert _threads.num_threads() == (5, "HMINSEL_NUM_THREADS=5")
    monkeypatch.setenv(_threads.ENV, "zero")
    with pytest.raises(ValueError, match="HMINSEL_NUM_THREADS must be a positive integer; got 'zero'"):
        _threads.num_threads()
    monkeypatch.delenv(_threads.ENV)
    for odd in ("0", "abc", "1.5"):  # OpenMP, torch and NumPy pass these over: so do we, aloud
        monkeypatch.setenv("OMP_NUM_THREADS", odd)
        with pytest.warns(RuntimeWarning, match=f"OMP_NUM_THREADS must be a positive integer; "
                                                f"got '{odd}': hminsel leaves it aside"):
            assert _threads.num_threads() == (_threads.available_cores(),
                                              "cores this process may use (affinity, cgroup quota)")


@needs_cpu
def test_public_thread_count(monkeypatch):
    """hminsel.set_num_threads / get_num_threads / num_threads: the CPU kernels' count, process-wide;
    None is the default again (from the environment at that call)."""
    monkeypatch.setenv(_threads.ENV, "3")
    try:
        assert hminsel.set_num_threads(None) == hminsel.get_num_threads() == 3
        assert hminsel.set_num_threads(2) == 2 and "2 threads" in backends.get("cpu").notes()
        with hminsel.num_threads(1) as n:
            assert n == hminsel.get_num_threads() == 1
            hminsel.select(clustered(500, 8, seed=1), 20, backend="cpu")
        assert hminsel.get_num_threads() == 2
        with pytest.raises(RuntimeError), hminsel.num_threads(5):
            raise RuntimeError
        assert hminsel.get_num_threads() == 2  # put back after an error too
        for bad, error in ((0, ValueError), (2**40, ValueError), (1.5, TypeError), (True, TypeError),
                           ("2", TypeError)):
            with pytest.raises(error, match="an int >= 1.*, or None for the default"):
                hminsel.set_num_threads(bad)
    finally:
        monkeypatch.delenv(_threads.ENV)
        hminsel.set_num_threads(None)


def test_blas_guard_restores():
    found = _threads._find_blas()
    if isinstance(found, str):
        pytest.skip(found)
    before = found[1]()
    with _threads.blas_single_thread():
        with _threads.blas_single_thread():
            assert found[1]() == 1
        assert found[1]() == 1
    assert found[1]() == before


class _Interrupting:
    """A BLAS thread setter whose ``n``-th call (counting from 1) sets, then raises as a Ctrl-C
    landing just after it would."""

    def __init__(self, n):
        self.threads, self.calls, self.n = 8, 0, n

    def set(self, threads):
        self.threads, self.calls = threads, self.calls + 1
        if self.calls == self.n:
            raise KeyboardInterrupt

    def get(self):
        return self.threads


@pytest.mark.parametrize("n", [1, 2])  # on the way in (after 1 is set), on the way out
def test_blas_guard_restores_after_an_interrupt_anywhere(monkeypatch, n):
    blas = _Interrupting(n)
    monkeypatch.setattr(_threads, "_blas", (blas.set, blas.get, "fake"))
    monkeypatch.setattr(_threads, "_holders", set())
    monkeypatch.setattr(_threads, "_ours", False)
    with pytest.raises(KeyboardInterrupt):
        with _threads.blas_single_thread():
            assert blas.threads == 1
    with _threads.blas_single_thread():  # the next call restores what the program had
        assert blas.threads == 1
    assert (blas.threads, _threads._holders, _threads._ours) == (8, set(), False)


def test_blas_is_numpys_own():
    """Another package's OpenBLAS (faiss-cpu ships one) mapped first: the guard still holds NumPy's."""
    site = os.path.join(os.sep, "env", "site-packages")
    numpy_dir = os.path.join(site, "numpy")
    mine = os.path.join(site, "numpy.libs", "libscipy_openblas64_-32a4b2a6.so")
    theirs = os.path.join(site, "faiss_cpu.libs", "libopenblaso-r0-d77a1985.3.15.so")
    assert _threads.numpy_first([theirs, mine, theirs], numpy_dir) == [mine, theirs]
    inside = os.path.join(numpy_dir, ".libs", "libopenblas.so")
    assert _threads.numpy_first([theirs, inside], numpy_dir)[0] == inside
    system = os.path.join(os.sep, "usr", "lib", "libopenblas.so.0")
    assert _threads.numpy_first([system, "/x/libscipy_openblas.so"], numpy_dir)[0] == "/x/libscipy_openblas.so"
    pytest.importorskip("faiss", reason="faiss-cpu is not installed")
    code = ("import faiss, numpy, os; from hminsel import _threads; f = _threads._find_blas(); "
            "print(f if isinstance(f, str) else os.path.relpath(f[2], os.path.dirname(os.path.dirname(numpy.__file__)))); "
            "numpy.ones((300, 300)) @ numpy.ones((300, 300))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    line = out.stdout.strip()
    if line.startswith("no OpenBLAS"):
        pytest.skip(line)
    assert line.startswith("numpy"), f"the guard holds {line}, not NumPy's BLAS"


def _child_nearest(x, centers, queue):
    queue.put(np.asarray(hminsel.nearest(x, centers, backend="cpu")[1]))


@needs_cpu
def test_forked_child_runs_after_the_parent_used_threads():
    import multiprocessing
    x = clustered(8000, 64, seed=7)
    centers = x[::40].copy()
    want = np.asarray(hminsel.nearest(x, centers, backend="cpu")[1])  # the parent's pools exist now
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    proc = ctx.Process(target=_child_nearest, args=(x, centers, queue))
    proc.start()
    got = queue.get(timeout=120)  # a deadlocked child (a pool without threads) would hang here
    proc.join(30)
    np.testing.assert_array_equal(got, want)


def test_every_host_call_holds_blas_to_one_thread(monkeypatch):
    """select, hmin, nearest and select_batched on host arrays run inside the BLAS guard
    (OpenBLAS's own threads would stack on hminsel's and spin on the cores after a call)."""
    import contextlib
    depth, seen = [0], []

    @contextlib.contextmanager
    def guard():
        depth[0] += 1
        try:
            yield
        finally:
            depth[0] -= 1
    real = type(backends.get("numpy")).block_min

    def spy(*args, **kwargs):  # the GEMM-form work of every entry point
        seen.append(depth[0])
        return real(*args, **kwargs)
    monkeypatch.setattr(_threads, "blas_single_thread", guard)
    monkeypatch.setattr(type(backends.get("numpy")), "block_min", spy)
    x = clustered(400, 16, seed=3)
    hminsel.select(x, 40, backend="numpy", algorithm="lazy")
    hminsel.hmin(x, backend="numpy")
    hminsel.nearest(x, x[:7], backend="numpy")
    hminsel.select_batched(x, 5, ptr=[0, 200, 400], backend="numpy")
    assert seen and min(seen) >= 1, f"block_min ran outside the guard: depths {sorted(set(seen))}"
    assert depth[0] == 0
