#!/usr/bin/env bash
# On a GPU machine (torch, triton, cupy, numpy, pytest, pybind11 installed; no registry):
# install hminsel, run the triton and cuda tests on the GPU, then the GPU benchmarks.
# Logs and JSON go to $OUT when it is set; the last lines are the table.
#     bash benchmarks/gpu_check.sh            # tests + benchmarks
#     bash benchmarks/gpu_check.sh --tests    # tests only
#     bash benchmarks/gpu_check.sh --bench step persistent   # benchmarks only, some cases
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$(mktemp -d)}"; export OUT PYTHONUNBUFFERED=1
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.sm,clocks.mem --format=csv | tee "$OUT/gpu.txt"
python -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__, 'cuda', torch.cuda.is_available())"
python -c "import cupy; print('cupy', cupy.__version__)" || echo "cupy: not importable (the cuda backend is skipped)"
pip install --no-build-isolation --no-deps -e . > "$OUT/install.log" 2>&1 || { tail -20 "$OUT/install.log"; exit 1; }
python -m hminsel info | head -8
status=0
if [ "${1:-}" != "--bench" ]; then
    # HMINSEL_*_GPU=1: the triton/cuda tests run on CUDA tensors and the real kernels,
    # not under the interpreter or on the emulator.
    HMINSEL_TRITON_GPU=1 HMINSEL_CUDA_GPU=1 timeout 400 python -m pytest -q -x \
        tests/test_triton.py tests/test_triton_select.py tests/test_cuda.py tests/test_cuda_backend.py \
        2>&1 | tee "$OUT/tests.log" | tail -15
    status=${PIPESTATUS[0]}
fi
[ "${1:-}" = "--tests" ] && exit "$status"
[ "${1:-}" = "--bench" ] && shift && set -- --only "$@"
python benchmarks/bench_gpu.py "$@" 2>&1 | tee "$OUT/bench.log" | tail -25
exit "$status"
