// The input passes every host call makes before any kernel: which rows hold
// NaN or inf, and float16 storage widened to float32. NumPy does both on one
// thread (float16 isfinite runs at about 1 GB/s); here they run on the pool,
// reading the raw bits: a value is finite unless its exponent bits are all
// ones, and the widening is exact (the F16C instruction where the build has
// it, else the same bits by hand).
#if defined(__F16C__)
#include <immintrin.h>
#endif

#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>

#include "checks.h"
#include "parallel.h"

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

inline float half_to_float(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  uint32_t exp = (h >> 10) & 0x1Fu, mant = h & 0x3FFu, bits;
  if (exp == 0x1F) {
    bits = sign | 0x7F800000u | (mant << 13);  // inf, NaN
  } else if (exp != 0) {
    bits = sign | ((exp + 112) << 23) | (mant << 13);
  } else if (mant == 0) {
    bits = sign;
  } else {  // subnormal: mant 2^-24, normalised
    uint32_t shift = 0;
    while (!(mant & 0x400u)) mant <<= 1, ++shift;
    bits = sign | ((113 - shift) << 23) | ((mant & 0x3FFu) << 13);
  }
  float f;
  std::memcpy(&f, &bits, sizeof f);
  return f;
}

void widen_half(const uint16_t* x, I64 count, float* out) {
  parallel_for(count, I64(1) << 16, 1, [&](I64 lo, I64 hi) {
    I64 i = lo;
#if defined(__F16C__)
    for (; i + 8 <= hi; i += 8)
      _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x + i))));
#endif
    for (; i < hi; ++i) out[i] = half_to_float(x[i]);
  });
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
          const uint16_t* xp = x.data();
          float* op = out.mutable_data();
          const I64 count = x.shape(0) * x.shape(1);
          py::gil_scoped_release nogil;
          widen_half(xp, count, op);
        }, py::arg("x"), py::arg("out"),
        "out = float32 values of x, the raw bits of float16 rows (a uint16 view): exact.");
}

}  // namespace hminsel
