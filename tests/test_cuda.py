"""The CUDA backend without a GPU: nvcc compiles every source, the loader's logic, and the
host code end to end on emulated kernels (``cuda_emulator``).

With a GPU and CuPy (``HMINSEL_CUDA_GPU=1``, set by benchmarks/gpu_check.sh)
the backend bodies below run on the real kernels instead of the emulator.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

import hminsel
from hminsel import backends
from hminsel.cuda import loader

import nvrtc_compile as nvrtc

GPU = os.environ.get("HMINSEL_CUDA_GPU") == "1"
NVCC = shutil.which("nvcc")
ARCHS = {"sm_90a": "arch=compute_90a,code=sm_90a", "sm_80": "arch=compute_80,code=sm_80"}


# -- the sources compile, under nvcc and NVRTC (CI has both; where one is absent, say so) --

# What the loader hands NVRTC, with the flag CuPy adds: -ftz=true (one module, no
# relocatable code: the persistent kernel's cooperative launch needs none).
NVRTC_UNITS = {"nvrtc-unit": ["-ftz=true"]}
NVRTC = nvrtc.load()  # libnvrtc, where the machine has one


def _ftz_free(ptx: str) -> bool:
    """-ftz=true must not reach the distance arithmetic of fps_run (it is inline PTX)."""
    body = ptx[ptx.index(".entry fps_run_f32"):]
    body = body[:body.index(".entry", 10)] if ".entry" in body[10:] else body
    return "sub.ftz" not in body and "fma.rn.ftz" not in body and "add.ftz" not in body


@pytest.mark.may_skip  # a machine without the toolkit says so; CI has it
@pytest.mark.parametrize("arch", sorted(ARCHS))
@pytest.mark.parametrize("unit", list(loader.SOURCES) + sorted(NVRTC_UNITS))
def test_nvcc_compiles(unit, arch, tmp_path):
    if NVCC is None:
        pytest.skip("nvcc is not on PATH: the CUDA sources were not compiled (install the CUDA toolkit)")
    flags = []
    if unit in NVRTC_UNITS:
        src = tmp_path / "unit.cu"
        src.write_text(loader.source())
        flags = NVRTC_UNITS[unit]
    else:
        src = loader.source_dir() / unit
    cmd = [NVCC, "-std=c++17", "-cubin", "-gencode", ARCHS[arch], "-Werror", "all-warnings",
           "-Xptxas", "-v", *flags, "-o", str(tmp_path / "out.cubin"), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    spills = re.findall(r"(\d+) bytes spill (?:stores|loads)", proc.stderr)
    assert spills and all(s == "0" for s in spills), "register spills:\n" + proc.stderr[-3000:]
    if unit in NVRTC_UNITS:
        ptx = subprocess.run([NVCC, "-std=c++17", "-ptx", "-arch=compute_80", *flags, "-o", "-",
                              str(src)], capture_output=True, text=True, timeout=300).stdout
        assert _ftz_free(ptx)


@pytest.mark.may_skip  # likewise: CI installs nvidia-cuda-nvrtc
@pytest.mark.parametrize("unit", sorted(NVRTC_UNITS))
def test_nvrtc_compiles(unit):
    """The loader's unit through NVRTC itself, with CuPy's options, for sm_90: no warning, no spill."""
    if NVRTC is None:
        pytest.skip("no libnvrtc here (pip install nvidia-cuda-nvrtc): NVRTC's own front end did not run")
    flags = ["--std=c++17", *nvrtc.CUPY_OPTIONS, *(f for f in NVRTC_UNITS[unit] if f != "-ftz=true")]
    status, log, cubin = nvrtc.compile_unit(NVRTC, loader.source(), [*flags, "-arch=sm_90",
                                            "--ptxas-options=-v"], cubin=True)
    assert status == 0 and cubin, log[-3000:]
    assert "warning" not in log.lower(), log[-3000:]
    spills = re.findall(r"(\d+) bytes spill (?:stores|loads)", log)
    assert spills and all(s == "0" for s in spills), "register spills:\n" + log[-3000:]
    status, log, ptx = nvrtc.compile_unit(NVRTC, loader.source(), [*flags, "-arch=compute_90"], cubin=False)
    assert status == 0, log[-3000:]
    text = ptx.decode(errors="replace")
    assert all(f".entry {name}" in text for name in loader.kernel_names())
    assert _ftz_free(text)


def test_signatures_match_the_sources():
    """loader.SIGNATURES (what launches are checked against) = the kernels' parameter lists."""
    kinds = {"const T*": "x", "T*": "x", "i64": "i64", "int": "i32", "float*": "float32*",
             "const i64*": "int64*", "i64*": "int64*", "unsigned*": "int32*"}
    text = loader.source()
    for name, params in loader.SIGNATURES.items():
        m = re.search(r"void (?:__launch_bounds__\([^)]*\)\s*)?" + name + r"_##NAME\(([^)]*)\)", text)
        assert m, f"kernel {name} not found in the sources"
        found = []
        for p in m.group(1).replace("\\", " ").split(","):
            words = p.split()
            found.append((words[-1], kinds[" ".join(words[:-1])]))
        assert tuple(found) == params, name
    threads = re.search(r"#define HMINSEL_THREADS (\d+)", text)
    assert threads and int(threads.group(1)) == loader.THREADS  # launches use the kernels' bound
    assert sorted(loader.kernel_names()) == sorted(
        f"{n}_{s}" for n in loader.SIGNATURES for s in ("f32", "f16", "bf16"))


