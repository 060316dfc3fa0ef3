"""``radius`` over row shards: hminsel.distributed's select, select_batched and command line cut
where ``hminsel.select`` (or ``select_batched``) cuts on the rows of all ranks (gloo, several
processes)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from test_distributed import _split, launch, run_ranks  # skips where torch.distributed with gloo is missing

import hminsel  # noqa: E402
import hminsel.distributed as hdist  # noqa: E402
from conftest import clustered  # noqa: E402
from test_distributed_groups import _select_groups  # noqa: E402


def _lattice(n_side: int = 12) -> np.ndarray:
    """A square lattice of spacing 1 with a finer corner: a radius of 1 is met exactly there."""
    grid = np.stack(np.meshgrid(np.arange(n_side), np.arange(n_side)), -1).reshape(-1, 2)
    return np.concatenate([grid, grid[:20] * 0.25 + 0.1]).astype(np.float32)


def _select_radius(rank, size, x, k, sizes, kwargs, plain=None):
    """The picks with ``kwargs``'s radius, and the collectives of ``plain`` picks without one."""
    kwargs = dict(kwargs)
    mask = kwargs.pop("mask", None)
    mask = None if mask is None else _split(mask, size, sizes)[rank]
    sel = hdist.select(_split(x, size, sizes)[rank], k, mask=mask, **kwargs)
    kwargs.pop("radius")
    without = hdist.select(_split(x, size, sizes)[rank], plain, mask=mask, **kwargs)
    return np.asarray(sel.indices), np.asarray(sel.radii), sel.stats, without.stats.collectives


CASES = {  # name: (size, shard sizes, data, k, radius, select's options)
    "2-rounds": (2, None, "clusters", 1.0, 0.3, dict(protocol="rounds", head_size=32)),
    "3-empty-rank-steps": (3, [500, 0, 700], "clusters", 1.0, 0.3, dict(protocol="steps")),
    "2-rounds-adapted-cosine": (2, None, "clusters", 1.0, 0.003, dict(metric="cosine")),
    "2-rounds-k-first": (2, None, "clusters", 40, 0.3, dict(protocol="rounds", head_size=32)),
    "3-rounds-lattice": (3, None, "lattice", 1.0, 1.0, dict(protocol="rounds", head_size=16)),
    "2-steps-lattice": (2, None, "lattice", 1.0, 1.0, dict(protocol="steps")),
    "2-rounds-duplicates-zero": (2, None, "duplicates", 1.0, 0.0, dict(head_size=8)),
    "2-rounds-init-mask": (2, None, "clusters", 1.0, 0.3, dict(init=[900, 3], mask=True)),
    "2-steps-cap-past-the-rows": (2, None, "clusters", 5000, 0.3, dict(protocol="steps")),
}


@pytest.mark.parametrize("case", list(CASES))
def test_select_cuts_where_one_process_cuts(case):
    size, sizes, data, k, radius, kwargs = CASES[case]
    if data == "clusters":
        x = clustered(1200, 16, seed=3)
    elif data == "lattice":
        x = _lattice()
    else:  # rows repeated: radius 0 drops the copies, nothing else
        x = np.repeat(clustered(150, 4, seed=5), 3, axis=0)[np.random.default_rng(0).permutation(450)]
    if kwargs.get("mask"):
        kwargs = {**kwargs, "mask": np.random.default_rng(2).random(len(x)) < 0.5}
    one = {key: v for key, v in kwargs.items() if key not in ("protocol", "head_size")}
    ref = hminsel.select(x, k, radius=radius, **one)
    assert 1 < len(ref.indices) < len(x)
    assert ref.stats.radius_reached == (k != 40)  # 40 picks come before the radius
    full = hminsel.select(x, len(ref.indices) + ref.stats.radius_reached, **one)
    if ref.stats.radius_reached:  # the next pick of the full run lies within the radius
        assert full.radii[len(ref.indices)] <= radius
    out = run_ranks(size, _select_radius, x, k, sizes, dict(radius=radius, **kwargs),
                    len(ref.indices))
    for rank, (status, result) in out.items():
        assert status == "ok", result
        indices, radii, stats, plain = result
        np.testing.assert_array_equal(indices, ref.indices, err_msg=f"rank {rank}")
        np.testing.assert_allclose(radii, ref.radii, rtol=1e-6)
        assert stats.radius_reached == ref.stats.radius_reached
        assert stats.collectives <= plain + 1  # stopped at the radius, not run on to k and cut


def _bad_radius(rank, size, x):
    return hdist.select(_split(x, size)[rank], 5, radius=-1.0)


