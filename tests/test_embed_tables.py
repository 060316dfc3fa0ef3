"""``hminsel select DATA --embed MODEL`` over a table (parquet, Arrow, a Hugging Face dataset)
and over several data files (shards): the same texts, embeddings and picks as one JSONL file,
the picked records written from their own files. A stand-in model (test_embed.FakeModel)."""
from __future__ import annotations

import json

import numpy as np
import pytest

from hminsel.io.texts import data_sha256, file_sha256, read_texts
from test_embed import DATA, _fake_load, run

RECORDS = [json.loads(line) for line in open(DATA, encoding="utf-8")]
LINES = open(DATA, encoding="utf-8").read().splitlines()


@pytest.fixture
def model_dir(tmp_path):
    """A folder that passes for a model (the stand-in is loaded instead)."""
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "modules.json").write_text("[]")
    return tmp_path / "model"


def _embed(capsys, tmp_path, model_dir, *data, out="s.jsonl", more=()):
    return run(capsys, "select", *data, "--embed", model_dir, "--k", 6, "--metric", "cosine",
               "--subset-out", tmp_path / out, "--no-progress", "--device", "cpu",
               "--backend", "numpy", *more)


def _want(tmp_path, model_dir, capsys):
    """The picks of the one JSONL file (test_embed's own data)."""
    code, _, err = _embed(capsys, tmp_path, model_dir, DATA, out="one.jsonl",
                          more=("--no-embed-cache", "--no-baseline"))
    assert code == 0, err
    return np.load(tmp_path / "one.indices.npy")


def test_jsonl_shards_pick_as_one_file(tmp_path, model_dir, capsys, monkeypatch):
    _fake_load(monkeypatch)
    want = _want(tmp_path, model_dir, capsys)
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "part-2.jsonl").write_text("\n".join(LINES[:25]) + "\n")
    (folder / "part-10.jsonl").write_text("\n".join(LINES[25:]) + "\n")
    code, _, err = _embed(capsys, tmp_path, model_dir, folder, more=("--baseline-out",
                                                                     tmp_path / "r.jsonl"))
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "s.indices.npy"), want)
    assert (tmp_path / "s.jsonl").read_text().splitlines() == [LINES[i] for i in want]
    assert len((tmp_path / "r.jsonl").read_text().splitlines()) == 6
    m = json.loads((tmp_path / "s.manifest.json").read_text())
    parts = [str(folder / "part-2.jsonl"), str(folder / "part-10.jsonl")]
    assert m["input"] == parts and m["input_sha256"] == data_sha256(parts)
    assert m["input_sha256"] != file_sha256(DATA)
    code, out, err = _embed(capsys, tmp_path, model_dir, *reversed(parts), out="w.jsonl")
    assert code == 0 and "warning: INPUT: the inputs are not in number order" in err
    assert "from the cache" not in out  # other data: another cache entry


