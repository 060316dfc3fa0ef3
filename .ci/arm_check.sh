#!/usr/bin/env bash
# The C++ backend on 64-bit ARM (NEON), from an x86-64 Debian machine: cross-compile
# csrc/cpu with aarch64-linux-gnu-g++ against Debian's arm64 Python 3.11 and NumPy,
# then run the kernel tests in that Python under qemu-aarch64 (user mode, no VM).
#
#     bash .ci/arm_check.sh                  # build, then the kernel tests (~4 min under qemu)
#     bash .ci/arm_check.sh --compile-only   # build, import and a smoke check (~2 min on 2 cores)
#     bash .ci/arm_check.sh tests/test_select.py ...   # build, then these tests
#
# Needs root and Debian's package registry (apt-get: the cross compiler, qemu-user and
# the arm64 packages, unpacked into $HMINSEL_ARM_ROOT, default /tmp/hminsel-arm, never
# installed). Without them it says so and exits 0; HMINSEL_REQUIRE_ARM=1 makes that a
# failure. Compile errors and failing tests always fail. The build flags are setup.py's
# (no -march: baseline ARMv8-A, NEON), the checkout is copied, not touched.
set -euo pipefail
cd "$(dirname "$0")/.."
root=${HMINSEL_ARM_ROOT:-/tmp/hminsel-arm}
mode=tests
tests=(tests/test_primitives.py tests/test_input_scan.py tests/test_bucket.py)
if [ "${1:-}" = "--compile-only" ]; then
    mode=compile
