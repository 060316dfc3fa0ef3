"""What both select commands (``hminsel select`` and ``python -m hminsel.distributed select``)
do with their inputs: open them (one file, or shards), say so in the manifest, check
``--data`` / ``--subset-out`` against them, and name a record count that does not fit."""
from __future__ import annotations

import os
import sys

from ..io import SUBSET_SUFFIXES
from ..io.shards import expand_inputs, open_inputs
from ..io.table_subset import TABLE_SUBSET_SUFFIXES, is_table
from .report import UserError


def open_for(args, prog: str, say: bool = True):
    """The inputs of ``args.inputs`` (``shards.Inputs``: rows, width and dtype from headers, no
    rows read); a warning about their order goes to stderr as one line (``say``)."""
    inputs = open_inputs(args.inputs, key=args.key, column=args.column,
                         split=getattr(args, "split", None))
    if inputs.warning and say:
        print(f"{prog}: warning: {inputs.warning}", file=sys.stderr)
    return inputs


def one_input(args):
    """--embed reads one data file: the only INPUT (``args.input``)."""
    if len(args.inputs) != 1:
        raise UserError(f"--embed reads one data file; got {len(args.inputs)} inputs")
    args.input = args.inputs[0]


def source_entry(inputs, args) -> dict:
    """The manifest's ``input`` (a path; with several inputs, their paths in row order and
    ``input_offsets``: input f holds global rows offsets[f]:offsets[f + 1]) and options."""
    paths = [os.path.abspath(p) for p in inputs.paths]
    entry = ({"input": paths[0]} if len(paths) == 1 else
             {"input": paths, "input_offsets": [int(v) for v in inputs.offsets]})
    return {**entry, "key": args.key, "column": args.column, "split": getattr(args, "split", None)}


def check_subset(inputs, data, subset_out) -> None:
    """--subset-out: the --data records (.jsonl / .json), or without --data the rows of table
    inputs (``inputs``: their paths), as .parquet, .jsonl or .json."""
    if subset_out is None:
        if data is not None:
            raise UserError("--data goes with --subset-out (where the picked records go)")
        return
    ext = os.path.splitext(subset_out)[1].lower()
    if data is not None:
        if ext not in SUBSET_SUFFIXES:
            raise UserError(f"--subset-out must end in .jsonl or .json; got {subset_out}")
        return
    if not all(is_table(p) for p in expand_inputs(inputs)):
        raise UserError("--subset-out needs --data (the records, one per embedding row), unless "
                        "the input is a parquet, Arrow or Hugging Face dataset table: then its "
                        "own picked rows are written")
    if ext not in TABLE_SUBSET_SUFFIXES:
        raise UserError(f"--subset-out of a table input must end in "
                        f"{', '.join(TABLE_SUBSET_SUFFIXES)}; got {subset_out}")


def check_records(data, records: int, inputs) -> None:
    """One --data record an embedding row of ``inputs``, or a UserError naming both counts."""
    if records != len(inputs):
        what = (f"the {len(inputs.paths)} inputs have" if len(inputs.paths) > 1 else
                f"{inputs.paths[0]} has")
        raise UserError(f"{data} holds {records} records but {what} {len(inputs)} rows; "
                        "expected one record per embedding row, in the same order")
