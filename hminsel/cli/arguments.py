"""The arguments that ``hminsel select`` and ``python -m hminsel.distributed select`` share:
their parser pieces, and the checks of how they combine, made before any file is read (a
distributed run makes them before its process group starts)."""
from __future__ import annotations

import argparse

from .report import UserError


def add_source_arguments(p, inputs_help: str) -> None:
    """INPUT and how to read it (--key, --column, --split), and --metric."""
    p.add_argument("inputs", nargs="+", metavar="INPUT", help=inputs_help)
    p.add_argument("--key", help="array name in .npz / tensor name in .safetensors")
    p.add_argument("--column", help="list-of-floats column of parquet / arrow / HF dataset")
    p.add_argument("--split", help="split of a Hugging Face DatasetDict directory")
    p.add_argument("--metric", choices=("l2", "cosine"), default="l2", help="default: l2")


def add_backend_argument(p, auto: str = "cpu, or numpy without its C++ build: the inputs are host arrays",
                         more: str = ": triton and cuda copy them to the GPU") -> None:
    """--backend: ``auto`` (``HMINSEL_BACKEND`` where set, else ``auto``'s choice) or a name."""
    from ..backends import AUTO_ORDER
    p.add_argument("--backend", default="auto", choices=("auto", *AUTO_ORDER),
                   help=f"auto (default: HMINSEL_BACKEND where set, else {auto}), or one of "
                        f"them{more}")


def count(text: str) -> int:
    """--k's value: a whole number, ``1e3`` too; a decimal (``0.5``, ``1.0``) says what to
    write instead (a share of the rows is --fraction)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number of rows; got {text!r}") from None
    if "." not in text and value.is_integer():  # 1e3
        return int(value)
    if 0 < value <= 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of rows; got {text!r} (a share "
                                         f"of the rows is --fraction {text})")
    raise argparse.ArgumentTypeError(f"expected a whole number of rows; got {text!r}" + (
        f" (write {int(value)})" if value.is_integer() else ""))


def add_size_arguments(p) -> None:
    """--k, --fraction and --radius: how many rows to pick, or where to stop."""
    size = p.add_mutually_exclusive_group()
    size.add_argument("--k", type=count, help="number of rows to pick (per label with --groups)")
    size.add_argument("--fraction", type=float, help="fraction of the rows to pick, in (0, 1]")
    p.add_argument("--radius", type=float,
                   help="stop once every row lies within RADIUS of a pick (in the metric's "
                        "units; picks then lie more than RADIUS apart; per label with "
                        "--groups): --k or --fraction caps the count (neither: every row "
                        "may be picked)")


def add_rows_arguments(p) -> None:
    """--init and --mask."""
    p.add_argument("--init", metavar="INDICES",
                   help="rows already picked (a .npy of row indices, such as an earlier --out): "
                        "kept first and in their order, then the picks that continue from them "
                        "(with --groups: first within each label); --k and --fraction count them")
    p.add_argument("--mask", metavar="ROWS",
                   help="the only rows that may be picked: a .npy of one bool per row, or of "
                        "their row indices (--fraction is then a share of them)")


def add_groups_argument(p, embed: bool = True) -> None:
    """--groups and --groups-column: per-label quotas (``embed``: the command has --embed)."""
    p.add_argument("--groups", metavar="LABELS",
                   help="one label per row (a .npy of integers or strings; whole-number floats read as "
                        "integers): select within each "
                        "label, --k rows of every label or --fraction of each")
    p.add_argument("--groups-column", metavar="NAME",
                   help="as --groups, the labels read from column NAME of a parquet, Arrow or "
                        "Hugging Face dataset input, or field NAME of the --data "
                        f"{'(or --embed) ' if embed else ''}records")


def check_size(args) -> None:
    """--k, --fraction or --radius."""
    if args.k is None and args.fraction is None and args.radius is None:
        raise UserError("say how many rows to pick: --k, --fraction, or --radius (then every "
                        "row lies within it of a pick)")
    if args.k is not None and args.k < 1:
        raise UserError(f"--k must be >= 1; got {args.k}")
    if args.fraction is not None and not 0.0 < args.fraction <= 1.0:  # NaN fails too
        raise UserError(f"--fraction must be in (0, 1]; got {args.fraction}")
    if args.radius is not None:
        if not args.radius >= 0 or args.radius == float("inf"):  # NaN fails the first
            raise UserError(f"--radius must be a finite distance >= 0; got {args.radius}")


def parse_start(args, flag: str = "--start"):
    """The first pick as the selection takes it: 0 when not given (row 0, or where --init
    leaves off), ``"random"``, or a row index."""
    if args.start is None or args.start == "random":
        return args.start or 0
    try:
        return int(args.start)
    except ValueError:
        raise UserError(f"{flag} must be a row index or 'random'; got {args.start!r}") from None


def check_selection(args, flag: str = "--start"):
    """The size, the start (``flag``: its name on this command line), --seed, --init, --groups
    and the random baseline's flags, as they combine; returns ``parse_start``'s start."""
    check_size(args)
    start = parse_start(args, flag)
    if args.seed is not None and args.seed < 0:
        raise UserError(f"--seed must be a non-negative integer; got {args.seed}")
    if args.seed is not None and start != "random" and args.no_baseline:
        raise UserError(f"--seed seeds {flag} random and the random baseline: with a fixed "
                        f"{flag} and --no-baseline it would be ignored")
    per_label = args.groups is not None or args.groups_column is not None
    if args.groups is not None and args.groups_column is not None:
        raise UserError("--groups and --groups-column both give the labels: pass one")
    if per_label and start not in (0, "random"):
        raise UserError(f"{flag} {args.start} names one row, but --groups starts every label: "
                        f"pass {flag} random (one draw a label, seeded by --seed) or drop {flag}")
    if args.init is not None and args.start is not None and not (start == "random" and per_label):
        also = (f" (with --groups, {flag} random draws the first row of each label that holds "
                "no --init row)") if per_label else ""
        raise UserError("--init continues an earlier selection, whose first row is the start: "
                        f"drop {flag} (got {flag} {args.start}){also}")
    if args.baseline_out and args.no_baseline:
        raise UserError("--baseline-out and --no-baseline contradict each other")
    if args.baseline_out and not args.subset_out:
        raise UserError("--baseline-out goes with --subset-out (the random subset's records are "
                        "written as the picked ones are)")
    return start
