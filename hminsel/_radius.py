"""Distances in the metric's units, and ``select``'s ``radius``: its check, the drivers'
floor and the final cut."""
from __future__ import annotations

import numbers

import numpy as np


def to_metric(sq, metric: str):
    """Squared L2 (of unit rows for cosine) -> the metric's units (L2, or 1 - cos)."""
    sq = np.maximum(np.asarray(sq, np.float64), 0.0)
    return np.sqrt(sq) if metric == "l2" else sq / 2.0


def check(radius):
    """None (exactly k picks), or a finite radius >= 0 as a float."""
    if radius is None:
        return None
    if getattr(radius, "ndim", None) == 0 and hasattr(radius, "item"):  # sel.radii[t] of a tensor
        radius = radius.item()
    if isinstance(radius, (bool, np.bool_)) or not isinstance(radius, numbers.Real):
        raise TypeError(f"radius must be a number >= 0 or None; got {radius!r}")
    value = float(radius)
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"radius must be finite and >= 0; got {radius!r}")
    return value


def floor(radius, metric: str):
    """The largest squared (unit-row) value whose distance in the metric's units is at most
    ``radius``: a driver value ``v <= floor`` exactly when ``to_metric(v) <= radius``, so
    the drivers stop at the pick that ``cut`` cuts at (a lattice whose spacing is the
    radius included). None for no radius."""
    if radius is None:
        return None
    with np.errstate(over="ignore", under="ignore"):  # radius 0: nextafter gives subnormals
        v = np.float64(radius) ** 2 if metric == "l2" else np.float64(2.0) * radius
        while to_metric(v, metric) > radius:
            v = np.nextafter(v, -np.inf)
        while v < np.inf and to_metric(np.nextafter(v, np.inf), metric) <= radius:
            v = np.nextafter(v, np.inf)
    return float(v)


def cut(picks, radii, radius: float, seeds: int):
    """The picks (and radii) before the first one past the seeds that lies within ``radius``."""
    near = np.flatnonzero(radii[seeds:] <= radius)
    end = seeds + int(near[0]) if len(near) else len(picks)
    return picks[:end], radii[:end]
