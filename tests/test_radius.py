"""select(radius=...): the run ends where every row lies within the radius of a pick.

The picks are a prefix of the full FPS sequence, cut before the first pick (past
``init`` or the start) whose radius is at most the radius: every two picks lie
more than it apart and every row that could be picked lies within it of one.
On every backend and algorithm; the device backends in test_triton_select.py
and test_cuda_backend.py run ``check_radius``.
"""
from __future__ import annotations

import numpy as np
import pytest

import hminsel
from conftest import clustered

ALGOS = ["streaming", "lazy", "bucket"]


def coverage(x, rows, picks, metric="l2"):
    """The largest distance of a row of ``x[rows]`` to its nearest pick, in float64."""
    d, _ = hminsel.nearest(np.asarray(x, np.float64)[rows], np.asarray(x, np.float64)[picks],
                           metric=metric, backend="numpy")
    return float(d.max())


def host(a):
    """A result array (NumPy, or a torch tensor on any device) as a NumPy array."""
    return a.cpu().numpy() if hasattr(a, "cpu") else np.asarray(a)


def check_radius(select, x, radius, *, metric="l2", rows=None, init=(), past=None, **kw):
    """``select(x, k, **kw)`` (x a host array; ``select`` may move it to a device) against
    its own run of ``past`` picks (default: every row it could pick; more than the cut):
    a prefix cut at ``radius``, covering every row it could pick."""
    n = len(x)
    if past is None:
        past = n if rows is None else len(rows) + len(init)
    full = select(x, past, metric=metric, init=init or None, **kw)
    sel = select(x, 1.0, metric=metric, radius=radius, init=init or None, **kw)
    cut = len(sel.indices)
    full_idx, full_r = host(full.indices), host(full.radii)
    np.testing.assert_array_equal(host(sel.indices), full_idx[:cut])
    np.testing.assert_array_equal(host(sel.radii), full_r[:cut])
    seeds = max(1, len(init))
    assert (full_r[seeds:cut] > radius).all()
    assert cut < past or past == n, "past must reach beyond the cut"
    assert cut == len(full_idx) or full_r[cut] <= radius
    assert sel.stats.radius_reached == (cut < len(full_idx))
    if cut < len(full_idx):  # every row that could be picked lies within radius of a pick
        covered = np.arange(n) if rows is None else rows
        assert coverage(x, covered, full_idx[:cut], metric) <= radius * (1 + 1e-5) + 1e-6
    return sel


@pytest.mark.parametrize("algorithm", ALGOS)
def test_hand_built_line(backend, algorithm):
    x = np.array([[7.0], [0.0], [1.0], [10.0], [4.0]])  # FPS from 1: 3, 4, 0, 2 at 10, 4, 3, 1
    for radius, want in [(3.5, [1, 3, 4]), (3.0, [1, 3, 4]), (2.9, [1, 3, 4, 0]), (0.5, [1, 3, 4, 0, 2]),
                         (10.0, [1]), (0.0, [1, 3, 4, 0, 2])]:
        sel = hminsel.select(x, 1.0, start=1, radius=radius, backend=backend, algorithm=algorithm)
        assert sel.indices.tolist() == want, radius
        assert sel.stats.radius_reached == (len(want) < 5)


@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_prefix_and_coverage_on_clusters(backend, algorithm, metric):
    x = clustered(3000, 3 if algorithm == "bucket" else 24, clusters=12, spread=0.03, seed=4)
    full = hminsel.select(x, 600, metric=metric, backend=backend, algorithm=algorithm)
    for t in (20, 150, 599):
        radius = float(np.asarray(full.radii)[t])
        sel = check_radius(hminsel.select, x, radius, metric=metric, backend=backend,
                           algorithm=algorithm, past=600)
        assert len(sel.indices) <= t  # picks t, t+1, ... lie within radius (radii never increase)


