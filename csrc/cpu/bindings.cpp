// pybind11 module hminsel._cpu: checks arguments, releases the GIL, calls the kernels.
#include <string>

#include "checks.h"
#include "kernels.h"
#include "parallel.h"

namespace hminsel {
namespace {

using I64 = int64_t;

// What this build's kernels run on (hminsel info): the instruction set it was
// compiled for (-march=native, or the baseline with HMINSEL_PORTABLE=1) and
// how float16 rows are widened.
std::string simd() {
#if defined(__AVX512F__)
  std::string s = "AVX-512, hminsel's fused float32 GEMM";
#elif defined(__AVX2__)
  std::string s = "AVX2, GEMM forms on NumPy's BLAS";
#elif defined(__ARM_NEON)
  std::string s = "NEON, GEMM forms on NumPy's BLAS";
#else
  std::string s = "baseline instructions, GEMM forms on NumPy's BLAS";
#endif
#if defined(__aarch64__)
  s += "; float16 widened by NEON";
#else
  s += cpu_has_f16c() ? "; float16 widened by F16C" : "; float16 widened in scalar code";
#endif
  return s;
}

// x: float32, float64 or float16 storage S (rows.h); mind and the rest in T = acc_t<S>.
template <typename S, typename T = acc_t<S>>
py::tuple step_t(py::handle xo, py::handle mo, I64 c) {
  auto x = checked_rows<S>(xo, "x");
  auto mind = checked<T>(mo, "mind", 1, true);
  const I64 n = x.n, d = x.d;
  need_len(mind, "mind", 0, n, "entries (one per row of x)");
  HMINSEL_REQUIRE(c >= 0 && c < n, "c must be a row of x in [0, " + std::to_string(n) + "); got " + std::to_string(c));
  const RowSource<S> xp = x.source();
  T* mp = mind.mutable_data();
  Best<T> best;
  {
    py::gil_scoped_release nogil;
    best = step(xp, n, d, mp, c);
  }
  return py::make_tuple(best.index, static_cast<double>(best.value));
}

template <typename S, typename T = acc_t<S>>
py::tuple steps_t(py::handle xo, py::handle mo, I64 c, I64 count) {
  auto x = checked_rows<S>(xo, "x");
  auto mind = checked<T>(mo, "mind", 1, true);
  const I64 n = x.n, d = x.d;
  need_len(mind, "mind", 0, n, "entries (one per row of x)");
  HMINSEL_REQUIRE(c >= 0 && c < n, "c must be a row of x in [0, " + std::to_string(n) + "); got " + std::to_string(c));
  HMINSEL_REQUIRE(count >= 0, "count must be >= 0; got " + std::to_string(count));
  py::array_t<I64> picks(count);
  py::array_t<double> values(count);
  const RowSource<S> xp = x.source();
  T* mp = mind.mutable_data();
  I64* pp = picks.mutable_data();
  double* vp = values.mutable_data();
  {
    py::gil_scoped_release nogil;
    steps(xp, n, d, mp, c, count, pp, vp);
  }
  return py::make_tuple(picks, values);
}

template <typename S, typename T = acc_t<S>>
void block_min_t(py::handle xo, py::handle yo, py::handle ro, bool self_mask, py::handle vo,
                 py::handle io) {
  auto x = checked_rows<S>(xo, "x");
  auto y = checked<T>(yo, "y", 2);
  const I64 d = x.d, m = y.shape(0);
  I64 n = x.n;
  need_len(y, "y", 1, d, "columns (d of x)");
  HMINSEL_REQUIRE(m >= (self_mask ? 2 : 1), std::string("y must have at least ") + (self_mask ? "2 rows with self_mask" : "1 row") + "; got " + describe(y));
  if (self_mask) HMINSEL_REQUIRE(m == x.n, "with self_mask y must be x; got x " + describe(xo) + ", y " + describe(y));
  const I64* rp = row_ids(ro, x.n, n);
  auto value = checked<T>(vo, "value", 1, true);
  auto index = checked<I64>(io, "index", 1, true);
  need_len(value, "value", 0, n, "entries (one per row processed)");
  need_len(index, "index", 0, n, "entries (one per row processed)");
  const RowSource<S> xp = x.source();
  const T* yp = y.data();
  T* vp = value.mutable_data();
  I64* ip = index.mutable_data();
  py::gil_scoped_release nogil;
  block_min_direct(xp, rp, n, d, yp, m, self_mask, vp, ip);
}

template <typename T>
py::tuple head_greedy_t(py::handle xo, py::handle ho, py::handle io, double tau, I64 tau_idx,
                        I64 budget) {
  auto xh = checked<T>(xo, "xh", 2);
  auto h = checked<T>(ho, "h", 1, true);
  auto hidx = checked<I64>(io, "hidx", 1);
  const I64 m = xh.shape(0), d = xh.shape(1);
  need_len(h, "h", 0, m, "entries (one per head row)");
  need_len(hidx, "hidx", 0, m, "entries (one per head row)");
  HMINSEL_REQUIRE(budget >= 0, "budget must be >= 0; got " + std::to_string(budget));
  const I64 cap = budget < m ? budget : m;  // each accepted head row is marked: at most M picks
  py::array_t<I64> picks(cap);
  py::array_t<double> values(cap);
  const T* xp = xh.data();
  T* hp = h.mutable_data();
  const I64* ip = hidx.data();
  I64* pp = picks.mutable_data();
  double* vp = values.mutable_data();
  I64 count;
  {
    py::gil_scoped_release nogil;
    count = head_greedy(xp, m, d, hp, ip, tau, tau_idx, cap, pp, vp);
  }
  picks.resize({count});
  values.resize({count});
  return py::make_tuple(picks, values);
}

}  // namespace
}  // namespace hminsel

