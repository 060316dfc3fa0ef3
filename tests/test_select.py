"""select(): exact sequences, the certificate, ties, warm start; on every backend."""
from __future__ import annotations

import numpy as np
import pytest

import hminsel
from conftest import assert_certificate, clustered

ALGOS = ["streaming", "lazy", "bucket"]


def fps_oracle(x, k, start=0):
    """Plain float64 FPS, the readable definition."""
    x = np.asarray(x, np.float64)
    mind = np.full(len(x), np.inf)
    picks, radii = [start], [np.inf]
    while len(picks) < k:
        mind = np.minimum(mind, ((x - x[picks[-1]]) ** 2).sum(1))
        mind[picks] = -1
        nxt = int(np.argmax(mind))
        picks.append(nxt)
        radii.append(np.sqrt(mind[nxt]))
    return np.array(picks), np.array(radii)


@pytest.mark.parametrize("algorithm", ALGOS)
def test_hand_built_line(backend, algorithm):
    x = np.array([[7.0], [0.0], [1.0], [10.0], [4.0]])
    sel = hminsel.select(x, 5, start=1, backend=backend, algorithm=algorithm)
    assert sel.indices.tolist() == [1, 3, 4, 0, 2]
    np.testing.assert_allclose(sel.radii, [np.inf, 10, 4, 3, 1])
    assert sel.hmin == 1.0 and sel.indices.dtype == np.int64


@pytest.mark.parametrize("algorithm", ALGOS)
def test_square_tie_goes_to_lowest_index(backend, algorithm):
    x = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], np.float32)
    sel = hminsel.select(x, 4, backend=backend, algorithm=algorithm)
    assert sel.indices.tolist() == [0, 3, 1, 2]


@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("n", [1, 2, 7, 64])
def test_all_identical_points_give_distinct_indices(backend, algorithm, n):
    x = np.ones((n, 5), np.float32)
    sel = hminsel.select(x, n, backend=backend, algorithm=algorithm,
                         head_size=4 if algorithm == "lazy" else None)
    assert sel.indices.tolist() == list(range(n))
    assert np.isinf(sel.radii[0]) and (sel.radii[1:] == 0).all()


@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("n,d,k", [(50, 3, 50), (300, 7, 40), (1000, 33, 200)], ids=str)
def test_exact_indices_on_tie_free_float64(backend, algorithm, n, d, k):
    x = np.random.default_rng(n + d).standard_normal((n, d))
    picks, radii = fps_oracle(x, k, start=3)
    sel = hminsel.select(x, k, start=3, backend=backend, algorithm=algorithm,
                         head_size=16 if algorithm == "lazy" else None)
    np.testing.assert_array_equal(sel.indices, picks)
    np.testing.assert_allclose(sel.radii, radii, rtol=1e-12)


@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_certificate_on_clustered_float32(backend, algorithm, metric):
    x = clustered(4000, 48, seed=1)
    sel = hminsel.select(x, 300, metric=metric, backend=backend, algorithm=algorithm)
    xs = x / np.linalg.norm(x, axis=1, keepdims=True) if metric == "cosine" else x
    assert_certificate(xs, sel.indices)
    assert (np.diff(sel.radii[1:]) <= 1e-6 * sel.radii[1]).all()
    assert sel.hmin == sel.radii[-1]


