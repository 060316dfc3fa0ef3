"""Loaders on temporary files of every format, atomic writers, the subset writer."""
from __future__ import annotations

import json
import os
import struct

import numpy as np
import pytest

import hminsel
from hminsel.io import (LoadError, count_records, load_embeddings, together, write_json_atomic,
                        write_npy_atomic, write_subset)
from hminsel.io.shards import open_inputs

X = np.arange(24, dtype=np.float32).reshape(6, 4) / 7.0


# ---------------------------------------------------------------- .npy / .npz
def test_npy_mmap(tmp_path):
    path = tmp_path / "e.npy"
    np.save(path, X)
    x = load_embeddings(path)
    assert isinstance(x, np.memmap) and not x.flags.writeable
    np.testing.assert_array_equal(x, X)
    y = load_embeddings(str(path), mmap=False)
    assert not isinstance(y, np.memmap)
    np.testing.assert_array_equal(y, X)


@pytest.mark.parametrize("array, match", [
    (np.zeros(5), "2-D"), (np.zeros((2, 3, 4)), "2-D"), (np.zeros((0, 4)), "empty"),
    (np.array([["a", "b"]]), "numeric"), (np.zeros((2, 2), dtype=complex), "numeric"),
], ids=["1d", "3d", "empty", "strings", "complex"])
def test_npy_bad_content(tmp_path, array, match):
    np.save(tmp_path / "e.npy", array)
    with pytest.raises(LoadError, match=match):
        load_embeddings(tmp_path / "e.npy")


def test_bool_rows_and_an_npz_of_no_arrays(tmp_path):
    """Bool rows (binary codes) load as the API takes them; an .npz without arrays says so."""
    flags = np.random.default_rng(0).random((20, 8)) < 0.5
    np.save(tmp_path / "b.npy", flags)
    np.testing.assert_array_equal(load_embeddings(tmp_path / "b.npy"), flags)
    np.savez(tmp_path / "e.npz")
    with pytest.raises(LoadError, match=r"e\.npz: holds no arrays$"):
        load_embeddings(tmp_path / "e.npz")
    with pytest.raises(LoadError, match=r"e\.npz: holds no arrays \(asked for key 'a'\)"):
        load_embeddings(tmp_path / "e.npz", key="a")


def test_npy_object_array_is_never_unpickled(tmp_path):
    np.save(tmp_path / "e.npy", np.array([[1, "a"]], dtype=object), allow_pickle=True)
    with pytest.raises(LoadError, match="never unpickles"):
        load_embeddings(tmp_path / "e.npy")


def test_object_labels_say_how_to_save_strings(tmp_path):
    from hminsel.io.indices import load_labels
    np.save(tmp_path / "g.npy", np.array(["a", "b"], dtype=object), allow_pickle=True)
    with pytest.raises(LoadError, match=r"never unpickles; expected integer or string labels\. Save .*np\.asarray\(labels, dtype=str\)"):
        load_labels(tmp_path / "g.npy", 2)


def test_float_labels_read_as_integers_where_whole(tmp_path):
    from hminsel.io.indices import load_labels
    np.save(tmp_path / "g.npy", np.array([3.0, 1.0, 3.0]))
    got = load_labels(tmp_path / "g.npy", 3)
    assert got.dtype == np.int64 and got.tolist() == [3, 1, 3]
    np.save(tmp_path / "g.npy", np.array([3.0, np.nan, 3.0]))
    with pytest.raises(LoadError, match=r"g.npy: groups has no label \(NaN\) at row 1"):
        load_labels(tmp_path / "g.npy", 3)
    np.save(tmp_path / "g.npy", np.array([3.0, 1.5, 3.0]))
    with pytest.raises(LoadError, match=r"got 1.5 at row 1"):
        load_labels(tmp_path / "g.npy", 3)


