// The input passes every host call makes before any kernel: which rows hold
// NaN or inf, and float16 storage widened to float32. NumPy does both on one
// thread (float16 isfinite runs at about 1 GB/s); here they run on the pool,
// reading the raw bits: a value is finite unless its exponent bits are all
// ones, and the widening is exact (the F16C instruction where the build has
// it, else the same bits by hand).
#include <algorithm>
#include <atomic>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "checks.h"
#include "parallel.h"
#include "rows.h"

namespace hminsel {
namespace {

using I64 = int64_t;

template <typename Bits> constexpr Bits exponent_mask();
template <> constexpr uint16_t exponent_mask<uint16_t>() { return 0x7C00u; }
template <> constexpr uint32_t exponent_mask<uint32_t>() { return 0x7F800000u; }
template <> constexpr uint64_t exponent_mask<uint64_t>() { return 0x7FF0000000000000ull; }

// bad[i] = 1 when row i of x (n, d) holds a NaN or an inf, else 0; returns how many.
// top (or null) gets the largest magnitude among the finite values, as bits
// without the sign (the order of the bits is the order of the magnitudes).
// A chunk of rows is first read as one flat run of values (a vector max at
// any d: d = 3 rows ran at a fifth of the memory speed one at a time); only a
// chunk holding a non-finite value is read again row by row.
template <typename Bits>
I64 nonfinite_rows(const Bits* x, I64 n, I64 d, uint8_t* bad, Bits* top) {
  constexpr Bits kMask = exponent_mask<Bits>();
  constexpr Bits kAbs = Bits(~Bits(0)) >> 1;  // all but the sign bit
  std::atomic<I64> total{0};
  std::atomic<Bits> largest{0};
  parallel_for(n, std::max<I64>(1, (I64(1) << 15) / std::max<I64>(1, d)), d, [&](I64 lo, I64 hi) {
    I64 count = 0;
    Bits big = 0;
    const Bits* flat = x + lo * d;
    for (I64 j = 0, m = (hi - lo) * d; j < m; ++j) big = std::max<Bits>(big, flat[j] & kAbs);
    if (big < kMask) {  // every value finite: the usual case
      std::memset(bad + lo, 0, static_cast<size_t>(hi - lo));
    } else {
      big = 0;
      for (I64 i = lo; i < hi; ++i) {
        const Bits* row = x + i * d;
        Bits m = 0;
        for (I64 j = 0; j < d; ++j) m = std::max<Bits>(m, row[j] & kAbs);
        const bool nonfinite = m >= kMask;  // an exponent of all ones: inf or NaN
        if (nonfinite) {  // the largest finite magnitude of this row
          m = 0;
          for (I64 j = 0; j < d; ++j)
            if ((row[j] & kAbs) < kMask) m = std::max<Bits>(m, row[j] & kAbs);
        }
        bad[i] = nonfinite;
        count += nonfinite;
        big = std::max(big, m);
      }
    }
    total.fetch_add(count, std::memory_order_relaxed);
    for (Bits seen = largest.load(); big > seen && !largest.compare_exchange_weak(seen, big);) {
    }
  });
  if (top != nullptr) *top = largest.load();
  return total.load();
}

void widen_half(const Half* x, I64 count, float* out) {
  parallel_for(count, I64(1) << 16, 1, [&](I64 lo, I64 hi) { widen(x + lo, out + lo, hi - lo); });
}

// The squares of a row times s (a power of two: exact) summed in float64: 8 lanes
// (element j to lane j % 8, in order of j), then a halving tree.
template <typename T>
double lane_squares(const T* a, I64 d, double s) {
  constexpr int L = 8;
  double acc[L] = {};
  const I64 full = d - d % L;
  for (I64 j = 0; j < full; j += L)
    for (int l = 0; l < L; ++l) acc[l] += (double(a[j + l]) * s) * (double(a[j + l]) * s);
  for (I64 j = full; j < d; ++j) acc[j - full] += (double(a[j]) * s) * (double(a[j]) * s);
  for (int h = L / 2; h >= 1; h /= 2)
    for (int l = 0; l < h; ++l) acc[l] += acc[l + h];
  return acc[0];
}

// |a|: lane_squares' root; a float64 row whose squares overflow or fall below the
// normal range (values beyond about 1e154 or below 1e-154) is summed again scaled
// by the power of two that brings its largest magnitude into [0.5, 1).
template <typename T>
double row_norm(const T* a, I64 d) {
  const double sq = lane_squares(a, d, 1.0);
  if (sq >= DBL_MIN && sq <= DBL_MAX) return std::sqrt(sq);
  double top = 0;
  for (I64 j = 0; j < d; ++j) top = std::max(top, std::fabs(double(a[j])));
  if (!(top > 0 && top <= DBL_MAX)) return std::sqrt(sq);  // zeros; NaN/inf rows (not live)
  int e;
  std::frexp(top, &e);
  e = std::max(e, -1021);  // 2^1021 is still a double
  return std::ldexp(std::sqrt(lane_squares(a, d, std::ldexp(1.0, -e))), e);
}

// Unit rows for the cosine metric: out[i] = x[i] / |x[i]|, the norm summed in
// float64 (8 lanes, then a fixed tree: the same value on any thread count),
// rounded to T and divided in T; norms[i] = that divisor, 1 for rows not live
// (valid[i] == 0) or of norm 0, which are copied as they are. out or norms
// may be null. Returns the first live row of norm 0, or -1.
template <typename S, typename T = acc_t<S>>
I64 unit_rows(const S* x, I64 n, I64 d, const uint8_t* valid, T* out, T* norms) {
  std::atomic<I64> zero{n};
  parallel_for(n, std::max<I64>(1, (I64(1) << 14) / std::max<I64>(1, d)), d, [&](I64 lo, I64 hi) {
    RowReader<S> row(RowSource<S>{x}, d);
    for (I64 i = lo; i < hi; ++i) {
      const T* a = row(i);
      const double norm = row_norm(a, d);
      const bool live = valid == nullptr || valid[i];
      if (live && norm == 0) {
        I64 seen = zero.load(std::memory_order_relaxed);
        while (i < seen && !zero.compare_exchange_weak(seen, i, std::memory_order_relaxed)) {
        }
      }
      const T scale = live && norm != 0 ? static_cast<T>(norm) : T(1);
      if (norms != nullptr) norms[i] = scale;
      if (out == nullptr) continue;
      T* o = out + i * d;
      for (I64 j = 0; j < d; ++j) o[j] = a[j] / scale;
    }
  });
  return zero.load() == n ? -1 : zero.load();
}

template <typename S, typename T = acc_t<S>>
I64 unit_rows_t(py::handle xo, py::handle vo, py::handle oo, py::handle no) {
  HMINSEL_REQUIRE(!is_unit_rows(xo), "x must be an array, not unit rows already");
  auto x = checked_rows<S>(xo, "x");
  T* op = nullptr;
  T* np_ = nullptr;
  py::array_t<T> out, norms;
  if (!oo.is_none()) {
    out = checked<T>(oo, "out", 2, true);
    HMINSEL_REQUIRE(out.shape(0) == x.n && out.shape(1) == x.d,
                    "out must have x's shape; got x " + describe(xo) + ", out " + describe(oo));
    op = out.mutable_data();
  }
  if (!no.is_none()) {
    norms = checked<T>(no, "norms", 1, true);
    need_len(norms, "norms", 0, x.n, "entries (rows of x)");
    np_ = norms.mutable_data();
  }
  const uint8_t* vp = nullptr;
  py::array_t<uint8_t> valid;
  if (!vo.is_none()) {
    valid = checked<uint8_t>(vo, "valid", 1);
    need_len(valid, "valid", 0, x.n, "entries (rows of x)");
    vp = valid.data();
  }
  const S* xp = x.data;
  py::gil_scoped_release nogil;
  return unit_rows(xp, x.n, x.d, vp, op, np_);
}

// Rows of x (or of lo ..) into out, as RowReader gives them (serial).
template <typename S, typename T = acc_t<S>>
void read_rows_t(py::handle xo, py::handle ro, I64 lo, py::handle oo) {
  auto x = checked_rows<S>(xo, "x");
  auto out = checked<T>(oo, "out", 2, true);
  I64 n = out.shape(0);
  need_len(out, "out", 1, x.d, "columns (d of x)");
  const I64* rp = row_ids(ro, x.n, n);
  HMINSEL_REQUIRE(n == out.shape(0), "out must have one row per entry of rows; got " + describe(oo));
  HMINSEL_REQUIRE(rp != nullptr || (lo >= 0 && lo + n <= x.n),
                  "rows lo .. lo + len(out) must lie in x; got lo = " + std::to_string(lo) + ", x " + describe(xo));
  const RowSource<S> xs = x.source();
  T* op = out.mutable_data();
  const I64 d = x.d;
  py::gil_scoped_release nogil;
  RowReader<S> row(xs, d);
  for (I64 r = 0; r < n; ++r) std::memcpy(op + r * d, row(rp ? rp[r] : lo + r), sizeof(T) * d);
}

template <typename Bits>
I64 nonfinite_rows_t(py::handle xo, py::handle bo, py::handle to) {
  auto x = checked<Bits>(xo, "x", 2);
  auto bad = checked<uint8_t>(bo, "bad", 1, true);
  const I64 n = x.shape(0), d = x.shape(1);
  need_len(bad, "bad", 0, n, "entries (rows of x)");
  Bits* tp = nullptr;
  py::array_t<Bits> top;
  if (!to.is_none()) {
    top = checked<Bits>(to, "top", 1, true);
    need_len(top, "top", 0, 1, "entry (of x's bits dtype)");
    tp = top.mutable_data();
  }
  const Bits* xp = x.data();
  uint8_t* bp = bad.mutable_data();
  py::gil_scoped_release nogil;
  return nonfinite_rows(xp, n, d, bp, tp);
}

}  // namespace

void bind_input(py::module_& m) {
  m.def("nonfinite_rows", [](py::handle x, py::handle bad, py::handle top) -> I64 {
          const auto a = py::reinterpret_borrow<py::array>(x);
          if (py::isinstance<py::array>(x) && a.itemsize() == 2) return nonfinite_rows_t<uint16_t>(x, bad, top);
          if (py::isinstance<py::array>(x) && a.itemsize() == 4) return nonfinite_rows_t<uint32_t>(x, bad, top);
          return nonfinite_rows_t<uint64_t>(x, bad, top);
        }, py::arg("x"), py::arg("bad"), py::arg("top") = py::none(),
        "bad[i] = 1 where row i of x (the raw bits of float16/32/64 rows: a uint16, uint32 or\n"
        "uint64 view, C-contiguous) holds NaN or inf, else 0; returns how many rows do. top\n"
        "(1,) of x's dtype, or None: gets the largest magnitude of the finite values, as bits\n"
        "without the sign (view it as the float dtype).");
  m.def("widen_half", [](py::handle xo, py::handle oo) {
          auto x = checked<uint16_t>(xo, "x", 2);
          auto out = checked<float>(oo, "out", 2, true);
          HMINSEL_REQUIRE(out.shape(0) == x.shape(0) && out.shape(1) == x.shape(1),
                          "out must have x's shape; got x " + describe(xo) + ", out " + describe(oo));
          const Half* xp = reinterpret_cast<const Half*>(x.data());
          float* op = out.mutable_data();
          const I64 count = x.shape(0) * x.shape(1);
          py::gil_scoped_release nogil;
          widen_half(xp, count, op);
        }, py::arg("x"), py::arg("out"),
        "out = float32 values of x, the raw bits of float16 rows (a uint16 view): exact.");
  m.def("unit_rows", [](py::handle x, py::handle valid, py::handle out, py::handle norms) -> I64 {
          return by_storage(x, "x", [&](auto s) { return unit_rows_t<decltype(s)>(x, valid, out, norms); });
        }, py::arg("x"), py::arg("valid"), py::arg("out"), py::arg("norms") = py::none(),
        "out = the rows of x (float16/32/64, C-contiguous) divided by their norms (summed in\n"
        "float64, rounded to out's dtype: float32, or float64 for float64 x), on the pool's\n"
        "threads; rows with valid[r] == 0 (valid: uint8 (N,) or None) or of norm 0 are copied.\n"
        "norms (N,), if given, gets each row's divisor (1 for those). out may be None.\n"
        "Returns the first valid row of norm 0, or -1."); 
  m.def("read_rows", [](py::handle x, py::handle rows, I64 lo, py::handle out) {
          by_storage(x, "x", [&](auto s) { read_rows_t<decltype(s)>(x, rows, lo, out); });
        }, py::arg("x"), py::arg("rows"), py::arg("lo"), py::arg("out"),
        "out[r] = row rows[r] (rows None: lo + r) of x as the kernels read it: float16 widened to\n"
        "float32, unit rows divided by their norms; exact. On the calling thread (one tile of a\n"
        "threaded loop), without the GIL.");
}

}  // namespace hminsel
