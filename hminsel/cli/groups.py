"""``hminsel select ... --groups LABELS``: per-label quotas, one selection per label.

``--k`` picks that many rows of every label (a label with fewer is an error
that names it) and ``--fraction`` that share of each label's rows; ``--mask``
and ``--nonfinite skip`` leave rows out as they do without labels, and a label
that holds ``--init`` rows continues from them (they count toward its quota). The picks
are ``hminsel.select_batched(x, k, groups=labels)``: label by label (in sorted
label order), each in selection order and exactly ``hminsel.select`` on that
label's rows. The manifest's h_min is that of the whole subset (one exact
``hminsel.hmin`` over the picks, the cost of the random baseline's), each
label's own h_min is listed under ``groups``, and the random baseline draws as
many rows from each label as the selection took. With ``--radius`` each label's
picks end at the radius or at its quota (``select_batched``'s ``radius``).
"""
from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from .._picks import both
from .._labels import label_vector
from ..io import load_labels
from ..io.records import RECORD_SUFFIXES, labels_of
from ..io.shards import expand_inputs
from ..io.table_subset import is_table, table_columns
from .report import UserError, finite, used_seed

ALGORITHM = "per label (select_batched)"


@dataclasses.dataclass(frozen=True)
class ByLabel:
    """A per-label selection, with the fields of ``hminsel.Selection`` the manifest reads.

    Attributes:
        indices: (k,) int64 rows of x, label by label, each in selection order.
        radii: (k,) each label's radii (``inf`` at its first pick).
        hmin: the smallest distance between two picks, over the whole subset.
        labels: the sorted labels; ``ptr`` (L + 1,): label l's picks are
            ``indices[ptr[l]:ptr[l + 1]]``.
        stats: what ran (``labels``, ``hmin_seconds``).
        caps: with --radius, each label's most picks (--k, --fraction or its rows): fewer
            picks mean the radius ended it; else None.
    """

    indices: np.ndarray
    radii: np.ndarray
    hmin: float
    labels: np.ndarray
    ptr: np.ndarray
    metric: str
    backend: str
    stats: dict
    algorithm: str = ALGORITHM
    caps: np.ndarray | None = None


def labels_source(args) -> dict | None:
    """Where the labels come from: ``{"path"}`` (--groups), ``{"path", "column"}``
    (--groups-column: of the --embed records, else the column of a table input that has it,
    else the field of the --data records; several files: a list of paths)."""
    if args.groups is not None:
        return {"path": os.path.abspath(args.groups)}
    if args.groups_column is None:
        return None
    if getattr(args, "embed", None):  # the data INPUT's records (hminsel select --embed)
        return {"path": _one_or_list(expand_inputs(args.inputs, RECORD_SUFFIXES, "data files")),
                "column": args.groups_column}
    inputs = expand_inputs(args.inputs)
    if _table_input(args) and (not args.data or all(  # else the --data records' field
            args.groups_column in table_columns(p, args.split) for p in inputs)):
        return {"path": _one_or_list(inputs), "column": args.groups_column}
    if args.data:
        return {"path": _one_or_list(expand_inputs(args.data, RECORD_SUFFIXES, "data files")),
                "column": args.groups_column}
    raise UserError("--groups-column names a column of a parquet, Arrow or Hugging Face dataset "
                    "input, or a field of the --data (or --embed) records; for this input pass "
                    "--groups LABELS.npy")


def _table_input(args) -> bool:
    """Whether the INPUTs are tables whose columns can hold labels (not --embed's data)."""
    return not getattr(args, "embed", None) and all(is_table(p) for p in expand_inputs(args.inputs))


def _one_or_list(paths):
    """Absolute paths: one as a string, several as a list (as the manifest records them)."""
    paths = [os.path.abspath(p) for p in paths]
    return paths[0] if len(paths) == 1 else paths


