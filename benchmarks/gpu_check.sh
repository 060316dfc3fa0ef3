#!/usr/bin/env bash
# On a GPU machine (torch, triton, numpy, pytest, pybind11 installed; no registry):
# install hminsel, run the triton tests compiled on CUDA tensors, then the GPU
# benchmarks. Logs and JSON go to $OUT when it is set.
#     bash benchmarks/gpu_check.sh            # tests + benchmarks
#     bash benchmarks/gpu_check.sh --tests    # tests only
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$(mktemp -d)}"; export OUT
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.cuda.is_available())"
pip install --no-build-isolation --no-deps -e . > "$OUT/install.log" 2>&1 || { tail -20 "$OUT/install.log"; exit 1; }
# HMINSEL_TRITON_GPU=1: the triton tests run compiled on CUDA tensors, not under the interpreter.
HMINSEL_TRITON_GPU=1 python -m pytest -q tests/test_triton.py tests/test_triton_select.py \
    2>&1 | tee "$OUT/tests.log" | tail -15
status=${PIPESTATUS[0]}
[ "${1:-}" = "--tests" ] && exit "$status"
python benchmarks/bench_gpu.py 2>&1 | tee "$OUT/bench.log" | tail -25
exit "$status"
