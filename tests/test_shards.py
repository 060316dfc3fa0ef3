"""Embeddings in several files (shards): hminsel.io.shards, heads and memory.

The commands over shards: test_cli_shards.py."""
from __future__ import annotations

import os

import numpy as np
import pytest

from hminsel.io import LoadError, load_embeddings
from hminsel.io import shards as shards_module
from hminsel.io.shards import open_inputs

X = np.random.default_rng(3).standard_normal((40, 6)).astype(np.float32)
CUTS = [(0, 11), (11, 12), (12, 40)]  # a one-row shard in the middle


def _npy(folder, x=X, cuts=CUTS, name="emb-{}.npy"):
    paths = []
    for i, (a, b) in enumerate(cuts):
        paths.append(folder / name.format(i))
        np.save(paths[-1], x[a:b])
    return paths


def _parquet(folder, x=X, cuts=CUTS, fixed=False, labels=None):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    typ = pa.list_(pa.float32(), x.shape[1]) if fixed else pa.list_(pa.float32())
    paths = []
    for i, (a, b) in enumerate(cuts):
        cols = {"emb": pa.array(x[a:b].tolist(), type=typ)}
        if labels is not None:
            cols["src"] = pa.array(labels[a:b])
        paths.append(folder / f"part-{i}.parquet")
        pq.write_table(pa.table(cols), paths[-1])
    return paths


def test_npy_shards_are_one_matrix(tmp_path):
    paths = _npy(tmp_path)
    inputs = open_inputs(paths)
    assert inputs.shape == X.shape and inputs.dtype == np.float32
    np.testing.assert_array_equal(inputs.offsets, [0, 11, 12, 40])
    told = []
    np.testing.assert_array_equal(inputs.load(lambda done, total: told.append((done, total))), X)
    assert told == [(11, 40), (12, 40), (40, 40)]  # a progress bar's calls, a shard at a time
    np.testing.assert_array_equal(load_embeddings(paths), X)
    inside = inputs.rows(13, 30)  # within one shard: a view of its memory map, no copy
    assert isinstance(inside, np.memmap) and not inside.flags.writeable
    np.testing.assert_array_equal(inside, X[13:30])
    for lo, hi in ((0, 40), (5, 12), (10, 13), (11, 12), (39, 40), (7, 7)):
        np.testing.assert_array_equal(inputs.rows(lo, hi), X[lo:hi])
    rows = [39, 0, 11, 12, 11, 3]
    np.testing.assert_array_equal(inputs.take(rows), X[rows])
    with pytest.raises(IndexError, match=r"\[0, 40\); got 40"):
        inputs.take([1, 40])


def _write(kind, folder, x=X, cuts=CUTS):
    """Shards of ``x`` in format ``kind``: their paths."""
    if kind == "npy":
        return _npy(folder, x, cuts)
    if kind.startswith("parquet"):
        return _parquet(folder, x, cuts, fixed=kind == "parquet-fixed")
    paths = []
    for i, (a, b) in enumerate(cuts):
        paths.append(folder / f"s-{i}.{kind}")
        if kind == "npz":
            np.savez(paths[-1], emb=x[a:b])
        elif kind == "safetensors":
            pytest.importorskip("safetensors.numpy").save_file({"emb": x[a:b]}, str(paths[-1]))
        else:  # arrow: an IPC file, LZ4-compressed (feather's default), or a stream
            pa = pytest.importorskip("pyarrow")
            paths[-1] = folder / f"s-{i}.arrow"
            table = pa.table({"emb": pa.array(x[a:b].tolist(), type=pa.list_(pa.float32()))})
            options = pa.ipc.IpcWriteOptions(compression="lz4" if kind == "arrow-lz4" else None)
            new = pa.ipc.new_stream if kind == "arrow-stream" else pa.ipc.new_file
            with pa.OSFile(str(paths[-1]), "wb") as sink, new(sink, table.schema,
                                                             options=options) as w:
                w.write_table(table)
    return paths


@pytest.mark.parametrize("kind", ["npy", "npz", "safetensors", "arrow", "arrow-lz4",
                                  "arrow-stream", "parquet", "parquet-fixed"])
