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

import json
import os

import numpy as np

from .errors import LoadError
from .shards import expand_inputs, order_warning
from .table_subset import (TABLE_SUFFIXES, check_table_schemas, is_table, table_rows,
                           write_table_subset)
from .tables import load_label_column
from .texts import read_labels
from .writers import SUBSET_SUFFIXES, count_records, write_subset

__all__ = ["RECORD_SUFFIXES", "Records", "open_records", "are_tables", "labels_of", "joined_labels"]

RECORD_SUFFIXES = SUBSET_SUFFIXES + TABLE_SUFFIXES


class Records:
    """The records of one or several data files, one a row of the embeddings.

    Attributes:
        paths: the data files, in record order (a folder stands for its files).
        offsets: (len(paths) + 1,) int64; file ``f`` holds records
            ``offsets[f]:offsets[f + 1]``.
        tables: True for parquet / Arrow / Hugging Face dataset files, False for JSON.
        warning: None, or what to tell the user of the files' order (numbered files given
            out of number order, as a shell's glob puts ``d-10`` before ``d-2``).
    """

    def __init__(self, paths, parse: bool = True):
        given = [os.fspath(paths)] if isinstance(paths, (str, os.PathLike)) else list(paths)
        for path in given:
            if not os.path.exists(path):
                raise FileNotFoundError(f"no such data file or folder: {path}")
        self.paths = expand_inputs(given, RECORD_SUFFIXES, "data files")
        self.warning = order_warning(given)
        self.tables = are_tables(self.paths)
        if self.tables:
            for path in self.paths:
                _one_split(path)
            check_table_schemas(self.paths)  # before the work: their rows go in one table
        counts = [table_rows(p) if self.tables else count_records(p, parse) for p in self.paths]
        self.offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def counts(self) -> str:
        """The files' record counts, for a message: ``a.jsonl 20, b.jsonl 19``."""
        sizes = np.diff(self.offsets)
        said = [f"{os.path.basename(p)} {n}" for p, n in zip(self.paths[:4], sizes)]
        return ", ".join(said) + (", ..." if len(self.paths) > 4 else "")

    def write(self, indices, out_path, *, force=False) -> int:
        """Write the records ``indices`` (global, in selection order) to ``out_path``."""
        if self.tables:
            return write_table_subset(self.paths, self.offsets, indices, out_path, force=force)
        return write_subset(self.paths, indices, out_path, n_rows=len(self), force=force)

    def labels(self, field: str) -> np.ndarray:
        """Field (or column) ``field`` of every record: int64 or str labels, one a record."""
        return labels_of(self.paths, field)


def are_tables(paths) -> bool:
    """True when every file of ``paths`` is a table, False when every one is JSON records."""
    kinds = ["table" if is_table(p) else "JSON" if os.path.splitext(p)[1].lower() in
             SUBSET_SUFFIXES else None for p in paths]
    for path, kind in zip(paths, kinds):
        if kind is None:
            raise LoadError(f"data file {path}: expected .jsonl or .json records, or a "
                            f"{', '.join(TABLE_SUFFIXES)} table or a Hugging Face dataset "
                            f"folder; got extension {os.path.splitext(path)[1] or '(none)'!r}")
        if kind != kinds[0]:
            raise LoadError(f"data file {path} is {'a table' if kind == 'table' else 'JSON'}, "
                            f"but {paths[0]} is {'a table' if kinds[0] == 'table' else 'JSON'}; "
                            "the data files of one selection are of one kind")
    return kinds[0] == "table"


def _one_split(path) -> None:
    """A DatasetDict of several splits is no data file: one split's folder is."""
    meta = os.path.join(path, "dataset_dict.json")
    if not os.path.isfile(meta):
        return
    try:
        with open(meta) as fh:
            splits = list(json.load(fh)["splits"])
    except Exception:  # noqa: BLE001 - the table reader names a broken one
        return
    if len(splits) > 1:
        raise LoadError(f"{path}: is a Hugging Face DatasetDict of {len(splits)} splits "
                        f"({', '.join(splits)}); pass one split's folder, such as "
                        f"{os.path.join(path, splits[0])}")


def open_records(paths, parse: bool = True) -> Records:
    """The records of ``paths`` (one data file, several, or a folder of them), counted (JSON
    lines parsed, unless ``parse=False``: for a caller that parses them next).

    Example:
        >>> data = open_records(["train-0.jsonl", "train-1.jsonl"])
        >>> data.write(picked, "picked.jsonl")     # the picked records, in selection order
    """
    return Records(paths, parse)


def labels_of(paths, field: str, split=None) -> np.ndarray:
    """Field ``field`` of every JSON record of ``paths``, or column ``field`` of every table
    (``split``: of a DatasetDict), one file after another: int64 or str labels."""
    if all(os.path.splitext(p)[1].lower() in SUBSET_SUFFIXES for p in paths):
        parts = [read_labels(p, field) for p in paths]
    else:
        parts = [load_label_column(p, field, split) for p in paths]
    return joined_labels(parts, paths, field)


def joined_labels(parts, paths, field: str) -> np.ndarray:
    """The labels of several files (``parts``, one array a file of ``paths``) as one vector:
    integer labels of any width become int64; integers in one file and text in another are
    refused (a file without records has no kind)."""
    kinds = {True: "integer", False: "string"}
    held = [(path, part) for path, part in zip(paths, parts) if part.size]
    for path, part in held:
        if (part.dtype.kind in "iu") != (held[0][1].dtype.kind in "iu"):
            raise LoadError(f"{path}: {field!r} holds {kinds[part.dtype.kind in 'iu']} labels, "
                            f"but {held[0][0]} holds {kinds[held[0][1].dtype.kind in 'iu']} "
                            "ones; expected one kind of label in every file")
        if part.dtype.kind == "u" and part.max() > np.iinfo(np.int64).max:
            raise LoadError(f"{path}: {field!r} holds labels above 2**63 - 1; expected int64 "
                            "labels")
    if len(parts) == 1:
        return parts[0]
    if not held:
        return np.concatenate(parts)
    if held[0][1].dtype.kind in "iu":  # int32 in one shard, uint64 in another: one int64 vector
        return np.concatenate([part.astype(np.int64) for part in parts])
    return np.concatenate([part.astype(str) for part in parts])
