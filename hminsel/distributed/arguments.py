"""The command line of ``python -m hminsel.distributed``: its parser, and what ``select``
refuses before a process group starts (every rank would refuse it alike)."""
from __future__ import annotations

import os


INPUT_HELP = (".npy (memory-mapped), .npz, .safetensors, .parquet, .arrow or a Hugging Face "
              "dataset directory; several files (shards of one width and dtype) or a folder of "
              "them give their rows one after another: each rank reads only the shards that "
              "hold its rows")


def build_parser():
    from hminsel.cli.inputs import Parser, add_data_arguments
    from hminsel.cli.arguments import (add_backend_argument, add_groups_argument, add_rows_arguments,
                                       add_size_arguments, add_source_arguments)
    parser = Parser(prog="python -m hminsel.distributed",
                                     description="Exact FPS over row shards with torch.distributed.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    p = sub.add_parser("select", help="select k rows of INPUT, sharded over the ranks")
    add_source_arguments(p, INPUT_HELP)  # INPUT, --key, --column, --split, --metric
    add_size_arguments(p)  # --k, --fraction, --radius
    p.add_argument("--start-row", "--start", dest="start",
                   help="global row index or 'random' (torchrun takes --start for its own "
                        "--start-method: write --start-row there)")
    p.add_argument("--seed", type=int, default=None,
                   help="seed of --start-row random and of the random baseline (default 0: the "
                        "same every run)")
    add_rows_arguments(p)  # --init, --mask (global row indices)
    add_groups_argument(p, embed=False)  # --groups, --groups-column (every rank reads them)
    p.add_argument("--nonfinite", choices=("raise", "skip"), default="raise",
                   help="rows with NaN/inf: raise (default, naming the first) or skip them")
    p.add_argument("--protocol", choices=("rounds", "steps"), default="rounds",
                   help="rounds (default: the exact lazy rounds, one collective a round) or steps "
                        "(streaming: one collective a pick)")
    p.add_argument("--group-backend", default="gloo", help="torch.distributed backend: gloo (default) or nccl")
    add_backend_argument(p, "the CPU", more=": triton and cuda keep each rank's shard on its GPU "
                                         "(LOCAL_RANK)")
    p.add_argument("--out", required=True, help="indices output (.npy), written by rank 0")
    add_data_arguments(p, "; written by rank 0")
    p.add_argument("--baseline-out", help="also write the records of the random subset the "
                                          "manifest measured (seeded by --seed, in file order) "
                                          "for an A/B run; beside --subset-out; by rank 0")
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the h_min of a random subset of as many rows (costs about what "
                        "hmin of k rows over the ranks costs)")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    h = sub.add_parser("hmin", help="the closest pair of rows of INPUT, its rows sharded over the ranks")
    add_source_arguments(h, INPUT_HELP)
    h.add_argument("--nonfinite", choices=("raise", "skip"), default="raise",
                   help="rows with NaN/inf: raise (default, naming the first) or skip them")
    h.add_argument("--group-backend", default="gloo", help="torch.distributed backend: gloo (default) or nccl")
    h.add_argument("--json", action="store_true", help="print {h_min, i, j, seconds} as JSON")
    for q in (p, h):
        q.add_argument("--debug", action="store_true",
                       help="show tracebacks on errors (each rank its own)")
    return parser


def check_select_arguments(parser, args):
    """What ``select`` cannot take, before a process group starts; returns the start
    (``cli.arguments.parse_start``'s)."""
    def fail(message):  # as the select subcommand's own usage errors say it
        parser.exit(2, f"{parser.prog} select: error: {message} (see {parser.prog} select --help)\n")
    if os.path.splitext(args.out)[1].lower() != ".npy":  # the manifest takes its name with .json
        fail(f"--out must end in .npy (the indices; the manifest goes next to it as "
                     f".json); got {args.out}")
    for flag in ("init", "mask", "groups"):
        path = getattr(args, flag)
        if path is not None and os.path.realpath(path) == os.path.realpath(args.out):
            fail(f"--{flag} and --out must be different files")
    from hminsel.cli.arguments import check_selection
    from hminsel.cli.inputs import check_paths, check_subset
    from hminsel.cli.report import UserError, default_manifest, said
    from hminsel.io.shards import expand_inputs
    from hminsel.io.table_subset import is_table
    given = [p for p in args.inputs if os.path.exists(p)]  # a missing one: every rank says so
    outs = [(args.out, "--out"), (default_manifest(args.out, args.subset_out)[0], "the manifest"),
            (args.subset_out, "--subset-out"), (args.baseline_out, "--baseline-out")]
    try:
        start = check_selection(args, "--start-row")
        check_paths(given, args.data, [o for o in outs if o[0]],
                    [(args.init, "--init"), (args.mask, "--mask"), (args.groups, "--groups")])
        if given:
            check_subset(given, args.data, args.subset_out, labelled=bool(args.groups_column))
            check_subset(given, args.data, args.baseline_out, "--baseline-out")
        if args.groups_column and given and not args.data and not all(
                is_table(p) for p in expand_inputs(given)):  # (a missing input: every rank says so)
            raise UserError("--groups-column names a column of parquet, Arrow or Hugging Face "
                            "dataset inputs, or a field of the --data records; for these inputs "
                            "pass --groups LABELS.npy")
    except (OSError, ValueError, UserError) as exc:
        fail(said(exc))
    return start
