"""How many threads hminsel's CPU kernels use, and how they share the cores with BLAS.

Shared helpers for every CPU kernel module (no hminsel imports: any floor may use it).

- ``available_cores()``: the cores this process may actually run on: its CPU
  affinity (``sched_getaffinity``) capped by the cgroup CPU quota (v2
  ``cpu.max``, v1 ``cpu.cfs_quota_us / cpu.cfs_period_us``), rounded up.
- ``num_threads()``: ``(n, why)``: ``HMINSEL_NUM_THREADS``, else
  ``OMP_NUM_THREADS`` (its first entry), else ``available_cores()``.
- ``openmp_env()``: a context manager to wrap the first import of a compiled
  OpenMP module: unless the user set ``OMP_WAIT_POLICY``, ``GOMP_SPINCOUNT``
  or ``KMP_BLOCKTIME``, OpenMP threads wait passively (they sleep when a
  region ends instead of spinning for up to a few ms on cores that other
  processes want). The runtime reads these variables once, when it loads, so
  this only works before the first OpenMP library is loaded; the environment is
  put back afterwards, so child processes do not inherit it.
- ``blas_single_thread()``: a context manager that holds NumPy's OpenBLAS to
  one thread while hminsel runs its own threads (the CPU GEMM path runs one
  single-threaded GEMM per tile on each of its threads instead of stacking
  its threads on BLAS's). OpenBLAS's thread setting is process-wide (its
  ``_local`` setter is too, in pthreads builds), so it is reference counted
  over concurrent hminsel calls and restored when the last one leaves; BLAS
  calls that other threads of the program make meanwhile run on one thread.
  Without an OpenBLAS that exports its setter it does nothing
  (``blas_info()`` says so).
"""
from __future__ import annotations

import contextlib
import ctypes
import math
import os
import threading

ENV = "HMINSEL_NUM_THREADS"
_PASSIVE = {"OMP_WAIT_POLICY": "PASSIVE", "KMP_BLOCKTIME": "0"}
_USER_WAIT = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME")


def _read(path: str) -> str | None:
    try:
        with open(path) as fh:
            return fh.read().strip()
    except OSError:
        return None