def test_npz_key(tmp_path):
    np.savez(tmp_path / "one.npz", emb=X)
    np.testing.assert_array_equal(load_embeddings(tmp_path / "one.npz"), X)  # only array
    np.savez_compressed(tmp_path / "two.npz", emb=X, other=X[:2])
    np.testing.assert_array_equal(load_embeddings(tmp_path / "two.npz", key="other"), X[:2])
    with pytest.raises(LoadError, match=r"choose one with --key.*emb, other"):
        load_embeddings(tmp_path / "two.npz")
    with pytest.raises(LoadError, match=r"no key 'nope'; available: emb, other"):
        load_embeddings(tmp_path / "two.npz", key="nope")


# ---------------------------------------------------------------- safetensors
def test_safetensors(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    st.save_file({"emb": X.astype(np.float16)}, str(tmp_path / "one.safetensors"))
    x = load_embeddings(tmp_path / "one.safetensors")
    assert x.dtype == np.float16
    np.testing.assert_array_equal(x, X.astype(np.float16))
    st.save_file({"a": X, "b": X[:3]}, str(tmp_path / "two.safetensors"))
    np.testing.assert_array_equal(load_embeddings(tmp_path / "two.safetensors", key="b"), X[:3])
    with pytest.raises(LoadError, match="available: a, b"):
        load_embeddings(tmp_path / "two.safetensors", key="c")
    with pytest.raises(LoadError, match="--key"):
        load_embeddings(tmp_path / "two.safetensors")


def test_safetensors_bf16_widens_to_float32(tmp_path):
    pytest.importorskip("safetensors")
    values = np.array([[1.0, -2.5, 3.0], [0.15625, 1e10, -0.0]], dtype=np.float32)
    bf16 = (values.view(np.uint32) >> 16).astype("<u2")  # exact for these values
    header = json.dumps({"__metadata__": {"by": "test"},
                         "emb": {"dtype": "BF16", "shape": [2, 3], "data_offsets": [0, 12]}})
    header = header.encode() + b" " * (-len(header) % 8)
    (tmp_path / "b.safetensors").write_bytes(struct.pack("<Q", len(header)) + header
                                            + bf16.tobytes())
    x = load_embeddings(tmp_path / "b.safetensors")
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, (bf16.astype(np.uint32) << 16).view(np.float32))


# ---------------------------------------------------------------- parquet / arrow
def _table(**columns):
    pa = pytest.importorskip("pyarrow")
    return pa.table(columns)


