"""The picks' rows kept from one deferred refresh to the next (the cpu backend's ``PickRows``).

A deferred refresh (``algorithms.deferred``) folds rows against the picks
since their stamp, call after call, as the picks grow. Gathering those picks
(``take``: for float16 or unit rows, read as the kernels read them) and
packing them for the fused GEMM (``pack_panels``) each call cost a quarter of
a call's time on the 100k x 384 Gaussian rows of a k = N/10 run. Here each
pick is gathered and packed once, its panel on one fixed centre (any centre
is exact: the bounds use the norms of the rows centred on it).

The kept rows and panels take 2 k d floats at most, so they are kept only up
to ``KEEP_BYTES``; past it a call gathers as ``base.PickRows`` does.
"""
from __future__ import annotations

import numpy as np

from . import cpu_gemm
from .base import PickRows

KEEP_BYTES = 256 << 20  # kept rows and panels together
PANEL = cpu_gemm.PANEL


class CpuPickRows(PickRows):
    """``PickRows`` with the picks gathered once and, for the fused GEMM, packed once."""

    def __init__(self, backend, x, cpu):
        super().__init__(backend, x)
        self.cpu, self.d = cpu, x.shape[1]
        self.acc = cpu_gemm.acc_dtype(x)
        self.fused = cpu_gemm.fused(cpu, x)
        self.mu = cpu_gemm.centre(cpu, x) if self.fused else None
        self.n = 0  # picks kept
        self.rows = np.empty((0, self.d), self.acc)
        self.panels = np.empty(0, np.float32)
        self.norms = np.empty(0, np.float32)

    def _keep(self, picks) -> bool:
        """Keep ``picks`` (the first n are kept already); False when they would pass KEEP_BYTES."""
        now = len(picks)
        if now <= self.n:
            return True
        per_row = self.d * self.acc.itemsize * (2 if self.fused else 1)
        if (now + PANEL) * per_row > KEEP_BYTES:
            return False
        if now > len(self.rows):  # doubling: each pick moves O(1) times
            cap = max(now, 2 * len(self.rows), 256)
            rows = np.empty((cap, self.d), self.acc)
            rows[:self.n] = self.rows[:self.n]
            self.rows = rows
            if self.fused:
                panels = np.empty(-(-cap // PANEL) * PANEL * self.d, np.float32)
                panels[:len(self.panels)] = self.panels
                norms = np.empty(cap, np.float32)
                norms[:self.n] = self.norms[:self.n]
                self.panels, self.norms = panels, norms
        self.rows[self.n:now] = self.backend.take(self.x, np.asarray(picks[self.n:now], np.int64))
        if self.fused:  # from the panel holding the first new pick: a part-filled panel is packed again
            lo = self.n // PANEL * PANEL
            self.panels[lo * self.d:-(-now // PANEL) * PANEL * self.d] = self.cpu.pack_panels(
                self.rows, lo, now, self.mu, self.norms[lo:now])
        self.n = now
        return True

    def block_min(self, picks, s: int, rows):
        if not self._keep(picks):
            return super().block_min(picks, s, rows)
        now = len(picks)
        first = s // PANEL * PANEL
        if not self.fused or (s - first) * 4 > now - s:  # few picks: not worth a panel's padding
            value, index = self.backend.block_min(self.x, self.rows[s:now], rows=rows)
            return value, index, s
        packed = (self.mu, self.panels[first * self.d:-(-now // PANEL) * PANEL * self.d],
                  self.norms[first:now])
        value, index = self.backend.block_min(self.x, self.rows[first:now], rows=rows, packed=packed)
        return value, index, first

    def rows_of(self, picks, which):
        if not self._keep(picks):
            return super().rows_of(picks, which)
        return self.rows[which]
