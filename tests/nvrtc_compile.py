"""NVRTC itself, through ctypes: the compiler CuPy hands hminsel's CUDA source to at run time.

nvcc's front end is not NVRTC's (no host compiler, its own built-in headers,
other defaults), so ``test_cuda`` also compiles the loader's translation unit
here, with the options CuPy 14 adds, when a libnvrtc is on the machine: the
``nvidia-cuda-nvrtc`` wheel (what CuPy loads), ``$CUDA_HOME`` or the toolkit
beside ``nvcc``. No GPU and no driver are needed.
"""
from __future__ import annotations

import ctypes
import glob
import importlib.util
import os
import shutil
from pathlib import Path

# What CuPy 14's RawModule passes besides ours: -ftz=true, the architecture, and
# --device-as-default-execution-space (--pch too, which changes no code).
CUPY_OPTIONS = ("-ftz=true", "--device-as-default-execution-space")


def library_paths() -> list[str]:
    """Candidate libnvrtc files, the pip wheel's first."""
    found = []
    spec = importlib.util.find_spec("nvidia")
    for root in (spec.submodule_search_locations or []) if spec else []:
        found += sorted(glob.glob(os.path.join(root, "cu1*", "lib", "libnvrtc.so.*")))
        found += sorted(glob.glob(os.path.join(root, "cuda_nvrtc", "lib", "libnvrtc.so.*")))
    homes = [os.environ.get("CUDA_HOME", "")]
    nvcc = shutil.which("nvcc")
    if nvcc:
        homes.append(str(Path(os.path.realpath(nvcc)).parents[1]))
    for home in filter(None, homes):
        found += sorted(glob.glob(os.path.join(home, "lib64", "libnvrtc.so*")))
    return [f for f in found if "builtins" not in f and ".alt." not in f]


def load() -> ctypes.CDLL | None:
    """The first libnvrtc that loads, its built-ins library beside it loaded first (NVRTC
    opens that one by name, which finds it only when already loaded or on the loader's path)."""
    for path in library_paths():
        try:
            for builtins in glob.glob(os.path.join(os.path.dirname(path), "libnvrtc-builtins.so.*")):
                if ".alt." not in builtins:
                    ctypes.CDLL(builtins, mode=ctypes.RTLD_GLOBAL)
            return ctypes.CDLL(path)
        except OSError:
            continue
    return None


def compile_unit(lib: ctypes.CDLL, source: str, options: list[str], *, cubin: bool) -> tuple[int, str, bytes]:
    """``(status, log, output)``: status 0 is success; output is the cubin or the PTX."""
    prog = ctypes.c_void_p()
    status = lib.nvrtcCreateProgram(ctypes.byref(prog), source.encode(), b"hminsel.cu", 0, None, None)
    if status != 0:
        return status, "nvrtcCreateProgram failed", b""
    try:
        opts = (ctypes.c_char_p * len(options))(*(o.encode() for o in options))
        status = lib.nvrtcCompileProgram(prog, len(options), opts)
        size = ctypes.c_size_t()
        lib.nvrtcGetProgramLogSize(prog, ctypes.byref(size))
        log = ctypes.create_string_buffer(size.value)
        lib.nvrtcGetProgramLog(prog, log)
        out = b""
        if status == 0:
            kind = "CUBIN" if cubin else "PTX"
            getattr(lib, f"nvrtcGet{kind}Size")(prog, ctypes.byref(size))
            buf = ctypes.create_string_buffer(size.value)
            getattr(lib, f"nvrtcGet{kind}")(prog, buf)
            out = buf.raw
        return status, log.value.decode(errors="replace"), out
    finally:
        lib.nvrtcDestroyProgram(ctypes.byref(prog))