@pytest.mark.parametrize("algorithm", ALGOS)
def test_zero_radius_drops_exact_duplicates_only(backend, algorithm):
    rng = np.random.default_rng(1)
    base = rng.standard_normal((200, 3 if algorithm == "bucket" else 9)).astype(np.float32)
    x = base[rng.integers(0, 200, 700)]
    sel = hminsel.select(x, 1.0, radius=0.0, backend=backend, algorithm=algorithm)
    distinct = len(np.unique(x, axis=0))
    assert len(sel.indices) == distinct and sel.stats.radius_reached
    assert len(np.unique(x[sel.indices], axis=0)) == distinct
    first = {row.tobytes(): i for i, row in reversed(list(enumerate(x)))}  # ties: lowest index
    assert sorted(sel.indices.tolist()) == sorted(first.values())


@pytest.mark.parametrize("algorithm", ALGOS)
def test_a_radius_equal_to_the_lattice_spacing_stops_early(backend, algorithm, monkeypatch):
    """Values exactly at the radius end the run there (the drivers' floor is exact)."""
    from hminsel.algorithms import bucket
    monkeypatch.setattr(bucket, "FIRST_PICKS", 64)  # calls of 64, 256, ... picks
    g = np.arange(12, dtype=np.float32)
    x = np.stack(np.meshgrid(g, g, g, indexing="ij"), -1).reshape(-1, 3)  # 1728 points, spacing 1
    if algorithm != "bucket":
        x = np.hstack([x, np.zeros((len(x), 6), np.float32)])  # d = 9: no bucket kernel runs
    seen = []
    sel = hminsel.select(x, 1.0, radius=1.0, backend=backend, algorithm=algorithm,
                         progress=lambda done, total: seen.append(done))
    assert sel.stats.radius_reached and (sel.radii[1:] > 1.0).all() and len(sel.indices) < 1728
    assert max(seen) < 1728  # stopped before the last pick, not cut after it
    assert coverage(x, np.arange(len(x)), host(sel.indices)) <= 1.0


@pytest.mark.parametrize("floor_kernel", [True, False], ids=["one-call", "growing-calls"])
def test_bucket_ends_at_the_floor(monkeypatch, floor_kernel):
    """The cpu kernel takes the floor and ends there in one call; a backend whose kernel takes
    none (Triton's) runs calls of FIRST_PICKS, then GROW times more, each continuing."""
    from hminsel.algorithms import bucket
    monkeypatch.setattr(bucket, "FIRST_PICKS", 50)
    cls = type(hminsel.backends.get("cpu"))
    monkeypatch.setattr(cls, "bucket_floor", floor_kernel)
    x = np.random.default_rng(8).random((6000, 3)).astype(np.float32)
    calls = []
    orig = cls.bucket_select
    monkeypatch.setattr(cls, "bucket_select", lambda self, x, mind, seeds, k, floor=None: calls.append(
        k) or orig(self, x, mind, seeds, k, floor if floor_kernel else None))
    full = hminsel.select(x, 1500, backend="cpu", algorithm="bucket")
    sel = hminsel.select(x, 1.0, radius=float(full.radii[1000]), backend="cpu", algorithm="bucket",
                         init=[5, 9])
    assert calls[1:] == ([6000] if floor_kernel else [52, 208, 832, 3328]) and sel.stats.radius_reached
    assert sel.indices[:2].tolist() == [5, 9] and len(sel.indices) <= 1000
    ref = hminsel.select(x, len(sel.indices) + 1, backend="cpu", algorithm="streaming", init=[5, 9])
    np.testing.assert_array_equal(sel.indices, ref.indices[:-1])
    assert ref.radii[-1] <= full.radii[1000] < sel.radii[-1]


def test_a_tensor_radius_is_taken():
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(clustered(500, 8, seed=9))
    ref = hminsel.select(x, 100)
    sel = hminsel.select(x, 1.0, radius=ref.radii[60])
    assert torch.equal(sel.indices, ref.indices[:len(sel.indices)]) and len(sel.indices) <= 60


def test_k_caps_the_count(backend):
    x = np.random.default_rng(2).standard_normal((500, 16))
    sel = hminsel.select(x, 40, radius=0.0, backend=backend)
    assert len(sel.indices) == 40 and not sel.stats.radius_reached
    np.testing.assert_array_equal(sel.indices, hminsel.select(x, 40, backend=backend).indices)


