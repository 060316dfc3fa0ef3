#!/usr/bin/env bash
# The GPU check in one call: install the checkout offline, run the GPU tests and
# probes on the real kernels, then the GPU benchmarks; after every phase $OUT gets
# the results so far (gpu_check.md, logs.tar.gz) and the last lines printed are a
# short table.
#
#     HMINSEL_COMMIT=abc1234 bash benchmarks/gpu_check.sh   # full check: 252 s on an H200 (2026-12-04,
#                                                           # before the profile phase)
#     bash benchmarks/gpu_check.sh --quick     # fewer tests and cases, about 3 min
#     bash benchmarks/gpu_check.sh --dry-run   # the same script on a CPU machine (Triton
#                                              # interpreter, CUDA emulator, tiny shapes), < 3 min
#
# Needs python3 with torch, triton, numpy, pytest (pytest-timeout, cupy and
# pybind11 when present); no registry: the install is --no-build-isolation --no-deps.
# Peers the GPU image lacks (torch-fps) travel as wheels in .whl/: run
# `bash benchmarks/gpu_wheels.sh` here first and carry `.whl` in the device call.
# Skips fail (HMINSEL_NO_SKIP=1 / the GPU flags): a backend that did not load
# cannot pass as green. The exit code is non-zero when any phase failed.
#
# Budget on an H200 (seconds seen on 2026-12-04, or an estimate ~, / cap), in the order run:
#   env        8 /  60   nvidia-smi, versions, the CUDA kernels' NVRTC builds (a cold CuPy)
#   install    3 /  90   pip -e . (offline) without the C++ extension; the extension builds
#                        in the background meanwhile (about 40 s on 16 cores)
#   probes     9 /  90   one cooperative launch; a step over > 2^31 elements, both backends
#   cpu       20 /  60   waits for the extension, `hminsel info` (the benchmarks compare with it)
#   bench     20 / 100   bench_gpu.py seed/persistent/batched/launch, each case checked first
#   bench_step 8 / 60    the streaming step at 1M x 1024 against a device copy (its own process:
#                        the first cooperative launch at full size)
#   bench_hmin 32 / 60   hmin 1M x 768 against one x @ x.T
#   bench_lazy 22 / 90   lazy FPS k = 100k of 1M x 1024, the pure-PyTorch loop
#   profile  ~90 / 150   gpu_profile.py: torch.profiler over select_batched, the seed workload
#                        and the persistent kernel; ncu over one persistent and one batched launch
#   tests     27 / 220   Triton + CUDA tests on the GPU. Most of it is JIT compiles: about
#                        180 Triton specialisations (0.3-1 s each) and 10 nvcc builds in
#                        the full mode, so one process needs 150-250 s (cap 280 then); with
#                        pytest-xdist (in the image) the files run in 7 processes, one each
#   tests_dist 40 / 120  tests/test_distributed_device.py: gloo ranks on GPU shards (full mode)
#   sanitize  61 / 100   compute-sanitizer memcheck (both backends) and racecheck (cuda) over
#                        benchmarks/gpu_sanitize.py's tiny calls (full mode, last); a runtime
#                        that refuses the tool (gVisor) is noted, not failed
#   total   ~340 / 1190  (252 without profile) the caps add up to more than a device call's 10 min, so each phase
#                        also stops where HMINSEL_CHECK_BUDGET (default 480 s from the start:
#                        with a machine's 1-2 min start, 15 device minutes keep about 5 for a
#                        rerun on the warm machine;
#                        3600 in the dry run) would be passed, and one that would get under
#                        15 s is skipped: the table and the logs always come back.
# A rerun on the warm machine: HMINSEL_CHECK_PHASES="tests tests_dist" (say) runs only those
# phases (env, install and cpu always; an unknown name exits 2). The device's tree has no .git: pass HMINSEL_COMMIT=<hash>.
# --quick: tests = the select-level files (cap 100); no bench_hmin, bench_lazy or tests_dist.
# --dry-run: one of the --quick test files (the full suite runs them all anyway), every bench
# case at tiny sizes; about 2.5 min on 2 quiet cores.
set -uo pipefail
cd "$(dirname "$0")/.."
MODE=full
case "${1:-}" in
    "") ;;
    --quick) MODE=quick ;;
    --dry-run) MODE=dry ;;
    *) echo "usage: bash benchmarks/gpu_check.sh [--quick | --dry-run]; got '$1'" >&2; exit 2 ;;
