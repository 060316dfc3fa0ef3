"""``torchrun --nproc_per_node=P -m hminsel.distributed select INPUT... --k K --out picked.npy``
(or ``... hminsel.distributed hmin INPUT...``: the closest pair of its rows).

Every rank opens the inputs (one file, or shards: several files or a folder of
them, their rows one after another), takes its contiguous slice of the rows in
rank order, reading only the shards that hold it (a .npy memory-mapped, so
only the slice's pages), and joins the
exact distributed selection (or h_min); rank 0 writes the indices, a JSON
manifest and the picked examples (``--data`` / ``--subset-out``), or prints the pair.
The process group comes from the torchrun environment (gloo on CPUs; NCCL when
``--group-backend nccl`` and CUDA are there: each rank then takes the GPU
``LOCAL_RANK`` names, set before the group starts).
"""
from __future__ import annotations

import contextlib
import datetime
import io
import os
import shlex
import sys
import time
import traceback

import numpy as np

from hminsel.distributed.arguments import build_parser, check_select_arguments


def run_hmin(args, x, shard, lo: int, rank: int, size: int) -> None:
    """``hmin``: the closest pair of all ranks' rows (this rank's: ``shard``); rank 0 prints it."""
    import json

    from hminsel.cli.report import skipped_entry, skipped_line
    from hminsel.cli import distributed_report as report
    from hminsel.distributed import hmin
    t0 = time.perf_counter()
    res = hmin(shard, metric=args.metric, nonfinite=args.nonfinite)
    seconds = time.perf_counter() - t0
    skipped = skipped_entry(args.nonfinite, report.kept_rows(shard, lo, len(x), args.nonfinite))
    if rank == 0:
        value = res.value if np.isfinite(res.value) else None
        if args.json:  # N counts every row; nonfinite_skipped those --nonfinite skip left out
            print(json.dumps({"h_min": value, "i": res.i, "j": res.j, "N": len(x), "d": x.shape[1],
                              "metric": args.metric, "nonfinite": args.nonfinite,
                              "nonfinite_skipped": skipped, "world_size": size,
                              "seconds": seconds}))
        else:
            if skipped_line(skipped):
                print(skipped_line(skipped))
            rows = "rows without NaN/inf" if args.nonfinite == "skip" else "rows"
            pair = f"between rows {res.i} and {res.j}" if res.i >= 0 else f"(fewer than two {rows}: no pair)"
            print(f"h_min {res.value:.6g} {pair} ({len(x)} rows on {size} ranks, {seconds:.2f} s)")


def init_group(backend: str, on_gpu: bool = False):
    """Start the process group; for NCCL (or shards kept on GPUs: ``on_gpu``) first make GPU
    ``LOCAL_RANK`` this rank's device.

    NCCL binds a communicator to the device that is current when it starts, so
    without this every rank of a node would share GPU 0. Returns the device
    the group's tensors live on.
    """
    import torch
    import torch.distributed as dist
    device = torch.device("cpu")
    nccl = "nccl" in backend.lower()
    if nccl and not torch.cuda.is_available():
        raise RuntimeError(f"--group-backend {backend} needs CUDA; torch sees no GPU")
    if (nccl or on_gpu) and torch.cuda.is_available():
        gpu = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")) % torch.cuda.device_count())
        torch.cuda.set_device(gpu)
        device = gpu if nccl else device
    if not dist.is_initialized():
        dist.init_process_group(backend)
    return device


def main(argv=None) -> int:
    """Run one rank's part of the command; returns its exit status (0 ok, 2 a user error,
    128 + the signal's number when Ctrl-C, SIGTERM or SIGHUP stopped it)."""
    from hminsel.cli.signals import exit_status, stop_cleanly
    try:
        with stop_cleanly():  # torchrun stops the other ranks with SIGTERM when one fails
            return _main([str(a) for a in (sys.argv[1:] if argv is None else argv)])
    except KeyboardInterrupt as exc:
        status, word = exit_status(exc)
        rank = os.environ.get("RANK")
        print(f"hminsel.distributed{f' (rank {rank})' if rank else ''}: {word}", file=sys.stderr)
        return status


