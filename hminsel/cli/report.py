"""What the command line reports about a selection: the manifest and the summary."""
from __future__ import annotations

import dataclasses
import datetime
import math
import os
import platform
import sys
import time

import numpy as np

import hminsel
from hminsel._finite import finite_rows
from hminsel._picks import both
from hminsel._progress import Bar

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
SKIPPED_LISTED = 10  # the first rows --nonfinite skip left out that the manifest names


class UserError(Exception):
    """A mistake in the command line; printed as one line, exit status 2."""


def said(exc: BaseException) -> str:
    """An error as a command line says it: one line, its flags rather than the Python
    call's arguments (an existing output: --force)."""
    from hminsel.io.writers import OutputExists
    text = exc.on_command_line() if isinstance(exc, OutputExists) else str(exc)
    return " ".join(text.split()) or type(exc).__name__


def shown(path: str) -> str:
    """A path as the summary shows it: relative to the working folder when it lies inside it."""
    rel = os.path.relpath(path)
    return path if rel == os.pardir or rel.startswith(os.pardir + os.sep) else rel


def finite(value):
    """A float for JSON: None for inf/NaN (JSON has neither)."""
    value = float(value)
    return value if math.isfinite(value) else None


def radii_summary(radii) -> dict:
    """Max/median/min and quantiles of the radii but the first of each selection (inf)."""
    r = np.asarray(radii, dtype=np.float64)
    r = r[np.isfinite(r)]
    if r.size == 0:
        return {"count": 0, "max": None, "median": None, "min": None, "quantiles": {}}
    return {"count": int(r.size), "max": finite(r.max()), "median": finite(np.median(r)),
            "min": finite(r.min()),
            "quantiles": {f"{q:g}": finite(np.quantile(r, q)) for q in QUANTILES}}


def used_seed(args, start):
    """The seed a select run uses (``--seed``, default 0), or None when nothing random runs
    (a fixed ``--start`` and ``--no-baseline``)."""
    if start != "random" and args.no_baseline:
        return None
    return 0 if args.seed is None else args.seed


RANDOM_METHOD = ("numpy.random.default_rng(seed).choice of k rows, without replacement, among "
                 "those the selection could pick (all N; the finite or --mask ones), sorted; with "
                 "--init, its rows kept and the other k - len(init) drawn so; with --groups, as "
                 "many of each label's rows as the selection took, label by label")


def default_manifest(out: str, subset_out: str | None) -> tuple[str, str | None]:
    """``(path, note)`` of the manifest beside ``--out`` (a .npy): its path with .json, or,
    where that is ``--subset-out`` (the picked records as .json), with .manifest.json (as
    --embed names its manifests) and a note for the summary saying why (else None)."""
    stem = os.path.splitext(out)[0]
    path = stem + ".json"
    if subset_out and os.path.realpath(subset_out) == os.path.realpath(path):
        return stem + ".manifest.json", f"not {path}: that is --subset-out"
    return path, None


def finite_mask(x, nonfinite: str):
    """The finite rows of x (an (N,) bool, from one threaded scan; None when all are) with
    ``--nonfinite skip``; None with ``raise`` (the selection raises on such a row itself)."""
    return finite_rows(x) if nonfinite == "skip" else None


def skipped_entry(nonfinite: str, kept) -> dict | None:
    """The manifest's ``nonfinite_skipped``: how many rows ``--nonfinite skip`` left out (with
    NaN or inf; ``kept``: the others, as ``finite_mask`` gives them) and the first
    ``SKIPPED_LISTED`` of them; None with ``--nonfinite raise``, which leaves none out."""
    if nonfinite != "skip":
        return None
    bad = np.zeros(0, np.int64) if kept is None else np.flatnonzero(~kept)
    return {"count": int(len(bad)), "first_rows": [int(i) for i in bad[:SKIPPED_LISTED]]}


def skipped_line(entry: dict | None) -> str | None:
    """What the summary says of the rows ``--nonfinite skip`` left out, or None when none."""
    if not entry or not entry["count"]:
        return None
    n = entry["count"]
    first = f"the first: row {entry['first_rows'][0]}" if n > 1 else f"row {entry['first_rows'][0]}"
    return f"left out {n} row{'s' if n > 1 else ''} with NaN or inf ({first})"


