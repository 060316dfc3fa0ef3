// Exact bucket FPS in low d (1 <= D <= 8): the arithmetic and the build order.
//
// Exactness: every distance comes from the summation tree of `sqdist_small`
// (common.h), and the box distance of a node is that same tree over the
// per-axis gaps, so it is <= the computed distance of every point in the box
// (rounding is monotone): a node whose box distance is >= its largest
// min-distance cannot change. The tree (bucket_tree.h) only decides how much
// is skipped, never which point is picked.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "common.h"

namespace hminsel {
namespace bucket {

// The gap of c to [a, z] on one axis: |fl(p - c)| >= gap for every p in
// [a, z] (rounding is monotone), so a box's squared gaps summed in
// sqdist_small's tree (as bucket_dist sums a point's) are a lower bound, in the
// same arithmetic, on the distance of c to any point inside.
// Branch free (vectorised over the W children of a node); +inf for an empty
// box (a = +inf, z = -inf).
template <typename T>
inline T gap(T c, T a, T z) {
  const T u = a - c, v = c - z;
  const T g = u > v ? u : v;
  return g > T(0) ? g : T(0);
}

constexpr int64_t kMaxLeaf = 256;  // points a bucket, at most
// Morton key bits beyond log2(buckets): cells much finer than a bucket cost
// radix passes and order nothing a pick sees (32 x 1024 x 3: 9 bits, one pass,
// not 12; 1M: 18 bits, not 21). 3 slowed 200k x 3; 5 and 6 were as fast as 22
// bits there and 5-8% faster on 32 x 1024 x 3 (CPU time, one thread, load ~5).
constexpr int kMortonExtra = 6;
// Points in a batch of clouds from which it takes the pool (parallel.h):
// about 0.5 ms of bucket FPS on one core. The pool's workers claim whole
// clouds and one never scheduled in time skips the job, so a busy machine
// costs at most a cloud in flight (32 x 1024 x 3, k = 128, load ~5 on 2 cores:
// 1.29 ms on two threads, 1.32 ms on one). The OpenMP team this replaced
// needed 5 ms of work (it took 13 ms where one thread took 1.6 ms, loaded).
// One cloud runs on one thread, build included.
constexpr int64_t kParallelPoints = 1 << 14;

template <typename T>
using Bits = ValueBits<T>;

// Squared distances of the cnt points of one bucket (axis j at xs[j * n]) to
// c, into acc[0]: axis by axis, then sqdist_small's tree level by level, so
// every loop runs over the points (vectorised) and the arithmetic per point is
// unchanged.
template <typename T, int D>
inline void bucket_dist(const T* xs, int64_t n, int64_t cnt, const T* c, T (&acc)[D][kMaxLeaf]) {
  for (int j = 0; j < D; ++j) {
    const T* __restrict xj = xs + j * n;
    const T cj = c[j];
    for (int64_t p = 0; p < cnt; ++p) {
      const T t = xj[p] - cj;
      acc[j][p] = t * t;
    }
  }
  constexpr int L = Lanes<T>::value;
  for (int h = L / 2; h >= 1; h /= 2) {
    if (h >= D) continue;
    for (int l = 0; l < h && l + h < D; ++l)
      for (int64_t p = 0; p < cnt; ++p) acc[l][p] += acc[l + h][p];
  }
}

// The lowest row ids[p] among the cnt points whose m[p] == top.
template <typename T>
inline uint32_t lowest_at(const T* __restrict m, const uint32_t* __restrict ids, int64_t cnt, T top) {
  uint32_t who = 0xFFFFFFFFu;
#pragma omp simd reduction(min : who)
  for (int64_t p = 0; p < cnt; ++p) {
    const uint32_t r = m[p] == top ? ids[p] : 0xFFFFFFFFu;
    who = r < who ? r : who;
  }
  return who;
}

// top/arg = the largest of m over cnt points and, among equals, the lowest row
// ids[p]. Values are >= +0 or MARK, so they order as their bits read as signed
// integers: one max over the bits, then one min over the rows that hold it
// (both at the full vector width; a packed 64-bit key ran at half of it).
template <typename T>
inline void best_of(const T* __restrict m, const uint32_t* __restrict ids, int64_t cnt, T& top,
                    uint32_t& arg) {
  Bits<T> bits = std::numeric_limits<Bits<T>>::min();
#pragma omp simd reduction(max : bits)
  for (int64_t p = 0; p < cnt; ++p) {
    Bits<T> v;
    std::memcpy(&v, &m[p], sizeof v);
    bits = v > bits ? v : bits;
  }
  std::memcpy(&top, &bits, sizeof top);
  arg = lowest_at(m, ids, cnt, top);
}

// m = min(m, distance to c) over points [b0, b1) (axis j at xs[j * n]; MARK,
// below any distance, stays); returns their largest value as its bits (values
// are >= +0 or MARK: they order as those integers). The arithmetic per point is
// bucket_dist's, so the values are the same, but a point's axes, sums and min
// stay in registers (the unrolled loops let it vectorise over points): 10-30%
// faster than bucket_dist's arrays on the clouds and bigcloud cases.
template <typename T, int D>
inline Bits<T> fold_block(const T* __restrict xs, int64_t n, const T (&c)[D], T* __restrict m,
                          int64_t b0, int64_t b1) {
  Bits<T> top = std::numeric_limits<Bits<T>>::min();
#pragma omp simd reduction(max : top)
  for (int64_t p = b0; p < b1; ++p) {
    T s[D];
#pragma GCC unroll 8
    for (int j = 0; j < D; ++j) {
      const T t = xs[j * n + p] - c[j];
      s[j] = t * t;
    }
    const Bits<T> b = lower_to_bits(m[p], tree_sum<T, D>(s));
    top = b > top ? b : top;
  }
  return top;
}

// fold_block over cnt points, then top/arg as best_of.
template <typename T, int D>
inline void fold_best(const T* xs, int64_t n, int64_t cnt, const T* c, T* m, const uint32_t* ids,
                      T& top, uint32_t& arg) {
  T cen[D];
  for (int j = 0; j < D; ++j) cen[j] = c[j];
  const Bits<T> bits = fold_block<T, D>(xs, n, cen, m, 0, cnt);
  std::memcpy(&top, &bits, sizeof top);
  arg = lowest_at(m, ids, cnt, top);
}

// Sorts (key, val) by key, LSD radix with digits of <= 11 bits (stable).
void radix_sort(std::vector<uint32_t>& key, std::vector<uint32_t>& val, int bits);

// The cell key of every live row of x (rows, D) and the rows in key order, for
// buckets of `leaf` points. mind0 (rows,) or nullptr: rows with MARK are left
// out. refine: runs of one cell longer than a bucket are ordered again on
// grids of their own (bucket.cpp: refine_runs). Returns the live count.
template <typename T, int D>
int64_t morton_order(const T* x, int64_t rows, const T* mind0, int64_t leaf,
                     std::vector<uint32_t>& order, bool refine = false);

}  // namespace bucket
}  // namespace hminsel
