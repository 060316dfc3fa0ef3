"""The ``hminsel`` command: select, hmin, info, demo.

User mistakes (a missing file, a wrong key, k out of range, an output that
exists without ``--force``, a backend that cannot run here) end with one line
on stderr and exit status 2; anything else (a bug) with one line and status 1.
``--debug`` shows the traceback instead.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time

import numpy as np

from ..io import (SUFFIXES, check_outputs, load_indices, load_mask, together,
                  write_json_atomic, write_npy_atomic)
from ..io.table_subset import check_table_schemas
from . import embed_select, groups
from .arguments import (add_backend_argument, add_groups_argument, add_rows_arguments,
                        add_size_arguments, add_source_arguments, check_selection)
from .inputs import (Parser, add_data_arguments, check_paths, check_records, check_subset,
                     open_data, open_for, source_entry, write_subsets)
from .report import (UserError, build_manifest, default_manifest, finite, finite_mask,
                     init_manifest, mask_manifest, random_baseline, said, skipped_entry,
                     skipped_line, summary, used_seed)
from .signals import exit_status, stop_cleanly

EXAMPLES = """examples:
  hminsel demo                                   # FPS on scikit-learn's digits, writes demo-out/
  hminsel select emb.npy --k 10000 --out picked.npy
  hminsel select emb.npy --k 20000 --init picked.npy --out more.npy   # 10000 more
  hminsel select emb.npy --fraction 0.1 --groups task.npy --out picked.npy   # 10% of each task
  hminsel select emb-*.npy --k 10000 --out picked.npy          # shards: their rows in this order
  hminsel select emb.parquet --k 500 --groups-column source --out picked.npy # 500 a source
  hminsel select data/train-*.parquet --column embedding --fraction 0.1 --out picked.npy \\
      --subset-out picked.parquet                # the picked rows themselves, every column
  hminsel select emb.parquet --column embedding --fraction 0.1 --metric cosine \\
      --out picked.npy --data train.jsonl --subset-out train.picked.jsonl
  hminsel select emb-*.npy --k 10000 --out picked.npy \\
      --data data/ --subset-out picked.jsonl   # a folder of records: data-0.jsonl, ...
  hminsel select train.jsonl --embed all-MiniLM-L6-v2 --fraction 0.5 --metric cosine \\
      --subset-out uniform.jsonl --baseline-out random.jsonl
  hminsel select data/train-*.parquet --embed all-MiniLM-L6-v2 --fraction 0.5 \\
      --metric cosine --subset-out uniform.parquet     # a table's rows, every column
  hminsel select emb.npy --radius 0.05 --metric cosine --out net.npy  # near-duplicates out
  hminsel hmin emb.npy --json
  hminsel info"""


def _add_input(p):
    add_source_arguments(
        p, f"embeddings: {', '.join(SUFFIXES)} or a Hugging Face dataset directory "
           "(save_to_disk); several files (shards of one width and dtype), or a folder of them, "
           "give their rows one after another, in the order given (a folder's in number order: "
           "emb-2 before emb-10)")
    add_backend_argument(p)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="hminsel", epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Exact greedy farthest-point (max-min) selection of embeddings.")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    from .._version import __version__
    from ..api import ALGORITHMS
    parser.add_argument("--version", action="version", version=f"hminsel {__version__}")
    common = argparse.ArgumentParser(add_help=False)  # --debug after the command works too
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True,
                                parser_class=Parser)

    p = sub.add_parser("select", parents=[common], help="pick the k most spread-out rows (FPS)",
                       description="Greedy farthest-point selection; writes int64 indices (.npy) "
                                   "and a JSON manifest.")
    _add_input(p)
    add_size_arguments(p)
    p.add_argument("--start", help="first pick: a row index (default 0) or 'random'")
    add_rows_arguments(p)
    add_groups_argument(p)
    p.add_argument("--seed", type=int,
                   help="seed of --start random and of the random baseline (default 0)")
    p.add_argument("--algorithm", default="auto", choices=ALGORITHMS,
                   help="auto (default), lazy, streaming or bucket (d <= 8)")
    p.add_argument("--nonfinite", choices=("raise", "skip"), default="raise",
                   help="rows with NaN/inf: raise (default) or skip them")
    p.add_argument("--out", help="indices output (.npy, int64, selection order); required "
                                 "without --embed")
    p.add_argument("--manifest", help="JSON manifest (default: the --out path with .json, or "
                                      "with .manifest.json where that is --subset-out)")
    add_data_arguments(p)
    p.add_argument("--no-baseline", action="store_true",
                   help="skip the h_min of a random subset (costs O(k^2 d))")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")
    embed_select.add_arguments(p)

    p = sub.add_parser("hmin", parents=[common], help="exact closest pair of rows (h_min)")
    _add_input(p)
    p.add_argument("--nonfinite", choices=("raise", "skip"), default="raise",
                   help="rows with NaN/inf: raise (default) or skip them")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.add_argument("--no-progress", action="store_true", help="no progress bar on stderr")

    sub.add_parser("info", parents=[common], help="backends and versions")

    from .demo import add_arguments
    add_arguments(sub.add_parser("demo", parents=[common],
                                 help="FPS on scikit-learn's digits: indices, manifest, picture"))
    return parser


def _load(inputs, args):
    """(x, seconds): several inputs' rows in one array (a bar on a terminal while they are read,
    unless --no-progress)."""
    from .._progress import make
    t0 = time.perf_counter()
    x = inputs.load(make(not args.no_progress, "read"))
    return x, time.perf_counter() - t0


def _init(args):
    """--init's row indices (int64), or None; read before any work."""
    return None if args.init is None else load_indices(args.init)