# -- source lookup and argument checks ---------------------------------------------

def test_source_lookup(monkeypatch, tmp_path):
    assert loader.source_dir() in loader.source_dirs()
    for f in (loader.HEADER,) + loader.SOURCES:
        shutil.copy(loader.source_dir() / f, tmp_path / f)
    monkeypatch.setenv("HMINSEL_CUDA_SRC", str(tmp_path))
    assert loader.source_dir() == tmp_path
    text = loader.source()
    assert text.count("KEY_LOW =") == 1 and '#include "hminsel.cuh"' not in text
    (tmp_path / "fps.cu").unlink()
    empty = tmp_path / "empty"
    empty.mkdir()
    monkeypatch.setattr(loader, "source_dirs", lambda: [tmp_path, empty])
    with pytest.raises(FileNotFoundError, match=r"missing fps\.cu.*HMINSEL_CUDA_SRC"):
        loader.source_dir()


def test_check_args_messages():
    torch = pytest.importorskip("torch")
    x = torch.zeros(4, 3)
    ring = torch.zeros(5, dtype=torch.int64)
    bar = torch.zeros(2, dtype=torch.int32)
    good = (x, 4, 3, 3, torch.zeros(4), ring, 0, ring, 2, -1, 0, 0, bar, 0, bar, ring)
    assert loader.check_args("fps_run", good, allow_cpu=True) == "f32"
    with pytest.raises(ValueError, match="fps_run: x must be a CUDA tensor; got a cpu tensor"):
        loader.check_args("fps_run", good)
    with pytest.raises(ValueError, match="takes 16 arguments"):
        loader.check_args("fps_run", good[:-1], allow_cpu=True)
    bad = [(0, x.double(), "x must be a float32/float16/bfloat16 tensor; got torch.float64"),
           (4, torch.zeros(4, dtype=torch.float64), "mind must be torch.float32; got torch.float64"),
           (2, 2 ** 31, "d must be an int in the i32 range; got 2147483648"),
           (8, 2.0, "count must be an int in the i32 range; got 2.0"),
           (5, [0], "gidx must be a torch.int64 tensor; got list"),
           (7, torch.zeros(10, dtype=torch.int64)[::2], "ring must be contiguous"),
           (0, torch.zeros(3, 4).t(), "x must be 2-D rows with unit column stride; got shape (4, 3), "
                                      "strides (1, 4)")]
    for pos, value, message in bad:
        args = good[:pos] + (value,) + good[pos + 1:]
        with pytest.raises(ValueError, match=re.escape(message)):
            loader.check_args("fps_run", args, allow_cpu=True)
    log = "kernel.cu(1): error: first\n" + "x" * 5000 + "\n1 error detected"
    clipped = loader._clip(log)  # a compiler log keeps its first error and its last lines
    assert len(clipped) < 2100 and clipped.startswith("kernel.cu(1): error") and clipped.endswith("detected")
    half = x.to(torch.bfloat16)
    assert loader.check_args("pair_dist", (half, ring, half, ring, 4, 3, 3, 3, 0, torch.zeros(4)),
                             allow_cpu=True) == "bf16"


