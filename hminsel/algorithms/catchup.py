"""A cheaper catch-up for the deferred refresh: each row's owner guessed on a sketch, then Hamerly's test.

A deferred refresh (``deferred.Stale``) folds rows against every pick made
since their stamp, often a thousand picks or more. On clustered data most of
those rows lie in a cluster that got its first pick meanwhile: that pick
brings the row's value down, and every other pick is far. So:

1. **Guess.** Rows and picks are projected to ``SKETCH_DIM`` dimensions (a
   fixed Gaussian map: distances kept to about 1 / sqrt(SKETCH_DIM)); each
   row is folded exactly (the direct-form kernel) against the pick nearest
   it on the sketch (``block_min`` of the sketches). Its ``ub`` is still its
   value against its owner, now its own cluster's pick when it has one.
2. **Hamerly's test.** If every other pick is at least ``2 sqrt(ub)`` from
   the owner a, none can come nearer the row than a (the triangle
   inequality: ``|x - c| >= |a - c| - |x - a|``), so ``ub`` is the row's
   value against every pick. The bound on the pick-to-pick distances costs
   nothing: pick c's value is its distance to the nearest earlier pick, so
   any two picks are at least the later one's value apart, and the least
   value so far bounds them all (``_gap2``; less the ``slack`` of the pruned
   refresh, for rounding).
3. The rows the test leaves are folded against every pick since their stamp,
   as without the catch-up.

The value is that of a fold against every pick, by the same kernels: the
run keeps the streaming picks. Where the test settles few rows (unclustered
data, or clusters holding several picks: the picks are then as near each
other as the rows are to them) the catch-up costs a little more than the
plain fold; a ``ListPolicy`` then skips it for 1, 2, 4 .. 16 calls. Until
the test has settled a row, a call of many rows first runs the guess and the
test on a sample of them (``PROBE``) and hands the call to the plain fold when
the sample settles too few: on 10k MiniLM text embeddings (k = N/10) the
failed catch-ups had cost about 10% of the selection. (Probing every call
turned away calls that would have settled rows near the threshold: 200k x
768 in 2000 clusters, k = 10000, settled 83k rows instead of 116k.)
"""
from __future__ import annotations

import numpy as np

from .prune import ListPolicy

SKETCH_DIM = 32  # dimensions of the sketch the guesses are taken on
MIN_PICKS = 64  # fewer picks since a call's stamp: a plain fold (the guess would cost about as much)
MIN_DIM = 4 * SKETCH_DIM  # fewer dimensions: the sketch is not much cheaper than the rows (no catch-up)
SETTLED = 1 / 2  # the test settled fewer of a call's rows: the next calls skip the catch-up
CHUNK_BYTES = 64 << 20  # rows gathered at once: a refresh of many rows goes in chunks
PROBE = 64  # until a row is settled, a call of 4x this many rows first tries the test on this many