def load(args, source: dict | None, n: int):
    """The labels (one a row of x) from ``labels_source``, or None; errors name the file."""
    if source is None:
        return None
    if "column" not in source:
        return label_vector(load_labels(source["path"], n))
    paths = [source["path"]] if isinstance(source["path"], str) else source["path"]
    split = None  # --split is the table INPUT's (not --data's, nor --embed's data)
    if _table_input(args) and [os.path.abspath(p) for p in expand_inputs(args.inputs)] == paths:
        split = args.split
    labels = labels_of(paths, source["column"], split)
    if len(labels) != n:
        where = paths[0] if len(paths) == 1 else f"the {len(paths)} files"
        raise UserError(f"{where}: {len(labels)} labels in {source['column']!r}, but x has "
                        f"{n} rows; expected one label a row")
    return label_vector(labels)  # as select_batched reads groups: int64 or text


def select_by_label(x, k, labels, *, start, seed, mask, metric, backend, nonfinite,
                    init=None, radius=None, progress=False) -> ByLabel:
    """``select_batched(x, k, groups=labels)`` and the exact h_min of all its picks; with a
    radius each label's cap too. ``progress``: select_batched's (a bar of the picks)."""
    import hminsel
    try:
        res = hminsel.select_batched(x, k, groups=labels, start=start, seed=seed, mask=mask,
                                     metric=metric, backend=backend, nonfinite=nonfinite, init=init,
                                     radius=radius, progress=progress)
    except ValueError as exc:
        _init_hint(exc, init)
    indices = np.asarray(res.indices, np.int64)
    if len(indices) == 0:
        raise UserError("no label has a row to pick: --mask (or --nonfinite skip) left none")
    t0 = time.perf_counter()
    whole = hminsel.hmin(np.asarray(x[np.sort(indices)]), metric=metric, backend=backend)
    return ByLabel(indices=indices, radii=np.asarray(res.radii, np.float64), hmin=whole.value,
                   labels=np.asarray(res.labels), ptr=np.asarray(res.ptr, np.int64),
                   metric=res.metric, backend=res.backend,
                   stats={"labels": len(res.labels), "hmin_seconds": time.perf_counter() - t0},
                   caps=res.caps)


def random_rows_by_label(sel: ByLabel, labels, seed, kept=None, allowed=None,
                         keep=None):
    """Sorted rows of a seeded random subset holding as many rows of each label as ``sel``,
    label by label, from the rows ``kept`` (the finite ones with --nonfinite skip) and
    ``allowed`` (--mask's): (N,) bools, None for every row. ``keep`` (the --init rows, which
    the selection holds too) are in it, and count toward their label's rows."""
    rng = np.random.default_rng(seed)
    pool = both(kept, allowed)
    pool = np.ones(len(labels), bool) if pool is None else pool.copy()
    keep = np.zeros(0, np.int64) if keep is None else np.asarray(keep, np.int64)
    pool[keep] = False
    rows = np.flatnonzero(pool)
    rows = rows[np.argsort(labels[rows], kind="stable")]  # grouped by label, in sorted label order
    ends = np.searchsorted(labels[rows], sel.labels, side="right")
    held = dict(zip(*np.unique(labels[keep], return_counts=True)))
    drawn = [keep]
    for lab, lo, hi, count in zip(sel.labels.tolist(), np.r_[0, ends[:-1]], ends, np.diff(sel.ptr)):
        size = min(int(count) - int(held.get(lab, 0)), hi - lo)
        drawn.append(rows[lo:hi][rng.choice(hi - lo, size=size, replace=False)])
    return np.sort(np.concatenate(drawn)).astype(np.int64)


def random_hmin_by_label(x, rows, labels, metric: str, backend: str) -> dict:
    """h_min of the random baseline's rows of each label: ``{label: h_min or None}``."""
    import hminsel
    out = {}
    for lab in np.unique(labels[rows]).tolist():
        part = rows[labels[rows] == lab]
        out[lab] = finite(hminsel.hmin(np.asarray(x[part]), metric=metric, backend=backend).value)
    return out