esac
# The device returns at most 8 files from $OUT: the phases write their logs in a folder
# of their own, and after every phase $OUT gets gpu_check.md, logs.tar.gz, bench_gpu.json
# and probes.jsonl afresh, so a device call cut short still brings back what ran.
RESULT="${OUT:-$(mktemp -d)}"; WORK=$(mktemp -d); OUT="$WORK/logs"; mkdir -p "$OUT" "$RESULT"
export OUT MODE PYTHONUNBUFFERED=1 HMINSEL_NO_SKIP=1
# CuPy 14 compiles with the CUDA headers it finds (wheels, conda, CUDA_PATH, /usr/local/cuda)
[ -z "${CUDA_PATH:-}" ] && [ -d /usr/local/cuda/include ] && export CUDA_PATH=/usr/local/cuda
# the device's copy of the tree has no .git: pass HMINSEL_COMMIT=<hash> on the command line there
export HMINSEL_COMMIT="${HMINSEL_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet HEAD 2>/dev/null || echo +dirty)}"
if [ "$MODE" = dry ]; then
    TESTS_ENV=(); BENCH_ENV=(TRITON_INTERPRET=1); BENCH_ARGS=(--tiny)  # tests: the fixtures interpret
else
    TESTS_ENV=(HMINSEL_TRITON_GPU=1 HMINSEL_CUDA_GPU=1); BENCH_ENV=(); BENCH_ARGS=()
fi
SUMMARY="$OUT/phases.tsv"; : > "$SUMMARY"
STATUS=0

# phase NAME CAP CMD...: runs CMD under `timeout CAP`, its output in $OUT/NAME.log (and
# the tail on stdout), one line "name rc seconds cap" in phases.tsv. The cap shrinks to
# what is left of BUDGET (rc 124 when the phase is skipped for want of time).
BUDGET=${HMINSEL_CHECK_BUDGET:-$([ "$MODE" = dry ] && echo 3600 || echo 480)}  # dry: no device call to fit
# a rerun: only these phases (and env, install, cpu: the others need them), e.g. "tests tests_dist"
ALL_PHASES=" env install probes cpu bench bench_step bench_hmin bench_lazy profile tests tests_dist sanitize "
set -f  # the names as given: no file-name expansion of a '*'
read -ra _phases <<< "$(tr ',\n\t' '   ' <<< "${HMINSEL_CHECK_PHASES:-}")"
PHASES=" ${_phases[*]} "
for p in "${_phases[@]}"; do
    [[ "$ALL_PHASES" == *" $p "* ]] || { echo "HMINSEL_CHECK_PHASES: no phase '$p'; phases:$ALL_PHASES" >&2; exit 2; }
done
set +f
phase() {
    local name=$1 cap=$2; shift 2
    local t0=$SECONDS rc left=$((BUDGET - SECONDS))
    if [ "$PHASES" != "  " ] && [[ "$PHASES" != *" $name "* ]] && [[ " env install cpu " != *" $name "* ]]; then
        echo "-- $name: not in HMINSEL_CHECK_PHASES"
        return 0
    fi
    if [ "$left" -lt 15 ]; then
        echo "!! $name: skipped, ${left}s left of the ${BUDGET}s budget"
        printf '%s\t%s\t%s\t%s\n' "$name" 124 0 "$cap" >> "$SUMMARY"; STATUS=1
        return 124
    fi
    [ "$left" -lt "$cap" ] && cap=$left
    echo "== $name (cap ${cap}s): $*"
    timeout --kill-after=10 "$cap" bash -c '"$@"' _ "$@" > "$OUT/$name.log" 2>&1  # functions too
    rc=$?
    tail -n 8 "$OUT/$name.log"
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && echo "!! $name: timed out after ${cap}s"
    printf '%s\t%s\t%s\t%s\n' "$name" "$rc" "$((SECONDS - t0))" "$cap" >> "$SUMMARY"
    [ $rc -eq 0 ] || STATUS=1
    snapshot
    return $rc
}

snapshot() {  # the results so far into $RESULT, each file replaced whole
    python3 benchmarks/gpu_results.py "$OUT" > "$RESULT/.gpu_check.md" \
        && mv -f "$RESULT/.gpu_check.md" "$RESULT/gpu_check.md"
    cp "$OUT/bench_gpu.json" "$OUT/probes.jsonl" "$RESULT/" 2>/dev/null
    tar czf "$RESULT/.logs.tar.gz" --warning=no-file-changed -C "$WORK" logs  # rc 1: a log grew
    [ $? -le 1 ] && mv -f "$RESULT/.logs.tar.gz" "$RESULT/logs.tar.gz"
}

