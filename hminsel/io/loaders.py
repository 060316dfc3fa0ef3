"""Read an (N, d) embedding matrix from the files users keep them in.

One entry point, ``load_embeddings``, chosen by the file's extension (or, for a
directory, by the Hugging Face ``save_to_disk`` layout). Nothing is unpickled:
``.npy``/``.npz`` load with ``allow_pickle=False``. Errors name what was
expected and what was found, and list the keys or columns that exist.
"""
from __future__ import annotations

import json
import os
import struct

import numpy as np

from .errors import LoadError, _corrupt, _pick, no_such_path
from .tables import load_arrow, load_hf_dir, load_parquet

__all__ = ["LoadError", "load_embeddings", "SUFFIXES"]

SUFFIXES = (".npy", ".npz", ".safetensors", ".parquet", ".arrow")
# the naming options each format takes (a directory: a Hugging Face dataset)
OPTIONS = {".npy": (), ".npz": ("key",), ".safetensors": ("key",), ".parquet": ("column",),
           ".arrow": ("column",), "dir": ("column", "split")}


def load_embeddings(path, *, key=None, column=None, split=None, mmap=True, nulls="raise"):
    """Load an (N, d) numeric matrix from ``path``.

    Args:
        path: ``.npy``, ``.npz``, ``.safetensors``, ``.parquet``, ``.arrow``, or
            a directory written by ``datasets``' ``save_to_disk`` (a Dataset,
            or a DatasetDict with ``split``). A list of such paths, or a folder
            of such files (shards of one format, in number order), gives
            their rows one after another, in one array
            (``hminsel.io.shards``).
        key: the array in an ``.npz`` or the tensor in a ``.safetensors`` file;
            may be omitted when the file holds exactly one.
        column: the list-of-numbers column of a parquet/arrow file or HF
            dataset; may be omitted when there is exactly one such column.
        split: the split of a DatasetDict directory; may be omitted when it
            has exactly one.
        mmap: memory-map ``.npy`` files (read-only) instead of reading them.
            Other formats are read into memory.
        nulls: a table row whose vector is null raises (``"raise"``, the
            default) or reads as a row of NaN (``"nan"``; float columns), which
            ``select(..., nonfinite="skip")`` leaves out.

    Returns:
        A 2-D NumPy array (a read-only ``np.memmap`` for ``.npy`` with
        ``mmap=True``). bf16 safetensors come back as float32.

    Raises:
        FileNotFoundError: no such file or directory.
        LoadError: unknown format, corrupt file, wrong key/column/split,
            ragged rows, non-numeric data or not 2-D.
        ImportError: the optional package a format needs is missing.

    Example:
        >>> x = load_embeddings("emb.parquet", column="embedding")
    """
    check_nulls(nulls)
    if not isinstance(path, (str, os.PathLike)) or os.path.isdir(path) and not _is_dataset(path):
        from .shards import open_inputs
        inputs = open_inputs(path, key=key, column=column, split=split, nulls=nulls)
        if inputs.warning:
            import warnings
            warnings.warn(inputs.warning, stacklevel=2)
        if len(inputs.paths) == 1:
            return load_embeddings(inputs.paths[0], key=key, column=column, split=split, mmap=mmap,
                                   nulls=nulls)
        return inputs.load()
    return load_one(path, key=key, column=column, split=split, mmap=mmap, nulls=nulls)


def load_one(path, *, key=None, column=None, split=None, mmap=True, empty_ok=False, nulls="raise"):
    """``load_embeddings`` of one file or dataset folder; ``empty_ok``: a file of no rows
    (a shard among others) comes back as it is, (0, d) or (0, 0) where its width is unknown."""
    check_nulls(nulls)
    path = os.fspath(path)
    if not os.path.exists(path):
        raise no_such_path(path)
    kind = "dir" if os.path.isdir(path) else os.path.splitext(path)[1].lower()
    _check_options(path, kind, key=key, column=column, split=split)
    if kind == "dir":
        x = load_hf_dir(path, column, split, empty_ok, nulls)
    else:
        ext = kind
        readers = {".npy": lambda: _load_npy(path, mmap), ".npz": lambda: _load_npz(path, key),
                   ".safetensors": lambda: _load_safetensors(path, key),
                   ".parquet": lambda: load_parquet(path, column, empty_ok, nulls),
                   ".arrow": lambda: load_arrow(path, column, empty_ok, nulls)}
        if ext not in readers:
            raise LoadError(f"{path}: unknown extension {ext or '(none)'!r}; expected one of "
                            f"{', '.join(SUFFIXES)} or a Hugging Face dataset directory")
        x = readers[ext]()
    return _check_matrix(x, path, empty_ok)


def check_nulls(nulls) -> None:
    """``nulls``: ``"raise"`` or ``"nan"``."""
    if nulls not in ("raise", "nan"):
        raise ValueError(f"nulls must be 'raise' or 'nan'; got {nulls!r}")


def _is_dataset(path) -> bool:
    """A folder written by ``save_to_disk`` (a Dataset or a DatasetDict)."""
    return any(os.path.exists(os.path.join(path, f)) for f in ("state.json", "dataset_dict.json"))


