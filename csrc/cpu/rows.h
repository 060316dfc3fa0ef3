// Rows of x read where they lie: float, double or float16 (`Half`) storage,
// as stored or as unit rows (the cosine metric).
//
// A kernel templated on the storage S reads rows through a `RowReader<S>`:
// for float and double the row is a pointer into x, for float16 the row
// widened into the reader's buffer, and for unit rows the row divided by its
// norm there. Widening is exact and the division is the one the prepared copy
// makes, so a kernel computes the same bits as from that copy, without
// holding it (2x the input's memory for float16) or re-reading 4 bytes a value.
#pragma once

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#elif defined(__aarch64__)
#include <arm_neon.h>
#endif

#include <cstdint>
#include <cstring>
#include <type_traits>
#include <vector>

namespace hminsel {

struct Half {  // IEEE binary16 bits, as NumPy's float16 stores them
  uint16_t bits;
};

template <typename S> struct AccOf { using type = S; };
template <> struct AccOf<Half> { using type = float; };
// The accumulation type of storage S: float16 sums in float32.
template <typename S> using acc_t = typename AccOf<S>::type;

// Exact float16 -> float32 by hand (builds without F16C, and tails).
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

#if (defined(__x86_64__) || defined(__i386__)) && defined(__GNUC__)
// F16C's conversion, 8 values an instruction, whatever the build's flags; a
// portable build (HMINSEL_PORTABLE=1) takes it where the CPU has F16C (every
// x86-64 since 2012), else the exact scalar path.
__attribute__((target("avx,f16c"))) inline int64_t widen_f16c(const Half* src, float* out, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
  return i;
}
#define HMINSEL_HAS_F16C_PATH 1
#endif

inline bool cpu_has_f16c() {
#if defined(__F16C__)
  return true;
#elif defined(HMINSEL_HAS_F16C_PATH)
  static const bool yes = __builtin_cpu_supports("f16c");
  return yes;
#else
  return false;
#endif
}

// out[0..n) = the float32 values of src[0..n): exact (F16C where the CPU has it;
// on 64-bit ARM the base instruction set's FCVTL, 4 values an instruction).
inline void widen(const Half* src, float* out, int64_t n) {
  int64_t i = 0;
#if defined(__F16C__)
  for (; i + 8 <= n; i += 8)
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i))));
#elif defined(HMINSEL_HAS_F16C_PATH)
  if (cpu_has_f16c()) i = widen_f16c(src, out, n);
#elif defined(__aarch64__)
  for (; i + 8 <= n; i += 8) {
    const float16x8_t h = vreinterpretq_f16_u16(vld1q_u16(&src[i].bits));
    vst1q_f32(out + i, vcvt_f32_f16(vget_low_f16(h)));
    vst1q_f32(out + i + 4, vcvt_high_f32_f16(h));
  }
#endif
  for (; i < n; ++i) out[i] = half_to_float(src[i].bits);
}

// Where the rows of x (n, d) come from: its storage and, for the cosine
// metric read in place, each row's norm (rounded to acc_t<S>) to divide by.
template <typename S>
struct RowSource {
  const S* x;
  const acc_t<S>* norms = nullptr;  // null: the rows as stored
};

// Row i of x as acc_t<S> values, valid until the reader's next call: a
// pointer into x, or the row widened (float16) and divided by its norm (unit
// rows) into the reader's buffer, the values a prepared copy of x would hold
// (an exact widening, then one IEEE division). One reader per thread.
template <typename S>
class RowReader {
  using T = acc_t<S>;

 public:
  RowReader(RowSource<S> src, int64_t d)
      : src_(src), d_(d), buf_(std::is_same_v<S, T> && src.norms == nullptr ? 0 : static_cast<size_t>(d)) {}

  const T* operator()(int64_t i) {
    const S* row = src_.x + i * d_;
    const T* out;
    if constexpr (std::is_same_v<S, T>) {
      if (src_.norms == nullptr) return row;
      out = row;
    } else {
      widen(row, buf_.data(), d_);
      if (src_.norms == nullptr) return buf_.data();
      out = buf_.data();
    }
    const T scale = src_.norms[i];
    T* b = buf_.data();
    for (int64_t j = 0; j < d_; ++j) b[j] = out[j] / scale;
    return b;
  }

 private:
  RowSource<S> src_;
  int64_t d_;
  std::vector<T> buf_;
};

}  // namespace hminsel
