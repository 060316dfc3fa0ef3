"""The picked rows of a table input (parquet, Arrow or a Hugging Face dataset, one or several
shards), every column, in selection order: ``hminsel select emb.parquet --subset-out
picked.parquet`` without a separate ``--data`` file.

Each shard that holds a pick is read once (all its columns), its picked rows
taken, and the rows put in selection order; the output is parquet (``.parquet``)
or JSON records (``.jsonl``, ``.json``), written atomically like every output.
"""
from __future__ import annotations

import base64
import datetime
import json
import math
import os

import numpy as np

from . import tables
from .errors import LoadError
from .writers import _atomic, check_writable

__all__ = ["TABLE_SUFFIXES", "TABLE_SUBSET_SUFFIXES", "is_table", "table_rows", "table_columns",
           "check_table_schemas", "write_table_subset"]

TABLE_SUFFIXES = (".parquet", ".arrow")
TABLE_SUBSET_SUFFIXES = (".parquet", ".jsonl", ".json")


def is_table(path) -> bool:
    """A parquet or Arrow file, or a Hugging Face dataset folder: rows with columns."""
    return os.path.isdir(path) or os.path.splitext(path)[1].lower() in TABLE_SUFFIXES


def _read(path, split):
    tables._pyarrow()
    if os.path.isdir(path):
        return tables._hf_table(path, split)
    if os.path.splitext(path)[1].lower() == ".arrow":
        return tables._read_arrow(path)
    import pyarrow.parquet as pq
    try:
        return pq.read_table(path)
    except Exception as exc:
        raise LoadError(f"{path}: cannot read as .parquet ({type(exc).__name__}: {exc})") from None


def table_rows(path, split=None) -> int:
    """The rows of a table: parquet metadata, an Arrow file's footer, or the memory-mapped
    table of an Arrow stream or a Hugging Face dataset; no column is decoded."""
    pa = tables._pyarrow()
    if os.path.isdir(path):
        return tables._hf_table(path, split).num_rows
    try:
        if os.path.splitext(path)[1].lower() == ".arrow":
            reader = tables.open_ipc(path)
            if isinstance(reader, pa.ipc.RecordBatchFileReader) and hasattr(reader, "count_rows"):
                return reader.count_rows()
            return reader.read_all().num_rows  # memory-mapped: nothing decoded
        import pyarrow.parquet as pq
        return pq.ParquetFile(path).metadata.num_rows
    except Exception as exc:
        raise LoadError(f"{path}: cannot read as a table ({type(exc).__name__}: {exc})") from None


def _schema(path, split):
    """A table input's schema, without reading its rows."""
    tables._pyarrow()
    if os.path.isdir(path):
        return tables._hf_table(path, split).schema
    try:
        if os.path.splitext(path)[1].lower() == ".arrow":
            return tables.open_ipc(path).schema
        import pyarrow.parquet as pq
        return pq.read_schema(path)
    except Exception as exc:
        raise LoadError(f"{path}: cannot read its columns ({type(exc).__name__}: {exc})") from None


def read_columns(path, names, split=None):
    """The columns ``names`` of a table, as an Arrow table (parquet: only those are read)."""
    if os.path.isdir(path) or os.path.splitext(path)[1].lower() == ".arrow":
        return _read(path, split).select(names)
    import pyarrow.parquet as pq
    try:
        return pq.read_table(path, columns=names)
    except Exception as exc:
        raise LoadError(f"{path}: cannot read as .parquet ({type(exc).__name__}: {exc})") from None


def table_columns(path, split=None) -> list:
    """The column names of a table, from its schema (no rows read)."""
    return [field.name for field in _schema(path, split)]