@pytest.mark.parametrize("metric", ["l2", "cosine"])
@pytest.mark.parametrize("n,d", [(1, 1), (2, 3), (63, 127), (1000, 1), (1000, 768), (20000, 3)], ids=str)
def test_lazy_equals_streaming(backend, metric, n, d):
    x = clustered(n, d, clusters=7, seed=n * d)
    third = max(1, n // 3) if backend != "numpy" else min(n // 3 or 1, 1500)  # the oracle: slow steps
    for k in sorted({1, min(n, 2), third, n if n <= 100 else 300}):
        a = hminsel.select(x, k, metric=metric, backend=backend, algorithm="streaming")
        b = hminsel.select(x, k, metric=metric, backend=backend, algorithm="lazy", head_size=32)
        np.testing.assert_array_equal(a.indices, b.indices, err_msg=f"k={k}")
        np.testing.assert_array_equal(a.radii, b.radii)


def test_lazy_adaptive_equals_streaming_with_duplicates(backend):
    x = clustered(3000, 16, clusters=5, seed=3)
    x[1000:1500] = x[:500]  # exact duplicates: ties everywhere late in the run
    a = hminsel.select(x, 3000, backend=backend, algorithm="streaming")
    b = hminsel.select(x, 3000, backend=backend, algorithm="lazy")
    np.testing.assert_array_equal(a.indices, b.indices)
    assert b.stats.rounds >= 1 and sum(b.stats.picks_per_round) == 3000 - 1 or b.stats.passes > 0


def test_head_larger_than_n(backend):
    x = clustered(100, 4, seed=5)
    a = hminsel.select(x, 60, backend=backend, algorithm="streaming")
    b = hminsel.select(x, 60, backend=backend, algorithm="lazy", head_size=10_000)
    np.testing.assert_array_equal(a.indices, b.indices)
    assert b.stats.rounds == 1


@pytest.mark.parametrize("algorithm", ALGOS)
def test_warm_start_continues_the_sequence(backend, algorithm):
    x = clustered(2000, 24, seed=7)
    full = hminsel.select(x, 150, start=11, backend=backend, algorithm=algorithm)
    for p in (1, 2, 40, 150):
        warm = hminsel.select(x, 150, init=full.indices[:p], backend=backend, algorithm=algorithm)
        np.testing.assert_array_equal(warm.indices, full.indices)
        np.testing.assert_allclose(warm.radii, full.radii)


def test_warm_start_from_any_picks(backend):
    x = clustered(500, 8, seed=9)
    init = [5, 300, 17]
    sel = hminsel.select(x, 50, init=init, backend=backend)
    assert sel.indices[:3].tolist() == init
    assert_certificate(x, sel.indices, given=3)


def test_fraction_and_random_start(backend):
    x = clustered(999, 6, seed=2)
    sel = hminsel.select(x, 0.1, start="random", seed=4, backend=backend)
    again = hminsel.select(x, 0.1, start="random", seed=4, backend=backend)
    assert len(sel) == 100
    np.testing.assert_array_equal(sel.indices, again.indices)


def test_random_start_seeds():
    """seed: an int, a numpy Generator (drawn from), or None: NumPy's global state, which
    np.random.seed makes repeat (as seed_everything seeds it)."""
    x = clustered(999, 6, seed=2)
    first = [hminsel.select(x, 2, start="random", seed=np.random.default_rng(7)).indices[0]
             for _ in range(2)]
    assert first[0] == first[1] == np.random.default_rng(7).choice(999)
    gen = np.random.default_rng(7)
    assert hminsel.select(x, 2, start="random", seed=gen).indices[0] == first[0]
    assert hminsel.select(x, 2, start="random", seed=gen).indices[0] != first[0]  # drawn on
    starts = []
    for _ in range(2):
        np.random.seed(3)
        starts.append(int(hminsel.select(x, 2, start="random").indices[0]))
        starts.append(int(np.asarray(hminsel.select_batched(x, 1, ptr=[0, 500, 999],
                                                            start="random").indices)[1]))
    assert starts[:2] == starts[2:]
    with pytest.raises(TypeError, match="seed must be a non-negative integer, a numpy.random.Generator"):
        hminsel.select(x, 2, start="random", seed=np.random.RandomState(0))


@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64])
def test_dtypes_and_untouched_input(backend, dtype):
    x = clustered(700, 10, seed=3, dtype=dtype)
    before = x.copy()
    sel = hminsel.select(x, 30, metric="cosine", backend=backend)
    np.testing.assert_array_equal(x, before)
    assert_certificate(x.astype(np.float64) / np.linalg.norm(x.astype(np.float64), axis=1)[:, None],
                       sel.indices, rtol=2e-3 if dtype == np.float16 else 1e-4)


def test_non_contiguous_view(backend):
    base = clustered(600, 20, seed=8)
    view = base[::2, 3:15]
    sel = hminsel.select(view, 40, backend=backend)
    ref = hminsel.select(np.ascontiguousarray(view), 40, backend=backend)
    np.testing.assert_array_equal(sel.indices, ref.indices)


def test_nonfinite_rows_can_be_skipped(backend):
    x = clustered(300, 5, seed=1)
    x[[4, 100]] = np.nan
    x[7, 2] = np.inf
    sel = hminsel.select(x, 297, nonfinite="skip", backend=backend)
    assert not {4, 7, 100} & set(sel.indices.tolist())
    assert len(set(sel.indices.tolist())) == 297


@pytest.mark.parametrize("algorithm", ALGOS)
@pytest.mark.parametrize("metric", ["l2", "cosine"])
def test_mask_equals_selecting_the_allowed_rows(backend, algorithm, metric):
    """mask: the picks of select(x[rows]) as rows of x (ties keep their order: the lowest index)."""
    x = clustered(1500, 6 if algorithm == "bucket" else 24, seed=12)
    x[700:720] = x[700]  # duplicates on both sides of the mask
    allowed = np.random.default_rng(3).random(len(x)) < 0.4
    rows = np.flatnonzero(allowed)
    for k in (200, 0.25):
        sel = hminsel.select(x, k, mask=allowed, metric=metric, algorithm=algorithm, backend=backend)
        ref = hminsel.select(x[rows], k, metric=metric, algorithm=algorithm, backend=backend)
        np.testing.assert_array_equal(sel.indices, rows[ref.indices])  # the default start moved to rows[0]
        np.testing.assert_array_equal(sel.radii, ref.radii)
    sel = hminsel.select(x, 30, mask=allowed, start="random", seed=4, backend=backend)
    assert allowed[sel.indices].all()