using namespace hminsel;

// Dispatch on the dtype of the first array: float32 kernels or float64 kernels.
#define HMINSEL_DISPATCH(fn, first, ...) \
  (is_float32(first, #first) ? fn<float>(first, __VA_ARGS__) : fn<double>(first, __VA_ARGS__))
// The same on the storage of x: float32, float64 or float16 kernels.
#define HMINSEL_BY_STORAGE(fn, x, ...) \
  by_storage(x, #x, [&](auto s) { return fn<decltype(s)>(x, __VA_ARGS__); })

namespace hminsel {
void bind_refresh(py::module_& m);  // bind_refresh.cpp
void bind_batched(py::module_& m);  // bind_batched.cpp
void bind_gemm(py::module_& m);     // bind_gemm.cpp
void bind_bucket(py::module_& m);   // bind_bucket.cpp
void bind_head_gemm(py::module_& m);  // bind_head_gemm.cpp
void bind_fused(py::module_& m);    // bind_fused.cpp
void bind_fused_min(py::module_& m);  // bind_fused_min.cpp
void bind_input(py::module_& m);    // input_scan.cpp
}

PYBIND11_MODULE(_cpu, m) {
  m.doc() = "C++ CPU kernels of hminsel (see hminsel/backends/base.py for the contract).";
  bind_refresh(m);
  bind_batched(m);
  bind_gemm(m);
  bind_fused(m);
  bind_fused_min(m);
  bind_input(m);
  bind_bucket(m);
  m.def("set_threads", [](int n) { set_threads(n); }, py::arg("n"),
        "Threads every kernel uses from now on (>= 1; hminsel/_threads.py chooses it).");
  m.def("get_threads", []() { return max_threads(); }, "Threads the kernels use.");
  m.def("simd", &simd, "The instruction set the kernels were compiled for, and the float16 path.");
  bind_head_gemm(m);
  m.def("step", [](py::handle x, py::handle mind, I64 c) { return HMINSEL_BY_STORAGE(step_t, x, mind, c); },
        py::arg("x"), py::arg("mind"), py::arg("c"),
        "Fold centre c into mind (N,) in place and return (argmax, max) of mind,\n"
        "lowest index on ties; (-1, -1.0) when every point is marked. x (N, d) float32\n"
        "or float64 (float16: read as float32), mind (N,) float32 or float64 (x's sums).\n"
        "One fused pass over x on the pool's threads.");
  m.def("steps", [](py::handle x, py::handle mind, I64 c, I64 count) { return HMINSEL_BY_STORAGE(steps_t, x, mind, c, count); },
        py::arg("x"), py::arg("mind"), py::arg("c"), py::arg("count"),
        "count chained steps from centre c in one OpenMP region. Returns (picks int64\n"
        "(count,), values float64 (count,)); after an exhausted step the rest are (-1, -1.0).");
  m.def("block_min", [](py::handle x, py::handle y, py::handle rows, bool self_mask, py::handle value, py::handle index) {
          HMINSEL_BY_STORAGE(block_min_t, x, y, rows, self_mask, value, index); },
        py::arg("x"), py::arg("y"), py::arg("rows"), py::arg("self_mask"), py::arg("value"), py::arg("index"),
        "Direct-form nearest row of y (m, d) for x (N, d) or x[rows]; writes value (n,)\n"
        "(x's sums: float32 or float64) and index (n,) int64, lowest index on ties; x may be\n"
        "float16 (read as float32), y is float32 or float64. self_mask: y is x and\n"
        "row i never matches itself.");
  m.def("head_greedy", [](py::handle xh, py::handle h, py::handle hidx, double tau, I64 tau_idx, I64 budget) {
          return HMINSEL_DISPATCH(head_greedy_t, xh, h, hidx, tau, tau_idx, budget); },
        py::arg("xh"), py::arg("h"), py::arg("hidx"), py::arg("tau"), py::arg("tau_idx"), py::arg("budget"),
        "Greedy steps on the head xh (M, d) while the best key (h, -hidx) beats\n"
        "(tau, -tau_idx); h updated in place. Returns (positions int64, values float64).");
}
