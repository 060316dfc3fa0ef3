"""The commands over embeddings in several files (shards): hminsel select and hmin, and the
torchrun command line, each rank reading only the shards that hold its rows."""
from __future__ import annotations

import json

import numpy as np
import pytest

import hminsel
from cli_helpers import run
from test_shards import CUTS, X, _npy, _parquet


def test_select_and_hmin_over_shards(tmp_path, capsys):
    paths = _npy(tmp_path)
    code, out, err = run(capsys, "select", *paths, "--k", 9, "--out", tmp_path / "p.npy",
                         "--no-progress")
    assert code == 0, err
    assert "picked 9 of 40 rows" in out
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), hminsel.select(X, 9).indices)
    m = json.loads((tmp_path / "p.json").read_text())
    assert m["input"] == [str(p) for p in paths] and m["input_offsets"] == [0, 11, 12, 40]
    assert m["N"] == 40
    code, out, err = run(capsys, "hmin", *paths, "--json")
    assert code == 0, err
    want = hminsel.hmin(X)
    got = json.loads(out)
    assert (got["i"], got["j"], got["N"]) == (want.i, want.j, 40)


def test_nonfinite_skip_over_shards_names_global_rows(tmp_path, capsys):
    x = X.copy()
    x[[11, 30], 0] = np.nan  # the one-row shard's row and a row of the last shard
    paths = _npy(tmp_path, x)
    code, out, err = run(capsys, "select", *paths, "--k", 9, "--nonfinite", "skip", "--out",
                         tmp_path / "p.npy", "--no-progress")
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"),
                                  hminsel.select(x, 9, nonfinite="skip").indices)
    m = json.loads((tmp_path / "p.json").read_text())
    assert m["N"] == 40 and m["nonfinite_skipped"] == {"count": 2, "first_rows": [11, 30]}
    assert "left out 2 rows with NaN or inf (the first: row 11)" in out
    code, out, err = run(capsys, "hmin", *paths, "--nonfinite", "skip", "--json")
    assert code == 0 and json.loads(out)["nonfinite_skipped"]["first_rows"] == [11, 30], err


def test_select_over_shards_with_data_and_labels(tmp_path, capsys):
    labels = np.array(["a", "b", "c"])[np.arange(40) % 3]
    paths = _parquet(tmp_path, labels=labels)
    data = tmp_path / "data.jsonl"
    data.write_text("".join(json.dumps({"id": i}) + "\n" for i in range(40)))
    code, _, err = run(capsys, "select", *paths, "--k", 4, "--groups-column", "src", "--out",
                       tmp_path / "p.npy", "--data", data, "--subset-out", tmp_path / "s.jsonl",
                       "--no-progress")
    assert code == 0, err
    want = hminsel.select_batched(X, 4, groups=labels).indices
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), want)
    assert [json.loads(r)["id"] for r in (tmp_path / "s.jsonl").read_text().splitlines()] == want.tolist()
    assert json.loads((tmp_path / "p.json").read_text())["groups"]["path"] == [str(p) for p in paths]
    data.write_text("".join(json.dumps({"id": i}) + "\n" for i in range(39)))
    code, _, err = run(capsys, "select", *paths, "--k", 4, "--out", tmp_path / "q.npy",
                       "--data", data, "--subset-out", tmp_path / "q.jsonl", "--no-progress")
    assert code == 2 and "holds 39 records but the 3 inputs have 40 rows" in err


def test_shards_and_data_files_in_two_orders_are_refused(tmp_path, capsys):
    """Embedding shards of 10, 20 and 10 rows against data files of 10, 10 and 20 records (a
    shell's glob put emb-10 before emb-2): the records would not be their rows'."""
    x = np.random.default_rng(0).random((40, 4), np.float32)
    for i, (lo, hi) in enumerate([(0, 10), (10, 30), (30, 40)]):
        np.save(tmp_path / f"emb-{i}.npy", x[lo:hi])
    for i, (lo, hi) in enumerate([(0, 10), (30, 40), (10, 30)]):
        (tmp_path / f"rec-{i}.jsonl").write_text("".join(json.dumps({"id": j}) + "\n" for j in range(lo, hi)))
    code, _, err = run(capsys, "select", *[tmp_path / f"emb-{i}.npy" for i in range(3)], "--k", 4,
                       "--data", *[tmp_path / f"rec-{i}.jsonl" for i in range(3)], "--subset-out",
                       tmp_path / "s.jsonl", "--out", tmp_path / "p.npy", "--no-progress")
    assert code == 2 and "hold [10, 20, 10] rows and the 3 --data files [10, 10, 20] records" in err, err
    assert not (tmp_path / "p.npy").exists()


def test_integer_labels_of_several_types_are_one_vector(tmp_path, capsys):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    labels = np.arange(40) % 2
    for i, ((a, b), typ) in enumerate(zip(CUTS, (pa.int32(), pa.uint64(), pa.int64()))):
        pq.write_table(pa.table({"emb": pa.array(X[a:b].tolist(), type=pa.list_(pa.float32())),
                                 "src": pa.array(labels[a:b], type=typ)}), tmp_path / f"p{i}.parquet")
    code, _, err = run(capsys, "select", *(tmp_path / f"p{i}.parquet" for i in range(3)), "--k", 2,
                       "--groups-column", "src", "--out", tmp_path / "o.npy", "--no-progress")
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "o.npy"),
                                  hminsel.select_batched(X, 2, groups=labels).indices)


