"""Result objects of the public functions."""
from __future__ import annotations

import dataclasses
from typing import Any


@dataclasses.dataclass(frozen=True)
class Stats:
    """Work a selection did, so users and benchmarks can see what was saved.

    ``passes`` counts full passes over ``x`` (a streaming step is one; a lazy
    refresh that touches every row is one, a pruned refresh counts the fraction
    of rows it read). ``rounds`` and ``picks_per_round`` describe the exact lazy
    algorithm; a streaming run has ``rounds == 0``. ``collectives`` counts the
    torch.distributed collectives of a distributed selection. ``radius_reached`` is
    True when ``select``'s ``radius`` ended the run before ``k`` picks.
    """

    passes: float = 0.0
    rounds: int = 0
    picks_per_round: tuple = ()
    head_size: int = 0
    seconds: float = 0.0
    collectives: int = 0
    radius_reached: bool = False


@dataclasses.dataclass(frozen=True, eq=False)  # arrays inside: equal and hashed as objects
class Selection:
    """What ``hminsel.select`` returns.

    Attributes:
        indices: (k,) int64 row indices in selection order, in the caller's
            array library (NumPy array, or a torch tensor for torch input);
            fewer than k where ``select``'s ``radius`` ended the run.
        radii: (k,) distance of each pick to the picks before it, in the
            metric's units; ``radii[0] = inf``. Non-increasing (with ``init``:
            from the first greedy pick on; the init rows' radii are their
            distances to the init rows before them, whatever they are).
        hmin: ``min(radii)`` as a float (``radii[-1]`` without ``init``): the
            smallest pairwise distance in the subset (``inf`` when k == 1).
        metric, backend, algorithm: what ran.
        stats: the work done (see ``Stats``).
    """

    indices: Any
    radii: Any
    metric: str
    backend: str
    algorithm: str
    stats: Stats

    @property
    def hmin(self) -> float:
        return float(self.radii.min())  # radii[-1] but where init rows lie closer than later picks

    def __len__(self) -> int:
        return len(self.indices)


@dataclasses.dataclass(frozen=True)
class HMin:
    """What ``hminsel.hmin`` returns: the closest pair of rows, exactly.

    Attributes:
        value: their distance in the metric's units (``inf``, with ``i = j = -1``, for one row).
        i, j: the pair, ``i < j``; among equal pairs the lowest ``(i, j)``.
        metric, backend: what ran.
    """

    value: float
    i: int
    j: int
    metric: str
    backend: str

    def __iter__(self):
        return iter((self.value, self.i, self.j))

    def __getitem__(self, item):  # value, i, j = res works, and so does res[0]
        return (self.value, self.i, self.j)[item]

    def __len__(self) -> int:
        return 3
