"""The primitives every backend implements, and what they promise.

Arrays handed to a backend are already validated and prepared by the public
API (`hminsel.api`): ``x`` is C-contiguous, 2-D, float32 or float64, finite
(or excluded through ``mind``), and for ``metric="cosine"`` its rows are unit
normalised. Distances inside the primitives are squared L2 in the direct form
``sum((a - b) ** 2)``, accumulated in the backend's ``acc_dtype``.

State conventions shared by all primitives:

- ``mind`` (N,) holds each point's current squared min-distance to the picks:
  ``+inf`` before any pick, ``MARK`` (= -1) once the point is selected or
  excluded. Every value a primitive writes is >= 0 or ``MARK``.
- "Best" means the largest value, ties to the lowest index.
- Primitives never allocate N x N and never touch the caller's arrays other
  than the ``mind`` / ``h`` working arrays they are documented to update.
"""
from __future__ import annotations

import abc

import numpy as np

MARK = -1.0  # min-distance of a selected or excluded point
PAIR_ROWS = 1 << 14  # pairs a block of the default pair_sqdist


class Backend(abc.ABC):
    """One implementation of the primitives (numpy, cpu, triton, cuda)."""

    name: str = "?"
    # False: the lazy driver folds every round through ``fold_all`` and never
    # builds pruning lists (a backend whose ``refresh`` would ignore them).
    prunes: bool = True
    # True: ``steps`` runs as one host call that Python cannot interrupt (the drivers end one
    # about every quarter second so that Ctrl-C works); a device backend queues its steps as
    # one launch (the persistent kernel), which chunks would break up.
    blocks_host: bool = True

    # -- availability -------------------------------------------------------
    @abc.abstractmethod
    def unavailable_reason(self) -> str | None:
        """None when the backend can run here, else one line saying why not."""

    def notes(self) -> str | None:
        """One line on how the backend will run here (``hminsel info``), or None."""
        return None

    def unsupported_reason(self, x) -> str | None:
        """None when this backend can take ``x`` (a prepared array), else why not."""
        if not isinstance(x, np.ndarray):
            return f"takes NumPy arrays, got {type(x).__name__}"
        return None

    def max_head_rows(self, x) -> int:
        """The largest head the lazy driver may grow to for ``x`` (GPUs: what fits in L2)."""
        from .lazy_host import M_MAX
        return M_MAX

    def acc_dtype(self, dtype) -> np.dtype:
        """Accumulation dtype for inputs of ``dtype`` (the dtype of ``mind``)."""
        return np.dtype(np.float64 if np.dtype(dtype) == np.float64 else np.float32)

    # -- array helpers: the drivers' only array calls on state --------------
    # The drivers are written once; each call they make on a state array that
    # is library-specific goes through one of these (NumPy here; the triton
    # backend keeps its state as torch tensors on the device).
    def full(self, x, value, dtype=None):
        """A (len(x),) state array filled with ``value`` (dtype: ``acc_dtype``)."""
        return np.full(len(x), value, dtype=dtype or self.acc_dtype(x.dtype))

    def index(self, idx, like=None):
        """Row indices ``idx`` as this backend's int64 index array (on ``like``'s device)."""
        return np.asarray(idx, np.int64)

    def take(self, x, idx):
        """The rows ``x[idx]`` as a new contiguous array."""
        return np.ascontiguousarray(x[self.index(idx, x)])

    def to_host(self, a) -> np.ndarray:
        """A NumPy view or copy of a state array."""
        return np.asarray(a)

    def argmax(self, values) -> tuple[int, float]:
        """``(index, value)`` of the largest entry, lowest index on ties."""
        best = int(np.argmax(values))  # MARK (-1) is below every live value
        return best, float(values[best])

    def head_and_tau(self, ub, m: int):
        """The lazy head: up to m live indices by ub desc (index asc) and the next key."""
        from .lazy_host import head_and_tau
        return head_and_tau(ub, m)

    def prune_lists(self, prev_rows, base: int, radius2, centers, margin: float):
        """The CSR pruning lists that ``refresh`` takes (see ``lazy_host.prune_lists``)."""
        from .lazy_host import prune_lists
        return prune_lists(prev_rows, base, radius2, centers, margin)

    # -- primitive 1: streaming step ----------------------------------------
    @abc.abstractmethod
    def step(self, x, mind, c: int) -> tuple[int, float]:
        """Fold center ``c`` into ``mind`` and return the next farthest point.

        Marks ``mind[c] = MARK``, sets ``mind[i] = min(mind[i], |x_i - x_c|^2)``
        for every unmarked ``i``, and returns ``(argmax, max)`` of ``mind``
        (lowest index on ties), or ``(-1, MARK)`` when every point is marked.
        """

    def fold(self, x, mind, c: int) -> None:
        """``step`` without its answer: mark ``c`` and fold it into ``mind``. Device backends
        queue it without a host read (the first picks' radii: no sync a row)."""
        self.step(x, mind, c)

    def steps(self, x, mind, c: int, count: int) -> tuple[np.ndarray, np.ndarray]:
        """``count`` chained steps from center ``c``: the picks and their values.

        Equivalent to calling ``step`` ``count`` times, each time on the pick of
        the previous one; once every point is marked the remaining slots are
        ``(-1, MARK)``. Backends override it to keep the loop in native code.
        """
        picks = np.full(count, -1, np.int64)
        values = np.full(count, MARK, np.float64)
        for t in range(count):
            c, v = self.step(x, mind, c)
            if c < 0:  # every point is marked: the rest stay (-1, MARK)
                break
            picks[t], values[t] = c, v
        return picks, values

    # -- primitive 2: blocked min --------------------------------------------
    @abc.abstractmethod
    def block_min(self, x, y, *, rows=None, self_mask: bool = False):
        """Exact nearest row of ``y`` for each row of ``x`` (or of ``x[rows]``).

        Returns ``(value, index)``: value (n,) in ``acc_dtype`` is the direct-form
        squared distance, computed exactly as ``step`` computes it (so results
        agree bit for bit with the streaming path); index (n,) int64 is the
        nearest row of ``y``, lowest index on ties. With ``self_mask`` (``y`` is
        ``x``), row ``i`` of ``x`` never matches itself. ``y`` must have at least
        one row (two with ``self_mask``). A fast backend may search candidates in
        the GEMM form, but must re-check in the direct form so the contract holds.
        """

    def pick_rows(self, x) -> "PickRows":
        """Block minima of rows of x against the picks made so far (``PickRows``)."""
        return PickRows(self, x)

    def closest_rows(self, x, progress=None):
        """``(value, nearest, rows)``: the exact nearest other row of each of ``rows``.

        ``rows`` (None: every row) must include both rows of every closest pair
        of ``x`` (len(x) >= 2); value/nearest as ``block_min(x, x, self_mask=True)``.
        This default takes every row; a backend may prove most rows irrelevant.
        ``progress``: None, or a callable(fraction of the work done) that a
        backend may call now and then (this default does not).
        """
        value, nearest = self.block_min(x, x, self_mask=True)
        return value, nearest, None

    def refresh(self, x, ub, owner, centers, base: int, ptr, cidx, cval, slack: float) -> int:
        """Fold ``centers`` into ``ub`` for every unmarked row, skipping proven no-ops.

        ``ub``/``owner`` (N,) are updated in place: ``ub[i]`` is the exact
        value against every pick so far and ``owner[i]`` the pick number that
        attains it. ``centers`` (m, d) are picks ``base .. base + m - 1``. The
        CSR ``ptr`` (base + 1,), ``cidx``, ``cval`` lists for each earlier pick
        ``a`` the centers ``c`` that may matter to its cell, with a lower bound
        ``cval`` on ``|x_a - x_c|^2``. Row ``i`` (owner ``a``, value ``u``) is
        compared with center ``c`` only if ``cval <= 4 u (1 + slack)``; by the
        triangle inequality (with ``slack`` covering rounding) every other
        center is strictly farther from the row than ``a``. A new minimum must
        be strictly smaller to move ``owner``. Returns the number of rows read.
        This default ignores the pruning lists: see ``fold_all``.
        """
        return self.fold_all(x, ub, owner, centers, base)

    def threads(self) -> int:
        """Threads for host work split in blocks (``_threads.map_tiles``)."""
        return 1

    def pair_sqdist(self, x, rows, y, cols) -> np.ndarray:
        """``out[r] = |x[rows[r]] - y[cols[r]]|^2`` in the direct form, in ``acc_dtype`` (the
        pruning lists' pairs, ``algorithms.pivots``; within gamma_(d+2) of the exact value)."""
        acc = self.acc_dtype(x.dtype)
        out = np.empty(len(rows), acc)
        for lo in range(0, len(rows), PAIR_ROWS):
            diff = self.take(x, rows[lo:lo + PAIR_ROWS]).astype(acc) - np.asarray(y)[cols[lo:lo + PAIR_ROWS]]
            out[lo:lo + PAIR_ROWS] = np.einsum("ij,ij->i", diff, diff)
        return out

    def fold_all(self, x, ub, owner, centers, base: int) -> int:
        """``refresh`` without pruning: every unmarked row against every center.

        Goes through ``block_min`` (the GEMM path where a backend has one; on
        the live rows only when many are marked); the reference the pruned
        kernels are tested against. Returns the rows read.
        """
        live = self.live_rows(ub)
        if len(live) == 0:
            return 0
        if 4 * len(live) >= 3 * len(x):  # most rows: one pass over all of x
            value, index = self.block_min(x, centers)
            better = (ub != MARK) & (value < ub)
            ub[better] = value[better]
            owner[better] = base + index[better]
            return len(x)
        value, index = self.block_min(x, centers, rows=live)
        better = value < ub[live]
        ub[live[better]] = value[better]
        owner[live[better]] = base + index[better]
        return len(live)

    def live_rows(self, ub):
        """Indices of the rows not marked (picked or excluded), in ub's array library."""
        return np.flatnonzero(ub != MARK)

    def cell_radius(self, ub, owner, base: int) -> np.ndarray:
        """Largest live ``ub`` per owner in ``[0, base)`` (float64, 0 for empty cells)."""
        live = ub != MARK
        radius2 = np.zeros(base)
        np.maximum.at(radius2, owner[live], ub[live])
        return radius2

    # -- bucket FPS in low d (algorithms/bucket.py) -------------------------
    def bucket_reason(self, x) -> str | None:
        """None when this backend has a bucket FPS kernel for ``x``, else why not."""
        return f"the {self.name} backend has no bucket FPS kernel"

    bucket_floor = False  # whether bucket_select ends at its floor

    def bucket_select(self, x, mind, seeds, k: int, floor=None):
        """Exact bucket FPS: the streaming sequence from ``seeds`` (k picks in all).

        ``mind`` (N,) is the starting state (+inf, or ``MARK`` for rows left
        out; read only). Returns ``(picks (k,) int64, values (k,) float64)``,
        values squared distances with ``values[0] = inf``, exactly as
        ``streaming`` returns them. Only called when ``bucket_reason`` is None.
        ``floor`` (a squared value, or None): where ``bucket_floor`` is True the
        run ends before the first pick past the seeds whose value is at most it,
        and fewer than k come back; other backends ignore it.
        """
        raise NotImplementedError(self.bucket_reason(x))

    # -- primitive 3: head loop -----------------------------------------------
    @abc.abstractmethod
    def head_greedy(self, xh, h, hidx, tau: float, tau_idx: int, budget: int):
        """Greedy FPS steps on a small candidate set while they are provably global.

        ``xh`` (M, d) contiguous head rows; ``h`` (M,) their exact current
        values (``acc_dtype``, updated in place); ``hidx`` (M,) int64 global
        indices. ``(tau, tau_idx)`` is the key of the best point outside the
        head (``tau = -inf`` if none). Repeats up to ``budget`` times: take the
        best head point by ``(h, -hidx)``; stop unless its key beats
        ``(tau, -tau_idx)`` and its value is not ``MARK``; else accept it, mark
        it and fold its row into ``h``. Returns the accepted head positions
        (int64) and their values (float64), in order.
        """

    def head_rows_tiled(self, x) -> int:
        """The largest head ``head_greedy_tiled`` takes for ``x``; 0: this backend has none."""
        return 0

    def head_greedy_tiled(self, xh, h, hidx, tau: float, tau_idx: int, budget: int, own):
        """``head_greedy`` on precomputed pairwise tiles of the head (k a large share of N).

        The same contract and the same result as ``head_greedy``; in addition
        ``own`` (M,) int64 gets, for each head row whose value a pick lowered,
        the number of the last such pick (0 for the first accepted), so the
        driver can take the head's values as refreshed. Rows not lowered keep
        their ``own`` entry. A backend offers it where ``head_rows_tiled`` > 0.
        """
        raise NotImplementedError(f"the {self.name} backend has no tiled head loop")

    def scratch(self):
        """Working memory that the rounds of one run may reuse, freed when the returned object is.

        A driver holds the result for the length of a run (``None`` here: no
        reuse). Reuse spares the page faults of a fresh (M, M) tile a round.
        """
        return None


