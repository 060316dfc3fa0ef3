"""Finds hminsel's CUDA sources, compiles them at run time with CuPy (NVRTC), launches kernels.

Sources are looked up in ``$HMINSEL_CUDA_SRC``, then the copy installed with
the package (``hminsel/cuda/src``, written by setup.py), then the checkout's
``csrc/cuda``. The shared header is inlined, so NVRTC needs no include path
and no CUDA toolkit is needed at install time; CuPy caches the binaries.

Each device gets one module. A persistent kernel is launched cooperatively
from it (``cuLaunchCooperativeKernel``, through the kernel's
``cupy.cuda.function.Function`` with ``enable_cooperative_groups``), so every
block of the grid is resident at once and the grid barrier cannot deadlock;
CuPy shrinks a 1-D grid larger than what fits to what fits, with a warning,
and ``fps_run`` splits its rows over ``gridDim.x``, so that stays correct.
The module is not built with CuPy's ``enable_cooperative_groups``: CuPy 13.x
to 14.1 compile such a module as relocatable device code (``--device-c``) and
link it against ``libcudadevrt.a``, which needs a CUDA toolkit on the machine
(not there on a pip-only install), and the launch does not need it: our grid
barrier is hand-written (``grid_barrier``, no cooperative_groups header).
When the driver refuses a cooperative launch (too large, not supported), the
backend runs one launch a step and says so; any other driver error is raised
(a sticky error of an earlier kernel surfaces at the next launch, and must not
pass for a refusal).

Tensors reach the kernels zero-copy as their device addresses (the kernels
read float16/bfloat16 as raw bits), on the caller's current torch stream. Every
launch is checked first against ``SIGNATURES`` (``check_args``), so a wrong
call is a ValueError naming the kernel, the parameter, what was expected and
what came, not a crash on the device. Importing this module imports nothing.
"""
from __future__ import annotations

import functools
import importlib.util
import os
import re
import types
from pathlib import Path

HEADER = "hminsel.cuh"
SOURCES = ("fps.cu", "block_min.cu")
SUFFIX = {"float32": "f32", "float16": "f16", "bfloat16": "bf16"}  # torch dtype name -> kernel suffix
THREADS = 512  # HMINSEL_THREADS in the header

# Parameter kinds: "x" rows of the kernel's dtype; "<dtype>*" a tensor of that
# dtype on x's device; "i32" / "i64" Python ints in that range.
SIGNATURES = {
    "fps_run": (("x", "x"), ("n", "i64"), ("d", "i32"), ("stride", "i64"), ("mind", "float32*"),
                ("gidx", "int64*"), ("use_gidx", "i32"), ("ring", "int64*"), ("count", "i32"),
                ("tau_key", "i64"), ("res", "i32"), ("vec", "i32"), ("bar", "int32*"),
                ("mode", "i32"), ("flags", "int32*"), ("slots", "int64*")),
    "direct_min": (("x", "x"), ("ids", "int64*"), ("n", "i64"), ("y", "x"), ("m", "i64"),
                   ("d", "i32"), ("sx", "i64"), ("sy", "i64"), ("self_mask", "i32"), ("vec", "i32"),
                   ("value", "float32*"), ("index", "int64*")),
    "pair_dist": (("x", "x"), ("ids", "int64*"), ("y", "x"), ("cand", "int64*"), ("n", "i64"),
                  ("d", "i32"), ("sx", "i64"), ("sy", "i64"), ("vec", "i32"), ("value", "float32*")),
}
_RANGES = {"i32": (-(1 << 31), (1 << 31) - 1), "i64": (-(1 << 63), (1 << 63) - 1)}


def source_dirs() -> list[Path]:
    """Where the sources are looked for, in order."""
    here = Path(__file__).resolve().parent
    dirs = [Path(os.environ["HMINSEL_CUDA_SRC"])] if os.environ.get("HMINSEL_CUDA_SRC") else []
    return dirs + [here / "src", here.parents[1] / "csrc" / "cuda"]


def source_dir() -> Path:
    """The first folder that holds every source; FileNotFoundError naming each one tried."""
    tried = []
    for folder in source_dirs():
        missing = [f for f in (HEADER,) + SOURCES if not (folder / f).is_file()]
        if not missing:
            return folder
        tried.append(f"{folder} (missing {', '.join(missing)})")
    raise FileNotFoundError("hminsel's CUDA sources were not found; looked in " + "; ".join(tried)
                            + ". Set HMINSEL_CUDA_SRC to a folder with the csrc/cuda files.")


