"""The command line's per-label quotas: --groups LABELS.npy and --groups-column NAME."""
from __future__ import annotations

import json

import numpy as np
import pytest

import hminsel
from cli_helpers import run


@pytest.mark.parametrize("kind", ["str", "int"])
def test_select_groups_quotas_per_label(tmp_path, emb, capsys, kind):
    """--groups: --fraction of each label (or --k of every label) as select_batched picks them,
    with --mask; the manifest's h_min is the whole subset's, each label's own listed; the
    random baseline draws as many rows from each label."""
    names = np.array(["code", "chat", "math"]) if kind == "str" else np.array([7, -1, 30])
    labels = names[np.random.default_rng(3).integers(0, 3, 300)]
    np.save(tmp_path / "g.npy", labels)
    allowed = np.arange(300) % 4 != 0
    np.save(tmp_path / "m.npy", allowed)
    code, out, err = run(capsys, "select", tmp_path / "emb.npy", "--fraction", 0.1, "--groups",
                         tmp_path / "g.npy", "--mask", tmp_path / "m.npy", "--metric", "cosine",
                         "--out", tmp_path / "o.npy", "--data", tmp_path / "data.jsonl",
                         "--subset-out", tmp_path / "o.jsonl", "--no-progress")
    assert code == 0, err
    want = hminsel.select_batched(emb, 0.1, groups=labels, mask=allowed, metric="cosine")
    picked = np.load(tmp_path / "o.npy")
    np.testing.assert_array_equal(picked, want.indices)
    assert "per label (3 labels)" in out and f"picked {len(picked)} of 300 rows" in out
    m = json.loads((tmp_path / "o.json").read_text())
    assert m["algorithm"] == "per label (select_batched)" and m["k"] == len(picked)
    assert m["h_min"] == pytest.approx(hminsel.hmin(emb[np.sort(picked)], metric="cosine").value)
    per = m["groups"]["labels"]
    assert [g["label"] for g in per] == sorted(names.tolist())
    for g, lo, hi in zip(per, want.ptr[:-1], want.ptr[1:]):
        rows = labels == g["label"]
        assert g["rows"] == rows.sum() and g["picks"] == hi - lo == np.ceil(0.1 * (rows & allowed).sum())
        assert g["h_min"] == pytest.approx(want.radii[hi - 1]) and g["random_h_min"] is not None
    assert m["random_baseline"]["size"] == len(picked) and "--groups" in m["random_baseline"]["method"]
    assert [json.loads(line)["id"] for line in (tmp_path / "o.jsonl").read_text().splitlines()] == picked.tolist()

    code, _, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 5, "--groups", tmp_path / "g.npy",
                       "--start", "random", "--seed", 4, "--out", tmp_path / "k.npy", "--no-progress",
                       "--no-baseline")
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "k.npy"), hminsel.select_batched(
        emb, 5, groups=labels, start="random", seed=4).indices)


