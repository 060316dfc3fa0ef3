"""Instruction data (Alpaca-style JSON or JSONL, or a parquet / Arrow / Hugging Face table) as
one text per record, for embedding.

Record ``i`` of the data (its files one after another) becomes text ``i`` (and
so embedding row ``i``): the same numbering ``records.Records`` writes by, so
the picked rows map back to the records (a JSONL line as it is; a table's row
with every column).

Template: the values of the chosen fields, in the order given, each stripped
of surrounding whitespace, empty or missing ones skipped, joined by a blank
line (``TEXT_SEP``). With ``instruction,input,output`` a record becomes
``"<instruction>\\n\\n<input>\\n\\n<output>"`` (just
``"<instruction>\\n\\n<output>"`` when ``input`` is empty). Strings are taken
as they are; numbers, lists and objects as their JSON text (a table's bytes as
base64, times in ISO 8601); ``null`` counts as empty.
"""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np

from .table_subset import _json_value, is_table, read_columns, table_columns

__all__ = ["DEFAULT_FIELDS", "TEXT_SEP", "template_name", "read_labels", "read_texts",
           "read_texts_and_missing", "data_sha256", "file_sha256"]

DEFAULT_FIELDS = ("instruction", "input", "output")
TEXT_SEP = "\n\n"


def template_name(fields) -> str:
    """The template as one line, for the manifest and the embedding cache key."""
    return f"non-empty fields {','.join(fields)} stripped and joined by {TEXT_SEP!r}"


def _value(v) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v.strip()
    if isinstance(v, (bool, int, float, list, dict)):
        return json.dumps(v, ensure_ascii=False, default=_json_value)
    return str(_json_value(v)).strip()  # a table's bytes, time or decimal: as its JSON record


def _records(path):
    """(where, record) of each record: the non-blank lines of a .jsonl, the items of a .json list."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".jsonl", ".json"):
        raise ValueError(f"data file {path}: expected a .jsonl (one JSON object per line) or .json "
                         f"(a top-level list) file, or a .parquet or .arrow table; got extension "
                         f"{ext or '(none)'!r}")
    # utf-8-sig: a leading BOM (Windows editors write one) goes; a lone \r is JSON space
    with open(path, "r", encoding="utf-8-sig", newline="\n") as fh:
        if ext == ".json":
            try:
                data = json.load(fh)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: not valid JSON ({exc})") from None
            if not isinstance(data, list):
                raise ValueError(f"{path}: expected a top-level JSON list of records; got "
                                 f"{type(data).__name__}")
            yield from ((f"item {n}", rec) for n, rec in enumerate(data))
            return
        for lineno, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                yield f"line {lineno}", json.loads(line)
            except json.JSONDecodeError as exc:
                raise ValueError(f"{path}: line {lineno} is not valid JSON ({exc})") from None


def read_labels(path, field: str):
    """Field ``field`` of every record of ``path`` (as ``read_texts`` reads them): one integer
    or string label a record, as an (N,) int64 or str array.

    Raises FileNotFoundError, or ValueError naming the first record without the field or with
    a value of another type (floats, bools, lists, null), or labels of both kinds.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such data file: {path}")
    labels = []
    for where, rec in _records(path):
        value = rec.get(field) if isinstance(rec, dict) else None
        if isinstance(value, bool) or not isinstance(value, (int, str)):
            got = "no such field" if not isinstance(rec, dict) or field not in rec else \
                "null" if value is None else f"{type(value).__name__} {json.dumps(value)[:40]}"
            fill = ("; fill the missing labels (with a label of their own, say) or save the "
                    "labels to a .npy") if value is None else ""
            raise ValueError(f"{path}: {where}: expected an integer or string label in field "
                             f"{field!r}; got {got}{fill}")
        if isinstance(value, int) and not -2 ** 63 <= value < 2 ** 63:
            raise ValueError(f"{path}: {where}: label {value} in field {field!r} does not fit in "
                             "int64")
        labels.append(value)
    kinds = {type(v) for v in labels}
    if len(kinds) > 1:
        raise ValueError(f"{path}: field {field!r} holds both integers and strings; expected one "
                         "kind of label")
    return np.array(labels, dtype=np.int64 if int in kinds else str)


