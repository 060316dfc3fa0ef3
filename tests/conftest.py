"""Shared fixtures: the backend list every test body runs on, data makers, oracles."""
from __future__ import annotations

import json
import os
import sys

import numpy as np
import pytest

from hminsel import backends

# Triton decorates its own library functions when it is imported, reading
# TRITON_INTERPRET then: without a GPU run (HMINSEL_TRITON_GPU=1, set by
# benchmarks/gpu_check.sh) import it here under the interpreter, then put the
# environment back, so that only the interpret-marked tests (_triton_interpreter
# below sets the variable per test) see it.
if os.environ.get("HMINSEL_TRITON_GPU") != "1" and "triton" not in sys.modules:
    import importlib.util
    if importlib.util.find_spec("triton") is not None:
        _saved = os.environ.get("TRITON_INTERPRET")
        os.environ["TRITON_INTERPRET"] = "1"
        try:
            import triton  # noqa: F401
        except Exception:  # a broken install: the triton tests skip with the reason
            pass
        finally:
            if _saved is None:
                del os.environ["TRITON_INTERPRET"]
            else:
                os.environ["TRITON_INTERPRET"] = _saved

CPU_BACKENDS = ["numpy", "cpu"]

# The triton backend's tests (marked ``interpret``): compiled on CUDA tensors in a GPU run
# (HMINSEL_TRITON_GPU=1), else the interpreter on CPU tensors (the fixture below).
TRITON_GPU = os.environ.get("HMINSEL_TRITON_GPU") == "1"
TRITON_DEV = "cuda" if TRITON_GPU else "cpu"


@pytest.fixture(autouse=True)
def _triton_interpreter(request, monkeypatch):
    """TRITON_INTERPRET=1 for each interpret-marked test, unless the run has a GPU."""
    if not TRITON_GPU and request.node.get_closest_marker("interpret") is not None:
        monkeypatch.setenv("TRITON_INTERPRET", "1")

# A GPU run (HMINSEL_TRITON_GPU=1 / HMINSEL_CUDA_GPU=1) or HMINSEL_NO_SKIP=1
# (benchmarks/gpu_check.sh sets it, dry run included): a skip is a failure, so a
# backend that did not load cannot pass as green. Tests whose skip is part of
# the plan carry ``@pytest.mark.may_skip``.
NO_SKIP = any(os.environ.get(v) == "1" for v in ("HMINSEL_NO_SKIP", "HMINSEL_TRITON_GPU", "HMINSEL_CUDA_GPU"))


def pytest_configure(config):
    config.addinivalue_line("markers", "may_skip: a planned skip, allowed under HMINSEL_NO_SKIP")
    config.addinivalue_line("markers", "gpu_only: runs only with a GPU flag; skipped (allowed) elsewhere")


XDIST_MAX_WORKERS = 4  # `-n auto` (the README's test command): one process a core, at most this


@pytest.hookimpl(optionalhook=True)  # pytest-xdist's hook: absent without it
def pytest_xdist_auto_num_workers(config):
    """Workers for ``-n auto``: the cores this process may use (affinity, cgroup quota), at most
    XDIST_MAX_WORKERS. The Triton-interpreter tests run Python on one core, so a second worker
    nearly halves the suite on two cores; the C++ kernels thread over every core in each worker.
    PYTEST_XDIST_AUTO_NUM_WORKERS, when set, wins (xdist's own hook reads it)."""
    if os.environ.get("PYTEST_XDIST_AUTO_NUM_WORKERS"):
        return None
    from hminsel._threads import available_cores
    return max(1, min(XDIST_MAX_WORKERS, available_cores()))


def pytest_collection_modifyitems(config, items):
    gpu = os.environ.get("HMINSEL_TRITON_GPU") == "1" or os.environ.get("HMINSEL_CUDA_GPU") == "1"
    for item in items:
        if item.get_closest_marker("gpu_only") and not gpu:
            item.add_marker(pytest.mark.may_skip)
            item.add_marker(pytest.mark.skip(reason="needs a GPU run (HMINSEL_TRITON_GPU/CUDA_GPU=1)"))


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    if NO_SKIP and rep.skipped and not hasattr(rep, "wasxfail") and not item.get_closest_marker("may_skip"):
        reason = rep.longrepr[2] if isinstance(rep.longrepr, tuple) else str(rep.longrepr)
        rep.outcome = "failed"
        rep.longrepr = f"skipped where skips fail (HMINSEL_NO_SKIP or a GPU flag): {reason}"


