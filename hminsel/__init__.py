"""hminsel: exact greedy farthest-point (max-min) selection.

    >>> import hminsel
    >>> sel = hminsel.select(x, 1000)          # indices, radii, hmin
    >>> res = hminsel.hmin(x)                  # exact closest pair
    >>> dist, idx = hminsel.nearest(x, centers)
    >>> x = hminsel.embed(texts)               # needs hminsel[embed]

Importing never needs a GPU, torch, Triton, CuPy or a compiler: backends are
loaded on first use, and ``hminsel.info()`` says which are available.
"""
from ._finite import NonfiniteRows
from ._version import __version__
from .api import hmin, info, nearest, select
from .batched import BatchedSelection, select_batched
from .io.embed import embed
from .results import HMin, Selection, Stats
from .threads import get_num_threads, num_threads, set_num_threads

__all__ = ["select", "embed", "select_batched", "BatchedSelection", "hmin", "nearest", "info", "Selection", "HMin", "Stats",
           "NonfiniteRows",
           "get_num_threads", "set_num_threads", "num_threads", "__version__"]
