"""Unit rows read in place: the cosine metric without a normalised copy of x.

``UnitRows(raw, norms)`` stands for the array ``raw / norms[:, None]`` (each
value divided in ``norms``' dtype) that ``_inputs.prepare`` would otherwise
build: float32 for float16/float32 ``raw``, float64 for float64. The cpu
backend's kernels read row i as ``raw[i] / norms[i]`` (csrc/cpu/rows.h), the
values of that copy to the last bit, so a cosine selection over embeddings
holds x once instead of twice.

It offers what the drivers do to a prepared array, and no more: ``len``,
``shape``, ``dtype`` (that of the unit rows) and slices of rows. The C++
bindings take it wherever they take x (``_cpu.read_rows`` gives rows of it
as an array).
"""
from __future__ import annotations

import numpy as np


class UnitRows:
    __slots__ = ("raw", "norms")
    ndim = 2

    def __init__(self, raw: np.ndarray, norms: np.ndarray):
        self.raw, self.norms = raw, norms

    @property
    def shape(self):
        return self.raw.shape

    @property
    def dtype(self):
        return self.norms.dtype

    def __len__(self):
        return len(self.raw)

    def __getitem__(self, rows):
        if not isinstance(rows, slice) or rows.step not in (None, 1):
            raise TypeError(f"UnitRows takes slices of rows only; got {rows!r} (take rows through the backend)")
        return UnitRows(self.raw[rows], self.norms[rows])

    def take(self, rows) -> "UnitRows":
        """Unit rows of the rows ``rows`` (int64 ids): a copy of those stored rows."""
        return UnitRows(np.ascontiguousarray(self.raw[rows]), np.ascontiguousarray(self.norms[rows]))

    def __repr__(self):
        return f"UnitRows({self.raw.dtype} {self.shape}, read as {self.dtype} unit rows)"
