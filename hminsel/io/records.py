"""The examples behind the embeddings (``--data``): one record an embedding row, in one file or
several (shards: ``data-00000.jsonl``, ``data-00001.jsonl``, ... or a folder of them), their
records one after another in the order given, as ``shards`` reads embeddings.

A record file is JSON (``.jsonl``: one object a line; ``.json``: a top-level list) or a table
(parquet, Arrow, a Hugging Face dataset folder); all the files of one ``--data`` are of one of
the two. Their count is known before any selection runs: JSON files are parsed then (a malformed
record fails first, not when a pick lands on it), a table's rows come from its metadata. The
picked records are written in selection order: JSON records by ``writers.write_subset`` (JSONL
lines byte for byte), a table's rows with every column by ``table_subset``.
"""
from __future__ import annotations

import os

import numpy as np

from .errors import LoadError
from .shards import expand_inputs
from .table_subset import (TABLE_SUBSET_SUFFIXES, TABLE_SUFFIXES, check_table_schemas, is_table,
                           table_rows, write_table_subset)
from .tables import load_label_column
from .texts import read_labels
from .writers import SUBSET_SUFFIXES, count_records, write_subset

__all__ = ["RECORD_SUFFIXES", "Records", "open_records", "joined_labels"]

RECORD_SUFFIXES = SUBSET_SUFFIXES + TABLE_SUFFIXES


class Records:
    """The records of one or several data files, one a row of the embeddings.

    Attributes:
        paths: the data files, in record order (a folder stands for its files).
        offsets: (len(paths) + 1,) int64; file ``f`` holds records
            ``offsets[f]:offsets[f + 1]``.
        tables: True for parquet / Arrow / Hugging Face dataset files, False for JSON.
    """

    def __init__(self, paths):
        self.paths = expand_inputs(paths, RECORD_SUFFIXES, "data files")
        kinds = ["table" if is_table(p) else "json" if os.path.splitext(p)[1].lower() in
                 SUBSET_SUFFIXES else None for p in self.paths]
        for path, kind in zip(self.paths, kinds):
            if kind is None:
                raise LoadError(f"data file {path}: expected .jsonl or .json records, or a "
                                f"{', '.join(TABLE_SUFFIXES)} table or a Hugging Face dataset "
                                f"folder; got extension {os.path.splitext(path)[1] or '(none)'!r}")
            if kind != kinds[0]:
                raise LoadError(f"data file {path} is {'a table' if kind == 'table' else 'JSON'}, "
                                f"but {self.paths[0]} is {'a table' if kinds[0] == 'table' else 'JSON'}; "
                                "the data files of one selection are of one kind")
        self.tables = kinds[0] == "table"
        if self.tables:
            check_table_schemas(self.paths)  # before the work: their rows go in one table
        counts = [table_rows(p) if self.tables else count_records(p) for p in self.paths]
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def subset_suffixes(self) -> tuple:
        """What the picked records may be written as."""
        return TABLE_SUBSET_SUFFIXES if self.tables else SUBSET_SUFFIXES

    def write(self, indices, out_path, *, force=False) -> int:
        """Write the records ``indices`` (global, in selection order) to ``out_path``."""
        if self.tables:
            return write_table_subset(self.paths, self.offsets, indices, out_path, force=force)
        return write_subset(self.paths, indices, out_path, n_rows=len(self), force=force)

    def labels(self, field: str) -> np.ndarray:
        """Field (or column) ``field`` of every record: int64 or str labels, one a record."""
        read = load_label_column if self.tables else read_labels
        return joined_labels([read(p, field) for p in self.paths], self.paths, field)


def open_records(paths) -> Records:
    """The records of ``paths`` (one data file, several, or a folder of them), counted.

    Example:
        >>> data = open_records(["train-0.jsonl", "train-1.jsonl"])
        >>> data.write(picked, "picked.jsonl")     # the picked records, in selection order
    """
    return Records(paths)


def joined_labels(parts, paths, field: str) -> np.ndarray:
    """The labels of several files (``parts``, one array a file of ``paths``) as one vector:
    integer labels of any width become int64; integers in one file and text in another are
    refused."""
    kinds = {True: "integer", False: "string"}
    for path, part in zip(paths, parts):
        if (part.dtype.kind in "iu") != (parts[0].dtype.kind in "iu"):
            raise LoadError(f"{path}: {field!r} holds {kinds[part.dtype.kind in 'iu']} labels, but "
                        f"{paths[0]} holds {kinds[parts[0].dtype.kind in 'iu']} ones; expected "
                        "one kind of label in every file")
        if part.dtype.kind == "u" and part.size and part.max() > np.iinfo(np.int64).max:
            raise LoadError(f"{path}: {field!r} holds labels above 2**63 - 1; expected int64 labels")
    if len(parts) == 1:
        return parts[0]
    if parts[0].dtype.kind in "iu":  # int32 in one shard, uint64 in another: one int64 vector
        parts = [part.astype(np.int64) for part in parts]
    return np.concatenate(parts)
