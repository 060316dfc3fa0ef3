"""One rank's rows and its exact state, on the host or on the rank's GPU.

A shard that is a CUDA tensor or a CuPy array (or any shard with
``backend="triton"``/``"cuda"``) stays on its device: its values and owners
are torch tensors there and the GPU backend's kernels fold picks into them.
What travels between ranks does so on the host in float64 packs (a round's
head rows, a pick's row), a few rows at a time; the shard itself never does.
"""
from __future__ import annotations

import numpy as np

from .. import _device, _finite, _inputs
from ..algorithms.lazy import fold
from ..backends.base import MARK
from ..backends.device import DeviceBackend

# dtype codes agreed between ranks, and the NumPy dtype each is checked (and packed) in
DTYPES = {np.dtype(np.float16): 0, np.dtype(np.float32): 1, np.dtype(np.float64): 2}
BFLOAT16 = 3
NAMES = {0: "float16", 1: "float32", 2: "float64", BFLOAT16: "bfloat16"}
CHECKED = {0: np.float16, 1: np.float32, 2: np.float64, BFLOAT16: np.float32}


def read(x_shard, backend, on_device: bool, skip: bool = False):
    """``(x, library, device, code, top, finite)``: the shard as a NumPy array, or
    (``on_device`` and a GPU path is wanted) as a torch tensor on its device; raises on a bad
    shard (the caller makes every rank raise). ``device``: where results go back (None: the
    host). A row with NaN or inf raises, or (``skip``) is left out: ``finite`` is None when
    every row is, else the (n,) bool host mask of those that are; ``top`` is over those."""
    if not on_device or not _device.wanted(x_shard, backend):
        device = None
        if _device.on_gpu(x_shard):  # this call runs on the host: a copy there, results go back
            t, library = _device.tensor(x_shard, "x_shard")
            host, device = _inputs.host_array(t.cpu(), "x_shard")[0], t.device
        else:
            host, library = _inputs.host_array(x_shard, "x_shard")
        if host.ndim != 2:
            raise ValueError(f"x_shard must be 2-D (n, d); got shape {tuple(host.shape)}")
        if host.dtype.kind in "iub":
            host = host.astype(np.float64)
        if host.dtype not in DTYPES:
            raise TypeError(f"x_shard must hold float16/32/64 (or integer) values; got dtype {host.dtype}")
        bad, top = _finite.scan_rows(host)
        code = DTYPES[host.dtype]
    else:
        import torch
        host, library = _device.tensor(x_shard, "x_shard")
        device = host.device
        if host.ndim != 2:
            raise ValueError(f"x_shard must be 2-D (n, d); got shape {tuple(host.shape)}")
        if not host.is_floating_point():
            host = _device.float32_of_integers(host, "x_shard")
        code = BFLOAT16 if host.dtype == torch.bfloat16 else DTYPES[_device.stored_dtype(host)]
        bad, top = _device.scan(host)
    if bad is not None and not skip:
        raise NonFiniteRow(int(np.argmin(bad)), len(host))
    return host, library, device, code, top, bad


class NonFiniteRow(ValueError):
    """A shard's row with NaN or inf: ``row`` local, of a shard of ``n`` rows (the caller
    names it as a global row once the ranks' sizes are known)."""

    def __init__(self, row: int, n: int):
        super().__init__(f"x_shard has NaN or inf in local row {row}")
        self.row, self.n = row, n


def on_host(a) -> np.ndarray:
    """A kernel's small result (a NumPy array or a torch tensor) as a NumPy array."""
    return a.detach().cpu().numpy() if hasattr(a, "detach") else np.asarray(a)


def like(rows: np.ndarray, t):
    """Host rows as a tensor of ``t``'s dtype on its device (rows that travelled as NumPy)."""
    import torch
    return torch.from_numpy(np.ascontiguousarray(rows)).to(device=t.device, dtype=t.dtype)


def host_rows(part, dtype) -> np.ndarray:
    """Rows (a NumPy array or a tensor of any float dtype, bfloat16 too) as NumPy ``dtype``."""
    if isinstance(part, np.ndarray):
        return np.asarray(part, dtype)
    return on_host(part.float()).astype(dtype)


class Shard:
    """One rank's rows and its exact state (values and owners).

    ``x`` is as ``_inputs.prepare`` (host) or ``_device.prepare`` (device) gives it;
    ``rows`` takes rows out to the host in ``dtype``, the values the kernels compute with,
    and ``put`` brings host rows back in the backend's form."""

    def __init__(self, backend, x, offset, dtype):
        self.backend, self.x, self.offset, self.dtype = backend, x, offset, np.dtype(dtype)
        self.ub = backend.full(x, np.inf, backend.acc_dtype(dtype))
        self.owner = backend.full(x, 0, np.int64)
        self.host = not isinstance(backend, DeviceBackend)  # host x may be a view of unit rows
        self.read = 0  # rows the folds read, for stats.passes

    def rows(self, local):
        """Rows ``local`` (local indices; a scalar: one 1-D row) on the host, in ``dtype``."""
        if self.host:
            return np.asarray(self.backend.take(self.x, local), self.dtype)
        out = host_rows(self.backend.take(self.x, np.atleast_1d(local)), self.dtype)
        return out if np.ndim(local) else out[0]

    def put(self, rows, state: bool = False):
        """Host ``rows`` in the backend's form (x's dtype; ``state``: the values' dtype)."""
        if self.host:
            return np.ascontiguousarray(rows, self.backend.acc_dtype(self.dtype) if state else self.dtype)
        import torch
        dtype = torch.float32 if state else self.x.dtype
        return torch.from_numpy(np.ascontiguousarray(rows)).to(device=self.x.device, dtype=dtype)

    def mark(self, gidx):
        local = np.asarray(gidx, np.int64) - self.offset
        local = local[(local >= 0) & (local < len(self.x))]
        if len(local):
            self.ub[self.backend.index(local, self.ub)] = MARK

    def head(self, m):
        """``(head, values, tau, tau_local)``: the local head on the host, and the key after it."""
        head, tau, tau_local = self.backend.head_and_tau(self.ub, m)
        values = self.ub[head]
        return (on_host(head).astype(np.int64), on_host(values).astype(np.float64), tau, tau_local)

    def best(self):
        """``(local row, value)`` of the largest value; value MARK when every row is picked."""
        if len(self.x) == 0:
            return 0, MARK
        return self.backend.argmax(self.ub)

    def fold(self, centers, base, rows_of, margin):
        """Fold new centers (host rows of picks base ..) into the shard's values."""
        if len(self.x) == 0:
            return 0
        centers = self.put(centers)
        if base == 0:
            value, index = self.backend.block_min(self.x, centers)
            live = self.ub != MARK
            self.ub[live], self.owner[live] = value[live], index[live]
            read = len(self.x)
        else:
            read = fold(self.backend, self.x, self.ub, self.owner, centers,
                        lambda lo, hi: self.put(rows_of(lo, hi)), base, margin)
        self.read += read
        return read

    def fold_one(self, center):
        """Fold one center (a host row) into the values, no owners (the steps protocol)."""
        value, _ = self.backend.block_min(self.x, self.put(center[None]))
        self.read += len(self.x)
        live = self.ub != MARK
        now, new = self.ub[live], value[live]
        closer = new < now
        now[closer] = new[closer]
        self.ub[live] = now