env_info() {
    nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm,clocks.max.mem --format=csv \
        || echo "nvidia-smi: not available (mode $MODE)"
    python3 - <<'EOF'
import importlib, platform, sys
print("python", sys.version.split()[0], platform.machine())
for name in ("numpy", "torch", "triton", "cupy", "pytest", "pytest_timeout", "pybind11", "setuptools",
             "torch_fps"):  # setuptools: below 77 the offline install needs pyproject's license table
    try:
        mod = importlib.import_module(name)
        print(name, getattr(mod, "__version__", "?"))
    except Exception as exc:
        print(name, "not importable:", type(exc).__name__)
import torch
print("cuda available:", torch.cuda.is_available(),
      torch.cuda.get_device_name() if torch.cuda.is_available() else "")
from hminsel.cuda import loader  # the checkout's, before the install: the NVRTC build now, so
reason = loader.cupy_reason()    # the log names a failure first, and CuPy's cache holds it
if reason is None:
    print("cuda kernels: NVRTC build", loader.build_reason(0) or "ok", "| cooperative launches",
          loader.cooperative_reason(0) or "ok")
else:
    print("cuda kernels:", reason)
EOF
    command -v nvcc > /dev/null && nvcc --version | tail -n 2 || echo "nvcc: not on PATH"
    echo "commit $HMINSEL_COMMIT, mode $MODE"
}

pytest_args() {  # the common flags; a per-test timeout when pytest-timeout is there
    local name=$1
    echo "-q -rfEs -p no:cacheprovider --durations=15 --junitxml=$OUT/$name.xml"
    # thread method: a test stuck in a device sync (a signal cannot interrupt it) ends its
    # process after the dump, not the phase's whole cap later
    python3 -c "import pytest_timeout" 2>/dev/null && echo "--timeout=150 --timeout-method=thread"
}

parallel_args() {  # N processes, one test file each (JIT compiles spread over the cores, and a
    # sticky CUDA error ends one file's run, not all of them); nothing without pytest-xdist
    python3 -c "import xdist" 2>/dev/null && echo "-n $1 --dist loadfile"
}

build_ext() {  # into a folder of its own: no .so is replaced under a running test
    local build rc; build=$(mktemp -d)
    local so; so="hminsel/_cpu$(python3 -c 'import sysconfig; print(sysconfig.get_config_var("EXT_SUFFIX"))')"
    if [ -f "$so" ] && { [ "$MODE" = dry ] || [ -z "$(find csrc setup.py -newer "$so" | head -n 1)" ]; }; then
        # the dry run (CI) takes the extension the checkout built already: on one niced core of
        # two a second build took 3-4 min; a GPU run takes the one its first run built (this
        # Python's; the machine keeps it while warm) when no C++ source is newer than it (the
        # copied tree keeps its times, or has newer ones: then it builds its own)
        mkdir -p "$build/lib/hminsel" && cp "$so" "$build/lib/hminsel/"; rc=$?
        echo "the checkout's own extension ($so), built before this run"
    else
        local jobs=$(( $(nproc) / 2 )); [ "$jobs" -ge 1 ] || jobs=1  # beside the tests' JIT compiles
        HMINSEL_BUILD_JOBS=$jobs nice -n 10 python3 setup.py build_ext -b "$build/lib" -t "$build/tmp"; rc=$?
    fi
    echo "$build/lib" > "$OUT/build_ext.dir"; echo $rc > "$OUT/build_ext.rc"
}

wait_cpu() {  # the background build, then the .so into the checkout (tests are done)
    while [ ! -s "$OUT/build_ext.rc" ]; do sleep 1; done
    local rc; rc=$(cat "$OUT/build_ext.rc")
    tail -n 3 "$OUT/build_ext.log"
    [ "$rc" = 0 ] || { echo "the C++ extension build failed (rc $rc)"; return 1; }
    local so; so=$(ls "$(cat "$OUT/build_ext.dir")"/hminsel/_cpu*.so) || return 1
    cp "$so" "hminsel/.new.so" && mv -f "hminsel/.new.so" "hminsel/$(basename "$so")"  # a new inode
    rm -rf "$(dirname "$(cat "$OUT/build_ext.dir")")"  # the build's own temporary folder
    python3 -m hminsel info
    python3 -c "from hminsel import backends; r = backends.why_not('cpu'); assert r is None, r; print('cpu backend: ok')"
}

