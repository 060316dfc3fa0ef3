"""Rows, width and dtype of an embeddings file from its header or metadata, not its rows.

What ``shards.Inputs`` checks before it reads any shard: ``head(path, ...)``
returns ``(rows, d, dtype)`` (``d`` None where only the rows can say), or None
where the file does not say it cheaply or says something odd: the caller then
reads the file, and the loader's own error names what is wrong.

- ``.npy``: a read-only memory map (the caller keeps it: no rows are read).
- ``.npz``: the member's ``.npy`` header, through the zip directory.
- ``.safetensors``: the JSON header (bf16 reads as float32).
- ``.parquet``: the file's metadata; a list column's width is its values over
  its rows (a fixed-size list says it).
- ``.arrow`` and Hugging Face dataset folders: the memory-mapped table's schema
  and first row.
"""
from __future__ import annotations

import json
import os
import struct
import zipfile

import numpy as np

from . import tables
from .errors import LoadError, _pick
from .loaders import _check_matrix, _check_options, _load_npy, _magic

LIST_LEAVES = ("list.element", "list.item", "element", "item", "array", "bag.array_element")
SAFETENSORS = {"F16": "float16", "BF16": "float32", "F32": "float32", "F64": "float64",
               "I8": "int8", "I16": "int16", "I32": "int32", "I64": "int64", "U8": "uint8",
               "U16": "uint16", "U32": "uint32", "U64": "uint64"}


def head(path, *, key=None, column=None, split=None, empty_ok=False):
    """``(rows, d or None, dtype, array or None)`` of an input, or None: read the file.
    ``empty_ok``: a file of no rows is taken (a shard among others)."""
    kind = "dir" if os.path.isdir(path) else os.path.splitext(path)[1].lower()
    _check_options(path, kind, key=key, column=column, split=split)
    if kind == ".npy":
        x = _check_matrix(_load_npy(path, True), path, empty_ok)
        return x.shape[0], x.shape[1], x.dtype, x
    readers = {".npz": lambda: _npz(path, key), ".safetensors": lambda: _safetensors(path, key),
               ".parquet": lambda: _parquet(path, column),
               ".arrow": lambda: _arrow(path, column),
               "dir": lambda: _table(tables._hf_table(path, split), column, path)}
    if kind not in readers:
        return None
    try:
        got = readers[kind]()
    except LoadError:
        if empty_ok:  # an empty shard may hold no vector column: reading it tells
            return None
        raise
    if got is None or got[2].kind not in "fiu" or got[0] == 0:
        return None
    return (*got, None)


def _npz(path, key):
    _magic(path, (b"PK\x03\x04", b"PK\x05\x06"), ".npz")
    try:
        with zipfile.ZipFile(path) as zf:
            names = [n[:-4] for n in zf.namelist() if n.endswith(".npy")]
            name = _pick("key", key, names, path)
            with zf.open(name + ".npy") as fh:
                version = np.lib.format.read_magic(fh)
                read = {(1, 0): np.lib.format.read_array_header_1_0,
                        (2, 0): np.lib.format.read_array_header_2_0}.get(version)
                if read is None:
                    return None
                shape, _, dtype = read(fh)
    except LoadError:
        raise
    except Exception:  # a damaged file: reading it names the problem
        return None
    return (shape[0], shape[1], dtype) if len(shape) == 2 and not dtype.hasobject else None


def _safetensors(path, key):
    try:
        with open(path, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
        name = _pick("key", key, [k for k in header if k != "__metadata__"], path)
        shape, dtype = header[name]["shape"], SAFETENSORS.get(header[name]["dtype"])
    except LoadError:
        raise
    except Exception:
        return None
    return (shape[0], shape[1], np.dtype(dtype)) if len(shape) == 2 and dtype else None


def _values(typ):
    """The NumPy dtype of a list type's values, or None for a type that holds no vectors."""
    if not hasattr(typ, "value_type"):
        return None
    try:
        return np.dtype(typ.value_type.to_pandas_dtype())
    except (NotImplementedError, TypeError):
        return None


def _parquet(path, column):
    tables._pyarrow()
    import pyarrow.parquet as pq
    try:
        pf = pq.ParquetFile(path)
        schema, meta = pf.schema_arrow, pf.metadata
        name = _pick("column", column, tables._list_columns(schema, column, path), path)
        typ = schema.field(name).type
        dtype, rows = _values(typ), meta.num_rows
        if dtype is None:
            return None
        d = getattr(typ, "list_size", None)
        paths = {f"{name}.{leaf}" for leaf in LIST_LEAVES}  # name.list.element, or older spellings
        leaves = [i for i in range(meta.num_columns) if meta.schema.column(i).path in paths]
        if d is None and rows and len(leaves) == 1:  # every value counts once (a null too)
            chunks = [meta.row_group(g).column(leaves[0]) for g in range(meta.num_row_groups)]
            values = sum(c.num_values for c in chunks)
            if all(_no_nulls(c.statistics) for c in chunks):  # no null or empty row: n * d values
                d = values // rows if values % rows == 0 else None
        return rows, d, dtype
    except LoadError:
        raise
    except Exception:
        return None


def _no_nulls(stats) -> bool:
    """Whether a parquet column chunk's statistics say it holds no null (a null or empty list
    row counts as one: the values then do not count rows times the width)."""
    return stats is not None and stats.has_null_count and stats.null_count == 0


def _arrow(path, column):
    """An Arrow IPC file through its footer (batches' row counts; a compressed file is not
    decompressed, but for a first batch where the width is not in the schema); a stream
    (what ``datasets`` writes) as a memory-mapped table."""
    pa = tables._pyarrow()
    try:
        reader = tables.open_ipc(path)
        if not isinstance(reader, pa.ipc.RecordBatchFileReader):  # a stream: no footer
            return _table(reader.read_all(), column, path)
        name = _pick("column", column, tables._list_columns(reader.schema, column, path), path)
        typ = reader.schema.field(name).type
        dtype, d = _values(typ), getattr(typ, "list_size", None)
        if dtype is None:
            return None
        for i in range(reader.num_record_batches if d is None else 0):
            lengths = reader.get_batch(i).column(name).value_lengths()
            if len(lengths):
                d = lengths[0].as_py()
                break
        rows = (reader.count_rows() if hasattr(reader, "count_rows") else  # pyarrow < 13
                sum(reader.get_batch(i).num_rows for i in range(reader.num_record_batches)))
        return rows, d, dtype
    except LoadError:
        raise
    except Exception:
        return None


def _table(table, column, path):
    """A memory-mapped Arrow table's list column: its rows, first row's width and dtype."""
    name = _pick("column", column, tables._list_columns(table.schema, column, path), path)
    col = table.column(name)
    dtype = _values(col.type)
    if dtype is None:
        return None
    d = getattr(col.type, "list_size", None)
    chunks = [c for c in col.chunks if len(c)]
    if d is None and chunks:
        d = chunks[0].value_lengths()[0].as_py()  # None for a null first row
    return table.num_rows, d, dtype