def test_parquet_list_and_fixed_size_list(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    fixed = pa.FixedSizeListArray.from_arrays(pa.array(X.ravel()), 4)
    table = _table(id=pa.array(range(6)), emb=pa.array(X.tolist(), pa.list_(pa.float32())),
                   fixed=fixed, text=pa.array(list("abcdef")))
    pq.write_table(table, tmp_path / "e.parquet", row_group_size=4)  # two row groups
    x = load_embeddings(tmp_path / "e.parquet", column="emb")
    assert x.shape == (6, 4) and x.dtype == np.float32
    np.testing.assert_array_equal(x, X)
    np.testing.assert_array_equal(load_embeddings(tmp_path / "e.parquet", column="fixed"), X)
    with pytest.raises(LoadError, match=r"--column.*emb, fixed"):
        load_embeddings(tmp_path / "e.parquet")
    with pytest.raises(LoadError, match=r"no column 'embedding'; columns: id, emb, fixed, text"):
        load_embeddings(tmp_path / "e.parquet", column="embedding")
    with pytest.raises(LoadError, match=r"column 'text' has type string; expected a list"):
        load_embeddings(tmp_path / "e.parquet", column="text")


def test_parquet_single_list_column_needs_no_name(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    pq.write_table(_table(v=pa.array(X.tolist()), n=pa.array(range(6))), tmp_path / "e.parquet")
    x = load_embeddings(tmp_path / "e.parquet")
    assert x.dtype == np.float64 and x.shape == (6, 4)


@pytest.fixture(params=[None, 1, 2], ids=["whole", "batches-of-1", "batches-of-2"])
def batches(request, monkeypatch):
    """A parquet file read whole, or a batch of rows at a time (io/parquet_batches.py): the same
    array, and the same errors naming the same rows."""
    from hminsel.io import tables
    if request.param is not None:
        monkeypatch.setattr(tables, "BATCH_ROWS", request.param)


@pytest.mark.parametrize("rows, match", [
    ([[1.0, 2.0], [3.0]], r"ragged: row 0 has 2 values, row 1 has 1"),
    ([[1.0, 2.0], None], r"row 1 is null"),
    ([["a", "b"], ["c", "d"]], r"holds string; expected numbers"),
], ids=["ragged", "null-row", "strings"])
def test_parquet_bad_rows(tmp_path, rows, match, batches):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    pq.write_table(_table(v=pa.array(rows)), tmp_path / "e.parquet")
    with pytest.raises(LoadError, match=match):
        load_embeddings(tmp_path / "e.parquet", column="v")


@pytest.mark.parametrize("kind", ["list", "fixed", "arrow-file"])
def test_null_vectors_read_as_nan_rows_when_asked(tmp_path, kind, batches):
    """A null vector raises (naming how to skip it), or with nulls="nan" reads as a row of NaN
    that select(nonfinite="skip") leaves out; the ragged check skips null rows."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    rows = X.tolist()
    rows[0] = rows[4] = None
    typ = pa.list_(pa.float32(), 4) if kind == "fixed" else pa.list_(pa.float32())
    table = _table(emb=pa.array(rows, typ))
    path = tmp_path / ("e.arrow" if kind == "arrow-file" else "e.parquet")
    if kind == "arrow-file":
        with pa.ipc.new_file(str(path), table.schema) as w:
            w.write_table(table)
    else:
        pq.write_table(table, path)
    with pytest.raises(LoadError, match=r"row 0 is null; expected a vector in every row \(--nonfinite skip"):
        load_embeddings(path)
    x = load_embeddings(path, nulls="nan")
    assert x.shape == (6, 4) and x.dtype == np.float32
    assert np.isnan(x[[0, 4]]).all()
    np.testing.assert_array_equal(x[[1, 2, 3, 5]], X[[1, 2, 3, 5]])
    sel = hminsel.select(x, 4, nonfinite="skip")
    assert sorted(sel.indices.tolist()) == [1, 2, 3, 5]
    import shutil
    copy = shutil.copy(path, tmp_path / f"b{path.suffix}")  # shards: each reads its nulls as NaN
    np.testing.assert_array_equal(open_inputs([path, copy], nulls="nan").load(), np.concatenate([x, x]))
    with pytest.raises(ValueError, match="nulls must be 'raise' or 'nan'"):
        load_embeddings(path, nulls="skip")
    with pytest.raises(ValueError, match="nulls must be 'raise' or 'nan'"):
        load_embeddings([path, copy], nulls="skip")


@pytest.mark.parametrize("kind", ["list", "fixed"])
def test_empty_lists_and_null_values_inside_are_rows_without_a_vector(tmp_path, kind, batches):
    """A failed embedding stored as [] or with a null inside its vector: named by row, and read
    as NaN with nulls="nan", as a null vector is (they were "ragged" or "null values inside
    the vectors", no row, and could not be skipped)."""
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    rows = X.tolist()
    rows[2] = [rows[2][0], None, rows[2][2], rows[2][3]]
    if kind == "list":
        rows[4] = []
    typ = pa.list_(pa.float32(), 4) if kind == "fixed" else pa.list_(pa.float32())
    pq.write_table(_table(emb=pa.array(rows, typ)), tmp_path / "e.parquet")
    with pytest.raises(LoadError, match=r"row 2 has a null value inside its vector; expected"):
        load_embeddings(tmp_path / "e.parquet")
    x = load_embeddings(tmp_path / "e.parquet", nulls="nan")
    gone = [2, 4] if kind == "list" else [2]
    assert np.isnan(x[gone]).all() and not np.isnan(np.delete(x, gone, axis=0)).any()
    np.testing.assert_array_equal(np.delete(x, gone, axis=0), np.delete(X, gone, axis=0))
    if kind == "list":
        rows[2] = X[2].tolist()
        pq.write_table(_table(emb=pa.array(rows, typ)), tmp_path / "e.parquet")
        with pytest.raises(LoadError, match=r"row 4 is an empty list; expected a vector"):
            load_embeddings(tmp_path / "e.parquet")


@pytest.mark.parametrize("rows, ints, match", [
    ([None, [1.0, 2.0], [3.0]], False, r"ragged: row 1 has 2 values, row 2 has 1"),
    ([None, None], False, r"null in every row"),
    ([None, None, [1.0, 2.0], None], False, None),  # whole batches of nulls before the first vector
    ([[1, 2], None], True, r"row 1 is null, and the column holds int64, which has no NaN"),
], ids=["ragged-after-a-null", "all-null", "nulls-first", "integers"])
def test_null_vectors_that_cannot_read_as_nan(tmp_path, rows, ints, match, batches):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    typ = pa.list_(pa.int64() if ints else pa.float64())
    pq.write_table(_table(v=pa.array(rows, typ)), tmp_path / "e.parquet")
    if match is None:  # they read as NaN rows
        x = load_embeddings(tmp_path / "e.parquet", column="v", nulls="nan")
        assert x.shape == (4, 2) and np.isnan(x[[0, 1, 3]]).all() and x[2].tolist() == [1.0, 2.0]
        return
    with pytest.raises(LoadError, match=match):
        load_embeddings(tmp_path / "e.parquet", column="v", nulls="nan")


def test_arrow_ipc_file(tmp_path):
    pa = pytest.importorskip("pyarrow")
    table = _table(emb=pa.array(X.tolist(), pa.list_(pa.float32())))
    with pa.ipc.new_file(str(tmp_path / "e.arrow"), table.schema) as w:
        w.write_table(table)
    np.testing.assert_array_equal(load_embeddings(tmp_path / "e.arrow"), X)


# ---------------------------------------------------------------- Hugging Face on disk
def _hf_dataset(tmp_path):
    datasets = pytest.importorskip("datasets")
    ds = datasets.Dataset.from_dict({"emb": X.tolist(), "text": list("abcdef")})
    ds = ds.cast_column("emb", datasets.Sequence(datasets.Value("float32")))
    return datasets, ds


def test_hf_dataset_saved_to_disk(tmp_path):
    _, ds = _hf_dataset(tmp_path)
    ds.save_to_disk(str(tmp_path / "ds"))
    x = load_embeddings(tmp_path / "ds")  # the only list column
    assert x.dtype == np.float32
    np.testing.assert_array_equal(x, X)
    with pytest.raises(LoadError, match=r"no column 'vec'; columns: emb, text"):
        load_embeddings(tmp_path / "ds", column="vec")


def test_hf_dataset_without_the_datasets_package(tmp_path, monkeypatch):
    import sys
    _, ds = _hf_dataset(tmp_path)
    ds.save_to_disk(str(tmp_path / "ds"))
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    np.testing.assert_array_equal(load_embeddings(tmp_path / "ds", column="emb"), X)


def test_hf_dataset_dict_split(tmp_path):
    datasets, ds = _hf_dataset(tmp_path)
    dd = datasets.DatasetDict({"train": ds, "test": ds.select([1, 2])})
    dd.save_to_disk(str(tmp_path / "dd"))
    np.testing.assert_array_equal(load_embeddings(tmp_path / "dd", split="test"), X[1:3])
    with pytest.raises(LoadError, match=r"--split.*train, test"):
        load_embeddings(tmp_path / "dd")
    with pytest.raises(LoadError, match=r"no split 'dev'"):
        load_embeddings(tmp_path / "dd", split="dev")


def test_plain_directory_is_not_a_dataset(tmp_path):
    with pytest.raises(LoadError, match="neither a Hugging Face dataset .* nor a folder of"):
        load_embeddings(tmp_path)


# ---------------------------------------------------------------- bad files
def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no such file"):
        load_embeddings(tmp_path / "nope.npy")


def test_unknown_extension(tmp_path):
    (tmp_path / "e.csv").write_text("1,2\n")
    with pytest.raises(LoadError, match=r"unknown extension '.csv'; expected one of .npy"):
        load_embeddings(tmp_path / "e.csv")


@pytest.mark.parametrize("ext", [".npy", ".npz", ".safetensors", ".parquet", ".arrow"])
def test_corrupt_file(tmp_path, ext):
    if ext in (".parquet", ".arrow"):
        pytest.importorskip("pyarrow")
    if ext == ".safetensors":
        pytest.importorskip("safetensors")
    path = tmp_path / f"e{ext}"
    path.write_bytes(b"this is not a real file, just some bytes" * 3)
    with pytest.raises(LoadError, match="cannot read as"):
        load_embeddings(path)


def test_truncated_npy(tmp_path):
    np.save(tmp_path / "e.npy", X)
    data = (tmp_path / "e.npy").read_bytes()
    (tmp_path / "e.npy").write_bytes(data[:-10])
    for mmap in (True, False):  # NumPy: "mmap length is greater than file size", "Failed to read"
        with pytest.raises(LoadError, match=r"truncated .npy: its header says \(6, 4\) float32 "
                                            r"\(96 bytes of data\), but the file holds 86"):
            load_embeddings(tmp_path / "e.npy", mmap=mmap)


# ---------------------------------------------------------------- atomic writers
def test_write_npy_atomic_refuses_overwrite(tmp_path):
    path = tmp_path / "sub" / "idx.npy"  # parent folders are created
    write_npy_atomic(path, np.arange(5))
    np.testing.assert_array_equal(np.load(path), np.arange(5))
    with pytest.raises(FileExistsError, match="force=True"):
        write_npy_atomic(path, np.arange(3))
    np.testing.assert_array_equal(np.load(path), np.arange(5))  # untouched
    write_npy_atomic(path, np.arange(3), force=True)
    np.testing.assert_array_equal(np.load(path), np.arange(3))
    assert sorted(os.listdir(path.parent)) == ["idx.npy"]  # no temp files left


def test_write_json_atomic_and_failure_leaves_nothing(tmp_path):
    path = tmp_path / "m.json"
    write_json_atomic(path, {"a": [1, 2]})
    assert json.loads(path.read_text()) == {"a": [1, 2]}
    with pytest.raises(FileExistsError, match="force=True"):
        write_json_atomic(path, {})
    with pytest.raises(ValueError):  # inf is not JSON: fails before replacing
        write_json_atomic(path, {"x": float("inf")}, force=True)
    assert json.loads(path.read_text()) == {"a": [1, 2]}
    assert os.listdir(tmp_path) == ["m.json"]


def test_outputs_together_land_as_one_set_or_none(tmp_path):
    a, b = tmp_path / "a.npy", tmp_path / "b.json"
    write_npy_atomic(a, np.arange(5))
    write_json_atomic(b, {"k": 5})
    for stop in (OSError("disk full"), KeyboardInterrupt()):
        with pytest.raises(type(stop)):
            with together():
                write_npy_atomic(a, np.arange(3), force=True)
                assert np.load(a).size == 5  # not yet: the set lands at the end
                raise stop
        np.testing.assert_array_equal(np.load(a), np.arange(5))  # the old set, whole
        assert json.loads(b.read_text()) == {"k": 5}
        assert sorted(os.listdir(tmp_path)) == ["a.npy", "b.json"]  # no temporary left
    with together():
        write_npy_atomic(a, np.arange(3), force=True)
        with together():  # nested: the outer one lands them
            write_json_atomic(b, {"k": 3}, force=True)
        assert json.loads(b.read_text()) == {"k": 5}
    np.testing.assert_array_equal(np.load(a), np.arange(3))
    assert json.loads(b.read_text()) == {"k": 3}


def test_outputs_together_refuse_a_file_made_meanwhile(tmp_path):
    c = tmp_path / "c.npy"
    with pytest.raises(FileExistsError, match="already exists"):
        with together():
            write_npy_atomic(tmp_path / "a.npy", np.arange(3))
            write_npy_atomic(c, np.arange(3))
            c.write_bytes(b"another program's")
    assert sorted(os.listdir(tmp_path)) == ["c.npy"] and c.read_bytes() == b"another program's"


def test_a_signal_while_outputs_land_waits_for_all_of_them(tmp_path, monkeypatch):
    """Ctrl-C between two of the final moves: both land, then the KeyboardInterrupt comes."""
    import signal
    from hminsel.io import writers
    replace, calls = os.replace, []

    def interrupted_replace(src, dst):
        if not calls:
            os.kill(os.getpid(), signal.SIGINT)  # its handler would run at the next bytecode
        calls.append(dst)
        replace(src, dst)
    monkeypatch.setattr(writers.os, "replace", interrupted_replace)
    with pytest.raises(KeyboardInterrupt):
        with together():
            write_npy_atomic(tmp_path / "a.npy", np.arange(3))
            write_json_atomic(tmp_path / "b.json", {"k": 3})
    assert len(calls) == 2 and sorted(os.listdir(tmp_path)) == ["a.npy", "b.json"]
    with pytest.raises(FileExistsError, match="written twice in one set"):
        with together():
            write_npy_atomic(tmp_path / "c.npy", np.arange(3))
            write_npy_atomic(tmp_path / "c.npy", np.arange(4))
    assert "c.npy" not in os.listdir(tmp_path)


def test_a_failed_write_names_its_file(tmp_path, monkeypatch):
    def short(*args, **kwargs):
        raise OSError("20000 requested and 12784 written")  # numpy's words for a short write
    monkeypatch.setattr(np, "save", short)
    with pytest.raises(OSError, match=r"^cannot write .*i\.npy: 20000 requested"):
        write_npy_atomic(tmp_path / "i.npy", np.arange(3))
    assert os.listdir(tmp_path) == []


# ---------------------------------------------------------------- subset writer
def _jsonl(path, n):
    path.write_text("".join(json.dumps({"id": i, "text": f"é{i}"}, ensure_ascii=False) + "\n"
                            + ("\n" if i == 2 else "") for i in range(n)))  # a blank line
    return path


@pytest.mark.parametrize("out_name", ["s.jsonl", "s.json"])
def test_subset_from_jsonl_keeps_selection_order(tmp_path, out_name):
    data = _jsonl(tmp_path / "d.jsonl", 6)
    assert count_records(data) == 6
    assert write_subset(data, [4, 0, 3], tmp_path / out_name, n_rows=6) == 3
    text = (tmp_path / out_name).read_text(encoding="utf-8")
    if out_name.endswith(".jsonl"):
        assert text.splitlines() == [json.dumps({"id": i, "text": f"é{i}"}, ensure_ascii=False)
                                     for i in (4, 0, 3)]
    else:
        assert [r["id"] for r in json.loads(text)] == [4, 0, 3]
    with pytest.raises(FileExistsError, match="force=True"):
        write_subset(data, [1], tmp_path / out_name)
    write_subset(data, [1], tmp_path / out_name, force=True)


def test_subset_from_json_list(tmp_path):
    data = tmp_path / "d.json"
    data.write_text(json.dumps([{"id": i} for i in range(5)]))
    assert count_records(data) == 5
    write_subset(data, [2, 1], tmp_path / "s.jsonl", n_rows=5)
    lines = (tmp_path / "s.jsonl").read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [2, 1]


def test_subset_errors(tmp_path):
    data = _jsonl(tmp_path / "d.jsonl", 6)
    with pytest.raises(ValueError, match="holds 6 records but the embeddings have 7 rows"):
        write_subset(data, [0], tmp_path / "s.jsonl", n_rows=7)
    with pytest.raises(ValueError, match="index 9 is out of range"):
        write_subset(data, [0, 9], tmp_path / "s.jsonl")
    with pytest.raises(ValueError, match="expected a .jsonl"):
        write_subset(data, [0], tmp_path / "s.csv")
    (tmp_path / "obj.json").write_text('{"a": 1}')
    with pytest.raises(ValueError, match="top-level JSON list"):
        write_subset(tmp_path / "obj.json", [0], tmp_path / "s.jsonl")
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n{oops\n')
    with pytest.raises(ValueError, match="line 2 is not valid JSON"):
        write_subset(tmp_path / "bad.jsonl", [1], tmp_path / "s.jsonl")
    with pytest.raises(FileNotFoundError):
        write_subset(tmp_path / "none.jsonl", [0], tmp_path / "s.jsonl")
    assert not (tmp_path / "s.jsonl").exists()


def test_count_records_parses_every_line(tmp_path):
    (tmp_path / "ok.jsonl").write_text('{"a": 1}\n\n[2]\n"three"\n')
    assert count_records(tmp_path / "ok.jsonl") == 3  # blank lines are not records
    (tmp_path / "bad.jsonl").write_text('{"a": 1}\n\n{"b": \n{"c": 3}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl: line 3 is not valid JSON"):
        count_records(tmp_path / "bad.jsonl")


def test_options_a_format_would_ignore_are_refused(tmp_path):
    np.save(tmp_path / "e.npy", X)
    np.savez(tmp_path / "e.npz", emb=X)
    with pytest.raises(LoadError, match=r"--column \(column=\) does not apply to a \.npy file"):
        load_embeddings(tmp_path / "e.npy", column="vec")
    with pytest.raises(LoadError, match=r"--split \(split=\) does not apply to a \.npz file.*"
                                        r"takes: --key"):
        load_embeddings(tmp_path / "e.npz", split="train")
    np.testing.assert_array_equal(load_embeddings(tmp_path / "e.npz", key="emb"), X)
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "state.json").write_text("{}")  # a dataset saved with save_to_disk
    with pytest.raises(LoadError, match=r"--key \(key=\) does not apply to a Hugging Face"):
        load_embeddings(tmp_path / "ds", key="emb")


def test_big_endian_npy_loads_as_stored(tmp_path):
    np.save(tmp_path / "be.npy", X.astype(">f4"))
    x = load_embeddings(tmp_path / "be.npy")  # a read-only map: the API converts a copy
    assert x.dtype == np.dtype(">f4")
    np.testing.assert_array_equal(x, X)


def test_check_outputs_names_every_output_that_is_there(tmp_path):
    from hminsel.io import OutputExists, check_outputs
    a, b, c = (tmp_path / name for name in ("a.npy", "a.json", "new.npy"))
    a.write_bytes(b"")
    b.write_bytes(b"")
    with pytest.raises(OutputExists) as err:
        check_outputs([a, None, c, b])
    assert err.value.paths == (str(a), str(b))
    assert str(err.value) == f"{a} and {b} already exist; pass force=True to overwrite them"
    assert err.value.on_command_line() == f"{a} and {b} already exist; pass --force to overwrite them"
    check_outputs([a, c, b], force=True)
    with pytest.raises(IsADirectoryError):
        check_outputs([c, tmp_path])


def test_load_indices_of_a_bool_mask_says_how_to_save_rows(tmp_path):
    from hminsel.io import load_indices
    np.save(tmp_path / "m.npy", np.arange(6) % 2 == 0)
    with pytest.raises(LoadError, match=r"dtype bool; for a bool mask of the rows, save np.flatnonzero"):
        load_indices(tmp_path / "m.npy")
