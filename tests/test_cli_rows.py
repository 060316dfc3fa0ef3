"""hminsel select --init and --mask: continuing a selection, and the rows that may be picked."""
from __future__ import annotations

import json

import numpy as np
import pytest

import hminsel
from hminsel.cli.report import random_rows
from cli_helpers import run


def test_select_init_continues_an_earlier_selection(tmp_path, emb, capsys):
    """--init: an earlier --out's picks, then more; the same sequence as one longer run."""
    code, _, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 10, "--metric", "cosine",
                       "--out", tmp_path / "a.npy", "--no-progress", "--no-baseline")
    assert code == 0, err
    code, out, err = run(capsys, "select", tmp_path / "emb.npy", "--fraction", 0.1, "--metric",
                         "cosine", "--init", tmp_path / "a.npy", "--out", tmp_path / "b.npy",
                         "--data", tmp_path / "data.jsonl", "--subset-out", tmp_path / "b.jsonl",
                         "--no-progress")
    assert code == 0, err
    assert "picked 30 of 300 rows" in out and "continued from the 10 picks in" in out
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    np.testing.assert_array_equal(b[:10], a)
    np.testing.assert_array_equal(b, hminsel.select(emb, 30, metric="cosine").indices)
    m = json.loads((tmp_path / "b.json").read_text())
    full = hminsel.select(emb, 30, metric="cosine")
    assert m["init"] == {"path": str(tmp_path / "a.npy"), "picks": 10,  # the new picks' radius
                         "new_picks_min_radius": pytest.approx(float(np.min(full.radii[10:]))),
                         "new_picks_over_random": pytest.approx(  # against a random draw's new rows
                             np.min(full.radii[10:]) / m["random_baseline"]["new_rows_min_radius"])}
    assert m["init"]["new_picks_over_random"] > 1  # FPS's new picks keep farther apart than random ones
    assert m["start"] is None and f"each new pick lies >= {m['init']['new_picks_min_radius']:.6g}" in out
    assert m["k"] == 30 and m["start_index"] == int(a[0])
    assert [json.loads(line)["id"] for line in (tmp_path / "b.jsonl").read_text().splitlines()] == b.tolist()

    # a hand-made init, in its own order (not an FPS prefix): kept first, then the greedy picks
    np.save(tmp_path / "mine.npy", np.array([7, 3], dtype=np.int32))
    code, _, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 12, "--init",
                       tmp_path / "mine.npy", "--out", tmp_path / "c.npy", "--no-progress")
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"),
                                  hminsel.select(emb, 12, init=[7, 3]).indices)


def test_select_mask_by_bools_or_rows(tmp_path, emb, capsys):
    """--mask: the rows that may be picked (bools or row indices); the baseline draws from them."""
    allowed = np.arange(300) % 3 != 1
    np.save(tmp_path / "m.npy", allowed)
    np.save(tmp_path / "r.npy", np.flatnonzero(allowed).astype(np.uint32))
    for name in ("m", "r"):
        code, out, err = run(capsys, "select", tmp_path / "emb.npy", "--fraction", 0.1, "--mask",
                             tmp_path / f"{name}.npy", "--out", tmp_path / f"{name}.out.npy",
                             "--no-progress")
        assert code == 0 and "picked among the 200 rows --mask allows" in out, err
    picked = np.load(tmp_path / "m.out.npy")
    np.testing.assert_array_equal(picked, np.load(tmp_path / "r.out.npy"))
    np.testing.assert_array_equal(picked, hminsel.select(emb, 20, mask=allowed).indices)
    m = json.loads((tmp_path / "m.out.json").read_text())
    assert m["mask"] == {"path": str(tmp_path / "m.npy"), "rows": 200} and m["k"] == 20
    rows = np.flatnonzero(allowed)
    rows = np.sort(rows[np.random.default_rng(0).choice(200, size=20, replace=False)])
    assert m["random_baseline"]["h_min"] == pytest.approx(hminsel.hmin(emb[rows]).value)
    np.save(tmp_path / "short.npy", allowed[:10])
    np.save(tmp_path / "far.npy", np.array([3, 300]))
    np.save(tmp_path / "ints.npy", allowed.astype(np.uint8))  # 0s and 1s: a mask, not row indices
    for bad, said in (("short.npy", "shape (300,)"), ("far.npy", "[0, 299]"), ("ints.npy", "repeat"),
                      ("data.jsonl", "expected a .npy"), ("m.out.npy", "different files")):
        code, _, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 5, "--mask", tmp_path / bad,
                           "--out", tmp_path / "m.out.npy", "--force", "--no-progress")
        assert code == 2 and said in err, err


