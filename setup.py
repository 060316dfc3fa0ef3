"""Builds the optional C++ extension ``hminsel._cpu`` (csrc/cpu, pybind11, OpenMP).

Metadata lives in pyproject.toml. The extension is optional: when pybind11 or
a C++ compiler is missing, or the build fails, the install still succeeds and
hminsel runs on its NumPy backend (``hminsel info`` says why).

Flags: -O3, -ffp-contract=off (no FMA contraction: every inlined copy of the
distance function rounds the same way), OpenMP when the compiler takes it,
functions and loops on 64-byte boundaries (else an unrelated edit that shifts
the code moves the hot loops' alignment: 5-10% on the lazy FPS, measured), and
-march=native unless HMINSEL_PORTABLE=1 (set it when building wheels).
HMINSEL_SKIP_EXT=1 installs without the extension (to build it separately).
The sources compile in parallel, one compiler a core this process may use
(affinity and cgroup quota, at most 8); HMINSEL_BUILD_JOBS=N sets the count.
Never -ffast-math: the summation order of the distance is part of the contract.
"""
import glob
import os
import sys

import setuptools
from setuptools import setup
from setuptools.command.build_ext import build_ext

if int(setuptools.__version__.split(".")[0]) < 61:  # reads no [project] table: "UNKNOWN 0.0.0"
    sys.exit(f"hminsel needs setuptools >= 61 to read its metadata (pyproject.toml); this build "
             f"has {setuptools.__version__} (a --no-build-isolation install uses the environment's "
             "own): pip install -U 'setuptools>=64', then install again")
from setuptools.command.build_py import build_py

try:
    from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, has_flag
except ImportError:  # no pybind11 in a --no-build-isolation install: NumPy only
    Pybind11Extension = None


class OptionalBuildExt(build_ext):
    """Adds the flags this compiler accepts; a failed build is a warning, not an error."""

    def build_extensions(self):
        for flag, use in [("-ffp-contract=off", True), ("-fopenmp", True),
                          ("-falign-functions=64", True), ("-falign-loops=64", True),
                          ("-march=native", os.environ.get("HMINSEL_PORTABLE") != "1")]:
            if use and has_flag(self.compiler, flag):
                for ext in self.extensions:
                    ext.extra_compile_args.append(flag)
                    if flag == "-fopenmp":
                        ext.extra_link_args.append(flag)
        super().build_extensions()

    def run(self):
        try:
            super().run()
        except Exception as exc:  # compiler missing or the platform refuses
            self._skip(exc)

    def build_extension(self, ext):
        try:
            super().build_extension(ext)
        except Exception as exc:  # a compile or link error
            self._skip(exc)

    @staticmethod
    def _skip(exc):
        print(f"hminsel: building the C++ CPU backend failed ({exc}); "
              "installing without it, the NumPy backend will be used", file=sys.stderr)


class BuildPyWithCudaSources(build_py):
    """Ships csrc/cuda inside the package (hminsel/cuda/src): CuPy compiles it at run time."""

    def run(self):
        super().run()
        target = os.path.join(self.build_lib, "hminsel", "cuda", "src")
        os.makedirs(target, exist_ok=True)
        for path in sorted(glob.glob("csrc/cuda/*.cu") + glob.glob("csrc/cuda/*.cuh")):
            self.copy_file(path, os.path.join(target, os.path.basename(path)))


ext_modules = []
BUILD_JOBS_MAX = 8  # compilers at once when HMINSEL_BUILD_JOBS is unset (each takes up to ~0.5 GB)


def available_cores() -> int:
    """The cores this process may use, counted as hminsel counts them at run time (CPU
    affinity capped by a cgroup quota: ``hminsel/_threads.py``, standard library only)."""
    import importlib.util
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "hminsel", "_threads.py")
    try:
        spec = importlib.util.spec_from_file_location("_hminsel_build_threads", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module.available_cores()
    except Exception:  # never fail a build over a count: the affinity alone
        return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def build_jobs() -> int:
    """Compilers at once: HMINSEL_BUILD_JOBS, else the cores this process may use (at most 8)."""
    text = os.environ.get("HMINSEL_BUILD_JOBS")
    if text is None:
        return max(1, min(BUILD_JOBS_MAX, available_cores()))
    try:
        jobs = int(text)
    except ValueError:
        jobs = 0
    if jobs < 1:
        sys.exit(f"hminsel: HMINSEL_BUILD_JOBS must be a positive integer; got {text!r}")
    return jobs


if os.environ.get("HMINSEL_SKIP_EXT") == "1":  # benchmarks/gpu_check.sh builds it beside the tests
    print("hminsel: HMINSEL_SKIP_EXT=1, installing without building the C++ CPU backend", file=sys.stderr)
elif Pybind11Extension is not None:
    ext_modules.append(Pybind11Extension(
        "hminsel._cpu",
        sorted(glob.glob("csrc/cpu/*.cpp")),
        include_dirs=["csrc/cpu"],
        depends=sorted(glob.glob("csrc/cpu/*.h")),  # a header edit rebuilds every source
        cxx_std=17,
        extra_compile_args=["-O3", "-Wno-unknown-pragmas"],
        optional=True,
    ))
    # The sources compile in parallel, one per core (setuptools compiles an
    # extension's files one at a time); HMINSEL_BUILD_JOBS=N sets the count.
    ParallelCompile(default=build_jobs()).install()
else:
    print("hminsel: pybind11 not found; installing without the C++ CPU backend", file=sys.stderr)

setup(ext_modules=ext_modules,
      cmdclass={"build_ext": OptionalBuildExt, "build_py": BuildPyWithCudaSources})