def check_table_schemas(paths, split=None):
    """Refuse table inputs whose columns differ (names, order or types; nullability aside): their
    picked rows could not go in one table. Reads only the schemas."""
    first = [(f.name, f.type) for f in _schema(paths[0], split)]
    for path in paths[1:]:
        these = [(f.name, f.type) for f in _schema(path, split)]
        if these == first:
            continue
        mine, theirs = dict(these), dict(first)
        for name in [n for n, _ in first] + [n for n, _ in these]:
            if name not in mine or name not in theirs or mine[name] != theirs[name]:
                what = (f"has no column {name!r}" if name not in mine else
                        f"has a column {name!r} that {paths[0]} lacks" if name not in theirs else
                        f"holds column {name!r} as {mine[name]}, {paths[0]} as {theirs[name]}")
                break
        else:
            what = f"orders its columns {[n for n, _ in these]}, {paths[0]} {[n for n, _ in first]}"
        raise LoadError(f"{path}: {what}; the picked rows of several tables go in one table, so "
                        "every one needs the same columns")


def _picked_table(paths, offsets, indices, split=None):
    """The rows ``indices`` (global, in that order) of the tables ``paths`` (input f holds
    global rows ``offsets[f]:offsets[f + 1]``), as one Arrow table."""
    import pyarrow as pa
    indices = np.asarray(indices, np.int64).reshape(-1)
    which = np.searchsorted(offsets, indices, side="right") - 1
    parts, order, first = [], [], None  # first: the schema every part is cast to
    for f in np.unique(which).tolist():
        at = np.flatnonzero(which == f)
        table = _read(paths[f], split)
        if table.num_rows != offsets[f + 1] - offsets[f]:
            raise LoadError(f"{paths[f]}: holds {table.num_rows} rows, but its embeddings "
                            f"{offsets[f + 1] - offsets[f]}")
        first = table.schema if first is None else first
        target = pa.schema([field.with_nullable(True) for field in first], metadata=first.metadata)
        parts.append(table.take(pa.array(indices[at] - offsets[f])).cast(target))
        order.append(at)
    if not parts:
        return _read(paths[0], split).slice(0, 0)
    table = pa.concat_tables(parts)
    return table.take(pa.array(np.argsort(np.concatenate(order), kind="stable")))


def write_table_subset(paths, offsets, indices, out_path, *, split=None, force=False) -> int:
    """Write the rows ``indices`` of the table inputs ``paths`` to ``out_path`` (.parquet,
    .jsonl or .json), in that order; returns the rows written."""
    out_path = os.fspath(out_path)
    ext = os.path.splitext(out_path)[1].lower()
    if ext not in TABLE_SUBSET_SUFFIXES:
        raise ValueError(f"the picked rows of a table go to {', '.join(TABLE_SUBSET_SUFFIXES)}; "
                         f"got {out_path}")
    check_writable(out_path, force=force)
    check_table_schemas(paths, split)
    table = _picked_table(paths, np.asarray(offsets, np.int64), indices, split)
    if ext == ".parquet":
        import pyarrow.parquet as pq
        with _atomic(out_path, force, "wb") as fh:
            try:
                pq.write_table(table, fh)
            except OSError:  # the disk's (full, a file size limit): named by _atomic
                raise
            except Exception as exc:  # ArrowNotImplementedError: a type parquet cannot store
                raise LoadError(f"{out_path}: cannot write the picked rows as parquet "
                                f"({type(exc).__name__}: {exc}); write .jsonl or .json") from None
        return table.num_rows
    with _atomic(out_path, force, "w") as fh:
        lines = (json.dumps(_plain(row), ensure_ascii=False, allow_nan=False, default=_json_value)
                 for batch in table.to_batches(max_chunksize=4096) for row in batch.to_pylist())
        if ext == ".jsonl":
            fh.writelines(line + "\n" for line in lines)
        else:
            fh.write("[\n" + ",\n".join(lines) + "\n]\n")
    return table.num_rows


def _plain(value):
    """NaN and infinities as None (JSON has no such numbers), in nested rows too."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _json_value(value):
    """JSON for what Arrow's values turn into: bytes as base64 text (an image's bytes, say),
    dates and times in ISO 8601, durations in seconds, anything else (decimals) as text."""
    if isinstance(value, (bytes, bytearray)):
        return base64.b64encode(bytes(value)).decode("ascii")
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    return str(value)
