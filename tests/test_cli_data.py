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


def test_files_that_start_with_a_byte_order_mark(tmp_path, capsys):
    """A UTF-8 BOM (Windows editors write one) is not part of the first record."""
    a = _jsonl(tmp_path / "d-0.jsonl", range(0, 15))
    a.write_bytes(b"\xef\xbb\xbf" + a.read_bytes())
    b = tmp_path / "d-1.json"
    b.write_bytes(b"\xef\xbb\xbf" + json.dumps([{"id": i} for i in range(15, 40)]).encode())
    code, out, err = _select(capsys, tmp_path, a, b)
    assert code == 0, err
    lines = (tmp_path / "s.jsonl").read_bytes().decode("utf-8").splitlines()
    assert [json.loads(r)["id"] for r in lines] == WANT.tolist()


def test_baseline_out_writes_the_random_subset_beside_the_picks(tmp_path, capsys):
    """--baseline-out without --embed: the records of the random subset the manifest's
    random_baseline measured, in file order, as --subset-out writes the picked ones."""
    data = _jsonl(tmp_path / "d.jsonl", range(40))
    code, out, err = _select(capsys, tmp_path, data, more=("--baseline-out", tmp_path / "r.jsonl"))
    assert code == 0 and "wrote baseline:" in out, err
    ids = [json.loads(r)["id"] for r in (tmp_path / "r.jsonl").read_text().splitlines()]
    m = json.loads((tmp_path / "p.json").read_text())
    assert len(ids) == 7 and ids == sorted(ids) and m["outputs"]["baseline"] == str(tmp_path / "r.jsonl")
    assert m["random_baseline"]["h_min"] == pytest.approx(hminsel.hmin(X[ids]).value)
    for more, said in ((("--baseline-out", tmp_path / "q.jsonl", "--no-baseline"), "contradict"),
                       (("--baseline-out", tmp_path / "q.parquet"), "--baseline-out of JSON --data must end in")):
        code, out, err = _select(capsys, tmp_path, data, out="t.jsonl", more=more)
        assert code == 2 and said in err, err
    np.save(tmp_path / "x.npy", X)
    code, out, err = run(capsys, "select", tmp_path / "x.npy", "--k", 7, "--out", tmp_path / "z.npy",
                         "--baseline-out", tmp_path / "q.jsonl")
    assert code == 2 and "--baseline-out goes with --subset-out" in err, err


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
    assert m["data"] == [str(a), str(b)] and m["data_offsets"] == [0, 15, 40]
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
    assert code == 2 and "lies in the --data folder" in err  # a later run would read it as data


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
    assert code == 2 and "the 2 data files (a.jsonl 20, b.jsonl 19) hold 39 records" in err
    assert "has 40 rows" in err
    b.write_text('{"id": 1}\nnot json\n')
    code, _, err = _select(capsys, tmp_path, a, b)
    assert code == 2 and "b.jsonl: line 2 is not valid JSON" in err
    assert not (tmp_path / "p.npy").exists()
    code, _, err = _select(capsys, tmp_path, a, a)
    assert code == 2 and "is given twice" in err
    for missing in ("nope.jsonl", "nodir"):
        code, _, err = _select(capsys, tmp_path, tmp_path / missing)
        assert code == 2 and f"no such data file or folder: {tmp_path / missing}" in err
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
    code, _, err = run(capsys, "select", "--k", 3, "--out", tmp_path / "p.npy")
    assert code == 2 and "required: INPUT" in err and "before --data" not in err  # no hint


