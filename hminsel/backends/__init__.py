"""Backend registry: explicit, observable dispatch.

``resolve(name, x)`` returns the backend that runs a call. ``name`` comes from
the ``backend=`` argument, else the ``HMINSEL_BACKEND`` environment variable,
else ``"auto"``. Auto takes the first backend in ``AUTO_ORDER`` that is
available and supports the input; each reason a backend was passed over is
logged once on the ``hminsel`` logger and shown by ``hminsel info``.
"""
from __future__ import annotations

import importlib
import logging
import os
import warnings

from .base import MARK, Backend

log = logging.getLogger("hminsel")

# name -> "module:Class"; modules are imported on first use only.
REGISTRY = {
    "numpy": "hminsel.backends.numpy_ref:NumpyBackend",
    "cpu": "hminsel.backends.cpu:CpuBackend",
    "triton": "hminsel.backends.triton:TritonBackend",
    "cuda": "hminsel.backends.cuda:CudaBackend",
}
# triton/cuda take device tensors only, cpu/numpy host arrays only: the input
# decides. On a GPU triton comes first (tensor-core block_min); backend="cuda"
# picks the persistent kernels.
AUTO_ORDER = ("triton", "cuda", "cpu", "numpy")
DEVICE_BACKENDS = ("triton", "cuda")  # the backends that take GPU arrays

_instances: dict[str, Backend] = {}
_import_errors: dict[str, str] = {}
_logged: set[tuple[str, str]] = set()


def get(name: str) -> Backend | None:
    """The backend instance, or None if its module cannot be imported."""
    if name not in REGISTRY:
        raise ValueError(f"unknown backend {name!r}; expected one of {sorted(REGISTRY)} or 'auto'")
    if name not in _instances and name not in _import_errors:
        module, cls = REGISTRY[name].split(":")
        try:
            _instances[name] = getattr(importlib.import_module(module), cls)()
        except Exception as exc:  # an extra or a compiled part is missing
            _import_errors[name] = f"{type(exc).__name__}: {exc}"
    return _instances.get(name)


def why_not(name: str, x=None) -> str | None:
    """None when backend ``name`` can run (on ``x``, if given), else the reason."""
    backend = get(name)
    if backend is None:
        return f"cannot be imported ({_import_errors[name]})"
    # The input check first: it is cheap, and for a NumPy array it spares the
    # triton backend importing torch just to say it takes tensors.
    reason = backend.unsupported_reason(x) if x is not None else None
    return reason if reason is not None else backend.unavailable_reason()


def _log_once(name: str, reason: str, x=None) -> None:
    """Say once why ``auto`` passed a backend over: at INFO where this install or machine
    lacks it, at DEBUG where only the input does not suit it (triton for a NumPy array)."""
    if (name, reason) in _logged:
        return
    _logged.add((name, reason))
    backend = get(name)
    unfit = backend is not None and x is not None and backend.unsupported_reason(x) == reason
    log.log(logging.DEBUG if unfit else logging.INFO, "hminsel: backend %r not taken: %s", name, reason)
    if name == "cpu" and name in _import_errors:  # a broken build should not pass unnoticed
        warnings.warn(f"hminsel: the C++ backend is not available ({reason}); falling back to "
                      "the slow NumPy backend. Reinstall with a C++ compiler: pip install .",
                      RuntimeWarning, stacklevel=3)


def requested(backend: str | None) -> str:
    """The backend name asked for: the argument, else HMINSEL_BACKEND, else auto."""
    if backend is None or backend == "auto":
        backend = os.environ.get("HMINSEL_BACKEND", "auto") or "auto"
    return backend


def gpu_reasons() -> str:
    """Why no GPU backend can run here, one clause each (for error messages)."""
    return "; ".join(f"{b}: {why_not(b)}" for b in DEVICE_BACKENDS)


def host_reads_in_place(backend: str | None) -> bool:
    """Whether a call on host arrays with ``backend`` runs on the cpu backend, whose
    kernels read float16 rows and cosine's unit rows where they lie."""
    return requested(backend) in ("auto", "cpu") and why_not("cpu") is None


def resolve(backend: str | None, x) -> Backend:
    """The backend that will run a call on prepared array ``x``."""
    name = requested(backend)
    if name != "auto":
        reason = why_not(name, x)
        if reason is not None:
            raise RuntimeError(f"backend {name!r} cannot run this call: {reason}")
        return get(name)
    for candidate in AUTO_ORDER:
        reason = why_not(candidate, x)
        if reason is None:
            return get(candidate)
        _log_once(candidate, reason, x)
    raise RuntimeError("no backend can run this call: " + "; ".join(
        f"{n}: {why_not(n, x)}" for n in AUTO_ORDER))


def report() -> list[tuple[str, str | None]]:
    """(name, reason or None) for every registered backend, for ``hminsel info``."""
    return [(name, why_not(name)) for name in REGISTRY]


__all__ = ["MARK", "Backend", "REGISTRY", "AUTO_ORDER", "get", "why_not", "resolve", "report", "requested",
           "host_reads_in_place"]
