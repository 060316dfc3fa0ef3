#!/usr/bin/env bash
# The GPU image's Python side, here, without a GPU: before a device call, run the
# whole test suite and the GPU check's dry run under the versions that machine has
# (Python 3.12, torch 2.11, triton 3.6, cupy-cuda13x 14.2, NVRTC 13.0), so a version
# difference surfaces here, not in the 15 device minutes.
#
#     bash benchmarks/gpu_mirror.sh                 # venv in /tmp/hminsel-gpu-mirror
#     PYTHON=python3.12 MIRROR=DIR bash benchmarks/gpu_mirror.sh
#
# Needs a Python 3.12 and a registry (torch 2.11 is the CUDA build: several GB, once).
# What it shows and what it cannot: Triton kernels under triton 3.6's interpreter and
# its AOT compile for sm_90 (tests/test_triton_compile.py), the CUDA unit through
# CuPy's own NVRTC, the CuPy and torch APIs the loaders call at import; nothing runs
# on a GPU. numpy stays below 2.4 here: triton 3.6's interpreter converts 1-element
# arrays with int(), which numpy 2.4 refuses (triton 3.7 squeezes first); the GPU
# runs compiled kernels, so numpy 2.5 there is not affected.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3.12}
MIRROR=${MIRROR:-/tmp/hminsel-gpu-mirror}
PINS=(torch==2.11.0 triton==3.6.0 "numpy<2.4" cupy-cuda13x==14.2.0 nvidia-cuda-nvrtc==13.0.88
      pytest hypothesis pybind11 setuptools wheel)
if [ ! -x "$MIRROR/bin/python" ]; then
    "$PYTHON" -m venv "$MIRROR"
fi
"$MIRROR/bin/python" -m pip install -q "${PINS[@]}"
"$MIRROR/bin/python" -c "import sys, torch, triton, numpy, cupy; print('mirror:', sys.version.split()[0],
    'torch', torch.__version__, 'triton', triton.__version__, 'numpy', numpy.__version__, 'cupy', cupy.__version__)"
# the GPU check's install: the checkout, no build isolation, no dependencies
"$MIRROR/bin/python" -m pip install -q --no-build-isolation --no-deps -e .
export PATH="$MIRROR/bin:$PATH"
echo "== tests (the whole suite; DeprecationWarnings of triton 3.6's interpreter hidden)"
python -m pytest -q -p no:cacheprovider -W ignore::DeprecationWarning tests
echo "== the GPU check, dry run"
OUT=$(mktemp -d) bash benchmarks/gpu_check.sh --dry-run
