// The input passes every host call makes before any kernel: which rows hold
// NaN or inf, and float16 storage widened to float32. NumPy does both on one
// thread (float16 isfinite runs at about 1 GB/s); here they run on the pool,
// reading the raw bits: a value is finite unless its exponent bits are all
// ones, and the widening is exact (the F16C instruction where the build has
// it, else the same bits by hand).
#include <atomic>
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
template <typename Bits>
I64 nonfinite_rows(const Bits* x, I64 n, I64 d, uint8_t* bad) {
  constexpr Bits kMask = exponent_mask<Bits>();
  std::atomic<I64> total{0};
  parallel_for(n, std::max<I64>(1, (I64(1) << 15) / std::max<I64>(1, d)), d, [&](I64 lo, I64 hi) {
    I64 count = 0;
    for (I64 i = lo; i < hi; ++i) {
      const Bits* row = x + i * d;
      bool any = false;
      for (I64 j = 0; j < d; ++j) any |= (row[j] & kMask) == kMask;  // vectorises: no early exit
      bad[i] = any;
      count += any;
    }
    total.fetch_add(count, std::memory_order_relaxed);
  });
  return total.load();
}

void widen_half(const Half* x, I64 count, float* out) {
  parallel_for(count, I64(1) << 16, 1, [&](I64 lo, I64 hi) { widen(x + lo, out + lo, hi - lo); });
}

template <typename Bits>
I64 nonfinite_rows_t(py::handle xo, py::handle bo) {
  auto x = checked<Bits>(xo, "x", 2);
  auto bad = checked<uint8_t>(bo, "bad", 1, true);
  const I64 n = x.shape(0), d = x.shape(1);
  need_len(bad, "bad", 0, n, "entries (rows of x)");
  const Bits* xp = x.data();
  uint8_t* bp = bad.mutable_data();
  py::gil_scoped_release nogil;
  return nonfinite_rows(xp, n, d, bp);
}

}  // namespace

void bind_input(py::module_& m) {
  m.def("nonfinite_rows", [](py::handle x, py::handle bad) -> I64 {
          const auto a = py::reinterpret_borrow<py::array>(x);
          if (py::isinstance<py::array>(x) && a.itemsize() == 2) return nonfinite_rows_t<uint16_t>(x, bad);
          if (py::isinstance<py::array>(x) && a.itemsize() == 4) return nonfinite_rows_t<uint32_t>(x, bad);
          return nonfinite_rows_t<uint64_t>(x, bad);
        }, py::arg("x"), py::arg("bad"),
        "bad[i] = 1 where row i of x (the raw bits of float16/32/64 rows: a uint16, uint32 or\n"
        "uint64 view, C-contiguous) holds NaN or inf, else 0; returns how many rows do.");
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
  m.def("widen_rows", [](py::handle xo, py::handle ro, I64 lo, py::handle oo) {
          auto x = checked_rows<Half>(xo, "x");
          auto out = checked<float>(oo, "out", 2, true);
          I64 n = out.shape(0);
          need_len(out, "out", 1, x.d, "columns (d of x)");
          const I64* rp = row_ids(ro, x.n, n);
          HMINSEL_REQUIRE(n == out.shape(0), "out must have one row per entry of rows; got " + describe(oo));
          HMINSEL_REQUIRE(rp != nullptr || (lo >= 0 && lo + n <= x.n),
                          "rows lo .. lo + len(out) must lie in x; got lo = " + std::to_string(lo) + ", x " + describe(xo));
          const Half* xp = x.data;
          float* op = out.mutable_data();
          const I64 d = x.d;
          py::gil_scoped_release nogil;
          for (I64 r = 0; r < n; ++r) widen(xp + (rp ? rp[r] : lo + r) * d, op + r * d, d);
        }, py::arg("x"), py::arg("rows"), py::arg("lo"), py::arg("out"),
        "out[r] = float32 values of row rows[r] (rows None: lo + r) of the float16 array x (n, d),\n"
        "exact; on the calling thread (one tile of a threaded loop), without the GIL.");
}

}  // namespace hminsel