def test_select_groups_column_of_a_table_or_the_data(tmp_path, emb, capsys):
    """--groups-column: the labels from a column of a parquet input, or a field of --data."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    labels = np.array(["x", "y", "z"])[np.arange(300) % 3]
    pq.write_table(pa.table({"vec": pa.array(emb.tolist(), pa.list_(pa.float32())),
                             "task": pa.array(labels.tolist()).dictionary_encode(),
                             "score": pa.array(np.linspace(0, 1, 300)),
                             "cls": pa.array((np.arange(300) % 3).astype(float))}), tmp_path / "e.parquet")
    want = hminsel.select_batched(emb, 4, groups=labels).indices
    code, out, err = run(capsys, "select", tmp_path / "e.parquet", "--column", "vec", "--k", 4,
                         "--groups-column", "task", "--out", tmp_path / "p.npy", "--no-progress")
    assert code == 0 and "per label (3 labels)" in out, err
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), want)
    m = json.loads((tmp_path / "p.json").read_text())
    assert m["groups"]["path"] == str(tmp_path / "e.parquet") and m["groups"]["column"] == "task"

    records = [json.dumps({"id": i, "task": int(i % 3)}) + "\n" for i in range(300)]
    (tmp_path / "tasks.jsonl").write_text("".join(records))
    code, _, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 4, "--groups-column", "task",
                       "--data", tmp_path / "tasks.jsonl", "--subset-out", tmp_path / "t.jsonl",
                       "--out", tmp_path / "t.npy", "--no-progress", "--no-baseline")
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "t.npy"),
                                  hminsel.select_batched(emb, 4, groups=np.arange(300) % 3).indices)
    code, _, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 4, "--groups-column", "task",
                       "--data", tmp_path / "tasks.jsonl", "--out", tmp_path / "u.npy",
                       "--no-progress")  # the labels only: no --subset-out
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "u.npy"), np.load(tmp_path / "t.npy"))
    (tmp_path / "bad.jsonl").write_text("".join(records[:5]) + json.dumps({"id": 5}) + "\n"
                                        + "".join(records[6:]))
    code, out, err = run(capsys, "select", tmp_path / "e.parquet", "--column", "vec", "--k", 4,
                         "--groups-column", "cls", "--out", tmp_path / "c.npy", "--no-progress")
    assert code == 0, err  # a double column of whole numbers: integer labels
    np.testing.assert_array_equal(np.load(tmp_path / "c.npy"),
                                  hminsel.select_batched(emb, 4, groups=np.arange(300) % 3).indices)
    for args, said in ((("--groups-column", "nope", "--column", "vec"), "no column 'nope'; columns: vec, task, score, cls"),
                       (("--groups-column", "score", "--column", "vec"),
                        "column 'score': groups must hold integer or string labels (whole-number floats"),
                       (("--groups-column", "task", "--groups", tmp_path / "g.npy", "--column", "vec"),
                        "pass one")):
        code, _, err = run(capsys, "select", tmp_path / "e.parquet", "--k", 2, *args, "--out",
                           tmp_path / "q.npy", "--no-progress", "--force")
        assert code == 2 and said in err, (args, err)
    code, _, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 2, "--groups-column", "task",
                       "--out", tmp_path / "q.npy", "--no-progress")
    assert code == 2 and "--groups LABELS.npy" in err, err
    code, _, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 2, "--groups-column", "task",
                       "--data", tmp_path / "bad.jsonl", "--subset-out", tmp_path / "b.jsonl",
                       "--out", tmp_path / "q.npy", "--no-progress", "--force")
    assert code == 2 and "line 6: expected an integer or string label in field 'task'; got no such field" in err, err


def test_select_groups_errors(tmp_path, emb, capsys):
    np.save(tmp_path / "g.npy", np.repeat([0, 1, 2], 100))
    np.save(tmp_path / "few.npy", np.repeat([0, 1], [297, 3]))
    np.save(tmp_path / "floats.npy", np.full(300, 0.5))
    np.save(tmp_path / "short.npy", np.zeros(10, int))
    np.save(tmp_path / "i.npy", np.array([1, 2]))
    np.save(tmp_path / "none.npy", np.zeros(300, bool))
    g = ("--groups", tmp_path / "g.npy")
    np.save(tmp_path / "many.npy", np.arange(6))  # six rows of label 0
    for args, said in (((*g, "--init", tmp_path / "many.npy"), "label 0 has 6 init rows but k asks "
                        "for 5 picks; k counts them too (need k >= its init rows): raise --k"),
                       ((*g, "--init", tmp_path / "i.npy", "--start", 3), "drop --start"),
                       ((*g, "--start", 5), "--start random"),
                       ((*g, "--algorithm", "lazy"), "drop --algorithm"),
                       (("--groups", tmp_path / "few.npy"), "larger than label 1, which has 3 rows"),
                       (("--groups", tmp_path / "floats.npy"), "whole-number floats read as integers); got 0.5 at row 0"),
                       (("--groups", tmp_path / "short.npy"), "shape (300,)"),
                       (("--groups", tmp_path / "emb.npy"), "different files")):
        code, _, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 5, *args, "--out",
                           tmp_path / "o.npy", "--no-progress")
        assert code == 2 and said in err, (args, err)
    code, _, err = run(capsys, "select", tmp_path / "emb.npy", "--fraction", 0.5, *g, "--mask",
                       tmp_path / "none.npy", "--out", tmp_path / "o.npy", "--no-progress")
    assert code == 2 and "no label has a row to pick" in err, err
    code, _, err = run(capsys, "select", tmp_path / "emb.npy", "--fraction", 0, *g, "--out",
                       tmp_path / "o.npy", "--no-progress")
    assert code == 2 and "--fraction must be in (0, 1]; got 0.0" in err, err


def test_select_groups_edges(tmp_path, emb, capsys):
    """Byte-string labels as text, labels too large for int64, --k 0, a data file as the input,
    and --start random without --seed: seed 0, as the manifest says."""
    np.save(tmp_path / "b.npy", np.array([b"x", b"y"])[np.arange(300) % 2])
    code, _, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 3, "--groups", tmp_path / "b.npy",
                       "--out", tmp_path / "o.npy", "--no-progress")
    assert code == 0, err
    assert [g["label"] for g in json.loads((tmp_path / "o.json").read_text())["groups"]["labels"]] == ["x", "y"]
    np.save(tmp_path / "big.npy", np.full(300, 2 ** 63, np.uint64))
    (tmp_path / "big.jsonl").write_text("".join(json.dumps({"t": 2 ** 64}) + "\n" for _ in range(300)))
    for args, said in ((("--k", 3, "--groups", tmp_path / "big.npy"), "does not fit in int64"),
                       (("--k", 0, "--groups", tmp_path / "b.npy"), "--k must be >= 1; got 0"),
                       (("--k", 3, "--groups-column", "t", "--data", tmp_path / "big.jsonl",
                         "--subset-out", tmp_path / "s.jsonl"), "line 1: label 18446744073709551616")):
        code, _, err = run(capsys, "select", tmp_path / "emb.npy", *args, "--out", tmp_path / "p.npy",
                           "--no-progress")
        assert code == 2 and said in err, (args, err)
    code, _, err = run(capsys, "select", tmp_path / "data.jsonl", "--k", 3, "--groups-column", "id",
                       "--out", tmp_path / "p.npy", "--no-progress")
    assert code == 2 and "is a data file, not embeddings" in err, err
    picks = []
    for name in ("r1", "r2"):
        code, _, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 3, "--groups", tmp_path / "b.npy",
                           "--start", "random", "--out", tmp_path / f"{name}.npy", "--no-progress")
        assert code == 0, err
        picks.append(np.load(tmp_path / f"{name}.npy").tolist())
    want = hminsel.select_batched(emb, 3, groups=np.array(["x", "y"])[np.arange(300) % 2],
                                  start="random", seed=0)
    assert picks[0] == picks[1] == want.indices.tolist()
    code, _, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 3, "--start", "random",
                       "--out", tmp_path / "r3.npy", "--no-progress")
    assert code == 0 and np.load(tmp_path / "r3.npy").tolist() == hminsel.select(
        emb, 3, start="random", seed=0).indices.tolist()


def test_select_groups_skip_nonfinite(tmp_path, capsys):
    """--nonfinite skip with --groups: NaN rows left out of each label and of the baseline."""
    rng = np.random.default_rng(0)
    x = rng.standard_normal((200, 6)).astype(np.float32)
    x[[0, 7, 150]] = np.nan
    labels = rng.integers(0, 3, 200)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "g.npy", labels)
    code, out, err = run(capsys, "select", tmp_path / "x.npy", "--fraction", 0.1, "--groups",
                         tmp_path / "g.npy", "--nonfinite", "skip", "--out", tmp_path / "o.npy",
                         "--no-progress")
    assert code == 0, err
    picked = np.load(tmp_path / "o.npy")
    np.testing.assert_array_equal(picked, hminsel.select_batched(x, 0.1, groups=labels, nonfinite="skip").indices)
    m = json.loads((tmp_path / "o.json").read_text())
    assert m["h_min"] is not None and m["random_baseline"]["h_min"] is not None
    assert not {0, 7, 150} & set(picked.tolist())
    assert m["nonfinite_skipped"] == {"count": 3, "first_rows": [0, 7, 150]}
    assert "left out 3 rows with NaN or inf (the first: row 0)" in out


def test_select_groups_continue_from_init(tmp_path, emb, capsys):
    """--groups with --init: a label holding init rows continues from them (they count toward
    its quota; --start random draws the other labels' starts), and the random baseline holds
    them, drawing the rest of each label's rows."""
    labels = np.repeat(["a", "b", "c"], 100)
    np.save(tmp_path / "g.npy", labels)
    init = np.array([250, 3, 40, 201])  # two of a, none of b, two of c
    np.save(tmp_path / "i.npy", init)
    code, out, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 6, "--groups", tmp_path / "g.npy",
                         "--init", tmp_path / "i.npy", "--start", "random", "--seed", 2,
                         "--out", tmp_path / "o.npy", "--no-progress")
    assert code == 0, err
    picked = np.load(tmp_path / "o.npy")
    want = hminsel.select_batched(emb, 6, groups=labels, init=init, start="random", seed=2)
    np.testing.assert_array_equal(picked, want.indices)
    assert picked[:2].tolist() == [3, 40] and picked[12:14].tolist() == [250, 201]
    m = json.loads((tmp_path / "o.json").read_text())
    assert m["init"]["picks"] == 4 and [g["picks"] for g in m["groups"]["labels"]] == [6, 6, 6]
    assert m["start"] == "random"  # the labels without init rows drew their start
    for g, lo, hi in zip(m["groups"]["labels"], want.ptr[:-1], want.ptr[1:]):  # exact, init rows too
        assert g["h_min"] == pytest.approx(hminsel.hmin(emb[picked[lo:hi]]).value, rel=1e-5)
    from hminsel.cli.groups import ByLabel, random_rows_by_label
    sel = ByLabel(indices=picked, radii=np.asarray(want.radii), hmin=0.0, labels=np.asarray(want.labels),
                  ptr=np.asarray(want.ptr), metric="l2", backend="cpu", stats={})
    rows = random_rows_by_label(sel, labels, 2, keep=init)
    assert set(init.tolist()) <= set(rows.tolist()) and len(set(rows.tolist())) == 18
    assert np.bincount(np.searchsorted(["a", "b", "c"], labels[rows])).tolist() == [6, 6, 6]
