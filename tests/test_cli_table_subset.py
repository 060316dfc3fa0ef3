"""hminsel select TABLE --subset-out: the picked rows of a parquet, Arrow or Hugging Face
dataset input itself, every column, in selection order (no --data file)."""
from __future__ import annotations

import json

import numpy as np
import pytest

import hminsel
from cli_helpers import run

pa = pytest.importorskip("pyarrow")
import pyarrow.parquet as pq  # noqa: E402

X = np.random.default_rng(5).standard_normal((60, 5)).astype(np.float32)
CUTS = [(0, 25), (25, 26), (26, 60)]


def _table(a, b):
    return pa.table({"text": [f"example {i}" for i in range(a, b)],
                     "emb": pa.array(X[a:b].tolist(), type=pa.list_(pa.float32())),
                     "id": pa.array(np.arange(a, b), pa.int64())})


def _shards(folder):
    paths = []
    for i, (a, b) in enumerate(CUTS):
        paths.append(folder / f"part-{i}.parquet")
        pq.write_table(_table(a, b), paths[-1])
    return paths


@pytest.mark.parametrize("name", ["s.parquet", "s.jsonl", "s.json"])
def test_picked_rows_of_parquet_shards(tmp_path, capsys, name):
    paths = _shards(tmp_path)
    code, out, err = run(capsys, "select", *paths, "--column", "emb", "--k", 9, "--out",
                         tmp_path / "p.npy", "--subset-out", tmp_path / name, "--no-progress")
    assert code == 0, err
    want = hminsel.select(X, 9).indices
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), want)
    if name.endswith(".parquet"):
        got = pq.read_table(tmp_path / name)
        assert got.schema.names == ["text", "emb", "id"]  # every column, as stored
        np.testing.assert_array_equal(np.array(got.column("emb").to_pylist(), np.float32), X[want])
        rows = got.to_pylist()
    elif name.endswith(".jsonl"):
        rows = [json.loads(line) for line in (tmp_path / name).read_text().splitlines()]
    else:
        rows = json.loads((tmp_path / name).read_text())
    assert [r["id"] for r in rows] == want.tolist()  # in selection order
    assert rows[0]["text"] == f"example {want[0]}"
    assert json.loads((tmp_path / "p.json").read_text())["outputs"]["subset"] == str(tmp_path / name)


def test_picked_rows_of_a_dataset_split_and_per_label(tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    labels = np.arange(60) % 3
    ds = datasets.Dataset(_table(0, 60).append_column("task", pa.array(labels)))
    datasets.DatasetDict({"train": ds, "test": ds.select(range(4))}).save_to_disk(str(tmp_path / "dd"))
    code, _, err = run(capsys, "select", tmp_path / "dd", "--split", "train", "--column", "emb",
                       "--k", 2, "--groups-column", "task", "--out", tmp_path / "p.npy",
                       "--subset-out", tmp_path / "s.jsonl", "--no-progress")
    assert code == 0, err
    want = hminsel.select_batched(X, 2, groups=labels).indices
    rows = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [r["id"] for r in rows] == want.tolist() and [r["task"] for r in rows] == [0, 0, 1, 1, 2, 2]


def test_table_subsets_that_cannot_be_written(tmp_path, capsys):
    paths = _shards(tmp_path)
    pq.write_table(_table(0, 10).drop(["text"]), tmp_path / "odd.parquet")  # no text column
    np.save(tmp_path / "x.npy", X)
    code, _, err = run(capsys, "select", *paths, tmp_path / "odd.parquet", "--column", "emb",
                       "--k", 1, "--out", tmp_path / "p.npy", "--subset-out", tmp_path / "s.parquet",
                       "--no-progress", "--no-baseline")  # refused before the selection, any k
    assert code == 2 and "odd.parquet: has no column 'text'; the picked rows of several" in err
    assert not (tmp_path / "p.npy").exists() and not (tmp_path / "s.parquet").exists()  # nothing
    for argv, said in (
            ([tmp_path / "x.npy", "--subset-out", tmp_path / "s.parquet"], "needs --data"),
            ([*paths, "--column", "emb", "--subset-out", tmp_path / "s.txt"],
             "must end in .parquet, .jsonl, .json"),
            ([tmp_path / "x.npy", "--data", tmp_path / "d.jsonl"], "--data goes with --subset-out")):
        code, _, err = run(capsys, "select", *argv, "--k", 3, "--out", tmp_path / "q.npy")
        assert code == 2 and said in err, err


def test_json_records_of_any_column_type(tmp_path, capsys):
    """NaN as null, bytes as base64, times in ISO 8601; a column nullable in one shard only."""
    import datetime
    rows = 3
    emb = pa.array(X[:rows].tolist(), type=pa.list_(pa.float32()))
    first = pa.table({"emb": emb, "score": pa.array([1.5, float("nan"), float("inf")]),
                      "image": pa.array([b"\x89PNG", b"", b"\x00\xff"]),
                      "when": pa.array([datetime.datetime(2024, 1, 1, 3, 0)] * rows,
                                       pa.timestamp("s"))})
    schema = pa.schema([f.with_nullable(False) if f.name == "score" else f for f in first.schema])
    pq.write_table(first, tmp_path / "a.parquet")
    pq.write_table(first.cast(schema), tmp_path / "b.parquet")
    code, _, err = run(capsys, "select", tmp_path / "a.parquet", tmp_path / "b.parquet", "--column",
                       "emb", "--k", 6, "--out", tmp_path / "p.npy", "--subset-out",
                       tmp_path / "s.jsonl", "--no-progress", "--no-baseline")
    assert code == 0, err
    picks = np.load(tmp_path / "p.npy") % rows
    got = [json.loads(line) for line in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert [r["score"] for r in got] == [[1.5, None, None][i] for i in picks]
    assert [r["image"] for r in got] == [["iVBORw==", "", "AP8="][i] for i in picks]
    assert got[0]["when"] == "2024-01-01T03:00:00"
