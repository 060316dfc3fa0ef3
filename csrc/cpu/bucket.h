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

// sqdist_small's halving tree over D lanes, skipping the lanes that hold +0
// there (x + 0 == x exactly for x >= +0): the same value, fewer additions.
template <typename T, int D, int H>
inline void tree_level(T* acc) {
  if constexpr (H >= 1) {
    if constexpr (H < D) {
      constexpr int count = D - H < H ? D - H : H;
#pragma GCC unroll 8
      for (int l = 0; l < count; ++l) acc[l] += acc[l + H];
    }
    tree_level<T, D, H / 2>(acc);
  }
}

template <typename T, int D>
inline T tree_sum(T* acc) {
  static_assert(D >= 1 && D < Lanes<T>::value, "tree_sum is for 1 <= d < lanes");
  tree_level<T, D, Lanes<T>::value / 2>(acc);
  return acc[0];
}

// The gap of c to [a, z] on one axis: |fl(p - c)| >= gap for every p in
// [a, z] (rounding is monotone), so a box's tree_sum of squared gaps is a lower
// bound, in the same arithmetic, on the distance of c to any point inside.
// Branch free (vectorised over the W children of a node); +inf for an empty
// box (a = +inf, z = -inf).
template <typename T>
inline T gap(T c, T a, T z) {
  const T u = a - c, v = c - z;
  const T g = u > v ? u : v;
  return g > T(0) ? g : T(0);
}

constexpr int64_t kMaxLeaf = 256;  // points a bucket, at most
// Points in a batch of clouds from which it takes the OpenMP team: about 5 ms
// of bucket FPS on one core (32 x 1024 x 3 took 1.6 ms on one thread and
// 13 ms on two with the machine loaded: waking a team and joining it costs
// milliseconds when other processes hold the cores). One cloud runs on one
// thread, build included.
constexpr int64_t kParallelPoints = 1 << 17;

template <typename T>
using Bits = typename std::conditional<sizeof(T) == 4, int32_t, int64_t>::type;

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

// m = min(m, acc) over cnt points (acc == nullptr: unchanged; MARK stays),
// then top/arg = the largest m and, among equals, the lowest row ids[p].
// Values are >= +0 or MARK, so they order as their bits read as signed
// integers; float32 packs (bits, ~row) into one int64 max.
template <typename T>
inline void min_best(T* __restrict m, const uint32_t* __restrict ids, int64_t cnt, const T* acc,
                     T& top, uint32_t& arg) {
  if (acc)
    for (int64_t p = 0; p < cnt; ++p) m[p] = acc[p] < m[p] ? acc[p] : m[p];
  if constexpr (sizeof(T) == 4) {
    int64_t key = std::numeric_limits<int64_t>::min();
#pragma omp simd reduction(max : key)
    for (int64_t p = 0; p < cnt; ++p) {
      int32_t v;
      std::memcpy(&v, &m[p], sizeof v);
      const int64_t k = static_cast<int64_t>(static_cast<uint64_t>(static_cast<int64_t>(v)) << 32) |
                        static_cast<int64_t>(0xFFFFFFFFu - ids[p]);
      key = k > key ? k : key;
    }
    const int32_t v = static_cast<int32_t>(key >> 32);
    std::memcpy(&top, &v, sizeof v);
    arg = 0xFFFFFFFFu - static_cast<uint32_t>(key & 0xFFFFFFFF);
  } else {
    Bits<T> bits = std::numeric_limits<Bits<T>>::min();
#pragma omp simd reduction(max : bits)
    for (int64_t p = 0; p < cnt; ++p) {
      Bits<T> v;
      std::memcpy(&v, &m[p], sizeof v);
      bits = v > bits ? v : bits;
    }
    std::memcpy(&top, &bits, sizeof top);
    uint32_t who = 0xFFFFFFFFu;
#pragma omp simd reduction(min : who)
    for (int64_t p = 0; p < cnt; ++p) {
      const uint32_t r = m[p] == top ? ids[p] : 0xFFFFFFFFu;
      who = r < who ? r : who;
    }
    arg = who;
  }
}

// Sorts (key, val) by key, LSD radix with digits of <= 11 bits (stable).
void radix_sort(std::vector<uint32_t>& key, std::vector<uint32_t>& val, int bits);

// The cell key of every live row of x (rows, D) and the rows in key order.
// mind0 (rows,) or nullptr: rows with MARK are left out. Returns the live count.
template <typename T, int D>
int64_t morton_order(const T* x, int64_t rows, const T* mind0, std::vector<uint32_t>& order);

}  // namespace bucket
}  // namespace hminsel