@pytest.mark.may_skip
@pytest.mark.skipif(GPU, reason="checks the messages of a machine without CuPy or a GPU")
def test_launch_calls_cupy_as_its_api_says(monkeypatch):
    """One plain module (built without CuPy's enable_cooperative_groups, which CuPy 13 to
    14.1 build as relocatable code needing libcudadevrt); a persistent launch passes the
    flag to the RawKernel's Function, whose call takes it (the RawKernel's own call passes
    its own: a second one is a TypeError) with torch's current stream (its address as the
    stream's .ptr, all CuPy reads); tensors go as their addresses, numpy uint64
    (8 bytes: a pointer parameter), ints as int64 / int32. A stand-in for CuPy records it."""
    import contextlib
    import sys
    import types

    import torch
    calls, kinds = [], []

    class Function:  # cupy.cuda.function.Function.__call__'s signature
        def __call__(self, grid, block, args, shared_mem=0, stream=None,
                     enable_cooperative_groups=False):
            calls.append(("launch", grid, block, len(args), shared_mem, stream.ptr,
                          enable_cooperative_groups))
            kinds.append([type(a) for a in args])

    class RawKernel:
        kernel = Function()

        def __call__(self, grid, block, args, **kwargs):
            self.kernel(grid, block, args, enable_cooperative_groups=False, **kwargs)

    class RawModule:
        def __init__(self, *, code=None, options=(), **kwargs):
            calls.append(("module", options, kwargs))

        def get_function(self, name):
            return RawKernel()

    fake = types.ModuleType("cupy")
    fake.RawModule = RawModule
    fake.cuda = types.SimpleNamespace(Device=lambda d: contextlib.nullcontext(),
                                      driver=types.SimpleNamespace(CUDADriverError=RuntimeError))
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setattr(loader, "check_args", lambda name, args: "f32")
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device: types.SimpleNamespace(cuda_stream=77))
    loader._module.cache_clear()
    loader._function.cache_clear()
    try:
        x = torch.zeros(4, 2)
        ints = torch.zeros(4, dtype=torch.int64)
        args = (x, 4, 2, 2, x[:, 0], ints, 0, ints, 3, -1, 0, 1, ints.int(), 0, ints.int(), ints)
        loader.launch("fps_run", 2, args, cooperative=True)
        loader.launch("fps_run", 2, args)
        assert loader.build_reason.__wrapped__(0) is None
    finally:
        loader._module.cache_clear()
        loader._function.cache_clear()
    modules = [c for c in calls if c[0] == "module"]
    assert modules == [("module", ("--std=c++17",), {})]  # one build, no cooperative flag
    launched = [c for c in calls if c[0] == "launch"]
    assert launched == [
        ("launch", (2,), (loader.THREADS,), 16, 0, 77, True),
        ("launch", (2,), (loader.THREADS,), 16, 0, 77, False)]  # on torch's current stream
    want = {"x": np.uint64, "i64": np.int64, "i32": np.int32}
    assert kinds[0] == [want.get(kind, np.uint64) for _, kind in loader.SIGNATURES["fps_run"]]


@pytest.mark.may_skip
@pytest.mark.skipif(GPU, reason="checks a machine without CuPy or a GPU")
def test_unavailable_without_cupy_or_gpu():
    reason = backends.why_not("cuda")
    assert reason is not None and ("cupy" in reason.lower() or "device" in reason or "torch" in reason)
    assert "cuda" in hminsel.info()
    with pytest.raises(RuntimeError, match="backend 'cuda' cannot run this call"):
        hminsel.select(np.random.rand(10, 3), 3, backend="cuda")


def test_import_pulls_in_nothing():
    code = ("import hminsel, hminsel.backends.cuda, hminsel.cuda.loader, sys; "
            "assert 'cupy' not in sys.modules and 'torch' not in sys.modules")
    subprocess.run([os.sys.executable, "-c", code], check=True)