def read_texts(paths, fields=DEFAULT_FIELDS) -> list:
    """One text per record of ``paths``, built with the template above.

    Args:
        paths: a data file or a list of them, their records one after another:
            ``.jsonl`` (one JSON object per non-blank line), ``.json`` (a top-level
            list of objects), or tables (``.parquet``, ``.arrow``, a Hugging Face
            dataset folder: a row is a record, its columns the fields; only the
            ``fields`` columns are read).
        fields: the record keys to join, in order.

    Returns:
        A list of strings, one per record.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON/JSONL, a record that is not an object, no record
            (of a file) has any of ``fields``, or the files hold no records.
    """
    return read_texts_and_missing(paths, fields)[0]


def read_texts_and_missing(paths, fields=DEFAULT_FIELDS) -> tuple[list, list]:
    """``(texts, missing)``: ``read_texts(paths, fields)`` and the ``fields`` that no record of
    any file holds (in the order given; a misspelt name that the others hide), for a warning.
    Raises as ``read_texts``."""
    from .records import RECORD_SUFFIXES
    from .shards import expand_inputs
    paths = ([os.fspath(paths)] if isinstance(paths, (str, os.PathLike)) else
             [os.fspath(p) for p in paths])
    fields = tuple(fields)
    if not fields or not all(isinstance(f, str) and f for f in fields):
        raise ValueError(f"text fields must be non-empty names; got {list(fields)}")
    for path in paths:
        if not os.path.exists(path):
            raise FileNotFoundError(f"no such data file: {path}")
    paths = expand_inputs(paths, RECORD_SUFFIXES, "data files")  # a folder: its files
    where = paths[0] if len(paths) == 1 else f"the {len(paths)} data files"
    texts, found = [], set()
    for path in paths:
        seen, keys, before = set(), set(), len(texts)
        records = _table_records(path, fields, keys) if is_table(path) else _records(path)
        for at, rec in records:
            if not isinstance(rec, dict):
                raise ValueError(f"{path}: {at} is a JSON {type(rec).__name__}; expected an "
                                 f"object with the fields {', '.join(fields)}")
            if len(keys) < 50:
                keys.update(rec)
            seen.update(f for f in fields if f in rec)
            texts.append(TEXT_SEP.join(v for v in (_value(rec.get(f)) for f in fields) if v))
        if len(texts) > before and not seen:  # a shard of other records: its texts all empty
            raise ValueError(f"{path}: no record has any of the text fields {', '.join(fields)}; "
                             f"keys found: {', '.join(sorted(map(str, keys))) or '(none)'} "
                             "(choose with --text-fields)")
        found |= seen
    if not texts:
        raise ValueError(f"{where}: no records; expected one record (a JSON object or a table "
                         "row) per example")
    return texts, [f for f in fields if f not in found]


def _table_records(path, fields, keys):
    """(where, record) of each row of a table, holding only its ``fields`` columns (all column
    names go into ``keys``, for the message when none is a field)."""
    names = table_columns(path)
    keys.update(names)
    table = read_columns(path, [f for f in fields if f in names])
    n = 0
    for batch in table.to_batches(max_chunksize=4096):
        for rec in batch.to_pylist():
            yield f"row {n}", rec
            n += 1


def data_sha256(paths) -> str:
    """Hex SHA-256 of the data: of one file's bytes (``file_sha256``), else of the digests of
    every file in order (a folder's files in name order, with their names in the folder)."""
    paths = ([os.fspath(paths)] if isinstance(paths, (str, os.PathLike)) else
             [os.fspath(p) for p in paths])
    if len(paths) == 1 and os.path.isfile(paths[0]):
        return file_sha256(paths[0])
    h = hashlib.sha256()
    for path in paths:
        if not os.path.isdir(path):
            h.update(f"{file_sha256(path)}\n".encode())
            continue
        for name in _dataset_files(path):  # a Hugging Face dataset: its data, not its caches
            h.update(f"{name}\0{file_sha256(os.path.join(path, name))}\n".encode())
    return h.hexdigest()


def _dataset_files(path) -> list:
    """The data files of a Hugging Face dataset folder (a DatasetDict's: of each split), as
    named in its state.json; not the cache-*.arrow files a datasets map() leaves beside them."""
    meta = os.path.join(path, "dataset_dict.json")
    if os.path.isfile(meta):
        with open(meta) as fh:
            splits = json.load(fh).get("splits", [])
        return [os.path.join(s, name) for s in splits
                for name in _dataset_files(os.path.join(path, s))]
    try:
        with open(os.path.join(path, "state.json")) as fh:
            names = [f["filename"] for f in json.load(fh)["_data_files"]]
    except (OSError, ValueError, KeyError, TypeError):
        names = sorted(n for n in os.listdir(path) if n.endswith(".arrow")
                       and not n.startswith("cache-"))
    return names


def file_sha256(path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                return h.hexdigest()
            h.update(block)
