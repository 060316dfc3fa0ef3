"""The triton backend: the primitive test bodies of every backend, plus its own kernels.

Without a GPU the kernels run under ``TRITON_INTERPRET=1`` (set per interpret-marked
test by conftest's fixture, so other tests never see it) on CPU tensors, on tiny shapes.
With a GPU the same tests run compiled on CUDA tensors (benchmarks/gpu_check.sh).
The shared bodies take NumPy arrays; ``on_device.OnDevice`` moves them to
tensors and back.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the triton backend runs on torch tensors")
pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

import test_primitives as P  # noqa: E402
from on_device import OnDevice, force_gemm_path  # noqa: E402
from hminsel.backends.triton import TritonBackend  # noqa: E402
from conftest import TRITON_DEV as DEV, TRITON_GPU as GPU  # noqa: E402

pytestmark = pytest.mark.interpret
SHAPES = [(1, 1), (2, 3), (63, 64), (200, 33)]


@pytest.fixture
def backend():
    be = OnDevice(TritonBackend(), DEV)
    if be.unavailable_reason():
        pytest.skip(be.unavailable_reason())
    return be


class _TiledHead(TritonBackend):
    """The triton backend with ``head_greedy`` on the tiled loop: the shared head bodies run it."""

    def head_greedy(self, xh, h, hidx, tau, tau_idx, budget):
        own = torch.full((len(h),), -1, dtype=torch.int64, device=h.device)
        return self.head_greedy_tiled(xh, h, hidx, tau, tau_idx, budget, own)


@pytest.fixture
def tiled_backend(monkeypatch):
    from hminsel.triton import head_tiled
    monkeypatch.setattr(head_tiled, "BLOCK", 32)  # several chunks a pass at these shapes
    return OnDevice(_TiledHead(), DEV)


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
        P.test_fold_is_step_without_its_answer(backend, shape)


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
    P.test_block_min_near_duplicates_at_large_norm(backend, path, np.float32, per=20)


@pytest.mark.parametrize("shape", [(63, 127), (2, 3), (1, 1)], ids=sid)
def test_head_greedy_matches_oracle(backend, shape):
    P.test_head_greedy_matches_oracle(backend, shape, np.float32)


def test_head_greedy_tau_ties_and_budget(backend):
    P.test_head_greedy_tau_ties_and_budget(backend)


@pytest.mark.parametrize("shape", [(63, 127), (2, 3), (1, 1)], ids=sid)
def test_tiled_head_greedy_matches_oracle(tiled_backend, shape):
    P.test_head_greedy_matches_oracle(tiled_backend, shape, np.float32)


def test_tiled_head_greedy_tau_ties_and_budget(tiled_backend):
    P.test_head_greedy_tau_ties_and_budget(tiled_backend)


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


def test_few_rows_split_over_columns_equal_one_sweep(backend, path, monkeypatch):
    """Few rows against many columns (h_min's live rows): the column splits and their merge
    give exactly one sweep's values and indices, ties across splits to the lowest column,
    through the certified, window and direct re-check paths."""
    import hminsel.triton.split as split
    from hminsel.triton.pairs import closest_rows
    rng = np.random.default_rng(8)
    y = (100 + rng.standard_normal((300, 24))).astype(np.float32)
    y[250] = y[40]  # an exact tie across splits: column 40 must win
    y[260:280] = y[200] + 1e-4 * rng.standard_normal((20, 24)).astype(np.float32)  # windows overflow
    x = np.concatenate([y[[40, 7, 200, 265]], y[:3] + 0.5]).astype(np.float32)
    target = split._target
    monkeypatch.setattr(split, "MIN_SPAN_UNITS", 1)
    calls = []
    monkeypatch.setattr(split, "_target", lambda device: calls.append(device) or target(device))
    got = P.check_block_min(backend, x, y)
    assert calls and split.column_splits(1, 300, 64, "cpu")[0] == 5  # 5 splits on the gemm path
    monkeypatch.setattr(split, "_target", lambda device: 1)  # one program a row block
    one = backend.block_min(x, y)
    assert np.array_equal(got[0], one[0]) and np.array_equal(got[1], one[1])
    assert got[1][0] == 40 and got[0][0] == 0.0
    monkeypatch.setattr(split, "_target", target)
    if path == "gemm":  # h_min's exact pass: the live rows, split over all columns
        value, nearest, rows = closest_rows(torch.as_tensor(y).to(DEV))
        assert {40, 250} <= set(rows.tolist()) and len(rows) < len(y)
        assert nearest[rows == 40].tolist() == [250] and value[rows == 40].tolist() == [0.0]
        assert nearest[rows == 250].tolist() == [40]


def test_pick_loops_in_graph_chunks_equal_plain_launches(backend, monkeypatch):
    """The graph path (slot base[0] + t, base += CHUNK a replay, the remainder as plain
    launches, the gated head loop's checks) equals plain launches. On a GPU the real
    capture runs; without one ``eager`` stands in for it (each replay runs the body again)."""
    from hminsel.triton import graphs
    rng = np.random.default_rng(4)
    x = rng.standard_normal((300, 5)).astype(np.float32)
    monkeypatch.setenv("HMINSEL_CUDA_GRAPHS", "0")
    plain = backend.steps(x, np.full(300, np.inf, np.float32), 3, 150)
    h0 = np.full(300, np.inf, np.float32)
    head_plain = backend.head_greedy(x, h0.copy(), np.arange(300), -np.inf, -1, 140)
    monkeypatch.setenv("HMINSEL_CUDA_GRAPHS", "1")
    monkeypatch.setattr(graphs, "CHUNK", 16)
    monkeypatch.setattr(graphs, "MIN_PICKS", 32)
    recorded, real = [], graphs.capture if GPU else graphs.eager
    if not GPU:
        monkeypatch.setattr(graphs, "enabled", lambda device: True)
    monkeypatch.setattr(graphs, "capture", lambda body, device: recorded.append(device) or real(body, device))
    chunked = backend.steps(x, np.full(300, np.inf, np.float32), 3, 150)
    assert recorded and not graphs.FAILED, graphs.FAILED
    assert np.array_equal(chunked[0], plain[0]) and np.array_equal(chunked[1], plain[1])
    head = backend.head_greedy(x, h0.copy(), np.arange(300), -np.inf, -1, 140)  # 8 x 16 + 12 plain
    assert len(recorded) == 2
    assert np.array_equal(head[0], head_plain[0]) and np.array_equal(head[1], head_plain[1])
    tau = float(head_plain[1][40])  # the gate closes after 40 picks: replays stop there
    gated = backend.head_greedy(x, h0.copy(), np.arange(300), tau, 0, 140)
    assert np.array_equal(gated[0], head_plain[0][:len(gated[0])]) and 30 < len(gated[0]) <= 41
    monkeypatch.setattr(graphs, "capture", lambda body, device: None)  # a failed capture
    assert np.array_equal(backend.steps(x, np.full(300, np.inf, np.float32), 3, 150)[0], plain[0])


def test_packed_keys_order_negative_zero_as_zero_and_mark_last():
    """Device keys: -0.0 keys as +0.0 (as ``keys.pack_host`` does), MARK (< 0) as 0, larger values win."""
    from hminsel.keys import pack_host
    from key_kernel import pack_kernel

    v = torch.tensor([-0.0, 0.0, 1.5, -1.0], device=DEV)
    i = torch.tensor([3, 3, 2, 1], dtype=torch.int64, device=DEV)
    out = torch.full((4,), 7, dtype=torch.int64, device=DEV)
    pack_kernel[(1,)](v, i, out, N=4)
    keys = out.cpu().tolist()
    assert keys[0] == keys[1] == pack_host(0.0, 3) and keys[0] > 0
    assert keys[2] == pack_host(1.5, 2) > keys[0] and keys[3] == 0


def test_gate_key_gates_alike_as_an_int64():
    """TAU_KEY reaches the kernels as an int64 whatever the tau (one specialisation), and
    the "no tau" stand-in lets every key through as -1 does."""
    from hminsel.triton.keys import LOW, gate_key, pack_host, tau_key
    keys = [0, 1, LOW, pack_host(0.0, 5), pack_host(0.5, 3), pack_host(np.inf, 0)]
    assert gate_key(-1) < -(1 << 31)
    assert [k > gate_key(-1) for k in keys] == [k > -1 for k in keys]
    for taukey in (tau_key(0.0, 9), tau_key(0.25, 7)):  # every real tau: int64 already
        assert gate_key(taukey) == taukey >= 1 << 31
