"""Write results without ever leaving a half-written or clobbered file.

Every writer goes to a temporary file in the destination's directory and then
``os.replace``s it into place, so a crash leaves either the old file or the new
one. An existing destination is refused unless ``force=True`` (``--force`` on
the command line). Inside ``together()`` the replaces wait for its end, so a
run's outputs (records, indices, manifest) land as one set, or none do.
"""
from __future__ import annotations

import contextlib
import contextvars
import json
import os
import signal
import tempfile
import threading

import numpy as np

__all__ = ["write_npy_atomic", "write_json_atomic", "write_bytes_atomic", "write_subset",
           "count_records", "check_writable", "check_outputs", "together", "OutputExists",
           "SUBSET_SUFFIXES"]

SUBSET_SUFFIXES = (".jsonl", ".json")


class OutputExists(FileExistsError):
    """Outputs that are there already, and ``force`` is off. Its text says how a Python
    caller replaces them; ``on_command_line()`` how a command line does."""

    def __init__(self, *paths: str):
        self.paths = paths
        self.path = paths[0]
        super().__init__(self._said("force=True"))

    def on_command_line(self) -> str:
        return self._said("--force")

    def _said(self, force: str) -> str:
        if len(self.paths) == 1:
            return f"{self.path} already exists; pass {force} to overwrite it"
        listed = f"{', '.join(self.paths[:-1])} and {self.paths[-1]}"
        return f"{listed} already exist; pass {force} to overwrite them"


def _refuse_existing(path, force):
    """The path, unless it is a folder, or a file that ``force`` does not let us replace."""
    path = os.fspath(path)
    if os.path.isdir(path):
        raise IsADirectoryError(f"{path} is a directory; expected a file name to write")
    if os.path.exists(path) and not force:
        raise OutputExists(path)
    return path


def check_outputs(paths, *, force=False):
    """``check_writable`` on each of ``paths`` (None: no such output), naming every one that
    exists (and ``force`` is off) in one error."""
    paths = [os.fspath(p) for p in paths if p]
    there = [p for p in paths if not force and os.path.exists(p) and not os.path.isdir(p)]
    if there:
        raise OutputExists(*there)
    for path in paths:
        check_writable(path, force=force)


def check_writable(path, *, force=False):
    """Raise if ``path`` cannot be written: it exists (and ``force`` is off), it is a folder,
    or its folder cannot be made or written to (tried with a file that is removed at once).
    Returns the path."""
    path = _refuse_existing(path, force)
    folder = os.path.dirname(os.path.abspath(path))
    while not os.path.isdir(folder):  # the nearest folder that exists: the rest is made
        if os.path.lexists(folder):
            raise NotADirectoryError(f"cannot write {path}: {folder} is not a directory")
        folder = os.path.dirname(folder)
    try:
        fd, probe = tempfile.mkstemp(dir=folder, prefix=".hminsel-probe.", suffix=".tmp")
    except OSError as exc:
        raise OSError(exc.errno, f"cannot write {path}: {exc.strerror} in {folder}") from None
    os.close(fd)
    os.unlink(probe)
    return path


def _mode(path):
    """The mode of the file being replaced, else 0666 minus the umask."""
    if os.path.exists(path):
        return os.stat(path).st_mode & 0o7777
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


_STAGED = contextvars.ContextVar("hminsel_staged_outputs", default=None)
_HELD = tuple(getattr(signal, name) for name in ("SIGINT", "SIGTERM", "SIGHUP")
              if hasattr(signal, name))


class _WriteError(OSError):
    """An output that could not be written, named (the disk's error, or NumPy's short write)."""