def random_rows(n: int, k, seed, kept=None, allowed=None, keep=None):
    """Sorted rows of a seeded uniformly random subset of ``k`` of ``n`` rows (rows ``kept`` only,
    the finite ones with --nonfinite skip, and rows ``allowed`` only, with --mask: (N,) bools,
    None for every row): the random baseline's draw.

    ``keep``: rows every subset holds (the --init picks, which the selection holds too, even
    outside ``allowed``); the other ``k - len(keep)`` rows are drawn from the rest.
    """
    rng = np.random.default_rng(seed)
    pool = both(kept, allowed)
    if pool is None and keep is None:
        return np.sort(rng.choice(n, size=k, replace=False))
    pool = np.ones(n, bool) if pool is None else pool.copy()
    keep = np.zeros(0, np.int64) if keep is None else np.asarray(keep, np.int64)
    if len(np.unique(keep)) != len(keep) or len(keep) > k:
        raise ValueError(f"keep must hold at most k = {k} distinct rows; got {len(keep)} rows, "
                         f"{len(np.unique(keep))} distinct")
    pool[keep] = False
    pool = np.flatnonzero(pool)
    drawn = pool[rng.choice(len(pool), size=min(max(0, k - len(keep)), len(pool)), replace=False)]
    return np.sort(np.concatenate([keep, drawn]))


def random_baseline(x, k, *, metric, backend, seed, kept=None, allowed=None,
                    keep=None, progress=False, rows=None) -> dict:
    """h_min of a uniformly random subset of ``k`` rows (seeded), for comparison.

    With ``kept`` (``finite_mask``) the subset is drawn from the rows without NaN/inf,
    and with ``allowed`` (a --mask) from those rows, as the selection was; the
    rows ``keep`` (--init) are in it, as in the selection, and then ``new_rows_min_radius``
    is how far its other rows lie from every other row of it (the statistic of the
    selection's new picks). ``rows``: the subset, drawn already (per label,
    ``groups.baseline_rows``). ``progress`` as in ``hminsel.hmin``.
    """
    t0 = time.perf_counter()
    if rows is None:
        rows = random_rows(len(x), k, seed, kept, allowed, keep)
    if progress and sys.stderr.isatty():
        progress = Bar("random baseline h_min", unit="%")
    res = hminsel.hmin(np.asarray(x[rows]), metric=metric, backend=backend, progress=progress)
    out = {"statistic": f"h_min of one random subset (seed {seed})",
           "seed": seed, "size": int(len(rows)), "h_min": finite(res.value),
           "method": RANDOM_METHOD}
    if keep is not None and len(keep):
        out["new_rows_min_radius"] = new_rows_min_radius(x, rows, keep, metric, backend)
    return dict(out, seconds=time.perf_counter() - t0)


def new_rows_min_radius(x, rows, keep, metric: str, backend: str) -> float | None:
    """The smallest distance from a row of ``rows`` outside ``keep`` to any other row of
    ``rows``: for a selection continued from ``keep`` (--init), its new picks' smallest
    radius (each new pick's distance to every earlier pick: every pair but the init rows'
    own). None when no row is new."""
    new = np.setdiff1d(rows, keep)
    if len(new) == 0:
        return None
    xs = np.asarray(x[new])
    best = float(hminsel.nearest(xs, np.asarray(x[np.asarray(keep)]), metric=metric,
                                 backend=backend)[0].min())
    if len(new) > 1:
        best = min(best, float(hminsel.hmin(xs, metric=metric, backend=backend).value))
    return finite(best)


def ratio(a, b):
    """a / b for the summary, or None when it is not a finite number."""
    if a is None or b is None or b == 0:
        return None
    return finite(a / b)


def init_manifest(args, init) -> dict | None:
    """The manifest's record of --init: the file and how many picks it held."""
    return None if init is None else {"path": os.path.abspath(args.init), "picks": int(len(init))}


def mask_manifest(args, mask) -> dict | None:
    """The manifest's record of --mask: the file and how many rows it allows."""
    return None if mask is None else {"path": os.path.abspath(args.mask), "rows": int(mask.sum())}


