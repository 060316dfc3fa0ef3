"""A parquet file's vector column read a batch of rows at a time into one array.

``pq.read_table`` holds the whole column chunk as read (the values, and a repetition and a
definition level per value for a list column) while it builds the Arrow column: about 4.7x
the matrix at the peak (1.7 GB for 250k x 384 float32). Read a batch at a time, with pages
streamed (``buffer_size``, no pre-buffering), the peak is the matrix and one batch's pages
(0.9 GB there), and every check of ``tables._table_column`` still runs, on each batch, with
rows named by their row in the file.
"""
from __future__ import annotations

import numpy as np

from .errors import LoadError
from .tables import _corrupt, _pyarrow, _table_column, release_arrow

STREAM_BYTES = 1 << 22  # parquet read buffer: pages stream through it


def _first_vector(batch, at: int) -> int:
    """The file row of a batch's first non-null vector (the batch starts at row ``at``)."""
    return at + int(np.argmin(batch.column(0).is_null().to_numpy(zero_copy_only=False)))


def read_column(path, name: str, nulls: str, batch_rows: int) -> np.ndarray:
    """The (N, d) list column ``name`` of parquet file ``path``, as ``tables._table_column``
    reads it from the whole table (``nulls`` alike), one batch of ``batch_rows`` at a time."""
    pa = _pyarrow()
    import pyarrow.parquet as pq
    try:
        pf = pq.ParquetFile(path, buffer_size=STREAM_BYTES, pre_buffer=False)
        n = pf.metadata.num_rows
        out, first, at, pending = None, None, 0, []  # pending: all-null batches before d is known
        for batch in pf.iter_batches(batch_size=batch_rows, columns=[name]):
            part = _table_column(pa.Table.from_batches([batch]), name, path, nulls=nulls,
                                 first_row=at, whole=False)
            if part.shape[1] == 0 and len(part):  # every row of the batch null: no width yet
                pending.append((at, at + len(part)))
            elif out is None:
                out, first = np.empty((n, part.shape[1]), part.dtype), _first_vector(batch, at)
                out[at:at + len(part)] = part
            elif part.shape[1] != out.shape[1]:
                raise LoadError(f"{path}: column {name!r} is ragged: row {first} has "
                                f"{out.shape[1]} values, row {_first_vector(batch, at)} has "
                                f"{part.shape[1]}; expected the same length in every row")
            else:
                out[at:at + len(part)] = part
            at += len(part)
            release_arrow()  # the batch's pages, to the system
    except LoadError:
        raise
    except Exception as exc:  # ArrowInvalid, OSError
        raise _corrupt(path, ".parquet", exc) from None
    if out is None:
        raise LoadError(f"{path}: column {name!r} is null in every row; expected vectors")
    for lo, hi in pending:
        out[lo:hi] = np.nan
    return out