def test_a_bad_radius_raises_on_every_rank():
    out = run_ranks(2, _bad_radius, clustered(40, 3, seed=1))
    for status, result in out.values():
        assert status == "error" and "radius must be finite and >= 0" in result


@pytest.mark.parametrize("solo,k,protocol", [(None, 1.0, "rounds"), (1, 1.0, "rounds"),
                                             ("mixed", {"a": 10_000, "b": 1, "c": 40}, "steps")],
                         ids=["labels-on-owners", "labels-over-the-shards", "mixed-steps"])
def test_select_batched_cuts_each_label_as_one_process(solo, k, protocol):
    x = clustered(600, 12, seed=4)
    rng = np.random.default_rng(1)
    labels = np.array(["a", "b", "c", "d"])[rng.integers(0, 4, 600)]
    labels[labels == "d"] = "a"  # a the largest label
    mask = rng.random(600) < 0.7
    kwargs = dict(radius=0.3, init=[1, 599], protocol=protocol)
    want = hminsel.select_batched(x, k, groups=labels, mask=mask, init=kwargs["init"], radius=0.3)
    made = np.diff(np.asarray(want.ptr))
    if solo == "mixed":  # label a over the shards, b and c on owners; b of one pick (no radius)
        largest = int(np.sum((mask | np.isin(np.arange(600), kwargs["init"])) & (labels == "a")))
        solo = (largest - 1) * x.shape[1] * x.itemsize
        assert made[1] == 1 + int(labels[599] == "b") + int(labels[1] == "b")
    else:
        assert (made > 1).all()
    assert (made < np.bincount(np.searchsorted(["a", "b", "c"], labels))).all()
    out = run_ranks(3, _select_groups, x, labels, mask, k, [250, 100, 250], kwargs, solo)
    for rank in range(3):
        status, got = out[rank]
        assert status == "ok", got
        indices, ptr, radii, _, caps = got
        assert indices == np.asarray(want.indices).tolist() and ptr == np.asarray(want.ptr).tolist()
        assert caps == want.caps.tolist()
        np.testing.assert_allclose(radii, want.radii, rtol=1e-6)


def test_command_line_radius(tmp_path):
    x = clustered(900, 12, seed=11)
    labels = np.array(["x", "y"])[np.random.default_rng(0).integers(0, 2, 900)]
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "g.npy", labels)
    cmd = ["select", tmp_path / "x.npy", "--radius", "0.3", "--out", tmp_path / "r.npy"]
    code, out, err = launch(2, cmd)
    assert code == 0, err
    want = hminsel.select(x, 1.0, radius=0.3)
    np.testing.assert_array_equal(np.load(tmp_path / "r.npy"), want.indices)
    m = json.loads((tmp_path / "r.json").read_text())
    assert m["radius"] == 0.3 and m["radius_reached"] is True and m["k"] == len(want.indices)
    assert "stopped at --radius 0.3" in out
    capped = cmd[:-2] + ["--k", "20", "--out", tmp_path / "c.npy"]  # the count comes first
    code, out, err = launch(2, capped)
    assert code == 0, err
    assert json.loads((tmp_path / "c.json").read_text())["radius_reached"] is False
    assert "--radius 0.3 not reached" in out
    per_label = cmd[:-2] + ["--groups", tmp_path / "g.npy", "--out", tmp_path / "g_out.npy"]
    code, out, err = launch(2, per_label)
    assert code == 0, err
    want = hminsel.select_batched(x, 1.0, groups=labels, radius=0.3)
    np.testing.assert_array_equal(np.load(tmp_path / "g_out.npy"), want.indices)
    assert "each label's picks end at --radius 0.3" in out
    per = json.loads((tmp_path / "g_out.json").read_text())["groups"]["labels"]
    assert [(g["picks"], g["cap"], g["radius_reached"]) for g in per] == list(zip(
        np.diff(want.ptr).tolist(), want.caps.tolist(), [True, True]))
    capped = per_label[:-2] + ["--k", "5000", "--out", tmp_path / "k.npy"]  # a cap past every label's rows
    code, out, err = launch(2, capped)
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "k.npy"), np.load(tmp_path / "g_out.npy"))


@pytest.mark.parametrize("bad,said", [
    ([], "say how many rows to pick: --k, --fraction, or --radius"),
    (["--radius", "-1"], "--radius must be a finite distance >= 0"),
    (["--radius", "nan"], "--radius must be a finite distance >= 0"),
])
def test_command_line_size_refusals(tmp_path, capsys, bad, said):
    from hminsel.distributed.__main__ import main
    with pytest.raises(SystemExit) as exc:
        main(["select", str(tmp_path / "x.npy"), "--out", str(tmp_path / "p.npy"), *bad])
    assert exc.value.code == 2 and said in capsys.readouterr().err