def test_commands_refuse_shards_they_cannot_take(tmp_path, capsys):
    paths = _npy(tmp_path)
    folder = tmp_path / "f"
    folder.mkdir()
    _npy(folder)
    code, _, err = run(capsys, "select", folder, "--k", 3, "--out", folder / "p.npy")
    assert code == 2 and "lies in the input folder" in err
    code, _, err = run(capsys, "select", *paths, paths[1], "--k", 3, "--out", tmp_path / "p.npy")
    assert code == 2 and "is given twice" in err
    code, _, err = run(capsys, "select", *paths, "--k", 3, "--out", paths[2])
    assert code == 2 and "must be different files" in err
    data = tmp_path / "t.jsonl"
    data.write_text('{"instruction": "x"}\n')
    code, _, err = run(capsys, "select", data, data, "--embed", "all-MiniLM-L6-v2", "--k", 1,
                       "--subset-out", tmp_path / "s.jsonl")
    assert code == 2 and "is given twice" in err


def test_launched_ranks_read_their_own_shards(tmp_path):
    """``python -m hminsel.distributed`` over parquet shards (on ranks started as torchrun
    starts them): the picks, the per-label picks and the pair of one process over all rows."""
    pytest.importorskip("torch.distributed")
    from test_distributed import launch
    labels = np.arange(40) % 2
    (tmp_path / "shards").mkdir()
    paths = _parquet(tmp_path / "shards", labels=labels)  # column src: the labels
    data = [tmp_path / "data-0.jsonl", tmp_path / "data-1.jsonl"]  # records in shards too
    for path, ids in zip(data, (range(25), range(25, 40))):
        path.write_text("".join(json.dumps({"id": i}) + "\n" for i in ids))
    for k, extra, out, want in (  # rank 0 writes the picked records, or the picked table rows
            ("7", ["--data", *data, "--subset-out", tmp_path / "p.jsonl"], "p.npy",
             hminsel.select(X, 7).indices),
            ("3", ["--groups-column", "src", "--subset-out", tmp_path / "g.parquet"], "g.npy",
             hminsel.select_batched(X, 3, groups=labels).indices)):
        code, _, err = launch(2, ["select", *paths, "--k", k, *extra, "--out", tmp_path / out])
        assert code == 0, err
        np.testing.assert_array_equal(np.load(tmp_path / out), want)
    m = json.loads((tmp_path / "p.json").read_text())
    assert m["input"] == [str(p) for p in paths] and m["input_offsets"] == [0, 11, 12, 40]
    assert m["subset"] == str(tmp_path / "p.jsonl") and m["data"] == [str(p) for p in data]
    records = [json.loads(r)["id"] for r in (tmp_path / "p.jsonl").read_text().splitlines()]
    assert records == hminsel.select(X, 7).indices.tolist()
    import pyarrow.parquet as pq
    rows = pq.read_table(tmp_path / "g.parquet").column("emb").to_pylist()
    np.testing.assert_array_equal(np.array(rows, np.float32), X[np.load(tmp_path / "g.npy")])
    g = json.loads((tmp_path / "g.json").read_text())["groups"]
    assert g["column"] == "src" and g["path"] == [str(p) for p in paths] and len(g["labels"]) == 2
    code, out, err = launch(2, ["hmin", tmp_path / "shards", "--json"])  # the folder: its shards in name order
    assert code == 0, err
    got, pair = json.loads(out.strip().splitlines()[-1]), hminsel.hmin(X)
    assert (got["i"], got["j"], got["N"]) == (pair.i, pair.j, 40)


def test_torchrun_refuses_an_output_in_a_folder_input(tmp_path, capsys):
    pytest.importorskip("torch.distributed")
    from hminsel.distributed.__main__ import main
    folder = tmp_path / "s"
    folder.mkdir()
    paths = _npy(folder)
    for argv, said in (([str(folder), "--out", str(folder / "p.npy")], "lies in the input folder"),
                       ([str(folder), "--out", str(tmp_path / "p.npy"), "--mask", str(paths[1])],
                        "must be different files"),
                       ([str(folder), "--out", str(tmp_path / "p.npy"), "--subset-out",
                         str(tmp_path / "s.jsonl")], "needs --data"),
                       ([str(folder), "--out", str(tmp_path / "p.npy"), "--data",
                         str(tmp_path / "d.jsonl")], "--data goes with --subset-out"),
                       ([str(folder), "--out", str(tmp_path / "p.npy"), "--groups",
                         str(paths[0]), "--groups-column", "src"], "both give the labels"),
                       ([str(folder), "--out", str(tmp_path / "p.npy"), "--groups-column",
                         "src"], "--groups-column names a column of parquet"),
                       ([str(folder), "--out", str(tmp_path / "p.npy"), "--data",  # the manifest
                         str(tmp_path / "p.json"), "--subset-out", str(tmp_path / "s.jsonl")],
                        "is both --data and the manifest")):
        with pytest.raises(SystemExit) as exc:
            main(["select", *argv, "--k", "3"])
        assert exc.value.code == 2 and said in capsys.readouterr().err


def test_checks_before_the_rows_are_read_and_one_warning(tmp_path, capsys, monkeypatch):
    from hminsel.io import shards as shards_module
    folder = tmp_path / "s"
    folder.mkdir()
    cuts = [(i * 3, i * 3 + 3) for i in range(12)] + [(36, 40)]  # emb-0 ... emb-12
    paths = _npy(folder, cuts=cuts)
    read = []
    monkeypatch.setattr(shards_module, "load_one", lambda *a, **k: read.append(a) or 1 / 0)
    data = tmp_path / "d.jsonl"
    data.write_text("{}\n" * 39)
    code, _, err = run(capsys, "select", *sorted(paths), "--k", 3, "--out", tmp_path / "p.npy",
                       "--data", data, "--subset-out", tmp_path / "s.jsonl", "--no-progress")
    assert code == 2 and "holds 39 records but the 13 inputs have 40 rows" in err and read == []
    assert err.count("warning: the inputs are not in number order") == 1
