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

Compiled objects are kept in build/hminsel-objects/, named by a hash of all
that went into them (the source and every header, the flags, the compiler,
Python, pybind11 and this CPU's feature flags), so a later install of the
same tree (`pip install -e ".[test]"` after `".[demo]"`: pip builds each in a
fresh directory) relinks in seconds instead of compiling for minutes.
HMINSEL_NO_OBJECT_CACHE=1 compiles everything afresh.
"""
import glob
import hashlib
import os
import shutil
import subprocess
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
        cache = ObjectCache(self.compiler, self.build_temp)
        try:
            for ext in self.extensions:
                cache.restore(ext)
        except Exception as exc:  # never fail a build over the cache: compile everything
            print(f"hminsel: the object cache is off for this build ({exc})", file=sys.stderr)
            RESTORED.clear()
            cache.pending.clear()
        super().build_extensions()
        try:
            cache.store()
        except OSError as exc:
            print(f"hminsel: compiled objects not kept ({exc})", file=sys.stderr)

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


RESTORED = set()  # objects ObjectCache put in place: ParallelCompile compiles every other one


class ObjectCache:
    """Objects by the hash of their inputs (module docstring): ``restore`` puts the cached ones
    where the compile step looks (ParallelCompile then skips them), ``store`` keeps the rest."""

    DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "build", "hminsel-objects")

    def __init__(self, compiler, build_temp):
        self.compiler, self.build_temp = compiler, build_temp
        self.pending = {}
        self.off = os.environ.get("HMINSEL_NO_OBJECT_CACHE") == "1"

    def _setting(self, ext) -> bytes:
        """All an object depends on besides its source: headers, flags, tools, the CPU."""
        parts = [sys.version, getattr(sys, "abiflags", ""), self._tool_version(), self._cpu_flags(),
                 repr(ext.extra_compile_args), repr(ext.define_macros), repr(ext.undef_macros),
                 repr([a for a in getattr(self.compiler, "compiler_so", []) if not a.startswith("-I")])]
        try:
            import pybind11
            parts.append(pybind11.__version__)
        except ImportError:
            pass
        digest = hashlib.sha256("\0".join(parts).encode())
        for header in sorted(ext.depends):
            with open(header, "rb") as f:
                digest.update(f.read())
        return digest.digest()

    def _tool_version(self) -> str:
        try:
            return subprocess.run([self.compiler.compiler_so[0], "--version"], capture_output=True,
                                  text=True, timeout=60).stdout
        except Exception:
            return "?"

    @staticmethod
    def _cpu_flags() -> str:
        """-march=native builds for this CPU: a tree shared with another machine must not reuse them."""
        try:
            with open("/proc/cpuinfo") as f:
                return next((line for line in f if line.startswith(("flags", "Features"))), "")
        except OSError:
            import platform
            return platform.processor()

    def restore(self, ext):
        if self.off:
            return
        setting = self._setting(ext)
        objects = self.compiler.object_filenames(ext.sources, output_dir=self.build_temp)
        for src, obj in zip(ext.sources, objects):
            with open(src, "rb") as f:
                name = hashlib.sha256(setting + f.read()).hexdigest()[:32]
            cached = os.path.join(self.DIR, f"{os.path.basename(obj)}-{name}")
            if os.path.exists(cached):
                os.makedirs(os.path.dirname(obj), exist_ok=True)
                shutil.copyfile(cached, obj)
                os.utime(cached)  # recently used: kept by the pruning below
                RESTORED.add(os.path.abspath(obj))
            else:
                self.pending[obj] = cached

    def store(self, keep: int = 3):
        """Keeps the objects compiled now; of each source's, the ``keep`` used last."""
        for obj, cached in self.pending.items():
            if os.path.exists(obj):
                os.makedirs(self.DIR, exist_ok=True)
                part = f"{cached}.{os.getpid()}.part"
                shutil.copyfile(obj, part)
                os.replace(part, cached)  # whole or absent, with builds side by side
                stem = os.path.basename(cached).rsplit("-", 1)[0]
                old = sorted(glob.glob(os.path.join(self.DIR, glob.escape(stem) + "-*")),
                             key=os.path.getmtime, reverse=True)
                for path in old[keep:]:
                    if not path.endswith(".part"):
                        try:
                            os.remove(path)
                        except OSError:  # another build took it first
                            pass


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
    ParallelCompile(default=build_jobs(),
                    needs_recompile=lambda obj, src: os.path.abspath(obj) not in RESTORED).install()
else:
    print("hminsel: pybind11 not found; installing without the C++ CPU backend", file=sys.stderr)

setup(ext_modules=ext_modules,
      cmdclass={"build_ext": OptionalBuildExt, "build_py": BuildPyWithCudaSources})