class PickRows:
    """``block_min`` of rows of x against ``picks[s:]``, for the deferred refreshes.

    The picks only grow, and a refresh folds rows against the picks since
    their stamp: call after call against the same rows of x. This form
    gathers them each call; a backend may keep them gathered (and laid out for
    its GEMM) from one call to the next (``CpuBackend``).
    """

    def __init__(self, backend, x):
        self.backend, self.x = backend, x

    def block_min(self, picks, s: int, rows):
        """``(value, index, first)``: ``block_min`` of ``x[rows]`` against ``picks[first:]``.

        ``first <= s``: a form that keeps the picks may fold a few picks before
        ``s`` too (the rows have seen them: their values cannot fall below the
        rows' bounds); ``index`` counts from ``first``.
        """
        y = self.backend.take(self.x, picks[s:])
        value, index = self.backend.block_min(self.x, y, rows=rows)
        return value, index, s

    def rows_of(self, picks, which):
        """The rows of ``picks[which]`` (``which``: pick numbers or a slice), as ``take`` gives them."""
        return self.backend.take(self.x, np.asarray(picks, np.int64)[which])


def best_key_beats(value: float, index: int, tau: float, tau_idx: int) -> bool:
    """Packed-key order: larger value wins, then the lower index."""
    return value > tau or (value == tau and index < tau_idx)