def test_a_cap_past_the_rows_takes_them_all(backend):
    """With a radius k is a cap: a count past the rows that can be picked caps nothing (without
    one it stays an error); per label too, and masks and init rows outside them counted."""
    x = np.repeat(clustered(60, 5, seed=4), 2, axis=0)  # each row twice: radius 0 keeps one
    allowed = np.arange(120) % 3 != 0
    sel = hminsel.select(x, 10_000, radius=0.0, mask=allowed, init=[0, 1], backend=backend)
    want = hminsel.select(x, 1.0, radius=0.0, mask=allowed, init=[0, 1], backend=backend)
    np.testing.assert_array_equal(sel.indices, want.indices)
    assert sel.stats.radius_reached and len(sel.indices) < 80
    with pytest.raises(ValueError, match=r"k must be in \[1, 81\]"):
        hminsel.select(x, 10_000, mask=allowed, init=[0, 1], backend=backend)
    labels = np.arange(120) % 4  # 30 rows a label: caps of 40 and 25
    res = hminsel.select_batched(x, [40, 25, 40, 40], groups=labels, radius=0.0, backend=backend)
    for p, (idx, _) in enumerate(res):
        rows = np.flatnonzero(labels == p)
        want = hminsel.select(x[rows], [30, 25, 30, 30][p], radius=0.0, backend=backend)
        np.testing.assert_array_equal(idx, rows[want.indices])
    with pytest.raises(ValueError, match="k = 40 is larger than label 0"):
        hminsel.select_batched(x, 40, groups=labels, backend=backend)


@pytest.mark.parametrize("algorithm", ["streaming", "lazy"])
def test_init_rows_stay_and_mask_and_skip_bound_the_coverage(backend, algorithm):
    rng = np.random.default_rng(3)
    x = clustered(2000, 12, clusters=8, seed=5).astype(np.float64)
    init = [5, 6, 7]  # one cluster: close together, kept all the same
    sel = check_radius(hminsel.select, x, 0.3, init=init, backend=backend, algorithm=algorithm)
    assert sel.indices[:3].tolist() == init
    mask = rng.random(2000) < 0.5
    x[rng.integers(0, 2000, 30)] = np.nan
    rows = np.flatnonzero(mask & np.isfinite(x).all(1))
    check_radius(hminsel.select, x, 0.2, rows=rows, mask=mask, nonfinite="skip", backend=backend,
                 algorithm=algorithm)


@pytest.mark.parametrize("algorithm", ["streaming", "lazy"])
def test_progress_ends_at_the_picks_made(backend, algorithm):
    x = clustered(2000, 8, seed=6)
    seen = []
    sel = hminsel.select(x, 1.0, radius=0.5, backend=backend, algorithm=algorithm,
                         progress=lambda done, total: seen.append((done, total)))
    assert sel.stats.radius_reached and seen[-1] == (len(sel.indices), len(sel.indices))


def test_a_long_streaming_run_stops_at_the_radius():
    """k = N is only a cap: the steps stop in the chunk where the radius is reached."""
    x = np.random.default_rng(7).standard_normal((20000, 32)).astype(np.float32)
    ref = hminsel.select(x, 300, algorithm="streaming")
    sel = hminsel.select(x, 1.0, algorithm="streaming", radius=float(ref.radii[-1]))
    assert len(sel.indices) < 300 and sel.stats.passes < 400
    np.testing.assert_array_equal(sel.indices, ref.indices[:len(sel.indices)])


@pytest.mark.parametrize("radius,err", [(-1.0, ValueError), (float("nan"), ValueError),
                                        (float("inf"), ValueError), ("0.1", TypeError),
                                        (True, TypeError), ([0.1], TypeError)], ids=str)
def test_bad_radius_raises(radius, err):
    with pytest.raises(err, match="radius"):
        hminsel.select(np.zeros((4, 2)), 2, radius=radius)


