"""What ``python -m hminsel.distributed select`` says of a selection: the manifest keys of one
process's ``hminsel select`` (the radii, the rows ``--nonfinite skip`` left out, the random
baseline and h_min over it), each measured over the ranks.

Every rank calls these in the same order (they run collectives); rank 0 writes what they
return. An h_min is that of rows spread over the shards (``spread_hmin``): no rank gathers
the picks or the random subset, which may be millions of rows.
"""
from __future__ import annotations

import dataclasses
import platform
import time

import numpy as np

from .._finite import finite_rows
from ..distributed._comm import Comm
from ..distributed.pairs import hmin
from ..distributed.together import _global_rows
from .groups import baseline_rows, manifest_entry, random_hmin_by_label
from .report import RANDOM_METHOD, finite, radii_summary, ratio


def kept_rows(shard, offset: int, total: int, nonfinite: str):
    """(total,) bools: the rows ``--nonfinite skip`` keeps, from each rank's scan of its own
    rows (one all_reduce of ``total`` bytes); None with ``raise`` or when every row is finite."""
    if nonfinite != "skip":
        return None
    local = finite_rows(shard)
    kept = _global_rows(Comm(), np.ones(len(shard), bool) if local is None else local, offset, total)
    return None if kept.all() else kept


def spread_hmin(rows, shard, offset: int, metric: str, backend: str) -> float:
    """h_min of the global ``rows`` of all ranks' shards (this rank's: ``shard``, from
    ``offset``): each rank takes those it holds, ``hminsel.distributed.hmin`` their closest pair."""
    rows = np.sort(np.asarray(rows, np.int64))
    lo, hi = np.searchsorted(rows, [offset, offset + len(shard)])
    mine = np.asarray(shard[rows[lo:hi] - offset])
    return float(hmin(mine, metric=metric, backend=backend).value)


def outcome(sel, shard, offset: int, metric: str, backend: str, labels=None, source=None) -> dict:
    """The picks and their h_min (of all of them, with labels: ``spread_hmin``), the radii, and
    the stats of a selection (``hminsel.distributed.select``), or of a per-label one
    (``select_batched`` on ``labels``, all ranks' (N,), from ``source``): the manifest's
    ``groups``, each label's rows, picks and h_min (from its radii; with --radius its cap and
    whether the radius ended it), as one process's."""
    indices = np.asarray(sel.indices, np.int64)
    got = {"indices": indices, "radii": radii_summary(np.asarray(sel.radii, np.float64))}
    if labels is None:
        stats = dataclasses.asdict(sel.stats)
        stats["picks_per_round"] = [int(v) for v in stats["picks_per_round"]]
        return {**got, "h_min": float(sel.hmin), "rounds": sel.stats.rounds,
                "collectives": sel.stats.collectives, "groups": None,
                "radius_reached": sel.stats.radius_reached, "stats": stats}
    h_min = spread_hmin(indices, shard, offset, metric, backend) if len(indices) > 1 else float("inf")
    entry = manifest_entry(source, sel, labels)
    return {**got, "h_min": h_min, "rounds": None, "collectives": None, "groups": entry,
            "radius_reached": None, "stats": {"labels": len(entry["labels"])}}


def baseline(sel, shard, offset: int, *, total: int, seed, mask, init, labels, kept,
             metric: str, backend: str) -> tuple[dict, np.ndarray]:
    """``(random_baseline, rows)``: h_min of a seeded random subset of as many rows as ``sel``
    picked (of each label, with ``labels``), drawn as one process's ``hminsel select`` draws
    it (the same rows for the same seed), from the rows the selection could pick."""
    t0 = time.perf_counter()
    rows = baseline_rows(total, sel, seed, mask, init, labels, kept)
    value = spread_hmin(rows, shard, offset, metric, backend) if len(rows) > 1 else float("inf")
    return {"statistic": f"h_min of one random subset (seed {seed})", "seed": seed,
            "size": int(len(rows)), "h_min": finite(value), "method": RANDOM_METHOD,
            "seconds": time.perf_counter() - t0}, rows


def label_baselines(got: dict, x, rows, labels, metric: str, backend: str) -> None:
    """Rank 0, once the baseline ran: each label's ``random_h_min`` in ``got``'s groups, the
    h_min of its random ``rows``, read from the inputs ``x`` (as one process's manifest has it)."""
    rows = np.asarray(rows, np.int64)  # read once (each input that holds some, once)
    per = random_hmin_by_label(x.take(rows), np.arange(len(rows)), labels[rows], metric, backend)
    for entry in got["groups"]["labels"]:
        entry["random_h_min"] = per.get(entry["label"])


def manifest_part(got: dict, base: dict | None, skipped: dict | None) -> dict:
    """The manifest's keys that one process's ``hminsel select`` writes from these: versions,
    start_index, radii, nonfinite_skipped (``report.skipped_entry``), random_baseline,
    h_min_over_random, stats."""
    h = finite(got["h_min"])
    return {"python": platform.python_version(), "numpy": np.__version__,
            "start_index": int(got["indices"][0]) if len(got["indices"]) else None,
            "nonfinite_skipped": skipped, "radii": got["radii"],
            "random_baseline": base,
            "h_min_over_random": ratio(h, base and base["h_min"]),
            "h_min_over_random_is": "h_min / random_baseline.h_min (see random_baseline.statistic)",
            "stats": got["stats"]}
