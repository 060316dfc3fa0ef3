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
#include <cstring>
#include <limits>
#include <type_traits>

#if defined(__AVX512F__) || defined(__AVX2__)
#include <immintrin.h>
#endif

namespace hminsel {

constexpr double MARK = -1.0;  // min-distance of a selected or excluded point

// Independent partial sums per distance: two 512-bit vectors' worth, so one
// distance keeps two add chains in flight (AVX2 machines use four ymm).
template <typename T> struct Lanes;
template <> struct Lanes<float> { static constexpr int value = 32; };
template <> struct Lanes<double> { static constexpr int value = 16; };

#if defined(__AVX512F__)
// sqdist_k in AVX-512 registers: the same lanes, tail and halving tree, so the
// same values, but the tail (d % L elements: all of a row when d < L, 12 of
// d = 300) is one masked load a vector instead of a scalar loop, and the tree
// is the halving of registers (lanes l and l + h are one half and the other).
// Masked-off lanes read as 0: their t * t = +0 leaves a lane's sum as it is.
template <typename T> struct Avx512;
template <> struct Avx512<float> {
  using V = __m512;
  using Mask = __mmask16;
  static V zero() { return _mm512_setzero_ps(); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static V load(Mask m, const float* p) { return _mm512_maskz_loadu_ps(m, p); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul_add(V acc, V t) { return _mm512_add_ps(acc, _mm512_mul_ps(t, t)); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  // The levels h = 8, 4, 2, 1 of the tree (those with h < used) on lanes
  // 0..15 of v, in whole registers (lanes above h hold what they hold; only
  // lane 0 is read). The _mask_ forms with every lane set: the plain ones
  // pass an undefined vector that GCC 12 warns about.
  static float tree_lo(V v, int used) {
    if (8 < used) v = _mm512_add_ps(v, _mm512_mask_shuffle_f32x4(v, 0xFFFF, v, v, _MM_SHUFFLE(3, 2, 3, 2)));
    if (4 < used) v = _mm512_add_ps(v, _mm512_mask_shuffle_f32x4(v, 0xFFFF, v, v, _MM_SHUFFLE(1, 1, 1, 1)));
    if (2 < used) v = _mm512_add_ps(v, _mm512_mask_permute_ps(v, 0xFFFF, v, _MM_SHUFFLE(3, 2, 3, 2)));
    if (1 < used) v = _mm512_add_ps(v, _mm512_mask_permute_ps(v, 0xFFFF, v, _MM_SHUFFLE(1, 1, 1, 1)));
    return _mm512_cvtss_f32(v);
  }
};
template <> struct Avx512<double> {
  using V = __m512d;
  using Mask = __mmask8;
  static V zero() { return _mm512_setzero_pd(); }
  static V load(const double* p) { return _mm512_loadu_pd(p); }
  static V load(Mask m, const double* p) { return _mm512_maskz_loadu_pd(m, p); }
  static V sub(V a, V b) { return _mm512_sub_pd(a, b); }
  static V mul_add(V acc, V t) { return _mm512_add_pd(acc, _mm512_mul_pd(t, t)); }
  static V add(V a, V b) { return _mm512_add_pd(a, b); }
  // The levels h = 4, 2, 1 (h < used) on lanes 0..7 of v.
  static double tree_lo(V v, int used) {
    if (4 < used) v = _mm512_add_pd(v, _mm512_mask_shuffle_f64x2(v, 0xFF, v, v, _MM_SHUFFLE(3, 2, 3, 2)));
    if (2 < used) v = _mm512_add_pd(v, _mm512_mask_shuffle_f64x2(v, 0xFF, v, v, _MM_SHUFFLE(1, 1, 1, 1)));
    if (1 < used) v = _mm512_add_pd(v, _mm512_mask_permute_pd(v, 0xFF, v, 1));
    return _mm512_cvtsd_f64(v);
  }
};

template <typename T, int K>
inline void sqdist_k_avx512(const T* __restrict a, const T* const* b, int64_t d, T* out) {
  using A = Avx512<T>;
  using V = typename A::V;
  constexpr int H = Lanes<T>::value / 2;  // lanes a register: lanes 0..H-1 in lo, H..2H-1 in hi
  V lo[K], hi[K];
  for (int k = 0; k < K; ++k) lo[k] = hi[k] = A::zero();
  int64_t j = 0;
  for (; j + 2 * H <= d; j += 2 * H) {
    const V a0 = A::load(a + j), a1 = A::load(a + j + H);
    for (int k = 0; k < K; ++k) {
      lo[k] = A::mul_add(lo[k], A::sub(a0, A::load(b[k] + j)));
      hi[k] = A::mul_add(hi[k], A::sub(a1, A::load(b[k] + j + H)));
    }
  }
  const int rem = static_cast<int>(d - j);  // the tail: element j + l to lane l
  if (rem > 0) {
    using M = typename A::Mask;
    const M m0 = rem >= H ? M(~M(0)) : M((1u << rem) - 1);
    const V a0 = A::load(m0, a + j);
    for (int k = 0; k < K; ++k) lo[k] = A::mul_add(lo[k], A::sub(a0, A::load(m0, b[k] + j)));
    if (rem > H) {
      const M m1 = M((1u << (rem - H)) - 1);
      const V a1 = A::load(m1, a + j + H);
      for (int k = 0; k < K; ++k) hi[k] = A::mul_add(hi[k], A::sub(a1, A::load(m1, b[k] + j + H)));
    }
  }
  const int used = d >= 2 * H ? 2 * H : static_cast<int>(d);
  for (int k = 0; k < K; ++k)
    out[k] = A::tree_lo(H < used ? A::add(lo[k], hi[k]) : lo[k], used);
}
#endif

#if defined(__AVX2__) && !defined(__AVX512F__)
// sqdist_k in AVX2 registers: the same 32 (float) or 16 (double) lanes as four
// ymm a distance, the same tail (masked loads read masked lanes as 0, whose
// t * t = +0 leaves a lane's sum as it is) and the same halving tree, so the
// same values. The generic loop indexes its lanes with a variable in the tail,
// which keeps them in memory: about 90 cycles a row for any d <= 128.
template <typename T> struct Avx2;
template <> struct Avx2<float> {
  using V = __m256;
  static constexpr int H = 8;  // lanes a register
  static V zero() { return _mm256_setzero_ps(); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static V load(int n, const float* p) {  // lanes [0, n) of p, 0 < n < H; the others 0
    const __m256i m = _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
    return _mm256_maskload_ps(p, m);
  }
  static V mul_add(V acc, V a, V b) {
    const V t = _mm256_sub_ps(a, b);
    return _mm256_add_ps(acc, _mm256_mul_ps(t, t));
  }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  // The levels h = 4, 2, 1 (h < used) of the tree on lanes 0..7 of v.
  static float tree_lo(V v, int used) {
    __m128 q = _mm256_castps256_ps128(v);
    if (4 < used) q = _mm_add_ps(q, _mm256_extractf128_ps(v, 1));
    if (2 < used) q = _mm_add_ps(q, _mm_movehl_ps(q, q));
    if (1 < used) q = _mm_add_ss(q, _mm_shuffle_ps(q, q, 1));
    return _mm_cvtss_f32(q);
  }
};
template <> struct Avx2<double> {
  using V = __m256d;
  static constexpr int H = 4;
  static V zero() { return _mm256_setzero_pd(); }
  static V load(const double* p) { return _mm256_loadu_pd(p); }
  static V load(int n, const double* p) {
    const __m256i m = _mm256_cmpgt_epi64(_mm256_set1_epi64x(n), _mm256_setr_epi64x(0, 1, 2, 3));
    return _mm256_maskload_pd(p, m);
  }
  static V mul_add(V acc, V a, V b) {
    const V t = _mm256_sub_pd(a, b);
    return _mm256_add_pd(acc, _mm256_mul_pd(t, t));
  }
  static V add(V a, V b) { return _mm256_add_pd(a, b); }
  // The levels h = 2, 1 (h < used) on lanes 0..3 of v.
  static double tree_lo(V v, int used) {
    __m128d q = _mm256_castpd256_pd128(v);
    if (2 < used) q = _mm_add_pd(q, _mm256_extractf128_pd(v, 1));
    if (1 < used) q = _mm_add_sd(q, _mm_unpackhi_pd(q, q));
    return _mm_cvtsd_f64(q);
  }
};

template <typename T, int K>
inline void sqdist_k_avx2(const T* __restrict a, const T* const* b, int64_t d, T* out) {
  using A = Avx2<T>;
  using V = typename A::V;
  constexpr int H = A::H, L = 4 * H;  // L = Lanes<T>::value
  static_assert(L == Lanes<T>::value, "four registers hold the lanes");
  const int64_t full = d - d % L;
  const int rem = static_cast<int>(d - full);
  V acc[4][K];
  for (int q = 0; q < 4; ++q)
    for (int k = 0; k < K; ++k) acc[q][k] = A::zero();
  // One centre: the four registers' chains in flight together. Several: each
  // quarter of the lanes runs over the row in turn (lane l still sees elements
  // l, l + L, ... in order), so the K centres hold K registers, not 4K.
  constexpr int kOuter = K == 1 ? 1 : 4, kInner = K == 1 ? 4 : 1;
  for (int qo = 0; qo < kOuter; ++qo) {
    for (int64_t j = 0; j < full; j += L) {
      for (int qi = 0; qi < kInner; ++qi) {
        const int64_t at = j + (qo + qi) * H;
        const V aj = A::load(a + at);
        for (int k = 0; k < K; ++k) acc[qo + qi][k] = A::mul_add(acc[qo + qi][k], aj, A::load(b[k] + at));
      }
    }
  }
  for (int q = 0; q < 4; ++q) {  // the tail: element full + l to lane l
    const int n = rem - q * H;
    if (n <= 0) break;
    const int64_t at = full + q * H;
    const V aj = n >= H ? A::load(a + at) : A::load(n, a + at);
    for (int k = 0; k < K; ++k)
      acc[q][k] = A::mul_add(acc[q][k], aj, n >= H ? A::load(b[k] + at) : A::load(n, b[k] + at));
  }
  // The tree: h = 2H (lanes l += l + 2H: registers 0 += 2, 1 += 3), h = H (0 += 1),
  // then within register 0; a level with h >= used is skipped as in sqdist_k.
  const int used = d >= L ? L : static_cast<int>(d);
  for (int k = 0; k < K; ++k) {
    V lo = acc[0][k], hi = acc[1][k];
    if (2 * H < used) lo = A::add(lo, acc[2][k]), hi = A::add(hi, acc[3][k]);
    if (H < used) lo = A::add(lo, hi);
    out[k] = A::tree_lo(lo, used);
  }
}
#endif

#if !defined(__AVX512F__) && !defined(__AVX2__) && defined(__GNUC__)
// sqdist_k in 16-byte vectors of the compiler (GCC / Clang vector extensions:
// SSE2 on any x86-64, NEON on ARM): the same lanes as eight vectors of 4 floats
// or 2 doubles, the same zero-padded tail and the same tree, so the same values.
// The plain loop's T acc[K][L] stays in memory (its tail indexes lanes with a
// variable), about 90 cycles a row at any d <= 128; these stay in registers.
template <typename T> struct Vec16;
template <> struct Vec16<float> { typedef float V __attribute__((vector_size(16))); };
template <> struct Vec16<double> { typedef double V __attribute__((vector_size(16))); };

template <typename T, int K>
inline void sqdist_k_vec(const T* __restrict a, const T* const* b, int64_t d, T* out) {
  using V = typename Vec16<T>::V;
  constexpr int W = 16 / sizeof(T), NV = Lanes<T>::value / W, L = NV * W;  // 8 vectors
  auto load = [](const T* p) {
    V v;
    __builtin_memcpy(&v, p, sizeof v);
    return v;
  };
  auto load_part = [](const T* p, int n) {  // elements [0, n) of p, 0 < n < W; the others 0
    T e[W] = {};
    for (int l = 0; l < W; ++l)
      if (l < n) e[l] = p[l];
    V v;
    __builtin_memcpy(&v, e, sizeof v);
    return v;
  };
  const int64_t full = d - d % L;
  const int rem = static_cast<int>(d - full);
  V acc[NV][K];
  for (int q = 0; q < NV; ++q)
    for (int k = 0; k < K; ++k) acc[q][k] = V{};
  // One centre: the eight vectors' chains in flight together. Several: each vector
  // of lanes runs over the row in turn (its lanes still see their elements in
  // order), so the K centres hold K vectors, not 8K.
  constexpr int kOuter = K == 1 ? 1 : NV, kInner = K == 1 ? NV : 1;
  for (int qo = 0; qo < kOuter; ++qo) {
    for (int64_t j = 0; j < full; j += L) {
      for (int qi = 0; qi < kInner; ++qi) {
        const int64_t at = j + (qo + qi) * W;
        const V aj = load(a + at);
        for (int k = 0; k < K; ++k) {
          const V t = aj - load(b[k] + at);
          acc[qo + qi][k] += t * t;
        }
      }
    }
  }
  for (int q = 0; q < NV; ++q) {  // the tail: element full + l to lane l
    const int n = rem - q * W;
    if (n <= 0) break;
    const int64_t at = full + q * W;
    const V aj = n >= W ? load(a + at) : load_part(a + at, n);
    for (int k = 0; k < K; ++k) {
      const V t = aj - (n >= W ? load(b[k] + at) : load_part(b[k] + at, n));
      acc[q][k] += t * t;
    }
  }
  // The tree: lanes l += l + h for h = L/2 .. 1 where h < used: whole vectors
  // (q += q + h / W) down to h = W, then within vector 0.
  const int used = d >= L ? L : static_cast<int>(d);
  for (int k = 0; k < K; ++k) {
    for (int h = NV / 2; h >= 1; h /= 2)
      if (h * W < used)
        for (int q = 0; q < h; ++q) acc[q][k] += acc[q + h][k];
    T lanes[W];
    __builtin_memcpy(lanes, &acc[0][k], sizeof lanes);
    for (int h = W / 2; h >= 1; h /= 2)
      if (h < used)
        for (int l = 0; l < h; ++l) lanes[l] += lanes[l + h];
    out[k] = lanes[0];
  }
}
#endif

// Squared L2 distances, direct form sum_j (a_j - b_k,j)^2, of one row `a` to
// K rows `b[0..K)`, all of length d. One call shares the loads of `a` between
// the K centres (register tiling); the arithmetic per centre is the same for
// every K, so sqdist_k<T, 4> and sqdist_k<T, 1> give identical values.
template <typename T, int K>
inline void sqdist_k(const T* __restrict a, const T* const* b, int64_t d, T* out) {
#if defined(__AVX512F__)
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    sqdist_k_avx512<T, K>(a, b, d, out);
    return;
  }
#elif defined(__AVX2__)
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    sqdist_k_avx2<T, K>(a, b, d, out);
    return;
  }
#elif defined(__GNUC__)
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
    sqdist_k_vec<T, K>(a, b, d, out);
    return;
  }
#endif
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

// sqdist_k's halving tree on the D per-axis squares s of one point, D <= 8:
// lane l + h into lane l, widest level first. Levels h >= D are empty, and the
// lanes past D hold +0 in sqdist_k (x + 0 = x for x >= +0), so this is its
// value, written out so that a loop over points vectorises. Returns lane 0.
template <typename T, int D>
inline T tree_sum(T (&s)[D]) {
  static_assert(D >= 1 && D <= 8 && Lanes<T>::value >= 16, "the levels h >= 8 are empty");
  if constexpr (D > 4) {
#pragma GCC unroll 4
    for (int l = 0; l + 4 < D; ++l) s[l] += s[l + 4];
  }
  if constexpr (D > 2) {
#pragma GCC unroll 2
    for (int l = 0; l < 2 && l + 2 < D; ++l) s[l] += s[l + 2];
  }
  if constexpr (D > 1) s[0] += s[1];
  return s[0];
}

// sqdist for a compile-time d = D <= 8: the same lane assignment and halving
// tree as sqdist_k, so the same value, unrolled (point clouds, d = 3, spend
// most of sqdist_k's time on its 32 lanes).
template <typename T, int D>
inline T sqdist_small(const T* __restrict a, const T* __restrict b) {
  T s[D];
#pragma GCC unroll 8
  for (int j = 0; j < D; ++j) {
    const T t = a[j] - b[j];
    s[j] = t * t;
  }
  return tree_sum<T, D>(s);
}

// Values >= +0 or MARK (never NaN) order as their bits read as signed integers:
// the running max of a fold is an integer max, which vectorises without
// -ffast-math (a float max does not: NaN).
template <typename T>
using ValueBits = typename std::conditional<sizeof(T) == 4, int32_t, int64_t>::type;

// m = min(m, dist), branch free (MARK, below any distance, stays; so does it
// against a NaN distance); returns the new value's bits for a running max.
template <typename T>
inline ValueBits<T> lower_to_bits(T& m, T dist) {
  const T v = dist < m ? dist : m;
  m = v;
  ValueBits<T> bits;
  std::memcpy(&bits, &v, sizeof bits);
  return bits;
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
