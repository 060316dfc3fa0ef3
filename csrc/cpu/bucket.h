// Exact bucket FPS in low d (1 <= D <= 8): a tree of buckets over one cloud.
//
// The points are sorted along a Morton curve of a coarse grid (a radix sort on
// <= 22-bit cell keys) and cut into buckets of `leaf` consecutive points; an
// implicit complete binary tree over the buckets holds, per node, the tight
// bounding box of its points and the largest min-distance under it with its
// point (ties to the lowest original row). A pick c touches only the nodes
// whose box can hold a point closer to c than the node's largest value, plus
// the path to c's own bucket (c becomes MARK); the root then holds the next
// pick. Exactness: every distance comes from the summation tree of
// `sqdist_small` (common.h), and the box distance of a node is that same tree
// over the per-axis gaps, so it is <= the computed distance of every point in
// the box (rounding is monotone), and a skipped node cannot change. The tree's
// shape only decides how much is skipped, never which point is picked.
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
template <typename T, int D>
inline T tree_sum(T* acc) {
  constexpr int L = Lanes<T>::value;
  static_assert(D >= 1 && D < L, "tree_sum is for 1 <= d < lanes");
  for (int h = L / 2; h >= 1; h /= 2) {
    if (h >= D) continue;
    for (int l = 0; l < h && l + h < D; ++l) acc[l] += acc[l + h];
  }
  return acc[0];
}

// A lower bound, in the same arithmetic, on the distance of c to any point of
// the box [lo, hi]: |fl(p - c)| >= fl(gap) for every p in the box.
template <typename T, int D>
inline T box_dist(const T* lo, const T* hi, const T* c) {
  T acc[D];
  for (int j = 0; j < D; ++j) {
    const T t = c[j] < lo[j] ? lo[j] - c[j] : (c[j] > hi[j] ? c[j] - hi[j] : T(0));
    acc[j] = t * t;
  }
  return tree_sum<T, D>(acc);
}

constexpr int64_t kMaxLeaf = 256;  // points a bucket, at most

template <typename T>
using Bits = typename std::conditional<sizeof(T) == 4, int32_t, int64_t>::type;

// Sorts (key, val) by key, LSD radix with digits of <= 11 bits (stable).
void radix_sort(std::vector<uint32_t>& key, std::vector<int64_t>& val, int bits);

// The cell key of every live row of x (rows, D) and the rows in key order.
// mind0 (rows,) or nullptr: rows with MARK are left out. Returns the live count.
template <typename T, int D>
int64_t morton_order(const T* x, int64_t rows, const T* mind0, std::vector<int64_t>& order);

template <typename T, int D>
struct Tree {
  int64_t n = 0, leaf = 64, size = 1;  // points, points a bucket, buckets rounded up to 2^depth
  int depth = 0;
  std::vector<T> xs;          // (D, n): coordinates by position, one axis a row
  std::vector<uint32_t> id;   // (n,) original row of each position (rows < 2^32)
  std::vector<T> mind;        // (n,) min-distance of each position (MARK once picked)
  std::vector<T> lo, hi;      // (2 size, D) node boxes; node 1 is the root
  std::vector<T> top;         // (2 size,) largest mind under the node (MARK: none live)
  std::vector<int64_t> arg;   // (2 size,) its original row
  std::vector<int64_t> where; // (rows,) position of each original row (-1: left out)
  std::vector<int64_t> inner; // scratch of fold: the inner nodes it visited

  // rows (rows, D) of x; mind0 as in morton_order (nullptr: every row at +inf).
  void build(const T* x, int64_t rows, const T* mind0, int64_t leaf_size) {
    leaf = leaf_size;
    std::vector<int64_t> order;
    n = morton_order<T, D>(x, rows, mind0, order);
    xs.resize(D * n);
    id.assign(order.begin(), order.begin() + n);
    where.assign(rows, -1);
    mind.resize(n);
    for (int64_t p = 0; p < n; ++p) {
      const T* row = x + order[p] * D;
      for (int j = 0; j < D; ++j) xs[j * n + p] = row[j];
      mind[p] = mind0 ? mind0[order[p]] : std::numeric_limits<T>::infinity();
      where[order[p]] = p;
    }
    const int64_t buckets = std::max<int64_t>(1, (n + leaf - 1) / leaf);
    for (size = 1, depth = 0; size < buckets; size *= 2) ++depth;
    lo.assign(2 * size * D, std::numeric_limits<T>::infinity());
    hi.assign(2 * size * D, -std::numeric_limits<T>::infinity());
    top.assign(2 * size, T(MARK));
    arg.assign(2 * size, 0);
    for (int64_t b = 0; b < buckets; ++b) {
      const int64_t node = size + b, p0 = b * leaf, p1 = std::min(n, p0 + leaf);
      for (int j = 0; j < D; ++j)
        for (int64_t p = p0; p < p1; ++p) {
          lo[node * D + j] = std::min(lo[node * D + j], xs[j * n + p]);
          hi[node * D + j] = std::max(hi[node * D + j], xs[j * n + p]);
        }
      leaf_best(b);
    }
    for (int64_t node = size - 1; node >= 1; --node) {
      for (int j = 0; j < D; ++j) {
        lo[node * D + j] = std::min(lo[2 * node * D + j], lo[(2 * node + 1) * D + j]);
        hi[node * D + j] = std::max(hi[2 * node * D + j], hi[(2 * node + 1) * D + j]);
      }
      pull(node);
    }
  }