class Catchup:
    """The picks' sketch, the bound on their distances, and the policy that skips calls that do not pay."""

    def __init__(self, d: int, margin: float, values):
        rng = np.random.default_rng(0)
        self.proj = (rng.standard_normal((d, SKETCH_DIM)) / np.sqrt(SKETCH_DIM)).astype(np.float32)
        self.margin = margin
        self.sketch = np.empty((0, SKETCH_DIM), np.float32)
        self.values, self.seen, self.gap2 = values, 1, np.inf  # the picks' values; min of values[1:seen]
        self.lists = ListPolicy()
        self.calls = self.settled = 0  # catch-ups run, and the rows the test settled (for tests)

    def fold(self, backend, x, ub, owner, picked, picks, s: int, rows):
        """Fold ``picks[s:]`` into ``ub[rows]``/``owner[rows]``; the (row, pick) work it took, or None
        when a plain fold should run instead (nothing changed then).

        ``owner[rows]`` must hold each row's nearest pick among those its ``ub``
        was folded against (``ub`` its exact value): the test needs the pair.
        """
        if len(picks) - s < MIN_PICKS or self.lists.skip():
            return None
        if self.settled == 0 and len(rows) >= 4 * PROBE and not self._probe(backend, x, ub, owner, picked,
                                                                            picks, s, rows):
            self.lists.record(True)
            return None
        step = max(1, CHUNK_BYTES // (backend.acc_dtype(x.dtype).itemsize * x.shape[1]))  # gathered at once
        return sum(self._fold(backend, x, ub, owner, picked, picks, s, rows[lo:lo + step])
                   for lo in range(0, len(rows), step))

    def _fold(self, backend, x, ub, owner, picked, picks, s: int, rows) -> int:
        """``fold`` on rows few enough to gather."""
        now, n = len(picks), len(rows)
        xr = np.ascontiguousarray(backend.take(x, rows))
        u, o = ub[rows].copy(), owner[rows].copy()
        work = self._guess(backend, xr, u, o, picked, picks, s)
        rest = np.flatnonzero(self._gap2(now) <= 4.0 * u.astype(np.float64) * (1.0 + self.margin))
        self.calls, self.settled = self.calls + 1, self.settled + n - len(rest)
        self.lists.record(len(rest) > (1 - SETTLED) * n)
        if len(rest):
            value, index, first = picked.block_min(picks, s, rows[rest])
            better = value < u[rest]
            u[rest[better]] = value[better]
            o[rest[better]] = first + np.asarray(index, np.int64)[better]
            work += len(rest) * (now - first)
        ub[rows], owner[rows] = u, o
        return work

    def _probe(self, backend, x, ub, owner, picked, picks, s: int, rows) -> bool:
        """Whether the test settles at least ``SETTLED`` of ``PROBE`` rows spread over ``rows``
        (their guesses on copies: nothing is written)."""
        sample = rows[np.linspace(0, len(rows) - 1, PROBE).astype(np.int64)]
        u, o = ub[sample].copy(), owner[sample].copy()
        self._guess(backend, np.ascontiguousarray(backend.take(x, sample)), u, o, picked, picks, s)
        settled = np.count_nonzero(self._gap2(len(picks)) > 4.0 * u.astype(np.float64) * (1.0 + self.margin))
        return settled >= SETTLED * len(sample)

    def _guess(self, backend, xr, u, o, picked, picks, s: int) -> int:
        """Fold each row of ``xr`` against the pick nearest it on the sketch; the work."""
        now, n, d = len(picks), len(xr), xr.shape[1]
        sk = self._sketch(picked, picks)[s:]
        _, guess = backend.block_min(xr.astype(np.float32, copy=False) @ self.proj, sk)
        guess = np.asarray(guess, np.int64)
        cell = np.arange(n, dtype=np.int64)  # a cell a row, listing its guess
        centers = picked.rows_of(picks, slice(s, now))
        backend.refresh(xr, u, cell, centers, n, np.arange(n + 1, dtype=np.int64), guess, np.zeros(n),
                        self.margin)
        moved = cell >= n
        o[moved] = s + cell[moved] - n
        return n + n * (now - s + d) * SKETCH_DIM // d

    def _gap2(self, now: int) -> float:
        """A lower bound on the squared distance between any two of the first ``now`` picks.

        Pick c's value is its squared distance to the nearest earlier pick, so
        two picks are at least the later one's value apart, and the least
        value of picks 1 .. now - 1 bounds every pair. The values are the
        direct-form ones of the streaming step; less ``margin`` they are
        below the exact distances too.
        """
        if now > self.seen:
            self.gap2 = min(self.gap2, float(np.min(self.values[self.seen:now])))
            self.seen = now
        return self.gap2 * (1.0 - self.margin)

    def _sketch(self, picked, picks) -> np.ndarray:
        """The sketch of every pick so far (the new ones projected once)."""
        have, now = len(self.sketch), len(picks)
        if now > have:
            new = picked.rows_of(picks, slice(have, now)).astype(np.float32, copy=False) @ self.proj
            self.sketch = np.concatenate([self.sketch, new])
        return self.sketch