def _cgroup_dirs(root: str, proc_cgroup: str, controller: str | None) -> list[str]:
    """This process's cgroup folder and its ancestors under ``root`` (v2: controller None)."""
    rel = None
    for line in (_read(proc_cgroup) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if (controller is None and parts[0] == "0" and parts[1] == "") or \
                (controller is not None and controller in parts[1].split(",")):
            rel = parts[2]
            break
    if rel is None:
        return []
    dirs, path = [], rel.strip("/")
    while True:  # inside a container the host path may not exist: the root then holds the limit
        full = os.path.join(root, path) if path else root
        if os.path.isdir(full):
            dirs.append(full)
        if not path:
            return dirs
        path = os.path.dirname(path)


def cgroup_cpu_limit(root: str = "/sys/fs/cgroup", proc_cgroup: str = "/proc/self/cgroup") -> float | None:
    """The CPU quota in cores (quota / period, the tightest over the cgroup path), or None."""
    limits = []
    for d in _cgroup_dirs(root, proc_cgroup, None):  # cgroup v2: "max 100000" or "150000 100000"
        parts = (_read(os.path.join(d, "cpu.max")) or "").split()
        if len(parts) == 2 and parts[0] != "max":
            limits.append(int(parts[0]) / int(parts[1]))
    for sub in ("cpu", "cpu,cpuacct", "cpuacct,cpu"):  # cgroup v1
        for d in _cgroup_dirs(os.path.join(root, sub), proc_cgroup, "cpu"):
            quota, period = _read(os.path.join(d, "cpu.cfs_quota_us")), _read(os.path.join(d, "cpu.cfs_period_us"))
            if quota and period and int(quota) > 0 and int(period) > 0:
                limits.append(int(quota) / int(period))
    return min(limits) if limits else None


def available_cores() -> int:
    """Cores this process may use: affinity, capped by the cgroup quota (at least 1)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        cores = os.cpu_count() or 1
    try:
        quota = cgroup_cpu_limit()
    except (OSError, ValueError):
        quota = None
    if quota is not None:
        cores = min(cores, max(1, math.ceil(quota)))
    return max(1, cores)


def _parse(name: str) -> int | None:
    """The variable's thread count (its first entry), or None when unset. A value that is no
    positive integer raises for HMINSEL_NUM_THREADS (ours) and, for OMP_NUM_THREADS, which
    OpenMP runtimes, torch and NumPy pass over (a job script's ``$((CPUS / 4))`` can give 0),
    warns and counts as unset."""
    raw = os.environ.get(name, "").split(",")[0].strip()
    if not raw:
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if value >= 1:
        return value
    message = f"{name} must be a positive integer; got {os.environ[name]!r}"
    if name == ENV:
        raise ValueError(message)
    import warnings
    warnings.warn(f"{message}: hminsel leaves it aside (set {ENV} to choose its threads)",
                  RuntimeWarning, stacklevel=2)
    return None


def num_threads() -> tuple[int, str]:
    """``(threads, why)``: HMINSEL_NUM_THREADS, else OMP_NUM_THREADS, else available_cores()."""
    for name in (ENV, "OMP_NUM_THREADS"):
        value = _parse(name)
        if value is not None:
            return value, f"{name}={value}"
    return available_cores(), "cores this process may use (affinity, cgroup quota)"


@contextlib.contextmanager
def openmp_env():
    """Passive OpenMP waiting for a runtime loaded inside the block (unless the user chose)."""
    if any(name in os.environ for name in _USER_WAIT):
        yield
        return
    os.environ.update(_PASSIVE)
    try:
        yield
    finally:
        for name in _PASSIVE:
            os.environ.pop(name, None)


# -- BLAS ------------------------------------------------------------------
_SETTERS = ("scipy_openblas_set_num_threads64_", "openblas_set_num_threads64_", "openblas_set_num_threads")
_GETTERS = ("scipy_openblas_get_num_threads64_", "openblas_get_num_threads64_", "openblas_get_num_threads")
_blas = None  # (set, get, path), or a str saying why not
_lock = threading.Lock()
_holders = set()  # a token a call inside blas_single_thread: added and discarded whole
_saved = None
_ours = False  # BLAS may hold our 1 (set before it is, cleared once the setting is restored)


def numpy_first(paths, numpy_dir: str) -> list:
    """OpenBLAS library paths, NumPy's own first: under its package (or its wheel's ``.libs``), then scipy-openblas.

    Other packages ship their own OpenBLAS (faiss-cpu does): holding one of
    those to one thread would leave NumPy's BLAS threads stacked on ours.
    """
    numpy_dir = os.path.normpath(numpy_dir)
    own = (numpy_dir + os.sep, numpy_dir + ".libs" + os.sep)

    def rank(path):
        return (0 if os.path.normpath(path).startswith(own) else 1 if "scipy_openblas" in path else 2, path)
    return sorted(set(paths), key=rank)


def _find_blas():
    global _blas
    if _blas is None:
        import numpy  # loads NumPy's BLAS so that it shows in the maps
        paths = []
        try:
            with open("/proc/self/maps") as fh:
                paths = [line.split()[-1] for line in fh if "openblas" in line.lower() and "/" in line]
        except OSError:
            pass
        _blas = "no OpenBLAS library loaded (or /proc/self/maps unreadable): BLAS threads left as they are"
        for path in numpy_first(paths, os.path.dirname(numpy.__file__)):
            try:
                lib = ctypes.CDLL(path)
            except OSError:
                continue
            setter = next((getattr(lib, s) for s in _SETTERS if hasattr(lib, s)), None)
            getter = next((getattr(lib, s) for s in _GETTERS if hasattr(lib, s)), None)
            if setter is not None and getter is not None:
                setter.argtypes, setter.restype, getter.restype = [ctypes.c_int], None, ctypes.c_int
                _blas = (setter, getter, path)
                break
    return _blas


def blas_info() -> str:
    """One line: which BLAS ``blas_single_thread`` controls, or why none."""
    found = _find_blas()
    if isinstance(found, str):
        return found
    return f"OpenBLAS {os.path.basename(found[2])}: {found[1]()} threads outside hminsel's GEMM path, 1 inside"


@contextlib.contextmanager
def blas_single_thread():
    """Hold OpenBLAS to one thread inside the block (reference counted over threads)."""
    global _saved, _ours
    found = _find_blas()
    if isinstance(found, str):
        yield
        return
    setter, getter, _ = found
    token = object()
    try:  # a Ctrl-C may land between any two steps here: the flags say what to undo
        with _lock:
            if not _ours:  # BLAS holds the program's setting: the one to restore
                _saved = getter()
                _ours = True
            setter(1)
            _holders.add(token)
        yield
    finally:
        with _lock:
            _holders.discard(token)
            if not _holders and _ours:
                setter(_saved)
                _ours = False


# -- a pool of Python threads for work split in tiles -----------------------
_pools = {}  # thread count -> its pool: a count set again (num_threads) reuses its threads


def map_tiles(fn, items, threads: int) -> list:
    """``[fn(item) for item in items]`` on up to ``threads`` threads, items claimed in turn.

    ``fn`` must release the GIL for its heavy parts (NumPy's matmul and
    hminsel's kernels do). A thread the OS deschedules holds one item while the
    others take the rest, so the only wait is for the last items. Results come
    back in item order.
    """
    items = list(items)
    inside = threading.current_thread().name.startswith("hminsel")  # a tile's own tiles: no deadlock
    if threads <= 1 or len(items) <= 1 or inside:
        return [fn(item) for item in items]
    from concurrent.futures import ThreadPoolExecutor
    import numpy as np
    with _lock:
        pool = _pools.get(threads)
        if pool is None:
            pool = _pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix="hminsel")
    state = np.geterr()  # the caller's floating-point error handling (thread-local in NumPy 1)

    def run(item):
        with np.errstate(**state):
            return fn(item)
    return list(pool.map(run, items))


@contextlib.contextmanager
def host_work(blas: bool = True):
    """The state a call's own arithmetic runs in: NumPy's floating-point warnings off (the
    drivers handle inf and NaN themselves; the rows ``nonfinite="skip"`` leaves out still pass
    through the GEMMs, which would warn "invalid value encountered in matmul", an error under
    ``-W error``), and with ``blas`` OpenBLAS held to one thread (``blas_single_thread``)."""
    import numpy as np
    with np.errstate(all="ignore"), (blas_single_thread() if blas else contextlib.nullcontext()):
        yield


def _after_fork_in_child():
    """A forked child has none of the parent's threads: new locks, no pool, BLAS as it was."""
    global _lock, _holders, _ours, _pools
    _lock = threading.Lock()
    if _ours and not isinstance(_blas, str) and _blas is not None:
        _blas[0](_saved)
    _holders, _ours, _pools = set(), False, {}


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
