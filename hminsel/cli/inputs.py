"""What both select commands (``hminsel select`` and ``python -m hminsel.distributed select``)
do with their inputs: open them (one file, or shards), say so in the manifest, check
``--data`` / ``--subset-out`` against them, and name a record count that does not fit."""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from ..io import SUBSET_SUFFIXES
from ..io.records import RECORD_SUFFIXES, are_tables, open_records
from ..io.shards import check_outputs, expand_inputs, open_inputs
from ..io.table_subset import TABLE_SUBSET_SUFFIXES, is_table, write_table_subset
from .report import UserError


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose usage errors are one line (with where ``--help`` is), and a
    hint where ``--data`` (several paths) took the INPUT too."""

    def parse_known_args(self, args=None, namespace=None):
        """argparse's, remembering the arguments (a subcommand's parser gets its own)."""
        self._given = list(sys.argv[1:] if args is None else args)
        return super().parse_known_args(args, namespace)

    def error(self, message):
        """One line on stderr and exit status 2 (argparse prints its whole usage first), with
        the hint when --data was given and INPUT is missing."""
        given = getattr(self, "_given", [])
        if "required: INPUT" in message and any(a == "--data" or a.startswith("--data=")
                                                for a in given):
            message += " (--data takes every path that follows it: give INPUT before --data)"
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def add_data_arguments(p, who: str = "") -> None:
    """--data and --subset-out of a select command (``who``: which process writes)."""
    p.add_argument("--data", nargs="+", action="extend", metavar="DATA",
                   help="the examples, one per embedding row: .jsonl or .json records, or a "
                        "parquet, Arrow or Hugging Face dataset table; several files (or a "
                        "folder of them) give their records one after another, in the order "
                        "given (a folder's in number order)")
    p.add_argument("--subset-out",
                   help="where to write the picked examples of --data (.jsonl or .json; of a "
                        "table, also .parquet: every column); without --data, of a parquet, "
                        "Arrow or Hugging Face dataset input: its picked rows, every column "
                        f"(.parquet, .jsonl or .json){who}")


def open_for(args, prog: str, say: bool = True):
    """The inputs of ``args.inputs`` (``shards.Inputs``: rows, width and dtype from headers, no
    rows read); a warning about their order goes to stderr as one line (``say``). With
    ``--nonfinite skip`` a table's null vectors read as rows of NaN, left out as such."""
    nulls = "nan" if getattr(args, "nonfinite", None) == "skip" else "raise"
    inputs = open_inputs(args.inputs, key=args.key, column=args.column,
                         split=getattr(args, "split", None), nulls=nulls)
    if inputs.warning and say:
        print(f"{prog}: warning: {inputs.warning}", file=sys.stderr)
    return inputs


def open_data(paths, prog: str, say: bool = True, role: str = "--data", parse: bool = True):
    """The records of ``paths`` (``records.Records``: counted, JSON parsed unless ``parse`` is
    False), or None without paths; a warning about the files' order goes to stderr as one
    line (``say``)."""
    if not paths:
        return None
    try:
        records = open_records(paths, parse)
    except OSError as exc:  # no read permission, a bad disk: say which file is whose
        if exc.filename is None:
            raise
        raise UserError(f"{role} {exc.filename}: cannot read it ({exc.strerror or exc})") from None
    if records.warning and say:
        print(f"{prog}: warning: {role}: {records.warning}", file=sys.stderr)
    return records


def check_paths(inputs, data, outs, others, data_is: str = "--data") -> None:
    """No two of the input files, the --data files, the outputs ``outs`` and the other files
    read (``others``; both lists of ``(path, what it is)``) are one file; no output in an
    input format lies in a folder input or a --data folder (a later run would read it as one
    of the folder's files)."""
    for path, what in outs:
        check_outputs(inputs, [path])
        if data:
            try:
                check_outputs(data, [path], RECORD_SUFFIXES, data_is.removeprefix("the "))
            except ValueError as exc:
                raise UserError(f"{exc} (it is {what})") from None
    named = [(p, "the input") for p in (expand_inputs(inputs) if inputs else [])] + [
        (p, data_is) for p in data_files(data)] + [(p, what) for p, what in others + outs if p]
    seen = {}
    for path, what in named:
        real = os.path.realpath(path)
        if real in seen:
            first, was = seen[real]
            raise UserError(f"{path} is both {was}{'' if first == path else f' ({first})'} and "
                            f"{what}: they must be different files")
        seen[real] = (path, what)