def test_data_shards_out_of_number_order_warn_and_an_empty_shard(tmp_path, capsys):
    """A shell's glob puts d-10 before d-2: the records follow the order given, with the
    inputs' warning; a shard without records holds no labels of either kind."""
    for name, ids in (("d-2.jsonl", range(0, 15)), ("d-10.jsonl", range(15, 40))):
        _jsonl(tmp_path / name, ids)
    (tmp_path / "d-5.jsonl").write_text("\n")
    order = [tmp_path / "d-2.jsonl", tmp_path / "d-5.jsonl", tmp_path / "d-10.jsonl"]
    code, _, err = _select(capsys, tmp_path, *order, more=("--groups-column", "id", "--k", 1))
    assert code == 0 and "warning" not in err, err  # integer labels, an empty shard between
    code, _, err = _select(capsys, tmp_path, *order[::-1], more=("--force",))
    assert code == 0, err
    assert "warning: --data: the inputs are not in number order (d-10.jsonl, d-5.jsonl" in err
    ids = [json.loads(r)["id"] for r in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert ids == [(i + 15) % 40 for i in WANT]  # d-10's 25 records first, as given


def test_outputs_that_would_become_data(tmp_path, capsys):
    """The manifest (.json) in a --data folder of .jsonl: the next run would find two kinds."""
    folder = tmp_path / "d"
    folder.mkdir()
    _jsonl(folder / "d-0.jsonl", range(40))
    np.save(tmp_path / "x.npy", X)
    code, _, err = run(capsys, "select", tmp_path / "x.npy", "--k", 3, "--out", folder / "p.npy",
                       "--data", folder, "--subset-out", tmp_path / "s.jsonl")
    assert code == 2 and "p.json lies in the --data folder" in err and "(it is the manifest)" in err
    code, _, err = _select(capsys, tmp_path, folder / "d-0.jsonl", out="d/d-0.jsonl",
                           more=("--force",))
    assert code == 2 and "d-0.jsonl is both --data and --subset-out" in err
    assert not (tmp_path / "p.npy").exists()


def test_a_dataset_dict_as_data_names_its_splits(tmp_path, capsys):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"id": list(range(40))})
    splits = {"train": ds, "test": ds.select(range(4))}
    datasets.DatasetDict(splits).save_to_disk(str(tmp_path / "hf"))
    code, _, err = _select(capsys, tmp_path, tmp_path / "hf")
    assert code == 2 and "DatasetDict of 2 splits (train, test); pass one split's folder" in err
    code, _, err = _select(capsys, tmp_path, tmp_path / "hf" / "train")
    assert code == 0, err
    ids = [json.loads(r)["id"] for r in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert ids == WANT.tolist()


def test_groups_column_of_data_beside_a_table_input(tmp_path, capsys):
    """A table input without the column: the --data records' field gives the labels."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    emb = tmp_path / "e.parquet"
    pq.write_table(pa.table({"emb": pa.array(X.tolist(), pa.list_(pa.float32()))}), emb)
    data = _jsonl(tmp_path / "d.jsonl", range(40))
    code, _, err = run(capsys, "select", emb, "--k", 2, "--groups-column", "task", "--out",
                       tmp_path / "p.npy", "--data", data, "--subset-out", tmp_path / "s.jsonl",
                       "--no-progress")
    assert code == 0, err
    labels = np.array([f"t{i % 3}" for i in range(40)])
    np.testing.assert_array_equal(np.load(tmp_path / "p.npy"),
                                  hminsel.select_batched(X, 2, groups=labels).indices)
    assert json.loads((tmp_path / "p.json").read_text())["groups"]["path"] == str(data)


def test_open_records_counts_writes_and_labels(tmp_path):
    a, b = _jsonl(tmp_path / "a.jsonl", range(3)), _jsonl(tmp_path / "b.jsonl", range(3, 5))
    data = open_records([a, b])
    assert len(data) == 5 and data.offsets.tolist() == [0, 3, 5] and not data.tables
    assert data.labels("task").tolist() == ["t0", "t1", "t2", "t0", "t1"]
    (tmp_path / "c.jsonl").write_bytes(b'{"id": 5,\r "task": "t2"}\r\n')  # a lone CR is JSON space
    assert open_records([a, b, tmp_path / "c.jsonl"]).labels("id").tolist() == [0, 1, 2, 3, 4, 5]
    assert data.write([4, 0], tmp_path / "o.jsonl") == 2
    assert [json.loads(r)["id"] for r in (tmp_path / "o.jsonl").read_text().splitlines()] == [4, 0]
    with pytest.raises(FileExistsError):
        data.write([1], tmp_path / "o.jsonl")
    with pytest.raises(ValueError, match="index 5 is out of range for the 2 data files"):
        data.write([5], tmp_path / "o2.jsonl")


def test_a_table_parquet_cannot_hold_is_named_and_nothing_written(tmp_path, capsys):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.ipc as ipc
    table = pa.table({"id": list(range(40)),
                      "span": pa.array([(1, 2, 3)] * 40, pa.month_day_nano_interval())})
    with ipc.new_file(str(tmp_path / "d.arrow"), table.schema) as writer:
        writer.write_table(table)
    code, _, err = _select(capsys, tmp_path, tmp_path / "d.arrow", out="s.parquet")
    assert code == 2 and "s.parquet: cannot write the picked rows as parquet" in err
    assert "write .jsonl or .json" in err and not (tmp_path / "p.npy").exists()
    code, _, err = _select(capsys, tmp_path, tmp_path / "d.arrow", out="s.jsonl")
    assert code == 0, err
    ids = [json.loads(r)["id"] for r in (tmp_path / "s.jsonl").read_text().splitlines()]
    assert ids == WANT.tolist()


def test_an_unreadable_data_file_is_named_as_the_data(tmp_path, emb, capsys, monkeypatch):
    def denied(paths, parse=True):
        raise PermissionError(13, "Permission denied", str(tmp_path / "data.jsonl"))
    monkeypatch.setattr("hminsel.cli.inputs.open_records", denied)
    code, _, err = run(capsys, "select", tmp_path / "emb.npy", "--k", 3, "--out", tmp_path / "i.npy",
                       "--data", tmp_path / "data.jsonl", "--subset-out", tmp_path / "s.jsonl")
    assert code == 2 and f"--data {tmp_path / 'data.jsonl'}: cannot read it (Permission denied)" in err