def test_shards_are_read_only_where_needed(tmp_path, kind, monkeypatch):
    paths = _write(kind, tmp_path)
    read = []
    real = shards_module.load_one
    monkeypatch.setattr(shards_module, "load_one",
                        lambda path, **kw: read.append(os.path.basename(path)) or real(path, **kw))
    inputs = open_inputs(paths)
    assert inputs.shape == X.shape and inputs.dtype == np.float32
    assert read == []  # rows, widths and dtypes from headers and metadata
    np.testing.assert_array_equal(inputs.rows(12, 20), X[12:20])
    assert read == ([] if kind == "npy" else [os.path.basename(paths[2])])  # only its holder
    np.testing.assert_array_equal(inputs.load(), X)
    np.testing.assert_array_equal(inputs.take([39, 0, 11]), X[[39, 0, 11]])


def test_parquet_width_from_metadata_over_row_groups(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    table = pa.table({"emb": pa.array(X.tolist(), type=pa.list_(pa.float32()))})
    pq.write_table(table, tmp_path / "a.parquet", row_group_size=7)
    pq.write_table(table.slice(0, 5), tmp_path / "b.parquet")
    inputs = open_inputs([tmp_path / "a.parquet", tmp_path / "b.parquet"])
    assert inputs.shape == (45, 6) and inputs._d == 6
    ragged = pa.table({"emb": pa.array([[1.0, 2.0, 3.0, 4.0], [1.0] * 8], pa.list_(pa.float32()))})
    pq.write_table(ragged, tmp_path / "c.parquet")  # 12 values over 2 rows: 6 a row on average
    with pytest.raises(LoadError, match="c.parquet: column 'emb' is ragged"):
        open_inputs([tmp_path / "a.parquet", tmp_path / "c.parquet"]).load()


def test_a_folder_of_shards_in_number_order(tmp_path):
    folder = tmp_path / "emb"
    folder.mkdir()
    cuts = [(0, 3), (3, 4), (4, 8), (8, 9), (9, 12), (12, 20), (20, 22), (22, 25), (25, 30),
            (30, 33), (33, 40)]  # emb-0 ... emb-10: emb-10 comes last, not after emb-1
    paths = _npy(folder, cuts=cuts, name="emb-{}.npy")
    np.testing.assert_array_equal(load_embeddings(folder), X)
    shell = sorted(paths)  # what emb-*.npy expands to: emb-0, emb-1, emb-10, emb-2, ...
    assert "not in number order (emb-0.npy, emb-1.npy, emb-10.npy" in open_inputs(shell).warning
    with pytest.warns(UserWarning, match="not in number order"):
        np.testing.assert_array_equal(load_embeddings(shell)[:4], X[[0, 1, 2, 3]])
    assert open_inputs(paths).warning is None and open_inputs(folder).warning is None
    assert open_inputs([paths[2], paths[0]]).warning is not None  # emb-2 before emb-0
    for p in paths:
        p.unlink()
    _npy(folder, name="emb-{}.npy")
    (folder / "notes.txt").write_text("not an input")
    (folder / ".hidden.npy").write_bytes(b"")  # hidden files are left out
    np.testing.assert_array_equal(load_embeddings(folder), X)
    assert [os.path.basename(p) for p in open_inputs(folder).paths] == [
        "emb-0.npy", "emb-1.npy", "emb-2.npy"]
    np.savez(folder / "emb-3.npz", emb=X)
    with pytest.raises(LoadError, match=r"files of 2 kinds \(.npy, .npz\).*pass the files"):
        open_inputs(folder)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(LoadError, match="neither a Hugging Face dataset .* nor a folder"):
        load_embeddings(empty)


def test_one_shard_loads_as_one_file(tmp_path):
    (path,) = _npy(tmp_path, cuts=[(0, 40)])
    x = load_embeddings([path])
    assert isinstance(x, np.memmap)  # read in place, as the file alone
    np.testing.assert_array_equal(open_inputs(path).load(), X)


@pytest.mark.parametrize("odd, said", [
    (np.zeros((3, 7), np.float32), r"rows of 7 values, but .*emb-0.npy has rows of 6"),
    (np.zeros((3, 6), np.float16), r"holds float16, but .*emb-0.npy holds float32"),
], ids=["width", "dtype"])
def test_shards_that_do_not_match_are_named(tmp_path, odd, said):
    paths = _npy(tmp_path)
    np.save(tmp_path / "odd.npy", odd)
    with pytest.raises(LoadError, match=said):
        open_inputs(paths + [tmp_path / "odd.npy"])


@pytest.mark.parametrize("kind", ["npy", "parquet"])
def test_empty_shards_among_others_hold_no_rows(tmp_path, kind):
    """A shard of no rows (a rank or a split that got none) adds nothing; it may come first.
    An empty parquet list column says no width: it is taken as it is."""
    cuts = [(0, 0), (0, 11), (11, 11), (11, 40), (40, 40)]
    paths = _npy(tmp_path, cuts=cuts) if kind == "npy" else _parquet(tmp_path, cuts=cuts)
    inputs = open_inputs(paths)
    assert inputs.shape == (40, 6) and inputs.offsets.tolist() == [0, 0, 11, 11, 40, 40]
    np.testing.assert_array_equal(inputs.load(), X)
    np.testing.assert_array_equal(inputs.rows(5, 20), X[5:20])
    np.testing.assert_array_equal(inputs.take([39, 0, 11, 10]), X[[39, 0, 11, 10]])
    with pytest.raises(LoadError, match="every input is empty: the 2 files hold no rows"):
        open_inputs([paths[0], paths[2]])
    np.save(tmp_path / "other.npy", np.zeros((0, 9)))  # float64 of another width: adds nothing
    assert open_inputs([paths[1], tmp_path / "other.npy"]).shape == (11, 6)
    alone = open_inputs([paths[0], paths[3], paths[4]]).load()  # one shard holds every row
    if kind == "npy":
        assert isinstance(alone, np.memmap)  # its own array, read in place as the file alone
    np.testing.assert_array_equal(alone, X[11:40])
    with pytest.raises(LoadError, match="the matrix is empty"):  # alone, an empty file is an error
        open_inputs([paths[0]])


@pytest.mark.parametrize("kind", ["parquet", "arrow"])
def test_empty_table_shard_of_any_column_type_holds_no_rows(tmp_path, kind):
    """pandas writes an empty frame's columns as float64 (no list type to find): among other
    shards such a file adds nothing; a column it lacks by name is still named."""
    pa = pytest.importorskip("pyarrow")
    paths = _parquet(tmp_path, cuts=[(0, 11), (11, 40)])
    empty = pa.table({"text": pa.array([], pa.float64()), "emb": pa.array([], pa.float64())})
    odd = tmp_path / f"odd.{kind}"
    if kind == "parquet":
        import pyarrow.parquet as pq
        pq.write_table(empty, odd)
    else:
        with pa.ipc.new_file(str(odd), empty.schema) as writer:
            writer.write_table(empty)
    for order in ([paths[0], odd, paths[1]], [odd] + paths):
        inputs = open_inputs(order)
        assert inputs.shape == (40, 6)
        np.testing.assert_array_equal(inputs.load(), X)
    assert open_inputs(paths + [odd], column="emb").shape == (40, 6)
    with pytest.raises(LoadError, match=r"odd\.\w+: no column 'vec'"):
        open_inputs([odd] + paths, column="vec")
    with pytest.raises(LoadError, match="no list-of-numbers column"):  # alone: still an error
        open_inputs([odd])


def test_parquet_shard_of_another_width_is_named(tmp_path):
    paths = _parquet(tmp_path)
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq
    pq.write_table(pa.table({"emb": pa.array([[1.0, 2.0]], type=pa.list_(pa.float32()))}),
                   tmp_path / "odd.parquet")
    with pytest.raises(LoadError, match=r"odd.parquet: rows of 2 values"):
        open_inputs(paths + [tmp_path / "odd.parquet"])


def test_bad_input_lists(tmp_path):
    paths = _npy(tmp_path)
    with pytest.raises(LoadError, match=r"emb-0.npy is given twice; each input once"):
        open_inputs(paths + [paths[0]])
    with pytest.raises(FileNotFoundError, match="no such file"):
        open_inputs(paths + [tmp_path / "nope.npy"])
    with pytest.raises(LoadError, match="no input given"):
        open_inputs([])
    with pytest.raises(LoadError, match="--column .* does not apply to a .npy file"):
        open_inputs(paths, column="emb")
    inputs = open_inputs(paths)
    with pytest.raises(TypeError, match="integer row indices; got dtype bool"):
        inputs.take([True, False])
    with pytest.raises(ValueError, match="row numbers from 0"):
        inputs.rows(-3, 4)


def test_a_folder_whose_subfolders_hold_inputs_is_refused(tmp_path):
    """A folder input reads only its own files: rows in a subfolder (more/, a hive partition
    source=web/) would have been left out without a word."""
    folder = tmp_path / "emb"
    folder.mkdir()
    _npy(folder, name="emb-{}.npy")
    for ignored in (".ipynb_checkpoints", "hminsel-cache"):  # hidden; the embedding cache
        (folder / ignored).mkdir()
        np.save(folder / ignored / "x.npy", X)
    (folder / "logs").mkdir()  # no inputs in it
    (folder / "logs" / "run.txt").write_text("no input here")
    np.testing.assert_array_equal(load_embeddings(folder), X)
    (folder / "more" / "deeper").mkdir(parents=True)
    np.save(folder / "more" / "deeper" / "emb-9.npy", X)
    with pytest.raises(LoadError, match=r"its subfolders \(.*more\) hold embedding files too.*"
                                        r"reads only its own files \(\d+ here\): pass the files"):
        load_embeddings(folder)
    for p in folder.glob("emb-*.npy"):  # none of its own: the same, not "neither a dataset..."
        p.unlink()
    with pytest.raises(LoadError, match=r"reads only its own files \(0 here\)"):
        load_embeddings(folder)


def test_a_folder_names_the_file_that_does_not_fit_and_keeps_outputs_out(tmp_path):
    from hminsel.io.shards import check_outputs
    folder = tmp_path / "s"
    folder.mkdir()
    _npy(folder)
    np.save(folder / "picked.npy", np.arange(3))  # an earlier run's output, written there
    with pytest.raises(LoadError, match=r"picked.npy: expected a 2-D .*\(a file of the input folder "
                                        r".*pass the shard files"):
        open_inputs(folder)
    with pytest.raises(LoadError, match="lies in the input folder .* write it elsewhere"):
        check_outputs([folder], [str(folder / "new.npy")])
    check_outputs([folder], [str(tmp_path / "new.npy"), str(folder / "m.json")])  # not a shard
    with pytest.raises(LoadError, match=r"lies in the input folder .* \(its subfolder runs/a\)"):
        check_outputs([folder], [str(folder / "runs" / "a" / "new.npy")])  # the next run refuses
    check_outputs([folder], [str(folder / ".cache" / "new.npy"),  # passed over by the folder
                             str(folder / "hminsel-cache" / "e.npy")])


def test_shards_that_would_not_fit_in_memory_are_refused_before_the_copy(tmp_path, monkeypatch):
    paths = _npy(tmp_path)
    monkeypatch.setattr(shards_module, "available_memory", lambda: 100)
    with pytest.raises(MemoryError, match=r"more than the 0.0 GiB of memory free.*distributed"):
        open_inputs(paths).load()
    assert open_inputs(paths).rows(0, 40).shape == X.shape  # a part is not refused


def test_available_memory_is_capped_by_the_cgroup_limit(tmp_path):
    from hminsel.io.memory import available_memory
    (tmp_path / "meminfo").write_text("MemTotal: 100 kB\nMemAvailable: 50000 kB\n")
    (tmp_path / "cgroup").write_text("0::/job\n")
    job = tmp_path / "fs" / "job"
    job.mkdir(parents=True)
    (job / "memory.max").write_text("30000000\n")
    (job / "memory.current").write_text("10000000\n")
    args = dict(root=str(tmp_path / "fs"), proc_cgroup=str(tmp_path / "cgroup"),
                meminfo=str(tmp_path / "meminfo"))
    assert available_memory(**args) == 20_000_000  # the limit less the usage, below MemAvailable
    (job / "memory.stat").write_text("anon 1000\ninactive_file 4000000\nactive_file 5\n")
    assert available_memory(**args) == 24_000_000  # page cache the kernel may drop is free
    (job / "memory.max").write_text("max\n")
    assert available_memory(**args) == 50_000 * 1024
    (tmp_path / "meminfo").write_text("")
    assert available_memory(**args) is None


def test_a_quoted_wildcard_says_that_the_shell_expands_it(tmp_path):
    _npy(tmp_path, name="emb-{}.npy")
    with pytest.raises(FileNotFoundError, match=r"emb-\*\.npy \(hminsel does not expand wildcards"):
        load_embeddings(str(tmp_path / "emb-*.npy"))