def source() -> str:
    """All kernels as one NVRTC translation unit, the header inlined once."""
    folder = source_dir()
    header = (folder / HEADER).read_text().replace("#pragma once", "", 1)  # inlined once anyway
    include = re.compile(r'^\s*#include\s+"' + re.escape(HEADER) + r'"\s*$', re.M)
    bodies = [include.sub("", (folder / name).read_text()) for name in SOURCES]
    return "\n".join([header] + bodies)


def kernel_names(text: str | None = None) -> list[str]:
    """The extern "C" kernels the sources define (``<name>_<suffix>``), read from the macros."""
    text = source() if text is None else text
    names = re.findall(r'extern "C" __global__ void (?:__launch_bounds__\([^)]*\)\s*)?(\w+)##NAME', text)
    return [f"{n}{s}" for n in names for s in SUFFIX.values()]


def cupy_reason() -> str | None:
    """None when CuPy can run kernels here, else why not (imports CuPy only if installed)."""
    if importlib.util.find_spec("cupy") is None:
        return "cupy is not installed (pip install cupy-cuda12x or cupy-cuda13x)"
    try:
        import cupy
        if cupy.cuda.runtime.getDeviceCount() == 0:
            return "CuPy sees no CUDA device"
    except Exception as exc:  # no driver, or a CuPy built for another CUDA
        return f"CuPy cannot reach a CUDA device ({type(exc).__name__}: {exc})"
    return None


# -- argument checks (no GPU needed) ---------------------------------------------

def check_args(name: str, args: tuple, *, allow_cpu: bool = False) -> str:
    """Check ``args`` against ``SIGNATURES[name]``; returns the kernel's dtype suffix."""
    import torch
    params = SIGNATURES[name]
    if len(args) != len(params):
        raise ValueError(f"{name}: takes {len(params)} arguments ({', '.join(p for p, _ in params)}); "
                         f"got {len(args)}")
    x = args[0]
    if not isinstance(x, torch.Tensor) or str(x.dtype).removeprefix("torch.") not in SUFFIX:
        raise ValueError(f"{name}: x must be a float32/float16/bfloat16 tensor; got "
                         f"{getattr(x, 'dtype', type(x).__name__)}")
    if x.device.type != "cuda" and not allow_cpu:
        raise ValueError(f"{name}: x must be a CUDA tensor; got a {x.device.type} tensor")
    for (param, kind), value in zip(params, args):
        if kind in _RANGES:
            lo, hi = _RANGES[kind]
            if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
                raise ValueError(f"{name}: {param} must be an int in the {kind} range; got {value!r}")
            continue
        want = x.dtype if kind == "x" else getattr(torch, kind.rstrip("*"))
        if not isinstance(value, torch.Tensor):
            raise ValueError(f"{name}: {param} must be a {want} tensor; got {type(value).__name__}")
        if value.dtype != want:
            raise ValueError(f"{name}: {param} must be {want}; got {value.dtype}")
        if value.device != x.device:
            raise ValueError(f"{name}: {param} must be on {x.device} like x; got {value.device}")
        if kind != "x" and not value.is_contiguous():
            raise ValueError(f"{name}: {param} must be contiguous")
        if kind == "x" and (value.dim() != 2 or (value.stride(1) != 1 and value.shape[1] > 1)):
            raise ValueError(f"{name}: {param} must be 2-D rows with unit column stride; got shape "
                             f"{tuple(value.shape)}, strides {tuple(value.stride())}")
    return SUFFIX[str(x.dtype).removeprefix("torch.")]


# -- compiling and launching (GPU only) ------------------------------------------

@functools.lru_cache(maxsize=None)
def _module(device: int):
    import cupy
    with cupy.cuda.Device(device):
        module = cupy.RawModule(code=source(), options=("--std=c++17",))
        module.get_function("fps_run_f32")  # compile now, so a failure surfaces here
    return module


