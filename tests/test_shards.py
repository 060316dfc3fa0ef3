"""Embeddings in several files (shards): hminsel.io.shards and the inputs of the commands."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

import hminsel
from hminsel.io import LoadError, load_embeddings
from hminsel.io import shards as shards_module
from hminsel.io.shards import open_inputs
from cli_helpers import run

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
    np.testing.assert_array_equal(inputs.load(), X)
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
        else:  # arrow
            pa = pytest.importorskip("pyarrow")
            table = pa.table({"emb": pa.array(x[a:b].tolist(), type=pa.list_(pa.float32()))})
            with pa.OSFile(str(paths[-1]), "wb") as sink, pa.ipc.new_file(sink, table.schema) as w:
                w.write_table(table)
    return paths


@pytest.mark.parametrize("kind", ["npy", "npz", "safetensors", "arrow", "parquet",
                                  "parquet-fixed"])
def test_shards_are_read_only_where_needed(tmp_path, kind, monkeypatch):
    paths = _write(kind, tmp_path)
    read = []
    real = shards_module.load_embeddings
    monkeypatch.setattr(shards_module, "load_embeddings",
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
    with pytest.warns(UserWarning, match="the shell's name order, not in number order"):
        open_inputs(sorted(paths))  # what emb-*.npy expands to
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
    (np.zeros((0, 6), np.float32), "empty"),
], ids=["width", "dtype", "empty"])
def test_shards_that_do_not_match_are_named(tmp_path, odd, said):
    paths = _npy(tmp_path)
    np.save(tmp_path / "odd.npy", odd)
    with pytest.raises(LoadError, match=said):
        open_inputs(paths + [tmp_path / "odd.npy"])


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
    check_outputs([folder], [str(tmp_path / "new.npy")])


def test_shards_that_would_not_fit_in_memory_are_refused_before_the_copy(tmp_path, monkeypatch):
    paths = _npy(tmp_path)
    monkeypatch.setattr(shards_module, "available_memory", lambda: 100)
    with pytest.raises(MemoryError, match=r"more than the 0.0 GiB of memory free.*hminsel.distributed"):
        open_inputs(paths).load()
    assert open_inputs(paths).rows(0, 40).shape == X.shape  # a part is not refused


# ---------------------------------------------------------------- the commands
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
    assert code == 2 and "--embed reads one data file; got 2 inputs" in err


def test_torchrun_ranks_read_their_own_shards(tmp_path):
    """``python -m hminsel.distributed`` over parquet shards: the picks, the per-label picks and
    the pair of one process over all rows."""
    pytest.importorskip("torch.distributed")
    import socket
    import subprocess
    import sys
    labels = np.arange(40) % 2
    (tmp_path / "shards").mkdir()
    paths = _parquet(tmp_path / "shards")
    np.save(tmp_path / "labels.npy", labels)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    base = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
            f"--master_port={port}", "-m", "hminsel.distributed"]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for extra, out, want in (
            ([], "p.npy", hminsel.select(X, 7).indices),
            (["--groups", str(tmp_path / "labels.npy")], "g.npy",
             hminsel.select_batched(X, 3, groups=labels).indices)):
        k = "7" if not extra else "3"
        done = subprocess.run(base + ["select", *map(str, paths), "--k", k, *extra, "--out",
                                      str(tmp_path / out)],
                              capture_output=True, text=True, timeout=180, env=env)
        assert done.returncode == 0, done.stderr[-2000:]
        np.testing.assert_array_equal(np.load(tmp_path / out), want)
    m = json.loads((tmp_path / "p.json").read_text())
    assert m["input"] == [str(p) for p in paths] and m["input_offsets"] == [0, 11, 12, 40]
    done = subprocess.run(base + ["hmin", str(tmp_path / "shards"), "--json"], capture_output=True, text=True,
                          timeout=180, env=env)  # the folder: its shards in name order
    assert done.returncode == 0, done.stderr[-2000:]
    got, pair = json.loads(done.stdout.strip().splitlines()[-1]), hminsel.hmin(X)
    assert (got["i"], got["j"], got["N"]) == (pair.i, pair.j, 40)


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
    (job / "memory.max").write_text("max\n")
    assert available_memory(**args) == 50_000 * 1024
    (tmp_path / "meminfo").write_text("")
    assert available_memory(**args) is None


def test_torchrun_refuses_an_output_in_a_folder_input(tmp_path, capsys):
    pytest.importorskip("torch.distributed")
    from hminsel.distributed.__main__ import main
    folder = tmp_path / "s"
    folder.mkdir()
    paths = _npy(folder)
    for argv, said in (([str(folder), "--out", str(folder / "p.npy")], "lies in the input folder"),
                       ([str(folder), "--out", str(tmp_path / "p.npy"), "--mask", str(paths[1])],
                        "must be different files")):
        with pytest.raises(SystemExit) as exc:
            main(["select", *argv, "--k", "3"])
        assert exc.value.code == 2 and said in capsys.readouterr().err