def _check_options(path, kind, **given):
    """Refuse a key/column/split that the format would ignore."""
    if kind not in OPTIONS:
        return  # an unknown extension: its own error follows
    for name, value in given.items():
        if value is not None and name not in OPTIONS[kind]:
            what = "a Hugging Face dataset directory" if kind == "dir" else f"a {kind} file"
            takes = ", ".join(f"--{o}" for o in OPTIONS[kind]) or "none"
            raise LoadError(f"{path}: --{name} ({name}=) does not apply to {what}, which would "
                            f"ignore it (options it takes: {takes}); drop --{name}")


def _check_matrix(x, path, empty_ok=False):
    if x.dtype.kind not in "fiub":  # bools (binary codes) are read as 0/1, as the API reads them
        raise LoadError(f"{path}: expected numeric (float, int or bool) data; got dtype {x.dtype}")
    if x.ndim != 2:
        raise LoadError(f"{path}: expected a 2-D (N, d) matrix; got shape {tuple(x.shape)}")
    if empty_ok and x.shape[0] == 0:
        return x
    if x.shape[0] == 0 or x.shape[1] == 0:
        raise LoadError(f"{path}: the matrix is empty; got shape {tuple(x.shape)}")
    return x


# ---------------------------------------------------------------- NumPy
def _magic(path, prefixes, what):
    """np.load treats any unrecognised file as a pickle: check the magic bytes first."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(6)
    except OSError as exc:
        raise _corrupt(path, what, exc) from None
    if not any(head.startswith(p) for p in prefixes):
        raise LoadError(f"{path}: cannot read as {what} (it does not start with the {what} "
                        f"magic bytes; got {head!r})")


def _object_dtype(path, name=""):
    return LoadError(f"{path}: {name}holds Python objects (dtype=object); expected numeric data. "
                     "hminsel never unpickles files")


def _load_npy(path, mmap):
    _magic(path, (b"\x93NUMPY",), ".npy")
    try:
        return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
    except ValueError as exc:
        if "allow_pickle" in str(exc) or "Python objects" in str(exc):
            raise _object_dtype(path) from None
        raise _truncated(path) or _corrupt(path, ".npy", exc) from None
    except (OSError, EOFError) as exc:
        raise _truncated(path) or _corrupt(path, ".npy", exc) from None


def _truncated(path):
    """A LoadError when the .npy holds less data than its header says (an interrupted copy or
    download: NumPy says "mmap length is greater than file size"), else None."""
    try:
        with open(path, "rb") as fh:
            fmt = np.lib.format
            read = (fmt.read_array_header_1_0 if fmt.read_magic(fh) == (1, 0) else
                    fmt.read_array_header_2_0)  # 3.0 has 2.0's layout, in UTF-8
            shape, _, dtype = read(fh)
            start = fh.tell()
    except Exception:
        return None
    need = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    have = os.path.getsize(path) - start
    if have >= need:
        return None
    return LoadError(f"{path}: truncated .npy: its header says {shape} {dtype} ({need} bytes of "
                     f"data), but the file holds {have} (an interrupted copy or download?)")


def _load_npz(path, key):
    _magic(path, (b"PK\x03\x04", b"PK\x05\x06"), ".npz")
    try:
        with np.load(path, allow_pickle=False) as z:
            name = _pick("key", key, z.files, path)
            try:
                member = z[name]
            except ValueError as exc:
                if "allow_pickle" in str(exc):
                    raise _object_dtype(path, f"array {name!r} ") from None
                raise
            if not isinstance(member, np.ndarray):  # a member that is no .npy: NumPy hands its bytes
                raise LoadError(f"{path}: member {name!r} is not a .npy array (it does not start "
                                "with the .npy magic bytes)")
            return member
    except LoadError:
        raise
    except Exception as exc:  # BadZipFile, OSError, EOFError, ValueError
        raise _corrupt(path, ".npz", exc) from None


# ---------------------------------------------------------------- safetensors
def _load_safetensors(path, key):
    try:
        from safetensors import safe_open
    except ImportError:
        raise ImportError('reading .safetensors needs the safetensors package: '
                          'pip install "hminsel[io]"') from None
    try:
        with safe_open(path, framework="numpy") as f:
            name = _pick("key", key, f.keys(), path)
            dtype = f.get_slice(name).get_dtype()
            if dtype == "BF16":
                return _bf16_as_float32(path, name)
            if dtype.startswith("F8"):
                raise LoadError(f"{path}: tensor {name!r} is {dtype}; expected F16, BF16, F32, "
                                "F64 or an integer type")
            return f.get_tensor(name)
    except LoadError:
        raise
    except Exception as exc:  # SafetensorError derives from Exception only
        raise _corrupt(path, ".safetensors", exc) from None


def _bf16_as_float32(path, name):
    """NumPy has no bf16: widen to float32 (exact) through a memory map of the file."""
    with open(path, "rb") as fh:
        (n,) = struct.unpack("<Q", fh.read(8))
        info = json.loads(fh.read(n))[name]
    begin, end = info["data_offsets"]
    shape = tuple(info["shape"])
    raw = np.memmap(path, dtype="<u2", mode="r", offset=8 + n + begin, shape=((end - begin) // 2,))
    return (raw.astype(np.uint32) << 16).view(np.float32).reshape(shape)
