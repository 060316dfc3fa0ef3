"""Column splits: few rows against many columns still fill the GPU.

A ``block_min`` program owns a block of rows and sweeps every column. With few
rows (h_min's exact pass over its live rows, ``nearest`` for a handful of
queries) that is a grid of one or two programs on a chip of 132 SMs. The
kernels therefore take a second grid axis: program (r, s) sweeps only the
columns ``[s * span, (s + 1) * span)`` and writes its partial result to slot
s; the host merges the slots with torch ops (a two-stage reduction, no
atomics, so the result is deterministic). Ties keep the lowest column: a
split's own sweep keeps its lowest, and the merge prefers the lowest split.
"""
from __future__ import annotations

import functools

import torch

MIN_SPAN_UNITS = 4  # a split sweeps at least 4 column tiles (or 4 columns in the direct form)


@functools.lru_cache(maxsize=None)
def _target(device: str) -> int:
    """Programs that fill the device: 2 a streaming multiprocessor (8 under the interpreter)."""
    dev = torch.device(device)
    if dev.type != "cuda":
        return 8  # TRITON_INTERPRET=1 on CPU tensors: small, so the tests split tiny shapes
    return 2 * torch.cuda.get_device_properties(dev).multi_processor_count


def column_splits(row_programs: int, cols: int, unit: int, device) -> tuple[int, int]:
    """``(splits, span)``: cut ``cols`` columns into spans of a multiple of ``unit`` columns.

    Enough splits that ``row_programs x splits`` reaches the device's target,
    each at least MIN_SPAN_UNITS units wide; (1, cols) when the rows alone fill it.
    """
    tiles = -(-cols // unit)
    want = min(_target(str(device)) // max(1, row_programs), tiles // MIN_SPAN_UNITS)
    if want <= 1:
        return 1, max(cols, 1)
    span = -(-tiles // want) * unit
    return -(-cols // span), span


def merge_min(value, index, splits: int):
    """``(value, index)`` (n,) from (splits * n,) partial minima: smallest, then lowest index."""
    if splits == 1:
        return value, index
    keys = (value.view(torch.int32).to(torch.int64) << 32) | index  # values >= 0: keys order alike
    key = keys.view(splits, -1).min(0).values
    return (key >> 32).to(torch.int32).view(torch.float32), key & 0xFFFFFFFF


def merge_best_second(best, second, bidx, splits: int):
    """Merge per-split (best, second, argmin) of GEMM-form values into one per row.

    best: the smallest best (the lowest split on ties, so the lowest column);
    second: the smallest of every split's second and of the runner-up best
    (a tie between splits leaves second == best: the row is not certified).
    """
    if splits == 1:
        return best, second, bidx
    best, second, bidx = best.view(splits, -1), second.view(splits, -1), bidx.view(splits, -1)
    two = torch.topk(best, 2, dim=0, largest=False).values  # [2, n]
    first = torch.argmin(best, dim=0)  # the first minimum: the lowest split
    pick = torch.gather(bidx, 0, first[None, :])[0]
    return two[0].contiguous(), torch.minimum(second.min(0).values, two[1]), pick