elif [ $# -gt 0 ]; then
    tests=("$@")
fi

skip() {
    echo "arm check skipped: $1"
    [ "${HMINSEL_REQUIRE_ARM:-0}" = 1 ] && exit 1
    exit 0
}

# The arm64 packages Python 3.11, NumPy and the extension's runtime (OpenMP, libstdc++) need.
debs=(python3.11-minimal libpython3.11-minimal libpython3.11-stdlib libpython3.11-dev python3-numpy
      libc6 libexpat1 zlib1g libffi8 libgcc-s1 libstdc++6 libgomp1 libopenblas0-pthread libgfortran5
      libbz2-1.0 liblzma5 libssl3 libncursesw6 libtinfo6 libuuid1 libcrypt1)

if [ ! -x "$root/sysroot/usr/bin/python3.11" ]; then
    command -v apt-get > /dev/null && [ "$(id -u)" = 0 ] || skip "needs root and apt-get (Debian)"
    if ! command -v aarch64-linux-gnu-g++ > /dev/null || ! command -v qemu-aarch64 > /dev/null; then
        apt-get install -y -q g++-aarch64-linux-gnu qemu-user > "$root.apt.log" 2>&1 \
            || skip "apt-get install g++-aarch64-linux-gnu qemu-user failed (see $root.apt.log)"
    fi
    dpkg --add-architecture arm64
    apt-get update -q > "$root.apt.log" 2>&1 || skip "apt-get update failed (see $root.apt.log)"
    mkdir -p "$root/debs" "$root/sysroot"
    chmod 777 "$root/debs"  # apt-get download drops to its own user
    (cd "$root/debs" && apt-get download "${debs[@]/%/:arm64}" > "$root.apt.log" 2>&1) \
        || skip "apt-get download of the arm64 packages failed (see $root.apt.log)"
    for deb in "$root"/debs/*.deb; do dpkg -x "$deb" "$root/sysroot"; done
    lib=$root/sysroot/usr/lib/aarch64-linux-gnu  # the links update-alternatives would make
    for so in libblas.so.3 liblapack.so.3 libopenblas.so.0; do ln -sf "openblas-pthread/$so" "$lib/$so"; done
fi
sysroot=$root/sysroot
pure=$root/pure  # pure-Python packages for the tests (below)
pybind=$(python3 -c "import pybind11; print(pybind11.get_include())" 2>/dev/null) \
    || skip "pybind11 (its headers) is not installed for python3"

echo "== cross-compiling csrc/cpu for aarch64 (at ${SECONDS} s)"
pkg=$root/pkg
rm -rf "$pkg" "$root/obj" && mkdir -p "$pkg" "$root/obj"
git ls-files -z hminsel tests | tar --null -T - -cf - | tar -x -C "$pkg"
flags=(-O3 -std=c++17 -fPIC -fopenmp -ffp-contract=off -falign-functions=64 -falign-loops=64
       -fvisibility=hidden -Wall -Wno-unknown-pragmas -Icsrc/cpu "-I$pybind"
       "-I$sysroot/usr/include/python3.11" "-I$sysroot/usr/include")
printf '%s\n' csrc/cpu/*.cpp | xargs -P "$(nproc)" -I{} sh -c \
    'aarch64-linux-gnu-g++ "$@" -c {} -o "'"$root"'/obj/$(basename {} .cpp).o"' _ "${flags[@]}"
aarch64-linux-gnu-g++ -shared -fopenmp "$root"/obj/*.o -o "$pkg/hminsel/_cpu.cpython-311-aarch64-linux-gnu.so"

arm_python() {
    QEMU_LD_PREFIX=$sysroot PYTHONHOME=$sysroot/usr \
        PYTHONPATH=$pkg:$sysroot/usr/lib/python3/dist-packages:$pure \
        qemu-aarch64 "$sysroot/usr/bin/python3.11" "$@"
}
echo "== import and a smoke check under qemu-aarch64 (at ${SECONDS} s)"
cd "$pkg"  # its hminsel, not the checkout's (Python puts the current directory first)
arm_python -c "
import platform, numpy as np, hminsel, hminsel._cpu as c
from hminsel import backends
assert backends.why_not('cpu') is None, backends.why_not('cpu')
assert c.__file__.startswith('$pkg'), c.__file__
print(platform.machine(), 'numpy', np.__version__, 'simd:', c.simd())
rng = np.random.default_rng(0)
x = rng.standard_normal((3000, 40)).astype(np.float32)
for dtype in (np.float32, np.float16, np.float64):
    for algorithm in ('streaming', 'lazy'):
        got = hminsel.select(x.astype(dtype), 300, algorithm=algorithm, backend='cpu')
        want = hminsel.select(x.astype(dtype), 300, algorithm='streaming', backend='numpy')
        assert np.array_equal(got.indices, want.indices), (dtype, algorithm)
pts, ptr = rng.random((8 * 500, 3)).astype(np.float32), np.arange(9) * 500
got = hminsel.select_batched(pts, 60, ptr=ptr, backend='cpu')
want = hminsel.select_batched(pts, 60, ptr=ptr, backend='numpy')
assert np.array_equal(got.indices, want.indices)
assert hminsel.hmin(x, backend='cpu')[1:] == hminsel.hmin(x, backend='numpy')[1:]  # the pair
d, i = hminsel.nearest(x, x[:50], backend='cpu')
assert np.array_equal(i, hminsel.nearest(x, x[:50], backend='numpy')[1])
print('select (3 dtypes, streaming and lazy), select_batched, hmin, nearest: as the numpy backend')"
[ "$mode" = compile ] && { echo "== done in ${SECONDS} s"; exit 0; }

# pytest and hypothesis are pure Python: this machine's copies serve the arm64 Python too.
rm -rf "$pure" && mkdir -p "$pure"
site=$(python3 -c "import pytest, os; print(os.path.dirname(os.path.dirname(pytest.__file__)))" 2>/dev/null) \
    || skip "pytest is not installed for python3"
for mod in pytest _pytest pluggy iniconfig packaging pygments hypothesis sortedcontainers attr \
           typing_extensions.py exceptiongroup py.py; do
    [ -e "$site/$mod" ] && ln -s "$site/$mod" "$pure/$mod"
done
echo "== kernel tests under qemu-aarch64 (at ${SECONDS} s): ${tests[*]}"
# not the Ctrl-C tests: they bound a native call's reaction in wall-clock seconds, which
# an emulator 10-50x slower than the machine does not keep
HMINSEL_REQUIRE_CPU=1 arm_python -m pytest -q -p no:cacheprovider -k "not ctrl_c" "${tests[@]}"
echo "== done in ${SECONDS} s"
