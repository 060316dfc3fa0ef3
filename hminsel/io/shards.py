"""Embeddings kept in several files (shards), read as the rows of one matrix.

Embedding jobs write shards: ``emb-00000.npy``, ``emb-00001.npy``, ... or a
folder of parquet files. ``open_inputs`` takes one path or several, or a folder
of such files, and gives their rows one after another, in the order given (a
folder's files in sorted name order, as a shell glob sorts them): global row
``i`` is row ``i - offsets[f]`` of input ``f``. It checks that every input has
the same width and dtype before any rows are read: a ``.npy`` shard through its
header (memory-mapped), a parquet shard through its metadata and first row;
other formats are read whole.

``Inputs.rows(lo, hi)`` reads only the shards that hold those rows (a rank of
``hminsel.distributed`` reads its own), and ``Inputs.load()`` the whole
matrix: one array in memory when there are several shards, refused up front
when it would not fit in the memory this machine has free.
"""
from __future__ import annotations

import os

import numpy as np

from .errors import LoadError
from .loaders import SUFFIXES, _check_matrix, _is_dataset, _load_npy, load_embeddings

__all__ = ["Inputs", "open_inputs", "expand_inputs"]


def expand_inputs(paths) -> list[str]:
    """The input files of ``paths`` (one path or several): a folder that is not a Hugging Face
    dataset stands for its embedding files (of one extension, sorted by name)."""
    paths = [os.fspath(paths)] if isinstance(paths, (str, os.PathLike)) else [os.fspath(p) for p in paths]
    if not paths:
        raise LoadError("no input given; expected one embeddings file or more")
    out = []
    for path in paths:
        if not os.path.exists(path):
            raise FileNotFoundError(f"no such file or directory: {path}")
        out.extend(_folder(path) if os.path.isdir(path) and not _is_dataset(path) else [path])
    seen = {}
    for path in out:
        real = os.path.realpath(path)
        if real in seen:
            also = "" if seen[real] == path else f" (also as {seen[real]})"
            raise LoadError(f"{path} is given twice{also}; each input once")
        seen[real] = path
    return out


def _folder(path) -> list[str]:
    names = sorted(n for n in os.listdir(path) if os.path.isfile(os.path.join(path, n))
                   and os.path.splitext(n)[1].lower() in SUFFIXES and not n.startswith("."))
    kinds = sorted({os.path.splitext(n)[1].lower() for n in names})
    if not names:
        raise LoadError(f"{path}: is a directory that is neither a Hugging Face dataset saved with "
                        f"save_to_disk (no state.json or dataset_dict.json in it) nor a folder of "
                        f"embedding files ({', '.join(SUFFIXES)})")
    if len(kinds) > 1:
        raise LoadError(f"{path}: holds embedding files of {len(kinds)} kinds "
                        f"({', '.join(kinds)}); expected shards of one format: pass the files")
    return [os.path.join(path, n) for n in names]


