"""The CUDA backend end to end: the shared primitive bodies, select / hmin / nearest.

Without a GPU the kernels are emulated (``cuda_emulator``: the host code,
launch sizes, persistent vs one-launch-a-step paths and argument checks are
real; the device code is not run). With ``HMINSEL_CUDA_GPU=1`` (set by
benchmarks/gpu_check.sh on a GPU machine with CuPy) the same tests run on the
real kernels, and the launch-shape assertions are skipped.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the cuda backend keeps its state in torch tensors")

import hminsel  # noqa: E402
import test_primitives as P  # noqa: E402
from conftest import assert_certificate, clustered  # noqa: E402
from cuda_emulator import Emulator  # noqa: E402
from on_device import OnDevice, check_hmin_and_nearest, force_gemm_path  # noqa: E402
from hminsel import backends  # noqa: E402
from hminsel.backends.cuda import CudaBackend  # noqa: E402
from test_radius import check_radius  # noqa: E402
from test_select import fps_oracle  # noqa: E402

GPU = os.environ.get("HMINSEL_CUDA_GPU") == "1"
DEV = "cuda" if GPU else "cpu"
ALGOS = ["streaming", "lazy"]


@pytest.fixture(params=["persistent", "per-step"])
def emu(request, monkeypatch):
    """The emulated device (None on a GPU); persistent = cooperative launches allowed."""
    if GPU:
        if request.param == "per-step":
            from hminsel.cuda import loader
            monkeypatch.setattr(loader, "cooperative_reason", lambda device: "forced off by the test")
        return None
    monkeypatch.setattr(CudaBackend, "unavailable_reason", lambda self: None)
    monkeypatch.setattr(CudaBackend, "takes_cpu_tensors", True)
    return Emulator(cooperative=request.param == "persistent").install(monkeypatch)


@pytest.fixture
def backend(emu):
    be = OnDevice(backends.get("cuda"), DEV)
    if be.unavailable_reason():
        pytest.skip(be.unavailable_reason())
    return be


@pytest.fixture(params=["direct", "gemm"])
def path(request, monkeypatch):
    import hminsel.cuda.block_min as k  # many tiles: ties across tiles, partial tiles
    return force_gemm_path(monkeypatch, k, request.param, GEMM_ROWS=32, GEMM_COLS=3)


def dev(a, dtype=torch.float32):
    return torch.as_tensor(np.asarray(a)).to(device=DEV, dtype=dtype)


# -- the shared primitive bodies ------------------------------------------------

@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (63, 64), (200, 33)], ids=P.shape_id)
def test_primitives_match_oracle(backend, path, shape):
    P.test_step_matches_oracle(backend, shape, np.float32)
    P.test_block_min_matches_oracle(backend, path, shape, np.float32, 5)
    P.test_block_min_matches_oracle(backend, path, shape, np.float32, 70)
    if shape[0] > 1:
        P.test_head_greedy_matches_oracle(backend, shape, np.float32)


def test_primitive_ties_marks_budget(backend, path):
    for shape in [(63, 5), (3, 2), (1, 4)]:
        P.test_steps_equal_chained_steps(backend, shape)
        P.test_fold_is_step_without_its_answer(backend, shape)
    P.test_step_crafted_ties(backend)
    P.test_step_tie_across_threads(backend)
    P.test_step_all_equal_and_marked(backend)
    P.test_block_min_ties_and_duplicates(backend, path)
    P.test_block_min_near_duplicates_at_large_norm(backend, path, np.float32)
    P.test_head_greedy_tau_ties_and_budget(backend)


# -- select / hmin / nearest ----------------------------------------------------

@pytest.mark.parametrize("algorithm", ALGOS)
def test_select_sequence_ties_and_half_storage(emu, algorithm):
    x = np.random.default_rng(3).standard_normal((200, 33)).astype(np.float32)
    picks, radii = fps_oracle(x, 40, start=3)
    sel = hminsel.select(dev(x), 40, start=3, backend="cuda", algorithm=algorithm,
                         head_size=16 if algorithm == "lazy" else None)
    assert sel.backend == "cuda" and sel.indices.device.type == DEV
    np.testing.assert_array_equal(sel.indices.cpu().numpy(), picks)
    np.testing.assert_allclose(sel.radii.cpu().numpy(), radii, rtol=1e-5)
    sq = dev([[0, 0], [1, 0], [0, 1], [1, 1]])
    assert hminsel.select(sq, 4, backend="cuda", algorithm=algorithm).indices.tolist() == [0, 3, 1, 2]
    same = hminsel.select(dev(np.ones((7, 5))), 7, backend="cuda", algorithm=algorithm,
                         head_size=4 if algorithm == "lazy" else None)
    assert same.indices.tolist() == list(range(7)) and (same.radii[1:] == 0).all()
    for dtype in (torch.float16, torch.bfloat16):
        xh = dev(clustered(150, 64, seed=4), dtype)
        sel = hminsel.select(xh, 30, backend="cuda", algorithm=algorithm,
                         head_size=16 if algorithm == "lazy" else None)
        assert_certificate(xh.float().cpu().numpy(), sel.indices.cpu().numpy(), rtol=1e-5)


def test_lazy_equals_streaming_and_warm_start(emu):
    x = dev(clustered(300, 24, clusters=6, seed=2))
    a = hminsel.select(x, 80, backend="cuda", algorithm="streaming")
    b = hminsel.select(x, 80, backend="cuda", algorithm="lazy", head_size=32)
    assert a.indices.tolist() == b.indices.tolist() and b.stats.rounds >= 2
    assert torch.equal(a.radii, b.radii)
    c = hminsel.select(x, 80, backend="cuda", init=a.indices[:25].cpu().numpy(), head_size=32)
    assert c.indices.tolist() == a.indices.tolist()
    # rows of several 16-byte chunks a lane (d = 300 fp32 / bf16): the persistent step's
    # 4-rows-a-warp sums and block_min's one-row sums (4 chunks ahead) must agree bit for bit
    for dtype in (torch.float32, torch.bfloat16):
        w = dev(clustered(260, 300, clusters=5, seed=9), dtype)
        a = hminsel.select(w, 40, backend="cuda", algorithm="streaming")
        b = hminsel.select(w, 40, backend="cuda", algorithm="lazy", head_size=24)
        assert a.indices.tolist() == b.indices.tolist() and torch.equal(a.radii, b.radii)


@pytest.mark.parametrize("mode", [1, 2, 3], ids=["exchange", "shared-mind", "both"])
def test_persistent_modes_pick_alike(emu, monkeypatch, mode):
    """fps_run's mode bits (each step's key by an exchange of flagged slots, the resident
    rows' min-distances in shared memory) change how the persistent launch runs, never its
    picks: streaming and lazy, float32 and bfloat16, rows on chip and rows past it."""
    from hminsel.cuda import kernels
    if emu is not None:
        emu.props["smem_optin"] = 24 * 1024  # part of each block's rows past shared memory
    n, d = (30000, 256) if GPU else (400, 48)  # on a GPU: 30 MB, past 132 blocks' 227 KB
    cases = [(dev(clustered(n, d, clusters=7, seed=5), dtype), algorithm)
             for dtype in (torch.float32, torch.bfloat16) for algorithm in ALGOS]
    head = {"streaming": None, "lazy": 64}
    want = [hminsel.select(x, 90, backend="cuda", algorithm=a, head_size=head[a]).indices
            for x, a in cases]
    monkeypatch.setattr(kernels, "FPS_MODE", mode)
    if emu is not None:
        emu.launches.clear()
    for (x, algorithm), w in zip(cases, want):
        got = hminsel.select(x, 90, backend="cuda", algorithm=algorithm, head_size=head[algorithm])
        assert got.indices.tolist() == w.tolist(), (str(x.dtype), algorithm)
    if emu is not None and emu.cooperative:  # the emulator checked each launch's layout
        res = [r[4] for r in emu.launches if r[0] == "fps_run" and r[2]]
        assert res and max(res) > 0 and min(res) < -(-n // emu.props["sm_count"])


def test_rows_above_48_kb_of_shared_memory(emu):
    """d = 12800 fp32: the center row alone takes 51 KB, past what a block gets without
    opting in (both the one-step launches and the persistent one with rows on chip)."""
    if emu is not None:
        emu.props["smem_optin"] = 232448  # an H100 / H200 block's opt-in limit
    x = np.random.default_rng(6).standard_normal((40, 12800)).astype(np.float32)
    sel = hminsel.select(dev(x), 8, backend="cuda", algorithm="streaming")
    assert_certificate(x, sel.indices.cpu().numpy(), rtol=1e-5)
    if emu is not None:
        sizes = [r[3] for r in emu.launches if r[0] == "fps_run"]
        assert min(sizes) > 48 * 1024 and (max(sizes) > min(sizes)) == emu.cooperative


@pytest.mark.parametrize("algorithm", ALGOS)
def test_radius_ends_the_run(emu, algorithm):
    x = clustered(200, 8, clusters=6, seed=2)
    radius = float(hminsel.select(x, 60, backend="numpy").radii[-1])
    sel = check_radius(lambda a, k, **kw: hminsel.select(dev(a), k, backend="cuda",
                                                         algorithm=algorithm, **kw), x, radius, past=80)
    assert 40 < len(sel.indices) < 80


def test_hmin_and_nearest(emu):
    check_hmin_and_nearest("cuda", DEV)


# -- how the kernels are launched (emulator only) ----------------------------------

@pytest.mark.may_skip
@pytest.mark.skipif(GPU, reason="launch records exist on the emulator only")
def test_launch_shapes(emu):
    x = dev(np.random.default_rng(1).standard_normal((200, 33)))
    hminsel.select(x, 30, backend="cuda", algorithm="streaming")
    runs = [r for r in emu.launches if r[0] == "fps_run"]
    if emu.cooperative:  # the seed's step, then all 28 others in one persistent launch
        assert [r[2] for r in runs] == [False, True]
        rpb = -(-200 // emu.props["sm_count"])
        fit = (emu.props["smem_optin"] - (4 * 36 + 256)) // (33 * 4)
        assert runs[1][4] == min(rpb, fit) > 0  # part of each block's rows on chip
    else:
        assert len(runs) == 29 and not any(r[2] for r in runs)
    emu.launches.clear()
    hminsel.select(x, 30, backend="cuda", algorithm="lazy", head_size=64)
    heads = [r for r in emu.launches if r[0] == "fps_run"]
    assert heads and all(r[2] == emu.cooperative for r in heads[:1])


@pytest.mark.may_skip
@pytest.mark.skipif(GPU, reason="a refusing driver is emulated only")
def test_refused_cooperative_launches_fall_back(monkeypatch):
    """The driver refuses every cooperative launch: the same picks, from one-step launches;
    the head loop's steps stop at its gate instead of running its whole budget."""
    monkeypatch.setattr(CudaBackend, "unavailable_reason", lambda self: None)
    monkeypatch.setattr(CudaBackend, "takes_cpu_tensors", True)
    emu = Emulator(refuse=True).install(monkeypatch)
    x = clustered(300, 24, clusters=6, seed=2)
    want, _ = fps_oracle(x, 60)
    for algorithm in ALGOS:
        emu.launches.clear()
        sel = hminsel.select(dev(x), 60, backend="cuda", algorithm=algorithm,
                             head_size=64 if algorithm == "lazy" else None)
        assert sel.indices.tolist() == want.tolist(), algorithm
        runs = [r for r in emu.launches if r[0] == "fps_run"]
        assert any(r[2] == "refused" for r in runs) and all(r[2] in (False, "refused") for r in runs)
        if algorithm == "lazy":  # gated steps: about one launch a pick, not 64 a round
            assert len(runs) - sum(r[2] == "refused" for r in runs) <= 2 * 60