def test_a_parquet_table_and_a_dataset(tmp_path, model_dir, capsys, monkeypatch):
    """A table's rows are the records: its text columns read, the picked rows written with
    every column (parquet or JSON); numbers and lists as their JSON text."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    _fake_load(monkeypatch)
    want = _want(tmp_path, model_dir, capsys)
    fields = ("instruction", "input", "output")
    table = pa.table({key: [r.get(key) for r in RECORDS] for key in fields})
    table = table.append_column("id", pa.array(range(40), pa.int64()))
    pq.write_table(table.slice(0, 30), tmp_path / "t-0.parquet")
    pq.write_table(table.slice(30), tmp_path / "t-1.parquet")
    assert read_texts([tmp_path / "t-0.parquet", tmp_path / "t-1.parquet"]) == read_texts(DATA)
    code, _, err = _embed(capsys, tmp_path, model_dir, tmp_path / "t-0.parquet",
                          tmp_path / "t-1.parquet", out="s.parquet")
    assert code == 0, err
    np.testing.assert_array_equal(np.load(tmp_path / "s.indices.npy"), want)
    rows = pq.read_table(tmp_path / "s.parquet").to_pylist()
    assert [r["id"] for r in rows] == want.tolist() and set(rows[0]) == {"instruction", "input",
                                                                         "output", "id"}
    datasets = pytest.importorskip("datasets")
    datasets.Dataset(table).save_to_disk(str(tmp_path / "hf"))
    code, _, err = _embed(capsys, tmp_path, model_dir, tmp_path / "hf", out="h.jsonl",
                          more=("--groups-column", "id", "--k", 1))
    assert code == 0, err  # one pick a label: every row
    ids = [json.loads(r)["id"] for r in (tmp_path / "h.jsonl").read_text().splitlines()]
    assert ids == list(range(40))
    code, _, err = _embed(capsys, tmp_path, model_dir, tmp_path / "hf", out="h.txt")
    assert code == 2 and "--subset-out of table data must end in .parquet, .jsonl, .json" in err
    code, _, err = _embed(capsys, tmp_path, model_dir, tmp_path / "t-0.parquet", out="n.jsonl",
                          more=("--text-fields", "prompt"))
    assert code == 2 and "no record has any of the text fields prompt" in err and "id" in err


def test_mixed_kinds_and_clashes(tmp_path, model_dir, capsys, monkeypatch):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    _fake_load(monkeypatch)
    pq.write_table(pa.table({"instruction": ["a", "b"]}), tmp_path / "t.parquet")
    code, _, err = _embed(capsys, tmp_path, model_dir, DATA, tmp_path / "t.parquet")
    assert code == 2 and "is a table, but" in err
    code, _, err = _embed(capsys, tmp_path, model_dir, tmp_path / "t.parquet", out="t.parquet",
                          more=("--force",))
    assert code == 2 and "t.parquet is both the input and --subset-out" in err
    code, _, err = run(capsys, "select", tmp_path / "t.parquet", "--k", 1, "--out",
                       tmp_path / "p.npy")
    assert code == 2 and "no list-of-numbers column to read as embeddings; columns: " in err
    assert "hminsel select --embed MODEL" in err  # a table of examples, given without --embed


def test_reviewed_edges(tmp_path, model_dir, capsys, monkeypatch):
    """Labels from a folder of JSON shards; a shard without any text field is named; the cache
    is not the data folder; k is checked before the model runs."""
    _fake_load(monkeypatch)
    folder = tmp_path / "j"
    folder.mkdir()
    tagged = [json.dumps(dict(r, task=f"t{i % 2}")) for i, r in enumerate(RECORDS)]
    (folder / "p-0.jsonl").write_text("\n".join(tagged[:20]) + "\n")
    (folder / "p-1.jsonl").write_text("\n".join(tagged[20:]) + "\n")
    code, _, err = _embed(capsys, tmp_path, model_dir, folder, more=("--groups-column", "task",
                                                                     "--k", 2))
    assert code == 0, err
    picked = np.load(tmp_path / "s.indices.npy")
    assert len(picked) == 4 and (picked[:2] % 2 == 0).all() and (picked[2:] % 2 == 1).all()
    code, _, err = _embed(capsys, tmp_path, model_dir, folder, out="c.jsonl",
                          more=("--embed-cache", folder))
    assert code == 2 and "is the data folder" in err
    (folder / "p-1.jsonl").write_text(json.dumps({"prompt": "p"}) + "\n")
    code, _, err = _embed(capsys, tmp_path, model_dir, folder, out="d.jsonl")
    assert code == 2 and "p-1.jsonl: no record has any of the text fields" in err
    monkeypatch.setattr("hminsel.io.embed._load", None)  # the model must not run
    code, _, err = _embed(capsys, tmp_path, model_dir, DATA, out="e.jsonl", more=("--k", 41))
    assert code == 2 and "k must be in [1, 40]" in err
    code, _, err = _embed(capsys, tmp_path, model_dir, DATA, out="e.jsonl",
                          more=("--groups-column", "instruction", "--k", 2))
    assert code == 2 and "which has 1 row;" in err
    np.save(tmp_path / "init.npy", np.array([0, 2, 4]))  # three rows of label t0, k = 2
    code, _, err = _embed(capsys, tmp_path, model_dir, folder / "p-0.jsonl", out="e.jsonl",
                          more=("--groups-column", "task", "--k", 2, "--init",
                                tmp_path / "init.npy"))
    assert code == 2 and "raise --k or --fraction, or hold fewer --init rows" in err
    code, _, err = _embed(capsys, tmp_path, model_dir, tmp_path / "nodir", out="e.jsonl")
    assert code == 2 and "no such data file or folder" in err
    (tmp_path / "bad.jsonl").write_text(LINES[0] + "\nnot json\n")  # counted unparsed, then read
    code, _, err = _embed(capsys, tmp_path, model_dir, tmp_path / "bad.jsonl", out="e.jsonl")
    assert code == 2 and "bad.jsonl: line 2 is not valid JSON" in err


def test_table_values_as_text_and_a_dataset_hash(tmp_path):
    """A table's bytes, dates and nulls become the text its JSON record would give; a dataset's
    hash covers its data files, not the cache files a datasets map() leaves beside them."""
    pa = pytest.importorskip("pyarrow")
    import datetime

    import pyarrow.parquet as pq
    pq.write_table(pa.table({"instruction": ["a"], "input": [b"hi"], "output": [None],
                             "when": [datetime.date(2020, 1, 2)]}), tmp_path / "t.parquet")
    assert read_texts(tmp_path / "t.parquet", ("instruction", "input", "output", "when")) == [
        "a\n\naGk=\n\n2020-01-02"]
    datasets = pytest.importorskip("datasets")
    datasets.Dataset.from_dict({"instruction": ["a", "b"]}).save_to_disk(str(tmp_path / "hf"))
    before = data_sha256([tmp_path / "hf"])
    (tmp_path / "hf" / "cache-0123.arrow").write_bytes(b"left by a map()")
    assert data_sha256([tmp_path / "hf"]) == before