sanitize() {  # memcheck and racecheck over tiny calls of every kernel; the dry run: the calls
    if [ "$MODE" = dry ]; then TRITON_INTERPRET=1 python3 benchmarks/gpu_sanitize.py --cpu; return; fi
    local bin="${CUDA_PATH:-/usr/local/cuda}/bin"  # the toolkit's, when PATH lacks it
    [ -x "$bin/compute-sanitizer" ] && ! command -v compute-sanitizer > /dev/null && PATH="$PATH:$bin"
    # a missing tool is the image's gap, not a kernel error: said, not failed
    command -v compute-sanitizer > /dev/null || { echo "compute-sanitizer: not found (PATH, $bin): not run"; return 0; }
    local rc=0
    sanitize_tool memcheck 45 || rc=1  # 27 s on the H200 (2026-12-04)
    # the persistent kernel's shared memory; every call of the cuda backend ran past 30 s
    sanitize_tool racecheck 40 --backend cuda --select-only || rc=1
    return $rc
}

sanitize_tool() {  # TOOL CAP ARGS...: one compute-sanitizer run, its report in sanitize_TOOL.txt
    local tool=$1 cap=$2 rc; shift 2
    # no caching allocator: an access past a tensor's end is past its allocation
    PYTORCH_NO_CUDA_MEMORY_CACHING=1 timeout --kill-after=5 "$cap" compute-sanitizer --tool "$tool" \
        --error-exitcode 3 --print-limit 20 python3 benchmarks/gpu_sanitize.py "$@" \
        > "$OUT/sanitize_$tool.txt" 2>&1
    rc=$?
    tail -n 25 "$OUT/sanitize_$tool.txt"
    if grep -qi "device not supported" "$OUT/sanitize_$tool.txt"; then
        echo "$tool: this runtime refuses compute-sanitizer (not a kernel error)"; return 0
    fi
    echo "$tool: rc $rc (3: errors found; 1: a wrong answer; 124: timed out)"
    return $rc
}

profile() {  # where the time of the cases that missed goes: torch.profiler's ops, then ncu
    local tiny=() rc=0; [ "$MODE" = dry ] && tiny=(--tiny) && export TRITON_INTERPRET=1
    for case in batched seed persistent; do
        echo "== gpu_profile.py $case"; python3 benchmarks/gpu_profile.py "$case" "${tiny[@]}" || rc=1
    done
    [ "$MODE" = dry ] && return $rc
    local bin="${CUDA_PATH:-/usr/local/cuda}/bin"
    [ -x "$bin/ncu" ] && ! command -v ncu > /dev/null && PATH="$PATH:$bin"
    command -v ncu > /dev/null || { echo "ncu: not found (PATH, $bin): not run"; return $rc; }
    ncu_case persistent fps_run
    ncu_case batched cloud_kernel
    return $rc
}

ncu_case() {  # CASE KERNEL: ncu's speed of light, occupancy and stall reasons of one launch
    timeout --kill-after=5 60 ncu -k "regex:$2" --launch-skip 1 --launch-count 1 \
        --section SpeedOfLight --section Occupancy --section LaunchStats --section WarpStateStats \
        --section SchedulerStats python3 benchmarks/gpu_profile.py "$1" --once > "$OUT/ncu_$1.txt" 2>&1
    echo "ncu $1 ($2): rc $? (a refusing runtime is not a kernel error)"
    grep -E "Duration|Throughput|Achieved Occupancy|Registers Per|Stall|Warp Cycles Per|Block Limit|ERR" \
        "$OUT/ncu_$1.txt" | head -n 40
}

