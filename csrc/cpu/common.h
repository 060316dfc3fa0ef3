// Shared helpers of the CPU kernels: the one distance function, the tie rule.
//
// Every squared distance the CPU backend reports comes from `sqdist_k`, so the
// streaming step, block_min and the head loop agree bit for bit. Its summation
// order is written out (L independent lanes over j, then a fixed halving tree)
// so the result does not depend on the compiler or the SIMD width: the
// auto-vectoriser maps lanes to vector registers, it never reorders sums
// (no -ffast-math; -ffp-contract=off keeps a*b+c from becoming an FMA in one
// inlined copy and not in another).
#pragma once

#include <cstdint>
#include <limits>

namespace hminsel {

constexpr double MARK = -1.0;  // min-distance of a selected or excluded point

// Independent partial sums per distance: two 512-bit vectors' worth, so one
// distance keeps two add chains in flight (AVX2 machines use four ymm).
template <typename T> struct Lanes;
template <> struct Lanes<float> { static constexpr int value = 32; };
template <> struct Lanes<double> { static constexpr int value = 16; };

// Squared L2 distances, direct form sum_j (a_j - b_k,j)^2, of one row `a` to
// K rows `b[0..K)`, all of length d. One call shares the loads of `a` between
// the K centres (register tiling); the arithmetic per centre is the same for
// every K, so sqdist_k<T, 4> and sqdist_k<T, 1> give identical values.
template <typename T, int K>
inline void sqdist_k(const T* __restrict a, const T* const* b, int64_t d, T* out) {
  constexpr int L = Lanes<T>::value;
  T acc[K][L];
  for (int k = 0; k < K; ++k)
    for (int l = 0; l < L; ++l) acc[k][l] = T(0);
  const int64_t full = d - d % L;
  for (int64_t j = 0; j < full; j += L) {
    for (int k = 0; k < K; ++k) {
      const T* __restrict bk = b[k] + j;
      for (int l = 0; l < L; ++l) {
        const T t = a[j + l] - bk[l];
        acc[k][l] += t * t;
      }
    }
  }
  // Tail: element full + l goes to lane l, as if the row were zero-padded.
  for (int64_t j = full; j < d; ++j) {
    for (int k = 0; k < K; ++k) {
      const T t = a[j] - b[k][j];
      acc[k][j - full] += t * t;
    }
  }
  // Fixed halving tree. When d < L the lanes >= d hold +0, and a level whose
  // upper half is all +0 is skipped: x + 0 == x exactly for x >= 0, so the
  // value is the same as the full tree (this keeps d = 3 cheap).
  const int used = d >= L ? L : static_cast<int>(d);
  for (int h = L / 2; h >= 1; h /= 2) {
    if (h >= used) continue;
    for (int k = 0; k < K; ++k)
      for (int l = 0; l < h; ++l) acc[k][l] += acc[k][l + h];
  }
  for (int k = 0; k < K; ++k) out[k] = acc[k][0];
}

// Squared L2 distance of two rows: sqdist_k with one centre.
template <typename T>
inline T sqdist(const T* a, const T* b, int64_t d) {
  T out[1];
  sqdist_k<T, 1>(a, &b, d, out);
  return out[0];
}

// sqdist for a compile-time d = D below the lane count: the same lane
// assignment and halving tree as sqdist_k, so the same value, but unrolled
// (point clouds, d = 3, spend most of sqdist_k's time on its 32 lanes).
template <typename T, int D>
inline T sqdist_small(const T* __restrict a, const T* __restrict b) {
  constexpr int L = Lanes<T>::value;
  static_assert(D >= 1 && D < L, "sqdist_small is for 1 <= d < lanes");
  T acc[L] = {};
  for (int j = 0; j < D; ++j) {
    const T t = a[j] - b[j];
    acc[j] += t * t;
  }
  for (int h = L / 2; h >= 1; h /= 2) {
    if (h >= D) continue;
    for (int l = 0; l < h; ++l) acc[l] += acc[l + h];
  }
  return acc[0];
}

// A candidate (value, index). "Best" is the largest value, ties to the lowest
// index: the order of the packed key (value bits << 32) | (~index) on the GPU.
template <typename T>
struct Best {
  T value;
  int64_t index;
};

template <typename T>
inline bool beats(T value, int64_t index, const Best<T>& other) {
  return value > other.value || (value == other.value && index < other.index);
}

// Nothing found yet: loses to every real candidate, including a MARK one.
template <typename T>
inline Best<T> no_best() {
  return {-std::numeric_limits<T>::infinity(), -1};
}

}  // namespace hminsel