def manifest_for(args) -> tuple[str, str | None]:
    """``(path, note)``: where the manifest goes: --manifest (a clash with another output is
    refused later), else --out's path with .json, or, where that is --subset-out (the picked
    records as .json; --out ends in .npy), with .manifest.json, as --embed names its manifests,
    and a note for the summary saying why (else None)."""
    if args.manifest:
        return args.manifest, None
    return default_manifest(args.out, args.subset_out)


def cmd_select(args, argv) -> int:
    start = check_selection(args)
    if not args.embed:
        embed_select.check_without_embed(args)
    init = _init(args)
    source = groups.labels_source(args)
    if args.embed:
        return embed_select.run(args, argv, start, init, source)
    check_subset(args.inputs, args.data, args.subset_out, labelled=bool(args.groups_column))
    check_subset(args.inputs, args.data, args.baseline_out, "--baseline-out")
    if os.path.splitext(args.out)[1].lower() != ".npy":
        raise UserError(f"--out must end in .npy (int64 indices); got {args.out}")
    manifest_path, manifest_note = manifest_for(args)
    outs = [(args.out, "--out"), (manifest_path, "the manifest"), (args.subset_out, "--subset-out"),
            (args.baseline_out, "--baseline-out")]
    check_paths(args.inputs, args.data, [o for o in outs if o[0]],
                [(args.init, "--init"), (args.mask, "--mask"), (args.groups, "--groups")])
    t_open = time.perf_counter()
    records = open_data(args.data, "hminsel select")  # JSON parsed: a bad record fails now
    inputs = open_for(args, "hminsel select")
    t_open = time.perf_counter() - t_open
    n = len(inputs)  # what needs only the row count is checked before the rows are read
    if records is not None:
        check_records(records, inputs)
    mask = None if args.mask is None else load_mask(args.mask, n)
    labels = groups.load(args, source, n)
    if args.nonfinite == "raise":  # with skip, the finite rows (known once read) bound k
        groups.check_k(args, start, init, mask, labels, n)
    if args.subset_out and not args.data:
        check_table_schemas(inputs.paths, args.split)
    check_outputs([path for path, _ in outs], force=args.force)  # the inputs' mistakes first,
    # then the outputs', before the work
    x, t_load = _load(inputs, args)
    t_scan = time.perf_counter()
    kept = finite_mask(x, args.nonfinite)  # the rows --nonfinite skip keeps: one pass, or None
    t_scan = time.perf_counter() - t_scan
    t0 = time.perf_counter()
    sel = groups.run_select(args, x, start, init, mask, labels)
    t_select = time.perf_counter() - t0
    seed = used_seed(args, start)
    baseline = per_label = rows = None
    if not args.no_baseline:  # drawn from the rows the selection could pick: no second scan
        rows = groups.baseline_rows(len(x), sel, seed, mask, init, labels, kept)
        baseline = random_baseline(x, len(rows), metric=args.metric, backend=args.backend,
                                   seed=seed, progress=not args.no_progress, rows=rows,
                                   keep=init if labels is None else None)
        if labels is not None:
            per_label = groups.random_hmin_by_label(x, rows, labels, args.metric, args.backend)
    outputs = {"indices": os.path.abspath(args.out), "manifest": os.path.abspath(manifest_path),
               "subset": args.subset_out and os.path.abspath(args.subset_out),
               "baseline": args.baseline_out and os.path.abspath(args.baseline_out)}
    manifest = build_manifest(
        sel=sel, x=x, source=source_entry(inputs, args, records), start=start, seed=seed,
        baseline=baseline,
        timings={"open": t_open, "load": t_load, "nonfinite_scan": t_scan, "select": t_select,
                 "random_baseline": baseline and baseline["seconds"]},
        command=shlex.join(["hminsel", *argv]), outputs=outputs, init=init_manifest(args, init),
        mask=mask_manifest(args, mask),
        groups=None if labels is None else groups.manifest_entry(source, sel, labels, per_label),
        nonfinite=args.nonfinite, skipped=skipped_entry(args.nonfinite, kept),
        radius=args.radius)
    t_write = time.perf_counter()
    with together():  # the outputs land as one set, or none do
        write_subsets(records, inputs, [(sel.indices, args.subset_out), (rows, args.baseline_out)],
                      args.split, args.force)
        write_npy_atomic(args.out, np.asarray(sel.indices, dtype=np.int64), force=args.force)
        manifest["timings_s"]["write"] = time.perf_counter() - t_write  # the manifest's own aside
        write_json_atomic(manifest_path, manifest, force=args.force)
    print(summary(manifest, {"manifest": manifest_note}))
    return 0


