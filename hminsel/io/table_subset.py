"""The picked rows of a table input (parquet, Arrow or a Hugging Face dataset, one or several
shards), every column, in selection order: ``hminsel select emb.parquet --subset-out
picked.parquet`` without a separate ``--data`` file.

Each shard that holds a pick is read once (all its columns), its picked rows
taken, and the rows put in selection order; the output is parquet (``.parquet``)
or JSON records (``.jsonl``, ``.json``), written atomically like every output.
"""
from __future__ import annotations

import json
import os

import numpy as np

from .errors import LoadError
from .writers import _atomic, check_writable

__all__ = ["TABLE_SUFFIXES", "TABLE_SUBSET_SUFFIXES", "is_table", "write_table_subset"]

TABLE_SUFFIXES = (".parquet", ".arrow")
TABLE_SUBSET_SUFFIXES = (".parquet", ".jsonl", ".json")


def is_table(path) -> bool:
    """A parquet or Arrow file, or a Hugging Face dataset folder: rows with columns."""
    return os.path.isdir(path) or os.path.splitext(path)[1].lower() in TABLE_SUFFIXES


def _read(path, split):
    from . import tables
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


def picked_table(paths, offsets, indices, split=None):
    """The rows ``indices`` (global, in that order) of the tables ``paths`` (input f holds
    global rows ``offsets[f]:offsets[f + 1]``), as one Arrow table."""
    import pyarrow as pa
    indices = np.asarray(indices, np.int64).reshape(-1)
    which = np.searchsorted(offsets, indices, side="right") - 1
    parts, order, first = [], [], None
    for f in np.unique(which).tolist():
        at = np.flatnonzero(which == f)
        table = _read(paths[f], split)
        if table.num_rows != offsets[f + 1] - offsets[f]:
            raise LoadError(f"{paths[f]}: holds {table.num_rows} rows, but its embeddings "
                            f"{offsets[f + 1] - offsets[f]}")
        if parts and not table.schema.equals(parts[0].schema):
            raise LoadError(f"{paths[f]}: its columns ({table.schema.to_string(show_schema_metadata=False)}) "
                            f"differ from {first}'s; the picked rows of shards with different "
                            "columns cannot go in one table")
        first = first or paths[f]
        parts.append(table.take(pa.array(indices[at] - offsets[f])))
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
    table = picked_table(paths, np.asarray(offsets, np.int64), indices, split)
    if ext == ".parquet":
        import pyarrow.parquet as pq
        with _atomic(out_path, force, "wb") as fh:
            pq.write_table(table, fh)
        return table.num_rows
    with _atomic(out_path, force, "w") as fh:
        lines = (json.dumps(row, ensure_ascii=False, default=str)
                 for batch in table.to_batches(max_chunksize=4096) for row in batch.to_pylist())
        if ext == ".jsonl":
            fh.writelines(line + "\n" for line in lines)
        else:
            fh.write("[\n" + ",\n".join(lines) + "\n]\n")
    return table.num_rows