export -f env_info wait_cpu sanitize sanitize_tool profile ncu_case
rm -f "$OUT/build_ext.rc" "$OUT/build_ext.dir"
if compgen -G ".whl/*.whl" > /dev/null; then  # peers carried as wheels (benchmarks/gpu_wheels.sh)
    python3 -m pip install --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target /tmp/hminsel-peers .whl/*.whl > "$OUT/peers.log" 2>&1 \
        && export PYTHONPATH="/tmp/hminsel-peers${PYTHONPATH:+:$PYTHONPATH}" \
        || echo "!! peers: the wheels in .whl did not install (logs: peers.log)"
else
    echo "!! peers: no .whl/*.whl (run bash benchmarks/gpu_wheels.sh here, carry .whl): torch-fps not timed"
fi
phase env 60 env_info
phase install 90 env HMINSEL_SKIP_EXT=1 PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_BREAK_SYSTEM_PACKAGES=1 \
    python3 -m pip install --no-index --no-build-isolation --no-deps -e .
build_ext > "$OUT/build_ext.log" 2>&1 &
# shellcheck disable=SC2046
phase probes 90 env "${TESTS_ENV[@]}" python3 -m pytest -s $(pytest_args probes) tests/test_gpu_probes.py
# dry: the build runs on one core (nproc / 2 of 2), niced beside the probes: 90-150 s on the CI
# machine, where a GPU machine's 16 cores take about 40 s
phase cpu "$([ "$MODE" = dry ] && echo 300 || echo 60)" wait_cpu

# the measurements before the tests: they are what only a GPU can say, and the tests can be
# rerun alone (HMINSEL_CHECK_PHASES="tests tests_dist"); each group its own process, so a
# sticky CUDA error in one (the step's first 1M x 1024 cooperative launch, say) spares the rest
rm -f "$OUT/bench_gpu.jsonl"
phase bench 100 env "${BENCH_ENV[@]}" python3 benchmarks/bench_gpu.py "${BENCH_ARGS[@]}" \
    --only seed persistent batched launch
phase bench_step 60 env "${BENCH_ENV[@]}" python3 benchmarks/bench_gpu.py "${BENCH_ARGS[@]}" --only step
if [ "$MODE" != quick ]; then
    phase bench_hmin 60 env "${BENCH_ENV[@]}" python3 benchmarks/bench_gpu.py "${BENCH_ARGS[@]}" --only hmin
    phase bench_lazy 90 env "${BENCH_ENV[@]}" python3 benchmarks/bench_gpu.py "${BENCH_ARGS[@]}" \
        --only torch_loop lazy
fi

# where the time of the cases that missed their targets goes (not in --quick)
[ "$MODE" = quick ] || phase profile 150 profile

PARALLEL=""
if [ "$MODE" != full ]; then
    TEST_FILES=(tests/test_triton_select.py tests/test_triton_batched.py tests/test_cuda_backend.py)
    # dry: the script's phase on one file (CI's test command runs them all already)
    [ "$MODE" = dry ] && TEST_FILES=(tests/test_triton_batched.py)
    TEST_CAP=$([ "$MODE" = dry ] && echo 240 || echo 100)
    [ "$MODE" = quick ] && PARALLEL=$(parallel_args 2)
else
    TEST_FILES=(tests/test_triton.py tests/test_triton_select.py tests/test_triton_batched.py
                tests/test_triton_head_tiled.py tests/test_triton_bucket.py tests/test_cuda.py
                tests/test_cuda_backend.py tests/test_batched_device_rows.py)
    PARALLEL=$(parallel_args 7)
    TEST_CAP=$([ -n "$PARALLEL" ] && echo 220 || echo 280)  # one process: 150-250 s (see above)
fi
# shellcheck disable=SC2046,SC2086
phase tests "$TEST_CAP" env "${TESTS_ENV[@]}" python3 -m pytest $(pytest_args tests) $PARALLEL "${TEST_FILES[@]}"
if [ "$MODE" = full ]; then  # last, with what time is left: hminsel.distributed on GPU shards
    # (gloo ranks sharing the one GPU; each rank compiles what the Triton cache lacks)
    # shellcheck disable=SC2046
    phase tests_dist 120 env "${TESTS_ENV[@]}" python3 -m pytest $(pytest_args tests_dist) \
        tests/test_distributed_device.py
fi
[ "$MODE" = quick ] || phase sanitize 100 sanitize  # last: memory errors the tests cannot see
# (the two runs' caps and kill grace, 45 + 5 and 40 + 5 s, fit the phase's 100)

snapshot && rm -rf "$WORK"
echo
echo "== table ($MODE, commit $HMINSEL_COMMIT; $RESULT: gpu_check.md, logs.tar.gz, bench_gpu.json)"
grep '^|' "$RESULT/gpu_check.md" | cut -c1-160
echo "gpu_check: $([ $STATUS -eq 0 ] && echo PASSED || echo FAILED) ($MODE)"
exit $STATUS