def test_mask_with_init_outside_it_and_errors(backend):
    """init rows outside the mask are picks already: the pool's picks keep away from them."""
    held, pool = clustered(50, 10, seed=2), clustered(400, 10, seed=3)
    x = np.concatenate([held, pool])
    allowed = np.arange(len(x)) >= len(held)
    sel = hminsel.select(x, 90, mask=allowed, init=np.arange(len(held)), backend=backend)
    np.testing.assert_array_equal(sel.indices[:50], np.arange(50))
    assert allowed[sel.indices[50:]].all()
    ref = hminsel.select(x, 90, init=np.arange(len(held)), backend=backend)  # the pool holds every pick
    np.testing.assert_array_equal(sel.indices, ref.indices)
    for algorithm in ALGOS:  # every algorithm; k == len(init) (no greedy pick) and k < 16 too
        for k in (2, 3, 5, 12, 60):
            init = [0, 20, 40][:min(k, 3)]
            rows = np.concatenate([init, np.flatnonzero(allowed)])  # ascending: the same ties
            sel = hminsel.select(x, k, mask=allowed, init=init, algorithm=algorithm, backend=backend)
            ref = hminsel.select(x[rows], k, init=np.arange(len(init)), algorithm=algorithm,
                                 backend=backend)
            np.testing.assert_array_equal(sel.indices, rows[ref.indices])
    assert len(hminsel.select(x, 450, mask=allowed, init=np.arange(50), backend=backend).indices) == 450
    with pytest.raises(ValueError, match=r"k must be in \[1, 450\]"):
        hminsel.select(x, 451, mask=allowed, init=np.arange(50), backend=backend)
    with pytest.raises(ValueError, match="start row 3 is one mask leaves out.*start=50"):
        hminsel.select(x, 5, mask=allowed, start=3, backend=backend)
    with pytest.raises(ValueError, match=r"shape \(450,\); got shape \(3,\)"):
        hminsel.select(x, 5, mask=np.ones(3, bool), backend=backend)
    with pytest.raises(ValueError, match="np.isin"):
        hminsel.select(x, 5, mask=np.arange(450), backend=backend)
    with pytest.raises(ValueError, match="mask allows no row"):
        hminsel.select(x, 5, mask=np.zeros(450, bool), backend=backend)
    x[50:] = np.nan
    with pytest.raises(ValueError, match="every row mask allows holds NaN"):
        hminsel.select(x, 5, mask=allowed, nonfinite="skip", backend=backend)
    x[50:] = pool
    x[[50, 60]] = np.nan  # nonfinite="skip" and the mask together
    sel = hminsel.select(x, 0.5, mask=allowed, nonfinite="skip", backend=backend)
    assert len(sel.indices) == 199 and allowed[sel.indices].all() and not {50, 60} & set(sel.indices.tolist())
    with pytest.raises(ValueError, match="such as start=51"):  # the first row both allow
        hminsel.select(x, 5, mask=allowed, start=50, nonfinite="skip", backend=backend)


def test_torch_in_torch_out(backend):
    torch = pytest.importorskip("torch")
    x = torch.from_numpy(clustered(400, 12, seed=6))
    sel = hminsel.select(x, 25, backend=backend)
    assert isinstance(sel.indices, torch.Tensor) and sel.indices.dtype == torch.int64
    ref = hminsel.select(x.numpy(), 25, backend=backend)
    np.testing.assert_array_equal(sel.indices.numpy(), ref.indices)
    xb = x.to(torch.bfloat16)
    assert len(hminsel.select(xb, 25, backend=backend).indices) == 25
    allowed = torch.arange(400) % 3 == 0  # a torch mask
    sel = hminsel.select(x, 25, mask=allowed, backend=backend)
    np.testing.assert_array_equal(sel.indices.numpy(), hminsel.select(x.numpy(), 25, mask=allowed.numpy(),
                                                                      backend=backend).indices)
    assert (sel.indices % 3 == 0).all()


def test_list_input_and_progress_callback(backend):
    seen = []
    sel = hminsel.select([[0.0, 0], [3, 4], [1, 1]], 3, backend=backend,
                         progress=lambda done, total: seen.append((done, total)))
    assert sel.indices.tolist() == [0, 1, 2] and seen[-1] == (3, 3)