def test_random_baseline_holds_the_init_rows(tmp_path, emb, capsys):
    """With --init the random subset holds its rows too (as the selection does, even outside
    --mask) and draws the other k - len(init) from the rows the selection could pick."""
    allowed = np.arange(300) >= 100
    held = np.array([5, 50, 99])
    rows = random_rows(len(emb), 20, 0, allowed=allowed, keep=held)
    assert len(rows) == 20 and np.isin(held, rows).all() and allowed[np.setdiff1d(rows, held)].all()
    np.testing.assert_array_equal(rows, random_rows(len(emb), 20, 0, allowed=allowed, keep=held))
    unmasked = random_rows(len(emb), 20, 0, keep=held)
    assert len(unmasked) == 20 and np.isin(held, unmasked).all()
    np.save(tmp_path / "held.npy", held)
    np.save(tmp_path / "pool.npy", allowed)
    code, out, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 20, "--init",
                         tmp_path / "held.npy", "--mask", tmp_path / "pool.npy", "--out",
                         tmp_path / "p.npy", "--no-progress")
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"),
                                  hminsel.select(emb, 20, init=held, mask=allowed).indices)
    m = json.loads((tmp_path / "p.json").read_text())
    assert m["random_baseline"]["size"] == 20 and "--init" in m["random_baseline"]["method"]
    assert m["random_baseline"]["h_min"] == pytest.approx(hminsel.hmin(emb[rows]).value)
    # the new picks against the random subset's new rows: each one's distance to every other
    # row of the subset (the init rows' own pairs left out on both sides)
    new = np.setdiff1d(rows, held)
    d = np.sqrt(((emb[new, None, :].astype(np.float64) - emb[None, rows, :]) ** 2).sum(-1))
    d[new[:, None] == rows[None, :]] = np.inf
    assert m["random_baseline"]["new_rows_min_radius"] == pytest.approx(d.min(), rel=1e-5)
    picks = m["init"]["new_picks_min_radius"]
    assert m["init"]["new_picks_over_random"] == pytest.approx(picks / d.min(), rel=1e-5)
    assert f"{m['init']['new_picks_over_random']:.2f}x what a random subset's new rows keep" in out


@pytest.mark.parametrize("case", ["start", "start-0", "random-start", "too-many", "not-indices", "floats",
                                  "range", "repeats", "missing", "not-npy", "same-as-out"])
def test_select_init_errors(tmp_path, emb, capsys, case):
    np.save(tmp_path / "a.npy", np.arange(10, dtype=np.int64))
    init, extra = tmp_path / "a.npy", []
    if case == "start":
        extra = ["--start", 5]
    elif case == "start-0":  # given, though it is the default: it would be ignored
        extra = ["--start", 0]
    elif case == "random-start":
        extra = ["--start", "random"]
    elif case == "too-many":
        extra = ["--k", 5]
    elif case in ("not-indices", "floats", "range", "repeats"):
        init = tmp_path / "bad.npy"
        np.save(init, {"not-indices": np.zeros((2, 2), np.int64), "floats": np.array([1.0, 2.0]),
                       "range": np.array([1, 300]), "repeats": np.array([4, 4])}[case])
    elif case == "missing":
        init = tmp_path / "none.npy"
    elif case == "not-npy":
        init = tmp_path / "data.jsonl"
    out = init if case == "same-as-out" else tmp_path / "out.npy"
    args = ["select", tmp_path / "emb.npy", "--init", init, "--out", out, "--no-progress", *extra]
    code, _, err = run(capsys, *(args if "--k" in extra else args + ["--k", 20]), "--force")
    want = {"start": "drop --start", "start-0": "drop --start (got --start 0)", "random-start": "drop --start", "too-many": "k = 5",
            "not-indices": "shape (2, 2)", "floats": "dtype float64", "range": "[0, 299]; got 300",
            "repeats": "repeated", "missing": "no such file", "not-npy": "expected a .npy",
            "same-as-out": "different files"}[case]
    assert code == 2 and want in err, err
    assert np.load(tmp_path / "a.npy").tolist() == list(range(10))  # --force overwrote no input