class Inputs:
    """The rows of several embedding files, one after another.

    Attributes:
        paths: the input files, in row order.
        offsets: (len(paths) + 1,) int64; input ``f`` holds global rows
            ``offsets[f]:offsets[f + 1]``.
        shape: ``(N, d)`` of all rows together; ``dtype`` their dtype.
    """

    def __init__(self, paths, *, key=None, column=None, split=None):
        self.paths = expand_inputs(paths)
        self._options = {"key": key, "column": column, "split": split}
        self._arrays = {}  # input -> its (N_f, d) array, once read
        heads = [self._head(f) for f in range(len(self.paths))]
        first = heads[0]
        for path, (_, d, dtype) in zip(self.paths[1:], heads[1:]):
            if d is not None and first[1] is not None and d != first[1]:
                raise LoadError(f"{path}: rows of {d} values, but {self.paths[0]} has rows of "
                                f"{first[1]}; every input must hold rows of the same width")
            if dtype != first[2]:
                raise LoadError(f"{path}: holds {dtype}, but {self.paths[0]} holds {first[2]}; "
                                "every input must have one dtype (convert the odd ones)")
        self.offsets = np.concatenate([[0], np.cumsum([h[0] for h in heads])]).astype(np.int64)
        self._d = first[1]
        self.dtype = np.dtype(first[2])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def shape(self) -> tuple[int, int]:
        if self._d is None:  # parquet lists of a length only the data says
            self._d = self._array(0).shape[1]
        return len(self), int(self._d)

    def _head(self, f):
        """(rows, d or None, dtype) of input ``f``, from its header where the format has one."""
        path = self.paths[f]
        ext = os.path.splitext(path)[1].lower()
        if ext == ".npy" and not any(self._options.values()):
            x = _check_matrix(_load_npy(path, True), path)
            self._arrays[f] = x
            return x.shape[0], x.shape[1], x.dtype
        if ext == ".parquet" and not self._options["key"] and not self._options["split"]:
            from .tables import parquet_head
            rows, d, dtype = parquet_head(path, self._options["column"])
            if dtype.kind not in "fiu":  # reading it says what is wrong
                x = self._array(f)
                return x.shape[0], x.shape[1], x.dtype
            if rows == 0:
                raise LoadError(f"{path}: the matrix is empty; got shape (0, {d})")
            return rows, d, dtype
        x = self._array(f)
        return x.shape[0], x.shape[1], x.dtype

    def _array(self, f):
        """Input ``f``'s matrix (memory-mapped for .npy), read once."""
        if f not in self._arrays:
            self._arrays[f] = load_embeddings(self.paths[f], **self._options)
        return self._arrays[f]

    def _part(self, f, lo, hi):
        """Rows ``lo:hi`` of input ``f``, checked against the first input's width and dtype."""
        x = self._array(f)
        if f and (x.shape[1] != self.shape[1] or x.dtype != self.dtype):
            raise LoadError(f"{self.paths[f]}: holds {x.shape[1]}-wide {x.dtype} rows, but "
                            f"{self.paths[0]} holds {self.shape[1]}-wide {self.dtype} rows; every "
                            "input must hold rows of the same width and dtype")
        rows = int(self.offsets[f + 1] - self.offsets[f])
        if x.shape[0] != rows:
            raise LoadError(f"{self.paths[f]}: holds {x.shape[0]} rows, but its metadata said "
                            f"{rows}")
        return x[lo:hi]

    def rows(self, lo: int, hi: int) -> np.ndarray:
        """Global rows ``lo:hi``: a view of an input's array when they lie in one, else one new
        array; only the inputs that hold them are read."""
        lo, hi = max(int(lo), 0), min(int(hi), len(self))
        if hi <= lo:  # a rank without rows reads nothing
            return np.empty((0, self.shape[1]), self.dtype)
        first = int(np.searchsorted(self.offsets, lo, side="right")) - 1
        last = int(np.searchsorted(self.offsets, hi, side="left")) - 1
        if first == last:
            return self._part(first, lo - self.offsets[first], hi - self.offsets[first])
        out = np.empty((hi - lo, self.shape[1]), self.dtype)
        for f in range(first, last + 1):
            a, b = max(lo, self.offsets[f]), min(hi, self.offsets[f + 1])
            out[a - lo:b - lo] = self._part(f, a - self.offsets[f], b - self.offsets[f])
        return out

    def take(self, indices) -> np.ndarray:
        """The rows ``indices`` (global, any order), as one new array."""
        indices = np.asarray(indices, np.int64).reshape(-1)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"row indices must lie in [0, {len(self)}); got "
                             f"{int(indices[(indices < 0) | (indices >= len(self))][0])}")
        out = np.empty((indices.size, self.shape[1]), self.dtype)
        which = np.searchsorted(self.offsets, indices, side="right") - 1
        for f in np.unique(which).tolist():
            at = np.flatnonzero(which == f)
            out[at] = self._part(f, 0, None)[indices[at] - self.offsets[f]]
        return out

    def load(self) -> np.ndarray:
        """All rows: the input's own array for one input, else one array in memory (refused,
        before any copy, when it would not fit in the memory this machine has free)."""
        if len(self.paths) == 1:
            return self._part(0, 0, None)
        need = len(self) * self.shape[1] * self.dtype.itemsize
        free = available_memory()
        if free is not None and need > free:
            raise MemoryError(
                f"the {len(self.paths)} inputs hold {len(self)} x {self.shape[1]} {self.dtype} "
                f"({need / 2**30:.1f} GiB), more than the {free / 2**30:.1f} GiB of memory free "
                "here, and one process reads them into one array: write them to one .npy (it is "
                "memory-mapped, not read) or run torchrun -m hminsel.distributed, whose ranks read "
                "only their own rows")
        return self.rows(0, len(self))


def available_memory() -> int | None:
    """Bytes of memory free for a new array (Linux's MemAvailable), or None where unknown."""
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def open_inputs(paths, *, key=None, column=None, split=None) -> Inputs:
    """The rows of ``paths`` (one embeddings file or several, or a folder of them), checked for
    one width and dtype; ``key``, ``column`` and ``split`` as in ``load_embeddings``, for every
    input.

    Example:
        >>> x = open_inputs(["emb-0.npy", "emb-1.npy"]).load()    # (N0 + N1, d)
    """
    return Inputs(paths, key=key, column=column, split=split)