def test_dispatch_and_errors(emu):
    with pytest.raises(RuntimeError, match="float64 is not a GPU dtype"):
        hminsel.select(dev(np.eye(3), torch.float64), 2, backend="cuda")
    got = hminsel.select(clustered(60, 8, seed=5), 9, backend="cuda")  # NumPy in, NumPy out
    want = hminsel.select(clustered(60, 8, seed=5), 9, backend="numpy")
    assert isinstance(got.indices, np.ndarray) and got.indices.tolist() == want.indices.tolist()


def test_select_batched_per_problem(emu):
    sizes = [70, 1, 0, 33]
    ptr = np.concatenate([[0], np.cumsum(sizes)])
    x = np.random.default_rng(4).standard_normal((ptr[-1], 5)).astype(np.float32)
    res = hminsel.select_batched(dev(x), 0.3, ptr=ptr, backend="cuda")
    want = hminsel.select_batched(x, 0.3, ptr=ptr, backend="numpy")
    assert res.backend == "cuda" and res.indices.tolist() == want.indices.tolist()
    np.testing.assert_allclose(res.radii.cpu().numpy(), want.radii, rtol=1e-5)


def test_block_min_windows_equal_direct(emu, monkeypatch):
    """Far-apart clusters (eps above the gaps): every row goes through its window."""
    import hminsel.cuda.block_min as k
    calls = []
    window = k._window
    monkeypatch.setattr(k, "_window", lambda t, ids, *a: calls.append(len(ids)) or window(t, ids, *a))
    monkeypatch.setattr(k, "GEMM_ROWS", 50)
    monkeypatch.setattr(k, "GEMM_COLS", 30)
    x = dev(100 * clustered(240, 32, clusters=8, spread=0.0005, seed=12))
    y = torch.cat([x[::3], x[:5]]).contiguous()  # duplicates: ties to the lowest column
    be = backends.get("cuda")
    fast = be.block_min(x, y)
    assert calls and calls[0] > 0
    monkeypatch.setattr(k, "GEMM_MIN_CENTRES", 1 << 40)
    slow = be.block_min(x, y)
    assert torch.equal(fast[0], slow[0]) and torch.equal(fast[1], slow[1])


