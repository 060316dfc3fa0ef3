"""Arrow tables: parquet and Arrow IPC files, and Hugging Face datasets saved to disk.

``load_parquet``, ``load_arrow`` and ``load_hf_dir`` read a list-of-numbers
column as an (N, d) matrix (for ``loaders.load_embeddings``);
``load_label_column`` reads a column of one integer or string a row (the
labels of per-label quotas) from the same files. pyarrow is the optional
dependency (``pip install "hminsel[io]"``); ``datasets`` is used when present.
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

from .errors import LoadError, _corrupt, _pick


def _pyarrow():
    try:
        import pyarrow
        return pyarrow
    except ImportError:
        raise ImportError('reading parquet, arrow or Hugging Face datasets needs pyarrow: '
                          'pip install "hminsel[io]"') from None


def release_arrow() -> None:
    """Hand back to the system what Arrow's memory pool kept of data already copied out: its
    allocators (mimalloc, jemalloc) keep freed pages for reuse, so reading 4 parquet shards of
    1M x 384 float32 left twice the matrix resident."""
    pa = sys.modules.get("pyarrow")
    if pa is not None:
        pa.default_memory_pool().release_unused()


BATCH_ROWS = 1 << 16  # rows of a parquet file read at a time, past this many


def load_parquet(path, column, empty_ok=False, nulls="raise"):
    """The (N, d) list column ``column`` of a parquet file (``empty_ok``, ``nulls``: see
    ``_table_column``)."""
    _pyarrow()
    import pyarrow.parquet as pq
    try:
        pf = pq.ParquetFile(path)
        if empty_ok and pf.metadata.num_rows == 0:
            return _table_column(pf.schema_arrow.empty_table(), column, path, empty_ok)
        name = _pick("column", column, _list_columns(pf.schema_arrow, column, path), path)
        if pf.metadata.num_rows > BATCH_ROWS:  # a batch's pages at a time: see parquet_batches
            from .parquet_batches import read_column
            return read_column(path, name, nulls, BATCH_ROWS)
        return _table_column(pq.read_table(path, columns=[name]), name, path, nulls=nulls)
    except LoadError:
        raise
    except Exception as exc:  # ArrowInvalid, OSError
        raise _corrupt(path, ".parquet", exc) from None


def open_ipc(path):
    """A reader of the Arrow IPC file at ``path``, memory-mapped: a stream (what ``datasets``
    writes) or a file (with a footer: ``RecordBatchFileReader``). Its schema costs no rows."""
    pa = _pyarrow()
    source = pa.memory_map(path, "r")
    try:
        return pa.ipc.open_stream(source)
    except pa.ArrowInvalid:
        source.seek(0)
        return pa.ipc.open_file(source)


def _read_arrow(path):
    try:
        return open_ipc(path).read_all()
    except Exception as exc:
        raise _corrupt(path, "an Arrow IPC file", exc) from None


def _list_columns(schema, column, path):
    """Columns that can hold vectors; a named column is always offered so its error is precise."""
    pa = _pyarrow()
    names = [f.name for f in schema if pa.types.is_list(f.type) or pa.types.is_large_list(f.type)
             or pa.types.is_fixed_size_list(f.type)]
    if column is not None and column in schema.names and column not in names:
        names.append(column)
    if column is not None and column not in names:
        raise LoadError(f"{path}: no column {column!r}; columns: {', '.join(schema.names)} "
                        f"(list columns: {', '.join(names) or '(none)'})")
    if not names:
        raise LoadError(f"{path}: no list-of-numbers column to read as embeddings; columns: "
                        f"{', '.join(schema.names) or '(none)'} (a table of examples: embed its "
                        "texts with hminsel select --embed MODEL (or hminsel.embed), or give it "
                        "as --data beside the embeddings)")
    return names


def _table_column(table, column, path, empty_ok=False, nulls="raise", first_row=0, whole=True):
    """A list-of-numbers column of an Arrow table as an (N, d) array. ``empty_ok``: a table of
    no rows (a shard among others) is (0, 0) whatever its columns' types (pandas writes an
    empty frame's columns as float64); a named column must still be there. ``nulls``: a null
    row (no vector) raises (``"raise"``) or reads as a row of NaN (``"nan"``: floats only),
    which ``nonfinite="skip"`` leaves out. ``first_row``: the table's first row in the file, for
    the errors; ``whole=False`` (one batch of the file's rows): every row may be null."""
    pa = _pyarrow()
    if empty_ok and table.num_rows == 0:
        if column is not None and column not in table.column_names:
            raise LoadError(f"{path}: no column {column!r}; columns: "
                            f"{', '.join(table.column_names) or '(none)'}")
        return np.zeros((0, 0), np.float32)
    name = _pick("column", column, _list_columns(table.schema, column, path), path)
    col = table.column(name)
    typ = col.type
    if not (pa.types.is_list(typ) or pa.types.is_large_list(typ)
            or pa.types.is_fixed_size_list(typ)):
        raise LoadError(f"{path}: column {name!r} has type {typ}; expected a list of numbers per "
                        "row (list<float> or fixed_size_list<float>)")
    if not (pa.types.is_floating(typ.value_type) or pa.types.is_integer(typ.value_type)):
        raise LoadError(f"{path}: column {name!r} holds {typ.value_type}; expected numbers")
    arr = col.combine_chunks() if col.num_chunks != 1 else col.chunk(0)
    n = len(arr)
    missing, why = _missing_vectors(arr, pa.types.is_fixed_size_list(typ))
    valid = None  # the rows with a vector, where some have none
    if missing.any():
        valid = ~missing
        _check_nulls(path, name, typ, valid, nulls, first_row, whole, why)
        arr = arr.filter(pa.array(valid))
    rows = first_row + (np.arange(n) if valid is None else np.flatnonzero(valid))  # for the errors
    if pa.types.is_fixed_size_list(typ):
        d = typ.list_size
    else:
        lengths = arr.value_lengths().to_numpy(zero_copy_only=False)
        d = int(lengths[0]) if len(arr) else 0
        if len(arr) and (lengths != d).any():
            bad = int(np.flatnonzero(lengths != d)[0])
            raise LoadError(f"{path}: column {name!r} is ragged: row {rows[0]} has {d} values, row "
                            f"{rows[bad]} has {int(lengths[bad])}; expected the same length in every row")
    out = arr.flatten().to_numpy(zero_copy_only=False).reshape(len(arr), d)
    if valid is None:
        return out
    full = np.full((n, d), np.nan, out.dtype)
    full[valid] = out
    return full


def _missing_vectors(arr, fixed: bool):
    """``(missing, why)``: the rows of a list array that hold no vector (null, an empty list,
    a null value inside), and what the first of them is, for the errors."""
    n = len(arr)
    null = arr.is_null().to_numpy(zero_copy_only=False) if arr.null_count else np.zeros(n, bool)
    empty, holes = np.zeros(n, bool), np.zeros(n, bool)
    if not fixed:
        lengths = arr.value_lengths().fill_null(0).to_numpy(zero_copy_only=False)
        empty = ~null & (lengths == 0)
    values = arr.values  # the whole child array, whatever slice of it arr is
    if values.null_count:  # the rows of the null values inside the vectors
        at = np.flatnonzero(values.is_null().to_numpy(zero_copy_only=False))
        if fixed:
            rows = at // arr.type.list_size - arr.offset
        else:
            rows = np.searchsorted(arr.offsets.to_numpy(zero_copy_only=False), at, "right") - 1
        holes[rows[(rows >= 0) & (rows < n)]] = True
        holes &= ~null
    missing = null | empty | holes
    if not missing.any():
        return missing, ""
    first = int(np.argmax(missing))
    why = ("is null" if null[first] else "is an empty list" if empty[first] else
           "has a null value inside its vector")
    return missing, why


def _check_nulls(path, name, typ, valid: np.ndarray, nulls: str, first_row=0, whole=True,
                 why: str = "is null") -> None:
    """Raise unless the rows without a vector (``~valid``, from row ``first_row``; the first
    ``why``) may read as NaN (``nulls``); ``whole``: these are all the rows, and some must hold
    a vector."""
    bad = first_row + int(np.argmin(valid))
    if nulls != "nan":
        raise LoadError(f"{path}: column {name!r} row {bad} {why}; expected a vector in every "
                        "row (--nonfinite skip, or nulls='nan' then nonfinite='skip' in Python, "
                        "reads such rows as NaN and leaves them out)")
    if not _pyarrow().types.is_floating(typ.value_type):
        raise LoadError(f"{path}: column {name!r} row {bad} {why}, and the column holds "
                        f"{typ.value_type}, which has no NaN to read it as: fill or drop such rows")
    if whole and not valid.any():
        raise LoadError(f"{path}: column {name!r} is null in every row; expected vectors")


def load_hf_dir(path, column, split, empty_ok=False, nulls="raise"):
    """The (N, d) list column ``column`` of a Hugging Face dataset directory (a split of a
    DatasetDict)."""
    return _table_column(_hf_table(path, split), column, path, empty_ok, nulls)


def _hf_table(path, split):
    """The rows of a Hugging Face dataset directory (the split ``split`` of a DatasetDict)."""
    if os.path.exists(os.path.join(path, "dataset_dict.json")):
        try:
            with open(os.path.join(path, "dataset_dict.json")) as fh:
                splits = json.load(fh)["splits"]
        except Exception as exc:
            raise _corrupt(path, "a Hugging Face DatasetDict", exc) from None
        chosen = _pick("split", split, splits, path)
        return _hf_table(os.path.join(path, chosen), None)
    if not os.path.exists(os.path.join(path, "state.json")):
        raise LoadError(f"{path}: is a directory but not a Hugging Face dataset saved with "
                        "save_to_disk (expected state.json or dataset_dict.json in it)")
    if split is not None:
        raise LoadError(f"{path}: is a single dataset, not a DatasetDict; drop the split {split!r}")
    try:
        import datasets
    except ImportError:
        return _hf_table_pyarrow(path)
    try:
        return datasets.load_from_disk(path).with_format("arrow")[:]
    except Exception as exc:
        raise _corrupt(path, "a Hugging Face dataset", exc) from None


def _hf_table_pyarrow(path):
    """The dataset's rows without ``datasets``: its Arrow shards, concatenated."""
    pa = _pyarrow()
    try:
        with open(os.path.join(path, "state.json")) as fh:
            files = [f["filename"] for f in json.load(fh)["_data_files"]]
    except Exception as exc:
        raise _corrupt(path, "a Hugging Face dataset (state.json)", exc) from None
    return pa.concat_tables([_read_arrow(os.path.join(path, f)) for f in files])


def load_arrow(path, column, empty_ok=False, nulls="raise"):
    """The (N, d) list column ``column`` of an Arrow IPC file."""
    return _table_column(_read_arrow(path), column, path, empty_ok, nulls)


def load_label_column(path, column: str, split=None) -> np.ndarray:
    """Column ``column`` of a parquet or Arrow file or a Hugging Face dataset directory, one
    integer or string a row: an (N,) integer (as stored) or str array (the labels of per-label
    quotas).

    Raises LoadError for another kind of input, a missing column (naming those there), a
    column of another type (lists, floats), or a null row.
    """
    path = os.fspath(path)
    kind = "dir" if os.path.isdir(path) else os.path.splitext(path)[1].lower()
    if kind not in ("dir", ".parquet", ".arrow"):
        raise LoadError(f"{path}: a label column is read from a parquet or Arrow file or a Hugging "
                        "Face dataset directory; for other inputs save one label a row to a .npy")
    pa = _pyarrow()
    try:
        if kind == ".parquet":
            import pyarrow.parquet as pq
            names = pq.read_schema(path).names
            table = pq.read_table(path, columns=[column]) if column in names else None
        else:
            table = _read_arrow(path) if kind == ".arrow" else _hf_table(path, split)
            names = table.column_names
    except LoadError:
        raise
    except Exception as exc:  # ArrowInvalid, OSError
        raise _corrupt(path, kind.lstrip(".") if kind != "dir" else "a dataset", exc) from None
    if column not in names:
        raise LoadError(f"{path}: no column {column!r}; columns: {', '.join(names)}")
    col = table.column(column)
    typ = col.type
    def label_type(t):
        return (pa.types.is_integer(t) or pa.types.is_string(t) or pa.types.is_large_string(t)
                or pa.types.is_floating(t))  # floats: whole numbers only (pandas ids after a NaN)
    if not (label_type(typ) or pa.types.is_dictionary(typ) and label_type(typ.value_type)):
        raise LoadError(f"{path}: column {column!r} has type {typ}; expected one integer or string "
                        "label a row")
    if col.null_count:
        bad = int(np.flatnonzero(col.is_null().to_numpy(zero_copy_only=False))[0])
        raise LoadError(f"{path}: column {column!r} row {bad} is null ({col.null_count} rows are); "
                        "expected a label in every row: fill the nulls (with a label of their "
                        "own, say) or save the labels to a .npy")
    if pa.types.is_dictionary(typ):
        col = col.cast(typ.value_type)
    labels = np.asarray(col.to_numpy(zero_copy_only=False))
    if labels.dtype.kind == "f":
        from .._labels import _float_labels
        try:
            return _float_labels(labels)
        except ValueError as exc:
            raise LoadError(f"{path}: column {column!r}: {exc}") from None
    return labels if labels.dtype.kind in "iu" else labels.astype(str)  # integers as stored
