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
// Points (times d) from which a batch of clouds takes the OpenMP team: below
// it a fork/join costs more than the work. One cloud runs on one thread, build
// included (a fork/join stalls whenever another process holds a core).
constexpr int64_t kParallelWork = 1 << 16;

template <typename T>
using Bits = typename std::conditional<sizeof(T) == 4, int32_t, int64_t>::type;

// Sorts (key, val) by key, LSD radix with digits of <= 11 bits (stable).
void radix_sort(std::vector<uint32_t>& key, std::vector<uint32_t>& val, int bits);

// The cell key of every live row of x (rows, D) and the rows in key order.
// mind0 (rows,) or nullptr: rows with MARK are left out. Returns the live count.
template <typename T, int D>
int64_t morton_order(const T* x, int64_t rows, const T* mind0, std::vector<uint32_t>& order);

}  // namespace bucket
}  // namespace hminsel
