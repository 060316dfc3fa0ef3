"""Embeddings kept in several files (shards), read as the rows of one matrix.

Embedding jobs write shards: ``emb-00000.npy``, ``emb-00001.npy``, ... or a
folder of parquet files. ``open_inputs`` takes one path or several, or a folder
of such files, and gives their rows one after another, in the order given (a
folder's files in natural name order: ``emb-2`` before ``emb-10``): global row
``i`` is row ``i - offsets[f]`` of input ``f``. Every input's rows, width and
dtype are checked from its header or metadata before any rows are read
(``heads.py``); only a ``.npy`` stays open (memory-mapped).

``Inputs.rows(lo, hi)`` reads only the shards that hold those rows (a rank of
``hminsel.distributed`` reads its own), ``Inputs.take(indices)`` those rows,
and ``Inputs.load()`` the whole matrix: one array in memory when there are
several shards (a shard at a time), refused up front when it would not fit in
the memory free here.
"""
from __future__ import annotations

import os
import re

import numpy as np

from .errors import LoadError, no_such_path
from .heads import head
from .loaders import SUFFIXES, _is_dataset, check_nulls, load_one
from .memory import available_memory
from .tables import release_arrow

CACHE_DIR = "hminsel-cache"  # hminsel select --embed's embedding cache, beside its outputs

__all__ = ["Inputs", "open_inputs", "expand_inputs", "check_outputs", "order_warning"]


def _natural(path):
    """Sort key: digit runs as numbers (``emb-2`` before ``emb-10``)."""
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", os.path.basename(path))]


def _as_list(paths):
    return [os.fspath(paths)] if isinstance(paths, (str, os.PathLike)) else [os.fspath(p) for p in paths]


def _is_folder(path) -> bool:
    return os.path.isdir(path) and not _is_dataset(path)


def expand_inputs(paths, suffixes=SUFFIXES, what: str = "embedding files") -> list[str]:
    """The input files of ``paths`` (one path or several): a folder that is not a Hugging Face
    dataset stands for its ``what`` (files ending in one of ``suffixes``, of one extension, in
    natural name order)."""
    paths = _as_list(paths)
    if not paths:
        raise LoadError(f"no input given; expected one of the {what} or more")
    out = []
    for path in paths:
        if not os.path.exists(path):
            raise no_such_path(path)
        out.extend(_folder(path, suffixes, what) if _is_folder(path) else [path])
    seen = {}
    for path in out:
        real = os.path.realpath(path)
        if real in seen:
            also = "" if seen[real] == path else f" (also as {seen[real]})"
            raise LoadError(f"{path} is given twice{also}; each input once")
        seen[real] = path
    return out


def order_warning(paths) -> str | None:
    """What to say when numbered inputs (``emb-1.npy``, ``emb-10.npy``, ...: the same name but
    for its numbers) are given out of number order, as a shell's glob may sort them."""
    names = [os.path.basename(p) for p in _as_list(paths)]
    shapes = {re.sub(r"\d+", "#", n) for n in names}
    if len(names) < 2 or len(shapes) != 1 or "#" not in next(iter(shapes)):
        return None
    if sorted(names, key=_natural) == names:
        return None
    return (f"the inputs are not in number order ({', '.join(names[:4])}"
            f"{', ...' if len(names) > 4 else ''}): their rows follow the order given; pad the "
            "numbers with zeros, or pass the folder (read in number order)")


def _folder(path, suffixes=SUFFIXES, what: str = "embedding files") -> list[str]:
    names = sorted((n for n in os.listdir(path) if os.path.isfile(os.path.join(path, n))
                    and os.path.splitext(n)[1].lower() in suffixes and not n.startswith(".")),
                   key=lambda n: (_natural(n), n))
    kinds = sorted({os.path.splitext(n)[1].lower() for n in names})
    nested = _nested(path, suffixes)
    if nested:  # a folder input reads its own files: rows below would be left out unsaid
        shown = ", ".join(os.path.join(path, n) for n in nested[:3])
        shown += ", ..." if len(nested) > 3 else ""
        raise LoadError(f"{path}: its subfolders ({shown}) hold {what} too, and a folder input "
                        f"reads only its own files ({len(names)} here): pass the files, or each "
                        "folder, in the order their rows should follow (partitioned tables: "
                        "one file list)")
    if not names:
        raise LoadError(f"{path}: is a directory that is neither a Hugging Face dataset saved with "
                        f"save_to_disk (no state.json or dataset_dict.json in it) nor a folder of "
                        f"{what} ({', '.join(suffixes)})")
    if len(kinds) > 1:
        raise LoadError(f"{path}: holds {what} of {len(kinds)} kinds "
                        f"({', '.join(kinds)}); expected shards of one format: pass the files")
    return [os.path.join(path, n) for n in names]


def _nested(path, suffixes) -> list[str]:
    """The subfolders of ``path`` (not hidden, not the embedding cache) that hold files ending
    in one of ``suffixes``, at any depth; natural order."""
    found = []
    for name in sorted(os.listdir(path), key=lambda n: (_natural(n), n)):
        top = os.path.join(path, name)
        if _passed_over(name) or not os.path.isdir(top):
            continue
        for root, dirs, files in os.walk(top):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            if any(os.path.splitext(f)[1].lower() in suffixes and not f.startswith(".")
                   for f in files):
                found.append(name)
                break
    return found