@pytest.hookimpl(tryfirst=True)  # before the terminal reporter files it as a skip
def pytest_collectreport(report):
    if NO_SKIP and report.skipped:  # a module-level importorskip: torch/triton missing
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"module skipped where skips fail (HMINSEL_NO_SKIP or a GPU flag): {reason}"


def backend_params(names=CPU_BACKENDS):
    """One pytest param per backend, skipped with the reason when unavailable."""
    params = []
    for name in names:
        reason = backends.why_not(name)
        if reason and name == "cpu" and os.environ.get("HMINSEL_REQUIRE_CPU") == "1":
            raise RuntimeError(f"HMINSEL_REQUIRE_CPU=1 but the cpu backend is unavailable: {reason}")
        marks = [pytest.mark.skip(reason=f"{name}: {reason}")] if reason else []
        params.append(pytest.param(name, id=name, marks=marks))
    return params


@pytest.fixture(params=backend_params())
def backend(request):
    return request.param


@pytest.fixture
def emb(tmp_path):
    """(300, 8) float32 embeddings and a matching JSONL file of examples."""
    x = np.random.default_rng(1).standard_normal((300, 8)).astype(np.float32)
    np.save(tmp_path / "emb.npy", x)
    (tmp_path / "data.jsonl").write_text(
        "".join(json.dumps({"id": i, "prompt": f"q{i}"}) + "\n" for i in range(300)))
    return x


def block_min_path(monkeypatch, path: str):
    """Send the cpu backend's block_min down one path, whatever the number of centres.

    ``"direct"``: the direct form; ``"gemm"``: the tiled GEMM path (fused or
    BLAS, as ``cpu_gemm.fused`` says); ``"few"``: the one-pass fused kernel
    for a few centres (AVX-512 builds, float32 sums; else the direct form).
    """
    import hminsel.backends.cpu as cpu_mod
    big = 1 << 40
    monkeypatch.setattr(cpu_mod, "GEMM_MIN_CENTRES", 1 if path == "gemm" else big)
    monkeypatch.setattr(cpu_mod, "GEMM_MIN_DIM", big if path == "direct" else 1)
    monkeypatch.setattr(cpu_mod, "GEMM_MIN_DIM_F64", big if path == "direct" else 1)
    monkeypatch.setattr(cpu_mod, "FEW_CENTRES", (1, big) if path == "few" else (1, 0))


def clustered(n, d, *, clusters=20, spread=0.05, seed=0, dtype=np.float32):
    """Points around ``clusters`` random centers: the data selection sees in practice."""
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, d))
    labels = rng.integers(clusters, size=n)
    return (centers[labels] + spread * rng.standard_normal((n, d))).astype(dtype)


def exact_sq(x, picks):
    """float64 squared distances of every row to its nearest pick (the oracle)."""
    x = np.asarray(x, np.float64)
    out = np.full(len(x), np.inf)
    for p in picks:
        out = np.minimum(out, ((x - x[p]) ** 2).sum(1))
    return out


def assert_certificate(x, picks, rtol=1e-4, given=1):
    """Greedy certificate: each pick is (within rounding) the farthest point from the earlier ones.

    The first ``given`` picks (the start, or a warm start) are taken as they
    are. Also checks that the picks are distinct. ``rtol`` is relative to the
    largest squared distance in play (the dtype tolerance).
    """
    picks = np.asarray(picks)
    assert len(set(picks.tolist())) == len(picks), "picks repeat"
    x = np.asarray(x, np.float64)
    mind = np.full(len(x), np.inf)
    chosen = np.zeros(len(x), bool)
    scale = None
    for t, p in enumerate(picks):
        if t >= given:
            best = mind[~chosen].max()
            scale = scale or max(best, 1e-30)
            assert mind[p] >= best - rtol * scale, (
                f"pick {t} (row {p}) has {mind[p]}, but a remaining row has {best}")
        chosen[p] = True
        mind = np.minimum(mind, ((x - x[p]) ** 2).sum(1))