def cmd_hmin(args) -> int:
    import hminsel
    x, t_load = _load(open_for(args, "hminsel hmin"), args)
    skipped = skipped_entry(args.nonfinite, finite_mask(x, args.nonfinite))  # skip: one pass
    t0 = time.perf_counter()
    res = hminsel.hmin(x, metric=args.metric, backend=args.backend, nonfinite=args.nonfinite,
                       progress=not args.no_progress)
    seconds = time.perf_counter() - t0
    if args.json:  # N counts every row; nonfinite_skipped those --nonfinite skip left out
        print(json.dumps({"h_min": finite(res.value), "i": res.i, "j": res.j,
                          "metric": res.metric, "backend": res.backend, "N": int(x.shape[0]),
                          "d": int(x.shape[1]), "dtype": str(x.dtype),
                          "nonfinite": args.nonfinite, "nonfinite_skipped": skipped,
                          "seconds": seconds}))
        return 0
    if res.i >= 0:
        pair = f"between rows {res.i} and {res.j}"
    else:
        pair = "(fewer than two finite rows: no pair)" if skipped else "(one row: no pair)"
    print(f"h_min = {res.value:.6g}  {pair}  "
          f"({x.shape[0]} x {x.shape[1]} {x.dtype}, {res.metric}, {res.backend} backend, "
          f"{seconds:.3g} s)")
    line = skipped_line(skipped)
    if line:
        print(line)
    return 0


def _run(args, argv) -> int:
    if args.command == "select":
        return cmd_select(args, argv)
    if args.command == "hmin":
        return cmd_hmin(args)
    if args.command == "info":
        from .info import cmd_info
        return cmd_info(args)
    from .demo import run
    return run(args)


def main(argv=None) -> int:
    """Run the command line; returns the exit status (0 ok, 2 user error)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or argparse's own usage error (status 2)
        return int(exc.code or 0)
    try:
        with stop_cleanly():  # SIGTERM, SIGHUP: as Ctrl-C
            return _run(args, argv)
    except KeyboardInterrupt as exc:
        if args.debug:
            raise
        status, word = exit_status(exc)
        clear = "\r\033[K" if sys.stderr.isatty() else ""  # over a progress bar's last line
        print(f"{clear}hminsel: {word}", file=sys.stderr)
        return status
    except BrokenPipeError:  # the reader of stdout left (| head): its work is done, quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit's flush
        return 0
    except (UserError, ValueError, TypeError, OSError, ImportError, MemoryError,
            RuntimeError) as exc:  # RuntimeError: a backend that cannot run here
        if args.debug:
            raise
        print(f"hminsel {args.command}: error: {said(exc)}", file=sys.stderr)
        return 2
    except Exception as exc:  # a bug: still one line; --debug shows where
        if args.debug:
            raise
        message = " ".join(str(exc).split())
        print(f"hminsel {args.command}: internal error: {type(exc).__name__}: {message} "
              "(--debug shows the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