@pytest.mark.parametrize("how", ["ptr", "groups", "init"])
def test_select_batched_cuts_each_problem_as_select_does(backend, how):
    x = clustered(1200, 6, clusters=9, seed=10)  # d <= 8: the batched bucket kernel, but for radius
    radius = 0.25
    if how == "groups":
        labels = np.random.default_rng(1).integers(0, 3, len(x))
        res = hminsel.select_batched(x, 1.0, groups=labels, radius=radius, backend=backend)
        parts = [np.flatnonzero(labels == g) for g in range(3)]
    else:
        ptr = np.array([0, 1, 300, 1000, 1200])
        parts = [np.arange(lo, hi) for lo, hi in zip(ptr[:-1], ptr[1:])]
        init = [310, 5, 1100] if how == "init" else None  # problems 1, 2 and 3 continue from them
        res = hminsel.select_batched(x, [1.0, 0.5, 1.0, 1.0], ptr=ptr, radius=radius, init=init,
                                     backend=backend)
    assert len(res) == len(parts)
    for p, rows in enumerate(parts):
        idx, radii = res.problem(p)
        own = [i for i in ([310, 5, 1100] if how == "init" else []) if i in set(rows.tolist())]
        cap = [1.0, 0.5, 1.0, 1.0][p] if how != "groups" else 1.0
        want = hminsel.select(x[rows], cap, radius=radius, backend=backend,
                              init=np.searchsorted(rows, own) if own else None)
        np.testing.assert_array_equal(idx, rows[want.indices])
        np.testing.assert_array_equal(radii, want.radii)
        whole = hminsel.select(x[rows], cap, backend=backend,  # the count the cap resolves to
                               init=np.searchsorted(rows, own) if own else None)
        assert res.caps[p] == len(whole.indices) and res.radius_reached[p] == want.stats.radius_reached
    assert (np.diff(res.ptr) < [len(r) for r in parts]).any()  # the radius cut some problems
    assert res.radius_reached.any() and res.caps.dtype == np.int64
    plain = hminsel.select_batched(x, 5, ptr=[0, 600, 1200], backend=backend)
    assert plain.caps is None and plain.radius_reached is None


def test_select_batched_radius_on_the_command_line(tmp_path, capsys):
    import json
    from cli_helpers import run
    x = clustered(600, 8, clusters=6, seed=3)
    labels = np.arange(600) % 3
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "g.npy", labels)
    code, out, err = run(capsys, "select", tmp_path / "x.npy", "--groups", tmp_path / "g.npy",
                         "--radius", 0.3, "--out", tmp_path / "p.npy", "--no-progress")
    assert code == 0, err
    want = hminsel.select_batched(x, 1.0, groups=labels, radius=0.3)
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), want.indices)
    m = json.loads((tmp_path / "p.json").read_text())
    assert m["radius"] == 0.3 and "each label's picks end at --radius 0.3" in out
    assert [(g["cap"], g["radius_reached"]) for g in m["groups"]["labels"]] == [(200, True)] * 3
    assert out.count("; at --radius") == 3
    code, out, err = run(capsys, "select", tmp_path / "x.npy", "--groups", tmp_path / "g.npy",
                         "--radius", 0.3, "--k", 5000, "--out", tmp_path / "k.npy", "--no-progress")
    assert code == 0, err  # a cap past every label's rows
    np.testing.assert_array_equal(np.load(tmp_path / "k.npy"), want.indices)
    x[[0, 3]] = np.nan  # label 0: two rows left out; the caps come before the radius
    np.save(tmp_path / "nan.npy", x)
    code, out, err = run(capsys, "select", tmp_path / "nan.npy", "--groups", tmp_path / "g.npy",
                         "--radius", 0.3, "--fraction", 0.0251, "--nonfinite", "skip",
                         "--out", tmp_path / "f.npy", "--no-progress")
    assert code == 0, err
    m = json.loads((tmp_path / "f.json").read_text())
    assert [(g["picks"], g["cap"], g["radius_reached"]) for g in m["groups"]["labels"]] == [
        (5, 5, False), (6, 6, False), (6, 6, False)]  # of the finite rows: 0.0251 x 198 -> 5