def _main(argv) -> int:
    parser = build_parser()
    quiet = os.environ.get("RANK", "0") != "0"  # every rank's argument errors alike: rank 0's
    with contextlib.redirect_stderr(io.StringIO()) if quiet else contextlib.nullcontext(), \
            contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext():
        args = parser.parse_args(argv)
        selecting = args.command == "select"
        start = check_select_arguments(parser, args) if selecting else None
    import torch.distributed as dist

    import hminsel
    from hminsel.distributed import select, select_batched
    from hminsel.cli.inputs import check_records, open_data, open_for, source_entry, write_subsets
    from hminsel.cli.report import (UserError, default_manifest, finite, hmin_line, radius_line,
                                     ratio, said, skipped_entry, skipped_line, used_seed)
    from hminsel.cli.groups import labels_source, size_of, summary_lines
    from hminsel.cli.groups import load as load_group_labels
    from hminsel.io import (check_outputs, load_indices, load_mask, together,
                            write_json_atomic, write_npy_atomic)
    from hminsel.io.table_subset import check_table_schemas
    from hminsel.cli import distributed_report as report

    try:
        from hminsel.backends import DEVICE_BACKENDS, requested
        device = init_group(args.group_backend, selecting and requested(args.backend) in DEVICE_BACKENDS)
    except (RuntimeError, ValueError) as exc:  # ValueError: no RANK etc. (not under torchrun)
        print(f"hminsel.distributed: {exc} (start it with torchrun --nproc_per_node=P -m "
              "hminsel.distributed ...)", file=sys.stderr)
        return 2
    rank, size = dist.get_rank(), dist.get_world_size()
    manifest, note = default_manifest(args.out, args.subset_out) if selecting else (None, None)
    error = init = mask = labels = records = source = None
    try:  # every rank loads and checks first, then all agree: no rank waits on a failed one
        if rank == 0 and selecting:
            check_outputs([args.out, manifest], force=args.force)
        x = open_for(args, "hminsel.distributed", say=rank == 0)
        if rank == 0 and selecting and args.subset_out:  # the picked examples' sources, first
            check_outputs([args.subset_out, args.baseline_out], force=args.force)
            if args.data is None:
                check_table_schemas(x.paths, args.split)
        if rank == 0 and selecting and args.data is not None:  # (without --subset-out: labels)
            records = open_data(args.data, "hminsel.distributed")
            check_records(records, x)
        if selecting:
            init = None if args.init is None else load_indices(args.init)
            mask = None if args.mask is None else load_mask(args.mask, len(x))
            source = labels_source(args)  # --groups, or --groups-column of the inputs or --data
            labels = load_group_labels(args, source, len(x))
        lo, hi = len(x) * rank // size, len(x) * (rank + 1) // size
        shard = np.asarray(x.rows(lo, hi))  # only the inputs that hold this rank's rows
    except (OSError, ValueError, ImportError, MemoryError, UserError) as exc:
        error = said(exc)
        if args.debug:  # where it came from, on its rank; the ranks still stop together
            traceback.print_exc()
    if said_once(error, rank, size, device):
        dist.destroy_process_group()
        return 2
    try:  # the collective part: an error here is every rank's (the protocol agrees on it)
        if not selecting:
            run_hmin(args, x, shard, lo, rank, size)
        else:
            seed = used_seed(args, start)  # as hminsel select's: of the random start and baseline
            drawn = seed if start == "random" else None  # the start's seed
            k = size_of(args)
            t0 = time.perf_counter()
            if labels is None:
                sel = select(shard, k, metric=args.metric, start=start, seed=drawn,
                             init=init, mask=None if mask is None else mask[lo:hi],
                             protocol=args.protocol, backend=args.backend,
                             nonfinite=args.nonfinite, radius=args.radius)
            else:
                sel = select_batched(shard, k, groups=labels[lo:hi], metric=args.metric,
                                     start=start, seed=drawn, mask=None if mask is None else mask[lo:hi],
                                     protocol=args.protocol, init=init, backend=args.backend,
                                     nonfinite=args.nonfinite, radius=args.radius)
            seconds = time.perf_counter() - t0
            got = report.outcome(sel, shard, lo, args.metric, args.backend, labels, source)  # collectives
            kept = report.kept_rows(shard, lo, len(x), args.nonfinite)
            skipped = skipped_entry(args.nonfinite, kept)  # the rows --nonfinite skip left out
            base = rows = None
            if not args.no_baseline:
                base, rows = report.baseline(sel, shard, lo, total=len(x), seed=seed, mask=mask,
                                             init=init, labels=labels, kept=kept, metric=args.metric,
                                             backend=args.backend)
    except (OSError, ValueError, RuntimeError) as exc:  # RuntimeError: a backend that cannot run
        error = said(exc)
        if args.debug:
            traceback.print_exc()
    if said_once(error, rank, size, device):
        dist.destroy_process_group()
        return 2
    if not selecting or rank != 0:
        dist.destroy_process_group()
        return 0
    try:  # rank 0 alone writes the outputs and the summary
        if base is not None and labels is not None:
            report.label_baselines(got, x, rows, labels, args.metric, args.backend)
        picked, h_min, collectives = len(got["indices"]), got["h_min"], got["collectives"]
        entry = {
            "hminsel_version": hminsel.__version__,
            "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": shlex.join(["python", "-m", "hminsel.distributed", *argv]),
            **source_entry(x, args, records), "N": len(x), "d": x.shape[1],
            "dtype": str(x.dtype),
            "k": picked, "metric": args.metric, "world_size": size,
            "start": None if init is not None and labels is None else start, "seed": seed,
            "init": None if init is None else {"path": os.path.abspath(args.init),
                                               "picks": len(init)},
            "mask": None if mask is None else {"path": os.path.abspath(args.mask),
                                               "rows": int(mask.sum())},
            "groups": got["groups"],
            "subset": args.subset_out and os.path.abspath(args.subset_out),
            "outputs": {"indices": os.path.abspath(args.out), "manifest": os.path.abspath(manifest),
                        "subset": args.subset_out and os.path.abspath(args.subset_out),
                        "baseline": args.baseline_out and os.path.abspath(args.baseline_out)},
            "radius": args.radius, "radius_reached": got["radius_reached"],
            "nonfinite": args.nonfinite, "protocol": args.protocol, "backend": sel.backend,
            "algorithm": getattr(sel, "algorithm", "per label (distributed select_batched)"),
            "h_min": h_min if np.isfinite(h_min) else None,
            "seconds": seconds, "rounds": got["rounds"], "collectives": collectives,
            "collectives_per_pick": None if collectives is None else collectives / picked,
            **report.manifest_part(got, base, skipped),
            "timings_s": {"select": seconds, "random_baseline": base and base["seconds"]}}
        with together():  # the outputs land as one set, or none do
            write_subsets(records, x, [(got["indices"], args.subset_out),
                                       (rows, args.baseline_out)], args.split, args.force)
            write_npy_atomic(args.out, got["indices"], force=args.force)
            write_json_atomic(manifest, entry, force=args.force)
        per = (f"{collectives} collectives ({collectives / picked:.3f} a pick)"
               if collectives is not None else f"{len(got['groups']['labels'])} labels")
        print(f"picked {picked} of {len(x)} rows on {size} ranks in {seconds:.2f} s; "
              f"{per}; wrote {args.out}, manifest {manifest}"
              + (f" ({note})" if note else "")
              + (f", subset {args.subset_out}" if args.subset_out else "")
              + (f", random subset {args.baseline_out}" if args.baseline_out else ""))
        if skipped_line(skipped):
            print(skipped_line(skipped))
        if args.radius is not None:
            print(radius_line(args.radius, got["radius_reached"]))
        if got["groups"]:
            print("\n".join(summary_lines(got["groups"])))
        print(hmin_line({"h_min": finite(h_min), "random_baseline": base,
                         "h_min_over_random": ratio(finite(h_min), base and base["h_min"])}))
    except (OSError, ValueError, RuntimeError) as exc:
        if args.debug:
            raise
        print(f"hminsel.distributed (rank 0): {said(exc)}", file=sys.stderr)
        return 2
    finally:
        dist.destroy_process_group()
    return 0


def said_once(error, rank: int, size: int, device) -> bool:
    """Whether any rank failed (``error``: this rank's text, or None); rank 0 then prints each
    error once, with the ranks it came from, so P ranks with the same error print one line.
    A collective: every rank calls it, failed or not."""
    import torch
    import torch.distributed as dist
    failed = torch.tensor([error is not None], dtype=torch.int64, device=device)  # NCCL: on the GPU
    dist.all_reduce(failed)
    if not failed.item():
        return False
    every = [None] * size
    dist.all_gather_object(every, error)
    if rank == 0:
        for text in dict.fromkeys(e for e in every if e is not None):
            ranks = ", ".join(str(r) for r, e in enumerate(every) if e == text)
            print(f"hminsel.distributed (rank{'s' if ',' in ranks else ''} {ranks}): {text}",
                  file=sys.stderr)
    return True


if __name__ == "__main__":
    sys.exit(main())