class _Matmul:
    """A stand-in for an older torch's ``torch.backends.cuda.matmul``: no ``fp32_precision``."""

    def __init__(self):
        self.seen = []

    def __setattr__(self, name, value):
        if name != "seen":
            self.seen.append((name, value))
        object.__setattr__(self, name, value)


def test_gemm_runs_in_full_fp32_on_a_torch_without_the_new_api(emu, monkeypatch):
    """Before torch 2.9 (no ``fp32_precision`` knobs): TF32 off in the block, the caller's
    ``set_float32_matmul_precision`` after."""
    import hminsel.cuda.block_min as k
    legacy, matmul = [], _Matmul()
    monkeypatch.setattr(torch, "get_float32_matmul_precision", lambda: "medium")
    monkeypatch.setattr(torch, "set_float32_matmul_precision", legacy.append)
    monkeypatch.setattr(torch.backends.cuda, "matmul", matmul)
    monkeypatch.setattr(torch.backends, "mkldnn", None)
    x = dev(clustered(120, 32, seed=7))
    value, index = k.block_min(x, x, torch.arange(120, device=x.device), True)
    want = backends.get("numpy").block_min(x.cpu().numpy(), x.cpu().numpy(), self_mask=True)
    np.testing.assert_array_equal(index.cpu().numpy(), want[1])
    assert legacy and legacy == ["highest", "medium"] * (len(legacy) // 2)  # set, restored, ...
    assert matmul.seen == []


USER_PRECISION = {  # what a caller may have set before calling hminsel, with torch's own APIs
    "default": lambda m: None,
    "legacy high": lambda m: torch.set_float32_matmul_precision("high"),
    "legacy medium": lambda m: torch.set_float32_matmul_precision("medium"),
    "allow_tf32": lambda m: setattr(m, "allow_tf32", True),
    "new knob tf32": lambda m: setattr(m, "fp32_precision", "tf32"),
    "new knob ieee": lambda m: setattr(m, "fp32_precision", "ieee"),
}


@pytest.mark.parametrize("user", list(USER_PRECISION))
def test_full_fp32_matmul_is_a_state_cublas_accepts(user):
    """This torch, for real: inside the block TF32 reads off through ``matmul.allow_tf32``,
    the getter that runs the check cuBLAS makes before each fp32 GEMM (it raises on a mix of
    the legacy and new APIs); after the block, the caller's settings as they were."""
    from hminsel.cuda.block_min import _matmul_precision, full_fp32_matmul
    matmul = torch.backends.cuda.matmul
    if user.startswith("new") and not hasattr(matmul, "fp32_precision"):
        pytest.skip("this torch has no torch.backends.cuda.matmul.fp32_precision")

    def state():
        legacy, knobs = _matmul_precision()
        return legacy, [value for _, value in knobs]
    with full_fp32_matmul():  # the outer block puts this process's settings back
        USER_PRECISION[user](matmul)
        before = state()
        with full_fp32_matmul():
            assert matmul.allow_tf32 is False
            assert getattr(matmul, "fp32_precision", "ieee") == "ieee"
            assert torch.get_float32_matmul_precision() == "highest"  # readable: no mix
        assert state() == before


def test_gemm_precision_with_the_real_new_api(emu):
    """A user who set the new knob (here for real, on this torch) does not break block_min."""
    matmul = torch.backends.cuda.matmul
    if not hasattr(matmul, "fp32_precision"):
        pytest.skip("this torch has no torch.backends.cuda.matmul.fp32_precision")
    import hminsel.cuda.block_min as k
    before = matmul.fp32_precision
    matmul.fp32_precision = "tf32"
    try:
        # twins 1e-3 apart at norm ~570: TF32's 10-bit products inside the GEMM would put
        # errors far past the bound that decides which rows need the direct form (on a GPU)
        base = clustered(50, 32, seed=8) + 100.0
        rng = np.random.default_rng(8)
        pts = np.concatenate([base, base + rng.normal(0, 1e-3, base.shape)]).astype(np.float32)
        x = dev(pts)
        value, index = k.block_min(x, x, torch.arange(len(x), device=x.device), True)
        assert matmul.fp32_precision == "tf32"
        want = backends.get("numpy").block_min(pts, pts, self_mask=True)
        np.testing.assert_array_equal(index.cpu().numpy(), want[1])
        np.testing.assert_allclose(value.cpu().numpy(), want[0], rtol=1e-3)
    finally:
        matmul.fp32_precision = before