  // top/arg of bucket b from mind: the largest value, then the lowest original
  // row. Values are >= +0 or MARK, so they order as their bits read as signed
  // integers; float32 packs (bits, ~row) into one int64 max (one pass).
  void leaf_best(int64_t b) {
    const int64_t p0 = b * leaf, cnt = std::min(n, p0 + leaf) - p0;
    const T* __restrict m = mind.data() + p0;
    const uint32_t* __restrict ids = id.data() + p0;
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
      std::memcpy(&top[size + b], &v, sizeof v);
      arg[size + b] = 0xFFFFFFFFu - static_cast<uint32_t>(key & 0xFFFFFFFF);
    } else {
      Bits<T> bits = std::numeric_limits<Bits<T>>::min();
#pragma omp simd reduction(max : bits)
      for (int64_t p = 0; p < cnt; ++p) {
        Bits<T> v;
        std::memcpy(&v, &m[p], sizeof v);
        bits = v > bits ? v : bits;
      }
      T best;
      std::memcpy(&best, &bits, sizeof best);
      uint32_t who = 0xFFFFFFFFu;
#pragma omp simd reduction(min : who)
      for (int64_t p = 0; p < cnt; ++p) {
        const uint32_t r = m[p] == best ? ids[p] : 0xFFFFFFFFu;
        who = r < who ? r : who;
      }
      top[size + b] = best;
      arg[size + b] = who;
    }
  }

  void pull(int64_t node) {
    const int64_t a = 2 * node, b = a + 1;
    const bool left = top[a] > top[b] || (top[a] == top[b] && arg[a] < arg[b]);
    top[node] = left ? top[a] : top[b];
    arg[node] = left ? arg[a] : arg[b];
  }

  // Folds the point at position c into every mind it can lower and marks it.
  void fold(int64_t c) {
    T cx[D];
    for (int j = 0; j < D; ++j) cx[j] = xs[j * n + c];
    mind[c] = T(MARK);
    const int64_t cleaf = size + c / leaf;
    // Depth first over the nodes that can change (c's path always: c is now
    // MARK), then the visited inner nodes pull their children's best bottom up
    // (reverse pre-order puts every node after its descendants).
    int64_t stack[2 * 64];
    int top_of = 0;
    stack[top_of++] = 1;
    inner.clear();
    while (top_of > 0) {
      const int64_t node = stack[--top_of];
      if (node >= size) {
        update_leaf(node - size, cx);
        continue;
      }
      inner.push_back(node);
      const int shift = depth - (63 - __builtin_clzll(static_cast<uint64_t>(node))) - 1;
      for (int64_t child = 2 * node; child <= 2 * node + 1; ++child)
        if ((cleaf >> shift) == child || box_dist<T, D>(&lo[child * D], &hi[child * D], cx) < top[child])
          stack[top_of++] = child;  // else every point inside is >= top away: no mind drops
    }
    for (auto it = inner.rbegin(); it != inner.rend(); ++it) pull(*it);
  }

  // Folds the centre cx into the minds of bucket b, then its top/arg.
  __attribute__((noinline)) void update_leaf(int64_t b, const T* cx) {
    const int64_t p0 = b * leaf, cnt = std::min(n, p0 + leaf) - p0;
    T* __restrict m = mind.data() + p0;
    const T* __restrict xb = xs.data() + p0;
    // Axis by axis, then sqdist_small's tree level by level: every loop runs
    // over the points (vectorised), the arithmetic per point is unchanged.
    T acc[D][kMaxLeaf];
    for (int j = 0; j < D; ++j) {
      const T* __restrict xj = xb + j * n;
      const T c = cx[j];
      for (int64_t p = 0; p < cnt; ++p) {
        const T t = xj[p] - c;
        acc[j][p] = t * t;
      }
    }
    constexpr int L = Lanes<T>::value;
    for (int h = L / 2; h >= 1; h /= 2) {
      if (h >= D) continue;
      for (int l = 0; l < h && l + h < D; ++l)
        for (int64_t p = 0; p < cnt; ++p) acc[l][p] += acc[l + h][p];
    }
    for (int64_t p = 0; p < cnt; ++p) m[p] = acc[0][p] < m[p] ? acc[0][p] : m[p];  // MARK stays
    leaf_best(b);
  }

};

}  // namespace bucket
}  // namespace hminsel
