"""hminsel select ... --data: the examples behind the embeddings in one file or several (JSONL /
JSON shards, or parquet / Arrow tables, or a folder of them), their records one after another,
and the picked ones written in selection order."""
from __future__ import annotations

import json

import numpy as np
import pytest

import hminsel
from cli_helpers import run
from hminsel.io.records import open_records
from test_shards import X

WANT = hminsel.select(X, 7).indices


def _jsonl(path, ids, extra=""):
    path.write_text("".join(json.dumps({"id": i, "task": f"t{i % 3}"}) + extra + "\n" for i in ids))
    return path


def _select(capsys, tmp_path, *data, out="s.jsonl", more=()):
    np.save(tmp_path / "x.npy", X)
    return run(capsys, "select", tmp_path / "x.npy", "--k", 7, "--out", tmp_path / "p.npy",
               "--data", *data, "--subset-out", tmp_path / out, "--no-progress", *more)


def test_jsonl_and_json_shards_in_order(tmp_path, capsys):
    """A .jsonl shard's lines are copied byte for byte, a .json shard's items written as JSON."""
    a = _jsonl(tmp_path / "d-0.jsonl", range(0, 15), extra="  ")  # trailing blanks kept
    b = tmp_path / "d-1.json"
    b.write_text(json.dumps([{"id": i, "task": f"t{i % 3}"} for i in range(15, 40)]))
    code, out, err = _select(capsys, tmp_path, a, b)
    assert code == 0, err
    lines = (tmp_path / "s.jsonl").read_text().splitlines()
    assert [json.loads(r)["id"] for r in lines] == WANT.tolist()
    assert all(line.endswith("  ") == (json.loads(line)["id"] < 15) for line in lines)
    m = json.loads((tmp_path / "p.json").read_text())
    assert m["data"] == [str(a), str(b)]
    code, _, err = _select(capsys, tmp_path, a, b, out="s.json", more=("--force",))
    assert code == 0, err
    assert [r["id"] for r in json.loads((tmp_path / "s.json").read_text())] == WANT.tolist()


def test_a_folder_of_records_in_number_order_and_labels_from_them(tmp_path, capsys):
    folder = tmp_path / "data"
    folder.mkdir()
    cuts = [(0, 3), (3, 5), (5, 40)]  # named 2, 10, 11: "d-10" sorts before "d-2" by name
    for n, (lo, hi) in zip((2, 10, 11), cuts):
        _jsonl(folder / f"d-{n}.jsonl", range(lo, hi))
    code, _, err = _select(capsys, tmp_path, folder, more=("--groups-column", "task", "--k", 2))
    assert code == 0, err
    labels = np.array([f"t{i % 3}" for i in range(40)])
    want = hminsel.select_batched(X, 2, groups=labels).indices
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"), want)
    got = [json.loads(r)["id"] for r in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert got == want.tolist()
    m = json.loads((tmp_path / "p.json").read_text())
    assert m["groups"]["path"] == [str(folder / f"d-{n}.jsonl") for n in (2, 10, 11)]
    code, _, err = _select(capsys, tmp_path, folder, out="data/picked.jsonl")
    assert code == 2 and "lies in the input folder" in err  # a later run would read it as data


def test_table_shards_as_data(tmp_path, capsys):
    """Embeddings in .npy, the examples in parquet shards: the picked rows, every column."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    paths = []
    for i, (lo, hi) in enumerate([(0, 30), (30, 40)]):
        paths.append(tmp_path / f"train-{i}.parquet")
        pq.write_table(pa.table({"text": [f"example {j}" for j in range(lo, hi)],
                                 "src": pa.array(np.arange(lo, hi) % 2, pa.int32())}),
                       paths[-1])
    code, _, err = _select(capsys, tmp_path, *paths, out="s.parquet")
    assert code == 0, err
    assert json.loads((tmp_path / "p.json").read_text())["data"] == [str(p) for p in paths]
    rows = pq.read_table(tmp_path / "s.parquet").to_pylist()
    assert [r["text"] for r in rows] == [f"example {j}" for j in WANT]
    code, _, err = _select(capsys, tmp_path, *paths, out="g.jsonl",
                           more=("--groups-column", "src", "--k", 3, "--force"))
    assert code == 0, err
    want = hminsel.select_batched(X, 3, groups=np.arange(40) % 2).indices
    got = [json.loads(r)["text"] for r in (tmp_path / "g.jsonl").read_text().splitlines()]
    assert got == [f"example {j}" for j in want]


def test_data_errors_name_the_files(tmp_path, capsys):
    a, b = _jsonl(tmp_path / "a.jsonl", range(20)), _jsonl(tmp_path / "b.jsonl", range(19))
    code, _, err = _select(capsys, tmp_path, a, b)
    assert code == 2 and "the 2 data files hold 39 records but" in err and "has 40 rows" in err
    b.write_text('{"id": 1}\nnot json\n')
    code, _, err = _select(capsys, tmp_path, a, b)
    assert code == 2 and "b.jsonl: line 2 is not valid JSON" in err
    assert not (tmp_path / "p.npy").exists()
    code, _, err = _select(capsys, tmp_path, a, a)
    assert code == 2 and "is given twice" in err
    pytest.importorskip("pyarrow")
    import pyarrow as pa
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"id": list(range(20))}), tmp_path / "c.parquet")
    code, _, err = _select(capsys, tmp_path, a, tmp_path / "c.parquet")
    assert code == 2 and "c.parquet is a table, but" in err and "one kind" in err
    code, _, err = _select(capsys, tmp_path, a, out="s.parquet")
    assert code == 2 and "--subset-out of JSON --data must end in .jsonl, .json" in err
    (tmp_path / "c.txt").write_text("x\n")
    code, _, err = _select(capsys, tmp_path, tmp_path / "c.txt")
    assert code == 2 and "c.txt: expected .jsonl or .json records, or a" in err
    np.save(tmp_path / "x.npy", X)
    code, _, err = run(capsys, "select", "--k", 3, "--out", tmp_path / "p.npy", "--data", a,
                       tmp_path / "x.npy", "--subset-out", tmp_path / "s.jsonl")
    assert code == 2 and "give INPUT before --data" in err


def test_open_records_counts_writes_and_labels(tmp_path):
    a, b = _jsonl(tmp_path / "a.jsonl", range(3)), _jsonl(tmp_path / "b.jsonl", range(3, 5))
    data = open_records([a, b])
    assert len(data) == 5 and data.offsets.tolist() == [0, 3, 5] and not data.tables
    assert data.labels("task").tolist() == ["t0", "t1", "t2", "t0", "t1"]
    assert data.write([4, 0], tmp_path / "o.jsonl") == 2
    assert [json.loads(r)["id"] for r in (tmp_path / "o.jsonl").read_text().splitlines()] == [4, 0]
    with pytest.raises(FileExistsError):
        data.write([1], tmp_path / "o.jsonl")
    with pytest.raises(ValueError, match="index 5 is out of range for the 2 data files"):
        data.write([5], tmp_path / "o2.jsonl")