@pytest.mark.parametrize("go_on", [False, True], ids=["kernel", "select-goes-on"])
@pytest.mark.parametrize("d,metric,radius", [(3, "l2", 0.1), (12, "l2", 0.3), (12, "cosine", 0.002)],
                         ids=["bucket", "streaming", "streaming-cosine"])
def test_cpu_batched_kernels_end_each_problem_at_its_cut(monkeypatch, d, metric, radius, go_on):
    """The cpu backend's batched kernels with a radius: one call, each small problem ending
    at its cut (the exact floor), a large problem running select; ``go_on``: above d = 8 the
    kernel stops a problem once its streaming work would pass the lazy FPS's, and select
    continues from those picks (init) to the cut."""
    _cpu = pytest.importorskip("hminsel._cpu")
    from hminsel import _batched_host
    monkeypatch.setattr(_batched_host, "LARGE_WORK", 900 * d)  # the 1000-row problem gets select
    if go_on:  # 30 picks of the 500-row problem in the kernel, 76 of the 197-row one
        monkeypatch.setattr(_batched_host, "ANY_PICKS_WORK", 500 * d * 30)
    x = clustered(2000, d, clusters=12, seed=d)
    ptr = np.array([0, 0, 1, 3, 200, 1200, 1500, 2000])  # empty, one row, two rows, ...
    k = [0, 1, 2, 197, 1000, 7, 500]  # every row a cap, but 7 in problem 5
    name = "bucket_batched" if d <= _batched_host.BUCKET_MAX_DIM else "fps_batched"
    floors, counts, kernel = [], [], getattr(_cpu, name)
    monkeypatch.setattr(_cpu, name, lambda *a, floor: floors.append(floor) or counts.append(
        a[2].tolist()) or kernel(*a, floor=floor))
    res = hminsel.select_batched(x, k, ptr=ptr, radius=radius, metric=metric, backend="cpu")
    assert res.backend == "cpu"
    for p in range(len(ptr) - 1):
        idx, radii = res.problem(p)
        if ptr[p] == ptr[p + 1]:
            assert len(idx) == 0
            continue
        want = hminsel.select(x[ptr[p]:ptr[p + 1]], k[p], radius=radius, metric=metric, backend="numpy")
        np.testing.assert_array_equal(idx, ptr[p] + want.indices, err_msg=f"problem {p}")
        np.testing.assert_allclose(radii, want.radii, rtol=1e-5)
    made = np.diff(res.ptr)
    assert made[5] == 7 and (made[[3, 4, 6]] < np.diff(ptr)[[3, 4, 6]]).all()
    assert floors == [hminsel._radius.floor(radius, metric)] and (made[[3, 6]] > 20).all()
    if go_on and d > _batched_host.BUCKET_MAX_DIM:  # select went on from the kernel's picks
        assert counts == [[0, 1, 2, 76, 0, 7, 30]] and made[6] > 30
    else:
        assert counts == [[0, 1, 2, 197, 0, 7, 500]]


def test_large_caps_send_problems_to_select():
    """Without a radius, a problem of 40k x 16 rows and a large count goes to select, one of
    200 x 16 rows stays with the kernel; with one (counts are caps) the kernel runs each to
    the work where select would win, and select goes on. Point clouds stay on the bucket
    kernel, but for a few picks of many rows (select streams them on every thread)."""
    from hminsel._batched_host import kernel_counts, large_problems
    ptr, counts = np.array([0, 200, 40_200]), np.array([200, 40_000])
    assert large_problems(ptr, 16, counts).tolist() == [False, True]
    assert large_problems(ptr, 16, counts, capped=True).tolist() == [False, False]
    assert kernel_counts(ptr, 16, counts, True).tolist() == [200, 300_000_000 // 640_000]
    assert kernel_counts(ptr, 3, counts, True).tolist() == [200, 40_000]
    assert large_problems(ptr, 3, counts, capped=True).tolist() == [False, False]
    assert large_problems(np.array([0, 3_000_000]), 3, np.array([10])).tolist() == [True]