@contextlib.contextmanager
def together():
    """Outputs written inside land together: each writer's finished temporary file waits, and
    at the end all are moved into place in the order written (the manifest last), with
    Ctrl-C, SIGTERM and SIGHUP held off meanwhile (their handlers run once all have landed);
    an error or a signal before the end removes them all, so a stopped run has replaced none
    of the old outputs. One destination twice is refused. Nested: the outer one decides."""
    if _STAGED.get() is not None:
        yield
        return
    staged = []  # (temporary, destination, force)
    token = _STAGED.set(staged)
    try:
        yield
        with _signals_held():
            for _, path, force in staged:  # the race since each was written: all or none
                _refuse_existing(path, force)
            while staged:
                tmp, path, _ = staged[0]
                try:
                    os.replace(tmp, path)
                except OSError as exc:
                    raise _WriteError(exc.errno, f"cannot write {path}: {exc.strerror}") from exc
                staged.pop(0)
    finally:
        _STAGED.reset(token)
        for tmp, _, _ in staged:  # what did not land
            with contextlib.suppress(OSError):
                os.unlink(tmp)


@contextlib.contextmanager
def _signals_held():
    """Ctrl-C, SIGTERM and SIGHUP wait until the block ends: their Python handlers are swapped
    for one that notes the signal, which is raised again at the end (Python runs handlers in
    the main thread only, whichever thread the signal reached; blocking it in this thread
    would not hold it). Elsewhere than the main thread, nothing is held."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught = []
    before = {signum: signal.signal(signum, lambda signum, frame: caught.append(signum))
              for signum in _HELD}
    try:
        yield
    finally:
        for signum, handler in before.items():
            signal.signal(signum, handler)
        for signum in dict.fromkeys(caught):  # each once, in the order they came
            signal.raise_signal(signum)


@contextlib.contextmanager
def _atomic(path, force, mode):
    path = _refuse_existing(path, force)  # the folder is tried by the temporary file itself
    staged = _STAGED.get()
    if staged is not None and any(os.path.realpath(p) == os.path.realpath(path)
                                  for _, p, _ in staged):
        raise FileExistsError(f"{path} is written twice in one set of outputs")
    folder = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(folder, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
    except OSError as exc:
        raise _WriteError(exc.errno, f"cannot write {path}: {exc.strerror}") from None
    try:
        os.chmod(tmp, _mode(path))  # mkstemp makes 0600; give what open() would have
        with os.fdopen(fd, mode) as fh:
            yield fh
            fh.flush()
            os.fsync(fh.fileno())
        if staged is None:
            os.replace(tmp, path)
        else:
            staged.append((tmp, path, force))
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, _WriteError):
            reason = exc.strerror or str(exc)  # numpy's short write: "... requested and ... written"
            raise (_WriteError(exc.errno, f"cannot write {path}: {reason}") if exc.errno else
                   _WriteError(f"cannot write {path}: {reason}")) from exc
        raise


def write_npy_atomic(path, array, *, force=False):
    """Save ``array`` as ``.npy`` at exactly ``path`` (no pickles), atomically.

    Args:
        path: destination; parent folders are created.
        array: anything ``np.asarray`` takes; object arrays are refused.
        force: overwrite an existing file.
    """
    array = np.asarray(array)
    with _atomic(path, force, "wb") as fh:
        np.save(fh, array, allow_pickle=False)


def write_bytes_atomic(path, data: bytes, *, force=False):
    """Write ``data`` (e.g. a rendered PNG) at ``path``, atomically."""
    with _atomic(path, force, "wb") as fh:
        fh.write(data)


def write_json_atomic(path, obj, *, force=False):
    """Dump ``obj`` as indented JSON at ``path``, atomically.

    Non-finite floats are not valid JSON: write them as ``None`` before calling.
    """
    with _atomic(path, force, "w") as fh:
        json.dump(obj, fh, indent=2, allow_nan=False)
        fh.write("\n")


def _kind(path, role):
    ext = os.path.splitext(os.fspath(path))[1].lower()
    if ext not in SUBSET_SUFFIXES:
        raise ValueError(f"{role} {path}: expected a .jsonl (one JSON object per line) or .json "
                         f"(a top-level list) file; got extension {ext or '(none)'!r}")
    return ext


def _jsonl_records(path):
    """(record number, line number, raw line) of each non-blank line."""
    with open(path, "r", encoding="utf-8-sig", newline="\n") as fh:  # a lone \r is JSON space
        n = 0
        try:
            for lineno, line in enumerate(fh, 1):
                if line.strip():
                    yield n, lineno, line.rstrip("\r\n")
                    n += 1
        except UnicodeDecodeError as exc:  # read in blocks: the position is not a line's
            raise ValueError(f"{path}: not UTF-8 text ({exc.reason}: byte "
                             f"0x{exc.object[exc.start]:02x})") from None


def _json_records(path):
    try:
        with open(path, "r", encoding="utf-8-sig") as fh:
            data = json.load(fh)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: not valid JSON ({exc})") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc})") from None
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a top-level JSON list of records; got "
                         f"{type(data).__name__}")
    return data


def count_records(data_path, parse: bool = True):
    """How many records a ``.jsonl`` (non-blank lines) or ``.json`` (list items) file holds.

    Every record is parsed (``parse``), so a malformed line fails here, before any
    work, not when a selection happens to pick it; ``parse=False`` counts a
    ``.jsonl``'s lines only, for a caller that parses them next.
    """
    data_path = os.fspath(data_path)
    if not os.path.isfile(data_path):
        raise FileNotFoundError(f"no such data file: {data_path}")
    if _kind(data_path, "data file") == ".json":
        return len(_json_records(data_path))
    count = 0
    for _, lineno, line in _jsonl_records(data_path):
        if parse:
            _parse_line(data_path, lineno, line)
        count += 1
    return count


def _parse_line(path, lineno, line):
    try:
        return json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: line {lineno} is not valid JSON ({exc}); expected one JSON "
                         "record per line") from None


def write_subset(data_path, indices, out_path, *, n_rows=None, force=False):
    """Write the records of ``data_path`` picked by ``indices``, in that order.

    Record ``i`` of the data is the example whose embedding is row ``i``; with
    several data files (shards), their records follow one another in the order
    given. JSONL lines are copied byte for byte into a ``.jsonl`` output; the
    output format follows ``out_path``'s extension (``.jsonl`` or ``.json``),
    so either input feeds a fine-tuning script directly.

    Args:
        data_path: ``.jsonl`` (one JSON object per non-blank line) or ``.json``
            (a top-level list), or a list of such files.
        indices: row indices in selection order.
        out_path: destination ``.jsonl`` or ``.json``.
        n_rows: the embeddings' N; the data must hold exactly that many
            records.
        force: overwrite an existing ``out_path``.

    Returns:
        The number of records written.
    """
    paths = ([os.fspath(data_path)] if isinstance(data_path, (str, os.PathLike)) else
             [os.fspath(p) for p in data_path])
    out_path = os.fspath(out_path)
    dst = _kind(out_path, "subset output")
    for path in paths:
        _kind(path, "data file")
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no such data file: {path}")
    check_writable(out_path, force=force)
    indices = np.asarray(indices, dtype=np.int64).reshape(-1)
    wanted = {int(i) for i in indices}
    picked, count = {}, 0  # global record number -> its text in the output
    for path in paths:
        if os.path.splitext(path)[1].lower() == ".json":
            data = _json_records(path)
            picked.update((count + i, json.dumps(data[i], ensure_ascii=False))
                          for i in range(len(data)) if count + i in wanted)
            count += len(data)
            continue
        n = -1
        for n, lineno, line in _jsonl_records(path):
            if count + n in wanted:
                record = _parse_line(path, lineno, line)
                picked[count + n] = (line if dst == ".jsonl" else
                                     json.dumps(record, ensure_ascii=False))
        count += n + 1

    where = paths[0] if len(paths) == 1 else f"the {len(paths)} data files"
    if n_rows is not None and count != n_rows:
        raise ValueError(f"{where} hold{'s' if len(paths) == 1 else ''} {count} records but the "
                         f"embeddings have {n_rows} rows; expected one record per embedding row, "
                         "in the same order")
    if indices.size and (indices.min() < 0 or indices.max() >= count):
        bad = int(indices[(indices < 0) | (indices >= count)][0])
        raise ValueError(f"index {bad} is out of range for {where} with {count} records")

    with _atomic(out_path, force, "w") as fh:
        if dst == ".jsonl":
            fh.writelines(picked[int(i)] + "\n" for i in indices)
        else:
            fh.write("[\n" + ",\n".join(picked[int(i)] for i in indices) + "\n]\n")
    return int(indices.size)