def source_entry(inputs, args, records=None) -> dict:
    """The manifest's ``input`` (a path; with several inputs, their paths in row order and
    ``input_offsets``: input f holds global rows offsets[f]:offsets[f + 1]), options and
    ``data`` (the --data files of ``records``, in record order)."""
    paths = [os.path.abspath(p) for p in inputs.paths]
    entry = ({"input": paths[0]} if len(paths) == 1 else
             {"input": paths, "input_offsets": [int(v) for v in inputs.offsets]})
    if records is not None:
        data = [os.path.abspath(p) for p in records.paths]
        entry["data"] = data[0] if len(data) == 1 else data
        if len(data) > 1:  # data file f holds records data_offsets[f]:data_offsets[f + 1]
            entry["data_offsets"] = [int(v) for v in records.offsets]
    return {**entry, "key": args.key, "column": args.column, "split": getattr(args, "split", None)}


def data_files(data, missing_ok: bool = True) -> list:
    """The files of --data (a list of paths; a folder stands for its data files). A path not
    there stays as given with ``missing_ok`` (for the checks that no output is one of them:
    a clash is named first), else it raises FileNotFoundError."""
    missing = [p for p in data or () if not os.path.exists(p)]
    if missing and not missing_ok:
        raise FileNotFoundError(f"no such data file or folder: {missing[0]}")
    there = [p for p in data or () if os.path.exists(p)]
    return (expand_inputs(there, RECORD_SUFFIXES, "data files") if there else []) + missing


def check_subset(inputs, data, subset_out, flag: str = "--subset-out", labelled: bool = False) -> None:
    """--subset-out (``flag``: or --baseline-out): the --data records (.jsonl / .json, or a
    table's rows as .parquet, .jsonl or .json), or without --data the rows of table inputs
    (``inputs``: their paths). --data without it gives only the labels (``labelled``:
    --groups-column names a field of its records)."""
    if subset_out is None:
        if data and flag == "--subset-out" and not labelled:
            raise UserError("--data goes with --subset-out (where the picked records go) or with "
                            "--groups-column (a field of its records, the labels)")
        return
    ext = os.path.splitext(subset_out)[1].lower()
    if data:
        tables = are_tables(data_files(data, missing_ok=False))
        allowed = TABLE_SUBSET_SUFFIXES if tables else SUBSET_SUFFIXES
        if ext not in allowed:
            raise UserError(f"{flag} of {'table' if tables else 'JSON'} --data must end in "
                            f"{', '.join(allowed)}; got {subset_out}")
        return
    if not all(is_table(p) for p in expand_inputs(inputs)):
        raise UserError(f"{flag} needs --data (the records, one per embedding row), unless "
                        "the input is a parquet, Arrow or Hugging Face dataset table: then its "
                        "own picked rows are written")
    if ext not in TABLE_SUBSET_SUFFIXES:
        raise UserError(f"{flag} of a table input must end in "
                        f"{', '.join(TABLE_SUBSET_SUFFIXES)}; got {subset_out}")


def check_records(records, inputs) -> None:
    """One --data record an embedding row of ``inputs``, or a UserError naming both counts."""
    if len(records) != len(inputs):
        data, verb = ((records.paths[0], "holds") if len(records.paths) == 1 else
                      (f"the {len(records.paths)} data files ({records.counts()})", "hold"))
        what = (f"the {len(inputs.paths)} inputs have" if len(inputs.paths) > 1 else
                f"{inputs.paths[0]} has")
        raise UserError(f"{data} {verb} {len(records)} records but {what} {len(inputs)} rows; "
                        "expected one record per embedding row, in the same order")
    rows, held = np.diff(inputs.offsets).tolist(), np.diff(records.offsets).tolist()
    if len(rows) == len(held) > 1 and rows != held and sorted(rows) == sorted(held):
        raise UserError(f"the {len(rows)} inputs hold {rows} rows and the {len(held)} --data files "
                        f"{held} records: the same sizes in another order, so the records would not "
                        "be their rows' (a shell's glob puts emb-10 before emb-2); give both in one "
                        "order, such as both folders (read in number order)")


def write_subsets(records, inputs, chosen, split=None, force=False) -> None:
    """Each ``(rows, path)`` of ``chosen`` that has a path: the --data ``records`` of those rows,
    or without --data the rows of the table ``inputs`` themselves, every column (the callers
    write them with the indices and manifest in one ``io.together`` set)."""
    for rows, path in chosen:
        if not path:
            continue
        if records is not None:
            records.write(rows, path, force=force)
        else:
            write_table_subset(inputs.paths, inputs.offsets, rows, path, split=split, force=force)