def manifest_entry(source: dict, sel: ByLabel, labels, random_hmin=None) -> dict:
    """The manifest's ``groups``: where the labels came from (``labels_source``) and, per label,
    its rows, picks and h_min (and the h_min of its random rows, ``random_hmin_by_label``,
    when the baseline ran; with --radius its cap and whether the radius ended it)."""
    rows = dict(zip(*np.unique(labels, return_counts=True)))
    per = []
    for t, (lab, lo, hi) in enumerate(zip(sel.labels.tolist(), sel.ptr[:-1].tolist(), sel.ptr[1:].tolist())):
        entry = {"label": lab, "rows": int(rows.get(lab, 0)), "picks": hi - lo,
                 "h_min": finite(sel.radii[lo + 1:hi].min()) if hi - lo > 1 else None}
        if sel.caps is not None:  # --radius: the label's cap, and whether the radius came first
            cap = int(sel.caps[t])
            entry.update(cap=cap, radius_reached=hi - lo < cap)
        if random_hmin is not None:
            entry["random_h_min"] = random_hmin.get(lab)
        per.append(entry)
    return {**source, "labels": per}


def summary_lines(entry: dict, most: int = 8) -> list[str]:
    """A line a label (the first ``most``): its picks and h_min, and its random rows' h_min."""
    per = entry["labels"]
    rand = all("random_h_min" in g for g in per)
    lines = [f"per label ({len(per)} labels): picks of rows, h_min"
             + (" (of as many random rows)" if rand else "")]
    width = max(len(str(g["label"])) for g in per[:most]) if per else 0

    def h(v):
        return "-" if v is None else f"{v:.4g}"
    for g in per[:most]:
        lines.append(f"  {str(g['label']):{width}s}  {g['picks']} of {g['rows']}, h_min {h(g['h_min'])}"
                     + (f" ({h(g['random_h_min'])})" if rand else "")
                     + ("; at --radius" if g.get("radius_reached") else ""))
    if len(per) > most:
        lines.append(f"  ... {len(per) - most} more labels in the manifest")
    return lines


def _init_hint(exc: ValueError, init) -> None:
    """Raise ``exc``, with the way out where a label holds more --init rows than its quota."""
    if init is None or "init rows but k asks for" not in str(exc):
        raise exc
    raise UserError(f"{exc}: raise --k or --fraction, or hold fewer --init rows of that "
                    "label") from None


def size_of(args):
    """The selection's k: --k, --fraction, or every row (1.0) when --radius alone ends it."""
    if args.k is not None:
        return args.k
    return args.fraction if args.fraction is not None else 1.0


def check_k(args, start, init, mask, labels, n: int) -> None:
    """What the selection checks of k, the start, --init and each label's quota, against n
    rows before the rows exist (--embed: before the model runs); the selection's own errors."""
    from .._picks import resolve_mask, resolve_picks
    from .._problems import layout
    k = size_of(args)
    seed = used_seed(args, start) if start == "random" else None
    if labels is None:
        resolve_picks(k, start, seed, init, n, None, resolve_mask(mask, n), cap=args.radius is not None)
        return
    try:
        layout(n, k, None, None, start, seed, labels, mask, None, init, cap=args.radius is not None)
    except ValueError as exc:
        _init_hint(exc, init)


def run_select(args, x, start, init, mask, labels):
    """The command's selection: ``hminsel.select``, or one a label with ``labels`` (--groups)."""
    import hminsel
    k = size_of(args)
    seed = used_seed(args, start) if start == "random" else None  # the seed the manifest records
    if labels is None:
        return hminsel.select(x, k, metric=args.metric, start=start, seed=seed, init=init,
                              mask=mask, backend=args.backend, algorithm=args.algorithm,
                              progress=not args.no_progress, nonfinite=args.nonfinite,
                              radius=args.radius)
    if args.algorithm != "auto":
        raise UserError(f"--algorithm {args.algorithm} with --groups: each label runs what "
                        "select_batched picks for its size; drop --algorithm")
    return select_by_label(x, k, labels, start=start, seed=seed, mask=mask, metric=args.metric,
                           backend=args.backend, nonfinite=args.nonfinite, init=init,
                           radius=args.radius, progress=not args.no_progress)


def baseline_rows(n: int, sel, seed, mask, init, labels, kept=None):
    """The random baseline's rows of ``n``: as many as ``sel`` picked (of each label, with ``labels``),
    from the rows it could pick (``kept``: those --nonfinite skip keeps, ``report.finite_mask``;
    ``mask``: --mask's), holding the --init rows."""
    from .report import random_rows
    if labels is None:
        return random_rows(n, len(sel.indices), seed, kept, mask, init)
    return random_rows_by_label(sel, labels, seed, kept, mask, init)
