"""select_batched on the device path copies only the rows it runs.

A large problem reads its rows of x in place when they are a range of rows (one
problem's copy at a time otherwise); the small problems' rows are gathered, and
prepared for cosine, on their own; the zero-row check still covers all of x.
Runs under ``TRITON_INTERPRET=1`` on CPU tensors without a GPU.
"""
from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the device path runs on torch tensors")
pytest.importorskip("triton", reason="triton is not installed (pip install triton)")

import hminsel  # noqa: E402
from conftest import TRITON_DEV as DEV, clustered  # noqa: E402
from hminsel import _batched_device as bd  # noqa: E402

pytestmark = pytest.mark.interpret


def test_a_large_problem_reads_a_range_of_rows_in_place():
    t = torch.arange(40.0, device=DEV).reshape(20, 2)
    order = np.array([0, 1, 2, 3, 5, 7, 9])  # problem 0: rows 0 .. 3; problem 1: rows 5, 7, 9
    whole = bd._problem_rows(t, order, 0, 4)
    assert whole.data_ptr() == t.data_ptr() and tuple(whole.shape) == (4, 2)
    assert bd._problem_rows(t, order, 4, 7).tolist() == t[[5, 7, 9]].tolist()
    assert bd._problem_rows(t, None, 2, 5).data_ptr() == t[2:].data_ptr()
    assert tuple(bd._problem_rows(t, order, 7, 7).shape) == (0, 2)


def test_only_the_small_problems_rows_are_gathered():
    t = torch.randn(30, 3, generator=torch.Generator().manual_seed(0)).to(DEV)
    ptr = np.array([0, 10, 25, 30])
    small = np.array([True, False, True])
    xs, ptr_s = bd._small_rows(t, None, ptr, small, "l2")  # x itself: no copy
    assert xs.data_ptr() == t.data_ptr() and ptr_s is ptr
    xs, ptr_s = bd._small_rows(t, None, ptr, small, "cosine")
    assert ptr_s.tolist() == [0, 10, 10, 15]
    rows = torch.cat([t[:10], t[25:]])
    torch.testing.assert_close(xs, rows / torch.linalg.vector_norm(rows, dim=1, keepdim=True))
    order = np.arange(30)[::-1].copy()  # problem order: x's rows backwards
    xs, ptr_s = bd._small_rows(t, order, ptr, small, "l2")
    assert ptr_s.tolist() == [0, 10, 10, 15]
    assert xs.tolist() == t[order[np.r_[0:10, 25:30]]].tolist()


@pytest.mark.parametrize("d", [8, 12])  # the small ones: fps_batched in registers
def test_labels_small_and_large_cosine_equal_the_host(monkeypatch, d):
    """Labels of both kinds in one call (cosine, a mask): the host's answer; a zero row
    anywhere in x is named by its row of x, as on the host."""
    import hminsel.triton.batched as tb
    monkeypatch.setattr(tb, "MAX_ELEMENTS", 30 * 16)  # labels over 60 rows (d = 12: 30): the whole GPU
    labels = np.repeat([3, 1, 2, 0], [90, 40, 25, 70])
    x = clustered(len(labels), d, seed=4)
    mask = np.random.default_rng(1).random(len(x)) < 0.8
    ran, small = [], []
    monkeypatch.setattr(bd, "select",
                        lambda rows, *a, **kw: ran.append(len(rows)) or hminsel.select(rows, *a, **kw))
    gather = bd._small_rows
    monkeypatch.setattr(bd, "_small_rows", lambda *a: small.append(gather(*a)[0].shape[0]) or gather(*a))
    got = hminsel.select_batched(torch.from_numpy(x).to(DEV), 0.2, groups=labels, mask=mask,
                                 metric="cosine", backend="triton")
    assert ran and small and sum(ran) + small[0] == mask.sum()  # both kinds, each row once
    want = hminsel.select_batched(x, 0.2, groups=labels, mask=mask, metric="cosine", backend="numpy")
    assert got.indices.tolist() == want.indices.tolist() and got.ptr.tolist() == want.ptr.tolist()
    np.testing.assert_allclose(got.radii.cpu().numpy(), want.radii, rtol=1e-5, atol=1e-7)
    x[17] = 0.0  # a row of label 3, which the mask leaves in or out: named all the same
    for keep in (True, False):
        mask[17] = keep
        with pytest.raises(ValueError, match="row 17 of x is all zeros"):
            hminsel.select_batched(torch.from_numpy(x).to(DEV), 0.2, groups=labels, mask=mask,
                                   metric="cosine", backend="triton")
        with pytest.raises(ValueError, match="row 17 of x is all zeros"):
            hminsel.select_batched(x, 0.2, groups=labels, mask=mask, metric="cosine", backend="numpy")


def test_a_problem_of_too_small_values_raises_on_the_device():
    """As on the host: one problem's values too small for float32 sums raise, named."""
    x = clustered(300, 3, seed=2).astype(np.float32)
    x[100:200] *= np.float32(1e-20)
    with pytest.raises(ValueError, match="problem 1's values are all below"):
        hminsel.select_batched(torch.from_numpy(x).to(DEV), 5, ptr=[0, 100, 200, 300], backend="triton")
    labels = np.repeat([4, 7, 9], 100)
    with pytest.raises(ValueError, match="label 7's values are all below"):
        hminsel.select_batched(torch.from_numpy(x).to(DEV), 5, groups=labels, backend="triton")
    wide = clustered(300, 20, seed=2).astype(np.float32)  # d > 16: every problem through select
    wide[100:200] *= np.float32(1e-20)
    with pytest.raises(ValueError, match="problem 1's values are all below"):  # checked before it
        hminsel.select_batched(torch.from_numpy(wide).to(DEV), 5, ptr=[0, 100, 200, 300], backend="triton")
    x[100:200] = 1.0  # duplicates: distances exactly 0, selected
    res = hminsel.select_batched(torch.from_numpy(x).to(DEV), 5, ptr=[0, 100, 200, 300], backend="triton")
    assert res.radii[6:10].tolist() == [0.0] * 4


@pytest.mark.parametrize("d", [3, 40])
def test_the_device_scans_chunk_by_elements(monkeypatch, d):
    """The scans take ``CHUNK_ELEMENTS // d`` rows a chunk (at least ``CHUNK``): in chunks
    that end mid-array, the finite mask, each row's largest magnitude and the unit rows are
    those of one pass."""
    from hminsel import _device
    monkeypatch.setattr(_device, "CHUNK", 5)
    monkeypatch.setattr(_device, "CHUNK_ELEMENTS", 7 * 3)  # d = 3: 7 rows a chunk; d = 40: 5
    assert _device.chunk_rows(torch.empty(0, d)) == (7 if d == 3 else 5)
    x = torch.randn(33, d, generator=torch.Generator().manual_seed(d)).to(DEV)
    x[[6, 7, 30]] = float("nan")
    tops = torch.empty(len(x), device=DEV)
    mask, top = _device.scan(x, row_tops=tops)
    assert np.flatnonzero(~mask).tolist() == [6, 7, 30]
    finite = torch.nan_to_num(x, nan=0.0).abs()
    assert top == pytest.approx(float(finite.max())) and torch.equal(tops, finite.amax(1))
    y = torch.nan_to_num(x, nan=1.0)
    unit = _device.prepare(y, "cosine")
    torch.testing.assert_close(unit, y / torch.linalg.vector_norm(y, dim=1, keepdim=True))
