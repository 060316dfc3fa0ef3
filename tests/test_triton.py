"""The triton backend: the primitive test bodies of every backend, plus its own kernels.

Without a GPU the kernels run under ``TRITON_INTERPRET=1`` (set per test by a
fixture, so other test modules never see it) on CPU tensors, on tiny shapes.
With a GPU the same tests run compiled on CUDA tensors (benchmarks/gpu_check.sh).
The shared bodies take NumPy arrays; ``on_device.OnDevice`` moves them to
tensors and back.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the triton backend runs on torch tensors")
pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

import test_primitives as P  # noqa: E402
from on_device import OnDevice, force_gemm_path  # noqa: E402
from hminsel.backends.triton import TritonBackend  # noqa: E402

pytestmark = pytest.mark.interpret
GPU = os.environ.get("HMINSEL_TRITON_GPU") == "1"  # else: the interpreter on CPU tensors
DEV = "cuda" if GPU else "cpu"
SHAPES = [(1, 1), (2, 3), (63, 64), (200, 33)]


@pytest.fixture(autouse=True)
def _interpret(monkeypatch):
    if not GPU:  # read when a kernel module is first imported, and by the backend
        monkeypatch.setenv("TRITON_INTERPRET", "1")


@pytest.fixture
def backend():
    be = OnDevice(TritonBackend(), DEV)
    if be.unavailable_reason():
        pytest.skip(be.unavailable_reason())
    return be


@pytest.fixture(params=["direct", "gemm"])
def path(request, monkeypatch):
    import hminsel.triton.block_min as bm
    return force_gemm_path(monkeypatch, bm, request.param)


sid = P.shape_id


# -- the shared primitive bodies ------------------------------------------------

@pytest.mark.parametrize("shape", SHAPES, ids=sid)
def test_step_matches_oracle(backend, shape):
    P.test_step_matches_oracle(backend, shape, np.float32)


def test_steps_equal_chained_steps(backend):
    for shape in [(63, 5), (3, 2), (1, 4)]:
        P.test_steps_equal_chained_steps(backend, shape)


def test_step_ties_and_marks(backend):
    P.test_step_crafted_ties(backend)
    P.test_step_tie_across_threads(backend)  # 35 programs race on one slot
    P.test_step_all_equal_and_marked(backend)


@pytest.mark.parametrize("m", [1, 5, 70])
@pytest.mark.parametrize("shape", SHAPES, ids=sid)
def test_block_min_matches_oracle(backend, path, shape, m):
    P.test_block_min_matches_oracle(backend, path, shape, np.float32, m)


def test_block_min_ties_duplicates_and_large_norm(backend, path):
    P.test_block_min_ties_and_duplicates(backend, path)
    P.test_block_min_near_duplicates_at_large_norm(backend, path, np.float32)


@pytest.mark.parametrize("shape", [(63, 127), (2, 3), (1, 1)], ids=sid)
def test_head_greedy_matches_oracle(backend, shape):
    P.test_head_greedy_matches_oracle(backend, shape, np.float32)


def test_head_greedy_tau_ties_and_budget(backend):
    P.test_head_greedy_tau_ties_and_budget(backend)


def test_direct_values_equal_step_bitwise(backend, path):
    """block_min and the head loop reproduce step's fp32 values: lazy == streaming."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((150, 40)).astype(np.float32)
    y = rng.standard_normal((70, 40)).astype(np.float32)
    value, index = backend.block_min(x, y)
    z = np.concatenate([x, y])
    for j in range(0, 70, 7):
        mind = np.full(len(z), np.inf, np.float32)
        backend.step(z, mind, len(x) + j)
        hit = index == j
        assert np.array_equal(value[hit], mind[:len(x)][hit])
    h = np.full(len(x), np.inf, np.float32)
    picks, values = backend.head_greedy(x, h, np.arange(len(x)), -np.inf, -1, 10)
    mind = np.full(len(x), np.inf, np.float32)
    sp, sv = backend.steps(x, mind, 0, 9)
    assert picks[1:].tolist() == sp.tolist() and np.array_equal(values[1:], sv)