def build_manifest(*, sel, x, source: dict, start, seed, baseline, timings: dict,
                   command: list, outputs: dict, init=None, mask=None, groups=None,
                   nonfinite: str = "raise", skipped=None, radius=None) -> dict:
    """Everything needed to reproduce and judge a selection, as JSON-ready data.

    ``init``: ``{"path", "picks"}`` of the picks the run continued from (--init), or None;
    ``mask``: ``{"path", "rows"}`` of the rows it could pick (--mask), or None;
    ``groups``: the labels file and each label's rows, picks and h_min (--groups), or None;
    ``nonfinite``: --nonfinite, and ``skipped``: the rows it left out (``skipped_entry``;
    ``N`` counts every row, those too); ``radius``: --radius (``stats.radius_reached`` says
    whether it ended the run), or None.
    """
    indices = np.asarray(sel.indices)
    h = finite(sel.hmin)
    if isinstance(sel.stats, dict):  # a per-label run (cli/groups.py)
        stats = dict(sel.stats)
    else:
        stats = dataclasses.asdict(sel.stats)
        stats["picks_per_round"] = [int(v) for v in stats["picks_per_round"]]
        if init:  # h_min is often a pair of init rows: what the new picks keep apart, too
            new = np.asarray(sel.radii, np.float64)[init["picks"]:]
            init = dict(init, new_picks_min_radius=finite(new.min()) if new.size else None)
            if baseline and "new_rows_min_radius" in baseline:
                init["new_picks_over_random"] = ratio(init["new_picks_min_radius"],
                                                      baseline["new_rows_min_radius"])
    manifest = {
        "hminsel_version": hminsel.__version__,
        "created_utc": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": command,
        "python": platform.python_version(), "numpy": np.__version__,
        **source,
        "N": int(x.shape[0]), "d": int(x.shape[1]), "dtype": str(x.dtype),
        "nonfinite": nonfinite, "nonfinite_skipped": skipped,
        "k": int(indices.size), "metric": sel.metric, "start": None if init and not groups else start,
        "start_index": int(indices[0]), "init": init, "mask": mask, "groups": groups,
        "seed": seed, "radius": radius,
        "backend": sel.backend, "algorithm": sel.algorithm,
        "h_min": h,
        "radii": radii_summary(sel.radii),
        "random_baseline": baseline,
        "h_min_over_random": ratio(h, baseline and baseline["h_min"]),
        "h_min_over_random_is": "h_min / random_baseline.h_min (see random_baseline.statistic)",
        "timings_s": timings,
        "stats": stats,
        "outputs": outputs,
    }
    return manifest


def new_picks_note(init: dict) -> str:
    """After the --init line: how far the new picks lie from every earlier pick (h_min counts
    the init rows' own pairs too)."""
    r = init.get("new_picks_min_radius")
    if r is None:
        return ""
    vs = init.get("new_picks_over_random")
    vs = "" if vs is None else f", {vs:.2f}x what a random subset's new rows keep"
    return (f"; each new pick lies >= {r:.6g} from every earlier pick{vs} (h_min below counts "
            "the init rows' own pairs too)")


def fmt(value) -> str:
    return "inf" if value is None else f"{value:.6g}"


def radius_line(radius: float, reached) -> str:
    """What a summary says of --radius: whether it ended the run (``reached``; None: per label)."""
    if reached is None:
        return f"each label's picks end at --radius {fmt(radius)} or at its count, whichever came first"
    if reached:
        return f"stopped at --radius {fmt(radius)}: every row that could be picked lies within it of a pick"
    return (f"--radius {fmt(radius)} not reached: the count (--k, --fraction, or every row that "
            "could be picked) came first")


def hmin_line(m: dict) -> str:
    """The summary's line of a manifest's h_min, and of its random baseline's (and the ratio)."""
    b = m["random_baseline"]
    line = f"h_min = {fmt(m['h_min'])}"
    if b is not None:
        what = b.get("statistic") or f"h_min of one random subset (seed {b['seed']})"
        line += f"   {what} of {b['size']} rows: {fmt(b['h_min'])}"
        if m["h_min_over_random"] is not None:
            r = m["h_min_over_random"]
            line += f"  -> {r:.2f}x" + (" larger" if r >= 1 else " (smaller)")
        elif b["h_min"] == 0:  # no ratio: the draw holds a duplicate pair, as undeduped data does
            line += ("  (no ratio: the random subset holds duplicate rows; --radius 0 leaves "
                     "duplicates out of the selection)")
    return line


def summary(m: dict, notes: dict | None = None) -> str:
    """A few human lines about a manifest (``notes``: a word after an output's path, by the
    output's name in ``m["outputs"]``)."""
    passes = m["stats"].get("passes")
    lines = [f"picked {m['k']} of {m['N']} rows (d={m['d']}, {m['dtype']}, metric {m['metric']}) "
             f"in {m['timings_s']['select']:.3g} s  [{m['algorithm']} on {m['backend']}"
             + (f", {passes:.3g} pass{'es' * (passes != 1)} over the data]" if passes is not None
                else "]")]
    skipped = skipped_line(m.get("nonfinite_skipped"))
    if skipped:
        lines.append(skipped)
    if m.get("init"):
        lines.append(f"continued from the {m['init']['picks']} picks in "
                     f"{shown(m['init']['path'])}" + new_picks_note(m["init"]))
    if m.get("mask"):
        lines.append(f"picked among the {m['mask']['rows']} rows --mask allows "
                     f"({shown(m['mask']['path'])})")
    if m.get("radius") is not None:
        lines.append(radius_line(m["radius"], None if m.get("groups") else
                                 m["stats"].get("radius_reached")))
    if m.get("groups"):
        from .groups import summary_lines
        lines += summary_lines(m["groups"])
    lines.append(hmin_line(m))
    for what, path in m["outputs"].items():
        if path:
            note = (notes or {}).get(what)
            lines.append(f"wrote {what}: {shown(path)}" + (f" ({note})" if note else ""))
    return "\n".join(lines)
