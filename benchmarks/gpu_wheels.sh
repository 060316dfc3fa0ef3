#!/usr/bin/env bash
# Run HERE (with a registry) before a device call: downloads the GPU peers that the
# GPU image lacks into .whl/ (ignored by git), for Python 3.12 on x86-64. Then name
# `.whl` in the device call's carry; gpu_check.sh installs them offline.
#     bash benchmarks/gpu_wheels.sh
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .whl
# torch-fps: pure Python + Triton (its CUDA path), a py3-none-any wheel.
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform any \
    -d .whl "torch-fps==0.6.0"
ls -l .whl
