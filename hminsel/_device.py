"""Coercion and validation for the device path: inputs stay torch tensors on their device.

Taken when the resolved backend is a GPU one (``triton``, ``cuda``): a CUDA
tensor or a CuPy array with ``backend="auto"`` (when a GPU backend can run), or
any input with ``backend="triton"``/``"cuda"`` (host arrays are moved to the
CUDA device, or kept on the CPU under ``TRITON_INTERPRET=1``). CuPy arrays
become torch tensors through DLPack (zero-copy) and results go back as CuPy.
The checks mirror ``_inputs`` with torch ops, so no full copy reaches the
host; only the (N,) finite-row mask does, and only when some row is bad.
"""
from __future__ import annotations

import sys

import numpy as np

from . import _finite, _inputs
from .backends import DEVICE_BACKENDS, gpu_reasons  # noqa: F401  (gpu_reasons re-exported)

CHUNK = 1 << 16  # rows per chunk of the scans at least: bounds their temporaries ...
CHUNK_ELEMENTS = 1 << 26  # ... to what 64k rows of d = 1024 hold; narrower rows take more a
# chunk (1M x 3 points in one, not 16: each chunk is about ten small launches, where on the
# H200 the kernel of 256 clouds of 4096 points took 3 ms)


def chunk_rows(t) -> int:
    """Rows per chunk of the scans of ``t``."""
    return max(CHUNK, CHUNK_ELEMENTS // max(1, t.shape[1]))


def is_cupy(x) -> bool:
    return type(x).__module__.split(".")[0] == "cupy"


def on_gpu(x) -> bool:
    """True for a CUDA torch tensor or a CuPy array (never imports either)."""
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        return x.device.type == "cuda"
    return is_cupy(x)


def wanted(x, backend) -> bool:
    """True when ``x`` should go down the device path for ``backend``."""
    from . import backends
    name = backends.requested(backend)
    if name in DEVICE_BACKENDS:
        return True
    if name != "auto" or not on_gpu(x):
        return False
    return any(backends.why_not(b) is None for b in DEVICE_BACKENDS)  # they name dtypes they refuse


def refuse_on_host(x, backend, name: str = "x") -> None:
    """Raise when GPU-resident ``x`` meets a host backend asked for by name (``wanted`` said no)."""
    from . import backends
    chosen = backends.requested(backend)
    if chosen != "auto" and on_gpu(x):
        raise ValueError(f"{name} is on a GPU, but backend={chosen!r} runs on the host: pass a "
                         f"host copy ({name}.cpu(), or .get() for CuPy), or a GPU backend "
                         "('auto', 'triton' or 'cuda')")


def require(backend) -> None:
    """Raise, naming the reason, when a GPU backend asked for by name cannot run here."""
    from . import backends
    name = backends.requested(backend)
    reason = backends.why_not(name) if name in DEVICE_BACKENDS else None
    if reason is not None:
        raise RuntimeError(f"backend {name!r} cannot run this call: {reason}")


def points(x, metric: str, nonfinite: str, name: str = "x", hint: str = _inputs.SKIP_HINT,
           low_too: bool = True, prepared: bool = True):
    """``(tensor, library, prepared tensor, finite-row mask or None)``, like ``api._points``.

    ``prepared=False``: no prepared copy (the caller prepares the rows it runs), but the rows
    are checked as ``prepare`` checks them (cosine: no zero row); in its place, each row's
    largest finite magnitude (float32, on t's device) where the check of the l2 scale read
    them (else None), so the caller need not read x again for them; and x may have no rows
    (``select_batched``'s empty problems).
    """
    t, library = tensor(x, name)
    if t.ndim != 2 or t.shape[1] == 0 or (len(t) == 0 and prepared):
        _inputs.check_points(np.empty(tuple(t.shape)), name)  # the same messages
    if t.is_complex():
        raise _inputs.dtype_error(name, str(t.dtype).replace("torch.", ""))
    if not t.is_floating_point():
        t = float32_of_integers(t, name)
    _inputs.check_metric(metric)
    tops = None if prepared else []
    valid = finite_mask(t, nonfinite, name, hint, metric, low_too, tops)
    if not prepared:
        if metric == "cosine":
            _unit_scale(t, valid, name)
        return t, library, tops[0] if tops else None, valid
    return t, library, prepare(t, metric, valid, name), valid


def float32_of_integers(t, name: str = "x"):
    """An integer or bool tensor as float32, the GPU's dtype (the host reads integers as
    float64): exact up to 2^24, and larger integers raise instead of losing digits."""
    import torch
    if t.dtype != torch.bool and t.numel():
        low, high = (int(v) for v in torch.aminmax(t))  # one pass, one sync
        top = max(high, -low)
        if top > 1 << 24:
            raise ValueError(f"{name} holds integers up to {top} in magnitude; on a GPU they are "
                             "read as float32, exact only up to 2^24 = 16777216: pass float32 "
                             "values yourself if rounding is fine, or run on the host "
                             "(backend='cpu', which reads integers as float64)")
    return t.float()


def tensor(x, name: str = "x"):
    """``(tensor, library)``: ``x`` as a torch tensor where the device path computes on it (a
    CUDA tensor or CuPy array stays on its device; host arrays move to the GPU, or stay on the
    CPU under the interpreter)."""
    import torch
    from .backends.device import interpreting
    if isinstance(x, torch.Tensor):
        return _inputs.plain_tensor(x, name), "torch"
    if is_cupy(x):
        return torch.from_dlpack(x), "cupy"  # zero-copy, stays on its device
    host, library = _inputs.host_array(x, name)
    if torch.cuda.is_available() and not interpreting():
        return torch.from_numpy(np.ascontiguousarray(host)).cuda(), library
    # a copy, as the GPU's: the interpreter writes every argument back, and two views of one
    # array (nearest(X, X[:m])) would overwrite each other
    return torch.from_numpy(np.array(host, order="C")), library


def scan(t, scale: bool = True, row_tops=None):
    """``(finite-row mask on the host or None when all rows are, largest finite magnitude)``
    of tensor ``t``, in chunks on its device and one sync (``scale=False``: the magnitude is
    not needed, 0.0). ``row_tops``: None, or a (len(t),) float32 tensor on t's device that
    gets each row's largest finite magnitude (with ``scale``)."""
    import torch
    ok = torch.empty(len(t), dtype=torch.bool, device=t.device)
    top = torch.zeros((), dtype=torch.float64, device=t.device)
    step = chunk_rows(t)
    for lo in range(0, len(t), step):
        part = t[lo:lo + step]
        finite = torch.isfinite(part)
        ok[lo:lo + step] = finite.all(1)
        if scale:
            rows = torch.where(finite, part, 0).abs().amax(1)  # [chunk]
            if row_tops is not None:
                row_tops[lo:lo + step] = rows.float()
            top = torch.maximum(top, rows.amax().double())
    all_ok, top = (float(v) for v in torch.stack([ok.all().double(), top]).tolist())  # one sync
    return (None if all_ok else ok.cpu().numpy()), top


def finite_mask(t, nonfinite: str, name: str = "x", hint: str = _inputs.SKIP_HINT,
                metric: str = "l2", low_too: bool = True, tops: list | None = None):
    """None if all rows are finite; else raise, or the host mask of finite rows for "skip".

    For ``metric="l2"``, values too large (or, ``low_too``, too small) for float32
    sums raise too (``_finite.check_scale``); ``tops`` (a list) then gets the rows' largest
    finite magnitudes, as ``scan``'s ``row_tops``.
    """
    if nonfinite not in ("raise", "skip"):
        raise ValueError(f"nonfinite must be 'raise' or 'skip'; got {nonfinite!r}")
    stored = stored_dtype(t)
    scale = metric == "l2" and stored != np.float16  # float16 and unit rows always fit
    row_tops = None
    if scale and tops is not None:
        import torch
        row_tops = torch.empty(len(t), dtype=torch.float32, device=t.device)
        tops.append(row_tops)
    mask, top = scan(t, scale, row_tops)
    if mask is not None and nonfinite == "raise":  # named first: the scale of the rest is moot
        raise _inputs.nonfinite_error(name, np.flatnonzero(~mask), hint)
    if scale:
        _finite.check_scale(top, t.shape[1], stored, name, low_too)
    return mask


def stored_dtype(t) -> np.dtype:
    """The NumPy dtype whose range ``t``'s values are checked in: bfloat16 sums as float32."""
    import torch
    return np.dtype({torch.float16: np.float16, torch.float64: np.float64}.get(t.dtype, np.float32))


def prepare(t, metric: str, valid=None, name: str = "x"):
    """The tensor the kernels read: contiguous and 16-byte aligned; unit rows (fp32 math) for cosine.

    A strided or offset view is copied once: Triton compiles a kernel per
    alignment, and the exact lazy FPS needs every kernel to sum in one order.
    """
    import torch
    if metric == "l2":  # kernels specialise on alignment: one layout for every array they read
        aligned = t.is_contiguous() and t.data_ptr() % 16 == 0
        return t if aligned else t.clone(memory_format=torch.contiguous_format)
    out = torch.empty_like(t, memory_format=torch.contiguous_format)

    def unit(lo, part, norms):
        out[lo:lo + len(part)] = (part / norms[:, None]).to(t.dtype)
    _unit_scale(t, valid, name, unit)
    return out


def _unit_scale(t, valid=None, name: str = "x", each=None):
    """The norms of t's rows, chunk by chunk, for cosine: ``each(lo, rows as float32, norms)``
    (a zero or non-finite norm as 1) per chunk; raises, naming the first, when a row of
    ``valid`` (all rows: None) has norm 0."""
    import torch
    zero = torch.zeros(len(t), dtype=torch.bool, device=t.device)
    live = None if valid is None else torch.from_numpy(valid).to(t.device)
    step = chunk_rows(t)
    for lo in range(0, len(t), step):
        part = _power_scaled(t[lo:lo + step].float())
        norms = torch.linalg.vector_norm(part, dim=1)
        z = norms == 0
        if live is not None:
            z &= live[lo:lo + step]
        zero[lo:lo + step] = z
        if each is not None:
            each(lo, part, torch.where((norms == 0) | ~torch.isfinite(norms), 1.0, norms))
    if bool(zero.any()):
        row = int(torch.nonzero(zero)[0])
        raise _inputs._zero_row(row, name)


def _power_scaled(part):
    """``part`` (float32) with each row multiplied by the power of two that brings its largest
    magnitude into [0.5, 1): exact, so ordinary rows normalise to the same bits, and a row of
    1e37s or 1e-25s no longer overflows or underflows its float32 norm (cosine is scale-free)."""
    import torch
    _, e = torch.frexp(part.abs().amax(dim=1))  # 0 for a zero row; NaN/inf rows: any
    return torch.ldexp(part, -e.clamp_min(-125)[:, None])  # 2^125 still a float32


def block_min_widened(be, x, c, rows=None):
    """``be.block_min(x, c)`` (of x's rows ``rows`` only, a host int64 array, when given) for
    float32 centres ``c`` that x's float16/bfloat16 storage cannot hold: x's rows widened to
    float32 a chunk at a time (the sums are float32 anyway)."""
    import torch
    n = len(x) if rows is None else len(rows)
    value = torch.empty(n, dtype=torch.float32, device=x.device)
    index = torch.empty(n, dtype=torch.int64, device=x.device)
    for lo in range(0, n, CHUNK):
        part = x[lo:lo + CHUNK] if rows is None else take_rows(x, rows[lo:lo + CHUNK])
        value[lo:lo + CHUNK], index[lo:lo + CHUNK] = be.block_min(part.float(), c)
    return value, index


def on(t):
    """A context that makes t's CUDA device current (kernels launch there); a no-op off CUDA."""
    import contextlib
    import torch
    return torch.cuda.device(t.device) if t.device.type == "cuda" else contextlib.nullcontext()


def take_rows(x, rows: np.ndarray):
    """Contiguous ``x[rows]`` for a NumPy array or a torch tensor."""
    if isinstance(x, np.ndarray):
        return np.ascontiguousarray(x[rows])
    import torch
    return x.index_select(0, torch.as_tensor(rows, device=x.device)).contiguous()


def metric_units(sq, metric: str):
    """Squared L2 -> the metric's units, float64, for a tensor (``api.to_metric`` for tensors)."""
    sq = sq.double().clamp_min(0.0)
    return sq.sqrt() if metric == "l2" else sq / 2.0


def out(t, library: str):
    """A result tensor in the caller's library (CuPy on its device; NumPy for host arrays)."""
    if library == "cupy":
        import cupy
        return cupy.from_dlpack(t.contiguous())
    return t if library == "torch" else t.cpu().numpy()