def check_outputs(paths, outputs, suffixes=SUFFIXES, role: str = "input") -> None:
    """Refuse an output in an input format (``suffixes``: embeddings, ``.npy``, ...) written
    inside a folder input (``role``: which, for the message): the next run would read it as
    a shard."""
    folders = {os.path.realpath(p): p for p in _as_list(paths) if _is_folder(p)}
    for out in outputs:
        if not out or os.path.splitext(out)[1].lower() not in suffixes:
            continue
        inner = os.path.realpath(os.path.dirname(os.path.abspath(out)))
        below = []  # the subfolders between the folder input and the output
        while inner not in folders and os.path.dirname(inner) != inner:
            below.append(os.path.basename(inner))
            inner = os.path.dirname(inner)
        if inner in folders and not any(_passed_over(name) for name in below):
            where = "its subfolder " + os.path.join(*reversed(below)) if below else "it"
            raise LoadError(f"{out} lies in the {role} folder {folders[inner]} ({where}): a "
                            "later run would read it as one of the folder's files, or refuse "
                            "the folder; write it elsewhere")


def _passed_over(name: str) -> bool:
    """A subfolder a folder input passes over: hidden, or the embedding cache."""
    return name.startswith(".") or name == CACHE_DIR


class Inputs:
    """The rows of several embedding files, one after another.

    Attributes:
        paths: the input files, in row order.
        offsets: (len(paths) + 1,) int64; input ``f`` holds global rows
            ``offsets[f]:offsets[f + 1]``.
        shape: ``(N, d)`` of all rows together; ``dtype`` their dtype.
    """

    def __init__(self, paths, *, key=None, column=None, split=None, nulls="raise"):
        given = _as_list(paths)
        self.paths = expand_inputs(given)
        self.warning = order_warning(given)  # None, or what the caller should tell the user
        folders = {p: f for f in given if _is_folder(f) for p in _folder(f)}
        self._options = {"key": key, "column": column, "split": split}
        check_nulls(nulls)
        self._nulls = nulls  # a table's null vectors: raise, or rows of NaN (load_embeddings)
        self._maps = {}  # input -> its memory map (.npy)
        self._empty_ok = len(self.paths) > 1  # a shard of no rows among others
        heads = [self._named(f, folders, self._head) for f in range(len(self.paths))]
        # the first shard with rows sets the width and dtype; an empty one adds nothing (its
        # width or dtype, numpy's float64 of np.zeros((0, d)) say, is not checked)
        self._ref = next((f for f, h in enumerate(heads) if h[0]), None)
        if self._ref is None:
            raise LoadError(f"every input is empty: the {len(self.paths)} files hold no rows")
        for f in range(len(self.paths)):
            if f != self._ref and heads[f][0]:
                self._named(f, folders, lambda f: self._check(f, heads[f], heads[self._ref]))
        self.offsets = np.concatenate([[0], np.cumsum([h[0] for h in heads])]).astype(np.int64)
        self._d = heads[self._ref][1]
        self.dtype = np.dtype(heads[self._ref][2])

    def _named(self, f, folders, what):
        """``what(f)``; its LoadError says when input ``f`` came from a folder."""
        try:
            return what(f)
        except LoadError as exc:
            path = self.paths[f]
            if path not in folders or f == 0:  # the first file's fault may be everyone's
                raise
            raise LoadError(f"{exc} (a file of the input folder {folders[path]}: pass the "
                            "shard files to leave it out)") from None

    def __len__(self) -> int:
        return int(self.offsets[-1])

    @property
    def shape(self) -> tuple[int, int]:
        if self._d is None:  # parquet lists whose width only the rows say
            self._d = self._read(self._ref).shape[1]
        return len(self), int(self._d)

    def _head(self, f):
        """(rows, d or None, dtype) of input ``f``: from its header, else by reading it."""
        got = head(self.paths[f], **self._options, empty_ok=self._empty_ok)
        if got is not None:
            rows, d, dtype, mapped = got
            if mapped is not None:
                self._maps[f] = mapped
            return rows, d, dtype
        x = self._read(f)
        return x.shape[0], x.shape[1], x.dtype

    def _check(self, f, this, first):
        """Input ``f`` against the first with rows: one width, one dtype (a width from metadata
        that differs is read to be sure: a ragged file names its own fault)."""
        path, (_, d, dtype), ref = self.paths[f], this, self.paths[self._ref]
        if d is not None and first[1] is not None and d != first[1] and f not in self._maps:
            d = self._read(f).shape[1]
        if d is not None and first[1] is not None and d != first[1]:
            raise LoadError(f"{path}: rows of {d} values, but {ref} has rows of "
                            f"{first[1]}; every input must hold rows of the same width")
        if dtype != first[2]:
            raise LoadError(f"{path}: holds {dtype}, but {ref} holds {first[2]}; every "
                            "input must have one dtype (convert the odd ones)")

    def _read(self, f):
        """Input ``f``'s matrix: its memory map (.npy), else read now and not kept."""
        if f in self._maps:
            return self._maps[f]
        return load_one(self.paths[f], **self._options, empty_ok=self._empty_ok, nulls=self._nulls)

    def _part(self, f, lo, hi):
        """Rows ``lo:hi`` of input ``f``, checked against the first input's width and dtype."""
        x = self._read(f)
        if f != self._ref and (x.shape[1] != self.shape[1] or x.dtype != self.dtype):
            raise LoadError(f"{self.paths[f]}: holds {x.shape[1]}-wide {x.dtype} rows, but "
                            f"{self.paths[self._ref]} holds {self.shape[1]}-wide {self.dtype} rows; every "
                            "input must hold rows of the same width and dtype")
        rows = int(self.offsets[f + 1] - self.offsets[f])
        if x.shape[0] != rows:
            raise LoadError(f"{self.paths[f]}: holds {x.shape[0]} rows, but its metadata said "
                            f"{rows}")
        return x[lo:hi]

    def rows(self, lo: int, hi: int, progress=None) -> np.ndarray:
        """Global rows ``lo:hi`` (0 <= lo, hi past the end stops there): a view of an input's
        array when they lie in one, else one new array; only the inputs that hold them are read.
        ``progress``: None or a callable ``(rows done, rows)``, told after each input."""
        if int(lo) < 0 or int(hi) < 0:
            raise ValueError(f"rows(lo, hi) takes row numbers from 0; got ({lo}, {hi})")
        lo, hi = int(lo), min(int(hi), len(self))
        if hi <= lo:  # a rank without rows reads nothing
            return np.empty((0, self.shape[1]), self.dtype)
        first = int(np.searchsorted(self.offsets, lo, side="right")) - 1
        last = int(np.searchsorted(self.offsets, hi, side="left")) - 1
        if first == last:
            return self._part(first, lo - self.offsets[first], hi - self.offsets[first])
        out = np.empty((hi - lo, self.shape[1]), self.dtype)
        for f in range(first, last + 1):
            a, b = max(lo, self.offsets[f]), min(hi, self.offsets[f + 1])
            if a == b:  # an empty shard: nothing to read
                continue
            out[a - lo:b - lo] = self._part(f, a - self.offsets[f], b - self.offsets[f])
            release_arrow()
            if progress:
                progress(int(b - lo), hi - lo)
        return out

    def take(self, indices) -> np.ndarray:
        """The rows ``indices`` (global integers, any order), as one new array; each input that
        holds some is read once."""
        indices = np.asarray(indices).reshape(-1)
        if indices.size and indices.dtype.kind not in "iu":
            raise TypeError(f"take() takes integer row indices; got dtype {indices.dtype}")
        indices = indices.astype(np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= len(self)):
            raise IndexError(f"row indices must lie in [0, {len(self)}); got "
                             f"{int(indices[(indices < 0) | (indices >= len(self))][0])}")
        out = np.empty((indices.size, self.shape[1]), self.dtype)
        which = np.searchsorted(self.offsets, indices, side="right") - 1
        for f in np.unique(which).tolist():
            at = np.flatnonzero(which == f)
            out[at] = self._part(f, 0, None)[indices[at] - self.offsets[f]]
            release_arrow()
        return out

    def load(self, progress=None) -> np.ndarray:
        """All rows: the input's own array when one input holds them all (the others empty),
        else one array in memory, filled a shard at a time (refused, before any copy, when it
        would not fit in the memory free). ``progress``: as ``rows``'."""
        if len(self) == self.offsets[self._ref + 1] - self.offsets[self._ref]:
            return self._part(self._ref, 0, None)  # one input holds every row: its own array
        row = self.shape[1] * self.dtype.itemsize
        need = len(self) * row
        read = max([int(self.offsets[f + 1] - self.offsets[f]) * row * 3  # a shard as read
                    for f in range(len(self.paths)) if f not in self._maps] or [0])
        free = available_memory()
        if free is not None and need + read > free:
            also = f", and up to {read / 2**30:.1f} GiB more while a shard is read" if read else ""
            raise MemoryError(
                f"the {len(self.paths)} inputs hold {len(self)} x {self.shape[1]} {self.dtype} "
                f"({need / 2**30:.1f} GiB{also}: more than the {free / 2**30:.1f} GiB of memory "
                "free here), and one process reads them into one array: write them to one .npy "
                "(it is memory-mapped, not read) or run torchrun -m hminsel.distributed, whose "
                "ranks read only their own rows")
        return self.rows(0, len(self), progress)


def open_inputs(paths, *, key=None, column=None, split=None, nulls="raise") -> Inputs:
    """The rows of ``paths`` (one embeddings file or several, or a folder of them), checked for
    one width and dtype; ``key``, ``column``, ``split`` and ``nulls`` as in ``load_embeddings``,
    for every input.

    Example:
        >>> x = open_inputs(["emb-0.npy", "emb-1.npy"]).load()    # (N0 + N1, d)
    """
    return Inputs(paths, key=key, column=column, split=split, nulls=nulls)