def _clip(log: str, keep: int = 2000) -> str:
    """The compiler's log, its middle cut when long: the first error and the last lines stay."""
    return log if len(log) <= keep else log[:keep // 2] + " [...] " + log[-keep // 2:]


@functools.lru_cache(maxsize=None)
def build_reason(device: int) -> str | None:
    """None when the module compiles for ``device``, else the compiler's complaint (cached)."""
    try:
        _module(device)
    except Exception as exc:
        return f"NVRTC build failed ({type(exc).__name__}: {_clip(str(exc))})"
    return None


@functools.lru_cache(maxsize=None)
def _function(device: int, name: str):
    """The compiled kernel ``name`` on ``device`` (looked up once, not at every launch)."""
    return _module(device).get_function(name)


@functools.lru_cache(maxsize=None)
def device_props(device: int) -> dict:
    """``sm_count``, ``smem_optin`` (bytes a block may opt into), ``cooperative``, ``l2``."""
    import cupy
    p = cupy.cuda.runtime.getDeviceProperties(device)
    return {"sm_count": int(p["multiProcessorCount"]),
            "smem_optin": int(p.get("sharedMemPerBlockOptin", p["sharedMemPerBlock"])),
            "cooperative": bool(p.get("cooperativeLaunch", 0)), "l2": int(p.get("l2CacheSize", 0))}


_COOP_FAILED: dict[int, str] = {}  # device -> why a cooperative launch failed at run time
# the driver's answers that mean "no cooperative launch of this size here", not a fault:
# CUDA_ERROR_COOPERATIVE_LAUNCH_TOO_LARGE, CUDA_ERROR_NOT_SUPPORTED, CUDA_ERROR_NOT_PERMITTED
REFUSALS = (720, 801, 800)


def cooperative_reason(device: int) -> str | None:
    """None when persistent (cooperative) launches work on ``device``, else why not."""
    if device in _COOP_FAILED:
        return _COOP_FAILED[device]
    if not device_props(device)["cooperative"]:
        return "the device does not support cooperative launches"
    return build_reason(device)


def _to_kernel(value, kind):
    """A launch argument: ints in their width; a tensor (checked by ``check_args``: dtype,
    device, layout) as its device address (a numpy uint64: CuPy passes its 8 bytes), which
    the kernel reads as a pointer. No DLPack exchange a tensor: that is host work on every
    launch, and the per-step paths launch once a pick. The tensors stay alive in the
    caller; torch's allocator reuses their memory only in the stream's order."""
    import numpy as np
    if kind in _RANGES:
        return np.int64(value) if kind == "i64" else np.int32(value)
    return np.uint64(value.data_ptr())


def launch(name: str, grid: int, args: tuple, *, shared_mem: int = 0, cooperative: bool = False):
    """Check and launch kernel ``name`` on x's device and current torch stream.

    A cooperative launch the driver refuses (``REFUSALS``: too large a grid
    for what is resident, not supported, MPS limits) raises
    ``CooperativeLaunchError`` and is remembered,
    so the callers fall back to one launch a step from then on.
    """
    import cupy
    import torch
    suffix = check_args(name, args)
    device = args[0].device.index if args[0].device.index is not None else torch.cuda.current_device()
    # What CuPy's Function call reads of a stream is its .ptr (cupy.cuda.ExternalStream
    # warns as deprecated from CuPy 14: a warning a launch)
    stream = types.SimpleNamespace(ptr=torch.cuda.current_stream(device).cuda_stream)
    with cupy.cuda.Device(device):
        kernel = _function(device, f"{name}_{suffix}")
        if shared_mem > 48 * 1024:  # a block gets more only after opting in
            kernel.max_dynamic_shared_size_bytes = shared_mem
        converted = tuple(_to_kernel(v, kind) for v, (_, kind) in zip(args, SIGNATURES[name]))
        try:  # the RawKernel's Function: its call takes the launch kind (the RawKernel's sets its own)
            kernel.kernel((int(grid),), (THREADS,), converted, shared_mem=int(shared_mem),
                          stream=stream, enable_cooperative_groups=cooperative)
        except cupy.cuda.driver.CUDADriverError as exc:
            if not cooperative or getattr(exc, "status", None) not in REFUSALS:
                raise
            _COOP_FAILED[device] = f"the cooperative launch failed ({exc})"
            raise CooperativeLaunchError(_COOP_FAILED[device]) from exc


class CooperativeLaunchError(RuntimeError):
    """The driver refused a persistent launch; the caller runs one launch a step instead."""
