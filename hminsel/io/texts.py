"""Instruction data (Alpaca-style JSON or JSONL) as one text per record, for embedding.

Record ``i`` of the data file becomes text ``i`` (and so embedding row ``i``):
the same numbering ``write_subset`` uses, so the picked rows map back to the
records byte for byte.

Template: the values of the chosen fields, in the order given, each stripped
of surrounding whitespace, empty or missing ones skipped, joined by a blank
line (``TEXT_SEP``). With ``instruction,input,output`` a record becomes
``"<instruction>\\n\\n<input>\\n\\n<output>"`` (just
``"<instruction>\\n\\n<output>"`` when ``input`` is empty). Strings are taken
as they are; numbers, lists and objects as their JSON text; ``null`` counts as
empty.
"""
from __future__ import annotations

import hashlib
import json
import os

import numpy as np

__all__ = ["DEFAULT_FIELDS", "TEXT_SEP", "template_name", "read_labels", "read_texts",
           "file_sha256"]

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
    return json.dumps(v, ensure_ascii=False)


def _records(path):
    """(where, record) of each record: the non-blank lines of a .jsonl, the items of a .json list."""
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".jsonl", ".json"):
        raise ValueError(f"data file {path}: expected a .jsonl (one JSON object per line) or .json "
                         f"(a top-level list) file; got extension {ext or '(none)'!r}")
    with open(path, "r", encoding="utf-8", newline="\n") as fh:  # a lone \r is JSON space
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
                f"{type(value).__name__} {json.dumps(value)[:40]}"
            raise ValueError(f"{path}: {where}: expected an integer or string label in field "
                             f"{field!r}; got {got}")
        if isinstance(value, int) and not -2 ** 63 <= value < 2 ** 63:
            raise ValueError(f"{path}: {where}: label {value} in field {field!r} does not fit in "
                             "int64")
        labels.append(value)
    kinds = {type(v) for v in labels}
    if len(kinds) > 1:
        raise ValueError(f"{path}: field {field!r} holds both integers and strings; expected one "
                         "kind of label")
    return np.array(labels, dtype=np.int64 if int in kinds else str)


def read_texts(path, fields=DEFAULT_FIELDS) -> list:
    """One text per record of ``path``, built with the template above.

    Args:
        path: ``.jsonl`` (one JSON object per non-blank line) or ``.json`` (a
            top-level list of objects).
        fields: the record keys to join, in order.

    Returns:
        A list of strings, one per record.

    Raises:
        FileNotFoundError: no such file.
        ValueError: not JSON/JSONL, a record that is not an object, no record
            has any of ``fields``, or the file holds no records.
    """
    path = os.fspath(path)
    fields = tuple(fields)
    if not fields or not all(isinstance(f, str) and f for f in fields):
        raise ValueError(f"text fields must be non-empty names; got {list(fields)}")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such data file: {path}")
    texts, seen, keys = [], set(), set()
    for where, rec in _records(path):
        if not isinstance(rec, dict):
            raise ValueError(f"{path}: {where} is a JSON {type(rec).__name__}; expected an object "
                             f"with the fields {', '.join(fields)}")
        if len(keys) < 50:
            keys.update(rec)
        seen.update(f for f in fields if f in rec)
        texts.append(TEXT_SEP.join(v for v in (_value(rec.get(f)) for f in fields) if v))
    if not texts:
        raise ValueError(f"{path}: holds no records; expected one JSON object per example")
    if not seen:
        raise ValueError(f"{path}: no record has any of the text fields {', '.join(fields)}; "
                         f"keys found: {', '.join(sorted(map(str, keys))) or '(none)'} "
                         "(choose with --text-fields)")
    return texts


def file_sha256(path, chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk)
            if not block:
                return h.hexdigest()
            h.update(block)
