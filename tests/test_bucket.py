"""Exact bucket FPS (d <= 8): the streaming sequence, index for index, bit for bit."""
from __future__ import annotations

import functools

import numpy as np
import pytest

import hminsel
from hminsel import backends

from conftest import assert_certificate, clustered

pytestmark = pytest.mark.skipif(backends.why_not("cpu") is not None,
                                reason=f"cpu: {backends.why_not('cpu')}")


def cloud(kind, n, d, seed=0, dtype=np.float32):
    """Point sets that stress the pruning and the tie rule."""
    rng = np.random.default_rng(seed)
    if kind == "gauss":
        x = rng.standard_normal((n, d))
    elif kind == "dups":  # every point four times, scattered over the index range
        x = np.tile(rng.standard_normal(((n + 3) // 4, d)), (4, 1))[:n]
    elif kind == "collinear":
        x = np.outer(rng.uniform(-1, 1, n), rng.standard_normal(d))
    elif kind == "coplanar":
        x = rng.uniform(-1, 1, (n, 2)) @ rng.standard_normal((2, d)) if d > 1 else rng.uniform(size=(n, 1))
    elif kind == "equal":
        x = np.full((n, d), 0.25)
    elif kind == "grid":  # integer lattice: many exact ties
        x = rng.integers(0, 4, (n, d)).astype(np.float64)
    elif kind == "outliers":  # tight clusters and a few points far away
        x = clustered(n, d, clusters=5, spread=1e-3, seed=seed).astype(np.float64)
        x[rng.choice(n, max(1, n // 50), replace=False)] *= 1e4
    elif kind == "torus":
        u, v = rng.uniform(0, 2 * np.pi, (2, n))
        x = np.zeros((n, d))
        x[:, 0], x[:, min(1, d - 1)] = (1 + 0.3 * np.cos(v)) * np.cos(u), (1 + 0.3 * np.cos(v)) * np.sin(u)
        x[:, d - 1] += 0.3 * np.sin(v)
        x[: n // 10] = rng.uniform(-1.5, 1.5, (n // 10, d))
    return np.ascontiguousarray(x, dtype=dtype)


def same(x, k, **kw):
    """bucket on the cpu backend == streaming on the cpu backend (indices and radii, bitwise)."""
    a = hminsel.select(x, k, backend="cpu", algorithm="streaming", **kw)
    b = hminsel.select(x, k, backend="cpu", algorithm="bucket", **kw)
    assert b.algorithm == "bucket"
    assert b.indices.tolist() == a.indices.tolist()
    assert np.array_equal(b.radii, a.radii)
    return b


KINDS = ["gauss", "dups", "collinear", "coplanar", "equal", "grid", "outliers", "torus"]
DTYPES = [pytest.param(np.float32, id="f32"), pytest.param(np.float64, id="f64")]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("d", range(1, 9), ids=lambda d: f"d{d}")
def test_identical_to_streaming(kind, d, dtype):
    x = cloud(kind, 1000, d, seed=d, dtype=dtype)
    same(x, 1000 if kind in ("dups", "equal") else 300, start=d * 37)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n", [1, 2, 63, 1000], ids=lambda n: f"N{n}")
@pytest.mark.parametrize("kind", ["gauss", "dups", "equal"])
def test_sizes_and_k(kind, n, dtype):
    x = cloud(kind, n, 3, dtype=dtype)
    same(x, 1)
    same(x, n, start=n - 1)


def test_hand_built_and_float64_oracle():
    x = np.array([[7.0], [0.0], [1.0], [10.0], [4.0]])
    sel = hminsel.select(x, 5, start=1, backend="cpu", algorithm="bucket")
    assert sel.indices.tolist() == [1, 3, 4, 0, 2]
    np.testing.assert_allclose(sel.radii, [np.inf, 10, 4, 3, 1])
    square = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float32)  # ties to the lowest index
    assert hminsel.select(square, 4, algorithm="bucket").indices.tolist() == [0, 3, 1, 2]


def test_certificate_large():
    x = cloud("torus", 50_000, 3, seed=5)
    sel = same(x, 500)
    assert_certificate(x, sel.indices)


def test_leaf_sizes_agree():
    from hminsel import _cpu
    x = cloud("outliers", 3000, 3, seed=2)
    mind = np.full(len(x), np.inf, np.float32)
    ref = _cpu.bucket_select(x, mind, np.array([5]), 3000, 1)
    for leaf in (2, 7, 64, 256):
        picks, values = _cpu.bucket_select(x, mind, np.array([5]), 3000, leaf)
        assert np.array_equal(picks, ref[0]) and np.array_equal(values, ref[1]), leaf


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", ["gauss", "dups", "grid", "outliers"])
@pytest.mark.parametrize("d", [1, 3, 8], ids=lambda d: f"d{d}")
def test_select_pass_and_tree_agree(kind, d, dtype):
    """One cloud (``bucket_select``): the streaming pass and the tree, each forced, give the
    same picks and values from several seeds, with rows left out (MARK, some holding NaN), at
    a floor, and past the last live row ((-1, MARK) slots)."""
    from hminsel import _cpu
    x = cloud(kind, 700, d, seed=d, dtype=dtype)
    mind = np.full(700, np.inf, dtype)
    mind[::7] = -1.0  # left out
    x[::14] = np.nan  # some of them NaN
    live = int((mind != -1.0).sum())
    full = np.sort(_cpu.bucket_select(x, mind, np.array([2, 9]), 500, 0, -np.inf, 0)[1][2:])
    cut = float(full[len(full) // 2])  # a value the run attains: it ends before its first such pick
    for seeds, k, floor in (([5], 300, -np.inf), ([3, 699, 40], 200, -np.inf), ([1], live + 5, -np.inf),
                            ([2, 9], 500, cut), ([3, 699, 40], 3, -np.inf)):
        seeds = np.array(seeds)
        got = [_cpu.bucket_select(x, mind, seeds, k, 0, floor, stream) for stream in (0, 1)]
        assert np.array_equal(got[0][0], got[1][0]) and np.array_equal(got[0][1], got[1][1]), (seeds, k)
        if k == live + 5:  # every live row, then five empty slots
            assert (got[0][0][live:] == -1).all() and (got[0][0][:live] >= 0).all()
    assert len(got[0][0]) < 500  # the floor ended the run


@pytest.mark.parametrize("dtype", DTYPES)
def test_init_and_skip(dtype):
    x = cloud("torus", 2000, 3, seed=1, dtype=dtype)
    same(x, 200, init=[3, 1999, 500])
    same(x, 3, init=[3, 1999, 500])                     # k == len(init)
    same(x, 150, init=list(range(0, 2000, 100)))         # many seeds
    bad = x.copy()
    bad[[0, 10, 1500]] = np.nan
    bad[7, 1] = np.inf
    sel = same(bad, 300, start=4, nonfinite="skip")
    assert not set(sel.indices.tolist()) & {0, 7, 10, 1500}
    same(bad, 1996, start=4, nonfinite="skip")          # every finite row


def test_cosine_and_random_start():
    x = cloud("gauss", 3000, 4, seed=9)
    same(x, 100, metric="cosine")
    same(x, 100, start="random", seed=3)


def test_auto_dispatch():
    x = cloud("gauss", 2000, 8)
    assert hminsel.select(x, 50).algorithm == "bucket"
    assert hminsel.select(x, 50, backend="numpy").algorithm in ("lazy", "streaming")
    assert hminsel.select(x, 50, backend="numpy", algorithm="bucket").algorithm == "streaming"
    assert hminsel.select(cloud("gauss", 2000, 9), 50).algorithm == "lazy"
    assert hminsel.select(x, 15).algorithm == "streaming"  # a few picks: no build


# bucket_batched's `stream`: -1, by size (cloud_stream.h: streams); 0, the tree only; 1, the
# vectorised streaming pass only. Every mode gives the picks and values of fps_batched.
STREAM = [pytest.param(-1, id="by-size"), pytest.param(0, id="tree"), pytest.param(1, id="pass")]


@pytest.mark.parametrize("stream", STREAM)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", [1, 3, 8], ids=lambda d: f"d{d}")
def test_batched_identical_to_streaming(d, dtype, stream):
    from hminsel import _cpu
    sizes = [1, 2, 63, 1000, 0, 257]
    ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    x = cloud("grid", int(ptr[-1]), d, seed=d, dtype=dtype)
    counts = np.array([1, 2, 40, 1000, 0, 100])
    starts = np.array([0, 1, 62, 999, 0, 3])
    got = _cpu.bucket_batched(x, ptr, counts, starts, stream=stream)
    want = _cpu.fps_batched(x, ptr, counts, starts)
    for a, b in zip(got, want):
        assert np.array_equal(a, b)
    res = hminsel.select_batched(x, counts, ptr=ptr, start=starts)
    assert np.asarray(res.indices).tolist() == want[0].tolist()


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("d", range(1, 9), ids=lambda d: f"d{d}")
def test_batched_pass_and_tree_agree(kind, d, dtype):
    """The streaming pass (one block of 64 points keeps each block's largest value) and the
    tree give fps_batched's picks and values, ties and duplicates included, on clouds that
    end inside, at and just past a block."""
    from hminsel import _cpu
    sizes = [64, 65, 1, 200, 128, 3]
    ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    x = cloud(kind, int(ptr[-1]), d, seed=d, dtype=dtype)
    counts = np.array([64, 30, 1, 200, 127, 2])
    starts = np.array([63, 64, 0, 101, 0, 2])
    want = _cpu.fps_batched(x, ptr, counts, starts)
    for stream in (0, 1):
        got = _cpu.bucket_batched(x, ptr, counts, starts, stream=stream)
        for a, b in zip(got, want):
            assert np.array_equal(a, b), stream


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("kernel", ["bucket_batched", "bucket_batched_pass", "fps_batched"])
def test_batched_kernels_end_at_the_floor(kernel, dtype):
    """With a floor each problem ends before its first pick past the start whose value is at
    most it: the prefix of its full run, packed problem by problem."""
    from hminsel import _cpu
    sizes = [300, 0, 1, 2, 700, 40]
    ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    x = cloud("gauss", int(ptr[-1]), 3, seed=5, dtype=dtype)
    counts, starts = np.array([300, 0, 1, 2, 500, 40]), np.array([7, 0, 0, 1, 0, 39])
    run = getattr(_cpu, kernel.removesuffix("_pass"))
    if kernel == "bucket_batched":  # the tree; the pass below
        run = functools.partial(run, stream=0)
    elif kernel == "bucket_batched_pass":
        run = functools.partial(run, stream=1)
    full_picks, full_values, full_ptr = run(x, ptr, counts, starts)
    floor = float(np.median(full_values[np.isfinite(full_values)]))
    picks, values, out_ptr = run(x, ptr, counts, starts, floor=floor)
    for p in range(len(sizes)):
        lo, hi = full_ptr[p], full_ptr[p + 1]
        near = np.flatnonzero(full_values[lo + 1:hi] <= floor)
        made = 1 + int(near[0]) if len(near) else hi - lo
        assert out_ptr[p + 1] - out_ptr[p] == made, p
        assert picks[out_ptr[p]:out_ptr[p + 1]].tolist() == full_picks[lo:lo + made].tolist()
        assert values[out_ptr[p]:out_ptr[p + 1]].tolist() == full_values[lo:lo + made].tolist()
    assert out_ptr[-1] < full_ptr[-1]
    same = run(x, ptr, counts, starts, floor=-np.inf)
    assert all(np.array_equal(a, b) for a, b in zip(same, (full_picks, full_values, full_ptr)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("d", [1, 2, 3, 5, 8], ids=lambda d: f"d{d}")
def test_batched_floor_on_attained_values(d, dtype):
    """On an integer lattice the squared distances are small integers, so a floor of 1.0 or
    2.0 equals values the runs attain: a problem ends before its first pick whose value is
    <= the floor, as fps_batched, in the pass and in the tree."""
    from hminsel import _cpu
    sizes = [130, 64, 65, 7]
    ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    x = cloud("grid", int(ptr[-1]), d, seed=d, dtype=dtype)
    counts, starts = np.array([130, 64, 65, 7]), np.array([3, 0, 64, 6])
    for floor in (1.0, 2.0):
        want = _cpu.fps_batched(x, ptr, counts, starts, floor=floor)
        assert want[2][-1] < counts.sum()  # the floor ended some problem early
        for stream in (0, 1):
            got = _cpu.bucket_batched(x, ptr, counts, starts, stream=stream, floor=floor)
            assert all(np.array_equal(a, b) for a, b in zip(got, want)), (floor, stream)


def test_select_ends_at_the_floor():
    from hminsel import _cpu
    x = cloud("torus", 3000, 3, seed=2)
    mind = np.full(3000, np.inf, np.float32)
    full, values = _cpu.bucket_select(x, mind, np.array([4, 9]), 3000)
    floor = float(values[1200])
    picks, cut = _cpu.bucket_select(x, mind, np.array([4, 9]), 3000, floor=floor)
    assert len(picks) < 3000 and (cut[2:] > floor).all() and values[len(picks)] <= floor
    assert picks.tolist() == full[:len(picks)].tolist() and cut.tolist() == values[:len(picks)].tolist()
    with pytest.raises(ValueError, match="floor must be a number"):
        _cpu.bucket_select(x, mind, np.array([4]), 10, floor=float("nan"))


@pytest.mark.parametrize("stream", STREAM)
def test_batched_many_threads(stream):
    """Enough points for the thread pool (bucket.h: kParallelPoints), ragged sizes, and by
    size a mix of streamed problems and trees."""
    from hminsel import _cpu
    sizes = np.random.default_rng(0).integers(1, 6000, 48)
    ptr = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    x = cloud("torus", int(ptr[-1]), 3, seed=11)
    counts = np.minimum(sizes, np.where(np.arange(48) % 2, 16, 200))
    starts = sizes // 2
    got = _cpu.bucket_batched(x, ptr, counts, starts, stream=stream)
    want = _cpu.fps_batched(x, ptr, counts, starts)
    for a, b in zip(got, want):
        assert np.array_equal(a, b)


def test_dropins_run_bucket():
    torch = pytest.importorskip("torch")
    from hminsel.compat import torch_cluster
    pos = torch.from_numpy(cloud("torus", 4 * 512, 3, seed=4))
    batch = torch.arange(4).repeat_interleave(512)
    idx = torch_cluster.fps(pos, batch, ratio=0.25, random_start=False)
    for b in range(4):
        want = hminsel.select(pos[b * 512:(b + 1) * 512].numpy(), 128, algorithm="streaming").indices
        assert (idx[b * 128:(b + 1) * 128] - b * 512).tolist() == want.tolist()


def test_argument_errors():
    from hminsel import _cpu
    x = cloud("gauss", 10, 3)
    mind = np.full(10, np.inf, np.float32)
    with pytest.raises(ValueError, match="1 <= d <= 8"):
        _cpu.bucket_select(cloud("gauss", 10, 9), np.full(10, np.inf, np.float32), np.array([0]), 2)
    with pytest.raises(ValueError, match="leaf must be in"):
        _cpu.bucket_select(x, mind, np.array([0]), 2, 1000)
    with pytest.raises(ValueError, match="live row"):
        _cpu.bucket_select(x, np.where(np.arange(10) == 0, -1.0, np.inf).astype(np.float32), np.array([0]), 2)
    with pytest.raises(ValueError, match="k must be in"):
        _cpu.bucket_select(x, mind, np.array([0]), 11)
    with pytest.raises(ValueError, match="counts\\[0\\]"):
        _cpu.bucket_batched(x, np.array([0, 10]), np.array([11]), np.array([0]))
    with pytest.raises(ValueError, match="stream must be -1"):
        _cpu.bucket_batched(x, np.array([0, 10]), np.array([2]), np.array([0]), stream=2)


def test_progress_hears_the_end_once():
    calls = []
    x = cloud("gauss", 500, 3)
    hminsel.select(x, 40, algorithm="bucket", progress=lambda done, total: calls.append((done, total)))
    assert calls == [(40, 40)]
    calls.clear()
    hminsel.select(x, 2, init=[0, 1], algorithm="bucket", progress=lambda done, total: calls.append((done, total)))
    assert calls == [(2, 2)]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", [1e30, 1e-42], ids=["overflow", "subnormal"])
def test_extreme_coordinates(scale, dtype, monkeypatch):
    """Distances that overflow to inf or underflow to subnormals or 0: still the streaming sequence
    (the kernels; the public calls refuse such values: ``_finite.check_scale``)."""
    from hminsel import _finite
    x = (cloud("gauss", 2000, 3, seed=4).astype(np.float64) * scale)
    x[::5] *= 1e5 if dtype == np.float32 else 1e200
    x = x.astype(dtype)
    with pytest.raises(ValueError, match="flow float"):
        hminsel.select(x, 400)
    monkeypatch.setattr(_finite, "check_scale", lambda *args: None)
    same(x, 400)


@pytest.mark.parametrize("call", ["select", "radius", "batched", "batched-pass", "select-pass", "hmin"])
def test_ctrl_c_stops_a_long_cloud_call(call):
    """The bucket kernels are one native call each (seconds on a large cloud); they run
    Python's signal handlers about every 0.1 s, so Ctrl-C (here a watchdog's interrupt_main)
    ends them then, not when they finish (7 s later for 1M x 3 on a 2-vCPU EPYC)."""
    import _thread
    import threading
    import time
    from hminsel import _cpu
    pc = np.random.default_rng(0).random((3_000_000 if call == "hmin" else 1_000_000, 3),
                                        dtype=np.float32)
    run = {"select": lambda: hminsel.select(pc, len(pc), algorithm="bucket"),
           "radius": lambda: hminsel.select(pc, 1.0, radius=0.001, algorithm="bucket"),
           "batched": lambda: hminsel.select_batched(pc, 1.0, ptr=np.arange(0, len(pc) + 1, 25_000)),
           "batched-pass": lambda: _cpu.bucket_batched(  # cloud_stream.h's pass, forced, on one
               pc[:200_000], np.array([0, 200_000]), np.array([200_000]), np.array([0]), stream=1),  # 12 s cloud
           "select-pass": lambda: _cpu.bucket_select(pc[:200_000], np.full(200_000, np.inf, np.float32),
                                                     np.array([0]), 200_000, stream=1),
           "hmin": lambda: hminsel.hmin(pc)}[call]
    timer = threading.Timer(0.3, _thread.interrupt_main)
    t0 = time.perf_counter()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        run()
        time.sleep(5)  # finished first: the interrupt lands here, and the time below fails
    timer.cancel()
    assert time.perf_counter() - t0 < 3.0
